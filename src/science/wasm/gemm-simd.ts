/**
 * BatchMatMul through cusp's own SIMD kernels (simd/kernels.as `packB` and `gemm`): B is packed
 * into panels of 8 columns once per batch item, then a 4x8 register-blocked product reads A in
 * place. Transposes are strides (A) or done while packing (B), never a separate transpose.
 * Each output element sums its k products in order 0..k-1, so the bits do not depend on the
 * blocking or on anything but the inputs. Batch dims: equal, or one side unbatched (size 1).
 * Returns undefined when it does not apply (non-float32, mismatched batch dims).
 */
import type { TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { allocScratch, freeScratch, heapF32, pointerOf, simdKernels } from './simd/kernels.ts'

const prod = (s: readonly number[]): number => s.reduce((x, y) => x * y, 1)

export function simdMatMul(
  backend: BackendWasm,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): TensorInfo | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return undefined
  const ra = a.shape.length
  const rb = b.shape.length
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!
  const kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!
  if (k !== kb || m === 0 || n === 0) return undefined
  const batchA = a.shape.slice(0, -2)
  const batchB = b.shape.slice(0, -2)
  const ba = prod(batchA)
  const bb = prod(batchB)
  let batchShape: number[]
  if (ba === bb && batchA.length === batchB.length && batchA.every((d, i) => d === batchB[i])) batchShape = batchA
  else if (ba === 1) batchShape = batchB
  else if (bb === 1) batchShape = batchA
  else return undefined
  const batch = Math.max(ba, bb)
  const out = backend.makeOutput([...batchShape, m, n], 'float32')
  if (k === 0) {
    // An empty sum: zeros (wasm outputs are not zeroed by makeOutput).
    backend.typedArrayFromHeap(out).fill(0)
    return out
  }
  const kern = simdKernels(backend)
  const panels = Math.ceil(n / 8) * 8 * k
  const bp = allocScratch(backend, panels)
  const aPtr = pointerOf(backend, a.dataId)
  const bPtr = pointerOf(backend, b.dataId)
  const cPtr = pointerOf(backend, out.dataId)
  const [sam, sak] = transposeA ? [1, m] : [k, 1]
  const [sbk, sbn] = transposeB ? [1, k] : [n, 1]
  for (let i = 0; i < batch; i++) {
    if (i === 0 || bb > 1) kern.packB(bPtr + (bb > 1 ? i : 0) * k * n * 4, bp, k, n, sbk, sbn)
    kern.gemm(aPtr + (ba > 1 ? i : 0) * m * k * 4, bp, cPtr + i * m * n * 4, m, n, k, sam, sak)
  }
  freeScratch(backend, bp)
  return out
}

/**
 * One 2-D product a b (transposes as above) written to `cPtr`, float32s [m, n] in the wasm heap:
 * the same packing and kernel as simdMatMul, so the same bits. a and b must be 2-D float32 with
 * matching inner sizes (the caller checks).
 */
export function gemmInto(backend: BackendWasm, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean, cPtr: number): void {
  const m = transposeA ? a.shape[1]! : a.shape[0]!
  const k = transposeA ? a.shape[0]! : a.shape[1]!
  const n = transposeB ? b.shape[0]! : b.shape[1]!
  const kern = simdKernels(backend)
  if (k === 0) {
    heapF32(backend).fill(0, cPtr / 4, cPtr / 4 + m * n) // an empty sum
    return
  }
  const bp = allocScratch(backend, Math.ceil(n / 8) * 8 * k)
  const [sam, sak] = transposeA ? [1, m] : [k, 1]
  const [sbk, sbn] = transposeB ? [1, k] : [n, 1]
  kern.packB(pointerOf(backend, b.dataId), bp, k, n, sbk, sbn)
  kern.gemm(pointerOf(backend, a.dataId), bp, cPtr, m, n, k, sam, sak)
  freeScratch(backend, bp)
}
