/**
 * validator-cache.ts: the standalone module it writes behaves exactly like the validator ajv
 * compiles (same verdicts, same defaults filled, same verbose error objects, for draft-07 and
 * 2020-12), the same schema text gives the same function, and an invalid schema throws ajv's
 * own error and leaves nothing in the cache.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ValidateFunction } from 'ajv'
import { cachedValidator, type ValidatorOptions } from '../../src/harness/validator-cache.ts'

const require = createRequire(import.meta.url)
const OPTIONS: ValidatorOptions = {
  allErrors: true,
  useDefaults: true,
  verbose: true,
  strict: false,
  addUsedSchema: false,
  allowUnionTypes: true,
}

function cachedFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.cjs'))
}

/** Validate a deep copy (defaults are filled in place); the data after, and the errors. */
function outcome(v: ValidateFunction, data: unknown): { valid: boolean; data: unknown; errors: unknown } {
  const copy = structuredClone(data)
  const valid = v(copy) as boolean
  return { valid, data: copy, errors: structuredClone(v.errors ?? null) }
}

const cases: Array<{ name: string; dialect: 'draft-07' | '2020-12'; schema: object; inputs: unknown[] }> = [
  {
    name: 'draft-07 with defaults, enums, patterns and nested objects',
    dialect: 'draft-07',
    schema: {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      additionalProperties: false,
      required: ['eta'],
      properties: {
        eta: { type: 'number', exclusiveMinimum: 0 },
        arch: { enum: ['cnn', 'mlp'], default: 'cnn' },
        name: { type: 'string', pattern: '^[a-z]+$' },
        opt: { type: 'object', properties: { steps: { type: 'integer', default: 3 } }, default: {} },
        tags: { type: 'array', items: { type: 'string' }, uniqueItems: true },
      },
    },
    inputs: [
      { eta: 0.1 },
      { eta: -1, arch: 'rnn', name: 'X1', extra: 1, tags: ['a', 'a'] },
      { arch: 'mlp', opt: { steps: 'many' } },
      'not an object',
    ],
  },
  {
    name: '2020-12 with prefixItems',
    dialect: '2020-12',
    schema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: { a: { prefixItems: [{ type: 'number' }] }, b: { default: 1 } },
    },
    inputs: [{ a: [1, 'x'] }, { a: ['x'] }, {}],
  },
]

for (const c of cases) {
  t.test(`the cached module validates like ajv: ${c.name}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cusp-validators-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const text = JSON.stringify(c.schema)
    const compiled = cachedValidator(text, c.schema, c.dialect, OPTIONS, dir)
    t.equal(cachedValidator(text, c.schema, c.dialect, OPTIONS, dir), compiled, 'the same function for the same text')
    const files = cachedFiles(dir)
    t.equal(files.length, 1, 'one module written')
    const loaded = require(join(dir, files[0]!)) as ValidateFunction
    t.type(loaded, 'function')
    t.not(loaded, compiled)
    for (const input of c.inputs) t.same(outcome(loaded, input), outcome(compiled, input), `same outcome for ${JSON.stringify(input)}`)
    t.ok(
      c.inputs.some((i) => !outcome(compiled, i).valid),
      'some input is invalid (the errors were compared)',
    )
  })
}

t.test('an invalid schema throws what ajv throws and is not cached', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-validators-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const schema = { type: 'object', properties: { a: { type: 'no-such-type' } } }
  t.throws(() => cachedValidator(JSON.stringify(schema), schema, 'draft-07', OPTIONS, dir), /schema is invalid: data\/properties\/a\/type/)
  t.same(cachedFiles(dir), [], 'nothing written')
})
