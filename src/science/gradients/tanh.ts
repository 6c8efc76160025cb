/**
 * Tanh gradient in terms of the saved INPUT: d tanh(x) = (1 - tanh(x)^2) dx. tfjs's own registration
 * reuses the saved output y, and the clone it saves is recorded on the tape before the Tanh node, so
 * the second backward pass drops the path through y (tfjs issue #3252; docs/architecture.md "Engine facts": the
 * MLP HVP was symmetric but off by ~100%). Recomputing tanh(x) inside the gradient keeps the path.
 */
import * as tf from '@tensorflow/tfjs'

/** Re-registers Tanh's gradient from its input. */
export function registerTanhGrad(): void {
  tf.registerGradient({
    kernelName: tf.Tanh,
    inputsToSave: ['x'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [x] = saved as [tf.Tensor]
      return { x: () => tf.mul(dy as tf.Tensor, tf.sub(1, tf.square(tf.tanh(x)))) }
    },
  })
}
