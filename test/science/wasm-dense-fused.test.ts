/**
 * cusp's fused dense kernels (src/science/wasm/dense-fused.ts) against the unfused wasm ops they
 * replace in the MLP passes: CuspDense ((a b + bias) + c d) ⊙ mask must give the bits of
 * BatchMatMul, Add and Multiply called one by one, for every combination of terms and transposes on
 * odd shapes (edges of the 4x8 blocking and of the 4-lane tail), and CuspColSum the bits of
 * ones[1, m] · x; and both agree with the cpu backend's reference kernels to float32 rounding.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { installWasmKernels } from '../../src/science/wasm-kernels.ts'
import { CUSP_COL_SUM, CUSP_DENSE } from '../../src/science/wasm/dense-fused.ts'
import { lcgNumbers, maxRelErr } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
installWasmKernels()

/** Deterministic uniform numbers in [-2, 2) (fixtures/oracles.ts), negatives included for the mask. */
const rand = (n: number, seed: number): Float32Array => lcgNumbers(n, seed, 1)
/** A 0/1 mask like step(z). */
const mask01 = (n: number, seed: number): Float32Array => rand(n, seed).map((x) => (x > 0 ? 1 : 0))

interface Case {
  m: number
  k: number
  n: number
  k2: number
  ta: boolean
  tb: boolean
  tc: boolean
  td: boolean
  bias: boolean
  second: boolean
  mask: boolean
}
const cases: Case[] = []
{
  const r = rand(400, 17)
  let i = 0
  const pick = (lo: number, hi: number): number => lo + Math.floor(((r[i++]! + 2) / 4) * (hi - lo + 1))
  const flags = (): boolean => pick(0, 1) === 1
  // The MLP's own shapes (per 250-example chunk), then random odd ones.
  cases.push({ m: 250, k: 784, n: 200, k2: 200, ta: false, tb: false, tc: false, td: false, bias: true, second: false, mask: false })
  cases.push({ m: 250, k: 200, n: 200, k2: 200, ta: false, tb: false, tc: false, td: false, bias: true, second: true, mask: true })
  cases.push({ m: 200, k: 250, n: 10, k2: 250, ta: true, tb: false, tc: true, td: false, bias: false, second: true, mask: false })
  cases.push({ m: 250, k: 10, n: 200, k2: 10, ta: false, tb: true, tc: false, td: true, bias: false, second: true, mask: true })
  for (let c = 0; c < 24; c++) {
    cases.push({
      m: pick(1, 23),
      k: pick(1, 19),
      n: pick(1, 21),
      k2: pick(1, 17),
      ta: flags(),
      tb: flags(),
      tc: flags(),
      td: flags(),
      bias: flags(),
      second: flags(),
      mask: flags(),
    })
  }
}
const shapeOf = (rows: number, cols: number, transposed: boolean): [number, number] => (transposed ? [cols, rows] : [rows, cols])
const what = (c: Case): string =>
  `${c.m}x${c.k}x${c.n} k2=${c.k2} t=${+c.ta}${+c.tb}${+c.tc}${+c.td} bias=${+c.bias} cd=${+c.second} mask=${+c.mask}`

/** The case's inputs on the current backend. */
function inputs(c: Case, seed: number): Record<string, tf.Tensor> {
  const a = shapeOf(c.m, c.k, c.ta)
  const b = shapeOf(c.k, c.n, c.tb)
  const ins: Record<string, tf.Tensor> = { a: tf.tensor2d(rand(c.m * c.k, seed), a), b: tf.tensor2d(rand(c.k * c.n, seed + 1), b) }
  if (c.second) {
    ins['c'] = tf.tensor2d(rand(c.m * c.k2, seed + 2), shapeOf(c.m, c.k2, c.tc))
    ins['d'] = tf.tensor2d(rand(c.k2 * c.n, seed + 3), shapeOf(c.k2, c.n, c.td))
  }
  if (c.bias) ins['bias'] = tf.tensor1d(rand(c.n, seed + 4))
  if (c.mask) ins['mask'] = tf.tensor2d(mask01(c.m * c.n, seed + 5), [c.m, c.n])
  return ins
}

