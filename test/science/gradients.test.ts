/**
 * Each second-order gradient registration (src/science/gradients/) against an oracle, on the cpu
 * backend: the HVP of a small function built around the kernel is compared with an analytic second
 * derivative, an exact float64 computation, or a five-point finite difference of the gradient where
 * the function is a low-degree polynomial (for which that stencil is exact up to rounding).
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { registerTanhGrad } from '../../src/science/gradients/tanh.ts'
import { hvp } from '../../src/science/hvp.ts'
import { createRng } from '../../src/science/rng.ts'
import { fdHvp, relErr } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
await initEngine('cpu')

function randn(n: number, seed: number): Float32Array {
  const r = createRng(seed, 'grad-test')
  return new Float32Array(n).map(() => r.normal())
}

/** Hv of f at θ (plain arrays in, plain array out). */
function hvpOf(f: (th: tf.Tensor1D) => tf.Scalar, theta: Float32Array, v: Float32Array): Float32Array {
  const out = tf.tidy(() => hvp(f, tf.tensor1d(theta), tf.tensor1d(v)))
  const a = out.dataSync() as Float32Array
  out.dispose()
  return a
}

/** ∇f at θ. */
function gradOf(f: (th: tf.Tensor1D) => tf.Scalar): (theta: Float32Array) => Float32Array {
  return (theta) => {
    const g = tf.tidy(() => tf.grad((x: tf.Tensor) => f(x as tf.Tensor1D))(tf.tensor1d(theta)))
    const a = g.dataSync() as Float32Array
    g.dispose()
    return a
  }
}

t.test("elementwise re-registrations match analytic second derivatives (f = Σ op(x), H = diag op'')", async (t) => {
  const n = 64
  const x = randn(n, 1).map((a) => a * 1.5)
  const v = randn(n, 2)
  const cases: [string, (z: tf.Tensor) => tf.Tensor, (a: number) => number][] = [
    ['Tanh', tf.tanh, (a) => -2 * Math.tanh(a) * (1 - Math.tanh(a) ** 2)],
    ['Exp', tf.exp, (a) => Math.exp(a)],
    [
      'Sigmoid',
      tf.sigmoid,
      (a) => {
        const s = 1 / (1 + Math.exp(-a))
        return s * (1 - s) * (1 - 2 * s)
      },
    ],
    ['Elu', tf.elu, (a) => (a > 0 ? 0 : Math.exp(a))],
    ['Pow (base)', (z) => tf.pow(z, tf.scalar(3)), (a) => 6 * a],
    ['Pow (exponent)', (z) => tf.pow(tf.scalar(2), z), (a) => Math.LN2 ** 2 * 2 ** a],
  ]
  for (const [name, op, second] of cases) {
    const hv = hvpOf((th) => tf.sum(op(th)) as tf.Scalar, x, v)
    const want = Float64Array.from(x, (a, i) => second(a) * v[i]!)
    t.ok(relErr(hv, want) < 1e-5, `${name}: rel err ${relErr(hv, want).toExponential(2)}`)
  }
})

t.test('Softmax re-registration: HVP of Σ w·softmax(x) matches finite differences', async (t) => {
  const x = randn(24, 3)
  const w = tf.tensor2d(randn(24, 4), [4, 6])
  const v = randn(24, 5)
  const f = (th: tf.Tensor1D): tf.Scalar => tf.sum(tf.mul(tf.softmax(tf.reshape(th, [4, 6])), w))
  const hv = hvpOf(f, x, v)
  const fd = fdHvp(gradOf(f), x, v, 1e-2)
  t.ok(relErr(hv, fd) < 1e-4, `rel err ${relErr(hv, fd).toExponential(2)}`)
  w.dispose()
})

t.test('Conv2DBackpropFilter gradient: HVP of a conv least-squares loss in (x, W) jointly', async (t) => {
  // f(x, W) = 0.5 ||conv(x, W) - r||^2 is a quartic polynomial: the five-point stencil is exact.
  // Differentiating w.r.t. both x and W exercises both branches (dy and x) of the registration.
  for (const [stride, pad, k] of [
    [1, 'same', 3],
    [2, 'valid', 3],
    [4, 'valid', 5],
  ] as const) {
    const xs: [number, number, number, number] = [2, 9, 9, 2]
    const ws: [number, number, number, number] = [k, k, 2, 3]
    const nx = 2 * 9 * 9 * 2
    const nw = k * k * 2 * 3
    const out = tf.tidy(() => tf.conv2d(tf.zeros(xs) as tf.Tensor4D, tf.zeros(ws) as tf.Tensor4D, stride, pad).shape)
    const r = tf.tensor(
      randn(
        out.reduce((a, b) => a * b, 1),
        7,
      ),
      out,
    )
    const f = (th: tf.Tensor1D): tf.Scalar => {
      const [x, W] = tf.split(th, [nx, nw])
      const y = tf.conv2d(tf.reshape(x!, xs) as tf.Tensor4D, tf.reshape(W!, ws) as tf.Tensor4D, stride, pad)
      return tf.mul(0.5, tf.sum(tf.square(tf.sub(y, r))))
    }
    const theta = randn(nx + nw, 11).map((a) => a * 0.5)
    const v = randn(nx + nw, 13)
    const hv = hvpOf(f, theta, v)
    const fd = fdHvp(gradOf(f), theta, v, 0.05)
    t.ok(relErr(hv, fd) < 1e-4, `stride ${stride} ${pad} k${k}: rel err ${relErr(hv, fd).toExponential(2)}`)
    r.dispose()
  }
})

