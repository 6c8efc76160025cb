/**
 * The fused conv layer of the first-order paths on wasm (src/science/wasm/conv-relu.ts): the
 * 'CuspConvBiasAct' kernel against the cpu reference relu(conv2d(x, W) + b) and bit for bit against
 * the unfused wasm ops it replaces, on the CNN, AlexNet-CIFAR and VGG-16 shapes and random odd
 * shapes, strides and paddings; 'CuspReluMask' against dy * step(y) on odd lengths; the fused
 * layer's gradient bit for bit against the tape's gradient of the unfused ops; 'CuspAvgPoolReluMask'
 * bit for bit against AvgPoolGrad then 'CuspReluMask'; 'CuspConvBiasActPool' bit for bit against
 * 'CuspConvBiasAct' then AvgPool; and the models' chunk loss and tape
 * gradient (which run fused) bit for bit against the unfused tape.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { setConvFastPath } from '../../src/science/conv-hvp.ts'
import { initEngine } from '../../src/science/engine.ts'
import { chunkGradient, chunkLoss } from '../../src/science/hvp.ts'
import { crossEntropySum } from '../../src/science/loss.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { CONV_BIAS_ACT, CONV_BIAS_ACT_POOL, POOL_RELU_MASK, RELU_MASK } from '../../src/science/wasm/conv-relu.ts'
import { simdConv2D } from '../../src/science/wasm/conv-simd.ts'
import { makeChunk, maxRelErr } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
await initEngine('wasm')

/** Deterministic numbers in [-2, 2) (sum of uniforms from a small LCG). */
function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    let acc = 0
    for (let k = 0; k < 4; k++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0
      acc += s / 2 ** 32
    }
    out[i] = acc - 2
  }
  return out
}
const size = (sh: number[]): number => sh.reduce((a, b) => a * b, 1)

interface Case {
  x: number[]
  f: number[]
  s: number
  pad: 'same' | 'valid'
  what: string
}
const cases: Case[] = [
  { x: [5, 28, 28, 1], f: [3, 3, 1, 16], s: 1, pad: 'same', what: 'CNN conv1 (one input channel)' },
  { x: [4, 14, 14, 16], f: [3, 3, 16, 32], s: 1, pad: 'same', what: 'CNN conv2' },
  { x: [3, 42, 42, 3], f: [11, 11, 3, 64], s: 4, pad: 'valid', what: 'AlexNet-CIFAR conv1 11x11/4 (pre-padded by 5)' },
  { x: [3, 4, 4, 64], f: [5, 5, 64, 192], s: 1, pad: 'same', what: 'AlexNet-CIFAR conv2 5x5 p2' },
  { x: [2, 2, 2, 384], f: [3, 3, 384, 256], s: 1, pad: 'same', what: 'AlexNet-CIFAR conv4 3x3 p1' },
  { x: [1, 2, 2, 512], f: [3, 3, 512, 512], s: 1, pad: 'same', what: 'VGG-16 conv13 (2x2 map)' },
  { x: [3, 9, 10, 3], f: [3, 3, 3, 8], s: 2, pad: 'valid', what: 'strided valid, rows no window reads' },
  { x: [3, 13, 11, 1], f: [5, 4, 1, 8], s: 2, pad: 'same', what: 'one input channel, stride 2, odd sizes' },
  { x: [7, 3, 5, 9], f: [2, 3, 9, 20], s: 1, pad: 'valid', what: 'pixel count not a multiple of 4, 20 outputs' },
]
// Random odd shapes (seeded): sizes 1..13, channels 1..9 in, 1..24 out (most not a multiple of 8), strides 1..3.
{
  const r = rand(300, 7)
  let i = 0
  const pick = (lo: number, hi: number): number => lo + Math.floor(((r[i++]! + 2) / 4) * (hi - lo + 1))
  for (let c = 0; c < 8; c++) {
    const k = pick(1, 5)
    const h = pick(k, 13)
    const w = pick(k, 13)
    cases.push({
      x: [pick(1, 3), h, w, pick(1, 9)],
      f: [k, pick(1, Math.min(5, w)), 0, pick(1, 24)],
      s: c % 3 === 0 ? 1 : pick(1, 3),
      pad: c % 2 === 0 ? 'same' : 'valid',
      what: `random #${c}`,
    })
  }
  for (const c of cases) c.f[2] = c.x[3]!
}

