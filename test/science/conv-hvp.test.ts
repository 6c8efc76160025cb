/**
 * The hand-written R-operator HVP of conv networks on wasm (src/science/conv-hvp.ts) against
 * oracles: the tape's double backprop on the same backend (relu and tanh; average and max pools;
 * the bench's 28x28 CNN, AlexNet-CIFAR with its 11x11/4 explicitly padded first layer, VGG-16;
 * odd map sizes whose pools drop a row; several directions) to float32 precision, five-point
 * finite differences of the gradient for tanh, symmetry u·Hv = v·Hu, no leaked tensors, and
 * which models take the path (dense-only models and the cpu backend keep what they had). The PyTorch oracle (torch-oracle.test.ts) and
 * the worker-count determinism (objective.test.ts) run the same CNNs on wasm, through this path.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { setConvFastPath, useConvHvpPath } from '../../src/science/conv-hvp.ts'
import { initEngine } from '../../src/science/engine.ts'
import { chunkGradient, chunkHvp, chunkLoss, type Chunk } from '../../src/science/hvp.ts'
import { buildModel, initParams, type Model, type ModelSpec } from '../../src/science/models.ts'
import { createRng } from '../../src/science/rng.ts'
import { dot, fdHvp, makeChunk, modelGrad, relErr, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
await initEngine('wasm')

const tapeHvp = (m: Model, theta: Float32Array, v: Float32Array, c: Chunk): Float32Array => {
  setConvFastPath(false)
  try {
    return chunkHvp(m, theta, v, c)
  } finally {
    setConvFastPath(true)
  }
}
const normal = (n: number, seed: number): Float32Array => {
  const rng = createRng(seed, 'conv-hvp')
  return Float32Array.from({ length: n }, () => rng.normal())
}
/** θ0 moved off its zero biases, so every term (biases, relu masks) is exercised. */
const thetaOf = (m: Model, seed: number): Float32Array => {
  const noise = normal(m.size, seed + 1)
  return initParams(m, seed).map((a, i) => a + 0.05 * noise[i]!)
}

t.test('which models take the path', async (tt) => {
  const yes: ModelSpec[] = [
    { arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10, pool: 'avg' },
    { arch: 'cnn', activation: 'tanh', inputShape: [9, 7, 3], classes: 4, pool: 'avg', width: 0.5 },
    { arch: 'cnn', activation: 'relu', inputShape: [12, 12, 1], classes: 3, pool: 'max' },
    { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
    { arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
  ]
  const no: ModelSpec[] = [{ arch: 'mlp', activation: 'relu', inputShape: [6, 6, 1], classes: 3, hidden: [8] }]
  for (const s of yes) tt.ok(useConvHvpPath(buildModel(s)), `${s.arch} ${s.activation} ${s.pool}: R-operator`)
  for (const s of no) tt.notOk(useConvHvpPath(buildModel(s)), `${s.arch} ${s.activation} ${s.pool ?? ''}: not`)
  setConvFastPath(false)
  tt.notOk(useConvHvpPath(buildModel(yes[0]!)), 'switched off: not')
  setConvFastPath(true)
  await tf.setBackend('cpu')
  tt.notOk(useConvHvpPath(buildModel(yes[0]!)), 'cpu backend: not')
  await tf.setBackend('wasm')
})

/** Models and chunk sizes both oracles run on: CNN (relu/tanh, avg/max pools, odd maps), AlexNet-CIFAR, VGG-16. */
const SHAPES: Array<[ModelSpec, number]> = [
  [{ arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10, pool: 'avg' }, 20],
  [{ arch: 'cnn', activation: 'tanh', inputShape: [28, 28, 1], classes: 10, pool: 'avg', width: 0.5 }, 9],
  [{ arch: 'cnn', activation: 'relu', inputShape: [13, 11, 2], classes: 3, pool: 'avg', width: 0.7 }, 7],
  [{ arch: 'cnn', activation: 'tanh', inputShape: [9, 15, 3], classes: 5, pool: 'avg', width: 0.3 }, 5],
  [{ arch: 'cnn', activation: 'relu', inputShape: [12, 12, 1], classes: 3, pool: 'max' }, 6],
  [{ arch: 'cnn', activation: 'tanh', inputShape: [13, 11, 2], classes: 3, pool: 'max', width: 0.7 }, 5],
  [{ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 8 }, 4],
  [{ arch: 'alexnet', activation: 'tanh', inputShape: [35, 33, 3], classes: 10, width: 1 / 16 }, 3],
  [{ arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 }, 3],
]

t.test('equals the tape double backprop to float32 precision', async (tt) => {
  for (const [spec, n] of SHAPES) {
    const m = buildModel(spec)
    const c = makeChunk(m, n, 3)
    const theta = thetaOf(m, 4)
    for (const seed of [1, 2, 3]) {
      const v = normal(m.size, seed)
      const before = tf.memory().numTensors
      const got = chunkHvp(m, theta, v, c)
      tt.equal(tf.memory().numTensors, before, `${spec.arch} ${spec.activation} ${spec.inputShape}: no tensors left behind`)
      const want = tapeHvp(m, theta, v, c)
      const e = relErr(got, want)
      const label = `${spec.arch} ${spec.activation} ${spec.pool ?? ''} ${spec.inputShape} w${spec.width ?? 1} n${n} v#${seed}`
      tt.ok(e <= 2e-6, `${label}: rel err ${e.toExponential(2)}`)
      tt.ok(
        m.params.every((p) => got.subarray(p.offset, p.offset + p.shape.reduce((a, b) => a * b, 1)).some((x) => x !== 0)),
        'every parameter block nonzero',
      )
    }
  }
})

t.test('tanh: five-point finite differences of the gradient', async (tt) => {
  const m = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, pool: 'avg', width: 0.25 })
  const c = makeChunk(m, 3, 5)
  const theta = thetaOf(m, 6)
  for (const seed of [7, 8]) {
    const v = unitVector(m.size, seed)
    const e = relErr(chunkHvp(m, theta, v, c), fdHvp(modelGrad(m, c), theta, v, 3e-2))
    tt.ok(e <= 1e-3, `v#${seed}: rel err ${e.toExponential(2)}`)
  }
})

