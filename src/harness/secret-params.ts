/**
 * Secret params. A params schema marks a param `"x-cusp-secret": true` (an ajv keyword registered
 * where schemas are compiled, validator-cache.ts, so a non-boolean mark is a schema error). The
 * stage still gets the real value (in its job file, inside its work directory), but everything
 * the harness keeps or prints holds a digest in its place:
 *
 * - the fingerprint breakdown (hence pipeline.lock, run records, `why`, `log`, plan events)
 *   carries `sealed:scrypt:<hex>`, so changing a secret still changes the fingerprint and reruns;
 * - the value itself is withheld from every printed or relayed text (redact.ts `withhold`).
 *
 * The digest is scrypt (N=2^14, r=8, p=1, 32 bytes) of the value's canonical JSON with a fixed,
 * public salt: the same on every machine (so a shared store still restores an instance with a
 * secret param) and costly to guess. It is not a secret itself: a low-entropy secret (a short
 * password) can still be guessed offline by whoever reads a lock or a record (docs/threat-model.md).
 */
import { scryptSync } from 'node:crypto'
import type { DescribedError } from './ajv-errors.ts'
import { canonicalJson } from './canonical-json.ts'
import { hasUrlCredentials } from './redact.ts'
import type { JsonObject, JsonValue, StageInstance } from './types.ts'

/** The schema keyword that marks a secret param. */
export const SECRET_KEYWORD = 'x-cusp-secret'
/** What a sealed value starts with in a breakdown. */
export const SEALED_PREFIX = 'sealed:scrypt:'
const SALT = 'cusp x-cusp-secret v1'

/** Dotted param paths marked `x-cusp-secret: true` in a params schema (object `properties`, recursively). */
export function secretPaths(schema: unknown, prefix = ''): string[] {
  if (typeof schema !== 'object' || schema === null) return []
  const props = (schema as { properties?: unknown }).properties
  if (typeof props !== 'object' || props === null) return []
  const out: string[] = []
  for (const [key, sub] of Object.entries(props as Record<string, unknown>)) {
    const path = prefix === '' ? key : `${prefix}.${key}`
    if (typeof sub === 'object' && sub !== null && (sub as Record<string, unknown>)[SECRET_KEYWORD] === true) out.push(path)
    else out.push(...secretPaths(sub, path))
  }
  return out
}

const digests = new Map<string, string>()

/** The sealed form of a secret value (memoised: one scrypt per distinct value and process). */
export function sealValue(value: JsonValue): string {
  const text = canonicalJson(value)
  let d = digests.get(text)
  if (d === undefined) {
    d = `${SEALED_PREFIX}${scryptSync(text, SALT, 32, { N: 1 << 14, r: 8, p: 1 }).toString('hex')}`
    digests.set(text, d)
  }
  return d
}

/** `params` with the value at each secret path (where present) replaced by its sealed form; a copy. */
export function sealParams(params: JsonObject, paths: readonly string[]): JsonObject {
  if (paths.length === 0) return params
  const out = structuredClone(params)
  for (const path of paths) {
    const keys = path.split('.')
    let node: JsonValue | undefined = out
    for (const k of keys.slice(0, -1)) node = isObject(node) && Object.hasOwn(node, k) ? node[k] : undefined
    const last = keys[keys.length - 1]!
    if (isObject(node) && Object.hasOwn(node, last)) node[last] = sealValue(node[last]!)
  }
  return out
}

/** The texts of the secret values in `params` (strings as they are, other values as JSON), for redaction. */
export function secretValues(params: JsonObject, paths: readonly string[]): string[] {
  const out: string[] = []
  for (const path of paths) {
    let v: JsonValue | undefined = params
    for (const k of path.split('.')) v = isObject(v) && Object.hasOwn(v, k) ? v[k] : undefined
    if (v === undefined || v === null) continue
    out.push(typeof v === 'string' ? v : JSON.stringify(v))
  }
  return out
}

/**
 * One params error per string value in `params`, outside every secret path, that holds a URL with
 * credentials. Such a value would reach the fingerprint breakdown, hence the lock and the run
 * records, in clear, so the analyzer refuses it: the user marks the param secret or passes the
 * credentials through the environment.
 */
export function plainCredentialErrors(params: JsonObject, secrets: readonly string[]): DescribedError[] {
  const out: string[][] = []
  const walk = (v: JsonValue, path: string[]): void => {
    if (secrets.includes(path.join('.'))) return
    if (typeof v === 'string') {
      if (hasUrlCredentials(v)) out.push(path)
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, String(i)]))
    else if (isObject(v)) for (const [k, x] of Object.entries(v)) walk(x, [...path, k])
  }
  walk(params, [])
  return out.map((path) => ({ path, at: 'value', problem: PROBLEM, hint: HINT }))
}

/**
 * The secret params (`stage.path`) that `--set` overrides set, in whole or in part (a value that
 * is a secret, lies inside one or holds one): each would be copied into the command line of an
 * out-of-process run or into an exported workflow, so those refuse them (executors/select.ts).
 */
export function secretOverrides(instances: Iterable<Pick<StageInstance, 'stage' | 'secrets'>>, overrides: readonly string[]): string[] {
  const byStage = new Map<string, Set<string>>()
  for (const inst of instances) for (const s of inst.secrets ?? []) byStage.set(inst.stage, (byStage.get(inst.stage) ?? new Set()).add(s))
  const out = new Set<string>()
  for (const text of overrides) {
    // The left side `stage.param[.sub...]` (overrides.ts has validated it by now); the value is never read.
    const eq = text.indexOf('=')
    const [stage = '', ...keys] = (eq < 0 ? text : text.slice(0, eq)).trim().split('.')
    const path = keys.join('.')
    for (const s of byStage.get(stage) ?? [])
      if (s === path || s.startsWith(`${path}.`) || path.startsWith(`${s}.`)) out.add(`${stage}.${s}`)
  }
  return [...out].sort()
}

const PROBLEM =
  'holds a URL with credentials (user:password@); mark the param "x-cusp-secret": true in its params schema or pass the credentials through the environment'
const HINT = 'Otherwise they would be stored in clear in pipeline.lock and the run records'

function isObject(v: JsonValue | undefined): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
