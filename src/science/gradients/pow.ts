/**
 * Pow gradient in terms of the saved INPUTS: for y = a^b, da = b a^(b-1) dy and db = a^b log(a) dy
 * (0 where a <= 0), each summed over broadcast axes. tfjs's registration reuses the saved output y in
 * db, which a second backward pass cannot differentiate through (tfjs issue #3252; see tanh.ts), so
 * a^b is recomputed here.
 */
import * as tf from '@tensorflow/tfjs'

/** Re-registers Pow's gradient from its inputs. */
export function registerPowGrad(): void {
  tf.registerGradient({
    kernelName: tf.Pow,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor]
      const g = dy as tf.Tensor
      const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape)
      const reduceTo = (t: tf.Tensor, shape: number[]): tf.Tensor => {
        const axes = tf.backend_util.getReductionAxes(shape, outShape)
        return tf.reshape(axes.length > 0 ? tf.sum(t, axes) : t, shape)
      }
      return {
        a: () => {
          const bf = tf.cast(b, 'float32')
          return reduceTo(tf.mul(g, tf.mul(bf, tf.pow(a, tf.sub(bf, 1)))), a.shape)
        },
        b: () => {
          const logA = tf.where(tf.greater(a, 0), tf.log(a), tf.zerosLike(a))
          return reduceTo(tf.mul(g, tf.mul(tf.pow(a, b), logA)), b.shape)
        },
      }
    },
  })
}
