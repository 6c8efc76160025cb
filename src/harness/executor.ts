/**
 * The executor: the only harness module with effects. It plans (planner.ts, fed by an async
 * loop that looks up exactly the run records and objects the pure planner asks for), then
 * settles every selected instance as soon as its upstream has settled: fresh instances cost
 * nothing; a restore checks the run record's objects exist and points the lock at them; a run
 * materialises inputs read-only in a private work directory, spawns the stage process, checks
 * that exactly the declared outputs (plus result.json) exist, validates result.json against
 * the stage's result schema, stores the outputs, publishes the run record LAST and then
 * rewrites the lock (atomically, after every instance, so a crash loses nothing finished). A
 * failed or killed stage publishes nothing. An instance below an upstream that ran is decided
 * again with the upstream's actual outputs (early cutoff: the fingerprint keys on input bytes,
 * not on upstream fingerprints, so byte-identical outputs leave it fresh). An input object the
 * store cannot deliver intact (missing, or corrupt and discarded on read) makes its producer
 * run again first. `verify` re-executes cache hits in scratch directories and compares bytes,
 * changing nothing. Exceptions are caught at the boundary of each public function and of each
 * instance's settling, and become `Failure` values.
 */
import { availableParallelism } from 'node:os'
import { statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { codeDigest } from './code-digest.ts'
import { harnessEnv } from './environment.ts'
import { computeFingerprint } from './fingerprint.ts'
import { readLock, writeLock } from './lockfile.ts'
import { decide, inputKey, planPipeline, RESULT_OUTPUT, type FingerprintFn, type KnownInstance, type PlanOutput } from './planner.ts'
import { spawnStage } from './spawn-stage.ts'
import { compileParamsSchema } from './stage-schemas.ts'
import { resolveSelectors } from './targets.ts'
import {
  checkOutputs,
  createWorkDir,
  diffTrees,
  materialiseInputs,
  removeWorkDir,
  sha256File,
  sweepWorkDirs,
  writeJob,
  type WorkDir,
} from './workdir.ts'
import {
  fail,
  ok,
  type ArtifactStore,
  type EnvRecord,
  type Failure,
  type Fingerprint,
  type FingerprintResult,
  type LockEntry,
  type LockFile,
  type ObjectDigest,
  type PlanAction,
  type PlanStep,
  type Result,
  type RunRecord,
  type StageInstance,
  type StoredOutput,
  type ValidPipeline,
} from './types.ts'

/** What the CLI hears while a run progresses. */
export type ExecEvent =
  | { type: 'plan'; steps: PlanStep[] }
  | { type: 'start'; instance: string; action: PlanAction }
  | { type: 'progress'; instance: string; fraction: number; message?: string }
  | { type: 'log'; instance: string; message: string }
  | { type: 'done'; instance: string; action: PlanAction; durationMs: number }
  | { type: 'failed'; instance: string; failure: Failure }
  | { type: 'skipped'; instance: string; because: string }
  | { type: 'verify'; instance: string; deterministic: boolean; mismatches: string[] }

export interface RunOptions {
  pipeline: ValidPipeline
  store: ArtifactStore
  lockPath: string
  /** Instance ids or stage names (all instances of the stage); absent or empty = everything. */
  targets?: string[]
  downstream?: boolean
  force?: boolean
  /** Plan and emit the plan event only. */
  dryRun?: boolean
  /** Re-execute the targets that are cache hits and compare bytes; changes nothing. */
  verify?: boolean
  /** Stage processes at once; default os.availableParallelism(). */
  jobs?: number
  /** After a failure, keep running independent branches (dependents are skipped). */
  keepGoing?: boolean
  onEvent?: (e: ExecEvent) => void
  /** The numeric environment per instance (part of its fingerprint); default harnessEnv(). */
  env?: (instance: StageInstance) => EnvRecord
  /** Environment variables of the stage processes; default process.env. */
  processEnv?: Record<string, string | undefined>
  /** Where work directories go; default `<project root>/.cusp/work`. */
  workRoot?: string
}

export type Outcome = 'fresh' | 'restored' | 'ran' | 'failed' | 'skipped' | 'verified' | 'nondeterministic'

export interface InstanceOutcome {
  outcome: Outcome
  durationMs?: number
  /** For skipped: why. */
  because?: string
  /** For nondeterministic: the outputs (or paths inside dir outputs) whose bytes differ. */
  mismatches?: string[]
  failure?: Failure
}

export interface ExecSummary {
  /** The plan as made before anything ran (tentative steps say upstream-changed). */
  steps: PlanStep[]
  /** Per selected instance, what happened (empty for a dry run). */
  outcomes: Record<string, InstanceOutcome>
  /** Every instance failure (stage-failed, outputs-mismatch, ...), in the order they happened. */
  failures: Failure[]
  /** True when nothing failed and verify found nothing non-deterministic. */
  ok: boolean
}

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
  const r = await guard(async () => {
    const prep = await prepare(opts)
    if (!prep.ok) return prep
    return ok(await new Execution(opts, prep.value).run())
  })
  return r.ok ? r.value : fail([r.error])
}

