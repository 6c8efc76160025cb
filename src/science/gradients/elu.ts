/**
 * Elu gradient in terms of the saved INPUT: d elu(x) = (x > 0 ? 1 : exp(x)) dx. tfjs's registration
 * calls the EluGrad kernel on the saved output, which has no gradient and loses the path through the
 * output (tfjs issue #3252; see tanh.ts).
 */
import * as tf from '@tensorflow/tfjs'

/** Re-registers Elu's gradient from its input. */
export function registerEluGrad(): void {
  tf.registerGradient({
    kernelName: tf.Elu,
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [x] = saved as [tf.Tensor]
      const g = dy as tf.Tensor
      return { x: () => tf.where(tf.greater(x, 0), g, tf.mul(g, tf.exp(x))) }
    },
  })
}
