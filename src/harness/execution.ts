/**
 * Running a plan (see executor.ts for the contract). Each selected instance is settled as
 * soon as its upstream has: fresh costs nothing; a restore points the lock at a complete run
 * record; a run produces outputs in a private work directory (stage-job.ts), stores them,
 * publishes the run record LAST, then rewrites the lock. An instance below an upstream that
 * ran is decided again with the upstream's actual outputs (early cutoff). An input object the
 * store cannot deliver intact makes its producer run again first ("repair"). In verify mode
 * cache hits are re-executed and compared byte for byte, and nothing is published. Each
 * instance's settling is an exception boundary: what escapes becomes that instance's Failure.
 */
import { availableParallelism } from 'node:os'
import { statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { ExecEvent, ExecSummary, InstanceOutcome, Prepared, RunOptions } from './exec-types.ts'
import type { InstanceRunner } from './executors/runner.ts'
import { ioFailure } from './failures.ts'
import { LockBusyError, readLock, withLockHeld, writeLock } from './lockfile.ts'
import { StoreError } from './store/run-record-check.ts'
import { decide, inputKey, RESULT_OUTPUT, type KnownInstance } from './planner.ts'
import { produce } from './stage-job.ts'
import { StoreLookups } from './store-lookups.ts'
import { claimResumeDir, sweepResumeDirs, type ResumeClaim } from './resume-dir.ts'
import { createWorkDir, diffTrees, removeWorkDir, sha256File, sweepWorkDirs, type WorkDir } from './workdir.ts'
import type {
  ArtifactStore,
  Failure,
  Fingerprint,
  FingerprintResult,
  LockEntry,
  ObjectDigest,
  PlanAction,
  PlanStep,
  RunRecord,
  StageInstance,
  StoredOutput,
  ValidPipeline,
} from './types.ts'

type Settled =
  | { ok: true; fp: FingerprintResult; outputs: Record<string, StoredOutput> }
  | { ok: false; because: string }

type RunResult =
  | { kind: 'ok'; outputs: Record<string, StoredOutput>; durationMs: number }
  | { kind: 'input-missing'; producer: string; output: string }
  | { kind: 'failed'; failure: Failure }
  | { kind: 'verified'; mismatches: string[] }
  | { kind: 'stopped'; by: string }

/**
 * A weighted semaphore over `jobs` slots: a stage process takes as many slots as the CPUs its
 * instance declares (`resources.cpu`, at least 1, at most all), so two 2-CPU stages do not
 * share a 2-core machine. Waiters are served first come, first served.
 */
class Slots {
  private readonly waiting: { n: number; go: () => void }[] = []
  constructor(
    private free: number,
    readonly capacity: number,
  ) {}
  async acquire(n: number): Promise<void> {
    if (this.waiting.length === 0 && this.free >= n) {
      this.free -= n
      return
    }
    await new Promise<void>((go) => this.waiting.push({ n, go }))
  }
  release(n: number): void {
    this.free += n
    for (let w = this.waiting[0]; w !== undefined && this.free >= w.n; w = this.waiting[0]) {
      this.waiting.shift()
      this.free -= w.n
      w.go()
    }
  }
}

/** One run of a prepared plan; `run()` once. */
export class Execution {
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
  private readonly steps: Map<string, PlanStep>
  private readonly forced: Set<string>
  private readonly workRoot: string
  private stoppedBy: string | undefined
  /** Lock entries this execution wrote (kept over concurrent writers' entries when merging). */
  private readonly written = new Map<string, LockEntry>()
  /** The lock file's stat when this execution last read or wrote it. */
  private lockStamp: string

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
    this.steps = new Map(prep.plan.steps.map((s) => [s.instance, s]))
    this.forced = new Set(opts.force ? (prep.targets ?? this.pipeline.order) : [])
    this.workRoot = opts.workRoot ?? join(this.pipeline.root, '.cusp', 'work')
    this.lockStamp = prep.lockStamp
  }

  async run(): Promise<ExecSummary> {
    const steps = this.prep.plan.steps
    this.emit({ type: 'plan', steps })
    if (this.opts.dryRun) return { steps, outcomes: {}, failures: [], ok: true }
    // Always (a readdir): a harness killed after its lock write leaves work it never removed.
    await sweepWorkDirs(this.workRoot)
    await sweepResumeDirs(join(dirname(this.workRoot), 'resume'), async (fp) => (await this.store.getRun(fp as Fingerprint)) !== undefined)
    if (this.opts.verify) await this.verifyAll()
    else await Promise.all(steps.map((s) => this.settle(s.instance)))
    const ok = this.failures.length === 0 && !Object.values(this.outcomes).some((o) => o.outcome === 'nondeterministic')
    return { steps, outcomes: this.outcomes, failures: this.failures, ok }
  }

  private instance(id: string): StageInstance {
    const inst = this.pipeline.instances.get(id)
    if (inst === undefined) throw new Error(`no instance ${id}`)
    return inst
  }

  /** The instance's fingerprint from its upstream's current outputs. */
  private fingerprint(inst: StageInstance): FingerprintResult {
    const inputs: Record<string, ObjectDigest> = {}
    const upstream: Record<string, Fingerprint> = {}
    for (const dep of [...inst.deps].sort((a, b) => inputKey(a).localeCompare(inputKey(b)))) {
      const cur = this.current.get(dep.instance)
      const out = cur?.outputs[dep.output]
      if (cur === undefined || out === undefined) throw new Error(`${inst.id}: output ${dep.output} of ${dep.instance} is not known`)
      inputs[inputKey(dep)] = out.digest
      upstream[dep.instance] = cur.fp.fingerprint
    }
    return this.prep.fingerprintOf(inst, inputs, sortedRecord(upstream))
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
    if (bad !== undefined) return this.skip(id, `upstream ${bad[0]} ${this.outcomes[bad[0]]?.outcome === 'failed' ? 'failed' : 'was skipped'}`)

    const step = this.steps.get(id)
    const known: KnownInstance | undefined = this.prep.plan.known.get(id)
    // A step decided on final information is acted on as planned, unless an upstream's outputs
    // turned out different from what the plan assumed (a restore that had to run instead).
    if (step?.action === 'fresh' && known?.outputs !== undefined && this.inputsAsPlanned(inst)) {
      this.current.set(id, { fp: known.fingerprint, outputs: known.outputs })
      this.outcomes[id] = { outcome: 'fresh', durationMs: 0 }
      this.emit({ type: 'done', instance: id, action: 'fresh', durationMs: 0 })
      return { ok: true, fp: known.fingerprint, outputs: known.outputs }
    }
    for (let attempt = 0; attempt < 4; attempt++) {
      if (this.stoppedBy !== undefined && !this.opts.keepGoing) return this.skip(id, `not started: ${this.stoppedBy} failed`)
      const fp = this.fingerprint(inst)
      let action: PlanAction = 'run'
      let record: RunRecord | undefined
      if (!this.forced.has(id)) {
        const d = await this.decideNow(inst, fp)
        action = d.action
        record = d.record
        if (d.action === 'fresh' && d.outputs !== undefined) {
          this.current.set(id, { fp, outputs: d.outputs })
          this.outcomes[id] = { outcome: 'fresh', durationMs: 0 }
          this.emit({ type: 'done', instance: id, action: 'fresh', durationMs: 0 })
          return { ok: true, fp, outputs: d.outputs }
        }
      }
      if (action === 'restore' && record !== undefined) {
        const restored = await this.restore(inst, fp, record)
        if (restored !== undefined) return restored
        // Its objects were corrupt (and are now discarded): run instead.
      }
      const r = await this.runOnce(inst, fp, 'publish')
      if (r.kind === 'input-missing') {
        if (!(await this.repair(r.producer, r.output))) return this.skip(id, `upstream ${r.producer} could not be repaired`)
        continue
      }
      return this.finishRun(id, fp, r)
    }
    return this.fail(id, { reason: 'unexpected', message: `${id}: its inputs kept disappearing from the store` })
  }

  /**
   * Points the lock at a complete run record after checking its objects' bytes; undefined
   * (nothing recorded) when an object is missing or corrupt, so the caller runs instead.
   */
  private async restore(inst: StageInstance, fp: FingerprintResult, record: RunRecord): Promise<Settled | undefined> {
    const started = Date.now()
    this.emit({ type: 'start', instance: inst.id, action: 'restore' })
    const corrupt = await this.corruptOutputs(record.outputs)
    if (corrupt.length > 0) {
      this.emit({ type: 'log', instance: inst.id, message: `cannot restore: ${corrupt.join(', ')} missing or corrupt in the store; running instead` })
      return undefined
    }
    this.writeLockEntry(inst, fp, record.outputs)
    this.current.set(inst.id, { fp, outputs: record.outputs })
    const durationMs = Date.now() - started
    this.outcomes[inst.id] = { outcome: 'restored', durationMs }
    this.emit({ type: 'done', instance: inst.id, action: 'restore', durationMs })
    return { ok: true, fp, outputs: record.outputs }
  }

  /** True when every input resolves to the digest the plan computed this instance's fingerprint with. */
  private inputsAsPlanned(inst: StageInstance): boolean {
    return inst.deps.every((d) => {
      const now = this.current.get(d.instance)?.outputs[d.output]?.digest
      return now !== undefined && now === this.prep.plan.known.get(d.instance)?.outputs?.[d.output]?.digest
    })
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
   * Names of outputs whose objects fail their digest check (the store discards those). A
   * restore checks bytes, not only existence: it is rare (a switched-back param), and it is
   * the moment a flipped byte would otherwise become the workspace's truth. Uses the store's
   * `verifyObject` for files when it has one, else reads the object into a scratch dir.
   */
  private async corruptOutputs(outputs: Record<string, StoredOutput>): Promise<string[]> {
    const bad: string[] = []
    let scratch: WorkDir | undefined
    try {
      for (const [name, o] of Object.entries(outputs)) {
        let good: boolean
        if (o.kind === 'file' && this.store.verifyObject !== undefined) good = await this.store.verifyObject(o.digest)
        else {
          scratch ??= await createWorkDir(this.workRoot)
          const dest = join(scratch.dir, 'check', name)
          good = o.kind === 'dir' ? await this.store.getDir(o.digest, dest) : await this.store.getFile(o.digest, dest)
        }
        if (!good) bad.push(name)
      }
    } finally {
      if (scratch !== undefined) await removeWorkDir(scratch.dir)
    }
    return bad
  }

  /** Decides one instance now, with fresh lookups of its lock entry, run record and objects. */
  private async decideNow(inst: StageInstance, fp: FingerprintResult): Promise<ReturnType<typeof decide>> {
    const entry = this.prep.lock.instances[inst.id]
    const look = new StoreLookups(this.store)
    const mine = Object.values(entry?.outputs ?? {})
    look.note(mine)
    await look.fetch([fp.fingerprint], mine.map((o) => o.digest))
    return decide(inst, fp, entry, look.index(true), false)
  }

  /**
   * Runs `producer` again because its output could not be read intact; dependents then
   * re-decide with whatever it produced. Concurrent requests share one rerun.
   */
  private repair(producer: string, output: string): Promise<boolean> {
    let p = this.repairs.get(producer)
    if (p === undefined) {
      p = (async () => {
        const inst = this.instance(producer)
        this.emit({ type: 'log', instance: producer, message: `output ${output} is missing or corrupt in the store; running again` })
        for (let attempt = 0; attempt < 3; attempt++) {
          const fp = this.fingerprint(inst)
          const r = await this.runOnce(inst, fp, 'publish')
          if (r.kind === 'input-missing') {
            if (!(await this.repair(r.producer, r.output))) return false
            continue
          }
          if (r.kind !== 'ok') {
            if (r.kind === 'failed') this.fail(producer, r.failure)
            return false
          }
          this.current.set(producer, { fp, outputs: r.outputs })
          this.outcomes[producer] = { outcome: 'ran', durationMs: r.durationMs }
          this.emit({ type: 'done', instance: producer, action: 'run', durationMs: r.durationMs })
          return true
        }
        return false
      })()
      this.repairs.set(producer, p)
      void p.finally(() => this.repairs.delete(producer))
    }
    return p
  }

  /**
   * One execution of the stage in a fresh work directory. `publish`: store outputs, then the
   * run record, then the lock entry. `verify`: compare with the stored outputs, store nothing.
   */
  private async runOnce(
    inst: StageInstance,
    fp: FingerprintResult,
    mode: 'publish' | 'verify',
    stored?: Record<string, StoredOutput>,
  ): Promise<RunResult> {
    // A remote runner's instance uses the cluster's CPUs, not this machine's: one slot each.
    const weight = this.opts.runner !== undefined && mode === 'publish' ? 1 : Math.min(this.slots.capacity, Math.max(1, Math.ceil(inst.resources.cpu)))
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
        outputsOf: (i) => this.current.get(i)?.outputs,
        fingerprintOf: (i) => this.current.get(i)?.fp.fingerprint,
        paramsOf: (i) => this.instance(i).params,
        processEnv: this.opts.processEnv ?? process.env,
        emit: this.emit,
        // A killed long run resumes from here on its next run (never under verify: that recomputes).
        ...(resume !== undefined ? { resumeDir: resume.dir } : {}),
      })
      if (r.kind !== 'produced') return r
      wd = r.wd
      if (mode === 'verify') return { kind: 'verified', mismatches: await this.compare(inst, wd, stored ?? {}) }

      const outputs: Record<string, StoredOutput> = {}
      for (const o of [...inst.outputs, { name: RESULT_OUTPUT, kind: 'file' as const }]) {
        const path = join(wd.outDir, o.name)
        const put = o.kind === 'dir' ? await this.store.putDir(path) : await this.store.putFile(path)
        outputs[o.name] = { digest: put.digest, size: put.size, kind: o.kind }
      }
      const durationMs = Date.now() - started
      await this.store.putRun({
        schema: 1,
        fingerprint: fp.fingerprint,
        instance: inst.id,
        stage: inst.stage,
        breakdown: fp.breakdown,
        outputs,
        durationMs,
        finishedAt: new Date().toISOString(),
      })
      this.writeLockEntry(inst, fp, outputs)
      // Published: partial state kept for a resume is of no further use.
      await resume?.release({ removeDir: true })
      return { kind: 'ok', outputs, durationMs }
    } finally {
      await resume?.release({ removeDir: false })
      if (wd !== undefined) await removeWorkDir(wd.dir)
      this.slots.release(weight)
    }
  }

  /**
   * A run through `opts.runner`: the remote side publishes outputs and the run record itself
   * (executors/run-one.ts), so here only its run record for `fp` is read and locked.
   */
  private async runRemote(runner: InstanceRunner, inst: StageInstance, fp: FingerprintResult, started: number): Promise<RunResult> {
    this.emit({ type: 'start', instance: inst.id, action: 'run' })
    const r = await runner.run({ instance: inst, fingerprint: fp.fingerprint, emit: this.emit })
    if (!r.ok) return { kind: 'failed', failure: r.failure }
    const record = await this.store.getRun(fp.fingerprint)
    if (record === undefined) {
      const message = `${inst.id}: the ${runner.name} run succeeded but ${this.store.description} has no run record for fingerprint ${fp.fingerprint}`
      return { kind: 'failed', failure: { reason: 'store-error', message } }
    }
    this.writeLockEntry(inst, fp, record.outputs)
    return { kind: 'ok', outputs: record.outputs, durationMs: Date.now() - started }
  }

  /** Output names (or `dir/path` inside dir outputs) whose new bytes differ from the stored ones. */
  private async compare(inst: StageInstance, wd: WorkDir, stored: Record<string, StoredOutput>): Promise<string[]> {
    const mismatches: string[] = []
    for (const o of [...inst.outputs, { name: RESULT_OUTPUT, kind: 'file' as const }]) {
      const old = stored[o.name]
      const path = join(wd.outDir, o.name)
      if (old === undefined) mismatches.push(o.name)
      else if (o.kind === 'file') {
        if ((await sha256File(path)) !== old.digest) mismatches.push(o.name)
      } else {
        const expected = join(wd.dir, 'expected', o.name)
        if (!(await this.store.getDir(old.digest, expected))) mismatches.push(`${o.name} (stored copy unreadable)`)
        else mismatches.push(...(await diffTrees(expected, path, o.name)))
      }
    }
    return mismatches
  }

  /**
   * Records one instance in the lock and rewrites it atomically. If another process rewrote
   * the lock since this one last read or wrote it (its stat changed), its entries are merged
   * in first, so two runs on different targets do not erase each other's entries; all of it
   * under the lock's exclusive owner file (lockfile.ts withLockHeld), so no entry is lost.
   */
  private writeLockEntry(inst: StageInstance, fp: FingerprintResult, outputs: Record<string, StoredOutput>): void {
    const entry = { stage: inst.stage, fingerprint: fp.fingerprint, breakdown: fp.breakdown, outputs }
    this.written.set(inst.id, entry)
    withLockHeld(this.opts.lockPath, () => {
      if (lockStamp(this.opts.lockPath) !== this.lockStamp) {
        const disk = readLock(this.opts.lockPath)
        if (disk.ok && disk.value !== undefined) this.prep.lock.instances = { ...disk.value.instances, ...Object.fromEntries(this.written) }
      }
      this.prep.lock.instances[inst.id] = entry
      const w = writeLock(this.opts.lockPath, this.prep.lock)
      if (!w.ok) throw new LockWriteError(w.error)
      this.lockStamp = lockStamp(this.opts.lockPath)
    })
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

  // -------------------------------------------------------------------------------------
  // Verify

  /** Re-executes every target that is a cache hit and compares its outputs byte for byte. */
  private async verifyAll(): Promise<void> {
    const { plan } = this.prep
    const wanted = new Set(this.prep.targets ?? this.pipeline.order)
    for (const [id, k] of plan.known) if (k.outputs !== undefined) this.current.set(id, { fp: k.fingerprint, outputs: k.outputs })
    await Promise.all(
      plan.steps.map(async (step) => {
        const id = step.instance
        if (!wanted.has(id)) return
        const k = plan.known.get(id)
        if (step.action === 'run' || k?.outputs === undefined) {
          this.skip(id, 'not a cache hit (it would run); verify checks cached results only')
          return
        }
        try {
          const r = await this.runOnce(this.instance(id), k.fingerprint, 'verify', k.outputs)
          if (r.kind === 'failed') this.fail(id, r.failure)
          else if (r.kind === 'input-missing') this.skip(id, `input ${r.output} of ${r.producer} is missing or corrupt in the store`)
          else if (r.kind === 'verified') {
            const deterministic = r.mismatches.length === 0
            this.outcomes[id] = deterministic ? { outcome: 'verified' } : { outcome: 'nondeterministic', mismatches: r.mismatches }
            this.emit({ type: 'verify', instance: id, deterministic, mismatches: r.mismatches })
          }
        } catch (e: unknown) {
          this.fail(id, unexpected(e))
        }
      }),
    )
  }
}

/** Identity of the lock file's current version (inode, size, mtime), or 'none'. */
export function lockStamp(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false, bigint: true })
  return st === undefined ? 'none' : `${st.ino}:${st.size}:${st.mtimeNs}`
}

class LockWriteError extends Error {
  constructor(readonly failure: Failure) {
    super('lock write failed')
  }
}

/** An exception as a Failure value (a lock write's own Failure passes through). */
export function unexpected(e: unknown): Failure {
  if (e instanceof LockWriteError || e instanceof LockBusyError) return e.failure
  // A store's own errors (unreachable endpoint, denied access) are user-facing, not bugs.
  if (e instanceof StoreError) return e.failure
  const io = ioFailure(e) // EACCES, ENOSPC, a file in place of a directory: expected, one line
  if (io !== undefined) return io
  if (e instanceof Error) return e.stack !== undefined ? { reason: 'unexpected', message: e.message, stack: e.stack } : { reason: 'unexpected', message: e.message }
  return { reason: 'unexpected', message: String(e) }
}

/** The record with its keys in sorted order (fingerprint breakdowns are canonical). */
function sortedRecord<V>(r: Record<string, V>): Record<string, V> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
