/**
 * The planner: pure and synchronous. From the validated graph, a fingerprint function, the
 * lock and a snapshot of the store's index it decides, per instance in topological order,
 * whether the instance is `fresh` (the lock's fingerprint is the current one and every
 * output object is in the store), `restore` (the lock differs but the store holds a complete
 * run record for the current fingerprint, e.g. after switching a param back) or `run`, each
 * with typed reasons. An instance's fingerprint needs its input digests, which are known only
 * when every upstream instance is fresh or restorable; below an upstream that must run the
 * plan is tentative (`upstream-changed`, or `no-lock-entry` when the lock has never seen the
 * instance) and the executor decides again, with `decide`, once
 * the upstream has produced its outputs (early cutoff: identical bytes give an identical
 * fingerprint). The store index is a snapshot of lookups; a lookup it lacks is reported in
 * `missing` so an async driver can fetch it and plan again, which keeps this module free of I/O
 * and cheap (no hashing, no processes).
 *
 * Every run / restore / repair decision lives here as a pure function, for the plan and for the
 * run of a plan alike (plan-run.ts asks again after an upstream ran, after a restore found
 * corrupt objects, and after an input could not be read): `decide`, `nextAction`,
 * `actsAsPlanned`, `forcedInstances`, and the attempt limits.
 */
import { diffBreakdowns, resolveInputs, type FingerprintFn } from './fingerprint.ts'
import {
  fail,
  ok,
  type Failure,
  type Fingerprint,
  type FingerprintResult,
  type LockEntry,
  type LockFile,
  type ObjectDigest,
  type PlanAction,
  type PlanStep,
  type RerunReason,
  type Result,
  type RunRecord,
  type StageInstance,
  type StoredOutput,
  type ValidPipeline,
} from './types.ts'

/** Every run also stores the stage's returned result object under this output name. */
export const RESULT_OUTPUT = 'result.json'

/**
 * What the planner knows about the store. A key that is absent from a map has not been looked
 * up (it lands in `PlanOutput.missing`) unless `complete` is set, in which case absent means
 * "not in the store" (convenient for literal graphs in tests).
 */
export interface StoreIndex {
  runs: ReadonlyMap<Fingerprint, RunRecord | null>
  objects: ReadonlyMap<ObjectDigest, boolean>
  complete?: boolean
}

export { inputKey, type FingerprintFn } from './fingerprint.ts'

export interface PlanInput {
  pipeline: ValidPipeline
  fingerprint: FingerprintFn
  lock: LockFile | undefined
  index: StoreIndex
  /** Instance ids to bring up to date, with their stale ancestry; empty or absent = all. */
  targets?: readonly string[]
  /** Also bring every dependent of the targets up to date. */
  downstream?: boolean
  /** Rerun the targets (every instance when there are no targets) whatever their state. */
  force?: boolean
}

/** What the planner learnt about an instance whose fingerprint it could compute. */
export interface KnownInstance {
  fingerprint: FingerprintResult
  /** Outputs when the action is fresh or restore (what downstream inputs resolve to). */
  outputs?: Record<string, StoredOutput>
  /** The run record a restore comes from. */
  record?: RunRecord
}

export interface PlanOutput {
  /** The selected instances in execution (topological) order. */
  steps: PlanStep[]
  /** Instance id -> fingerprint and outputs, for instances not below an upstream that must run. */
  known: Map<string, KnownInstance>
  /** Lookups the index lacked; the plan is final only when both lists are empty. */
  missing: { runs: Fingerprint[]; objects: ObjectDigest[] }
}

/** Names every completed run of `instance` must have stored: its declared outputs plus the result. */
export function requiredOutputs(instance: StageInstance): string[] {
  return [...instance.outputs.map((o) => o.name), RESULT_OUTPUT]
}

/**
 * The instances a run touches: the targets (plus, with `downstream`, their dependents) and the
 * whole ancestry of those. Unknown ids are `unknown-target` failures.
 */
export function selectInstances(
  pipeline: ValidPipeline,
  targets: readonly string[] | undefined,
  downstream: boolean,
): Result<Set<string>, Failure[]> {
  if (targets === undefined || targets.length === 0) return ok(new Set(pipeline.order))
  const unknown = targets.filter((t) => !pipeline.instances.has(t))
  if (unknown.length > 0) {
    const known = [...pipeline.order]
    return fail(unknown.map((target): Failure => ({ reason: 'unknown-target', target, known })))
  }
  const base = new Set(targets)
  if (downstream) {
    // Dependents: one pass in topological order suffices, deps come first.
    for (const id of pipeline.order) {
      const inst = pipeline.instances.get(id)
      if (inst?.deps.some((d) => base.has(d.instance))) base.add(id)
    }
  }
  const chosen = new Set<string>()
  const stack = [...base]
  while (stack.length > 0) {
    const id = stack.pop() as string
    if (chosen.has(id)) continue
    chosen.add(id)
    for (const d of pipeline.instances.get(id)?.deps ?? []) stack.push(d.instance)
  }
  return ok(chosen)
}

