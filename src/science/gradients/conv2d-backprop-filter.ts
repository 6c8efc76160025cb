/**
 * Gradient of the `Conv2DBackpropFilter` kernel, which tfjs leaves unregistered (docs/architecture.md "Engine
 * facts"): without it, double backprop through any convolution throws, so no CNN Hessian-vector
 * product (paper §3.3) can be formed. The filter gradient of y = conv(x, W) is the bilinear map
 *   dW[i,j,ci,co] = sum_{n,p,q} xpad[n, p*s+i, q*s+j, ci] * dy[n,p,q,co].
 * Given a cotangent C for dW (shape of W), its partial derivatives are, by bilinearity:
 *   w.r.t. x:  the input gradient of conv(., C) evaluated at dy = Conv2DBackpropInput(dy, C)
 *   w.r.t. dy: the forward convolution of x with C            = Conv2D(x, C)
 * Both kernels have tfjs gradients of their own, so the result is again differentiable.
 */
import * as tf from '@tensorflow/tfjs'

type Pad = tf.Conv2DBackpropFilterAttrs['pad']

/** Registers d(Conv2DBackpropFilter) for every backend (kernel-name based, so tfjs-node too). */
export function registerConv2DBackpropFilterGrad(): void {
  tf.registerGradient({
    kernelName: tf.Conv2DBackpropFilter,
    inputsToSave: ['x', 'dy'],
    gradFunc: (cot: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const [x, dy] = saved as [tf.Tensor4D, tf.Tensor4D] // x [n,h,w,ci], dy [n,oh,ow,co]
      const c = cot as tf.Tensor4D // [kh,kw,ci,co]: same shape as the filter
      const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs
      if (a.dataFormat !== 'NHWC') throw new Error('Conv2DBackpropFilter gradient: only NHWC is supported')
      return {
        // Conv2DBackpropInput(dy, C) with output shape x.shape: tfjs calls it conv2dTranspose.
        x: () => tf.conv2dTranspose(dy, c, x.shape, a.strides, a.pad as Pad, a.dimRoundingMode),
        dy: () => tf.conv2d(x, c, a.strides, a.pad as Pad, 'NHWC', 1, a.dimRoundingMode),
      }
    },
  })
}
