/**
 * Fingerprints of stage instances, and why two of them differ. A fingerprint is the sha256 of
 * the canonical JSON of a `FingerprintBreakdown`: stage name, code digest, validated params
 * (defaults filled), input digests, upstream fingerprints and the numeric environment. Because
 * the hash is over canonical JSON, key order (hence YAML formatting) cannot change it; because
 * the breakdown is kept beside the hash (in the run record and the lock), "why did this rerun"
 * is `diffBreakdowns(old, now)`, a structured diff rather than a guess. Pure: no I/O.
 *
 * Invariant (tested): `diffBreakdowns(a, b)` is `[]` exactly when the two fingerprints are equal.
 */
import { canonicalJson, sha256Hex } from './canonical-json.ts'
import type {
  FingerprintBreakdown,
  FingerprintResult,
  Fingerprint,
  JsonValue,
  RerunReason,
} from './types.ts'

/**
 * The fingerprint of one stage instance: sha256 over the canonical JSON of `breakdown`.
 * Throws `CanonicalJsonError` if the breakdown holds a non-JSON value (NaN, undefined, ...),
 * which validated params never do.
 */
export function computeFingerprint(breakdown: FingerprintBreakdown): FingerprintResult {
  return { fingerprint: sha256Hex(canonicalJson(breakdown)) as Fingerprint, breakdown }
}

/**
 * Every reason the fingerprint of `now` differs from that of `old` (the lock's breakdown), in
 * breakdown order: code, params (one per changed leaf, dotted key for nested objects; arrays
 * compare whole), inputs (one per changed, added or removed input), upstream (one per changed,
 * added or removed upstream instance), env. `old === undefined` gives `[no-lock-entry]`, and so
 * does an entry recorded for a different stage name (it is not this stage's entry).
 */
export function diffBreakdowns(old: FingerprintBreakdown | undefined, now: FingerprintBreakdown): RerunReason[] {
  if (old === undefined || old.stage !== now.stage) return [{ kind: 'no-lock-entry' }]
  const reasons: RerunReason[] = []
  if (old.code !== now.code) reasons.push({ kind: 'code-changed', old: old.code, new: now.code })
  diffParams(old.params, now.params, '', reasons)
  for (const key of unionKeys(old.inputs, now.inputs)) {
    const a = own(old.inputs, key)
    const b = own(now.inputs, key)
    if (a !== b) reasons.push({ kind: 'input-changed', input: key, old: a, new: b })
  }
  for (const key of unionKeys(old.upstream, now.upstream)) {
    if (own(old.upstream, key) !== own(now.upstream, key)) reasons.push({ kind: 'upstream-changed', upstream: key })
  }
  if (canonicalJson(old.env) !== canonicalJson(now.env)) reasons.push({ kind: 'env-changed', old: old.env, new: now.env })
  return reasons
}

/** One `param-changed` per differing leaf; recurses only where both sides are plain objects. */
function diffParams(a: JsonValue | undefined, b: JsonValue | undefined, prefix: string, out: RerunReason[]): void {
  if (isObject(a) && isObject(b)) {
    for (const key of unionKeys(a, b)) {
      diffParams(own(a, key), own(b, key), prefix === '' ? key : `${prefix}.${key}`, out)
    }
    return
  }
  const same = a === undefined || b === undefined ? a === b : canonicalJson(a) === canonicalJson(b)
  if (!same) out.push({ kind: 'param-changed', key: prefix, old: a, new: b })
}

function isObject(v: JsonValue | undefined): v is { [key: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function unionKeys(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()
}

/** Own-property lookup, so a key like `constructor` or `__proto__` is data, never the prototype. */
function own<V>(record: Record<string, V>, key: string): V | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined
}