/** Records lookups the index does not have, so the caller can fetch them and plan again. */
class Lookups {
  readonly runs = new Set<Fingerprint>()
  readonly objects = new Set<ObjectDigest>()
  constructor(private readonly index: StoreIndex) {}

  /** The run record, null when absent, undefined when not yet looked up. */
  run(fp: Fingerprint): RunRecord | null | undefined {
    const r = this.index.runs.get(fp)
    if (r !== undefined) return r
    if (this.index.complete) return null
    this.runs.add(fp)
    return undefined
  }
  /** Whether the object is present; undefined when not yet looked up. */
  object(d: ObjectDigest): boolean | undefined {
    const r = this.index.objects.get(d)
    if (r !== undefined) return r
    if (this.index.complete) return false
    this.objects.add(d)
    return undefined
  }
}

/** The result of deciding one instance. `outputs` is set for fresh and restore. */
export interface Decision {
  action: PlanAction
  reasons: RerunReason[]
  outputs?: Record<string, StoredOutput>
  record?: RunRecord
  /** True when a lookup was missing, so the decision is provisional. */
  incomplete?: boolean
}

/**
 * Decides one instance whose fingerprint is known. Pure; used by `planPipeline` and by the
 * executor when it re-plans an instance after its upstream ran.
 */
export function decide(
  instance: StageInstance,
  current: FingerprintResult,
  entry: LockEntry | undefined,
  index: StoreIndex,
  forced: boolean,
): Decision {
  return decideWith(instance, current, entry, new Lookups(index), forced)
}

function decideWith(
  instance: StageInstance,
  current: FingerprintResult,
  entry: LockEntry | undefined,
  look: Lookups,
  forced: boolean,
): Decision {
  if (forced) return { action: 'run', reasons: [{ kind: 'forced' }] }
  const names = requiredOutputs(instance)
  let incomplete = false
  /** Output names whose objects are absent (undefined entries count as absent). */
  const absent = (outputs: Record<string, StoredOutput>): string[] =>
    names.filter((name) => {
      const out = outputs[name]
      if (out === undefined) return true
      const has = look.object(out.digest)
      if (has === undefined) incomplete = true
      return has === false
    })
  const restorable = (): RunRecord | undefined => {
    const rec = look.run(current.fingerprint)
    if (rec === undefined) incomplete = true
    // A record is restorable only with exactly the declared outputs (whatever the store checked).
    const exact = (o: Record<string, StoredOutput>) => Object.keys(o).length === names.length && names.every((n) => Object.hasOwn(o, n))
    if (!rec || !exact(rec.outputs)) return undefined
    return absent(rec.outputs).length === 0 ? rec : undefined
  }

  if (entry !== undefined && entry.fingerprint === current.fingerprint) {
    const gone = absent(entry.outputs)
    if (gone.length === 0 && !incomplete) return { action: 'fresh', reasons: [], outputs: entry.outputs }
    const missingReasons = gone.map((output): RerunReason => ({ kind: 'output-missing', output }))
    const rec = restorable()
    if (rec !== undefined && !incomplete) {
      return { action: 'restore', reasons: missingReasons, outputs: rec.outputs, record: rec }
    }
    return { action: 'run', reasons: missingReasons, ...(incomplete ? { incomplete } : {}) }
  }

  const why = diffBreakdowns(entry?.breakdown, current.breakdown)
  const rec = restorable()
  if (rec !== undefined && !incomplete) return { action: 'restore', reasons: why, outputs: rec.outputs, record: rec }
  return { action: 'run', reasons: why, ...(incomplete ? { incomplete } : {}) }
}

/**
 * Plans the selected instances in topological order. Returns `unknown-target` failures for
 * targets that are not instance ids (resolve stage names first, e.g. with targets.ts).
 */
export function planPipeline(input: PlanInput): Result<PlanOutput, Failure[]> {
  const { pipeline } = input
  const selected = selectInstances(pipeline, input.targets, input.downstream ?? false)
  if (!selected.ok) return selected
  const forcedSet = forcedInstances(pipeline, input.targets, input.force ?? false)
  const look = new Lookups(input.index)
  const steps: PlanStep[] = []
  const known = new Map<string, KnownInstance>()
  /** Instances whose outputs will only be known after they run. */
  const pending = new Set<string>()

  for (const id of pipeline.order) {
    if (!selected.value.has(id)) continue
    const inst = pipeline.instances.get(id)
    if (inst === undefined) continue
    const forced = forcedSet.has(id)
    const resolved = resolveInputs(inst, (dep) => {
      const up = pending.has(dep.instance) ? undefined : known.get(dep.instance)
      const out = up?.outputs?.[dep.output]
      return up === undefined || out === undefined ? undefined : { digest: out.digest, fingerprint: up.fingerprint.fingerprint }
    })
    if (!resolved.ok) {
      const reasons: RerunReason[] = forced ? [{ kind: 'forced' }] : []
      // Never run: that is the reason, not the upstreams (which have never run either, or changed).
      const entry = input.lock?.instances[id]
      if (entry === undefined || entry.stage !== inst.stage) reasons.push({ kind: 'no-lock-entry' })
      else for (const u of resolved.unresolved) reasons.push({ kind: 'upstream-changed', upstream: u })
      steps.push({ instance: id, action: 'run', reasons })
      pending.add(id)
      continue
    }
    const fp = input.fingerprint(inst, resolved.value)
    const d = decideWith(inst, fp, input.lock?.instances[id], look, forced)
    steps.push({ instance: id, action: d.action, reasons: d.reasons })
    const k: KnownInstance = { fingerprint: fp }
    if (d.outputs !== undefined) k.outputs = d.outputs
    if (d.record !== undefined) k.record = d.record
    known.set(id, k)
    if (d.action === 'run') pending.add(id)
  }
  return ok({ steps, known, missing: { runs: [...look.runs], objects: [...look.objects] } })
}