// ---------------------------------------------------------------------------------------
// Preparation: lock, code digests, fingerprints, and the plan

interface Prepared {
  lock: LockFile
  /** `lockStamp` of the lock file as read. */
  lockStamp: string
  targets: string[] | undefined
  fingerprintOf: FingerprintFn
  plan: PlanOutput
}

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
  const envOf = opts.env ?? (() => harnessEnv())
  const codes = new Map<string, string>()
  const codeOf = (impl: string): string => {
    let c = codes.get(impl)
    if (c === undefined) codes.set(impl, (c = codeDigest(pipeline.root, impl).digest))
    return c
  }
  // Upstream fingerprints are deliberately left out: the input digests already pin the bytes
  // an instance reads, and keying on them alone gives early cutoff.
  const fingerprintOf: FingerprintFn = (inst, inputs) =>
    computeFingerprint({ stage: inst.stage, code: codeOf(inst.impl), params: inst.params, inputs, upstream: {}, env: envOf(inst) })

  const runs = new Map<Fingerprint, RunRecord | null>()
  const objects = new Map<ObjectDigest, boolean>()
  const lockDigests = Object.values(lock.instances).flatMap((e) => Object.values(e.outputs).map((o) => o.digest))
  await lookUp(store, runs, objects, [], lockDigests)
  for (let round = 0; ; round++) {
    const p = planPipeline({
      pipeline,
      fingerprint: fingerprintOf,
      lock,
      index: { runs, objects },
      ...(targets !== undefined ? { targets } : {}),
      downstream: opts.downstream ?? false,
      force: opts.force ?? false,
    })
    if (!p.ok) return p
    const { missing } = p.value
    if (missing.runs.length === 0 && missing.objects.length === 0) return ok({ lock, lockStamp: stamp, targets, fingerprintOf, plan: p.value })
    if (round > pipeline.order.length + 2) {
      return fail([{ reason: 'unexpected', message: 'planning did not converge (store index keeps changing?)' }])
    }
    await lookUp(store, runs, objects, missing.runs, missing.objects)
  }
}

/** Fetches run records and object existence into the index maps, 32 at a time. */
async function lookUp(
  store: ArtifactStore,
  runs: Map<Fingerprint, RunRecord | null>,
  objects: Map<ObjectDigest, boolean>,
  fps: readonly Fingerprint[],
  digests: readonly ObjectDigest[],
): Promise<void> {
  const tasks: (() => Promise<void>)[] = [
    ...[...new Set(fps)].map((fp) => async () => {
      const rec = (await store.getRun(fp)) ?? null
      runs.set(fp, rec)
      // A record is useful only with its objects: look them up in the same round.
      for (const o of Object.values(rec?.outputs ?? {})) if (!objects.has(o.digest)) objects.set(o.digest, await store.hasObject(o.digest))
    }),
    ...[...new Set(digests)].filter((d) => !objects.has(d)).map((d) => async () => void objects.set(d, await store.hasObject(d))),
  ]
  for (let i = 0; i < tasks.length; i += 32) await Promise.all(tasks.slice(i, i + 32).map((t) => t()))
}

// ---------------------------------------------------------------------------------------
// Execution

type Settled =
  | { ok: true; fp: FingerprintResult; outputs: Record<string, StoredOutput> }
  | { ok: false; because: string }

type RunResult =
  | { kind: 'ok'; outputs: Record<string, StoredOutput>; durationMs: number }
  | { kind: 'input-missing'; producer: string; output: string }
  | { kind: 'failed'; failure: Failure }
  | { kind: 'verified'; mismatches: string[] }
  | { kind: 'stopped'; by: string }

/** A counting semaphore limiting concurrent stage processes. */
class Slots {
  private waiting: (() => void)[] = []
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--
      return
    }
    await new Promise<void>((res) => this.waiting.push(res))
  }
  release(): void {
    const next = this.waiting.shift()
    if (next !== undefined) next()
    else this.free++
  }
}