t.test('symmetry u·Hv = v·Hu', async (tt) => {
  for (const activation of ['relu', 'tanh'] as const) {
    const m = buildModel({ arch: 'cnn', activation, inputShape: [10, 10, 1], classes: 4, pool: 'avg', width: 0.5 })
    const c = makeChunk(m, 6, 9)
    const theta = thetaOf(m, 10)
    const u = normal(m.size, 11)
    const v = normal(m.size, 12)
    const a = dot(u, chunkHvp(m, theta, v, c))
    const b = dot(v, chunkHvp(m, theta, u, c))
    tt.ok(Math.abs(a - b) <= 1e-4 * Math.max(Math.abs(a), Math.abs(b)), `${activation}: ${a} vs ${b}`)
  }
})

const tapeGradient = (m: Model, theta: Float32Array, c: Chunk): { loss: number; grad: Float32Array } => {
  setConvFastPath(false)
  try {
    return chunkGradient(m, theta, c)
  } finally {
    setConvFastPath(true)
  }
}

const tapeLoss = (m: Model, theta: Float32Array, c: Chunk): number => {
  setConvFastPath(false)
  try {
    return chunkLoss(m, theta, c)
  } finally {
    setConvFastPath(true)
  }
}

t.test('the hand-written gradient equals the tape gradient; its loss is the loss path bits', async (tt) => {
  for (const [spec, n] of SHAPES) {
    const m = buildModel(spec)
    const label = `${spec.arch} ${spec.activation} ${spec.pool ?? ''} ${spec.inputShape} w${spec.width ?? 1} n${n}`
    for (const seed of [3, 4]) {
      const c = makeChunk(m, n, seed)
      const theta = thetaOf(m, seed + 1)
      const before = tf.memory().numTensors
      const got = chunkGradient(m, theta, c)
      tt.equal(tf.memory().numTensors, before, `${label}: no tensors left behind`)
      const want = tapeGradient(m, theta, c)
      const e = relErr(got.grad, want.grad)
      tt.ok(e <= 1e-6, `${label} #${seed}: gradient rel err ${e.toExponential(2)}`)
      tt.equal(got.loss, chunkLoss(m, theta, c), `${label} #${seed}: loss has the loss path's bits`)
      tt.equal(got.loss, tapeLoss(m, theta, c), `${label} #${seed}: loss has the tape loss's bits (fused conv + pool)`)
      tt.ok(Math.abs(got.loss - want.loss) <= 1e-6 * Math.abs(want.loss), `${label} #${seed}: loss ${got.loss} vs tape ${want.loss}`)
      tt.ok(
        m.params.every((p) => got.grad.subarray(p.offset, p.offset + p.shape.reduce((a, b) => a * b, 1)).some((x) => x !== 0)),
        'every parameter block nonzero',
      )
    }
  }
})

t.test('the hand-written gradient against central differences of the loss (tanh)', async (tt) => {
  const m = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, pool: 'avg', width: 0.25 })
  const c = makeChunk(m, 3, 5)
  const theta = thetaOf(m, 6)
  const g = chunkGradient(m, theta, c).grad
  for (const seed of [7, 8]) {
    const v = unitVector(m.size, seed)
    const eps = 1e-2
    const at = (s: number): number =>
      chunkLoss(
        m,
        theta.map((a, i) => a + s * eps * v[i]!),
        c,
      )
    const fd = (-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * eps)
    const gv = dot(g, v)
    tt.ok(Math.abs(gv - fd) <= 1e-4 + 1e-3 * Math.abs(fd), `v#${seed}: g·v ${gv} vs five-point ${fd}`)
  }
})
