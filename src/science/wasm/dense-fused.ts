/**
 * Fused dense-layer kernels for the hand-written MLP passes (dense-hvp.ts) on wasm, to cut the
 * number of tfjs kernel calls (each ~16 µs of engine work) and elementwise passes per HVP:
 *   CuspDense   out = ((a b + bias) + c d) ⊙ mask, each term optional (a b always there), products
 *               with optional transposes, 2-D float32 only. The products are cusp's SIMD gemm
 *               (gemm-simd.ts), the tail one pass of simd/kernels.as `epilogue`: one float32 add or
 *               multiply per step, in the order the separate BatchMatMul / Add / Multiply calls made
 *               them, so the bits are those of the unfused ops.
 *   CuspColSum  [m, n] -> [n], column sums with rows in order, the bits of ones[1, m] · x.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { gemmInto } from './gemm-simd.ts'
import { WASM } from './kernel-calls.ts'
import { allocScratch, freeScratch, pointerOf, simdKernels } from './simd/kernels.ts'

export const CUSP_DENSE = 'CuspDense'
export const CUSP_COL_SUM = 'CuspColSum'

export interface DenseAttrs {
  transposeA: boolean
  transposeB: boolean
  transposeC: boolean
  transposeD: boolean
}

const rows = (t: TensorInfo, transposed: boolean): number => t.shape[transposed ? 1 : 0]!
const cols = (t: TensorInfo, transposed: boolean): number => t.shape[transposed ? 0 : 1]!

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`${CUSP_DENSE}: ${what}`)
}

function dense(args: {
  inputs: { a: TensorInfo; b: TensorInfo; c?: TensorInfo; d?: TensorInfo; bias?: TensorInfo; mask?: TensorInfo }
  backend: BackendWasm
  attrs: DenseAttrs
}): TensorInfo {
  const { inputs, backend, attrs } = args
  const { a, b, c, d, bias, mask } = inputs
  for (const t of [a, b, c, d, mask])
    if (t !== undefined) check(t.dtype === 'float32' && t.shape.length === 2, 'operands must be 2-D float32')
  const m = rows(a, attrs.transposeA)
  const n = cols(b, attrs.transposeB)
  check(cols(a, attrs.transposeA) === rows(b, attrs.transposeB), `a b: inner sizes differ (${a.shape} ${b.shape})`)
  check((c === undefined) === (d === undefined), 'c and d come together')
  if (c !== undefined && d !== undefined) {
    check(rows(c, attrs.transposeC) === m && cols(d, attrs.transposeD) === n, 'c d must be [m, n] like a b')
    check(cols(c, attrs.transposeC) === rows(d, attrs.transposeD), `c d: inner sizes differ (${c.shape} ${d.shape})`)
  }
  if (bias !== undefined) check(bias.dtype === 'float32' && bias.shape.length === 1 && bias.shape[0] === n, 'bias must be [n] float32')
  if (mask !== undefined) check(mask.shape[0] === m && mask.shape[1] === n, 'mask must be [m, n]')
  const out = backend.makeOutput([m, n], 'float32')
  const outPtr = pointerOf(backend, out.dataId)
  gemmInto(backend, a, b, attrs.transposeA, attrs.transposeB, outPtr)
  let t = 0
  if (c !== undefined && d !== undefined) {
    t = allocScratch(backend, m * n)
    gemmInto(backend, c, d, attrs.transposeC, attrs.transposeD, t)
  }
  const ptr = (x: TensorInfo | undefined): number => (x === undefined ? 0 : pointerOf(backend, x.dataId))
  if (bias !== undefined || t !== 0 || mask !== undefined) simdKernels(backend).epilogue(outPtr, ptr(bias), t, ptr(mask), m, n)
  if (t !== 0) freeScratch(backend, t)
  return out
}

function colSum(args: { inputs: { x: TensorInfo }; backend: BackendWasm }): TensorInfo {
  const { x } = args.inputs
  const backend = args.backend
  if (x.dtype !== 'float32' || x.shape.length !== 2) throw new Error(`${CUSP_COL_SUM}: x must be 2-D float32`)
  const [m, n] = x.shape as [number, number]
  const out = backend.makeOutput([n], 'float32')
  simdKernels(backend).colSum(pointerOf(backend, x.dataId), pointerOf(backend, out.dataId), m, n)
  return out
}

export const cuspDenseConfig: KernelConfig = { kernelName: CUSP_DENSE, backendName: WASM, kernelFunc: dense as unknown as KernelFunc }
export const cuspColSumConfig: KernelConfig = { kernelName: CUSP_COL_SUM, backendName: WASM, kernelFunc: colSum as unknown as KernelFunc }
