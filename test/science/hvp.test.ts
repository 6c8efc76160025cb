/**
 * The exact Hessian-vector product (paper §3.3) against oracles, on the cpu backend: a quadratic with
 * a known Hessian (exact to float32 rounding), five-point finite differences of the gradient for the
 * smooth models (tanh MLP, tanh CNN with average pools), symmetry u·Hv = v·Hu and linearity in v for
 * every architecture, and the chunked dataset functions against one whole-batch chunk.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import {
  chunkGradient,
  chunkHvp,
  chunkLoss,
  chunks,
  datasetGradient,
  datasetHvp,
  datasetLoss,
  hvp,
  type Dataset,
} from '../../src/science/hvp.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { crossEntropySum } from '../../src/science/loss.ts'
import { createRng } from '../../src/science/rng.ts'
import { dot, fdHvp, makeChunk, modelGrad, relErr, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
await initEngine('cpu')

t.test('quadratic 0.5 θᵀAθ + bᵀθ: Hv = Av to float32 rounding', async (t) => {
  const P = 40
  const rng = createRng(1, 'quadratic')
  const A = new Float32Array(P * P)
  for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) A[i * P + j] = A[j * P + i] = rng.normal()
  const b = new Float32Array(P).map(() => rng.normal())
  const theta = new Float32Array(P).map(() => rng.normal())
  const At = tf.tensor2d(A, [P, P])
  const bt = tf.tensor1d(b)
  const f = (th: tf.Tensor1D): tf.Scalar =>
    tf.add(tf.mul(0.5, tf.sum(tf.mul(th, tf.squeeze(tf.matMul(At, tf.reshape(th, [P, 1])))))), tf.sum(tf.mul(bt, th)))
  for (const seed of [2, 3, 4]) {
    const r = createRng(seed)
    const v = new Float32Array(P).map(() => r.normal())
    const hv = tf.tidy(() => hvp(f, tf.tensor1d(theta), tf.tensor1d(v))).dataSync()
    const want = new Float64Array(P)
    for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) want[i]! += A[i * P + j]! * v[j]!
    t.ok(relErr(hv, want) < 2e-6, `seed ${seed}: rel err ${relErr(hv, want).toExponential(2)}`)
  }
  // A basis vector recovers a column of A.
  const e = new Float32Array(P)
  e[5] = 1
  const col = tf.tidy(() => hvp(f, tf.tensor1d(theta), tf.tensor1d(e))).dataSync()
  t.ok(
    relErr(
      col,
      Array.from({ length: P }, (_, i) => A[i * P + 5]!),
    ) < 1e-6,
    'H e_5 = A[:, 5]',
  )
  tf.dispose([At, bt])
})

t.test('smooth models: HVP matches five-point finite differences of the gradient (rel err <= 1e-3)', async (t) => {
  const specs: ModelSpec[] = [
    { arch: 'mlp', activation: 'tanh', inputShape: [4, 4, 1], classes: 3, hidden: [8, 8] },
    { arch: 'mlp', activation: 'tanh', inputShape: [6, 6, 1], classes: 10 },
    { arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 },
    { arch: 'cnn', activation: 'tanh', inputShape: [12, 12, 2], classes: 4, width: 0.5 },
  ]
  for (const spec of specs) {
    const m = buildModel(spec)
    const theta = initParams(m, 3)
    const c = makeChunk(m, 3, 5)
    const v = unitVector(m.size, 9)
    const hv = chunkHvp(m, theta, v, c)
    const fd = fdHvp(modelGrad(m, c), theta, v, 3e-2)
    const err = relErr(hv, fd)
    t.ok(err <= 1e-3, `${spec.arch}-${spec.activation} (${m.size} params): rel err ${err.toExponential(2)}`)
  }
})

t.test('symmetry u·Hv = v·Hu and linearity in v, every architecture', async (t) => {
  const specs: ModelSpec[] = [
    { arch: 'mlp', activation: 'relu', inputShape: [4, 4, 1], classes: 3, hidden: [8] },
    { arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25, pool: 'max' },
    { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 3, width: 1 / 16 },
    { arch: 'vgg16', activation: 'tanh', inputShape: [32, 32, 3], classes: 3, width: 1 / 32 },
  ]
  for (const spec of specs) {
    const m = buildModel(spec)
    const theta = initParams(m, 11)
    const c = makeChunk(m, 2, 13)
    const u = unitVector(m.size, 1)
    const v = unitVector(m.size, 2)
    const hu = chunkHvp(m, theta, u, c)
    const hv = chunkHvp(m, theta, v, c)
    const scale = Math.sqrt(dot(hu, hu) * dot(hv, hv))
    const asym = Math.abs(dot(u, hv) - dot(v, hu)) / scale
    t.ok(asym < 1e-5, `${spec.arch}-${spec.activation}: |u·Hv - v·Hu| / (|Hu||Hv|) = ${asym.toExponential(2)}`)
    const w = Float32Array.from(u, (a, i) => 2 * a - 3 * v[i]!)
    const hw = chunkHvp(m, theta, w, c)
    const lin = relErr(
      hw,
      Float64Array.from(hu, (a, i) => 2 * a - 3 * hv[i]!),
    )
    t.ok(lin < 1e-5, `${spec.arch}-${spec.activation}: H(2u - 3v) = 2Hu - 3Hv, rel err ${lin.toExponential(2)}`)
  }
})

t.test('dataset functions: fixed chunks, float64 accumulation, mean or sum', async (t) => {
  const m = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 })
  const theta = initParams(m, 5)
  const n = 7
  const whole = makeChunk(m, n, 17)
  const data: Dataset = { x: whole.x, y: whole.y, n, shape: [8, 8, 1] }
  const v = unitVector(m.size, 3)
  const loss = chunkLoss(m, theta, whole)
  const { grad } = chunkGradient(m, theta, whole)
  const hv = chunkHvp(m, theta, v, whole)
  for (const chunkSize of [1, 3, 250]) {
    t.ok(Math.abs(datasetLoss(m, theta, data, { chunkSize, reduction: 'sum' }) - loss) < 1e-5 * loss, `sum loss, chunks of ${chunkSize}`)
    t.ok(Math.abs(datasetLoss(m, theta, data, { chunkSize }) - loss / n) < (1e-5 * loss) / n, `mean loss (default), chunks of ${chunkSize}`)
    const g = datasetGradient(m, theta, data, { chunkSize, reduction: 'sum' })
    t.ok(relErr(g.grad, grad) < 1e-5, `sum gradient, chunks of ${chunkSize}: ${relErr(g.grad, grad).toExponential(2)}`)
    t.ok(
      relErr(
        datasetGradient(m, theta, data, { chunkSize }).grad,
        grad.map((a) => a / n),
      ) < 1e-5,
      `mean gradient, chunks of ${chunkSize}`,
    )
    t.ok(
      relErr(
        datasetHvp(m, theta, v, data, { chunkSize }),
        hv.map((a) => a / n),
      ) < 1e-5,
      `mean HVP, chunks of ${chunkSize}`,
    )
  }
  t.ok(Math.abs(chunkGradient(m, theta, whole).loss - loss) === 0, 'chunkGradient reports the same loss as chunkLoss')
  t.throws(() => datasetLoss(m, theta, { ...data, shape: [8, 8, 2] }), /does not match/)
  t.throws(() => datasetLoss(m, theta, data, { chunkSize: 0 }), /chunkSize/)
  t.throws(() => chunkHvp(m, theta, v.subarray(1), whole), /entries/)
  t.throws(() => chunkLoss(m, theta, { ...whole, n: n + 1 }), /chunk must hold/)
  t.throws(() => datasetLoss(m, theta, { ...data, n: 0, x: new Float32Array(0), y: new Int32Array(0) }), /at least one/)
})

t.test('chunks: the fewest chunks of at most chunkSize, equal in size, consecutive, covering the dataset', async (t) => {
  const m = buildModel({ arch: 'mlp', activation: 'tanh', inputShape: [2, 2, 1], classes: 3, hidden: [4] })
  const cases: Array<[number, number, number[]]> = [
    [256, 250, [128, 128]],
    [1000, 250, [250, 250, 250, 250]],
    [1001, 250, [201, 200, 200, 200, 200]],
    [5, 2, [2, 2, 1]],
    [7, 3, [3, 2, 2]],
    [50, 16, [13, 13, 12, 12]],
    [3, 250, [3]],
    [4, 1, [1, 1, 1, 1]],
  ]
  for (const [n, size, want] of cases) {
    const data: Dataset = {
      x: Float32Array.from({ length: n * 4 }, (_, i) => i),
      y: Int32Array.from({ length: n }, (_, i) => i),
      n,
      shape: [2, 2, 1],
    }
    const parts = chunks(m, data, size)
    t.same(
      parts.map((c) => c.n),
      want,
      `n ${n}, chunkSize ${size}`,
    )
    t.same([...parts.flatMap((c) => [...c.y])], [...data.y], `n ${n}: labels consecutive and complete`)
    t.same([...parts.flatMap((c) => [...c.x])], [...data.x], `n ${n}: images consecutive and complete`)
  }
})

t.test('chunk functions (one tensor per parameter) equal the θ-tensor path bit for bit', async (t) => {
  for (const spec of [
    { arch: 'mlp', activation: 'tanh', inputShape: [6, 6, 1], classes: 10, hidden: [16, 16] },
    { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 5, width: 1 / 16 },
  ] as ModelSpec[]) {
    const m = buildModel(spec)
    const theta = initParams(m, 1)
    const c = makeChunk(m, 3, 1)
    const v = unitVector(m.size, 1)
    const [h, w, ch] = spec.inputShape
    const f = (th: tf.Tensor1D): tf.Scalar => crossEntropySum(m.forward(th, tf.tensor4d(c.x, [c.n, h, w, ch])), tf.tensor1d(c.y, 'int32'))
    const hvT = tf.tidy(() => hvp(f, tf.tensor1d(theta), tf.tensor1d(v)))
    const gT = tf.tidy(() => tf.grad((th: tf.Tensor) => f(th as tf.Tensor1D))(tf.tensor1d(theta)))
    const same = (a: ArrayLike<number> & { buffer: ArrayBufferLike }, b: Float32Array): boolean =>
      Buffer.from(a.buffer).equals(Buffer.from(b.buffer))
    t.ok(same(gT.dataSync() as Float32Array, chunkGradient(m, theta, c).grad), `${spec.arch}: gradient`)
    t.ok(same(hvT.dataSync() as Float32Array, chunkHvp(m, theta, v, c)), `${spec.arch}: HVP`)
    tf.dispose([hvT, gT])
  }
  const m = buildModel({ arch: 'mlp', activation: 'tanh', inputShape: [2, 2, 1], classes: 2, hidden: [3] })
  t.throws(() => tf.tidy(() => m.forwardParts([tf.zeros([4, 3])], tf.zeros([1, 2, 2, 1]))), /expected 4 parameter tensors/)
  t.throws(
    () => tf.tidy(() => m.forwardParts([tf.zeros([3, 4]), tf.zeros([3]), tf.zeros([3, 2]), tf.zeros([2])], tf.zeros([1, 2, 2, 1]))),
    /needs \[4,3\]/,
  )
})
