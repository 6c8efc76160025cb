/**
 * The pool of warm stage workers (local runs' default; `CUSP_STAGE_WORKERS=fresh` turns it off): instead of a
 * process per instance, a local run keeps worker processes (stage-worker.ts), at most one per
 * running job, so one per job slot, and hands each a job at a time. A worker is reused only
 * after a job that succeeded and left nothing behind (stage-worker.ts says what it checks); a
 * job that failed, crashed, timed out or left state behind costs its worker, which is killed and
 * waited for before the outcome is returned (nothing of it can still write into outputs the
 * harness is about to check), and the next job starts a fresh one. Workers are keyed by their
 * environment, working directory, stage and engine backend (the job's `env.backend`), so a job
 * never runs in a worker started for another, nor on an engine warmed for another backend. At
 * most MAX_IDLE workers wait idle, over all keys (the least recently used goes first). An
 * idle worker does not keep the harness alive (its handles are unref'd) and exits when the
 * harness does. After MAX_JOBS jobs a worker is retired (each job adds a module instance).
 * `CUSP_STAGE_WORKER_LOG=<file>` appends a JSON line per job: instance, worker pid, whether the worker had
 * run a job before (`reused`), and what a job left behind (`dirty`), for tests and measurements.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { createInterface } from 'node:readline'

const MAX_JOBS = 64
const MAX_IDLE = 4
const END = '\u0000cusp-end '

interface EndInfo {
  n: number
  code: number
  dirty: string[]
}

interface Worker {
  child: ChildProcess
  jobs: number
  exited: Promise<{ code: number | null; signal: string | null }>
  gone: boolean
  out?: (line: string) => void
  err?: (line: string) => void
}

const idle = new Map<string, Worker[]>()
/** Idle workers, least recently used first. */
const idleOrder: Worker[] = []
let jobCounter = 0

/** Whether stage jobs run in warm workers: yes unless `CUSP_STAGE_WORKERS=fresh` (a process per job). */
export function warmWorkersEnabled(env: Record<string, string | undefined>): boolean {
  return env.CUSP_STAGE_WORKERS !== 'fresh'
}

/** The most recently parked live worker of `pool` (dead ones found on the way are dropped). */
function takeIdle(pool: Worker[]): Worker | undefined {
  for (let w = pool.pop(); w !== undefined; w = pool.pop()) {
    idleOrder.splice(idleOrder.indexOf(w), 1)
    if (!w.gone) return w
  }
  return undefined
}

/** Parks `w` in `pool`, retiring the least recently used idle worker past MAX_IDLE. */
function park(w: Worker, pool: Worker[]): void {
  setRef(w, false)
  pool.push(w)
  idleOrder.push(w)
  while (idleOrder.length > MAX_IDLE) {
    const old = idleOrder.shift()!
    for (const p of idle.values()) if (p.includes(old)) p.splice(p.indexOf(old), 1)
    void retire(old)
  }
}

function setRef(w: Worker, on: boolean): void {
  for (const s of [w.child, w.child.stdin, w.child.stdout, w.child.stderr] as Array<{ ref?(): void; unref?(): void } | null>) {
    if (on) s?.ref?.()
    else s?.unref?.()
  }
}

function start(workerBundle: string, cwd: string, env: Record<string, string>): Worker {
  const child = spawn(process.execPath, [workerBundle, String(process.pid)], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] })
  const w: Worker = { child, jobs: 0, gone: false, exited: undefined as never }
  w.exited = new Promise((res) => {
    child.once('exit', (code, signal) => {
      w.gone = true
      res({ code, signal })
    })
    child.once('error', () => {
      w.gone = true
      res({ code: null, signal: null })
    })
  })
  child.stdin?.on('error', () => undefined) // a dead worker's stdin: the exit says what happened
  createInterface({ input: child.stdout!, crlfDelay: Infinity }).on('line', (l) => w.out?.(l))
  createInterface({ input: child.stderr!, crlfDelay: Infinity }).on('line', (l) => w.err?.(l))
  return w
}

/** What became of one job in a worker, in spawn-stage.ts's terms. */
export interface WorkerOutcome {
  exitCode: number | null
  signal: string | null
  timedOut?: true
  /** What the job left behind (its worker was replaced). */
  dirty?: string[]
}

