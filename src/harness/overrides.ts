/**
 * `--set stage.param=value` overrides and the merging rules for params. A value is parsed
 * as a YAML scalar or flow collection (`--set train.eta=0.5`, `--set train.arch=cnn`,
 * `--set train.layers=[64,64]`), so it means what it would mean written in pipeline.yaml.
 * Nested params are addressed with more dots (`--set train.optim.lr=0.1`).
 */
import { isCollection, isScalar, parseDocument } from 'yaml'
import type { Failure, JsonObject, JsonValue, Result } from './types.ts'
import { fail, ok } from './types.ts'
import { jsonDataMessage, jsonDataProblem, MAX_ALIASES } from './json-data.ts'

/** One parsed `--set`: which stage, which param path inside its params, which value. */
export interface Override {
  /** The text as given, for error messages. */
  text: string
  stage: string
  path: string[]
  value: JsonValue
}

/** The longest `--set` value accepted (characters). */
const MAX_OVERRIDE_CHARS = 64 * 1024

const LHS = /^([a-z][a-z0-9-]*)((?:\.[A-Za-z0-9_-]+)+)$/

/**
 * Parse one `--set` argument. Fails with `bad-override` (saying what shape is expected)
 * when there is no `=`, the left side is not `stage.param[.sub...]`, or the value is not a
 * single YAML scalar or flow value.
 */
export function parseOverride(text: string): Result<Override, Failure> {
  const eq = text.indexOf('=')
  if (eq < 0) {
    return fail({ reason: 'bad-override', override: text, message: "expected stage.param=value (no '=' found)" })
  }
  const lhs = text.slice(0, eq).trim()
  const rhs = text.slice(eq + 1)
  const m = LHS.exec(lhs)
  if (!m) {
    return fail({
      reason: 'bad-override',
      override: text,
      message: `left side ${JSON.stringify(lhs)} must be stage.param (stage names are [a-z][a-z0-9-]*, param names [A-Za-z0-9_-]+, nested params joined with '.')`,
    })
  }
  if (rhs.trim() === '') {
    return fail({ reason: 'bad-override', override: text, message: "the value is empty; write '' for an empty string or null for null" })
  }
  if (rhs.length > MAX_OVERRIDE_CHARS) {
    return fail({
      reason: 'bad-override',
      override: `${text.slice(0, 60)}...`,
      message: `the value is ${rhs.length} characters long, more than the ${MAX_OVERRIDE_CHARS} a --set value may have`,
    })
  }
  const doc = parseDocument(rhs, { prettyErrors: false })
  const first = doc.errors[0]
  if (first !== undefined) {
    return fail({ reason: 'bad-override', override: text, message: `the value is not valid YAML: ${first.message}` })
  }
  const node = doc.contents
  if (!(isScalar(node) || (isCollection(node) && node.flow === true))) {
    return fail({
      reason: 'bad-override',
      override: text,
      message: 'the value must be a YAML scalar or flow value like 0.5, cnn, [1, 2] or {a: 1}',
    })
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES })
  } catch (e) {
    // An alias whose anchor is missing, or an alias bomb.
    return fail({
      reason: 'bad-override',
      override: text,
      message: `the value's aliases cannot be resolved: ${e instanceof Error ? e.message : String(e)}`,
    })
  }
  const notJson = jsonDataProblem(value)
  if (notJson !== undefined) {
    const where = notJson.path.length > 0 ? ` at ${notJson.path.join('.')}` : ''
    return fail({ reason: 'bad-override', override: text, message: `the value${where} is ${jsonDataMessage(notJson)}` })
  }
  return ok({ text, stage: m[1]!, path: m[2]!.slice(1).split('.'), value: value as JsonValue })
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * `over` merged into `base`, recursively for objects; any other value (lists included)
 * replaces. Returns a new object and never mutates its arguments.
 */
export function deepMerge(base: JsonObject, over: JsonObject): JsonObject {
  const out: JsonObject = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = Object.hasOwn(out, k) ? out[k] : undefined
    put(out, k, isObject(b) && isObject(v) ? deepMerge(b, v) : v)
  }
  return out
}

/** Define an own property, even for a key like `__proto__` (plain assignment would not). */
function put(obj: JsonObject, key: string, value: JsonValue): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
  else obj[key] = value
}

/** A copy of `obj` with `value` at `path`, creating intermediate objects as needed. */
export function setIn(obj: JsonObject, path: readonly string[], value: JsonValue): JsonObject {
  const [head, ...rest] = path
  if (head === undefined) return obj
  const child = Object.hasOwn(obj, head) ? obj[head] : undefined
  const out: JsonObject = { ...obj }
  put(out, head, rest.length === 0 ? value : setIn(isObject(child) ? child : {}, rest, value))
  return out
}

/** A deep copy with every object's keys sorted (one implementation: src/core/vocabulary.ts). */
export { sortKeysDeep } from '../core/vocabulary.ts'
