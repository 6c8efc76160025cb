/**
 * Sum over leading axes for the wasm backend. Every bias gradient is a sum of a [n, h, w, c]
 * activation gradient over its first three axes; the shipped kernel first transposes the reduced
 * axes innermost (a full copy), then sums in float32, and took ~10 ms per call on a 250-image CNN
 * chunk. Reducing a leading prefix needs no transpose: walk the rows in memory order and add each
 * into a float64 accumulator per column. That is also the cpu backend's arithmetic (float64
 * running sum over the reduced index, in order), so results match it to the bit. Other axis sets
 * and non-float32 tensors keep the shipped kernel.
 */
import { util } from '@tensorflow/tfjs'
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { callOriginal, sizeOf, WASM } from './kernel-calls.ts'

function sum(args: { inputs: { x: TensorInfo }; backend: BackendWasm; attrs: { axis: number | number[]; keepDims: boolean } }): TensorInfo {
  const { inputs, backend, attrs } = args
  const x = inputs.x
  const axes = [...util.parseAxisParam(attrs.axis, x.shape)].sort((a, b) => a - b)
  const leading = axes.every((a, i) => a === i)
  if (x.dtype !== 'float32' || !leading || axes.length === 0) return callOriginal('Sum', backend, inputs, attrs)
  const k = axes.length
  const rows = sizeOf(x.shape.slice(0, k))
  const cols = sizeOf(x.shape.slice(k))
  const outShape = attrs.keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k)
  const out = backend.makeOutput(outShape, 'float32')
  // Views after the allocation (it may grow the heap).
  const xs = backend.typedArrayFromHeap(x) as Float32Array // [rows, cols]
  const o = backend.typedArrayFromHeap(out) as Float32Array // [cols]
  if (cols === 1) {
    let s = 0
    for (let r = 0; r < rows; r++) s += xs[r]!
    o[0] = s
    return out
  }
  const acc = new Float64Array(cols)
  if (cols <= 64) {
    // Few columns (bias gradients): one running sum per column, walking down it; the strided
    // reads stay in cache lines the neighbouring columns reuse. Same order as below.
    for (let c = 0; c < cols; c++) {
      let s = 0
      for (let i = c; i < rows * cols; i += cols) s += xs[i]!
      acc[c] = s
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const base = r * cols
      for (let c = 0; c < cols; c++) acc[c]! += xs[base + c]!
    }
  }
  o.set(acc)
  return out
}

/** Replaces wasm's 'Sum' (leading-axes float32 reductions in JS; others shipped). */
export const sumConfig: KernelConfig = { kernelName: 'Sum', backendName: WASM, kernelFunc: sum as unknown as KernelFunc }