/**
 * Runs the job in `workDir` (the stage from `stageBundle`) in a warm worker; `line` gets each
 * line the job wrote, with its stream; `pid` the worker's pid, before the job is sent.
 */
export async function runInWorker(
  a: {
    workDir: string
    cwd: string
    env: Record<string, string>
    workerBundle: string
    stageBundle: string
    /** The engine backend the job asks for (its job.json `env.backend`). */
    engine?: string
    /** The job's instance, for CUSP_STAGE_WORKER_LOG. */
    instance?: string
    timeoutMs?: number
  },
  line: (stream: 'stdout' | 'stderr', text: string) => void,
  pid: (pid: number) => void,
): Promise<WorkerOutcome> {
  const key = JSON.stringify([a.workerBundle, a.cwd, a.env, a.stageBundle, a.engine ?? null])
  const pool = idle.get(key) ?? []
  idle.set(key, pool)
  let w = takeIdle(pool)
  const reused = w !== undefined
  w ??= start(a.workerBundle, a.cwd, a.env)
  setRef(w, true)
  if (w.child.pid !== undefined) pid(w.child.pid)
  const n = ++jobCounter
  const ends: Partial<Record<'stdout' | 'stderr', EndInfo>> = {}
  let finish: () => void = () => undefined
  const ended = new Promise<void>((res) => (finish = res))
  const onLine = (stream: 'stdout' | 'stderr') => (text: string) => {
    if (text.startsWith(END)) {
      ends[stream] = JSON.parse(text.slice(END.length)) as EndInfo
      if (ends.stdout !== undefined && ends.stderr !== undefined) finish()
    } else line(stream, text)
  }
  w.out = onLine('stdout')
  w.err = onLine('stderr')
  let timedOut = false
  const timer =
    a.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true
          w.child.kill('SIGTERM')
          setTimeout(() => w.child.kill('SIGKILL'), 5000).unref()
        }, a.timeoutMs)
  w.child.stdin?.write(`${JSON.stringify({ n, workDir: a.workDir, bundle: a.stageBundle })}\n`)
  const first = await Promise.race([ended.then(() => 'ended' as const), w.exited.then(() => 'exited' as const)])
  if (timer !== undefined) clearTimeout(timer)
  w.jobs++
  const end = ends.stdout
  const log = a.env.CUSP_STAGE_WORKER_LOG
  if (log !== undefined && log !== '') {
    const rec = {
      instance: a.instance,
      pid: w.child.pid,
      reused,
      code: first === 'ended' ? (end?.code ?? null) : null,
      dirty: end?.dirty ?? [],
    }
    try {
      appendFileSync(log, `${JSON.stringify(rec)}\n`)
    } catch {
      // a debugging aid: never fails a job
    }
  }
  if (first === 'ended' && end !== undefined && end.n === n && end.code === 0 && end.dirty.length === 0 && !timedOut) {
    w.out = undefined
    w.err = undefined
    if (w.jobs >= MAX_JOBS) await retire(w)
    else park(w, pool)
    return { exitCode: 0, signal: null }
  }
  // Failed, crashed, timed out or dirty: the worker goes, and is gone before the outcome returns.
  if (!w.gone) w.child.kill('SIGKILL')
  const exit = await w.exited
  w.out = undefined
  w.err = undefined
  if (timedOut) return { exitCode: null, signal: 'SIGTERM', timedOut: true }
  if (first === 'ended' && end !== undefined) {
    return { exitCode: end.code, signal: null, ...(end.dirty.length > 0 ? { dirty: end.dirty } : {}) }
  }
  return { exitCode: exit.code, signal: exit.signal }
}

async function retire(w: Worker): Promise<void> {
  if (w.gone) return
  setRef(w, true) // an unref'd child's exit would not keep this process waiting for it
  w.child.stdin?.end()
  w.child.kill('SIGKILL')
  await w.exited
}

/** Stops every idle worker (tests, and a harness that wants its children gone now). */
export async function closeStageWorkers(): Promise<void> {
  const all = [...idle.values()].flat()
  idle.clear()
  idleOrder.length = 0
  await Promise.all(all.map((w) => retire(w)))
}
