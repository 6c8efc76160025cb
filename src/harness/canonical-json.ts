/**
 * Canonical JSON: the one byte representation of a JSON value that every hash in the harness
 * is taken over. Object keys are sorted recursively (by UTF-16 code unit, as
 * `Array.prototype.sort` does), there is no whitespace, strings and numbers are printed exactly
 * as `JSON.stringify` prints them (so `1.0` and `1` are the same value, `-0` prints as `0`).
 * Values JSON cannot represent faithfully (NaN, Infinity, undefined, functions, symbols,
 * bigints, class instances such as Date or Map, sparse arrays) are rejected rather than
 * silently dropped or coerced: a fingerprint over a value that lost information would be a lie.
 */
import { createHash } from 'node:crypto'

/** Thrown for a value that has no canonical JSON form; `path` locates it (`$.params.eta`). */
export class CanonicalJsonError extends TypeError {
  constructor(
    readonly path: string,
    what: string,
  ) {
    super(`canonical JSON: ${what} at ${path}`)
    this.name = 'CanonicalJsonError'
  }
}

/**
 * The canonical JSON text of `value`. Throws `CanonicalJsonError` for values with no JSON form
 * (a programming error: params are schema-validated before they are fingerprinted).
 */
export function canonicalJson(value: unknown): string {
  const fast = writeFast(value)
  // undefined: something has no JSON form; the slow walk finds it and throws with its path.
  return fast ?? write(value, '$')
}

/**
 * `write` without building a path for every value (most of the cost on a lock of a few hundred
 * entries, which every run reads and hashes); undefined where `write` would throw.
 */
function writeFast(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value)
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : undefined
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) {
        let out = '['
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) return undefined
          const v = writeFast(value[i])
          if (v === undefined) return undefined
          out += i === 0 ? v : `,${v}`
        }
        return `${out}]`
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return undefined
      const record = value as Record<string, unknown>
      const keys = Object.keys(record).sort()
      let out = '{'
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!
        const v = writeFast(record[k])
        if (v === undefined) return undefined
        out += `${i === 0 ? '' : ','}${JSON.stringify(k)}:${v}`
      }
      return `${out}}`
    }
    default:
      return undefined
  }
}

function write(value: unknown, path: string): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value)
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(path, `non-finite number ${String(value)}`)
      return JSON.stringify(value)
    case 'object': {
      if (value === null) return 'null'
      if (Array.isArray(value)) {
        const parts: string[] = []
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) throw new CanonicalJsonError(`${path}[${i}]`, 'hole in sparse array')
          parts.push(write(value[i], `${path}[${i}]`))
        }
        return `[${parts.join(',')}]`
      }
      const proto: unknown = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalJsonError(path, `non-plain object (${describe(value)})`)
      }
      const record = value as Record<string, unknown>
      const keys = Object.keys(record).sort()
      const parts = keys.map((k) => `${JSON.stringify(k)}:${write(record[k], `${path}.${k}`)}`)
      return `{${parts.join(',')}}`
    }
    default:
      throw new CanonicalJsonError(path, `${typeof value} is not JSON`)
  }
}

function describe(value: object): string {
  const ctor = (value as { constructor?: { name?: unknown } }).constructor
  return typeof ctor?.name === 'string' ? ctor.name : 'unknown class'
}

/** Lowercase hex sha256 of a string (as UTF-8) or of bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** True for a lowercase 64-hex-digit sha256, the only digest spelling the harness accepts. */
export function isSha256Hex(s: unknown): s is string {
  return typeof s === 'string' && /^[0-9a-f]{64}$/.test(s)
}

/** Deep copy with object keys sorted (one implementation: src/core/vocabulary.ts). */
export { sortKeysDeep } from '../core/vocabulary.ts'
