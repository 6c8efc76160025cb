/**
 * What a parsed YAML value may be to count as pipeline data: JSON data only. YAML can express
 * more than JSON (`!!binary` gives bytes, `!!timestamp` a Date, `!!set` a Set, `.inf` and `1e400`
 * an infinite number, `.nan` NaN) and none of it has a canonical JSON form, so such a value would
 * otherwise reach the fingerprint (or a stage) and fail there as an internal error. Both
 * pipeline.yaml and `--set` values pass through `jsonDataProblem` right after parsing, and the
 * offending path is reported as an input error. The limits on size and aliases keep a hostile
 * file from costing unbounded memory or error output.
 */
import type { PathSegment } from './source-location.ts'

/** The largest pipeline file read (bytes); a bigger or non-regular file is refused unread. */
export const MAX_PIPELINE_BYTES = 4 * 1024 * 1024

/** The most YAML aliases resolved in one document (an alias bomb fails at this count). */
export const MAX_ALIASES = 1000

/** The most failures reported for one analysis; the rest are counted in one more line. */
export const MAX_REPORTED_FAILURES = 50

/** The most nested levels a value may have. */
const MAX_DEPTH = 64

/** The first part of `value` that is not JSON data: where it is, and what it is. */
export interface JsonDataProblem {
  path: PathSegment[]
  what: string
}

/** undefined when `value` is JSON data (null, booleans, finite numbers, strings, arrays, plain objects). */
export function jsonDataProblem(value: unknown, path: PathSegment[] = [], depth = 0): JsonDataProblem | undefined {
  if (depth > MAX_DEPTH) return { path, what: `nested more than ${MAX_DEPTH} levels deep` }
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined
    case 'number':
      if (Number.isFinite(value)) return undefined
      return {
        path,
        what: Number.isNaN(value)
          ? 'NaN (not a finite number)'
          : 'an infinite number (.inf, or a literal too large for a 64-bit float such as 1e400)',
      }
    case 'bigint':
      return { path, what: 'a big integer' }
    case 'object': {
      if (value === null) return undefined
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const p = jsonDataProblem(value[i], [...path, i], depth + 1)
          if (p !== undefined) return p
        }
        return undefined
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return { path, what: describeNonJson(value) }
      for (const [k, v] of Object.entries(value)) {
        const p = jsonDataProblem(v, [...path, k], depth + 1)
        if (p !== undefined) return p
      }
      return undefined
    }
    default:
      return { path, what: `a ${typeof value}` }
  }
}

function describeNonJson(value: object): string {
  if (value instanceof Uint8Array) return 'binary data (a !!binary tag)'
  if (value instanceof Date) return 'a timestamp (a !!timestamp tag; quote the date to make it a string)'
  if (value instanceof Set) return 'a set (a !!set tag)'
  if (value instanceof Map) return 'an ordered map or a mapping with non-string keys (!!omap, !!pairs or a complex key)'
  return `a ${value.constructor?.name ?? 'non-plain'} object`
}

/** The phrase every non-JSON value is reported with, after "the value is". */
export function jsonDataMessage(p: JsonDataProblem): string {
  return `${p.what}, which is not JSON data (pipeline values are null, booleans, finite numbers, strings, lists or mappings)`
}
