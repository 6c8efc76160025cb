/**
 * The hand-written dense gradient and R-operator HVP (src/science/dense-hvp.ts) against oracles:
 * the exact Hessian of softmax regression (a dense model with no hidden layer), five-point finite
 * differences of the gradient (tanh MLPs), the tape's double backprop on the same backend (relu and
 * tanh, the bench's 784-200-200-10 included) to float32 precision, the same bits for 1 and 2
 * workers, and no leaked tensors. Non-dense models and the cpu backend keep the tape.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import {
  clearDenseCache,
  denseCacheStats,
  denseGradient,
  denseHvp,
  densePlan,
  setDenseCacheBytes,
  setDenseFastPath,
  useDensePath,
} from '../../src/science/dense-hvp.ts'
import { initEngine } from '../../src/science/engine.ts'
import { chunkGradient, chunkHvp, chunkLoss, datasetGradient, datasetHvp, type Chunk, type Dataset } from '../../src/science/hvp.ts'
import { buildModel, initParams, type Model, type ModelSpec } from '../../src/science/models.ts'
import { createObjective } from '../../src/science/objective.ts'
import { fdHvp, makeChunk, relErr, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)

const flat = (m: Model, ts: tf.Tensor[]): Float32Array => {
  const out = new Float32Array(m.size)
  m.params.forEach((p, i) => out.set(ts[i]!.dataSync(), p.offset))
  return out
}
/** The hand-written functions called directly (any backend). */
const denseHv = (m: Model, theta: Float32Array, v: Float32Array, c: Chunk): Float32Array => tf.tidy(() => flat(m, denseHvp(m, theta, v, c)))
const denseGrad = (m: Model, theta: Float32Array, c: Chunk): { loss: number; grad: Float32Array } =>
  tf.tidy(() => {
    const r = denseGradient(m, theta, c)
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
  clearDenseCache()
  const before = tf.memory().numTensors
  const theta2 = theta.map((a, i) => (i === 0 ? a + 1 : a))
  const round = (): void => {
    chunkHvp(m, theta, v, c)
    chunkGradient(m, theta, c)
    chunkHvp(m, theta2, v, c)
  }
  round()
  const cached = tf.memory().numTensors
  t.ok(cached > before, 'the θ cache holds tensors')
  for (let i = 0; i < 20; i++) round()
  t.equal(tf.memory().numTensors, cached, 'tensor count flat over 20 rounds that change θ')
  t.throws(() => chunkHvp(m, theta, v, { ...c, n: 3 }))
  t.equal(tf.memory().numTensors, cached, 'a failing call leaves nothing behind')
  clearDenseCache()
  t.equal(tf.memory().numTensors, before, 'clearing the cache frees them all')
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

t.test('wasm: the θ cache gives the uncached bits, hits only on equal contents, and respects its budget', async (t) => {
  await initEngine('wasm')
  const m = buildModel({ arch: 'mlp', activation: 'tanh', inputShape: [5, 5, 1], classes: 4, hidden: [11, 7] })
  const c = makeChunk(m, 23, 4)
  const theta = initParams(m, 5)
  const v = unitVector(m.size, 6)
  const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
  const budget = setDenseCacheBytes(0)
  const fresh = { hv: chunkHvp(m, theta, v, c), g: chunkGradient(m, theta, c) }
  t.equal(denseCacheStats().entries, 0, 'budget 0: nothing cached')
  setDenseCacheBytes(budget)
  const s0 = denseCacheStats()
  const miss = chunkHvp(m, theta, v, c)
  const g = chunkGradient(m, theta.slice(), { x: c.x.slice(), y: c.y.slice(), n: c.n }) // equal contents, new arrays
  const hit = chunkHvp(m, theta, v, c)
  const s1 = denseCacheStats()
  t.same([s1.misses - s0.misses, s1.hits - s0.hits, s1.entries], [1, 2, 1], 'one miss, then two hits on one entry')
  t.ok(bytes(miss).equals(bytes(fresh.hv)) && bytes(hit).equals(bytes(fresh.hv)), 'HVP bits: miss = hit = uncached')
  t.ok(bytes(g.grad).equals(bytes(fresh.g.grad)) && g.loss === fresh.g.loss, 'gradient bits from the cache = uncached')
  const x2 = c.x.slice()
  x2[17] = x2[17]! + 0.5
  chunkHvp(m, theta, v, { ...c, x: x2 })
  const y2 = c.y.map((y, i) => (i === 3 ? (y + 1) % 4 : y))
  chunkHvp(m, theta, v, { ...c, y: y2 })
  t.same(denseCacheStats().misses - s1.misses, 2, 'changed pixels or labels miss')
  const other = theta.map((a, i) => (i === 9 ? a * 2 : a))
  chunkHvp(m, other, v, c)
  t.equal(denseCacheStats().entries, 1, 'a new θ empties the cache')
  const prev = setDenseCacheBytes(1024)
  const small = chunkHvp(m, theta, v, c)
  t.equal(denseCacheStats().entries, 0, 'an entry over the budget is not kept')
  t.ok(bytes(small).equals(bytes(fresh.hv)), 'and the bits are the same')
  setDenseCacheBytes(prev)
})

t.test('wasm: one-example chunks and softmax regression through the chunk functions; bad labels throw and leak nothing', async (t) => {
  await initEngine('wasm')
  for (const hidden of [[], [6]]) {
    const m = buildModel({ arch: 'mlp', activation: 'tanh', inputShape: [3, 2, 1], classes: 3, hidden })
    const c = makeChunk(m, 1, 9)
    const theta = initParams(m, 2)
    const v = unitVector(m.size, 3)
    const hv = chunkHvp(m, theta, v, c)
    const want = tape(() => chunkHvp(m, theta, v, c))
    t.ok(relErr(hv, want) < 1e-6, `hidden [${hidden.join(',')}], n = 1: rel err ${relErr(hv, want).toExponential(2)}`)
    clearDenseCache()
    const before = tf.memory().numTensors
    t.throws(() => chunkHvp(m, theta, v, { ...c, y: Int32Array.of(3) }), /not a class/)
    t.throws(() => chunkGradient(m, theta, { ...c, y: Int32Array.of(-1) }), /not a class/)
    clearDenseCache()
    t.equal(tf.memory().numTensors, before, 'nothing left behind')
  }
})

t.test('wasm: bias gradients as ones · δ give the bits of tf.sum(δ, 0) (a sequential float32 sum)', async (t) => {
  await initEngine('wasm')
  let seed = 7
  const next = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 10 ** ((seed >>> 29) - 3)
  for (const [n, c] of [
    [250, 200],
    [250, 10],
    [1, 7],
    [23, 9],
    [1000, 3],
  ] as const) {
    const d = Float32Array.from({ length: n * c }, next)
    const [want, got] = tf.tidy(() => {
      const a = tf.tensor2d(d, [n, c])
      return [tf.sum(a, 0).dataSync(), tf.matMul(tf.ones([1, n]), a).dataSync()]
    })
    const seq = new Float32Array(c)
    for (let j = 0; j < c; j++) for (let i = 0; i < n; i++) seq[j] = Math.fround(seq[j]! + d[i * c + j]!)
    t.ok(Buffer.from(got!.buffer).equals(Buffer.from(want!.buffer)), `[${n}, ${c}]: ones · δ = tf.sum bits`)
    t.ok(Buffer.from(want!.buffer).equals(Buffer.from(seq.buffer)), `[${n}, ${c}]: tf.sum = sequential float32 sum`)
  }
})

t.test('wasm: a new θ keeps the inputs of the chunks used at the last θ only, with the same bits', async (t) => {
  await initEngine('wasm')
  clearDenseCache()
  const m = buildModel({ arch: 'mlp', activation: 'relu', inputShape: [4, 4, 1], classes: 3, hidden: [5] })
  const a = makeChunk(m, 11, 1)
  const b = makeChunk(m, 13, 2)
  const theta = initParams(m, 3)
  const other = theta.map((x, i) => (i === 0 ? x + 0.25 : x))
  const v = unitVector(m.size, 4)
  const bytes = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength)
  const budget = setDenseCacheBytes(0)
  const want = { a: chunkHvp(m, other, v, a), g: chunkGradient(m, other, b) }
  setDenseCacheBytes(budget)
  const before = tf.memory().numTensors
  chunkHvp(m, theta, v, a)
  chunkHvp(m, theta, v, b)
  t.same([denseCacheStats().entries, denseCacheStats().inputs], [2, 2], 'two chunks cached at θ')
  t.ok(bytes(chunkHvp(m, other, v, a)).equals(bytes(want.a)), 'HVP at a new θ on kept inputs: uncached bits')
  t.same([denseCacheStats().entries, denseCacheStats().inputs], [1, 2], 'a new θ: the θ-only work goes, both inputs stay')
  chunkHvp(m, theta, v, a)
  t.same([denseCacheStats().entries, denseCacheStats().inputs], [1, 1], 'b was not used at the last θ: its inputs go')
  const g = chunkGradient(m, other, b)
  t.ok(bytes(g.grad).equals(bytes(want.g.grad)) && g.loss === want.g.loss, 'gradient on fresh inputs: uncached bits')
  clearDenseCache()
  t.equal(tf.memory().numTensors, before, 'clearing frees every kept tensor')
})
