/**
 * The seam between the harness (which schedules, fingerprints and keeps the lock) and whatever
 * runs one stage instance somewhere else: a local child process, a Docker container, a
 * Kubernetes Job. A runner starts `cusp run-stage <instance-id> --store <url> --expect <fp>`
 * there and waits for it; that command materialises the inputs from the shared store, runs the
 * stage, checks and publishes the outputs and the run record (the executor's own code: see
 * run-stage-command.ts). The harness then reads the run record for the fingerprint it planned and records
 * it in the lock, exactly as after a local run. The in-process path (no runner) stays the
 * default; `runStageArgv` is the one place the container command line is built.
 */
import type { ExecEvent } from '../run-types.ts'
import type { Failure, Fingerprint, JobTimeout, StageInstance } from '../types.ts'

/** What a runner is asked to do: produce and publish `instance` at `fingerprint`. */
export interface RunnerRequest {
  instance: StageInstance
  /** The fingerprint the harness planned; the remote side refuses to run under another one. */
  fingerprint: Fingerprint
  emit: (e: ExecEvent) => void
  /** The most this run may take (the stage's `timeout:` or `--job-timeout`); the runner stops it past that. */
  timeout?: JobTimeout
}

export type RunnerOutcome = { ok: true } | { ok: false; failure: Failure }

/** Runs one instance out of process; resolves when it has finished (never rejects for a stage failure). */
export interface InstanceRunner {
  /** For messages: 'local-process', 'docker', 'kubernetes'. */
  readonly name: string
  /** True when the store must be shared (not a local path only this machine sees). */
  readonly needsSharedStore: boolean
  run(req: RunnerRequest): Promise<RunnerOutcome>
  /** Stops every run in flight (Ctrl-C); those runs resolve as failed. Idempotent. */
  cancelAll(): Promise<void>
}

/** How the remote side must analyse the pipeline so that it sees the same instances. */
export interface PipelineSpec {
  /** The store URL as the remote side opens it (s3://bucket/prefix, or a path for local runs). */
  store: string
  /** The pipeline file relative to the project root; omitted when it is `pipeline.yaml`. */
  file?: string
  profile?: string
  /** `--set` overrides, in order. */
  overrides?: string[]
  /** `--backend`, when given. */
  backend?: string
}

/**
 * The arguments after the command `cusp` (i.e. after the image's entrypoint prefix minus
 * `run-stage`): `run-stage <id> --store <url> [--expect <fp>] [--file F] [--profile P] [--set X]... [--backend B]`.
 */
export function runStageArgv(spec: PipelineSpec, instance: string, fingerprint?: Fingerprint): string[] {
  const argv = ['run-stage', instance, '--store', spec.store, ...(fingerprint !== undefined ? ['--expect', fingerprint] : [])]
  if (spec.file !== undefined && spec.file !== 'pipeline.yaml') argv.push('--file', spec.file)
  if (spec.profile !== undefined) argv.push('--profile', spec.profile)
  for (const o of spec.overrides ?? []) argv.push('--set', o)
  if (spec.backend !== undefined) argv.push('--backend', spec.backend)
  return argv
}

/** The last `bytes` characters of `text` (a failure's stderr tail). */
export function tail(text: string, bytes = 4096): string {
  return text.length > bytes ? text.slice(-bytes) : text
}

/** A stage-failed Failure for a remote run that ended with `exitCode` (null: killed or lost). */
export function remoteFailure(instance: string, exitCode: number | null, signal: string | null, stderrTail: string): Failure {
  return { reason: 'stage-failed', instance, exitCode, signal, stderrTail: tail(stderrTail) }
}

/** The Failure of a run stopped at its time limit by `executor`. */
export function timedOut(instance: string, limit: JobTimeout, executor: string, stderrTail: string): Failure {
  return { reason: 'timed-out', instance, limit, executor, stderrTail: tail(stderrTail) }
}

/**
 * The time limit of an instance's run: `--job-timeout` (`override`, seconds) for every stage
 * when given, else the stage's own `timeout:` from pipeline.yaml, else none; `false`: none at all.
 */
export function effectiveTimeout(inst: StageInstance, override: number | false | undefined): JobTimeout | undefined {
  if (override === false) return undefined
  return override !== undefined ? { seconds: override, from: '--job-timeout' } : inst.timeout
}

/** A short stable hex tag of `s` (FNV-1a, 32 bits): names containers and Jobs without leaking ids. */
export function shortHash(s: string): string {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(16).padStart(8, '0')
}

/**
 * `s` as a Kubernetes label value / DNS-1123 name fragment: lower case, [a-z0-9-] only, at most
 * `max` characters, ending with a hash of the original so distinct ids stay distinct.
 */
export function nameFragment(s: string, max = 63): string {
  const h = shortHash(s)
  const base = s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
  return `${base.slice(0, Math.max(0, max - h.length - 1)).replace(/-+$/, '')}-${h}`.replace(/^-/, '')
}

/** A Kubernetes memory quantity ("4Gi", "512Mi", "2G", "1000") in bytes, or undefined if malformed. */
export function memoryBytes(q: string): number | undefined {
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(q.trim())
  if (m === null) return undefined
  const mult: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 }
  return Math.round(Number(m[1]) * (m[2] === undefined ? 1 : (mult[m[2]] ?? 1)))
}
