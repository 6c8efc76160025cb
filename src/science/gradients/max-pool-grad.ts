/**
 * Gradient of the `MaxPoolGrad` kernel (unregistered in tfjs; docs/architecture.md "Engine facts"), needed for
 * double backprop through AlexNet's and VGG's max pools. MaxPoolGrad(dy, x, y) = J^T dy routes each
 * window's dy to that window's arg-max cell; J, the Jacobian of maxPool at x, is piecewise constant in
 * x. Hence for a cotangent C (shape of x): d/d(dy) = J C (each window reads C at its arg-max cell)
 * and d/dx = d/dy = 0 almost everywhere. J C is formed from the kernel's own routing, so ties are
 * broken exactly as in the first backward pass: M = MaxPoolGrad(1, x, y) is the one-hot arg-max mask,
 * and for non-overlapping windows (stride = window, 'valid') J C = k_h k_w * avgPool(M * C).
 * Overlapping or padded windows are rejected rather than answered wrongly.
 */
import * as tf from '@tensorflow/tfjs'

/** Registers d(MaxPoolGrad) for every backend. */
export function registerMaxPoolGradGrad(): void {
  tf.registerGradient({
    kernelName: tf.MaxPoolGrad,
    inputsToSave: ['input', 'output'],
    gradFunc: (cot: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const [input, output] = saved as [tf.Tensor4D, tf.Tensor4D] // [n,h,w,c], [n,oh,ow,c]
      const c = cot as tf.Tensor4D // [n,h,w,c]
      const { filterSize, strides, pad } = attrs as unknown as tf.MaxPoolGradAttrs
      const [kh, kw] = pair(filterSize)
      const [sh, sw] = pair(strides)
      if (kh !== sh || kw !== sw || (pad !== 'valid' && pad !== 0)) {
        throw new Error('MaxPoolGrad gradient: only non-overlapping valid pools (stride = window) are supported')
      }
      return {
        dy: () => {
          const ones = tf.onesLike(output)
          const mask = tf.engine().runKernel(tf.MaxPoolGrad, { dy: ones, input, output }, {
            filterSize,
            strides,
            pad: 'valid',
          } as unknown as tf.NamedAttrMap) as tf.Tensor4D // [n,h,w,c], one-hot per window
          return tf.mul(tf.avgPool(tf.mul(mask, c) as tf.Tensor4D, filterSize, strides, 'valid'), kh * kw)
        },
        input: () => tf.zerosLike(input),
        output: () => tf.zerosLike(output),
      }
    },
  })
}

function pair(v: number | [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : v
}