/** x, filter, bias (and dy of the output's shape) as seeded tensors on the current backend. */
function inputs(c: Case, seed: number): { x: tf.Tensor4D; f: tf.Tensor4D; b: tf.Tensor1D; dy: tf.Tensor4D } {
  const info = tf.backend_util.computeConv2DInfo(c.x as never, c.f as never, c.s, 1, c.pad)
  return {
    x: tf.tensor4d(rand(size(c.x), seed), c.x as never),
    f: tf.tensor4d(rand(size(c.f), seed + 1), c.f as never),
    b: tf.tensor1d(rand(c.f[3]!, seed + 2)),
    dy: tf.tensor4d(rand(size(info.outShape), seed + 3), info.outShape),
  }
}

const unfused = (x: tf.Tensor4D, f: tf.Tensor4D, b: tf.Tensor1D, c: Case, relu: boolean): tf.Tensor => {
  const z = tf.add(tf.conv2d(x, f, c.s, c.pad), b)
  return relu ? tf.relu(z) : z
}
const fused = (x: tf.Tensor, f: tf.Tensor, b: tf.Tensor, c: Case, relu: boolean): tf.Tensor =>
  tf.engine().runKernel(CONV_BIAS_ACT, { x, filter: f, bias: b }, { strides: [c.s, c.s], pad: c.pad, relu } as never) as tf.Tensor

const same = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]))

t.test('CuspConvBiasAct: the cpu reference within 1e-5, the unfused wasm ops bit for bit, SIMD never declining', async (tt) => {
  let seed = 100
  for (const c of cases) {
    for (const relu of [true, false]) {
      seed += 5
      await tf.setBackend('cpu')
      const want = tf.tidy(() => {
        const { x, f, b } = inputs(c, seed)
        return unfused(x, f, b, c, relu).dataSync() as Float32Array
      })
      await tf.setBackend('wasm')
      const { x, f, b } = inputs(c, seed)
      const got = fused(x, f, b, c, relu)
      const gotV = got.dataSync() as Float32Array
      const plain = tf.tidy(() => unfused(x, f, b, c, relu).dataSync() as Float32Array)
      const info = tf.backend_util.computeConv2DInfo(c.x as never, c.f as never, c.s, 1, c.pad)
      const direct = simdConv2D(tf.backend() as unknown as BackendWasm, x as never, f as never, info, b as never, relu)
      const label = `${c.what} x=${c.x} f=${c.f} s=${c.s} ${c.pad} relu=${relu}`
      tt.ok(direct !== undefined, `${label}: the SIMD kernel applies`)
      if (direct !== undefined) tf.engine().makeTensorFromTensorInfo(direct).dispose()
      const e = maxRelErr(gotV, want)
      tt.ok(e <= 1e-5 && Number.isFinite(e), `${label}: rel err ${e.toExponential(2)} against cpu`)
      tt.ok(same(gotV, plain), `${label}: bit-identical to conv2d + add${relu ? ' + relu' : ''} on wasm`)
      if (relu) tt.ok(gotV.some((v) => v === 0) && gotV.some((v) => v > 0), `${label}: relu clips some, keeps some`)
      tf.dispose([x, f, b, got])
    }
  }
})

t.test('CuspReluMask: dy * step(y) bit for bit on odd lengths, zeros and negatives included', async (tt) => {
  for (const n of [1, 3, 4, 5, 17, 1001]) {
    const y = rand(n, n)
    for (let i = 0; i < n; i += 3) y[i] = 0 // exact zeros: step(0) = 0
    const dy = rand(n, n + 1)
    const mask = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.engine().runKernel(RELU_MASK, { dy: a, y: b }) as tf.Tensor
    const got = tf.tidy(() => mask(tf.tensor1d(dy), tf.tensor1d(y)).dataSync() as Float32Array)
    const want = tf.tidy(() => tf.mul(tf.tensor1d(dy), tf.step(tf.tensor1d(y))).dataSync() as Float32Array)
    tt.ok(same(got, want), `n = ${n}`)
  }
  tt.throws(() => tf.engine().runKernel(RELU_MASK, { dy: tf.ones([3]), y: tf.ones([4]) }), /one shape/)
})

