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
 * The stage's pid is written to `<workDir>/stage.pid` as soon as it is spawned, so a sweep of a
 * killed harness's work directory can find and stop the stage it left behind (workdir.ts).
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { envSecrets, isSecretEnvName, printable } from './redact.ts'
import { parseMessage, stageCommand } from './stage-api.ts'

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

/** Spawn `stage-process.ts <workDir>` with `stageEnv(env)` as the whole environment. */
export async function spawnStage(
  workDir: string,
  cwd: string,
  env: Record<string, string | undefined>,
  on: SpawnCallbacks,
  timeoutMs?: number,
): Promise<SpawnOutcome> {
  const cmd = stageCommand(workDir)
  // Loaded on first use: importing execa costs ~80 ms of CPU that a no-op rerun should not pay.
  const { execa } = await import('execa')
  let tail = ''
  const secrets = envSecrets(env)
  const clean = (line: string): string => printable(line, secrets)
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
  if (child.pid !== undefined) {
    try {
      writeFileSync(join(workDir, 'stage.pid'), `${child.pid}\n`)
    } catch {
      // the sweep then falls back to the harness's pid alone
    }
  }
  const reading: Promise<void>[] = []
  if (child.stdout !== null) {
    const rl = createInterface({ input: child.stdout, crlfDelay: Infinity })
    rl.on('line', (line) => {
      const msg = parseMessage(line)
      if (msg.type === 'progress') on.progress(msg.fraction, msg.message === undefined ? undefined : clean(msg.message))
      else on.log(clean(msg.message))
    })
    reading.push(new Promise((res) => rl.once('close', () => res())))
  }
  if (child.stderr !== null) {
    const rl = createInterface({ input: child.stderr, crlfDelay: Infinity })
    rl.on('line', (line) => {
      const safe = clean(line)
      tail = `${tail}${safe}\n`.slice(-TAIL_BYTES)
      on.log(safe)
    })
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
