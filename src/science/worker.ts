/**
 * One worker thread of a full-batch objective (objective.ts). It initialises its own tfjs engine
 * once (wasm by default: the wasm backend is single-threaded in Node, so threads are how a batch
 * uses more than one core). A setup message gives it the model and its share of the dataset's fixed
 * chunks, replacing any earlier setup: in a warm stage worker a thread serves one objective after
 * another (thread-pool.ts). For each request it evaluates the loss / gradient / Hessian-vector
 * product (paper §3.3) of every chunk it holds, in chunk order, at the θ (and v) the objective put
 * in the memory it shares with the thread, and posts each chunk's SUM back as soon as it is ready,
 * in a result buffer the main thread gives back once added; the main thread does all the
 * accumulating, so the answer cannot depend on how chunks were shared out. A park message drops
 * the setup and every cached tensor and answers with the engine's state, which decides whether the
 * thread may serve another objective.
 */
import * as tf from '@tensorflow/tfjs'
import { parentPort, workerData } from 'node:worker_threads'
import { clearConvCache, setConvReuse } from './conv-hvp.ts'
import { clearDenseCache } from './dense-hvp.ts'
import { initEngine } from './engine.ts'
import { chunkGradientInto, chunkHvpInto, chunkLossAsync } from './hvp.ts'
import { buildModel, type Model } from './models.ts'
import type { OpRequest, ToMain, ToWorker, WorkerBoot, WorkerChunk } from './thread-pool.ts'
import { engineProblems, engineState, identities } from './warm-engine.ts'
import { clearPackedFilters } from './wasm/conv-simd.ts'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'

const port = parentPort
if (port === null) throw new Error('worker.ts must run as a worker thread')
const send = (msg: ToMain, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer)

const boot = workerData as WorkerBoot
const id = identities()
/**
 * The current setup: model, chunks, the objective's shared θ and v, and this thread's own copies of
 * them, taken at the start of each request. Everything a request computes, the θ caches' keys
 * included, comes from that one copy, so a cached entry always matches its key, even when an
 * objective whose call failed already writes its next θ while a thread still works on the dropped
 * call.
 */
let setup:
  | { model: Model; chunks: WorkerChunk[]; shared: { theta: Float32Array; v: Float32Array }; theta: Float32Array; v?: Float32Array }
  | undefined
/**
 * Result buffers the objective gave back ('recycle'), reused for the next chunks: a new array of P
 * floats per chunk costs page faults (hvp.ts chunkGradientInto). At most as many as chunks held.
 */
const spare: ArrayBuffer[] = []
/** Test hooks (thread-pool.ts ToWorker): tensors kept alive, and whether the next request fails. */
const leaked: tf.Tensor[] = []
let failNext = false
// HVPs at a θ already seen reuse its forward and backward passes (conv-hvp.ts): a thread's fixed
// chunks at the objective's last θ, emptied at each setup and park.
setConvReuse(true)

/** A result buffer of P floats: a recycled one, or a new one (`fresh`). */
function resultBuffer(size: number): { vec: Float32Array; fresh: boolean } {
  for (let b = spare.pop(); b !== undefined; b = spare.pop())
    if (b.byteLength === size * 4) return { vec: new Float32Array(b), fresh: false }
  return { vec: new Float32Array(size), fresh: true }
}

/** Evaluates a request on every chunk held, in chunk order, posting each chunk's sums. */
async function compute(msg: OpRequest, s: NonNullable<typeof setup>): Promise<void> {
  const { id, op } = msg
  s.theta.set(s.shared.theta)
  // v's copy is made at the first HVP (a stage that only trains never needs its P floats).
  if (op === 'hvp') (s.v ??= new Float32Array(s.model.size)).set(s.shared.v)
  for (const chunk of s.chunks) {
    if (op === 'loss') {
      send({ type: 'chunk', id, index: chunk.index, loss: await chunkLossAsync(s.model, s.theta, chunk) })
      continue
    }
    const { vec, fresh } = resultBuffer(s.model.size)
    const loss =
      op === 'gradient'
        ? await chunkGradientInto(s.model, s.theta, chunk, vec)
        : (await chunkHvpInto(s.model, s.theta, s.v!, chunk, vec), 0)
    send({ type: 'chunk', id, index: chunk.index, loss, vec, fresh }, [vec.buffer as ArrayBuffer])
  }
}

/** Handles one message; the engine is ready. */
async function handle(msg: Exclude<ToWorker, { op: 'recycle' }>): Promise<void> {
  if (msg.op === 'setup') {
    failNext = false
    setup = undefined
    spare.length = 0
    clearDenseCache()
    clearConvCache()
    const model = buildModel(msg.spec)
    const shared = { theta: new Float32Array(msg.shared.theta), v: new Float32Array(msg.shared.v) }
    if (shared.theta.length !== model.size || shared.v.length !== model.size)
      throw new Error(`setup: shared memory holds ${shared.theta.length} floats, the model has ${model.size} parameters`)
    setup = { model, chunks: msg.chunks, shared, theta: new Float32Array(model.size) }
    send({ type: 'ready', backend: tf.getBackend() })
  } else if (msg.op === 'park') {
    failNext = false
    setup = undefined
    spare.length = 0
    clearDenseCache()
    clearConvCache()
    if (tf.getBackend() === 'wasm') clearPackedFilters(tf.backend() as BackendWasm)
    const booted = (await engine).backend
    const switched = tf.getBackend() === booted ? [] : [`backend ${tf.getBackend()} instead of ${booted}, the one the thread started`]
    send({ type: 'parked', state: engineState(id), problems: [...engineProblems(), ...switched] })
  } else if (msg.op === 'hook') {
    if (msg.hook === 'leak') leaked.push(tf.scalar(1))
    else if (msg.hook === 'backend') await tf.setBackend('cpu')
    else failNext = true
  } else {
    if (setup === undefined) throw new Error('no setup')
    if (failNext) throw new Error('failed by a test hook')
    await compute(msg, setup)
  }
}

// Messages are handled strictly one after another (read backs are asynchronous: `data()`, the only
// kind webgpu allows in Node, the same bits elsewhere), once the engine is initialised.
const engine = initEngine(boot.backend)
engine.catch((e: unknown) => send({ type: 'failed', id: -1, message: e instanceof Error ? e.message : String(e) }))
let chain = Promise.resolve()
port.on('message', (msg: ToWorker) => {
  // A buffer given back is taken at once, not after the request in progress: the next chunk reuses it.
  if (msg.op === 'recycle') {
    if (setup !== undefined && msg.buffer.byteLength === setup.model.size * 4 && spare.length < setup.chunks.length) spare.push(msg.buffer)
    return
  }
  chain = chain.then(async () => {
    try {
      await engine
    } catch {
      return // reported above
    }
    try {
      await handle(msg)
    } catch (e: unknown) {
      send({ type: 'failed', id: 'id' in msg ? msg.id : -1, message: e instanceof Error ? e.message : String(e) })
    }
  })
})
