/**
 * Running a plan (see run-pipeline.ts for the contract). Each selected instance is settled as
 * soon as its upstream has: fresh costs nothing; a restore points the lock at a complete run
 * record (restore-check.ts checks its bytes first); a run produces outputs in a private work
 * directory (produce.ts) and publishes them (publish.ts: objects, run record LAST, lock entry via
 * lock-writer.ts). What to do next is always the planner's decision (planner.ts `nextAction`,
 * `actsAsPlanned`, `forcedInstances`): this file schedules, performs and records. In verify mode
 * (verify-run.ts) cache hits are re-executed and compared, and nothing is published. Each
 * instance's settling is an exception boundary: what escapes becomes that instance's Failure.
 */
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { resolveInputs } from './fingerprint.ts'
import { effectiveTimeout, type InstanceRunner } from './executors/runner.ts'
import { LockWriter } from './lock-writer.ts'
import { actsAsPlanned, forcedInstances, nextAction, type PreviousAttempt, type StoreIndex } from './planner.ts'
import { produce } from './produce.ts'
import { unexpected } from './unexpected.ts'
import { adoptRemoteRun, publishRun } from './publish.ts'
import { corruptOutputs } from './restore-check.ts'
import type { ExecEvent, ExecSummary, InstanceOutcome, Prepared, RunOptions, RunResult, Settled } from './run-types.ts'
import { Slots } from './slots.ts'
import { closeStageWorkers } from './stage-workers.ts'
import { StoreLookups } from './store-lookups.ts'
import { claimResumeDir, sweepResumeDirs, type ResumeClaim } from './resume-dir.ts'
import type {
  ArtifactStore,
  Failure,
  Fingerprint,
  FingerprintResult,
  RunRecord,
  StageInstance,
  StoredOutput,
  ValidPipeline,
} from './types.ts'
import { compareOutputs, verifyAll } from './verify-run.ts'
import { removeWorkDir, sweepWorkDirs, type WorkDir } from './workdir.ts'

export { lockStamp } from './lock-writer.ts'

const NO_LOOKUPS: StoreIndex = { runs: new Map(), objects: new Map(), complete: true }

/** One run of a prepared plan; `run()` once. */
export class PlanRun {
  private readonly pipeline: ValidPipeline
  private readonly store: ArtifactStore
  private readonly emit: (e: ExecEvent) => void
  private readonly settled = new Map<string, Promise<Settled>>()
  /** Current outputs of every settled-ok instance (updated when a producer is repaired). */
  private readonly current = new Map<string, { fp: FingerprintResult; outputs: Record<string, StoredOutput> }>()
  private readonly repairs = new Map<string, Promise<boolean>>()
  private readonly outcomes: Record<string, InstanceOutcome> = {}
  private readonly failures: Failure[] = []
  private readonly slots: Slots
  private readonly forced: Set<string>
  private readonly workRoot: string
  private readonly lock: LockWriter
  private stoppedBy: string | undefined

  constructor(
    private readonly opts: RunOptions,
    private readonly prep: Prepared,
  ) {
    this.pipeline = opts.pipeline
    this.store = opts.store
    const onEvent = opts.onEvent
    this.emit = (e) => {
      try {
        onEvent?.(e)
      } catch {
        // a listener's exception must not break a run
      }
    }
    const jobs = opts.jobs !== undefined && Number.isFinite(opts.jobs) ? Math.floor(opts.jobs) : availableParallelism()
    this.slots = new Slots(Math.max(1, jobs), Math.max(1, jobs))
    this.forced = forcedInstances(this.pipeline, prep.targets, opts.force ?? false)
    this.workRoot = opts.workRoot ?? join(this.pipeline.root, '.cusp', 'work')
    this.lock = new LockWriter(opts.lockPath, prep.lock, prep.lockStamp)
  }

  async run(): Promise<ExecSummary> {
    const steps = this.prep.plan.steps
    this.emit({ type: 'plan', steps })
    if (this.opts.dryRun) return { steps, outcomes: {}, failures: [], ok: true }
    // Always (a readdir): a harness killed after its lock write leaves work it never removed.
    await sweepWorkDirs(this.workRoot)
    await sweepResumeDirs(join(dirname(this.workRoot), 'resume'), async (fp) => (await this.store.getRun(fp as Fingerprint)) !== undefined)
    if (this.opts.verify) await this.verify()
    else await Promise.all(steps.map((s) => this.settle(s.instance)))
    await closeStageWorkers() // warm workers (unless CUSP_STAGE_WORKERS=fresh) end, and are reaped, with the run
    const ok = this.failures.length === 0 && !Object.values(this.outcomes).some((o) => o.outcome === 'nondeterministic')
    return { steps, outcomes: this.outcomes, failures: this.failures, ok }
  }

