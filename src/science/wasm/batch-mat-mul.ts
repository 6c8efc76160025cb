/**
 * BatchMatMul for the wasm backend: cusp's own SIMD product (gemm-simd.ts: B packed per call,
 * transposes as strides, a fixed summation order, 32 vs 18 GFLOP/s for XNNPACK on the MLP's
 * products, CPU time) for every float32 product it accepts; otherwise the shipped kernel, made fast
 * with transposes and correct with reshaped operands, as follows. The shipped kernel sends only un-transposed, unbatched products to XNNPACK; with transposeA/B
 * it falls to a naive loop (0.6-1.2 vs 15-18 GFLOP/s, docs/architecture.md "Engine facts"), and every
 * gradient of a dense layer asks for a transposed product. So the operands are transposed
 * explicitly first. The XNNPACK path also caches the packed right operand by tensor data id and
 * never looks at its shape again: the same data reshaped (a reshape shares the data id) silently
 * multiplies by the old layout. We remember, per data id, the [k, n] the cache was built with and
 * hand XNNPACK a fresh copy whenever that data comes back with another shape.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { simdMatMul } from './gemm-simd.ts'
import { callOriginal, copyTensor, release, sizeOf, transpose, WASM } from './kernel-calls.ts'

/**
 * The [k, n] layout XNNPACK packed for each data id it has cached (dataId objects are shared by
 * reshapes, exactly like the C++ cache key; a WeakMap forgets them with the tensor).
 */
const packedLayout = new WeakMap<object, string>()

function swapLastTwo(backend: BackendWasm, x: TensorInfo): TensorInfo {
  const r = x.shape.length
  const perm = [...Array(r).keys()]
  perm[r - 2] = r - 1
  perm[r - 1] = r - 2
  return transpose(backend, x, perm)
}

function batchMatMul(args: {
  inputs: { a: TensorInfo; b: TensorInfo }
  backend: BackendWasm
  attrs: { transposeA: boolean; transposeB: boolean }
}): TensorInfo {
  const { inputs, backend, attrs } = args
  // cusp's own SIMD product first (B packed per call, transposes as strides: no cache to go stale).
  const own = simdMatMul(backend, inputs.a, inputs.b, attrs.transposeA, attrs.transposeB)
  if (own !== undefined) return own
  const temps: TensorInfo[] = []
  let a = inputs.a
  let b = inputs.b
  if (attrs.transposeA) {
    a = swapLastTwo(backend, a)
    temps.push(a)
  }
  if (attrs.transposeB) {
    b = swapLastTwo(backend, b)
    temps.push(b)
  }
  const unbatched = sizeOf(a.shape.slice(0, -2)) === 1 && sizeOf(b.shape.slice(0, -2)) === 1
  if (unbatched && b === inputs.b) {
    // Only the unbatched, un-transposed product goes through XNNPACK's cache.
    const layout = `${b.shape[b.shape.length - 2]}x${b.shape[b.shape.length - 1]}`
    const seen = packedLayout.get(b.dataId)
    if (seen === undefined) packedLayout.set(b.dataId, layout)
    else if (seen !== layout) {
      b = copyTensor(backend, b)
      temps.push(b)
    }
  }
  const out = callOriginal('BatchMatMul', backend, { a, b }, { transposeA: false, transposeB: false })
  release(backend, ...temps)
  return out
}

/** Replaces wasm's 'BatchMatMul' (same contract, tfjs-core's BatchMatMul attrs). */
export const batchMatMulConfig: KernelConfig = {
  kernelName: 'BatchMatMul',
  backendName: WASM,
  kernelFunc: batchMatMul as unknown as KernelFunc,
}
