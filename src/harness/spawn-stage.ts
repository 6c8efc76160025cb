/**
 * Runs one prepared stage job as a child process (execa, no shell, cwd = project root) and
 * streams what it says: stdout protocol lines become progress and log callbacks, stderr lines
 * become log callbacks and the last few KiB are kept for the failure message. Resolves with
 * the exit status; never rejects for a failing stage (a spawn error is reported as exit null).
 *
 * The stage gets an allow-listed environment (`stageEnv`): what a numeric program needs (PATH,
 * HOME, locale, thread and GPU settings, CUSP_*), never the store's credentials (the harness
 * reads and writes the store; a stage only sees its work directory), plus the names listed in
 * `CUSP_STAGE_ENV`. Everything it prints is redacted (URL credentials, withheld secret values)
 * and stripped of terminal control characters before it reaches a callback.
 *
 * The process runs the bundles of stage-process.ts and of the job's stage module with plain node
 * (stage-bundle.ts: no TypeScript compiled per instance), or through tsx when a bundle cannot be
 * built or `CUSP_STAGE_BUNDLE=0`. Either way its command line ends with the work directory and
 * this harness's pid, so it exits when the harness dies (stage-process.ts), and its pid and
 * start time are written to `<workDir>/stage.pid` as soon as it is spawned (it writes the same
 * record itself at start-up), so a sweep of a killed harness's work directory can find and stop
 * the stage it left behind (workdir.ts). By default a bundled job runs in a warm worker instead
 * (stage-workers.ts), with the same outcome, lines and stage.pid record; `CUSP_STAGE_WORKERS=fresh`
 * gives every job its own process.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { startTimeOf } from './owner.ts'
import { envSecrets, isSecretEnvName, printable } from './redact.ts'
import { parseMessage, stageCommand, type StageJob } from './stage-api.ts'
import { bundlingEnabled, STAGE_PROCESS_ENTRY, STAGE_WORKER_ENTRY, stageBundle } from './stage-bundle.ts'
import { runInWorker, warmWorkersEnabled } from './stage-workers.ts'

/** Variables a stage process receives by exact name. */
const STAGE_ENV_NAMES = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'TMPDIR',
  'TMP',
  'TEMP',
  'TZ',
  'LANG',
  'LANGUAGE',
  'TERM',
  'NO_COLOR',
  'CI',
  'DISPLAY',
  'WAYLAND_DISPLAY',
  'XDG_RUNTIME_DIR',
  'LD_LIBRARY_PATH',
  'CHROMIUM',
  'NODE_OPTIONS',
])
/** Variables a stage process receives by prefix (locale, thread pools, GPU drivers, the harness's own settings). */
const STAGE_ENV_PREFIXES = [
  'LC_',
  'CUSP_',
  'TF_',
  'TFJS_',
  'OMP_',
  'OPENBLAS_',
  'MKL_',
  'CUDA_',
  'NVIDIA_',
  'MESA_',
  'VK_',
  '__EGL_',
  '__GLX_',
]

/**
 * The environment a stage process gets from the harness's `env`: the allow-list above plus the
 * names in `CUSP_STAGE_ENV` (comma-separated), never a secret-looking name (AWS_SECRET_ACCESS_KEY,
 * *_TOKEN, *PASSWORD*, ...) even when listed.
 */
export function stageEnv(env: Record<string, string | undefined>): Record<string, string> {
  const extra = new Set(
    (env.CUSP_STAGE_ENV ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  )
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || isSecretEnvName(k)) continue
    if (STAGE_ENV_NAMES.has(k) || extra.has(k) || STAGE_ENV_PREFIXES.some((p) => k.startsWith(p))) out[k] = v
  }
  return out
}

/** Writes `<workDir>/stage.pid` (pid, host, start time) atomically; the stage writes the same at start-up. */
function recordStage(workDir: string, pid: number): void {
  const start = startTimeOf(pid)
  const path = join(workDir, 'stage.pid')
  try {
    writeFileSync(`${path}.h${process.pid}`, `${JSON.stringify({ pid, host: hostname(), ...(start !== undefined ? { start } : {}) })}\n`)
    renameSync(`${path}.h${process.pid}`, path)
  } catch {
    // the sweep then finds the stage by its command line (workdir.ts)
  }
}

/** The job in `workDir`: its instance and the engine backend it asks for (job.json `env.backend`, keying warm workers). */
function jobInfo(workDir: string): { instance: string; engine: string } {
  try {
    const job = JSON.parse(readFileSync(join(workDir, 'job.json'), 'utf8')) as StageJob
    return { instance: String(job.instance), engine: String(job.env?.backend ?? 'none') }
  } catch {
    return { instance: '?', engine: 'none' } // the job itself reports an unreadable job.json
  }
}

export interface SpawnCallbacks {
  progress(fraction: number, message: string | undefined): void
  log(message: string): void
}

