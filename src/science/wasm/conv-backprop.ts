/**
 * The two convolution gradients for the wasm backend, composed from its fast XNNPACK Conv2D.
 * tfjs-backend-wasm 4.22 ships no Conv2DBackpropFilter at all (a CNN cannot be trained on it) and
 * a naive Conv2DBackpropInput (1.2-1.6 GFLOP/s, docs/architecture.md "Engine facts"). Both are convolutions
 * in disguise:
 * - filter gradient dW[kh,kw,ci,co] = sum_{n,oh,ow} x[n, oh*s+kh-pt, ow*s+kw-pl, ci] dy[n,oh,ow,co]
 *   is a stride-1 convolution of x viewed as [ci, h, w, n] (batch <-> channels swapped) with dy
 *   viewed as a filter [oh, ow, n, co] at dilation s, read out as [ci, kh, kw, co]; with one input
 *   channel that convolution has one output channel, XNNPACK's worst case, so first layers go
 *   through cusp's own direct SIMD kernel instead (filter-grad-simd.ts);
 * - input gradient (stride 1) is a 'full' convolution of dy with the filter flipped in space and
 *   its channel axes swapped. Strided input gradients keep the shipped kernel (they would need
 *   zero insertion; no model here needs them on the hot path: the first layer's dx is not used).
 */
import { backend_util } from '@tensorflow/tfjs'
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { callKernel, callOriginal, release, transpose, WASM } from './kernel-calls.ts'
import { simdFilterGrad } from './filter-grad-simd.ts'

type Pad = backend_util.ExplicitPadding | 'valid' | 'same' | number
type Rounding = 'floor' | 'round' | 'ceil' | undefined

interface BackpropFilterAttrs {
  strides: [number, number] | number
  pad: Pad
  dataFormat: 'NHWC' | 'NCHW'
  dimRoundingMode?: Rounding
  filterShape: [number, number, number, number]
}

interface BackpropInputAttrs {
  strides: [number, number] | number
  pad: Pad
  dataFormat: 'NHWC' | 'NCHW'
  dimRoundingMode?: Rounding
  inputShape: [number, number, number, number]
}

function convInfoOf(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: { strides: [number, number] | number; pad: Pad; dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: Rounding },
): backend_util.Conv2DInfo {
  if (attrs.dataFormat === 'NCHW') throw new Error("cusp wasm conv gradients support dataFormat 'NHWC' only")
  return backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast')
}

/** dW for x [n,h,w,ci], dy [n,oh,ow,co] -> [kh,kw,ci,co]; any stride and padding, dilation 1. */
function conv2DBackpropFilter(args: {
  inputs: { x: TensorInfo; dy: TensorInfo }
  backend: BackendWasm
  attrs: BackpropFilterAttrs
}): TensorInfo {
  const {
    inputs: { x, dy },
    backend,
    attrs,
  } = args
  const info = convInfoOf(x.shape as [number, number, number, number], attrs.filterShape, attrs)
  // One input channel (a first layer): cusp's direct SIMD kernel, measured 3-6x faster than the
  // composition below, which runs XNNPACK with one output channel. With more input channels the
  // composition (XNNPACK at 10-30 GFLOP/s) beat the direct kernel (5-11) on every model shape.
  if (x.shape[3] === 1) {
    const direct = simdFilterGrad(backend, x, dy, info)
    if (direct !== undefined) return direct
  }
  return composedFilterGrad(backend, x, dy, info)
}

/** dW composed from XNNPACK's Conv2D (module comment); exported for the kernel bench's before/after. */
export function composedFilterGrad(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo {
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow } = info
  const { top: pt, left: pl } = info.padInfo
  const [n, h, w, ci] = x.shape as [number, number, number, number]
  // Rows of x the windows reach: [-pt, (oh-1)*sh + kh - pt). Pad the bottom up to that, or crop
  // rows no window reads (negative padding is not a convolution XNNPACK runs).
  let pb = (oh - 1) * sh + kh - pt - h
  let pr = (ow - 1) * sw + kw - pl - w
  const temps: TensorInfo[] = []
  let xc = x
  if (pb < 0 || pr < 0) {
    const hc = pb < 0 ? h + pb : h
    const wc = pr < 0 ? w + pr : w
    xc = callKernel('Slice', backend, { x }, { begin: [0, 0, 0, 0], size: [n, hc, wc, ci] })
    temps.push(xc)
    pb = Math.max(pb, 0)
    pr = Math.max(pr, 0)
  }
  const xt = transpose(backend, xc, [3, 1, 2, 0]) // [ci, h, w, n]
  const dyt = transpose(backend, dy, [1, 2, 0, 3]) // [oh, ow, n, co]
  temps.push(xt, dyt)
  const out = callKernel('Conv2D', backend, { x: xt, filter: dyt }, {
    strides: [1, 1],
    pad: [
      [0, 0],
      [pt, pb],
      [pl, pr],
      [0, 0],
    ],
    dataFormat: 'NHWC',
    dilations: [sh, sw],
    dimRoundingMode: undefined,
  } as never) // [ci, kh, kw, co]
  temps.push(out)
  const dw = transpose(backend, out, [1, 2, 0, 3]) // [kh, kw, ci, co]
  release(backend, ...temps)
  return dw
}

/** dx for dy [n,oh,ow,co], filter [kh,kw,ci,co] -> inputShape; stride 1 composed, else shipped. */
function conv2DBackpropInput(args: {
  inputs: { dy: TensorInfo; filter: TensorInfo }
  backend: BackendWasm
  attrs: BackpropInputAttrs
}): TensorInfo {
  const {
    inputs: { dy, filter },
    backend,
    attrs,
  } = args
  const info = convInfoOf(attrs.inputShape, filter.shape as [number, number, number, number], attrs)
  const { top, bottom, left, right } = info.padInfo
  const { filterHeight: kh, filterWidth: kw } = info
  const pads = [kh - 1 - top, kh - 1 - bottom, kw - 1 - left, kw - 1 - right]
  if (info.strideHeight !== 1 || info.strideWidth !== 1 || pads.some((p) => p < 0)) {
    return callOriginal('Conv2DBackpropInput', backend, { dy, filter }, attrs as never)
  }
  const [pt, pb, pl, pr] = pads as [number, number, number, number]
  const flipped = callKernel('Reverse', backend, { x: filter }, { dims: [0, 1] }) // [kh, kw, ci, co]
  const wt = transpose(backend, flipped, [0, 1, 3, 2]) // [kh, kw, co, ci]
  const dx = callKernel('Conv2D', backend, { x: dy, filter: wt }, {
    strides: [1, 1],
    pad: [
      [0, 0],
      [pt, pb],
      [pl, pr],
      [0, 0],
    ],
    dataFormat: 'NHWC',
    dilations: [1, 1],
    dimRoundingMode: undefined,
  } as never) // [n, h, w, ci]
  release(backend, flipped, wt)
  return dx
}

/** Registered as 'Conv2DBackpropFilter' on wasm (the backend has none). */
export const conv2DBackpropFilterConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropFilter',
  backendName: WASM,
  kernelFunc: conv2DBackpropFilter as unknown as KernelFunc,
}

/** Replaces wasm's 'Conv2DBackpropInput' (stride 1 through Conv2D; other strides unchanged). */
export const conv2DBackpropInputConfig: KernelConfig = {
  kernelName: 'Conv2DBackpropInput',
  backendName: WASM,
  kernelFunc: conv2DBackpropInput as unknown as KernelFunc,
}