  private instance(id: string): StageInstance {
    const inst = this.pipeline.instances.get(id)
    if (inst === undefined) throw new Error(`no instance ${id}`)
    return inst
  }

  /** The instance's fingerprint from its upstream's current outputs (fingerprint.ts assembles it). */
  private fingerprint(inst: StageInstance): FingerprintResult {
    const r = resolveInputs(inst, (dep) => {
      const cur = this.current.get(dep.instance)
      const out = cur?.outputs[dep.output]
      return cur === undefined || out === undefined ? undefined : { digest: out.digest, fingerprint: cur.fp.fingerprint }
    })
    if (!r.ok) throw new Error(`${inst.id}: the outputs of ${r.unresolved.join(', ')} are not known`)
    return this.prep.fingerprintOf(inst, r.value)
  }

  private settle(id: string): Promise<Settled> {
    let p = this.settled.get(id)
    if (p === undefined) {
      p = this.settleNow(id).catch((e: unknown) => this.fail(id, unexpected(e)))
      this.settled.set(id, p)
    }
    return p
  }

  private async settleNow(id: string): Promise<Settled> {
    const inst = this.instance(id)
    const ups = await Promise.all([...new Set(inst.deps.map((d) => d.instance))].map(async (u) => [u, await this.settle(u)] as const))
    const bad = ups.find(([, s]) => !s.ok)
    if (bad !== undefined)
      return this.skip(id, `upstream ${bad[0]} ${this.outcomes[bad[0]]?.outcome === 'failed' ? 'failed' : 'was skipped'}`)

    const { plan } = this.prep
    const planned = plan.known.get(id)
    if (
      planned?.outputs !== undefined &&
      actsAsPlanned(
        inst,
        plan.steps.find((s) => s.instance === id),
        plan.known,
        (i) => this.current.get(i)?.outputs,
      )
    ) {
      return this.fresh(id, planned.fingerprint, planned.outputs)
    }
    let previous: PreviousAttempt | undefined
    let missingSoFar = 0
    for (;;) {
      if (this.stoppedBy !== undefined && !this.opts.keepGoing) return this.skip(id, `not started: ${this.stoppedBy} failed`)
      const fp = this.fingerprint(inst)
      const forced = this.forced.has(id)
      const entry = this.prep.lock.instances[id]
      const index = previous === undefined && !forced ? await this.lookups(fp, entry) : NO_LOOKUPS
      const next = nextAction({
        instance: inst,
        fingerprint: fp,
        entry,
        index,
        forced,
        mode: 'settle',
        missingSoFar,
        ...(previous !== undefined ? { previous } : {}),
      })
      previous = undefined
      switch (next.kind) {
        case 'fresh':
          return this.fresh(id, fp, next.outputs)
        case 'give-up':
          return this.fail(id, { reason: 'unexpected', message: next.message })
        case 'repair':
          if (!(await this.repair(next.producer, next.output))) return this.skip(id, `upstream ${next.producer} could not be repaired`)
          continue
        case 'restore': {
          const corrupt = await this.restore(inst, fp, next.record)
          if (corrupt === undefined) return { ok: true, fp, outputs: next.record.outputs }
          previous = { kind: 'restore-corrupt', outputs: corrupt }
          continue
        }
        case 'run': {
          const r = await this.runOnce(inst, fp, 'publish')
          if (r.kind === 'input-missing') {
            missingSoFar++
            previous = { kind: 'input-missing', producer: r.producer, output: r.output }
            continue
          }
          return this.finishRun(id, fp, r)
        }
      }
    }
  }

  private fresh(id: string, fp: FingerprintResult, outputs: Record<string, StoredOutput>): Settled {
    this.current.set(id, { fp, outputs })
    this.outcomes[id] = { outcome: 'fresh', durationMs: 0 }
    this.emit({ type: 'done', instance: id, action: 'fresh', durationMs: 0 })
    return { ok: true, fp, outputs }
  }

  /** Fresh lookups of the instance's run record and its lock entry's objects, for `nextAction`. */
  private async lookups(fp: FingerprintResult, entry: { outputs: Record<string, StoredOutput> } | undefined): Promise<StoreIndex> {
    const look = new StoreLookups(this.store)
    const mine = Object.values(entry?.outputs ?? {})
    look.note(mine)
    await look.fetch(
      [fp.fingerprint],
      mine.map((o) => o.digest),
    )
    return look.index(true)
  }

