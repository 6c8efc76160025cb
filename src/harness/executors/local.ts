/**
 * The local-process runner (`--executor local-process`): each instance runs as
 * `node <cusp>/scripts/pipeline.mjs run-stage <id> --store <url> --expect <fp>`, the very
 * command the Docker image's entrypoint runs (Dockerfile: `node /app/scripts/pipeline.mjs
 * run-stage`), only without a container. It exists so the container path (publish from the
 * child, read the run record in the scheduler) is exercised end to end on machines without
 * Docker, and as a way to run the remote protocol against a shared store from a workstation.
 * The default executor is still the in-process one (plan-run.ts with produce.ts), which needs no
 * shared store and streams progress.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseMessage } from '../stage-api.ts'
import { createInterface } from 'node:readline'
import {
  remoteFailure,
  runStageArgv,
  tail,
  timedOut,
  type InstanceRunner,
  type PipelineSpec,
  type RunnerOutcome,
  type RunnerRequest,
} from './runner.ts'

/** The directory holding cusp's `scripts/pipeline.mjs` (found upwards from this module, bundled or not). */
export function cuspRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'scripts', 'pipeline.mjs'))) return dir
    if (dirname(dir) === dir) throw new Error(`cannot find scripts/pipeline.mjs above ${from}`)
  }
}

/** The entrypoint command, as in the Dockerfile, with cusp installed at `root`. */
export function entrypointCommand(root: string = cuspRoot()): { file: string; args: string[] } {
  return { file: process.execPath, args: [join(root, 'scripts', 'pipeline.mjs')] }
}

export interface LocalRunnerOptions {
  spec: PipelineSpec
  /** The project root (the child's cwd). */
  projectRoot: string
  /** The child's whole environment. */
  env: Record<string, string | undefined>
}

/** A runner that runs the entrypoint command as a child process of this one. */
export class LocalProcessRunner implements InstanceRunner {
  readonly name = 'local-process'
  readonly needsSharedStore = false
  private readonly live = new Set<{ kill(signal?: NodeJS.Signals): boolean }>()
  constructor(private readonly o: LocalRunnerOptions) {}

  async run(req: RunnerRequest): Promise<RunnerOutcome> {
    const cmd = entrypointCommand()
    const args = [...cmd.args, ...runStageArgv(this.o.spec, req.instance.id, req.fingerprint), '--json']
    return await runStreaming(cmd.file, args, { cwd: this.o.projectRoot, env: this.o.env, executor: this.name }, req, this.live)
  }

  async cancelAll(): Promise<void> {
    for (const c of this.live) c.kill('SIGTERM')
  }
}

/**
 * Runs `file args` (no shell), turning its `--json` stdout lines into the instance's progress and
 * log events as they arrive and keeping the stderr tail for a failure. Never rejects for a
 * failing child; a spawn error (e.g. no docker CLI) is a failure with its message.
 */
export async function runStreaming(
  file: string,
  args: string[],
  o: { cwd?: string; env: Record<string, string | undefined>; executor: string },
  req: RunnerRequest,
  live: Set<{ kill(signal?: NodeJS.Signals): boolean }>,
): Promise<RunnerOutcome> {
  const id = req.instance.id
  const { execa } = await import('execa')
  const child = execa(file, args, {
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    env: o.env,
    extendEnv: false,
    stdin: 'ignore',
    reject: false,
    buffer: false,
    // Past the instance's time limit: SIGTERM, then SIGKILL 5 s later (execa's forceKillAfterDelay).
    ...(req.timeout !== undefined ? { timeout: req.timeout.seconds * 1000 } : {}),
  })
  live.add(child)
  let stderr = ''
  const reading: Promise<void>[] = []
  if (child.stdout !== null) {
    const rl = createInterface({ input: child.stdout, crlfDelay: Infinity })
    rl.on('line', (line) => forwardEvent(id, line, req))
    reading.push(new Promise((res) => rl.once('close', () => res())))
  }
  if (child.stderr !== null) {
    const rl = createInterface({ input: child.stderr, crlfDelay: Infinity })
    rl.on('line', (line) => {
      stderr = tail(`${stderr}${line}\n`)
    })
    reading.push(new Promise((res) => rl.once('close', () => res())))
  }
  try {
    const r = await child
    await Promise.all(reading)
    if (r.exitCode === 0) return { ok: true }
    if (r.timedOut && req.timeout !== undefined) return { ok: false, failure: timedOut(id, req.timeout, o.executor, stderr) }
    const why = r.exitCode === undefined && r.signal === undefined ? `${r.message}\n` : ''
    return { ok: false, failure: remoteFailure(id, r.exitCode ?? null, r.signal ?? null, `${why}${stderr}`) }
  } finally {
    live.delete(child)
  }
}

/** Re-emits a child's `--json` event line for the instance (other lines become logs). */
export function forwardEvent(id: string, line: string, req: Pick<RunnerRequest, 'emit'>): void {
  if (line.trim() === '') return
  try {
    const e = JSON.parse(line) as { type?: unknown; instance?: unknown; fraction?: unknown; message?: unknown }
    if (e.type === 'progress' && e.instance === id && typeof e.fraction === 'number') {
      req.emit(
        typeof e.message === 'string'
          ? { type: 'progress', instance: id, fraction: e.fraction, message: e.message }
          : { type: 'progress', instance: id, fraction: e.fraction },
      )
      return
    }
    if (e.type === 'log' && typeof e.message === 'string') {
      req.emit({ type: 'log', instance: id, message: e.message })
      return
    }
    if (typeof e.type === 'string') return // plan/start/done of the child's own run: the scheduler reports those
  } catch {
    // not JSON: fall through
  }
  const msg = parseMessage(line)
  req.emit({ type: 'log', instance: id, message: msg.type === 'log' ? msg.message : line })
}
