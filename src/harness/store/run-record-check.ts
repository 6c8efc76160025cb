/**
 * Structural check of a run record, shared by every store: what `putRun` refuses to publish
 * and what `getRun` refuses to return. Beyond shape, the record's fingerprint must be the hash
 * of its own breakdown, so a damaged or forged record can never pass for a cache hit. Also
 * `StoreError`, the one exception stores throw (for what the interface cannot say as a miss).
 */
import { isSha256Hex } from '../canonical-json.ts'
import { computeFingerprint } from '../fingerprint.ts'
import type { Failure, RunRecord } from '../types.ts'

/** Thrown by a store for a refused write or an I/O failure; `failure` is ready for the CLI. */
export class StoreError extends Error {
  readonly failure: Failure
  constructor(message: string) {
    super(message)
    this.name = 'StoreError'
    this.failure = { reason: 'store-error', message }
  }
}

/** Why `value` is not a valid run record (for `expected`, when given), or undefined if it is. */
export function checkRunRecord(value: unknown, expected?: string): string | undefined {
  if (typeof value !== 'object' || value === null) return 'not an object'
  const r = value as Partial<Record<keyof RunRecord, unknown>>
  if (r.schema !== 1) return `schema is ${JSON.stringify(r.schema)}, expected 1`
  if (!isSha256Hex(r.fingerprint)) return 'fingerprint is not a lowercase sha256'
  if (expected !== undefined && r.fingerprint !== expected) return `fingerprint ${r.fingerprint} is not the one asked for (${expected})`
  if (typeof r.instance !== 'string' || typeof r.stage !== 'string') return 'instance and stage must be strings'
  if (typeof r.durationMs !== 'number' || !Number.isFinite(r.durationMs) || typeof r.finishedAt !== 'string') {
    return 'durationMs must be a number and finishedAt a string'
  }
  if (typeof r.outputs !== 'object' || r.outputs === null || Array.isArray(r.outputs)) return 'outputs must be an object'
  for (const [name, o] of Object.entries(r.outputs as Record<string, unknown>)) {
    const { digest, size, kind } = (o ?? {}) as Record<string, unknown>
    if (!isSha256Hex(digest) || !Number.isSafeInteger(size) || (size as number) < 0 || (kind !== 'file' && kind !== 'dir')) {
      return `output '${name}' must be {digest: sha256, size: integer >= 0, kind: file|dir}`
    }
  }
  if (typeof r.breakdown !== 'object' || r.breakdown === null) return 'breakdown must be an object'
  let actual: string
  try {
    actual = computeFingerprint(r.breakdown as RunRecord['breakdown']).fingerprint
  } catch (e) {
    return `breakdown cannot be hashed: ${(e as Error).message}`
  }
  if (actual !== r.fingerprint) return `fingerprint ${r.fingerprint} is not the hash of its breakdown (${actual})`
  return undefined
}
