/**
 * A convolution layer's forward pass as one kernel for the first-order paths (loss and gradient)
 * on wasm: 'CuspConvBiasAct' is y = conv2d(x, filter) + bias, then relu when attrs.relu, with the
 * bias add and the relu done in cusp's SIMD convolution's store (conv-simd.ts), not as two more
 * passes over a large feature map; its gradient masks dy by y > 0 in one pass ('CuspReluMask')
 * and then runs the very kernels the tape runs for tf.conv2d, tf.add and tf.relu (the filter and
 * input gradients, the bias sum), so the loss and gradient keep their bits. The gradient is
 * first-order only ('CuspReluMask' has none): the HVP's double backprop keeps the plain ops.
 * Where the SIMD kernel declines (dilation, dtype), the kernel composes Conv2D, Add and Relu.
 */
import { backend_util, engine, registerGradient } from '@tensorflow/tfjs'
import type { GradConfig, KernelConfig, KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { callKernel, release, sizeOf, WASM } from './kernel-calls.ts'
import { simdConv2D, simdConvPool } from './conv-simd.ts'
import { convKernels } from './simd/conv-kernels.ts'
import { pointerOf } from './simd/kernels.ts'

/** Kernel names (cusp's own; no tfjs kernel has them). */
export const CONV_BIAS_ACT = 'CuspConvBiasAct'
export const RELU_MASK = 'CuspReluMask'
export const CONV_BIAS_ACT_POOL = 'CuspConvBiasActPool'
export const POOL_RELU_MASK = 'CuspAvgPoolReluMask'

/** Attributes of 'CuspConvBiasAct': stride and tfjs padding of the convolution, and the activation. */
export interface ConvBiasActAttrs {
  strides: [number, number]
  pad: 'same' | 'valid'
  relu: boolean
}

function convInfo(x: TensorInfo, filter: TensorInfo, attrs: ConvBiasActAttrs): backend_util.Conv2DInfo {
  return backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    undefined,
    false,
    'channelsLast',
  )
}

function convBiasAct(args: {
  inputs: { x: TensorInfo; filter: TensorInfo; bias: TensorInfo }
  backend: BackendWasm
  attrs: ConvBiasActAttrs
}): TensorInfo {
  const {
    inputs: { x, filter, bias },
    backend,
    attrs,
  } = args
  const own = simdConv2D(backend, x, filter, convInfo(x, filter, attrs), bias, attrs.relu)
  if (own !== undefined) return own
  const conv = callKernel('Conv2D', backend, { x, filter }, {
    strides: attrs.strides,
    pad: attrs.pad,
    dataFormat: 'NHWC',
    dilations: [1, 1],
    dimRoundingMode: undefined,
  } as never)
  const z = callKernel('Add', backend, { a: conv, b: bias })
  release(backend, conv)
  if (!attrs.relu) return z
  const y = callKernel('Relu', backend, { x: z })
  release(backend, z)
  return y
}

/** Attributes of 'CuspConvBiasActPool': those of 'CuspConvBiasAct', and whether y is kept. */
export interface ConvBiasActPoolAttrs extends ConvBiasActAttrs {
  keep: boolean
}

/**
 * A conv layer and the 2x2 average pool after it (window = stride = 2, 'valid') as one kernel:
 * outputs [y, pooled] with `keep` (y for the backward pass), else [pooled]; y as 'CuspConvBiasAct'
 * computes it and pooled with AvgPool's bits, pooled in the convolution's store where the output
 * sizes are even (conv-simd.ts simdConvPool), else composed from the two kernels.
 */
function convBiasActPool(args: {
  inputs: { x: TensorInfo; filter: TensorInfo; bias: TensorInfo }
  backend: BackendWasm
  attrs: ConvBiasActPoolAttrs
}): TensorInfo[] {
  const { inputs, backend, attrs } = args
  const { x, filter, bias } = inputs
  const own = simdConvPool(backend, x, filter, convInfo(x, filter, attrs), bias, attrs.relu, attrs.keep ? 'both' : 'only')
  if (own !== undefined) return own
  const y = convBiasAct({ inputs, backend, attrs })
  const pooled = callKernel('AvgPool', backend, { x: y }, { filterSize: 2, strides: 2, pad: 'valid', dimRoundingMode: undefined } as never)
  if (attrs.keep) return [y, pooled]
  release(backend, y)
  return [pooled]
}

