/**
 * The local-process runner (`--executor local-process`): each instance runs as
 * `node <cusp>/scripts/pipeline.mjs run-stage <id> --store <url> --expect <fp>`, the very
 * command the Docker image's entrypoint runs (Dockerfile: `node /app/scripts/pipeline.mjs
 * run-stage`), only without a container. It exists so the container path (publish from the
 * child, read the run record in the scheduler) is exercised end to end on machines without
 * Docker, and as a way to run the remote protocol against a shared store from a workstation.
 * The default executor is still the in-process one (execution.ts `produce`), which needs no
 * shared store and streams progress.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseMessage } from '../stage-runner.ts'
import { remoteFailure, runStageArgv, type InstanceRunner, type PipelineSpec, type RunnerOutcome, type RunnerRequest } from './runner.ts'

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
    const id = req.instance.id
    const cmd = entrypointCommand()
    const { execa } = await import('execa')
    const child = execa(cmd.file, [...cmd.args, ...runStageArgv(this.o.spec, id, req.fingerprint), '--json'], {
      cwd: this.o.projectRoot,
      env: this.o.env,
      extendEnv: false,
      stdin: 'ignore',
      reject: false,
      lines: true,
    })
    this.live.add(child)
    try {
      const r = await child
      for (const line of r.stdout as unknown as string[]) forwardEvent(id, line, req)
      if (r.exitCode === 0) return { ok: true }
      return { ok: false, failure: remoteFailure(id, r.exitCode ?? null, r.signal ?? null, (r.stderr as unknown as string[]).join('\n')) }
    } finally {
      this.live.delete(child)
    }
  }

  async cancelAll(): Promise<void> {
    for (const c of this.live) c.kill('SIGTERM')
  }
}

/** Re-emits a child's `--json` event line for the instance (other lines become logs). */
export function forwardEvent(id: string, line: string, req: Pick<RunnerRequest, 'emit'>): void {
  if (line.trim() === '') return
  try {
    const e = JSON.parse(line) as { type?: unknown; instance?: unknown; fraction?: unknown; message?: unknown }
    if (e.type === 'progress' && e.instance === id && typeof e.fraction === 'number') {
      req.emit(typeof e.message === 'string' ? { type: 'progress', instance: id, fraction: e.fraction, message: e.message } : { type: 'progress', instance: id, fraction: e.fraction })
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
