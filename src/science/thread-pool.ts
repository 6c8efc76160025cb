/**
 * The objective's worker threads (worker.ts), and, inside a warm stage worker only, a process-wide
 * pool that keeps them between jobs (docs/architecture.md, "Stage processes"). Starting a thread
 * costs a tsx boot, the tfjs import and the wasm compile (~1 s of CPU each); a parked thread keeps
 * only that: its engine. Each objective sends its own setup (model spec and chunks), which replaces
 * the last one completely, and at dispose a thread drops its model, chunks and cached tensors and
 * reports its engine state (warm-engine.ts's description). The first report is the thread's
 * baseline; a thread is parked only if its report names no problem (a live tensor, a flag set) and
 * equals that baseline, and it did not fail or crash during the job; any other thread is ended.
 * Parked threads are unref'd, so they never keep a process alive, and die with the stage worker.
 * The pool lives in the keeper registry (warm-keepers.ts) as the keeper 'objective-threads', so
 * each job's fresh module instance finds it, and a job that ends with threads still in use (an
 * objective not disposed) costs its worker. Outside a warm worker there is no registry: threads are
 * started per objective and ended on dispose, as always.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { BackendChoice } from './engine.ts'
import type { ModelSpec } from './models.ts'

/** One chunk as shipped to a worker (a copy of the dataset's rows, transferred). */
export interface WorkerChunk {
  index: number
  x: Float32Array
  y: Int32Array
  n: number
}
/** workerData of worker.ts: the engine it initialises, once. */
export interface WorkerBoot {
  backend: BackendChoice
}
/**
 * A computation request (objective.ts queues them: one at a time). θ and v are not in the message:
 * the objective writes them into the memory it shares with its threads (`Shared`) before posting it.
 */
export type OpRequest = { id: number; op: 'loss' | 'gradient' | 'hvp' }
/**
 * The memory an objective shares with its threads, P float32s each: θ and v of the current
 * request. A thread copies them out when it starts the request.
 */
export interface Shared {
  theta: SharedArrayBuffer
  v: SharedArrayBuffer
}
/**
 * Messages to a worker: a setup (replaces the model, chunks and shared memory; answered by
 * 'ready'), a request, a result buffer given back for reuse ('recycle', handled on arrival), a park
 * (drop the setup, answer with the engine state), or a test hook ('leak' keeps a tensor alive,
 * 'backend' switches to the cpu backend, 'fail' fails the next request).
 */
export type ToWorker =
  | { op: 'setup'; spec: ModelSpec; chunks: WorkerChunk[]; shared: Shared }
  | OpRequest
  | { op: 'recycle'; buffer: ArrayBuffer }
  | { op: 'park' }
  | { op: 'hook'; hook: Hook }
/** What a test hook does to a thread (see ToWorker). */
export type Hook = 'leak' | 'backend' | 'fail'
/**
 * Messages from a worker: ready, a chunk's sums (`vec` is transferred: the objective gives its
 * buffer back with 'recycle' once it has added it; `fresh` when the thread had none to reuse), a
 * failure (id -1: setup), or its state when parked.
 */
export type ToMain =
  | { type: 'ready'; backend: string }
  | { type: 'chunk'; id: number; index: number; loss: number; vec?: Float32Array; fresh?: boolean }
  | { type: 'failed'; id: number; message: string }
  | { type: 'parked'; state: Record<string, string | number>; problems: string[] }

/** Where a thread's events go: the objective using it, or the pool while it is parked. */
export interface ThreadEvents {
  message(msg: ToMain): void
  error(e: Error): void
  exit(code: number): void
}

/** A worker thread and its engine's baseline (the state it reported when first parked). */
export interface Thread {
  readonly worker: Worker
  readonly key: string
  events: ThreadEvents
  baseline?: string
  readonly exited: Promise<void>
  /** While parked: the timer that ends the thread if no objective takes it. */
  idle?: NodeJS.Timeout
}

/** The pool: parked threads by key (backend and boot code), and the threads in use. */
interface Pool {
  globals: readonly string[]
  events: readonly string[]
  state(): Record<string, string | number>
  problems(): string[]
  parked: Map<string, Thread[]>
  busy: Set<Thread>
}

const KEEPERS = Symbol.for('cusp.stage-worker.keepers')
const NAME = 'objective-threads'
/** Most threads parked per key: more than a job runs at once would only hold memory. */
const CAP = Math.max(4, availableParallelism())
/**
 * A parked thread no objective takes within this time is ended, so that an idle stage worker (the
 * harness keeps a few between stages) does not hold ~250 MiB per thread until the run ends.
 */
let idleMs = 60_000

/** Sets how long a parked thread waits for an objective before it is ended (tests). */
export function setParkedIdleMs(ms: number): void {
  idleMs = ms
}