class Execution {
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
  private readonly schemaCache = new Map<string, Promise<string | undefined>>()
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
    this.slots = new Slots(Math.max(1, jobs))
    this.steps = new Map(prep.plan.steps.map((s) => [s.instance, s]))
    this.forced = new Set(opts.force ? (prep.targets ?? this.pipeline.order) : [])
    this.workRoot = opts.workRoot ?? join(this.pipeline.root, '.cusp', 'work')
    this.lockStamp = prep.lockStamp
  }

  async run(): Promise<ExecSummary> {
    const steps = this.prep.plan.steps
    this.emit({ type: 'plan', steps })
    if (this.opts.dryRun) return { steps, outcomes: {}, failures: [], ok: true }
    if (steps.some((s) => s.action !== 'fresh')) await sweepWorkDirs(this.workRoot)
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
    for (const dep of [...inst.deps].sort((a, b) => inputKey(a).localeCompare(inputKey(b)))) {
      const out = this.current.get(dep.instance)?.outputs[dep.output]
      if (out === undefined) throw new Error(`${inst.id}: output ${dep.output} of ${dep.instance} is not known`)
      inputs[inputKey(dep)] = out.digest
    }
    return this.prep.fingerprintOf(inst, inputs, {})
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
    // A step decided on final information (no upstream ran) is acted on as planned.
    if (step?.action === 'fresh' && known?.outputs !== undefined) {
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
        const started = Date.now()
        this.emit({ type: 'start', instance: id, action: 'restore' })
        this.writeLockEntry(inst, fp, record.outputs)
        this.current.set(id, { fp, outputs: record.outputs })
        const durationMs = Date.now() - started
        this.outcomes[id] = { outcome: 'restored', durationMs }
        this.emit({ type: 'done', instance: id, action: 'restore', durationMs })
        return { ok: true, fp, outputs: record.outputs }
      }
      const r = await this.runOnce(inst, fp, 'publish')
      if (r.kind === 'input-missing') {
        if (!(await this.repair(r.producer, r.output))) return this.skip(id, `upstream ${r.producer} could not be repaired`)
        continue
      }
      if (r.kind === 'failed') return this.fail(id, r.failure)
      if (r.kind === 'stopped') return this.skip(id, `not started: ${r.by} failed`)
      if (r.kind === 'verified') throw new Error('unreachable: verify result in publish mode')
      this.current.set(id, { fp, outputs: r.outputs })
      this.outcomes[id] = { outcome: 'ran', durationMs: r.durationMs }
      this.emit({ type: 'done', instance: id, action: 'run', durationMs: r.durationMs })
      return { ok: true, fp, outputs: r.outputs }
    }
    return this.fail(id, { reason: 'unexpected', message: `${id}: its inputs kept disappearing from the store` })
  }

  /** Decides one instance now, with fresh lookups of its lock entry, run record and objects. */
  private async decideNow(inst: StageInstance, fp: FingerprintResult): Promise<ReturnType<typeof decide>> {
    const entry = this.prep.lock.instances[inst.id]
    const runs = new Map<Fingerprint, RunRecord | null>()
    const objects = new Map<ObjectDigest, boolean>()
    const rec = (await this.store.getRun(fp.fingerprint)) ?? null
    runs.set(fp.fingerprint, rec)
    const digests = [...Object.values(entry?.outputs ?? {}), ...Object.values(rec?.outputs ?? {})].map((o) => o.digest)
    await lookUp(this.store, runs, objects, [], digests)
    return decide(inst, fp, entry, { runs, objects, complete: true }, false)
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
    await this.slots.acquire()
    let wd: WorkDir | undefined
    try {
      if (this.stoppedBy !== undefined && !this.opts.keepGoing && mode === 'publish') return { kind: 'stopped', by: this.stoppedBy }
      wd = await createWorkDir(this.workRoot)
      const mat = await materialiseInputs(
        this.store,
        wd,
        inst,
        (i) => this.current.get(i)?.outputs,
        (i) => this.instance(i).params,
      )
      if (!mat.ok) return { kind: 'input-missing', producer: mat.missing.dep.instance, output: mat.missing.dep.output }
      await writeJob(wd, {
        schema: 1,
        instance: inst.id,
        module: join(this.pipeline.root, implDir(inst.impl), 'index.ts'),
        params: inst.params,
        inputs: mat.inputs,
        outDir: wd.outDir,
      })
      const started = Date.now()
      this.emit({ type: 'start', instance: inst.id, action: 'run' })
      const exit = await spawnStage(wd.dir, this.pipeline.root, this.opts.processEnv ?? process.env, {
        progress: (fraction, message) =>
          this.emit(message === undefined ? { type: 'progress', instance: inst.id, fraction } : { type: 'progress', instance: inst.id, fraction, message }),
        log: (message) => this.emit({ type: 'log', instance: inst.id, message }),
      })
      if (exit.exitCode !== 0) {
        return { kind: 'failed', failure: { reason: 'stage-failed', instance: inst.id, exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail } }
      }
      const check = await checkOutputs(wd.outDir, inst.outputs, RESULT_OUTPUT)
      if (check.missing.length > 0 || check.unexpected.length > 0) {
        return { kind: 'failed', failure: { reason: 'outputs-mismatch', instance: inst.id, ...check } }
      }
      const invalid = await this.checkResult(inst, join(wd.outDir, RESULT_OUTPUT))
      if (invalid !== undefined) return { kind: 'failed', failure: { reason: 'result-invalid', instance: inst.id, message: invalid } }
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
      return { kind: 'ok', outputs, durationMs }
    } finally {
      if (wd !== undefined) await removeWorkDir(wd.dir)
      this.slots.release()
    }
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

  /** Validates result.json against `schemas/stages/<impl>.result.schema.json` when it exists. */
  private async checkResult(inst: StageInstance, path: string): Promise<string | undefined> {
    let data: unknown
    try {
      data = JSON.parse(await readFile(path, 'utf8'))
    } catch (e: unknown) {
      return `result.json is not valid JSON: ${e instanceof Error ? e.message : String(e)}`
    }
    const schemaFile = join(this.pipeline.root, 'schemas', 'stages', `${basename(implDir(inst.impl))}.result.schema.json`)
    let text = this.schemaCache.get(schemaFile)
    if (text === undefined) this.schemaCache.set(schemaFile, (text = readFile(schemaFile, 'utf8').catch(() => undefined)))
    const schema = await text
    if (schema === undefined) return undefined
    const v = compileParamsSchema(schema)
    if (!v.ok) return `${schemaFile} ${v.error}`
    if (v.value(data)) return undefined
    return (v.value.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}`).join('; ')
  }

  /**
   * Records one instance in the lock and rewrites it atomically. If another process rewrote
   * the lock since this one last read or wrote it (its stat changed), its entries are merged
   * in first, so two runs on different targets do not erase each other's entries (a narrow
   * race remains: there is no file lock).
   */
  private writeLockEntry(inst: StageInstance, fp: FingerprintResult, outputs: Record<string, StoredOutput>): void {
    const entry = { stage: inst.stage, fingerprint: fp.fingerprint, breakdown: fp.breakdown, outputs }
    this.written.set(inst.id, entry)
    if (lockStamp(this.opts.lockPath) !== this.lockStamp) {
      const disk = readLock(this.opts.lockPath)
      if (disk.ok && disk.value !== undefined) this.prep.lock.instances = { ...disk.value.instances, ...Object.fromEntries(this.written) }
    }
    this.prep.lock.instances[inst.id] = entry
    const w = writeLock(this.opts.lockPath, this.prep.lock)
    if (!w.ok) throw new LockWriteError(w.error)
    this.lockStamp = lockStamp(this.opts.lockPath)
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
function lockStamp(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false, bigint: true })
  return st === undefined ? 'none' : `${st.ino}:${st.size}:${st.mtimeNs}`
}

/** `stages/<impl>` for a bare implementation name, the path itself otherwise. */
function implDir(impl: string): string {
  return impl.includes('/') ? impl : `stages/${impl}`
}

class LockWriteError extends Error {
  constructor(readonly failure: Failure) {
    super('lock write failed')
  }
}

function unexpected(e: unknown): Failure {
  if (e instanceof LockWriteError) return e.failure
  if (e instanceof Error) return e.stack !== undefined ? { reason: 'unexpected', message: e.message, stack: e.stack } : { reason: 'unexpected', message: e.message }
  return { reason: 'unexpected', message: String(e) }
}

/** The one exception boundary of the public functions. */
async function guard<T>(f: () => Promise<T>): Promise<Result<T, Failure>> {
  try {
    return ok(await f())
  } catch (e: unknown) {
    return fail(unexpected(e))
  }
}
