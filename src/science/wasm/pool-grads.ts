/**
 * Pooling gradients for the wasm backend. The shipped MaxPoolGrad starts each window's running
 * maximum at FLT_MIN (the smallest *positive* float) at position 0, so a window whose maximum is
 * <= 0 routes its gradient to the window's first cell, silently (docs/architecture.md "Engine facts"). This
 * MaxPoolGrad is a direct loop over the wasm heap with tfjs-core's semantics (the cpu backend's):
 * running max from -Infinity, first maximum wins, padded cells never win, NaN never wins.
 * AvgPoolGrad (the shipped one is slow) is one broadcasting multiply for stride = window and a loop
 * otherwise, and refuses windows that overlap padding: tfjs's forward avgPool then divides by the
 * count of valid cells while every backend's gradient divides by k*k, so the gradient would not
 * be the forward's derivative. Models use 'valid' pools.
 */
import { backend_util } from '@tensorflow/tfjs'
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { callKernel, release, reshape, WASM } from './kernel-calls.ts'

interface PoolGradAttrs {
  filterSize: [number, number] | number
  strides: [number, number] | number
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding
  dimRoundingMode?: 'floor' | 'round' | 'ceil'
}

function poolInfo(shape: readonly number[], attrs: PoolGradAttrs): backend_util.Conv2DInfo {
  return backend_util.computePool2DInfo(
    shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad as never,
    attrs.dimRoundingMode,
  )
}

/** dx [n,h,w,c] of maxPool: each window's dy goes to its first strict maximum. */
function maxPoolGrad(args: { inputs: { dy: TensorInfo; input: TensorInfo }; backend: BackendWasm; attrs: PoolGradAttrs }): TensorInfo {
  const {
    inputs: { dy, input },
    backend,
    attrs,
  } = args
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

/**
 * dx [n,h,w,c] of avgPool over windows without padding: each window's dy / (kh*kw) is added to
 * every cell of the window (a JS loop over the heap: the shipped kernel took ~50 ms per call on a
 * 250-image CNN chunk, this a few). Windows over padding are refused (module comment).
 */
function avgPoolGrad(args: { inputs: { dy: TensorInfo; input: TensorInfo }; backend: BackendWasm; attrs: PoolGradAttrs }): TensorInfo {
  const {
    inputs: { dy, input },
    backend,
    attrs,
  } = args
  const info = poolInfo(input.shape, attrs)
  const { top, bottom, left, right } = info.padInfo
  if (top !== 0 || bottom !== 0 || left !== 0 || right !== 0) {
    throw new Error(
      'avgPool gradient with windows over padding is inconsistent in tfjs (forward divides by valid cells, ' +
        "gradient by k*k); use pad 'valid' (cusp wasm-kernels)",
    )
  }
  const { batchSize: nb, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info
  const mult = 1 / (fh * fw)
  if (fh === sh && fw === sw) return tiledAvgPoolGrad(backend, dy, info)
  const out = backend.makeOutput([...input.shape], 'float32')
  const g = backend.typedArrayFromHeap(dy) as Float32Array // [n, oh, ow, c]
  const dx = backend.typedArrayFromHeap(out) as Float32Array // [n, h, w, c]
  dx.fill(0)
  const scaled = new Float32Array(c)
  for (let b = 0; b < nb; b++) {
    for (let yr = 0; yr < oh; yr++) {
      for (let yc = 0; yc < ow; yc++) {
        const gBase = ((b * oh + yr) * ow + yc) * c
        for (let d = 0; d < c; d++) scaled[d] = g[gBase + d]! * mult
        for (let r = yr * sh; r < yr * sh + fh; r++) {
          for (let col = yc * sw; col < yc * sw + fw; col++) {
            const base = ((b * h + r) * w + col) * c
            for (let d = 0; d < c; d++) dx[base + d] = dx[base + d]! + scaled[d]!
          }
        }
      }
    }
  }
  return out
}

/**
 * Non-overlapping windows (stride = window, the models' pools): dx is dy / (kh*kw) repeated over
 * each window, one broadcasting XNNPACK multiply [n,oh,1,ow,1,c] x [1,1,kh,1,kw,1], then zeros
 * for the rows/columns no window covers.
 */
function tiledAvgPoolGrad(backend: BackendWasm, dy: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo {
  const { batchSize: nb, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, filterHeight: fh, filterWidth: fw } = info
  const weights = backend.makeOutput([1, 1, fh, 1, fw, 1], 'float32')
  ;(backend.typedArrayFromHeap(weights) as Float32Array).fill(1 / (fh * fw))
  const dy6 = reshape(backend, dy, [nb, oh, 1, ow, 1, c])
  const spread = callKernel('Multiply', backend, { a: dy6, b: weights }) // [n, oh, fh, ow, fw, c]
  const dx = reshape(backend, spread, [nb, oh * fh, ow * fw, c])
  release(backend, weights, dy6, spread)
  if (oh * fh === h && ow * fw === w) return dx
  const padded = callKernel(
    'PadV2',
    backend,
    { x: dx },
    {
      paddings: [
        [0, 0],
        [0, h - oh * fh],
        [0, w - ow * fw],
        [0, 0],
      ],
      constantValue: 0,
    },
  )
  release(backend, dx)
  return padded // [n, h, w, c]
}

/** Replaces wasm's 'MaxPoolGrad' (inputs dy, input, output; tfjs-core attrs). */
export const maxPoolGradConfig: KernelConfig = {
  kernelName: 'MaxPoolGrad',
  backendName: WASM,
  kernelFunc: maxPoolGrad as unknown as KernelFunc,
}

/** Replaces wasm's 'AvgPoolGrad' ('valid' windows only; see module comment). */
export const avgPoolGradConfig: KernelConfig = {
  kernelName: 'AvgPoolGrad',
  backendName: WASM,
  kernelFunc: avgPoolGrad as unknown as KernelFunc,
}