/** dz = dy * (y > 0 ? 1 : 0), float32, same shapes. */
function reluMask(args: { inputs: { dy: TensorInfo; y: TensorInfo }; backend: BackendWasm }): TensorInfo {
  const {
    inputs: { dy, y },
    backend,
  } = args
  if (dy.dtype !== 'float32' || y.dtype !== 'float32' || dy.shape.join() !== y.shape.join())
    throw new Error(`${RELU_MASK}: dy and y must be float32 of one shape, got [${dy.shape.join(',')}] and [${y.shape.join(',')}]`)
  const out = backend.makeOutput([...dy.shape], 'float32')
  convKernels(backend).reluMask(
    pointerOf(backend, dy.dataId),
    pointerOf(backend, y.dataId),
    pointerOf(backend, out.dataId),
    sizeOf(dy.shape),
  )
  return out
}

/**
 * dz = the average pool's gradient of dy (window = stride = size, 'valid') masked by y > 0: the
 * gradient at a conv layer's pre-activation from the gradient dy at the pool after its relu, in one
 * pass (simd/conv.as avgPoolReluMask); the bits of AvgPoolGrad followed by 'CuspReluMask'.
 */
function avgPoolReluMask(args: { inputs: { dy: TensorInfo; y: TensorInfo }; backend: BackendWasm; attrs: { size: number } }): TensorInfo {
  const {
    inputs: { dy, y },
    backend,
    attrs: { size },
  } = args
  const [n, h, w, c] = y.shape as [number, number, number, number]
  const oh = Math.floor(h / size)
  const ow = Math.floor(w / size)
  if (dy.dtype !== 'float32' || y.dtype !== 'float32' || !Number.isInteger(size) || size < 1 || dy.shape.join() !== [n, oh, ow, c].join())
    throw new Error(`${POOL_RELU_MASK}: dy [${dy.shape.join(',')}] is not the ${size}x${size} pool of float32 y [${y.shape.join(',')}]`)
  const out = backend.makeOutput([...y.shape], 'float32')
  convKernels(backend).avgPoolReluMask(
    pointerOf(backend, dy.dataId),
    pointerOf(backend, y.dataId),
    pointerOf(backend, out.dataId),
    n,
    h,
    w,
    c,
    size,
    oh,
    ow,
    Math.fround(1 / (size * size)),
  )
  return out
}

export const convBiasActPoolConfig: KernelConfig = {
  kernelName: CONV_BIAS_ACT_POOL,
  backendName: WASM,
  kernelFunc: convBiasActPool as unknown as KernelFunc,
}

export const convBiasActConfig: KernelConfig = {
  kernelName: CONV_BIAS_ACT,
  backendName: WASM,
  kernelFunc: convBiasAct as unknown as KernelFunc,
}

export const reluMaskConfig: KernelConfig = {
  kernelName: RELU_MASK,
  backendName: WASM,
  kernelFunc: reluMask as unknown as KernelFunc,
}

export const avgPoolReluMaskConfig: KernelConfig = {
  kernelName: POOL_RELU_MASK,
  backendName: WASM,
  kernelFunc: avgPoolReluMask as unknown as KernelFunc,
}

/**
 * The gradient of 'CuspConvBiasAct': dz = dy masked by y > 0 (relu) or dy, then the tape's own
 * kernels for conv2d's and add's gradients: Conv2DBackpropInput, Conv2DBackpropFilter, and a Sum
 * over [n, oh, ow] for the bias. Each is computed only when asked for (the first layer's dx is not).
 */
const convBiasActGrad: GradConfig = {
  kernelName: CONV_BIAS_ACT,
  inputsToSave: ['x', 'filter'],
  outputsToSave: [true],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, filter, y] = saved as [Tensor, Tensor, Tensor]
    const a = attrs as unknown as ConvBiasActAttrs
    const e = engine()
    // Made here, not in a thunk: each thunk runs in a tidy of its own that would dispose it.
    const dz = a.relu ? (e.runKernel(RELU_MASK, { dy: dy as Tensor, y }) as Tensor) : (dy as Tensor)
    const conv = { strides: a.strides, pad: a.pad, dataFormat: 'NHWC', dimRoundingMode: undefined }
    return {
      x: () => e.runKernel('Conv2DBackpropInput', { dy: dz, filter }, { ...conv, inputShape: x.shape } as never) as Tensor,
      filter: () => e.runKernel('Conv2DBackpropFilter', { x, dy: dz }, { ...conv, filterShape: filter.shape } as never) as Tensor,
      bias: () => e.runKernel('Sum', { x: dz }, { axis: [0, 1, 2], keepDims: false }) as Tensor,
    }
  },
}

let gradRegistered = false

/** Registers the gradient of 'CuspConvBiasAct' (by kernel name: once per process or worker). */
export function registerConvBiasActGrad(): void {
  if (gradRegistered) return
  registerGradient(convBiasActGrad)
  gradRegistered = true
}
