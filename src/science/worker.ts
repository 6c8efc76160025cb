/**
 * One worker thread of a full-batch objective (objective.ts). It initialises its own tfjs engine
 * once (wasm by default: the wasm backend is single-threaded in Node, so threads are how a batch
 * uses more than one core), builds the model, and keeps its share of the dataset's fixed chunks.
 * For each request it evaluates the loss / gradient / Hessian-vector product (paper §3.3) of every
 * chunk it holds, in chunk order, and posts each chunk's SUM back as soon as it is ready; the main
 * thread does all the accumulating, so the answer cannot depend on how chunks were shared out.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { initEngine } from './engine.ts'
import { chunkGradientAsync, chunkHvpAsync, chunkLossAsync } from './hvp.ts'
import { buildModel } from './models.ts'
import type { ToMain, ToWorker, WorkerSetup } from './objective.ts'

const port = parentPort
if (port === null) throw new Error('worker.ts must run as a worker thread')
const send = (msg: ToMain, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer)

const setup = workerData as WorkerSetup

/** The buffer to transfer instead of copying, when `v` owns all of it. */
function movable(v: Float32Array): ArrayBuffer[] {
  const b = v.buffer
  return b instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === b.byteLength ? [b] : []
}

try {
  const engine = await initEngine(setup.backend)
  const model = buildModel(setup.spec)
  send({ type: 'ready', backend: engine.backend })
  // Read backs are asynchronous (`data()`: the only kind webgpu allows in Node; same bits elsewhere).
  // Requests arrive one at a time (objective.ts queues them), chunks run in order.
  port.on('message', async (msg: ToWorker) => {
    const { id, op, theta } = msg
    try {
      for (const chunk of setup.chunks) {
        if (op === 'loss') {
          send({ type: 'chunk', id, index: chunk.index, loss: await chunkLossAsync(model, theta, chunk) })
        } else if (op === 'gradient') {
          const { loss, grad } = await chunkGradientAsync(model, theta, chunk)
          send({ type: 'chunk', id, index: chunk.index, loss, vec: grad }, movable(grad))
        } else {
          const hv = await chunkHvpAsync(model, theta, msg.v!, chunk)
          send({ type: 'chunk', id, index: chunk.index, loss: 0, vec: hv }, movable(hv))
        }
      }
    } catch (e: unknown) {
      send({ type: 'failed', id, message: e instanceof Error ? e.message : String(e) })
    }
  })
} catch (e: unknown) {
  send({ type: 'failed', id: -1, message: e instanceof Error ? e.message : String(e) })
}
