/**
 * JSON Schema validators that survive the process: each compiled validator is written once as
 * ajv "standalone" code (a small CommonJS module) under `<repo>/.cusp/validators/ajv-<version>/`,
 * named by the sha256 of the dialect, the ajv options and the schema text, and later processes
 * `require` that file instead of loading ajv (~100 modules) and compiling the meta-schema and
 * the schema again. This is what keeps a no-op rerun's start-up cheap: ajv is loaded only on a
 * cache miss, lazily, through `createRequire`. The standalone code is ajv's own output for the
 * same options, so validation, defaults filled and error objects (with `verbose` data and
 * schemas) are identical to a freshly compiled validator. A cache that cannot be read or
 * written is skipped silently (the validator is then compiled in memory, as before); an
 * invalid schema is never cached, so its compile error is reported every time.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Options, ValidateFunction } from 'ajv'

/** The JSON Schema dialects the harness accepts: draft-07 (ajv's default) and 2020-12. */
export type Dialect = 'draft-07' | '2020-12'

/** Ajv options that change the generated code; `code.source` is added internally. */
export type ValidatorOptions = Pick<Options, 'allErrors' | 'useDefaults' | 'verbose' | 'strict' | 'addUsedSchema' | 'allowUnionTypes'>

/** Bump when the cache layout or the way code is generated changes (2: the cusp keywords below). */
const FORMAT = 2

/**
 * The project's own schema keywords, registered on every ajv (so a mark of the wrong type is a
 * schema error rather than silently ignored): `x-cusp-secret: true` marks a secret param
 * (secret-params.ts), `x-cusp-path: "file" | "dir"` a param naming a local input (local-inputs.ts).
 * They only annotate: they never change what validates.
 */
const CUSP_KEYWORDS = [
  { keyword: 'x-cusp-secret', metaSchema: { type: 'boolean' } },
  { keyword: 'x-cusp-path', metaSchema: { enum: ['file', 'dir'] } },
]
const require = createRequire(import.meta.url)
const DEFAULT_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../.cusp/validators')

interface AjvLike {
  compile(schema: object): ValidateFunction
  addKeyword(def: { keyword: string; metaSchema: object }): unknown
}
type AjvModules = {
  Ajv: new (o: Options) => AjvLike
  Ajv2020: new (o: Options) => AjvLike
  standaloneCode: (ajv: AjvLike, v: ValidateFunction) => string
}

let ajvModules: AjvModules | undefined
let ajvVersion: string | undefined
const instances = new Map<string, AjvLike>()
const memo = new Map<string, ValidateFunction>()

/**
 * The validator for `schema` (whose JSON text is `text`), from memory, else from the disk cache
 * in `dir`, else compiled with ajv and written there. Throws exactly what ajv's `compile`
 * throws for an invalid schema. The same text, dialect and options give the same function
 * object for the life of the process.
 */
export function cachedValidator(
  text: string,
  schema: object,
  dialect: Dialect,
  options: ValidatorOptions,
  dir = DEFAULT_DIR,
): ValidateFunction {
  const key = createHash('sha256')
    .update(JSON.stringify([FORMAT, dialect, options]))
    .update(text)
    .digest('hex')
  const hit = memo.get(key)
  if (hit !== undefined) return hit
  const file = join(dir, `ajv-${version()}`, `${key.slice(0, 40)}.cjs`)
  let v = load(file)
  if (v === undefined) {
    const ajv = instance(dialect, options)
    v = ajv.compile(schema)
    save(file, modules().standaloneCode(ajv, v))
  }
  memo.set(key, v)
  return v
}

/** The installed ajv's version, from its package.json (ajv itself is not loaded). */
function version(): string {
  if (ajvVersion === undefined) {
    try {
      ajvVersion = String((JSON.parse(readFileSync(require.resolve('ajv/package.json'), 'utf8')) as { version?: unknown }).version)
    } catch {
      ajvVersion = 'unknown'
    }
  }
  return ajvVersion
}

function load(file: string): ValidateFunction | undefined {
  try {
    const mod = require(file) as ValidateFunction | { default?: ValidateFunction }
    return typeof mod === 'function' ? mod : mod.default
  } catch {
    return undefined // not cached yet (or unreadable): compile instead
  }
}

function save(file: string, code: string): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(tmp, `${code}\n`)
    renameSync(tmp, file) // atomic: a concurrent reader sees the whole module or none
  } catch {
    rmSync(tmp, { force: true })
  }
}

function modules(): AjvModules {
  ajvModules ??= {
    Ajv: (require('ajv') as { Ajv: AjvModules['Ajv'] }).Ajv,
    Ajv2020: (require('ajv/dist/2020.js') as { Ajv2020: AjvModules['Ajv2020'] }).Ajv2020,
    standaloneCode: (require('ajv/dist/standalone/index.js') as { default: AjvModules['standaloneCode'] }).default,
  }
  return ajvModules
}

/** One ajv per dialect and options, so the meta-schema is compiled at most once per process. */
function instance(dialect: Dialect, options: ValidatorOptions): AjvLike {
  const key = JSON.stringify([dialect, options])
  let ajv = instances.get(key)
  if (ajv === undefined) {
    const m = modules()
    const opts: Options = { ...options, code: { source: true } }
    ajv = dialect === '2020-12' ? new m.Ajv2020(opts) : new m.Ajv(opts)
    for (const k of CUSP_KEYWORDS) ajv.addKeyword(k)
    instances.set(key, ajv)
  }
  return ajv
}
