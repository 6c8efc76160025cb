/**
 * The full-batch training objective L(θ) of paper §3.2 (cross-entropy over the whole dataset, mean
 * or sum), with its gradient and exact Hessian-vector products (§3.3), evaluated by a pool of
 * worker threads. The wasm backend runs one thread per process in Node (docs/architecture.md "Engine facts"),
 * so cores are used by giving each worker its own engine and a share of the dataset's FIXED chunks
 * (hvp.ts `chunks`: equal runs of at most `chunkSize` examples; chunk i lives on worker i mod W). Workers return
 * each chunk's sum; this thread adds them in float64 IN CHUNK ORDER and divides by n for the mean,
 * exactly as hvp.ts's in-process `dataset*` functions do, so the bits do not depend on the number
 * of workers and equal the in-process result on the same backend. Calls are queued: one at a time.
 */
import { availableParallelism } from 'node:os'
import type { Worker } from 'node:worker_threads'
import type { BackendChoice } from './engine.ts'
import { chunks, type Dataset, type Reduction } from './hvp.ts'
import { buildModel, type ModelSpec } from './models.ts'
import {
  replaceThread,
  returnThreads,
  takeThreads,
  type Hook,
  type OpRequest,
  type Shared,
  type ThreadEvents,
  type ToWorker,
  type WorkerChunk,
} from './thread-pool.ts'

/** Options of createObjective. */
export interface ObjectiveOptions {
  spec: ModelSpec
  data: Dataset
  /** 'mean' (default) divides the chunk sums by n. */
  reduction?: Reduction
  /** Most examples per chunk (default 250; chunks are equal in size); part of what fixes the bits, unlike `workers`. */
  chunkSize?: number
  /**
   * Worker threads (default os.availableParallelism()); never more than there are chunks, and one
   * when the backend is webgpu or (or 'auto' resolves to) native TensorFlow, which threads by itself.
   */
  workers?: number
  /** Engine each worker initialises (default 'wasm'). */
  backend?: BackendChoice
}

/**
 * L, ∇L and Hv over a fixed dataset; every method may be called many times (calls are queued, one
 * at a time). Call dispose() when done: live workers keep the process alive.
 */
export interface Objective {
  /** Number of parameters P. */
  readonly size: number
  /** Worker threads in use (until dispose). */
  readonly workers: number
  /** Backend the workers run (as reported by their engines). */
  readonly backend: string
  loss(theta: Float32Array): Promise<number>
  gradient(theta: Float32Array): Promise<{ loss: number; grad: Float32Array }>
  hvp(theta: Float32Array, v: Float32Array): Promise<Float32Array>
  /**
   * Ends the worker threads (in a warm stage worker: parks the clean ones, thread-pool.ts); resolves
   * when the ended ones have exited. Later calls reject.
   */
  dispose(): Promise<void>
}

type Op = OpRequest['op']
interface Pending {
  id: number
  op: Op
  /** Chunk sums not yet added (they wait for the chunks before them), and the thread each came from. */
  results: Map<number, { loss: number; vec?: Float32Array; from: number }>
  fail: (e: Error) => void
  onChunk: () => void
}

/**
 * Starts the worker pool for `opts.data` and resolves once every worker's engine is ready.
 * Rejects (after ending the workers) if any worker fails to start.
 */
