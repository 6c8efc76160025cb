/**
 * Matrix expansion: a stage's `matrix:` (axis -> list of scalar values) becomes the
 * cartesian product of its axes, minus the combinations that `exclude:` names, and each
 * combination gets a readable, stable instance id `stage@k1=v1,k2=v2` (axes in declared
 * order). Ids name directories, so values must render to safe path components; this module
 * says which values are acceptable and why, the analyzer decides where to report it.
 */
import type { JsonObject, JsonPrimitive, JsonValue } from './types.ts'

/** One matrix axis after validation: its name and its (non-empty, scalar) values. */
export interface Axis {
  name: string
  values: JsonPrimitive[]
}

/** A matrix value as it appears in an instance id: plain YAML scalar text. */
export function renderValue(v: JsonPrimitive): string {
  return v === null ? 'null' : String(v)
}

/**
 * Why `v` cannot be a matrix value, or undefined when it can. Values must be strings,
 * finite numbers or booleans whose rendering is a safe path component (ids name dirs).
 */
export function badMatrixValue(v: JsonValue): string | undefined {
  if (v === null) return 'is null; matrix values must be strings, numbers or booleans'
  if (Array.isArray(v)) return 'is a list; matrix values must be scalars (strings, numbers or booleans)'
  if (typeof v === 'object') return 'is a mapping; matrix values must be scalars (strings, numbers or booleans)'
  if (typeof v === 'number' && !Number.isFinite(v)) return 'is not a finite number'
  const text = renderValue(v)
  if (!/^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$/.test(text) || text.includes('..') || text.length > 64) {
    return `renders as ${JSON.stringify(text)}, which cannot appear in an instance id (ids name directories): use letters, digits, '.', '_', '+', '-' (at most 64, not starting with '.', no '..')`
  }
  return undefined
}

/** Instance id: the stage name alone, or `stage@k1=v1,k2=v2` in the axes' declared order. */
export function instanceId(stage: string, axes: readonly Axis[], combo: JsonObject): string {
  if (axes.length === 0) return stage
  const parts = axes.map((a) => `${a.name}=${renderValue(combo[a.name] as JsonPrimitive)}`)
  return `${stage}@${parts.join(',')}`
}

/** True when every key of `filter` is in `values` with an equal value. */
export function matchesAll(values: JsonObject, filter: JsonObject): boolean {
  for (const [k, v] of Object.entries(filter)) {
    if (!Object.hasOwn(values, k) || !jsonEqual(values[k]!, v)) return false
  }
  return true
}

/**
 * The cartesian product of `axes` (first axis varies slowest), without combinations that
 * match any entry of `exclude`. No axes gives one empty combination (a plain stage).
 */
export function expandMatrix(axes: readonly Axis[], exclude: readonly JsonObject[]): JsonObject[] {
  let combos: JsonObject[] = [{}]
  for (const axis of axes) {
    const next: JsonObject[] = []
    for (const c of combos) for (const v of axis.values) next.push({ ...c, [axis.name]: v })
    combos = next
  }
  return combos.filter((c) => !exclude.some((e) => matchesAll(c, e)))
}

/** Structural equality of JSON values (object key order does not matter). */
export function jsonEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((x, i) => jsonEqual(x, b[i]!))
  }
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k]!, b[k]!))
}
