/**
 * Gradient of the `AvgPoolGrad` kernel (unregistered in tfjs; docs/architecture.md "Engine facts"), needed for
 * double backprop through the reference CNN's average pools. AvgPoolGrad(dy, x) = P^T dy, where P is
 * the (linear) average-pooling map; it is linear in dy and depends on x only through its shape. So
 * for a cotangent C with x's shape: d/d(dy) = P C = avgPool(C) with the same window, strides and
 * padding, and d/dx = 0. Only 'valid' pools are used by cusp (tfjs 'same' avg pools divide forward
 * and backward by different counts), but the adjoint identity holds for whatever tfjs computes in
 * the valid case.
 */
import * as tf from '@tensorflow/tfjs'

/** Registers d(AvgPoolGrad) for every backend. */
export function registerAvgPoolGradGrad(): void {
  tf.registerGradient({
    kernelName: tf.AvgPoolGrad,
    inputsToSave: ['input'],
    gradFunc: (cot: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const [input] = saved as [tf.Tensor4D]
      const c = cot as tf.Tensor4D // [n,h,w,c]: the pool's input shape
      const { filterSize, strides, pad } = attrs as unknown as tf.AvgPoolGradAttrs
      if (pad !== 'valid' && pad !== 0) throw new Error(`AvgPoolGrad gradient: only 'valid' pools are supported, got ${String(pad)}`)
      return {
        dy: () => tf.avgPool(c, filterSize, strides, 'valid'),
        input: () => tf.zerosLike(input),
      }
    },
  })
}
