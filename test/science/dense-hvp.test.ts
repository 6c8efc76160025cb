/**
 * The hand-written dense gradient and R-operator HVP (src/science/dense-hvp.ts) against oracles:
 * the exact Hessian of softmax regression (a dense model with no hidden layer), five-point finite
 * differences of the gradient (tanh MLPs), the tape's double backprop on the same backend (relu and
 * tanh, the bench's 784-200-200-10 included) to float32 precision, the same bits for 1 and 2
 * workers, and no leaked tensors. Non-dense models and the cpu backend keep the tape.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { denseGradient, denseHvp, densePlan, setDenseFastPath, useDensePath } from '../../src/science/dense-hvp.ts'
import { initEngine } from '../../src/science/engine.ts'
import { chunkGradient, chunkHvp, chunkLoss, datasetGradient, datasetHvp, type Chunk, type Dataset } from '../../src/science/hvp.ts'
import { buildModel, initParams, type Model, type ModelSpec } from '../../src/science/models.ts'
import { createObjective } from '../../src/science/objective.ts'
import { fdHvp, makeChunk, relErr, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)

/** One tensor per parameter, cut from a flat vector (as hvp.ts does). */
const parts = (m: Model, a: Float32Array): tf.Tensor[] =>
  m.params.map((p) => tf.tensor(a.subarray(p.offset, p.offset + p.shape.reduce((x, y) => x * y, 1)), p.shape))
const flat = (m: Model, ts: tf.Tensor[]): Float32Array => {
  const out = new Float32Array(m.size)
  m.params.forEach((p, i) => out.set(ts[i]!.dataSync(), p.offset))
  return out
}
/** The hand-written functions called directly (any backend). */
const denseHv = (m: Model, theta: Float32Array, v: Float32Array, c: Chunk): Float32Array =>
  tf.tidy(() => flat(m, denseHvp(m, parts(m, theta), parts(m, v), c.x, c.y, c.n)))
const denseGrad = (m: Model, theta: Float32Array, c: Chunk): { loss: number; grad: Float32Array } =>
  tf.tidy(() => {
    const r = denseGradient(m, parts(m, theta), c.x, c.y, c.n)
    return { loss: r.loss.dataSync()[0]!, grad: flat(m, r.grads) }
  })
/** The tape's chunk functions (the hand-written path switched off). */
function tape<T>(f: () => T): T {
  setDenseFastPath(false)
  try {
    return f()
  } finally {
    setDenseFastPath(true)
  }
}

t.test('plan: dense models only, and only on wasm', async (t) => {
  await initEngine('cpu')
  const mlp = buildModel({ arch: 'mlp', activation: 'relu', inputShape: [4, 4, 1], classes: 3, hidden: [5] })
  const cnn = buildModel({ arch: 'cnn', activation: 'relu', inputShape: [8, 8, 1], classes: 3, width: 0.25 })
  t.same(
    densePlan(mlp)?.steps.map((s) => s.act),
    [true, false],
  )
  t.equal(densePlan(cnn), undefined, 'the CNN has no dense plan')
  t.notOk(useDensePath(mlp), 'cpu keeps the tape')
  await initEngine('wasm')
  t.ok(useDensePath(mlp), 'wasm takes the hand-written path')
  t.notOk(useDensePath(cnn), 'not for the CNN')
})

t.test('softmax regression: Hv equals the exact Hessian times v (float64 oracle)', async (t) => {
  for (const backend of ['cpu', 'wasm'] as const) {
    await initEngine(backend)
    const m = buildModel({ arch: 'mlp', activation: 'relu', inputShape: [3, 3, 1], classes: 4, hidden: [] })
    const c = makeChunk(m, 11, 5)
    const theta = Float32Array.from(unitVector(m.size, 1), (a) => 3 * a)
    const v = unitVector(m.size, 2)
    const [d, k] = [9, 4]
    // z_i = x_i W + b; H = Σ_i (diag(p_i) - p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ with x̃ = (x, 1) over (W[j, a], b[a]).
    const want = new Float64Array(m.size)
    const W = (j: number, a: number): number => (j < d ? theta[j * k + a]! : theta[d * k + a]!)
    const V = (j: number, a: number): number => (j < d ? v[j * k + a]! : v[d * k + a]!)
    for (let i = 0; i < c.n; i++) {
      const xt = (j: number): number => (j < d ? c.x[i * d + j]! : 1)
      const z = Array.from({ length: k }, (_, a) => Array.from({ length: d + 1 }, (_, j) => xt(j) * W(j, a)).reduce((s, q) => s + q, 0))
      const mx = Math.max(...z)
      const e = z.map((q) => Math.exp(q - mx))
      const p = e.map((q) => q / e.reduce((s, r) => s + r, 0))
      const u = Array.from({ length: k }, (_, a) => Array.from({ length: d + 1 }, (_, j) => xt(j) * V(j, a)).reduce((s, q) => s + q, 0))
      const pu = p.reduce((s, q, a) => s + q * u[a]!, 0)
      for (let a = 0; a < k; a++) {
        const g = p[a]! * (u[a]! - pu) // ((diag p - p pᵀ) u)_a
        for (let j = 0; j <= d; j++) want[j < d ? j * k + a : d * k + a]! += xt(j) * g
      }
    }
    const got = denseHv(m, theta, v, c)
    t.ok(relErr(got, want) < 2e-6, `${backend}: rel err ${relErr(got, want).toExponential(2)}`)
  }
})