/** The unfused ops, in the order dense-hvp.ts called them before the fusion. */
function unfused(c: Case, ins: Record<string, tf.Tensor>): tf.Tensor {
  return tf.tidy(() => {
    let out: tf.Tensor = tf.matMul(ins['a'] as tf.Tensor2D, ins['b'] as tf.Tensor2D, c.ta, c.tb)
    if (c.bias) out = tf.add(out, ins['bias']!)
    if (c.second) out = tf.add(tf.matMul(ins['c'] as tf.Tensor2D, ins['d'] as tf.Tensor2D, c.tc, c.td), out)
    if (c.mask) out = tf.mul(out, ins['mask']!)
    return out
  })
}

const attrs = (c: Case): Record<string, boolean> => ({ transposeA: c.ta, transposeB: c.tb, transposeC: c.tc, transposeD: c.td })
const bytes = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength)

t.test('CuspDense gives the bits of the unfused wasm ops, and the cpu reference to float32 rounding', async (tt) => {
  let seed = 1000
  for (const c of cases) {
    await tf.setBackend('wasm')
    const ins = inputs(c, seed)
    const fused = tf.engine().runKernel(CUSP_DENSE, ins as never, attrs(c) as never) as tf.Tensor
    const ref = unfused(c, ins)
    tt.same(fused.shape, [c.m, c.n], `${what(c)}: shape`)
    const got = fused.dataSync() as Float32Array
    tt.ok(bytes(got).equals(bytes(ref.dataSync() as Float32Array)), `${what(c)}: same bits as BatchMatMul/Add/Multiply`)
    tf.dispose([...Object.values(ins), fused, ref])
    await tf.setBackend('cpu')
    const cpuIns = inputs(c, seed)
    const want = unfused(c, cpuIns)
    const e = maxRelErr(got, want.dataSync())
    tt.ok(e <= 1e-5 && Number.isFinite(e), `${what(c)}: cpu reference, rel err ${e.toExponential(2)} <= 1e-5`)
    tf.dispose([...Object.values(cpuIns), want])
    seed += 10
  }
})

t.test('CuspColSum gives the bits of ones · x, rows in order', async (tt) => {
  await tf.setBackend('wasm')
  for (const [m, n] of [
    [250, 200],
    [250, 10],
    [1, 1],
    [7, 3],
    [13, 9],
    [1000, 5],
  ] as const) {
    const x = tf.tensor2d(rand(m * n, m * 31 + n), [m, n])
    const got = tf.engine().runKernel(CUSP_COL_SUM, { x } as never) as tf.Tensor
    const ones = tf.ones([1, m])
    const want = tf.reshape(tf.matMul(ones, x), [n])
    tt.same(got.shape, [n], `${m}x${n}: shape`)
    tt.ok(bytes(got.dataSync() as Float32Array).equals(bytes(want.dataSync() as Float32Array)), `${m}x${n}: same bits as ones · x`)
    // and the sequential float32 sum, by hand
    const xs = x.dataSync()
    const seq = new Float32Array(n)
    for (let j = 0; j < n; j++) {
      let s = Math.fround(0)
      for (let i = 0; i < m; i++) s = Math.fround(s + xs[i * n + j]!)
      seq[j] = s
    }
    tt.ok(bytes(got.dataSync() as Float32Array).equals(bytes(seq)), `${m}x${n}: same bits as a sequential float32 sum`)
    tf.dispose([x, got, ones, want])
  }
})

t.test('rejects operands it does not handle', async (tt) => {
  await tf.setBackend('wasm')
  const plain = { transposeA: false, transposeB: false, transposeC: false, transposeD: false }
  const a = tf.ones([3, 4])
  const b = tf.ones([5, 6])
  tt.throws(() => tf.engine().runKernel(CUSP_DENSE, { a, b } as never, plain as never), /inner sizes/)
  const bias = tf.ones([7])
  const b2 = tf.ones([4, 6])
  tt.throws(() => tf.engine().runKernel(CUSP_DENSE, { a, b: b2, bias } as never, plain as never), /bias/)
  tf.dispose([a, b, bias, b2])
})
