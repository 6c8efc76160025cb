/**
 * Exp gradient in terms of the saved INPUT: d exp(x) = exp(x) dx. Used by the log-sum-exp in the
 * cross-entropy (paper §3.2). tfjs's registration reuses the saved output, which a second backward
 * pass cannot differentiate through (tfjs issue #3252; see tanh.ts).
 */
import * as tf from '@tensorflow/tfjs'

/** Re-registers Exp's gradient from its input. */
export function registerExpGrad(): void {
  tf.registerGradient({
    kernelName: tf.Exp,
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [x] = saved as [tf.Tensor]
      return { x: () => tf.mul(dy as tf.Tensor, tf.exp(x)) }
    },
  })
}
