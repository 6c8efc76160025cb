/**
 * cusp's own SIMD matrix product (src/science/wasm/gemm-simd.ts over simd/kernels.as packB/gemm)
 * against the tfjs cpu backend's BatchMatMul, on seeded random inputs: the MLP's exact shapes
 * (forward and both gradients), odd sizes on every edge of the 4x8 blocking, all four transpose
 * combinations, batch > 1 on either or both sides; and that it gives the same bits twice.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { installWasmKernels } from '../../src/science/wasm-kernels.ts'
import { simdMatMul } from '../../src/science/wasm/gemm-simd.ts'
import { lcgNumbers, maxRelErr } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
installWasmKernels()

/** Deterministic numbers in [-2, 2) (sums of 4 uniforms, fixtures/oracles.ts). */
const rand = (n: number, seed: number): Float32Array => lcgNumbers(n, seed)
const size = (sh: number[]): number => sh.reduce((a, b) => a * b, 1)

interface Case {
  a: number[]
  b: number[]
  ta: boolean
  tb: boolean
  what: string
}

const cases: Case[] = [
  { a: [1000, 784], b: [784, 200], ta: false, tb: false, what: 'MLP layer 1 forward' },
  { a: [1000, 200], b: [200, 200], ta: false, tb: false, what: 'MLP layer 2 forward' },
  { a: [1000, 200], b: [200, 10], ta: false, tb: false, what: 'MLP layer 3 forward (n = 10)' },
  { a: [1000, 784], b: [1000, 200], ta: true, tb: false, what: 'MLP layer 1 weight gradient (A^T)' },
  { a: [1000, 200], b: [784, 200], ta: false, tb: true, what: 'MLP input gradient (B^T)' },
  { a: [1000, 10], b: [200, 10], ta: false, tb: true, what: 'MLP layer 3 input gradient (B^T, k = 10)' },
  { a: [1000, 200], b: [1000, 10], ta: true, tb: false, what: 'MLP layer 3 weight gradient' },
  { a: [1, 1], b: [1, 1], ta: false, tb: false, what: '1x1' },
  { a: [7, 5], b: [9, 7], ta: true, tb: true, what: 'both transposed, odd' },
  { a: [3, 5, 7], b: [3, 7, 9], ta: false, tb: false, what: 'batch 3 both sides' },
  { a: [2, 9, 6], b: [1, 9, 13], ta: true, tb: false, what: 'batch 2 on A only, A^T' },
  { a: [1, 6, 11], b: [4, 17, 11], ta: false, tb: true, what: 'batch 4 on B only, B^T' },
]
{
  const r = rand(200, 7)
  let i = 0
  const pick = (lo: number, hi: number): number => lo + Math.floor(((r[i++]! + 2) / 4) * (hi - lo + 1))
  for (let c = 0; c < 16; c++) {
    const m = pick(1, 37)
    const k = pick(1, 41)
    const n = pick(1, 35)
    const batch = pick(1, 3)
    const ta = pick(0, 1) === 1
    const tb = pick(0, 1) === 1
    const a = ta ? [k, m] : [m, k]
    const b = tb ? [n, k] : [k, n]
    cases.push({ a: [batch, ...a], b: [batch, ...b], ta, tb, what: `random ${batch}x${m}x${k}x${n}` })
  }
}

async function matMulOn(how: 'cpu' | 'simd', c: Case, seed: number): Promise<Float32Array> {
  await tf.setBackend(how === 'cpu' ? 'cpu' : 'wasm')
  const a = tf.tensor(rand(size(c.a), seed), c.a)
  const b = tf.tensor(rand(size(c.b), seed + 1), c.b)
  let out: tf.Tensor
  if (how === 'simd') {
    const got = simdMatMul(tf.backend() as unknown as BackendWasm, a as never, b as never, c.ta, c.tb)
    if (got === undefined) throw new Error(`SIMD matMul declined ${c.what}`)
    out = tf.engine().makeTensorFromTensorInfo(got)
  } else {
    out = tf.engine().runKernel('BatchMatMul', { a, b } as never, { transposeA: c.ta, transposeB: c.tb } as never) as tf.Tensor
  }
  const v = (await out.data()) as Float32Array
  tf.dispose([a, b, out])
  return v.slice()
}

t.test('SIMD matrix product matches the cpu reference kernel', async (tt) => {
  let seed = 100
  for (const c of cases) {
    const want = await matMulOn('cpu', c, seed)
    const got = await matMulOn('simd', c, seed)
    seed += 2
    tt.equal(got.length, want.length, `${c.what}: size`)
    const e = maxRelErr(got, want)
    tt.ok(e <= 1e-5 && Number.isFinite(e), `${c.what} a=${c.a} b=${c.b} ta=${c.ta} tb=${c.tb}: rel err ${e.toExponential(2)} <= 1e-5`)
  }
})

t.test('declines what it does not handle', async (tt) => {
  await tf.setBackend('wasm')
  const a = tf.ones([2, 3, 4])
  const b = tf.ones([3, 4, 5])
  tt.equal(simdMatMul(tf.backend() as unknown as BackendWasm, a as never, b as never, false, false), undefined, 'batch 2 vs 3')
  tf.dispose([a, b])
})

t.test('same inputs give the same bits (twice, and after other work in between)', async (tt) => {
  const a = await matMulOn('simd', cases[3]!, 5)
  await matMulOn('simd', cases[9]!, 9)
  const b = await matMulOn('simd', cases[3]!, 5)
  tt.same(Buffer.from(a.buffer), Buffer.from(b.buffer))
})

t.test("registered: wasm's BatchMatMul gives the SIMD product's bits (tf.matMul, transposes, batches)", async (tt) => {
  let seed = 300
  for (const c of cases.filter((_, i) => i % 3 === 0)) {
    const direct = await matMulOn('simd', c, seed)
    await tf.setBackend('wasm')
    const a = tf.tensor(rand(size(c.a), seed), c.a)
    const b = tf.tensor(rand(size(c.b), seed + 1), c.b)
    const out = tf.matMul(a, b, c.ta, c.tb)
    const got = (await out.data()) as Float32Array
    tf.dispose([a, b, out])
    seed += 2
    tt.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(direct.buffer)), `${c.what}: same bits`)
  }
  // A reshape shares the data id: the product must follow the new shape (the XNNPACK cache trap).
  const x = tf.tensor(rand(24, 11), [4, 6])
  const w = tf.tensor(rand(24, 12), [6, 4])
  const w2 = tf.reshape(w, [4, 6])
  const first = tf.matMul(x, w)
  const second = tf.matMul(tf.reshape(x, [6, 4]), w2)
  await tf.setBackend('cpu')
  const [xc, wc] = [tf.tensor(rand(24, 11), [6, 4]), tf.tensor(rand(24, 12), [4, 6])]
  const want = tf.matMul(xc, wc)
  tt.ok(maxRelErr(second.dataSync(), want.dataSync()) <= 1e-6, 'reshaped operands multiply in their new shapes')
  tf.dispose([x, w, w2, first, second, xc, wc, want])
})
