/**
 * Sigmoid gradient in terms of the saved INPUT: d s(x) = s(x) (1 - s(x)) dx, recomputing s(x) so a
 * second backward pass sees the dependence on x (tfjs issue #3252; see tanh.ts). Not used by the
 * paper's models; registered so any smooth activation a user picks stays twice differentiable.
 */
import * as tf from '@tensorflow/tfjs'

/** Re-registers Sigmoid's gradient from its input. */
export function registerSigmoidGrad(): void {
  tf.registerGradient({
    kernelName: tf.Sigmoid,
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [x] = saved as [tf.Tensor]
      const s = tf.sigmoid(x)
      return { x: () => tf.mul(dy as tf.Tensor, tf.mul(s, tf.sub(1, s))) }
    },
  })
}
