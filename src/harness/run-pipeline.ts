/**
 * The executor's public entry points, the only harness API with effects: `plan` (status,
 * --dry-run: reads only), `planDetailed`, and `execute` (run, or verify). Planning happens
 * here: the lock is read, code digests computed once per implementation, and the pure planner
 * (planner.ts) is run in a loop that looks up exactly the run records and objects it asks for
 * (a few rounds, one per DAG level that needs lookups; a no-op rerun needs only one stat per
 * output object). Running the plan is plan-run.ts. Fingerprints key on an instance's input
 * bytes, not on its upstream's fingerprints, so an upstream that reruns and writes identical
 * bytes leaves its dependents fresh (early cutoff). Exceptions are caught at the boundary of
 * each public function and become `Failure` values.
 */
import type { ExecSummary, Prepared, RunOptions } from './run-types.ts'
import { codeDigest } from './code-digest.ts'
import { harnessEnv } from '../core/environment.ts'
import { lockStamp, PlanRun } from './plan-run.ts'
import { unexpected } from './unexpected.ts'
import { fingerprintFunction } from './fingerprint.ts'
import { localInputs } from './local-inputs.ts'
import { readLock } from './lockfile.ts'
import { planPipeline, type PlanOutput } from './planner.ts'
import { StoreLookups } from './store-lookups.ts'
import { resolveSelectors } from './targets.ts'
import { fail, ok, type Failure, type LockFile, type PlanStep, type Result } from './types.ts'

export type { ExecEvent, ExecSummary, InstanceOutcome, Outcome, RunOptions } from './run-types.ts'

/** The plan only: effects-free reads of the lock and the store (for `status` and `--dry-run`). */
export async function plan(opts: Omit<RunOptions, 'onEvent'>): Promise<Result<PlanStep[], Failure[]>> {
  const r = await planDetailed(opts)
  return r.ok ? ok(r.value.steps) : r
}

/**
 * Like `plan`, plus what the planner knows per instance: its current fingerprint and breakdown
 * (where computable) and, for fresh/restore, the outputs. For `why`-style views and tools.
 */
export async function planDetailed(opts: Omit<RunOptions, 'onEvent'>): Promise<Result<PlanOutput, Failure[]>> {
  const r = await guard(() => prepare(opts))
  if (!r.ok) return fail([r.error])
  return r.value.ok ? ok(r.value.value.plan) : r.value
}

/**
 * Brings the selected instances up to date (or verifies them). Resolves `ok` with a summary
 * whenever execution could start, even if stages failed (see `summary.failures` and
 * `summary.ok`); `fail` only when it could not (invalid lock, unknown target, store error).
 */
export async function execute(opts: RunOptions): Promise<Result<ExecSummary, Failure[]>> {
  // The runs that repair: re-storing bytes replaces a stored copy that does not hash to its name.
  if (opts.force === true || opts.verify === true) opts.store.reverifyExisting?.()
  const r = await guard(async () => {
    const prep = await prepare(opts)
    if (!prep.ok) return prep
    return ok(await new PlanRun(opts, prep.value).run())
  })
  return r.ok ? r.value : fail([r.error])
}

// ---------------------------------------------------------------------------------------
// Preparation: lock, code digests, fingerprints, and the plan

async function prepare(opts: Omit<RunOptions, 'onEvent'>): Promise<Result<Prepared, Failure[]>> {
  const { pipeline, store } = opts
  const stamp = lockStamp(opts.lockPath)
  const read = readLock(opts.lockPath)
  if (!read.ok) return fail([read.error])
  const lock: LockFile = read.value ?? { schema: 1, instances: {} }
  let targets: string[] | undefined
  if (opts.targets !== undefined && opts.targets.length > 0) {
    const sel = resolveSelectors(pipeline, opts.targets)
    if (!sel.ok) return sel
    targets = sel.value
  }
  // The one fingerprint function (fingerprint.ts): code digests once per implementation, the
  // numeric environment from the host (default: the constant `none`).
  const fingerprintOf = fingerprintFunction({
    code: (impl) => codeDigest(pipeline.root, impl).digest,
    env: opts.env ?? (() => harnessEnv()),
    local: localInputs(pipeline.root),
  })

  // Every lock entry's objects are needed for the fresh check: look them all up first, so a
  // no-op rerun plans in one round.
  const look = new StoreLookups(store)
  const lockOutputs = Object.values(lock.instances).flatMap((e) => Object.values(e.outputs))
  look.note(lockOutputs)
  await look.fetch(
    [],
    lockOutputs.map((o) => o.digest),
  )
  for (let round = 0; ; round++) {
    const p = planPipeline({
      pipeline,
      fingerprint: fingerprintOf,
      lock,
      index: look.index(),
      ...(targets !== undefined ? { targets } : {}),
      downstream: opts.downstream ?? false,
      force: opts.force ?? false,
    })
    if (!p.ok) return p
    const { missing } = p.value
    if (missing.runs.length === 0 && missing.objects.length === 0)
      return ok({ lock, lockStamp: stamp, targets, fingerprintOf, plan: p.value })
    if (round > pipeline.order.length + 2) {
      return fail([{ reason: 'unexpected', message: 'planning did not converge (store index keeps changing?)' }])
    }
    await look.fetch(missing.runs, missing.objects)
  }
}

/** The one exception boundary of the public functions. */
async function guard<T>(f: () => Promise<T>): Promise<Result<T, Failure>> {
  try {
    return ok(await f())
  } catch (e: unknown) {
    return fail(unexpected(e))
  }
}