// Workers load TypeScript through tsx's register API: on Node 20 `execArgv: ['--import', 'tsx']`
// does not reach a worker's module loader. Resolved from here so any cwd (and tap) works.
const workerBoot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}) })`

/** The warm stage worker's pool (registered as a keeper on first use), or undefined outside one. */
function pool(): Pool | undefined {
  const keepers = (globalThis as Record<symbol, unknown>)[KEEPERS]
  if (!(keepers instanceof Map)) return undefined
  const found = keepers.get(NAME) as Pool | undefined
  if (found !== undefined) return found
  const made: Pool = {
    globals: [],
    events: [],
    state: () => ({}),
    problems: () => (made.busy.size > 0 ? [`${made.busy.size} objective threads still in use (an objective not disposed)`] : []),
    parked: new Map(),
    busy: new Set(),
  }
  keepers.set(NAME, made)
  return made
}

/** Threads parked in this process's pool (0 outside a warm stage worker). */
export function parkedThreads(): number {
  let n = 0
  for (const list of pool()?.parked.values() ?? []) n += list.length
  return n
}

const ignore: ThreadEvents = { message: () => undefined, error: () => undefined, exit: () => undefined }

/** Starts a thread that initialises `backend`; its events go to `events`. */
function spawn(backend: BackendChoice, key: string, events: ThreadEvents): Thread {
  const worker = new Worker(workerBoot, { eval: true, workerData: { backend } satisfies WorkerBoot, execArgv: [] })
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
  const thread: Thread = { worker, key, events, exited }
  worker.on('message', (msg: ToMain) => thread.events.message(msg))
  worker.on('error', (e: Error) => thread.events.error(e))
  worker.on('exit', (code: number) => thread.events.exit(code))
  return thread
}

/**
 * `count` threads for `backend`, parked ones first (in a warm stage worker), the rest started; each
 * thread's events go to `events(i)`. `reused` says how many came from the pool.
 */
export function takeThreads(
  backend: BackendChoice,
  count: number,
  events: (i: number) => ThreadEvents,
): { threads: Thread[]; reused: number } {
  const p = pool()
  const key = `${backend} ${workerBoot}`
  const parked = p?.parked.get(key) ?? []
  const threads: Thread[] = []
  let reused = 0
  for (let i = 0; i < count; i++) {
    const old = parked.pop()
    if (old !== undefined) {
      clearTimeout(old.idle)
      old.events = events(i)
      old.worker.ref()
      reused++
    }
    const t = old ?? spawn(backend, key, events(i))
    p?.busy.add(t)
    threads.push(t)
  }
  return { threads, reused }
}

/**
 * A reused thread that died between being parked and answering its next setup (it crashed while
 * parked, or its exit was still on its way when it was taken: node reports a thread's end only
 * asynchronously, so a dead thread can be taken): ends it for good and starts a fresh one with
 * the same events in its place. Only for reused threads; a fresh thread that dies is a failure.
 */
export function replaceThread(old: Thread, backend: BackendChoice, events: ThreadEvents): Thread {
  const p = pool()
  p?.busy.delete(old)
  old.events = ignore
  void old.worker.terminate()
  const t = spawn(backend, old.key, events)
  p?.busy.add(t)
  return t
}

/**
 * Gives back an objective's threads. Outside a warm stage worker, or when `clean` is false (a
 * request or the setup failed, a thread crashed), they are ended. Otherwise each is asked to drop
 * its setup and report its engine; those whose report is clean and equals their baseline are
 * parked, the others ended. Resolves when every ended thread has exited.
 */
export async function returnThreads(threads: Thread[], clean: boolean): Promise<void> {
  const p = pool()
  for (const t of threads) p?.busy.delete(t)
  const verdicts = await Promise.all(threads.map((t) => (p !== undefined && clean ? park(p, t) : Promise.resolve(false))))
  const ended = threads.filter((_, i) => !verdicts[i])
  for (const t of ended) t.events = ignore
  await Promise.all(ended.map((t) => t.worker.terminate()))
  await Promise.all(ended.map((t) => t.exited))
}

/** Asks `t` for its engine state and parks it if that is clean and its baseline; resolves whether it was parked. */
function park(p: Pool, t: Thread): Promise<boolean> {
  return new Promise((resolve) => {
    if (t.worker.threadId < 0) return resolve(false) // already exited
    t.events = {
      message: (msg) => {
        if (msg.type !== 'parked') return resolve(false)
        const state = JSON.stringify(msg.state)
        t.baseline ??= state
        const list = p.parked.get(t.key) ?? []
        if (msg.problems.length > 0 || state !== t.baseline || list.length >= CAP) return resolve(false)
        t.events = parkedEvents(p, t)
        t.worker.unref()
        list.push(t)
        p.parked.set(t.key, list)
        t.idle = setTimeout(() => t.events.error(new Error('idle')), idleMs)
        t.idle.unref()
        resolve(true)
      },
      error: () => resolve(false),
      exit: () => resolve(false),
    }
    t.worker.postMessage({ op: 'park' } satisfies ToWorker)
  })
}

/** A parked thread that errs, exits or waits too long leaves the pool (an error or the wait also ends it). */
function parkedEvents(p: Pool, t: Thread): ThreadEvents {
  const leave = (): void => {
    const list = p.parked.get(t.key) ?? []
    const i = list.indexOf(t)
    if (i >= 0) list.splice(i, 1)
  }
  return {
    message: () => undefined,
    error: () => {
      leave()
      void t.worker.terminate()
    },
    exit: leave,
  }
}
