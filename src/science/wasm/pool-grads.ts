/**
 * Pooling gradients for the wasm backend. The shipped MaxPoolGrad starts each window's running
 * maximum at FLT_MIN (the smallest *positive* float) at position 0, so a window whose maximum is
 * <= 0 routes its gradient to the window's first cell, silently (DESIGN.md "Engine facts"). This
 * MaxPoolGrad is a direct loop over the wasm heap with tfjs-core's semantics (the cpu backend's):
 * running max from -Infinity, first maximum wins, padded cells never win, NaN never wins.
 * AvgPoolGrad keeps the shipped kernel but refuses windows that overlap padding: tfjs's forward
 * avgPool then divides by the count of valid cells while every backend's gradient divides by
 * k*k, so the gradient would not be the forward's derivative. Models use 'valid' pools.
 */
import { backend_util } from '@tensorflow/tfjs'
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { callOriginal, WASM } from './kernel-calls.ts'

interface PoolGradAttrs {
  filterSize: [number, number] | number
  strides: [number, number] | number
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding
  dimRoundingMode?: 'floor' | 'round' | 'ceil'
}

function poolInfo(shape: readonly number[], attrs: PoolGradAttrs): backend_util.Conv2DInfo {
  return backend_util.computePool2DInfo(
    shape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad as never, attrs.dimRoundingMode,
  )
}

/** dx [n,h,w,c] of maxPool: each window's dy goes to its first strict maximum. */
function maxPoolGrad(args: { inputs: { dy: TensorInfo; input: TensorInfo }; backend: BackendWasm; attrs: PoolGradAttrs }): TensorInfo {
  const { inputs: { dy, input }, backend, attrs } = args
  const info = poolInfo(input.shape, attrs)
  const { batchSize: nb, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info
  const { dilationHeight: dh, dilationWidth: dw } = info
  const { top: pt, left: pl } = info.padInfo
  const out = backend.makeOutput([...input.shape], 'float32')
  // Views after the allocation (it may grow the heap).
  const x = backend.typedArrayFromHeap(input) as Float32Array // [n, h, w, c]
  const g = backend.typedArrayFromHeap(dy) as Float32Array // [n, oh, ow, c]
  const dx = backend.typedArrayFromHeap(out) as Float32Array // [n, h, w, c]
  dx.fill(0)
  const best = new Float64Array(c)
  const where = new Int32Array(c)
  for (let b = 0; b < nb; b++) {
    for (let yr = 0; yr < oh; yr++) {
      const r0 = yr * sh - pt
      let rMin = r0
      while (rMin < 0) rMin += dh
      const rMax = Math.min(h, r0 + fh)
      for (let yc = 0; yc < ow; yc++) {
        const c0 = yc * sw - pl
        let cMin = c0
        while (cMin < 0) cMin += dw
        const cMax = Math.min(w, c0 + fw)
        best.fill(Number.NEGATIVE_INFINITY)
        where.fill(-1)
        for (let r = rMin; r < rMax; r += dh) {
          for (let col = cMin; col < cMax; col += dw) {
            const base = ((b * h + r) * w + col) * c
            for (let d = 0; d < c; d++) {
              const v = x[base + d]!
              if (v > best[d]!) {
                best[d] = v
                where[d] = base + d
              }
            }
          }
        }
        const gBase = ((b * oh + yr) * ow + yc) * c
        for (let d = 0; d < c; d++) {
          const at = where[d]!
          if (at >= 0) dx[at] = dx[at]! + g[gBase + d]!
        }
      }
    }
  }
  return out
}

/** The shipped AvgPoolGrad, guarded against windows that overlap padding. */
function avgPoolGrad(args: { inputs: { dy: TensorInfo; input: TensorInfo }; backend: BackendWasm; attrs: PoolGradAttrs }): TensorInfo {
  const { inputs, backend, attrs } = args
  const { top, bottom, left, right } = poolInfo(inputs.input.shape, attrs).padInfo
  if (top !== 0 || bottom !== 0 || left !== 0 || right !== 0) {
    throw new Error(
      'avgPool gradient with windows over padding is inconsistent in tfjs (forward divides by valid cells, ' +
        "gradient by k*k); use pad 'valid' (cusp wasm-kernels)",
    )
  }
  return callOriginal('AvgPoolGrad', backend, inputs as never, attrs as never)
}

/** Replaces wasm's 'MaxPoolGrad' (inputs dy, input, output; tfjs-core attrs). */
export const maxPoolGradConfig: KernelConfig = {
  kernelName: 'MaxPoolGrad',
  backendName: WASM,
  kernelFunc: maxPoolGrad as unknown as KernelFunc,
}

/** Replaces wasm's 'AvgPoolGrad' with a guard (see module comment). */
export const avgPoolGradConfig: KernelConfig = {
  kernelName: 'AvgPoolGrad',
  backendName: WASM,
  kernelFunc: avgPoolGrad as unknown as KernelFunc,
}