t.test('the fused layer gradient (x, filter, bias) equals the tape gradient of the unfused ops bit for bit', async (tt) => {
  let seed = 500
  for (const c of cases) {
    for (const relu of [true, false]) {
      seed += 5
      const { x, f, b, dy } = inputs(c, seed)
      const loss = (op: typeof fused) => (xx: tf.Tensor, ff: tf.Tensor, bb: tf.Tensor) =>
        tf.sum(tf.mul(op(xx, ff, bb, c, relu), dy)) as tf.Scalar
      const g1 = tf.grads(loss(fused))([x, f, b])
      const g0 = tf.grads(loss(unfused as typeof fused))([x, f, b])
      ;['dx', 'dW', 'db'].forEach((name, i) =>
        tt.ok(same(g1[i]!.dataSync() as Float32Array, g0[i]!.dataSync() as Float32Array), `${c.what} relu=${relu}: ${name}`),
      )
      tf.dispose([x, f, b, dy, ...g1, ...g0])
    }
  }
})

t.test('CuspAvgPoolReluMask: AvgPoolGrad then CuspReluMask bit for bit (odd maps, odd channels, uncovered rows)', async (tt) => {
  const shapes: Array<[number[], number]> = [
    [[2, 28, 28, 16], 2],
    [[3, 14, 14, 32], 2],
    [[2, 13, 11, 11], 2],
    [[1, 9, 7, 3], 3],
    [[2, 5, 6, 1], 2],
    [[1, 4, 4, 5], 4],
  ]
  let seed = 900
  for (const [shape, k] of shapes) {
    const [n, h, w, c] = shape as [number, number, number, number]
    const yv = rand(size(shape), seed++)
    for (let i = 0; i < yv.length; i += 5) yv[i] = 0 // exact zeros: step(0) = 0
    const pooled = [n, Math.floor(h / k), Math.floor(w / k), c]
    const dyv = rand(size(pooled), seed++)
    const [got, want] = tf.tidy(() => {
      const y = tf.tensor4d(yv, [n, h, w, c])
      const dy = tf.tensor(dyv, pooled)
      const fused = tf.engine().runKernel(POOL_RELU_MASK, { dy, y }, { size: k } as never) as tf.Tensor
      const spread = tf
        .engine()
        .runKernel('AvgPoolGrad', { dy, input: y }, { filterSize: k, strides: k, pad: 'valid' } as never) as tf.Tensor
      const plain = tf.engine().runKernel(RELU_MASK, { dy: spread, y }) as tf.Tensor
      return [fused.dataSync() as Float32Array, plain.dataSync() as Float32Array]
    })
    tt.ok(same(got, want), `[${shape.join(',')}] pool ${k}`)
    tt.ok(got.some((v) => v !== 0) && got.some((v) => v === 0), `[${shape.join(',')}]: some masked, some kept`)
  }
  tt.throws(
    () => tf.engine().runKernel(POOL_RELU_MASK, { dy: tf.ones([1, 3, 2, 3]), y: tf.ones([1, 5, 4, 3]) }, { size: 2 } as never),
    /pool of/,
  )
})

