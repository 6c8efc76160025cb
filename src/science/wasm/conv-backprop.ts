/**
 * Conv2D and the two convolution gradients for the wasm backend. Conv2D (dilation 1), the stride-1
 * input gradient and the filter gradient run cusp's own SIMD kernels (conv-simd.ts; measured on
 * the CNN and AlexNet-CIFAR shapes: 1.3-1.4x XNNPACK's Conv2D, 1.1-2.6x the compositions below);
 * what those decline (dilation, NCHW, non-float32) is composed from the wasm backend's XNNPACK
 * Conv2D. tfjs-backend-wasm 4.22 ships no Conv2DBackpropFilter at all (a CNN cannot be trained on
 * it) and a naive Conv2DBackpropInput (1.2-1.6 GFLOP/s, docs/architecture.md "Engine facts"). Both
 * are convolutions in disguise:
 * - filter gradient dW[kh,kw,ci,co] = sum_{n,oh,ow} x[n, oh*s+kh-pt, ow*s+kw-pl, ci] dy[n,oh,ow,co]
 *   is a stride-1 convolution of x viewed as [ci, h, w, n] (batch <-> channels swapped) with dy
 *   viewed as a filter [oh, ow, n, co] at dilation s, read out as [ci, kh, kw, co]; with one input
 *   channel that convolution has one output channel, XNNPACK's worst case, so first layers go
 *   through a direct SIMD kernel instead (filter-grad-simd.ts);
 * - input gradient (stride 1) is a 'full' convolution of dy with the filter flipped in space and
 *   its channel axes swapped. Strided input gradients keep the shipped kernel (they would need
 *   zero insertion; no model here needs them on the hot path: the first layer's dx is not used).
 */
import { backend_util } from '@tensorflow/tfjs'
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { callKernel, callOriginal, release, transpose, WASM } from './kernel-calls.ts'
import { simdFilterGrad } from './filter-grad-simd.ts'
import { simdConv2D, simdConvFilterGrad, simdConvInputGrad } from './conv-simd.ts'

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
  // cusp's own SIMD kernel (conv-simd.ts) for every channel count: measured 1.1-2.6x the
  // composition below on the CNN and AlexNet-CIFAR shapes, and 1.5x the older direct kernel
  // (filter-grad-simd.ts) on one input channel, which remains the fallback there.
  const own = simdConvFilterGrad(backend, x, dy, info)
  if (own !== undefined) return own
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
  const own = simdConvInputGrad(backend, dy, filter, info)
  if (own !== undefined) return own
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

interface Conv2DAttrs {
  strides: [number, number] | number
  pad: Pad
  dataFormat: 'NHWC' | 'NCHW'
  dilations: [number, number] | number
  dimRoundingMode?: Rounding
}

/** y = conv2d(x, filter): cusp's SIMD kernel for dilation 1, NHWC; otherwise the shipped XNNPACK one. */
function conv2D(args: { inputs: { x: TensorInfo; filter: TensorInfo }; backend: BackendWasm; attrs: Conv2DAttrs }): TensorInfo {
  const {
    inputs: { x, filter },
    backend,
    attrs,
  } = args
  const d = attrs.dilations
  if (attrs.dataFormat === 'NHWC' && (d === 1 || (Array.isArray(d) && d[0] === 1 && d[1] === 1) || d === undefined)) {
    const info = convInfoOf(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], attrs)
    const own = simdConv2D(backend, x, filter, info)
    if (own !== undefined) return own
  }
  return callOriginal('Conv2D', backend, { x, filter }, attrs as never)
}

/** Replaces wasm's 'Conv2D' (dilation 1 through cusp's SIMD kernel; dilated ones unchanged). */
export const conv2DConfig: KernelConfig = {
  kernelName: 'Conv2D',
  backendName: WASM,
  kernelFunc: conv2D as unknown as KernelFunc,
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
