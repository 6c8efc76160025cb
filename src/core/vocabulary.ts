/**
 * The vocabulary every layer shares (harness, science, report, stages): JSON values, results as
 * values, exhaustive-switch support, the numeric-environment record, and key-sorted copies. It
 * imports nothing, so any module may import it without creating a cycle (docs/architecture.md).
 */

export type JsonPrimitive = string | number | boolean | null
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

/** Errors are values. `ok: false` carries every failure found, not only the first. */
export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E }

export const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value })
export const fail = <E>(error: E): { ok: false; error: E } => ({ ok: false, error })

/** For exhaustive switches over discriminated unions. */
export function unreachable(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`)
}

/**
 * The numeric environment that changes results: the engine backend actually used and the
 * versions of the packages doing its arithmetic (src/core/environment.ts states the contract).
 */
export interface EnvRecord {
  backend: string
  versions: Record<string, string>
}

/**
 * Deep copy of a JSON-like value with every object's keys in sorted order, so equal values
 * serialise to equal text. Arrays keep their order. A `__proto__` key stays a plain data key.
 */
export function sortKeysDeep<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v: unknown) => sortKeysDeep(v)) as T
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(record).sort()) putOwn(out, k, sortKeysDeep(record[k]))
    return out as T
  }
  return value
}

/** A shallow copy of `r` with its keys in sorted order (fingerprint breakdowns are canonical). */
export function sortedRecord<V>(r: Readonly<Record<string, V>>): Record<string, V> {
  const out: Record<string, V> = {}
  for (const k of Object.keys(r).sort()) putOwn(out, k, r[k] as V)
  return out
}

/** Sets `key` as an own enumerable data property, even when it is `__proto__`. */
function putOwn(out: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
  else out[key] = value
}