t.test('AvgPoolGrad gradient: H of 0.5||avgPool(x)||^2 is PᵀP, checked in float64', async (t) => {
  const [n, h, w, c] = [2, 6, 6, 3]
  const x = randn(n * h * w * c, 17)
  const v = randn(n * h * w * c, 19)
  const f = (th: tf.Tensor1D): tf.Scalar =>
    tf.mul(0.5, tf.sum(tf.square(tf.avgPool(tf.reshape(th, [n, h, w, c]) as tf.Tensor4D, 2, 2, 'valid'))))
  const hv = hvpOf(f, x, v)
  // PᵀP v: each cell gets (window mean of v) / 4.
  const want = new Float64Array(v.length)
  const at = (b: number, i: number, j: number, k: number): number => ((b * h + i) * w + j) * c + k
  for (let b = 0; b < n; b++)
    for (let i = 0; i < h; i += 2)
      for (let j = 0; j < w; j += 2)
        for (let k = 0; k < c; k++) {
          const cells = [at(b, i, j, k), at(b, i + 1, j, k), at(b, i, j + 1, k), at(b, i + 1, j + 1, k)]
          const mean = cells.reduce((s, p) => s + v[p]!, 0) / 4
          for (const p of cells) want[p] = mean / 4
        }
  t.ok(relErr(hv, want) < 1e-6, `rel err ${relErr(hv, want).toExponential(2)}`)
})

t.test("MaxPoolGrad gradient: H of 0.5||maxPool(x)||^2 selects each window's arg-max, checked in float64", async (t) => {
  const [n, h, w, c] = [2, 6, 7, 3] // odd width: the last column is in no window (floor mode)
  const x = randn(n * h * w * c, 23).map((a) => a - 1) // many windows with a negative max
  const v = randn(n * h * w * c, 29)
  const f = (th: tf.Tensor1D): tf.Scalar =>
    tf.mul(0.5, tf.sum(tf.square(tf.maxPool(tf.reshape(th, [n, h, w, c]) as tf.Tensor4D, 2, 2, 'valid'))))
  const hv = hvpOf(f, x, v)
  const want = new Float64Array(v.length)
  const at = (b: number, i: number, j: number, k: number): number => ((b * h + i) * w + j) * c + k
  for (let b = 0; b < n; b++)
    for (let i = 0; i + 1 < h; i += 2)
      for (let j = 0; j + 1 < w; j += 2)
        for (let k = 0; k < c; k++) {
          const cells = [at(b, i, j, k), at(b, i, j + 1, k), at(b, i + 1, j, k), at(b, i + 1, j + 1, k)]
          const best = cells.reduce((p, q) => (x[q]! > x[p]! ? q : p))
          want[best] = v[best]!
        }
  t.ok(relErr(hv, want) < 1e-7, `rel err ${relErr(hv, want).toExponential(2)}`)
})

t.test('the registrations reject what they cannot differentiate correctly', async (t) => {
  const x = randn(2 * 5 * 5, 31)
  const overlapping = (th: tf.Tensor1D): tf.Scalar =>
    tf.sum(tf.square(tf.maxPool(tf.reshape(th, [1, 5, 5, 2]) as tf.Tensor4D, 3, 1, 'valid')))
  t.throws(() => hvpOf(overlapping, x, x), /non-overlapping/)
})

t.test('control: a Tanh gradient written from the saved output (as tfjs ships it) gives a wrong HVP', async (t) => {
  // tfjs issue #3252: the saved output's clone is taped before the Tanh node, so the second backward
  // pass loses the path through it. Registering that form shows the oracle above would catch it.
  const x = randn(32, 37)
  const v = randn(32, 41)
  // f = Σ x tanh(x): f'' = 2 (1 - t^2) - 2 x t (1 - t^2), t = tanh(x).
  const want = Float64Array.from(x, (a, i) => {
    const th = Math.tanh(a)
    return (2 * (1 - th * th) - 2 * a * th * (1 - th * th)) * v[i]!
  })
  const f = (th: tf.Tensor1D): tf.Scalar => tf.sum(tf.mul(th, tf.tanh(th)))
  tf.registerGradient({
    kernelName: tf.Tanh,
    outputsToSave: [true],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.sub(1, tf.square(saved[0]!))) }),
  })
  try {
    const wrong = hvpOf(f, x, v)
    t.ok(relErr(wrong, want) > 0.1, `output-based gradient: rel err ${relErr(wrong, want).toExponential(2)}`)
  } finally {
    registerTanhGrad()
  }
  const right = hvpOf(f, x, v)
  t.ok(relErr(right, want) < 1e-5, `input-based gradient restored: rel err ${relErr(right, want).toExponential(2)}`)
})
