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
import { Worker } from 'node:worker_threads'
import type { BackendChoice } from './engine.ts'
import { chunks, type Dataset, type Reduction } from './hvp.ts'
import { buildModel, type ModelSpec } from './models.ts'

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
  /** Worker threads started (and, until dispose, running). */
  readonly workers: number
  /** Backend the workers run (as reported by their engines). */
  readonly backend: string
  loss(theta: Float32Array): Promise<number>
  gradient(theta: Float32Array): Promise<{ loss: number; grad: Float32Array }>
  hvp(theta: Float32Array, v: Float32Array): Promise<Float32Array>
  /** Ends the worker threads; resolves when they have exited. Later calls reject. */
  dispose(): Promise<void>
}

/** One chunk as shipped to a worker (a copy of the dataset's rows, transferred). */
export interface WorkerChunk {
  index: number
  x: Float32Array
  y: Int32Array
  n: number
}
/** workerData of worker.ts. */
export interface WorkerSetup {
  spec: ModelSpec
  backend: BackendChoice
  chunks: WorkerChunk[]
}
/** Messages to a worker. */
export type ToWorker = { id: number; op: 'loss' | 'gradient' | 'hvp'; theta: Float32Array; v?: Float32Array }
/** Messages from a worker: a chunk's sums, a failure (id -1: start-up), or start-up done. */
export type ToMain =
  | { type: 'ready'; backend: string }
  | { type: 'chunk'; id: number; index: number; loss: number; vec?: Float32Array }
  | { type: 'failed'; id: number; message: string }

type Op = ToWorker['op']
interface Pending {
  id: number
  op: Op
  results: Map<number, { loss: number; vec?: Float32Array }>
  fail: (e: Error) => void
  onChunk: () => void
}

// Workers load TypeScript through tsx's register API: on Node 20 `execArgv: ['--import', 'tsx']`
// does not reach a worker's module loader. Resolved from here so any cwd (and tap) works.
const workerBoot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}) })`

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

  const threads: Worker[] = []
  const exits: Array<Promise<void>> = []
  let current: Pending | undefined
  let broken: Error | undefined
  let disposed = false
  const readies: Array<Promise<string>> = []

  for (let w = 0; w < count; w++) {
    const mine: WorkerChunk[] = []
    all.forEach((c, index) => {
      if (index % count === w) mine.push({ index, x: c.x.slice(), y: c.y.slice(), n: c.n })
    })
    const setup: WorkerSetup = { spec: opts.spec, backend, chunks: mine }
    const transferList = mine.flatMap((c) => [c.x.buffer as ArrayBuffer, c.y.buffer as ArrayBuffer])
    const worker = new Worker(workerBoot, { eval: true, workerData: setup, transferList, execArgv: [] })
    threads.push(worker)
    exits.push(new Promise((resolve) => worker.once('exit', () => resolve())))
    readies.push(
      new Promise<string>((resolve, reject) => {
        const fail = (e: Error): void => {
          broken ??= e
          reject(e)
          current?.fail(e)
        }
        worker.on('message', (msg: ToMain) => {
          if (msg.type === 'ready') resolve(msg.backend)
          else if (msg.type === 'failed' && msg.id < 0) fail(new Error(`objective worker ${w} failed to start: ${msg.message}`))
          else if (msg.type === 'failed') {
            if (current?.id === msg.id) current.fail(new Error(`objective worker ${w}: ${msg.message}`))
          } else if (current?.id === msg.id) {
            current.results.set(msg.index, msg.vec === undefined ? { loss: msg.loss } : { loss: msg.loss, vec: msg.vec })
            current.onChunk()
          }
        })
        worker.on('error', (e: Error) => fail(new Error(`objective worker ${w} crashed: ${e.message}`)))
        worker.on('exit', (code) => {
          if (!disposed) fail(new Error(`objective worker ${w} exited (code ${code})`))
        })
      }),
    )
  }

  const endAll = async (): Promise<void> => {
    disposed = true
    await Promise.all(threads.map((t) => t.terminate()))
    await Promise.all(exits)
  }

  let backendName: string
  try {
    const names = await Promise.all(readies)
    backendName = names[0] ?? backend
  } catch (e: unknown) {
    await endAll()
    throw e
  }

  /** Runs `op` on every worker; resolves with the chunk sums accumulated in chunk order. */
  const run = (op: Op, theta: Float32Array, v?: Float32Array): Promise<{ loss: number; acc: Float64Array }> =>
    new Promise((resolve, reject) => {
      if (disposed) return reject(new Error('objective is disposed'))
      if (broken !== undefined) return reject(broken)
      if (theta.length !== size) return reject(new Error(`theta has ${theta.length} entries, model needs ${size}`))
      if (v !== undefined && v.length !== size) return reject(new Error(`v has ${v.length} entries, model needs ${size}`))
      const acc = new Float64Array(op === 'loss' ? 0 : size)
      let total = 0
      let next = 0
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
            if (r.vec !== undefined) addInto(acc, r.vec)
            next++
          }
          if (next === all.length) {
            current = undefined
            resolve({ loss: total, acc })
          }
        },
      }
      current = pending
      for (const t of threads) t.postMessage({ id, op, theta, v } satisfies ToWorker)
    })
  let callId = 0
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const p = queue.then(f, f)
    queue = p.catch(() => undefined)
    return p
  }

  return {
    size,
    workers: count,
    backend: backendName,
    loss: (theta) => serial(async () => (await run('loss', theta)).loss / divisor),
    gradient: (theta) =>
      serial(async () => {
        const { loss, acc } = await run('gradient', theta)
        return { loss: loss / divisor, grad: toFloat32(acc, divisor) }
      }),
    hvp: (theta, v) => serial(async () => toFloat32((await run('hvp', theta, v)).acc, divisor)),
    dispose: () => serial(endAll),
  }
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

function toFloat32(acc: Float64Array, divisor: number): Float32Array {
  const out = new Float32Array(acc.length)
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]! / divisor
  return out
}
