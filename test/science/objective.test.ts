/**
 * The worker-pool objective gives the same bits as hvp.ts's in-process dataset functions on the
 * same backend, for 1 and 2 workers (chunk sums are added in chunk order on the main thread, so
 * the split cannot matter), and dispose() ends the workers. Reference CNN (Ci=1 3x3 convs, avg
 * pools: exercises the wasm Conv2DBackpropFilter/Input replacements) on small random images.
 */
import t from 'tap'
import { initEngine } from '../../src/science/engine.ts'
import { datasetGradient, datasetHvp, datasetLoss, type Dataset } from '../../src/science/hvp.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { createObjective, resultBuffersMade } from '../../src/science/objective.ts'

const spec: ModelSpec = { arch: 'cnn', activation: 'relu', inputShape: [12, 12, 1], classes: 3, pool: 'avg' }
const n = 50
const chunkSize = 16 // 4 chunks of 13, 13, 12, 12

function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}
const r = lcg(42)
const data: Dataset = {
  x: Float32Array.from({ length: n * 144 }, () => r() * 2 - 1),
  y: Int32Array.from({ length: n }, () => Math.floor(r() * 3)),
  n,
  shape: [12, 12, 1],
}
const model = buildModel(spec)
const theta = initParams(model, 7)
const v = Float32Array.from({ length: model.size }, () => r() - 0.5)

const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

t.test('workers 1 and 2 match the in-process result bit for bit', async (tt) => {
  await initEngine('wasm')
  const want = {
    loss: datasetLoss(model, theta, data, { chunkSize }),
    grad: datasetGradient(model, theta, data, { chunkSize }),
    hvp: datasetHvp(model, theta, v, data, { chunkSize }),
  }
  tt.ok(Number.isFinite(want.loss) && want.loss > 0, 'loss is a positive number')
  for (const workers of [1, 2]) {
    const obj = await createObjective({ spec, data, chunkSize, workers, backend: 'wasm' })
    tt.equal(obj.workers, workers, `${workers} worker(s) started`)
    tt.equal(obj.backend, 'wasm')
    tt.equal(obj.size, model.size)
    tt.equal(await obj.loss(theta), want.loss, `loss, ${workers} worker(s)`)
    const g = await obj.gradient(theta)
    tt.equal(g.loss, want.grad.loss, `gradient's loss, ${workers} worker(s)`)
    tt.ok(bytes(g.grad).equals(bytes(want.grad.grad)), `gradient bytes, ${workers} worker(s)`)
    const hv = await obj.hvp(theta, v)
    tt.ok(bytes(hv).equals(bytes(want.hvp)), `hvp bytes, ${workers} worker(s)`)
    // Calls issued together are queued, not interleaved.
    const [a, b] = await Promise.all([obj.hvp(theta, v), obj.loss(theta)])
    tt.ok(bytes(a).equals(bytes(want.hvp)), 'queued hvp')
    tt.equal(b, want.loss, 'queued loss')
    await obj.dispose()
  }
})

t.test('calls at changing θ and v each read their own θ and v; result buffers are reused', async (tt) => {
  // θ and v reach the threads through shared memory and the chunk sums come back in buffers the
  // objective gives back: alternating θs and vs must still give each call's in-process bits, and
  // after the first call no thread makes a new result buffer. The MLP takes the dense path, whose
  // θ cache reuses its key's memory (param-vectors.ts copyOf); the CNN takes the conv path.
  await initEngine('wasm')
  const mlp: ModelSpec = { arch: 'mlp', activation: 'relu', inputShape: [12, 12, 1], classes: 3, hidden: [9, 7] }
  for (const s of [mlp, spec]) {
    const m = buildModel(s)
    const thetas = [initParams(m, 1), initParams(m, 2)]
    const vs = [0, 1].map(() => Float32Array.from({ length: m.size }, () => r() - 0.5))
    const obj = await createObjective({ spec: s, data, chunkSize, workers: 2, backend: 'wasm' })
    const calls: Array<[number, number]> = [
      [0, 0],
      [1, 1],
      [0, 1],
      [1, 0],
      [0, 0],
    ]
    for (const [i, j] of calls) {
      const g = await obj.gradient(thetas[i]!)
      const want = datasetGradient(m, thetas[i]!, data, { chunkSize })
      tt.ok(bytes(g.grad).equals(bytes(want.grad)) && g.loss === want.loss, `${s.arch}: gradient at θ${i}`)
      const hv = await obj.hvp(thetas[i]!, vs[j]!)
      tt.ok(bytes(hv).equals(bytes(datasetHvp(m, thetas[i]!, vs[j]!, data, { chunkSize }))), `${s.arch}: H v at θ${i}, v${j}`)
    }
    tt.equal(
      resultBuffersMade(obj),
      4,
      `${s.arch}: one result buffer per chunk, made in the first call and reused in the other ${2 * calls.length - 1}`,
    )
    await obj.dispose()
  }
})

t.test('sum reduction and argument errors', async (tt) => {
  await initEngine('wasm')
  const obj = await createObjective({ spec, data, chunkSize, workers: 2, reduction: 'sum' })
  tt.equal(await obj.loss(theta), datasetLoss(model, theta, data, { chunkSize, reduction: 'sum' }), 'sum loss')
  await tt.rejects(obj.hvp(theta, v.subarray(1)), /v has/, 'short v')
  await tt.rejects(obj.loss(theta.subarray(1)), /theta has/, 'short theta')
  tt.ok((await obj.loss(theta)) > 0, 'still usable after a rejected call')
  await obj.dispose()
})

t.test('dispose ends the workers; later calls reject', async (tt) => {
  const obj = await createObjective({ spec, data, chunkSize, workers: 2 })
  await obj.dispose() // resolves only after every worker's 'exit' event
  await tt.rejects(obj.loss(theta), /disposed/)
})

t.test('an empty dataset is refused', async (tt) => {
  await tt.rejects(createObjective({ spec, data: { ...data, n: 0, x: new Float32Array(0), y: new Int32Array(0) } }), /example/)
})

t.test('a worker whose engine cannot start rejects createObjective', async (tt) => {
  // tfjs-node is not installed here, so each worker's initEngine('tensorflow') rejects.
  await tt.rejects(createObjective({ spec, data, chunkSize, workers: 2, backend: 'tensorflow' }), /failed to start/)
})