  /**
   * Points the lock at a complete run record after checking its objects' bytes; returns the
   * names of missing or corrupt outputs instead (nothing recorded), so the planner says run.
   */
  private async restore(inst: StageInstance, fp: FingerprintResult, record: RunRecord): Promise<string[] | undefined> {
    const started = Date.now()
    this.emit({ type: 'start', instance: inst.id, action: 'restore' })
    const corrupt = await corruptOutputs(this.store, this.workRoot, record.outputs, record.fingerprint)
    if (corrupt.length > 0) {
      this.emit({
        type: 'log',
        instance: inst.id,
        message: `cannot restore: ${corrupt.join(', ')} missing or corrupt in the store; running instead`,
      })
      return corrupt
    }
    this.lock.write(inst, fp, record.outputs)
    this.current.set(inst.id, { fp, outputs: record.outputs })
    const durationMs = Date.now() - started
    this.outcomes[inst.id] = { outcome: 'restored', durationMs }
    this.emit({ type: 'done', instance: inst.id, action: 'restore', durationMs })
    return undefined
  }

  /** Records the outcome of a publishing run (other than input-missing, handled by the caller). */
  private finishRun(id: string, fp: FingerprintResult, r: Exclude<RunResult, { kind: 'input-missing' }>): Settled {
    if (r.kind === 'failed') return this.fail(id, r.failure)
    if (r.kind === 'stopped') return this.skip(id, `not started: ${r.by} failed`)
    if (r.kind === 'verified') throw new Error('unreachable: verify result in publish mode')
    this.current.set(id, { fp, outputs: r.outputs })
    this.outcomes[id] = { outcome: 'ran', durationMs: r.durationMs }
    this.emit({ type: 'done', instance: id, action: 'run', durationMs: r.durationMs })
    return { ok: true, fp, outputs: r.outputs }
  }

  /**
   * Runs `producer` again because its output could not be read intact; dependents then
   * re-decide with whatever it produced. Concurrent requests share one rerun.
   */
  private repair(producer: string, output: string): Promise<boolean> {
    let p = this.repairs.get(producer)
    if (p === undefined) {
      p = this.repairNow(producer, output)
      this.repairs.set(producer, p)
      void p.finally(() => this.repairs.delete(producer))
    }
    return p
  }

  private async repairNow(producer: string, output: string): Promise<boolean> {
    const inst = this.instance(producer)
    this.emit({ type: 'log', instance: producer, message: `output ${output} is missing or corrupt in the store; running again` })
    let previous: PreviousAttempt | undefined
    let missingSoFar = 0
    for (;;) {
      const fp = this.fingerprint(inst)
      const next = nextAction({
        instance: inst,
        fingerprint: fp,
        entry: undefined,
        index: NO_LOOKUPS,
        forced: true,
        mode: 'repair',
        missingSoFar,
        ...(previous !== undefined ? { previous } : {}),
      })
      previous = undefined
      if (next.kind === 'give-up') return false
      if (next.kind === 'repair') {
        if (!(await this.repair(next.producer, next.output))) return false
        continue
      }
      const r = await this.runOnce(inst, fp, 'publish')
      if (r.kind === 'input-missing') {
        missingSoFar++
        previous = { kind: 'input-missing', producer: r.producer, output: r.output }
        continue
      }
      if (r.kind !== 'ok') {
        if (r.kind === 'failed') this.fail(producer, r.failure)
        return false
      }
      this.finishRun(producer, fp, r)
      return true
    }
  }

