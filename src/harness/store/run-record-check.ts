/**
 * Structural check of a run record, shared by every store: what `putRun` refuses to publish
 * and what `getRun` refuses to return. A record read from a store is untrusted input (anyone
 * who can write a shared bucket can write one), so beyond shape: every output name is a safe
 * path component (names become paths when restored), counts, sizes and string lengths are
 * bounded, and the fingerprint must be the hash of the record's own breakdown, so a damaged
 * or forged record can never pass for another instance's cache hit. Whether the output names
 * are exactly the stage's declared outputs is the store's `RecordTrust` (record-trust.ts).
 * Also `StoreError`, the one exception stores throw (for what the interface cannot say as a miss).
 */
import { isSha256Hex } from '../canonical-json.ts'
import { computeFingerprint } from '../fingerprint.ts'
import { isSafeName } from '../safe-name.ts'
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

/** Bounds on what a store may hand back; anything larger is refused, never read whole. */
export const RECORD_LIMITS = {
  /** Bytes of one run record as stored. */
  recordBytes: 1 << 20,
  /** Outputs of one record. */
  outputs: 256,
  /** Size of one object (1 TiB). */
  objectBytes: 2 ** 40,
  /** Length of the instance, stage and finishedAt strings. */
  label: 512,
  /** Bytes of one directory listing object, and files in it. */
  listingBytes: 64 << 20,
  listingEntries: 200_000,
  /** A listing entry's path, and each of its segments. */
  pathChars: 1024,
  segmentChars: 255,
} as const

/** Why `value` is not a valid run record (for `expected`, when given), or undefined if it is. */
export function checkRunRecord(value: unknown, expected?: string): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object'
  const r = value as Partial<Record<keyof RunRecord, unknown>>
  if (r.schema !== 1) return `schema is ${JSON.stringify(r.schema)?.slice(0, 40)}, expected 1`
  if (!isSha256Hex(r.fingerprint)) return 'fingerprint is not a lowercase sha256'
  if (expected !== undefined && r.fingerprint !== expected) return `fingerprint ${r.fingerprint} is not the one asked for (${expected})`
  if (!isLabel(r.instance) || !isLabel(r.stage)) return `instance and stage must be strings of 1 to ${RECORD_LIMITS.label} characters`
  if (typeof r.durationMs !== 'number' || !Number.isFinite(r.durationMs) || r.durationMs < 0 || !isLabel(r.finishedAt)) {
    return 'durationMs must be a number >= 0 and finishedAt a string'
  }
  if (typeof r.outputs !== 'object' || r.outputs === null || Array.isArray(r.outputs)) return 'outputs must be an object'
  const names = Object.keys(r.outputs)
  if (names.length > RECORD_LIMITS.outputs) return `${names.length} outputs (at most ${RECORD_LIMITS.outputs})`
  for (const name of names) {
    if (!isSafeName(name)) return `output name ${JSON.stringify(name.slice(0, 80))} is not a safe name`
    const o: unknown = (r.outputs as Record<string, unknown>)[name]
    if (typeof o !== 'object' || o === null || Array.isArray(o)) return `output '${name}' must be an object`
    const { digest, size, kind } = o as Record<string, unknown>
    if (!isSha256Hex(digest) || !Number.isSafeInteger(size) || (size as number) < 0 || (kind !== 'file' && kind !== 'dir')) {
      return `output '${name}' must be {digest: sha256, size: integer >= 0, kind: file|dir}`
    }
    if ((size as number) > RECORD_LIMITS.objectBytes)
      return `output '${name}' claims ${String(size)} bytes (at most ${RECORD_LIMITS.objectBytes})`
  }
  if (typeof r.breakdown !== 'object' || r.breakdown === null || Array.isArray(r.breakdown)) return 'breakdown must be an object'
  if ((r.breakdown as { stage?: unknown }).stage !== r.stage) return "breakdown.stage is not the record's stage"
  let actual: string
  try {
    actual = computeFingerprint(r.breakdown as RunRecord['breakdown']).fingerprint
  } catch (e) {
    return `breakdown cannot be hashed: ${(e as Error).message.slice(0, 200)}`
  }
  if (actual !== r.fingerprint) return `fingerprint ${r.fingerprint} is not the hash of its breakdown (${actual})`
  return undefined
}

function isLabel(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= RECORD_LIMITS.label
}
