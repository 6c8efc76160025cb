/**
 * The fingerprint holes closed in issue 10, end to end through `execute` on a small project:
 * - a stage that embeds its producers' environment (a `provenance: true` report, like audit and
 *   figures) gets that environment from the harness (StageInput.env) and reruns when it changes,
 *   even when the producer's bytes do not (without provenance it would stay fresh and keep
 *   embedding the old one);
 * - every stage sees the env of its own fingerprint as ctx.env;
 * - a local directory named by a param marked `x-cusp-path` is part of the fingerprint by content.
 * Plus the pure helpers: markedPaths, producersEnv, engineMismatch, and prepare-data's real schema.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { localInputs, markedPaths } from '../../src/harness/local-inputs.ts'
import { execute, planDetailed } from '../../src/harness/run-pipeline.ts'
import { LocalStore } from '../../src/harness/store/index.ts'
import type { EnvRecord, LockFile, StageInstance, ValidPipeline } from '../../src/harness/types.ts'
import { engineMismatch } from '../../src/science/env-record.ts'
import { producersEnv } from '../../stages/shared/producers-env.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const root = mkdtempSync(join(tmpdir(), 'cusp-holes-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const stage = (body: string): string => `import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
export default {
  [Symbol.for('cusp.stage')]: true,
  async run(ctx) {
${body}
    return {}
  },
}
`
const files: Record<string, string> = {
  'pipeline.yaml': `schema: 1
stages:
  make:
    params: { dir: local-data }
    outputs: { out.txt: file }
  report:
    provenance: true
    deps:
      made: { stage: make, output: out.txt }
    outputs: { report.json: file }
`,
  'schemas/stages/make.params.schema.json': JSON.stringify({
    type: 'object',
    additionalProperties: false,
    properties: { dir: { type: 'string', 'x-cusp-path': 'dir' } },
  }),
  'schemas/stages/report.params.schema.json': JSON.stringify({ type: 'object', additionalProperties: false, properties: {} }),
  'stages/make/index.ts': stage(
    `    writeFileSync(join(ctx.outDir, 'out.txt'), readFileSync(join(ctx.params.dir, 'x.txt'), 'utf8') + JSON.stringify(ctx.env) + '\\n')`,
  ),
  'stages/report/index.ts': stage(
    `    writeFileSync(join(ctx.outDir, 'report.json'), JSON.stringify({ producers: ctx.inputs.made.map((i) => i.env), own: ctx.env }))`,
  ),
  'local-data/x.txt': 'one\n',
}
for (const [rel, content] of Object.entries(files)) {
  mkdirSync(dirname(join(root, rel)), { recursive: true })
  writeFileSync(join(root, rel), content)
}
const store = new LocalStore(join(root, 'artifacts'))
const lockPath = join(root, 'pipeline.lock')
let makeVersions: Record<string, string> = { engine: '1' }
const envOf = (inst: StageInstance): EnvRecord =>
  inst.stage === 'make' ? { backend: 'cpu', versions: makeVersions } : { backend: 'none', versions: {} }

async function pipeline(): Promise<ValidPipeline> {
  const r = await analyze({ file: join(root, 'pipeline.yaml'), overrides: [], reader: nodeReader(root) })
  if (!r.ok) throw new Error(JSON.stringify(r.error))
  return r.value
}
async function run(): Promise<Record<string, string | undefined>> {
  const r = await execute({ pipeline: await pipeline(), store, lockPath, jobs: 2, env: envOf })
  if (!r.ok) throw new Error(JSON.stringify(r.error))
  if (!r.value.ok) throw new Error(JSON.stringify(r.value.failures))
  return Object.fromEntries(Object.entries(r.value.outcomes).map(([k, v]) => [k, v.outcome]))
}
const lock = (): LockFile => JSON.parse(readFileSync(lockPath, 'utf8')) as LockFile
async function reportJson(): Promise<{ producers: EnvRecord[]; own: EnvRecord }> {
  const out = lock().instances.report!.outputs['report.json']!
  const dest = join(root, `read-${Date.now()}-${Math.random()}`)
  t.ok(await store.getFile(out.digest, dest))
  return JSON.parse(readFileSync(dest, 'utf8')) as { producers: EnvRecord[]; own: EnvRecord }
}

t.test('a provenance report embeds its producers env and reruns when only that env changes', async (t) => {
  t.same(await run(), { make: 'ran', report: 'ran' })
  const first = await reportJson()
  t.same(first.producers, [{ backend: 'cpu', versions: { engine: '1' } }], 'the producer env, from its fingerprint')
  t.same(first.own, { backend: 'none', versions: {} }, 'ctx.env is the env of the instance own fingerprint')
  t.same(await run(), { make: 'fresh', report: 'fresh' })

  makeVersions = { engine: '2' }
  const outcomes = await run()
  t.equal(outcomes.make, 'ran', 'env-changed reruns the producer')
  t.equal(outcomes.report, 'ran', 'the report is keyed by its producer fingerprint, so it reruns')
  t.same((await reportJson()).producers, [{ backend: 'cpu', versions: { engine: '2' } }], 'and embeds the new env')
  makeVersions = { engine: '1' }
  t.same(await run(), { make: 'restored', report: 'restored' }, 'switching back restores both')
})

t.test('a local directory named by an x-cusp-path param is fingerprinted by content', async (t) => {
  t.same(await run(), { make: 'fresh', report: 'fresh' })
  const before = lock().instances.make!.breakdown.inputs
  t.ok(typeof before['local:dir'] === 'string' && /^[0-9a-f]{64}$/.test(before['local:dir']), 'the local dir is an input of make')
  writeFileSync(join(root, 'local-data', 'x.txt'), 'two\n')
  const p = await planDetailed({ pipeline: await pipeline(), store, lockPath, env: envOf })
  if (!p.ok) throw new Error(JSON.stringify(p.error))
  const step = p.value.steps.find((s) => s.instance === 'make')
  t.equal(step?.action, 'run', 'an edited file reruns the stage that reads it')
  t.match(step?.reasons, [{ kind: 'input-changed', input: 'local:dir' }])
  t.equal((await run()).make, 'ran')
  writeFileSync(join(root, 'local-data', 'extra.txt'), 'a new file\n')
  const q = await planDetailed({ pipeline: await pipeline(), store, lockPath, env: envOf })
  t.equal(q.ok && q.value.steps.find((s) => s.instance === 'make')?.action, 'run', 'so does a file added to the directory')
})

t.test('prepare-data marks idx.dir, so its files are hashed', async (t) => {
  const data = mkdtempSync(join(tmpdir(), 'cusp-idx-'))
  t.teardown(() => rmSync(data, { recursive: true, force: true }))
  writeFileSync(join(data, 'train-images-idx3-ubyte'), 'a')
  const inst = { id: 'data', impl: 'stages/prepare-data', params: { source: 'idx', idx: { dir: data } } } as unknown as StageInstance
  const a = localInputs(REPO)(inst)
  t.same(Object.keys(a), ['local:idx.dir'])
  writeFileSync(join(data, 'train-images-idx3-ubyte'), 'b')
  t.not(localInputs(REPO)(inst)['local:idx.dir'], a['local:idx.dir'], 'new bytes, new digest')
  t.same(
    localInputs(REPO)({ ...inst, params: { source: 'idx', idx: {} } } as unknown as StageInstance),
    {},
    'the bundled default is in the code digest instead',
  )
  const gone = localInputs(REPO)({ ...inst, params: { source: 'idx', idx: { dir: join(data, 'nope') } } } as unknown as StageInstance)
  t.not(gone['local:idx.dir'], a['local:idx.dir'], 'a missing directory has its own digest')
})

t.test('markedPaths finds nested marks', async (t) => {
  const schema = {
    properties: {
      a: { type: 'string', 'x-cusp-path': 'file' },
      b: { properties: { c: { 'x-cusp-path': 'dir' }, d: { type: 'string' } } },
      e: { 'x-cusp-path': 'other' },
    },
  }
  t.same(markedPaths(schema), [
    { path: 'a', kind: 'file' },
    { path: 'b.c', kind: 'dir' },
  ])
  t.same(markedPaths(undefined), [])
})

t.test('producersEnv: one env when they agree, a combined record when not, none without engines', async (t) => {
  const wasm = { backend: 'wasm', versions: { core: '4.22.0' } }
  t.same(producersEnv({ a: [{ env: wasm }, { env: wasm }], b: [{ env: { backend: 'none', versions: {} } }, {}] }), wasm)
  t.same(producersEnv({ a: [{ env: wasm }], b: [{ env: { backend: 'cpu', versions: { core: '4.21.0', node: '20' } } }] }), {
    backend: 'cpu+wasm',
    versions: { core: '4.21.0 | 4.22.0', node: '20' },
  })
  t.same(producersEnv({}), { backend: 'none', versions: {} })
})

t.test('engineMismatch: the engine a stage got must be the one in its fingerprint', async (t) => {
  const expected = { backend: 'tensorflow', versions: { '@tensorflow/tfjs-core': '4.22.0', '@tensorflow/tfjs-node': '4.22.0' } }
  t.equal(engineMismatch(expected, { backend: 'tensorflow', versions: { 'tfjs-core': '4.22.0' } }), undefined)
  t.match(engineMismatch(expected, { backend: 'wasm' }), /backend tensorflow expected, got wasm/)
  t.match(
    engineMismatch(expected, { backend: 'tensorflow', versions: { 'tfjs-core': '4.21.0' } }),
    /@tensorflow\/tfjs-core 4\.22\.0 expected, got 4\.21\.0/,
  )
  t.equal(engineMismatch({ backend: 'none', versions: {} }, { backend: 'wasm' }), undefined, 'a stage without an engine env claims nothing')
  t.equal(engineMismatch(undefined, { backend: 'wasm' }), undefined)
})
