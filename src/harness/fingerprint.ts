/**
 * Fingerprints of stage instances, and why two of them differ. A fingerprint is the sha256 of
 * the canonical JSON of a `FingerprintBreakdown`: stage name, code digest, validated params
 * (defaults filled), input digests, upstream fingerprints and the numeric environment. Because
 * the hash is over canonical JSON, key order (hence YAML formatting) cannot change it; because
 * the breakdown is kept beside the hash (in the run record and the lock), "why did this rerun"
 * is `diffBreakdowns(old, now)`, a structured diff rather than a guess. Pure: no I/O.
 *
 * Invariant (tested): `diffBreakdowns(a, b)` is `[]` exactly when the two fingerprints are equal.
 *
 * This file owns the whole breakdown: how inputs are keyed and sorted (`resolveInputs`), the
 * provenance rule (`instanceBreakdown`), and where code and environment come from
 * (`fingerprintFunction`). The planner, the run of a plan and the tests all call these.
 */
import { sortedRecord } from '../core/vocabulary.ts'
import { canonicalJson, sha256Hex } from './canonical-json.ts'
import { sealParams } from './secret-params.ts'
import type {
  EnvRecord,
  FingerprintBreakdown,
  FingerprintResult,
  Fingerprint,
  JsonValue,
  ObjectDigest,
  RerunReason,
  StageInstance,
} from './types.ts'

/** The key under which an input appears in a fingerprint breakdown: `<as>/<instance>/<output>`. */
export function inputKey(dep: { as: string; instance: string; output: string }): string {
  return `${dep.as}/${dep.instance}/${dep.output}`
}

/** What one dependency resolved to: its output object's digest and its producer's fingerprint. */
export interface ResolvedDep {
  digest: ObjectDigest
  fingerprint: Fingerprint
}

/** An instance's inputs (by `inputKey`) and upstream fingerprints (by instance id), keys sorted. */
export interface ResolvedInputs {
  inputs: Record<string, ObjectDigest>
  upstream: Record<string, Fingerprint>
}

/**
 * The sorted inputs and upstream fingerprints of `inst`, each dep resolved with `resolve`; or the
 * upstream instance ids (sorted, unique) that `resolve` could not answer for yet.
 */
export function resolveInputs(
  inst: Pick<StageInstance, 'deps'>,
  resolve: (dep: StageInstance['deps'][number]) => ResolvedDep | undefined,
): { ok: true; value: ResolvedInputs } | { ok: false; unresolved: string[] } {
  const inputs: Record<string, ObjectDigest> = {}
  const upstream: Record<string, Fingerprint> = {}
  const unresolved = new Set<string>()
  for (const dep of inst.deps) {
    const r = resolve(dep)
    if (r === undefined) unresolved.add(dep.instance)
    else {
      inputs[inputKey(dep)] = r.digest
      upstream[dep.instance] = r.fingerprint
    }
  }
  if (unresolved.size > 0) return { ok: false, unresolved: [...unresolved].sort() }
  return { ok: true, value: { inputs: sortedRecord(inputs), upstream: sortedRecord(upstream) } }
}

/**
 * The breakdown of one instance. Upstream fingerprints are left out unless the stage records
 * them (`provenance: true`): the input digests already pin the bytes an instance reads, and
 * keying on them alone gives early cutoff (an upstream rerun that reproduces its bytes leaves its
 * consumers fresh). A stage that writes its inputs' fingerprints (or anything else about its
 * producers, such as their environment) into its outputs must have them in its own fingerprint.
 * Secret params (`inst.secrets`) enter as their sealed digests, never as their values.
 */
export function instanceBreakdown(
  inst: Pick<StageInstance, 'stage' | 'params' | 'provenance' | 'secrets'>,
  code: string,
  env: EnvRecord,
  resolved: ResolvedInputs,
): FingerprintBreakdown {
  return {
    stage: inst.stage,
    code,
    params: inst.secrets !== undefined ? sealParams(inst.params, inst.secrets) : inst.params,
    inputs: sortedRecord(resolved.inputs),
    upstream: inst.provenance ? sortedRecord(resolved.upstream) : {},
    env,
  }
}

/** Pure: an instance's fingerprint from its resolved inputs (what planner and run of a plan call). */
export type FingerprintFn = (instance: StageInstance, resolved: ResolvedInputs) => FingerprintResult

/**
 * The fingerprint function of a project: `code(impl)` is the code digest of an implementation
 * (memoised here, once per implementation), `env(instance)` its numeric environment, and
 * `local(instance)` the digests of local files its params name (local-inputs.ts), which join its
 * inputs (memoised per instance id: one plan hashes them once).
 */
export function fingerprintFunction(parts: {
  code: (impl: string) => string
  env: (instance: StageInstance) => EnvRecord
  local?: (instance: StageInstance) => Record<string, ObjectDigest>
}): FingerprintFn {
  const codes = new Map<string, string>()
  const codeOf = (impl: string): string => {
    let c = codes.get(impl)
    if (c === undefined) codes.set(impl, (c = parts.code(impl)))
    return c
  }
  const locals = new Map<string, Record<string, ObjectDigest>>()
  const localOf = (inst: StageInstance): Record<string, ObjectDigest> => {
    if (parts.local === undefined) return {}
    let l = locals.get(inst.id)
    if (l === undefined) locals.set(inst.id, (l = parts.local(inst)))
    return l
  }
  return (inst, resolved) => {
    const local = localOf(inst)
    const withLocal = Object.keys(local).length === 0 ? resolved : { ...resolved, inputs: { ...resolved.inputs, ...local } }
    return computeFingerprint(instanceBreakdown(inst, codeOf(inst.impl), parts.env(inst), withLocal))
  }
}

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
