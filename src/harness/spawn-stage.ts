/**
 * Runs one prepared stage job as a child process (execa, no shell, cwd = project root) and
 * streams what it says: stdout protocol lines become progress and log callbacks, stderr lines
 * become log callbacks and the last few KiB are kept for the failure message. Resolves with
 * the exit status; never rejects for a failing stage (a spawn error is reported as exit null).
 */
import { createInterface } from 'node:readline'
import { parseMessage, stageCommand } from './stage-api.ts'

export interface SpawnCallbacks {
  progress(fraction: number, message: string | undefined): void
  log(message: string): void
}

export interface SpawnOutcome {
  exitCode: number | null
  signal: string | null
  stderrTail: string
}

const TAIL_BYTES = 4096

/** Spawn `stage-process.ts <workDir>` with `env` as the whole environment. */
export async function spawnStage(
  workDir: string,
  cwd: string,
  env: Record<string, string | undefined>,
  on: SpawnCallbacks,
): Promise<SpawnOutcome> {
  const cmd = stageCommand(workDir)
  // Loaded on first use: importing execa costs ~80 ms of CPU that a no-op rerun should not pay.
  const { execa } = await import('execa')
  let tail = ''
  const child = execa(cmd.file, cmd.args, {
    cwd,
    env,
    extendEnv: false,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    reject: false,
    buffer: false,
    stripFinalNewline: false,
  })
  const reading: Promise<void>[] = []
  if (child.stdout !== null) {
    const rl = createInterface({ input: child.stdout, crlfDelay: Infinity })
    rl.on('line', (line) => {
      const msg = parseMessage(line)
      if (msg.type === 'progress') on.progress(msg.fraction, msg.message)
      else on.log(msg.message)
    })
    reading.push(new Promise((res) => rl.once('close', () => res())))
  }
  if (child.stderr !== null) {
    const rl = createInterface({ input: child.stderr, crlfDelay: Infinity })
    rl.on('line', (line) => {
      tail = `${tail}${line}\n`.slice(-TAIL_BYTES)
      on.log(line)
    })
    reading.push(new Promise((res) => rl.once('close', () => res())))
  }
  const result = await child
  await Promise.all(reading)
  const spawnError = result.failed && result.exitCode === undefined && result.signal === undefined
  if (spawnError) tail = `${tail}${result.message}\n`.slice(-TAIL_BYTES)
  return { exitCode: result.exitCode ?? null, signal: result.signal ?? null, stderrTail: tail }
}