export async function createObjective(opts: ObjectiveOptions): Promise<Objective> {
  const model = buildModel(opts.spec)
  const size = model.size
  const all = chunks(model, opts.data, opts.chunkSize ?? 250)
  if (all.length === 0) throw new Error('createObjective: the dataset has no examples')
  const reduction = opts.reduction ?? 'mean'
  const divisor = reduction === 'mean' ? opts.data.n : 1
  const backend = opts.backend ?? 'wasm'
  // Native TensorFlow threads (and owns the GPU) by itself, and webgpu has one device: one engine.
  const wanted = nativeWouldRun(backend) || backend === 'webgpu' ? 1 : (opts.workers ?? availableParallelism())
  const count = Math.max(1, Math.min(wanted, all.length))

  let current: Pending | undefined
  let broken: Error | undefined
  let failed = false
  let disposed = false
  const readies: Array<(name: string) => void> = []
  const rejects: Array<(e: Error) => void> = []
  const isReady: boolean[] = Array.from({ length: count }, () => false)
  const ready = Array.from({ length: count }, (_, w) => new Promise<string>((res, rej) => ((readies[w] = res), (rejects[w] = rej))))
  const events = (w: number): ThreadEvents => {
    const fail = (e: Error): void => {
      // A reused thread that dies before its setup is answered is replaced, not a failure.
      if (replaceDead(w)) return
      broken ??= e
      rejects[w]!(e)
      current?.fail(e)
    }
    return {
      message: (msg) => {
        if (msg.type === 'ready') {
          isReady[w] = true
          readies[w]!(msg.backend)
        } else if (msg.type === 'failed' && msg.id < 0) fail(new Error(`objective worker ${w} failed to start: ${msg.message}`))
        else if (msg.type === 'failed') {
          failed = true
          if (current?.id === msg.id) current.fail(new Error(`objective worker ${w}: ${msg.message}`))
        } else if (msg.type === 'chunk' && current?.id === msg.id) {
          if (msg.fresh === true) fresh++
          current.results.set(msg.index, msg.vec === undefined ? { loss: msg.loss, from: w } : { loss: msg.loss, vec: msg.vec, from: w })
          current.onChunk()
        } else if (msg.type === 'chunk' && msg.vec !== undefined) recycle(w, msg.vec) // of a call that failed
      },
      error: (e) => fail(new Error(`objective worker ${w} crashed: ${e.message}`)),
      exit: (code) => {
        if (!disposed) fail(new Error(`objective worker ${w} exited (code ${code})`))
      },
    }
  }
  // θ and v of each request go through memory shared with the threads, and the chunk sums are added
  // into one accumulator: no array of P floats is made per call but the result (page faults, hvp.ts).
  const shared: Shared = { theta: new SharedArrayBuffer(size * 4), v: new SharedArrayBuffer(size * 4) }
  const sharedTheta = new Float32Array(shared.theta)
  const sharedV = new Float32Array(shared.v)
  const acc = new Float64Array(size)
  let fresh = 0
  const taken = takeThreads(backend, count, events)
  const threads = taken.threads
  let reused = taken.reused
  /**
   * Sends thread w its share. A fresh thread takes the chunks' buffers (transferred); a reused one
   * gets a copy, so that if it turns out to be dead the share can still go to its replacement.
   */
  const setup = (w: number): void => {
    const t = threads[w]!
    const mine = share(all, w, count)
    const transferList = t.baseline === undefined ? mine.flatMap((c) => [c.x.buffer as ArrayBuffer, c.y.buffer as ArrayBuffer]) : []
    t.worker.postMessage({ op: 'setup', spec: opts.spec, chunks: mine, shared } satisfies ToWorker, transferList)
  }
  /** Gives a chunk's result buffer back to thread w for its next chunks (moved, not copied). */
  function recycle(w: number, vec: Float32Array): void {
    const b = vec.buffer
    if (!disposed && b instanceof ArrayBuffer) threads[w]?.worker.postMessage({ op: 'recycle', buffer: b } satisfies ToWorker, [b])
  }
  function replaceDead(w: number): boolean {
    const t = threads[w]
    if (t === undefined || t.baseline === undefined || isReady[w] || disposed) return false
    threads[w] = replaceThread(t, backend, events(w))
    reused--
    setup(w)
    return true
  }
  threads.forEach((_, w) => setup(w))

  /** Gives the threads back: parked for the next objective if nothing went wrong (warm stage worker only), else ended. */
  const endAll = async (): Promise<void> => {
    disposed = true
    await returnThreads(threads, broken === undefined && !failed)
  }

  let backendName: string
  try {
    const names = await Promise.all(ready)
    backendName = names[0] ?? backend
  } catch (e: unknown) {
    await endAll()
    throw e
  }

  /**
   * Runs `op` on every worker; resolves with the summed loss and, but for 'loss', the chunk sums
   * accumulated in chunk order, divided by `divisor`, as float32.
   */
  const run = (op: Op, theta: Float32Array, v?: Float32Array): Promise<{ loss: number; sum?: Float32Array }> =>
    new Promise((resolve, reject) => {
      if (disposed) return reject(new Error('objective is disposed'))
      if (broken !== undefined) return reject(broken)
      if (theta.length !== size) return reject(new Error(`theta has ${theta.length} entries, model needs ${size}`))
      if (v !== undefined && v.length !== size) return reject(new Error(`v has ${v.length} entries, model needs ${size}`))
      if (op !== 'loss') acc.fill(0)
      let total = 0
      let next = 0
      let out: Float32Array | undefined
      const id = ++callId
      const pending: Pending = {
        id,
        op,
        results: new Map(),
        fail: (e) => {
          current = undefined
          reject(e)
        },
        onChunk: () => {
          // Add every chunk that is ready, strictly in chunk order (this fixes the bits).
          for (let r = pending.results.get(next); r !== undefined; r = pending.results.get(next)) {
            pending.results.delete(next)
            total += r.loss
            if (r.vec !== undefined) {
              addInto(acc, r.vec)
              recycle(r.from, r.vec)
            }
            next++
          }
          if (next === all.length) {
            current = undefined
            resolve(out === undefined ? { loss: total } : { loss: total, sum: toFloat32(acc, divisor, out) })
          }
        },
      }
      current = pending
      sharedTheta.set(theta)
      if (v !== undefined) sharedV.set(v)
      for (const t of threads) t.worker.postMessage({ id, op } satisfies ToWorker)
      // The result's memory, touched while the threads compute: its page faults (hvp.ts
      // chunkGradientInto) then fall in this thread's idle time, not after the last chunk.
      if (op !== 'loss') out = touched(new Float32Array(size))
    })
  let callId = 0
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const p = queue.then(f, f)
    queue = p.catch(() => undefined)
    return p
  }

  const objective: Objective = {
    size,
    workers: count,
    backend: backendName,
    loss: (theta) => serial(async () => (await run('loss', theta)).loss / divisor),
    gradient: (theta) =>
      serial(async () => {
        const { loss, sum } = await run('gradient', theta)
        return { loss: loss / divisor, grad: sum! }
      }),
    hvp: (theta, v) => serial(async () => (await run('hvp', theta, v)).sum!),
    dispose: () => serial(endAll),
  }
  internals.set(objective, {
    reused,
    fresh: () => fresh,
    workers: threads.map((t) => t.worker),
    poke: (hook) => {
      for (const t of threads) t.worker.postMessage({ op: 'hook', hook } satisfies ToWorker)
    },
  })
  return objective
}

