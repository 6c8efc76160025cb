/**
 * The cross-entropy (paper §3.2) against a float64 log-sum-exp, including logits large enough to
 * overflow a naive exp, its gradient softmax - onehot, and its Hessian diag(p) - p pᵀ per row (the
 * second-order path through Exp and the constant row max), plus label validation.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { hvp } from '../../src/science/hvp.ts'
import { crossEntropySum } from '../../src/science/loss.ts'
import { relErr } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
await initEngine('cpu')

const n = 3
const k = 4
const z = new Float32Array([1, 2, 3, 4, -1, 0.5, 0.25, 0, 100, 101, 99, -50]) // row 3 would overflow exp in float32
const y = new Int32Array([3, 0, 1])
const v = new Float32Array([0.3, -1, 2, 0.5, 1, 1, -1, 0, 0.1, 0.2, -0.7, 1.5])

function softmaxRow(i: number): number[] {
  const row = Array.from(z.subarray(i * k, (i + 1) * k))
  const m = Math.max(...row)
  const e = row.map((a) => Math.exp(a - m))
  const s = e.reduce((a, b) => a + b, 0)
  return e.map((a) => a / s)
}

t.test('value, gradient and Hessian-vector product against float64', async (t) => {
  const f = (th: tf.Tensor1D): tf.Scalar => crossEntropySum(tf.reshape(th, [n, k]) as tf.Tensor2D, tf.tensor1d(y, 'int32'))
  let want = 0
  const g = new Float64Array(n * k)
  const hv = new Float64Array(n * k)
  for (let i = 0; i < n; i++) {
    const p = softmaxRow(i)
    const row = Array.from(z.subarray(i * k, (i + 1) * k))
    const m = Math.max(...row)
    want += m + Math.log(row.reduce((s, a) => s + Math.exp(a - m), 0)) - row[y[i]!]!
    const pv = p.reduce((s, pj, j) => s + pj * v[i * k + j]!, 0)
    for (let j = 0; j < k; j++) {
      g[i * k + j] = p[j]! - (j === y[i] ? 1 : 0)
      hv[i * k + j] = p[j]! * v[i * k + j]! - p[j]! * pv // (diag p - p pᵀ) v
    }
  }
  const value = tf.tidy(() => f(tf.tensor1d(z)))
  t.ok(Math.abs(value.dataSync()[0]! - want) < 1e-5 * want, `loss ${value.dataSync()[0]} vs ${want}`)
  const grad = tf.tidy(() => tf.grad((th: tf.Tensor) => f(th as tf.Tensor1D))(tf.tensor1d(z)))
  t.ok(relErr(grad.dataSync(), g) < 1e-6, `gradient rel err ${relErr(grad.dataSync(), g).toExponential(2)}`)
  const h = tf.tidy(() => hvp(f, tf.tensor1d(z), tf.tensor1d(v)))
  t.ok(relErr(h.dataSync(), hv) < 1e-6, `HVP rel err ${relErr(h.dataSync(), hv).toExponential(2)}`)
  tf.dispose([value, grad, h])
})

t.test('labels must be classes of the logits', async (t) => {
  t.throws(() => tf.tidy(() => crossEntropySum(tf.zeros([2, 3]), tf.tensor1d([0, 3], 'int32'))), /label 3 at row 1/)
  t.throws(() => tf.tidy(() => crossEntropySum(tf.zeros([2, 3]), tf.tensor1d([0], 'int32'))), /1 labels for 2 rows/)
})