export interface SpawnOutcome {
  exitCode: number | null
  signal: string | null
  stderrTail: string
  /** The process ran past `timeoutMs` and was killed (SIGTERM, then SIGKILL 5 s later). */
  timedOut?: true
}

const TAIL_BYTES = 4096

/** Reasons for running through tsx already logged by this process (each is logged once). */
const explained = new Set<string>()

/**
 * The command for the job in `workDir`: `node <process bundle> <workDir> <pid> <stage bundle>`,
 * or `stageCommand` (tsx) plus this harness's pid when either bundle cannot be had. The stage
 * process exits as soon as its parent is not `harnessPid`.
 */
export async function localStageCommand(
  workDir: string,
  env: Record<string, string | undefined>,
  harnessPid: number = process.pid,
): Promise<{ file: string; args: string[]; bundled: boolean; why?: string }> {
  const harness = String(harnessPid)
  let why: string | undefined
  if (bundlingEnabled(env)) {
    let module: string | undefined
    try {
      module = (JSON.parse(readFileSync(join(workDir, 'job.json'), 'utf8')) as StageJob).module
    } catch {
      module = undefined // the stage process reports the unreadable job
    }
    if (typeof module === 'string') {
      const [proc, stage] = await Promise.all([stageBundle(STAGE_PROCESS_ENTRY), stageBundle(module)])
      if (proc.ok && stage.ok) return { file: process.execPath, args: [proc.path, workDir, harness, stage.path], bundled: true }
      why = !proc.ok ? proc.reason : !stage.ok ? stage.reason : undefined
      if (why !== undefined && !explained.has(why)) explained.add(why)
      else why = undefined
    }
  }
  const cmd = stageCommand(workDir)
  return { file: cmd.file, args: [...cmd.args, harness], bundled: false, ...(why !== undefined ? { why } : {}) }
}

/** Spawn the stage process for `workDir` with `stageEnv(env)` as the whole environment. */
export async function spawnStage(
  workDir: string,
  cwd: string,
  env: Record<string, string | undefined>,
  on: SpawnCallbacks,
  timeoutMs?: number,
): Promise<SpawnOutcome> {
  const cmd = await localStageCommand(workDir, env)
  if (cmd.why !== undefined) on.log(`no stage bundle, running through tsx: ${cmd.why}`)
  let tail = ''
  const secrets = envSecrets(env)
  const clean = (line: string): string => printable(line, secrets)
  const onStdout = (line: string): void => {
    const msg = parseMessage(line)
    if (msg.type === 'progress') on.progress(msg.fraction, msg.message === undefined ? undefined : clean(msg.message))
    else on.log(clean(msg.message))
  }
  const onStderr = (line: string): void => {
    const safe = clean(line)
    tail = `${tail}${safe}\n`.slice(-TAIL_BYTES)
    on.log(safe)
  }
  if (cmd.bundled && warmWorkersEnabled(env)) {
    const worker = await stageBundle(STAGE_WORKER_ENTRY)
    if (worker.ok) {
      const r = await runInWorker(
        {
          workDir,
          cwd,
          env: stageEnv(env),
          workerBundle: worker.path,
          stageBundle: cmd.args[3]!,
          ...jobInfo(workDir),
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        },
        (stream, line) => (stream === 'stdout' ? onStdout(line) : onStderr(line)),
        (pid) => recordStage(workDir, pid),
      )
      if (r.dirty !== undefined) on.log(`stage worker replaced, the job left behind: ${r.dirty.join(', ')}`)
      return { exitCode: r.exitCode, signal: r.signal, stderrTail: tail, ...(r.timedOut === true ? { timedOut: true as const } : {}) }
    }
  }
  // Loaded on first use: importing execa costs ~80 ms of CPU that a no-op rerun should not pay.
  const { execa } = await import('execa')
  const child = execa(cmd.file, cmd.args, {
    cwd,
    env: stageEnv(env),
    extendEnv: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
    buffer: false,
    stripFinalNewline: false,
    ...(timeoutMs !== undefined ? { timeout: timeoutMs } : {}),
  })
  if (child.pid !== undefined) recordStage(workDir, child.pid)
  const reading: Promise<void>[] = []
  if (child.stdout !== null) {
    const rl = createInterface({ input: child.stdout, crlfDelay: Infinity })
    rl.on('line', onStdout)
    reading.push(new Promise((res) => rl.once('close', () => res())))
  }
  if (child.stderr !== null) {
    const rl = createInterface({ input: child.stderr, crlfDelay: Infinity })
    rl.on('line', onStderr)
    reading.push(new Promise((res) => rl.once('close', () => res())))
  }
  const result = await child
  await Promise.all(reading)
  const spawnError = result.failed && result.exitCode === undefined && result.signal === undefined
  if (spawnError) tail = `${tail}${result.message}\n`.slice(-TAIL_BYTES)
  return {
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
    stderrTail: tail,
    ...(result.timedOut ? { timedOut: true as const } : {}),
  }
}