// ---------------------------------------------------------------------------------------
// Decisions while a plan runs (plan-run.ts asks; it does not decide on its own)

/** The instances `--force` reruns: the targets, or every instance when there are none. */
export function forcedInstances(
  pipeline: Pick<ValidPipeline, 'order'>,
  targets: readonly string[] | undefined,
  force: boolean,
): Set<string> {
  if (!force) return new Set()
  return new Set(targets !== undefined && targets.length > 0 ? targets : pipeline.order)
}

/** How many times one instance may find an input unreadable (each time its producer is repaired) before giving up. */
export const SETTLE_ATTEMPTS = 4
/** How many times a repair (a producer rerun for a lost output) may itself find an input unreadable. */
export const REPAIR_ATTEMPTS = 3

/**
 * True when a step the plan decided on final information (`fresh`, with known outputs) can be
 * acted on as planned: every input resolves now to the digest the plan computed the fingerprint
 * with. False when an upstream's outputs turned out different (a restore that had to run instead).
 */
export function actsAsPlanned(
  instance: Pick<StageInstance, 'deps'>,
  step: PlanStep | undefined,
  planned: ReadonlyMap<string, KnownInstance>,
  currentOutputs: (instance: string) => Record<string, StoredOutput> | undefined,
): boolean {
  if (step?.action !== 'fresh' || planned.get(step.instance)?.outputs === undefined) return false
  return instance.deps.every((d) => {
    const now = currentOutputs(d.instance)?.[d.output]?.digest
    return now !== undefined && now === planned.get(d.instance)?.outputs?.[d.output]?.digest
  })
}

/** What happened to the previous attempt at an instance, as far as the next decision cares. */
export type PreviousAttempt = { kind: 'restore-corrupt'; outputs: string[] } | { kind: 'input-missing'; producer: string; output: string }

/** The next thing to do with an instance whose fingerprint is known. */
export type NextAction =
  | { kind: 'fresh'; outputs: Record<string, StoredOutput> }
  | { kind: 'restore'; record: RunRecord }
  | { kind: 'run'; reasons: RerunReason[] }
  | { kind: 'repair'; producer: string; output: string }
  | { kind: 'give-up'; message: string }

export interface NextActionInput {
  instance: StageInstance
  fingerprint: FingerprintResult
  /** The instance's lock entry as planned. */
  entry: LockEntry | undefined
  /** Fresh lookups for this fingerprint and the entry's objects (consulted only when deciding anew). */
  index: StoreIndex
  forced: boolean
  /** `settle`: bring the instance up to date; `repair`: rerun it because an output of it was lost. */
  mode: 'settle' | 'repair'
  /** Inputs found unreadable so far in this settling (each led to a repair). */
  missingSoFar: number
  previous?: PreviousAttempt
}

/**
 * Pure: the next action for one instance while a plan runs. A repair always runs (its stored
 * output is what was lost). After a restore found corrupt objects, run (the store has discarded
 * them). After an input could not be read, repair its producer, up to the attempt limit
 * (SETTLE_ATTEMPTS, REPAIR_ATTEMPTS), then give up. Otherwise decide anew with `decide`, so an
 * instance below an upstream that ran is fresh or restored when the upstream's bytes allow it.
 */
export function nextAction(a: NextActionInput): NextAction {
  const limit = a.mode === 'repair' ? REPAIR_ATTEMPTS : SETTLE_ATTEMPTS
  if (a.previous?.kind === 'input-missing') {
    if (a.missingSoFar >= limit) return { kind: 'give-up', message: `${a.instance.id}: its inputs kept disappearing from the store` }
    return { kind: 'repair', producer: a.previous.producer, output: a.previous.output }
  }
  if (a.previous?.kind === 'restore-corrupt') {
    return { kind: 'run', reasons: a.previous.outputs.map((output): RerunReason => ({ kind: 'output-missing', output })) }
  }
  if (a.mode === 'repair') return { kind: 'run', reasons: [] }
  const d = decide(a.instance, a.fingerprint, a.entry, a.index, a.forced)
  if (d.action === 'fresh' && d.outputs !== undefined) return { kind: 'fresh', outputs: d.outputs }
  if (d.action === 'restore' && d.record !== undefined) return { kind: 'restore', record: d.record }
  return { kind: 'run', reasons: d.reasons }
}
