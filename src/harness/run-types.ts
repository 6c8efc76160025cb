/**
 * The executor's vocabulary, shared by run-pipeline.ts (the public API and planning), plan-run.ts
 * (running a plan) and the CLI: run options, the events a run emits, and its summary. Types only.
 */
import type { InstanceRunner } from './executors/runner.ts'
import type { FingerprintFn, PlanOutput } from './planner.ts'
import type {
  ArtifactStore,
  EnvRecord,
  Failure,
  FingerprintResult,
  LockFile,
  PlanAction,
  PlanStep,
  StageInstance,
  StoredOutput,
  ValidPipeline,
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
  /** CPU slots for stage processes (each takes its `resources.cpu`, capped); default os.availableParallelism(). */
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
  /**
   * Runs each instance out of process (local child, Docker, Kubernetes: src/harness/executors/),
   * which publishes to the shared store itself; the harness then reads the run record. Absent:
   * stages run in-process here. Verify always runs here.
   */
  runner?: InstanceRunner
  /**
   * `--job-timeout` (seconds): the time limit of every instance's run, overriding the stages'
   * `timeout:`. `false`: no limit at all (run-stage inside a container: its runner enforces it).
   */
  jobTimeout?: number | false
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

/** What planning hands to an execution. */
export interface Prepared {
  lock: LockFile
  /** `lockStamp` of the lock file as read. */
  lockStamp: string
  targets: string[] | undefined
  fingerprintOf: FingerprintFn
  plan: PlanOutput
}

/** How one instance settled inside a run of a plan (plan-run.ts): its outputs, or why it has none. */
export type Settled = { ok: true; fp: FingerprintResult; outputs: Record<string, StoredOutput> } | { ok: false; because: string }

/** What one attempt to produce an instance ended with (plan-run.ts `runOnce`). */
export type RunResult =
  | { kind: 'ok'; outputs: Record<string, StoredOutput>; durationMs: number }
  | { kind: 'input-missing'; producer: string; output: string }
  | { kind: 'failed'; failure: Failure }
  | { kind: 'verified'; mismatches: string[] }
  | { kind: 'stopped'; by: string }