t.test('tanh MLPs: Hv matches five-point finite differences of the gradient (rel err <= 1e-3)', async (t) => {
  await initEngine('cpu')
  const specs: ModelSpec[] = [
    { arch: 'mlp', activation: 'tanh', inputShape: [4, 4, 1], classes: 3, hidden: [8, 8] },
    { arch: 'mlp', activation: 'tanh', inputShape: [6, 6, 1], classes: 10 },
  ]
  for (const spec of specs) {
    const m = buildModel(spec)
    const c = makeChunk(m, 16, 3)
    const theta = initParams(m, 4)
    const v = unitVector(m.size, 5)
    const got = denseHv(m, theta, v, c)
    const want = fdHvp((th) => denseGrad(m, th, c).grad, theta, v, 1e-2)
    t.ok(relErr(got, want) < 1e-3, `${spec.hidden?.join('-') ?? 'default'}: rel err ${relErr(got, want).toExponential(2)}`)
    const tapeGrad = chunkGradient(m, theta, c) // cpu: the tape
    const mine = denseGrad(m, theta, c)
    t.ok(relErr(mine.grad, tapeGrad.grad) < 1e-5, `gradient vs tape: ${relErr(mine.grad, tapeGrad.grad).toExponential(2)}`)
    t.ok(Math.abs(mine.loss - tapeGrad.loss) <= 1e-5 * Math.abs(tapeGrad.loss), 'loss vs tape')
  }
})

t.test('wasm: the hand-written path agrees with the tape to float32 precision (relu and tanh)', async (t) => {
  await initEngine('wasm')
  const specs: ModelSpec[] = [
    { arch: 'mlp', activation: 'relu', inputShape: [28, 28, 1], classes: 10, hidden: [200, 200] },
    { arch: 'mlp', activation: 'tanh', inputShape: [28, 28, 1], classes: 10, hidden: [200, 200] },
    { arch: 'mlp', activation: 'relu', inputShape: [5, 3, 2], classes: 7, hidden: [9, 13, 6] },
    { arch: 'mlp', activation: 'tanh', inputShape: [5, 3, 2], classes: 7, hidden: [9, 13, 6] },
  ]
  for (const spec of specs) {
    const m = buildModel(spec)
    const c = makeChunk(m, 37, 8)
    const theta = initParams(m, 6)
    const v = unitVector(m.size, 7)
    const name = `${spec.activation} ${spec.hidden!.join('-')}`
    const hv = chunkHvp(m, theta, v, c)
    const hvTape = tape(() => chunkHvp(m, theta, v, c))
    t.ok(relErr(hv, hvTape) < 1e-6, `${name}: HVP rel err ${relErr(hv, hvTape).toExponential(2)}`)
    const g = chunkGradient(m, theta, c)
    const gTape = tape(() => chunkGradient(m, theta, c))
    t.ok(relErr(g.grad, gTape.grad) < 1e-6, `${name}: gradient rel err ${relErr(g.grad, gTape.grad).toExponential(2)}`)
    t.ok(Math.abs(g.loss - gTape.loss) <= 1e-5 * Math.abs(gTape.loss), `${name}: loss ${g.loss} vs ${gTape.loss}`)
    t.equal(g.loss, chunkLoss(m, theta, c), `${name}: the gradient's loss is the loss's bits`)
  }
})

t.test('wasm: no tensors leak, and workers 1 and 2 give the in-process bits', async (t) => {
  await initEngine('wasm')
  const spec: ModelSpec = { arch: 'mlp', activation: 'relu', inputShape: [6, 6, 1], classes: 5, hidden: [20, 12] }
  const m = buildModel(spec)
  const c = makeChunk(m, 70, 2)
  const data: Dataset = { x: c.x, y: c.y, n: c.n, shape: [6, 6, 1] }
  const theta = initParams(m, 3)
  const v = unitVector(m.size, 4)
  const before = tf.memory().numTensors
  chunkHvp(m, theta, v, c)
  chunkGradient(m, theta, c)
  t.equal(tf.memory().numTensors, before, 'tensor count unchanged')
  const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
  const want = { grad: datasetGradient(m, theta, data, { chunkSize: 16 }), hvp: datasetHvp(m, theta, v, data, { chunkSize: 16 }) }
  for (const workers of [1, 2]) {
    const obj = await createObjective({ spec, data, chunkSize: 16, workers, backend: 'wasm' })
    try {
      const g = await obj.gradient(theta)
      t.equal(g.loss, want.grad.loss, `loss, ${workers} worker(s)`)
      t.ok(bytes(g.grad).equals(bytes(want.grad.grad)), `gradient bytes, ${workers} worker(s)`)
      t.ok(bytes(await obj.hvp(theta, v)).equals(bytes(want.hvp)), `hvp bytes, ${workers} worker(s)`)
    } finally {
      await obj.dispose()
    }
  }
})