  /**
   * One execution of the stage in a fresh work directory. `publish`: store outputs, then the
   * run record, then the lock entry (publish.ts). `verify`: compare with the stored outputs.
   */
  private async runOnce(
    inst: StageInstance,
    fp: FingerprintResult,
    mode: 'publish' | 'verify',
    stored?: Record<string, StoredOutput>,
  ): Promise<RunResult> {
    // A remote runner's instance uses the cluster's CPUs, not this machine's: one slot each.
    const weight =
      this.opts.runner !== undefined && mode === 'publish' ? 1 : Math.min(this.slots.capacity, Math.max(1, Math.ceil(inst.resources.cpu)))
    await this.slots.acquire(weight)
    let wd: WorkDir | undefined
    let resume: ResumeClaim | undefined
    try {
      if (this.stoppedBy !== undefined && !this.opts.keepGoing && mode === 'publish') return { kind: 'stopped', by: this.stoppedBy }
      const started = Date.now()
      if (this.opts.runner !== undefined && mode === 'publish') return await this.runRemote(this.opts.runner, inst, fp, started)
      if (mode === 'publish') {
        // One owner per resume directory: a second run of this instance fails here (resume-dir.ts).
        const claimed = await claimResumeDir(join(dirname(this.workRoot), 'resume'), fp.fingerprint, inst.id)
        if (!claimed.ok) return { kind: 'failed', failure: { reason: 'busy', instance: inst.id, message: claimed.error.message } }
        resume = claimed.value
      }
      const r = await produce({
        store: this.store,
        root: this.pipeline.root,
        workRoot: this.workRoot,
        instance: inst,
        env: fp.breakdown.env,
        outputsOf: (i) => this.current.get(i)?.outputs,
        fingerprintOf: (i) => this.current.get(i)?.fp.fingerprint,
        envOf: (i) => this.current.get(i)?.fp.breakdown.env,
        paramsOf: (i) => this.instance(i).params,
        processEnv: this.opts.processEnv ?? process.env,
        emit: this.emit,
        timeout: effectiveTimeout(inst, this.opts.jobTimeout),
        // A killed long run resumes from here on its next run (never under verify: that recomputes).
        ...(resume !== undefined ? { resumeDir: resume.dir } : {}),
      })
      if (r.kind !== 'produced') return r
      wd = r.wd
      if (mode === 'verify') return { kind: 'verified', mismatches: await compareOutputs(this.store, inst, wd, stored ?? {}) }
      const { outputs, durationMs } = await publishRun(this.store, this.lock, inst, fp, wd.outDir, started)
      // Published: partial state kept for a resume is of no further use.
      await resume?.release({ removeDir: true })
      return { kind: 'ok', outputs, durationMs }
    } finally {
      await resume?.release({ removeDir: false })
      if (wd !== undefined) await removeWorkDir(wd.dir)
      this.slots.release(weight)
    }
  }

  /** A run through `opts.runner`: the remote side publishes; here its run record is locked. */
  private async runRemote(runner: InstanceRunner, inst: StageInstance, fp: FingerprintResult, started: number): Promise<RunResult> {
    this.emit({ type: 'start', instance: inst.id, action: 'run' })
    const timeout = effectiveTimeout(inst, this.opts.jobTimeout)
    const r = await runner.run({ instance: inst, fingerprint: fp.fingerprint, emit: this.emit, timeout })
    if (!r.ok) return { kind: 'failed', failure: r.failure }
    const adopted = await adoptRemoteRun(this.store, this.lock, runner.name, inst, fp)
    if (!adopted.ok) return { kind: 'failed', failure: adopted.failure }
    return { kind: 'ok', outputs: adopted.outputs, durationMs: Date.now() - started }
  }

  private skip(id: string, because: string): Settled {
    this.outcomes[id] = { outcome: 'skipped', because }
    this.emit({ type: 'skipped', instance: id, because })
    return { ok: false, because }
  }

  private fail(id: string, failure: Failure): Settled {
    this.stoppedBy ??= id
    this.failures.push(failure)
    this.outcomes[id] = { outcome: 'failed', failure }
    this.emit({ type: 'failed', instance: id, failure })
    return { ok: false, because: `${id} failed` }
  }

  /** `--verify` (verify-run.ts), with this run's instances, slots and outcomes. */
  private verify(): Promise<void> {
    return verifyAll(
      {
        plan: this.prep.plan,
        wanted: new Set(this.prep.targets ?? this.pipeline.order),
        instance: (id) => this.instance(id),
        setCurrent: (id, k) => this.current.set(id, { fp: k.fingerprint, outputs: k.outputs }),
        reexecute: async (inst, fp, stored) => {
          const r = await this.runOnce(inst, fp, 'verify', stored)
          return r.kind === 'verified' || r.kind === 'failed' || r.kind === 'input-missing' ? r : { kind: 'other' }
        },
        skip: (id, because) => void this.skip(id, because),
        fail: (id, failure) => void this.fail(id, failure),
        verified: (id, mismatches) => {
          const deterministic = mismatches.length === 0
          this.outcomes[id] = deterministic ? { outcome: 'verified' } : { outcome: 'nondeterministic', mismatches }
          this.emit({ type: 'verify', instance: id, deterministic, mismatches })
        },
      },
      unexpected,
    )
  }
}