interface Internals {
  /** How many of the threads were parked ones reused (in a warm stage worker, thread-pool.ts); 0 elsewhere. */
  reused: number
  /** How many result buffers the threads have made so far (the others were given back and reused). */
  fresh: () => number
  workers: readonly Worker[]
  poke: (hook: Hook) => void
}
const internals = new WeakMap<Objective, Internals>()

/** The objective's threads (a Worker's threadId is -1 once it has exited) and how many were reused: for tests and benches. */
export function threadsOf(objective: Objective): Pick<Internals, 'reused' | 'workers'> {
  const i = internals.get(objective)
  return { reused: i?.reused ?? 0, workers: i?.workers ?? [] }
}

/** How many result buffers of P floats the objective's threads have made so far: for tests and benches. */
export function resultBuffersMade(objective: Objective): number {
  return internals.get(objective)?.fresh() ?? 0
}

/**
 * Test hook: every thread of `objective` keeps a tensor alive ('leak'), switches its engine to the cpu
 * backend ('backend'), both seen when it is given back, or fails its next request ('fail'), so
 * tests can show such threads are ended, not parked.
 */
export function pokeThreads(objective: Objective, hook: Hook): void {
  internals.get(objective)?.poke(hook)
}

/** Worker `w`'s chunks (chunk i goes to worker i mod `count`), as copies it can own. */
function share(all: ReturnType<typeof chunks>, w: number, count: number): WorkerChunk[] {
  const mine: WorkerChunk[] = []
  all.forEach((c, index) => {
    if (index % count === w) mine.push({ index, x: c.x.slice(), y: c.y.slice(), n: c.n })
  })
  return mine
}

/** Whether `choice` would select tfjs-node(-gpu) in a worker (engine.ts: 'auto' prefers it). */
function nativeWouldRun(choice: BackendChoice): boolean {
  if (choice !== 'auto' && choice !== 'tensorflow') return false
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      import.meta.resolve(name)
      return true
    } catch {
      // not installed: the usual case off the GPU image
    }
  }
  return false
}

/**
 * acc += vec, element by element in float64. One function for every pool and call, so it is
 * compiled once per process: as a closure created per call it ran interpreted for the first calls
 * of each pool (15-27 ms per 1,000-example MLP gradient instead of ~1 ms), on the main thread,
 * which shares the 2 cores with the workers.
 */
function addInto(acc: Float64Array, vec: Float32Array): void {
  const n = acc.length
  for (let i = 0; i < n; i++) acc[i]! += vec[i]!
}

/** acc / divisor as float32, into `out`. */
function toFloat32(acc: Float64Array, divisor: number, out: Float32Array): Float32Array {
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]! / divisor
  return out
}

/** `a` with one entry of every 4 KiB page written (they are mapped now), for a fresh zeroed array. */
function touched(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i += 1024) a[i] = 0
  return a
}