t.test('CuspConvBiasActPool: CuspConvBiasAct then AvgPool 2x2 bit for bit, y kept or not, even and odd maps', async (tt) => {
  const shapes: Array<[number[], number[], 'same' | 'valid', boolean]> = [
    [[4, 28, 28, 1], [3, 3, 1, 16], 'same', true],
    [[3, 14, 14, 16], [3, 3, 16, 32], 'same', true],
    [[2, 10, 12, 3], [3, 3, 3, 11], 'valid', false],
    [[2, 9, 9, 2], [3, 3, 2, 5], 'valid', true],
    [[1, 15, 13, 3], [3, 3, 3, 7], 'same', true],
  ]
  let seed = 950
  for (const [xs, fs, pad, relu] of shapes) {
    const label = `x [${xs.join(',')}] f [${fs.join(',')}] ${pad} relu=${relu}`
    const [y, want, kept, pooled, only] = tf.tidy(() => {
      const x = tf.tensor(rand(size(xs), seed++), xs)
      const f = tf.tensor(rand(size(fs), seed++), fs)
      const b = tf.tensor1d(rand(fs[3]!, seed++))
      const attrs = { strides: [1, 1], pad, relu }
      const e = tf.engine()
      const y = e.runKernel(CONV_BIAS_ACT, { x, filter: f, bias: b }, attrs as never) as tf.Tensor4D
      const [kept, pooled] = e.runKernel(CONV_BIAS_ACT_POOL, { x, filter: f, bias: b }, {
        ...attrs,
        keep: true,
      } as never) as unknown as tf.Tensor[]
      const [only] = e.runKernel(CONV_BIAS_ACT_POOL, { x, filter: f, bias: b }, {
        ...attrs,
        keep: false,
      } as never) as unknown as tf.Tensor[]
      return [y, tf.avgPool(y, 2, 2, 'valid'), kept!, pooled!, only!].map((t) => t.dataSync() as Float32Array)
    })
    tt.ok(same(kept!, y!), `${label}: y`)
    tt.ok(same(pooled!, want!), `${label}: pooled`)
    tt.ok(same(only!, want!), `${label}: pooled, y not kept`)
    tt.ok(
      want!.some((v) => v !== 0),
      `${label}: pooled not all zero`,
    )
  }
})

t.test('chunk loss and the tape gradient (fused on wasm) equal the unfused tape bit for bit', async (tt) => {
  // The tape with the fused layer; on wasm chunkGradient normally takes the hand-written pass,
  // which conv-hvp.test.ts checks against this tape gradient.
  setConvFastPath(false)
  t.teardown(() => setConvFastPath(true))
  const specs: ModelSpec[] = [
    { arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10, pool: 'avg', width: 0.5 },
    { arch: 'cnn', activation: 'tanh', inputShape: [13, 11, 2], classes: 3, pool: 'max', width: 0.7 },
    { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 8 },
  ]
  for (const spec of specs) {
    const m = buildModel(spec)
    const c = makeChunk(m, 9, 4)
    const theta = initParams(m, 2).map((a, i) => a + 0.01 * Math.sin(i))
    const before = tf.memory().numTensors
    const { loss, grad } = chunkGradient(m, theta, c)
    const plainLoss = chunkLoss(m, theta, c)
    const [h, w, ch] = spec.inputShape
    const ref = tf.tidy(() => {
      const ps = m.params.map((p) => tf.tensor(theta.subarray(p.offset, p.offset + size(p.shape)), p.shape))
      const f = (...q: tf.Tensor[]): tf.Scalar => crossEntropySum(m.forwardParts(q, tf.tensor4d(c.x, [c.n, h, w, ch])), c.y)
      const { value, grads } = tf.valueAndGrads(f)(ps)
      const out = new Float32Array(m.size)
      m.params.forEach((p, i) => out.set(grads[i]!.dataSync(), p.offset))
      return { loss: value.dataSync()[0]!, grad: out }
    })
    tt.equal(loss, ref.loss, `${spec.arch} ${spec.activation}: gradient's loss`)
    tt.equal(plainLoss, ref.loss, `${spec.arch} ${spec.activation}: loss`)
    tt.ok(same(grad, ref.grad), `${spec.arch} ${spec.activation}: gradient bit for bit`)
    tt.ok(
      grad.some((v) => v !== 0),
      `${spec.arch} ${spec.activation}: gradient not all zero`,
    )
    tt.equal(tf.memory().numTensors, before, `${spec.arch}: no tensors left behind`)
  }
})
