/**
 * Softmax gradient in terms of the saved INPUT (logits): with p = softmax(x) along `dim`,
 * dx = p * (dy - sum(dy * p, dim)). tfjs's registration reuses the saved output p, which a second
 * backward pass cannot differentiate through (tfjs issue #3252; see tanh.ts).
 */
import * as tf from '@tensorflow/tfjs'

/** Re-registers Softmax's gradient from its input. */
export function registerSoftmaxGrad(): void {
  tf.registerGradient({
    kernelName: tf.Softmax,
    inputsToSave: ['logits'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const [logits] = saved as [tf.Tensor]
      const { dim } = attrs as unknown as tf.SoftmaxAttrs
      const p = tf.softmax(logits, dim)
      const g = dy as tf.Tensor
      return { logits: () => tf.mul(p, tf.sub(g, tf.sum(tf.mul(g, p), [dim], true))) }
    },
  })
}
