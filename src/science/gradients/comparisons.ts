/**
 * Zero gradients for the comparison kernels tfjs leaves without one (Greater, Less, LessEqual, Equal,
 * NotEqual; tfjs already has GreaterEqual's). A comparison is piecewise constant in its inputs, so its
 * derivative is 0 almost everywhere. Without these, any gradient written with tf.where(x > 0, ...)
 * (Elu's, Pow's) throws "gradient function not found for Greater" when differentiated again, because
 * the comparison sits on the tape between x and the Select.
 */
import * as tf from '@tensorflow/tfjs'

const COMPARISONS = [tf.Greater, tf.Less, tf.LessEqual, tf.Equal, tf.NotEqual] as const

/** Registers d(comparison) = 0 for both inputs. */
export function registerComparisonGrads(): void {
  for (const kernelName of COMPARISONS) {
    tf.registerGradient({
      kernelName,
      inputsToSave: ['a', 'b'],
      gradFunc: (_dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [a, b] = saved as [tf.Tensor, tf.Tensor]
        return { a: () => tf.zerosLike(a).toFloat(), b: () => tf.zerosLike(b).toFloat() }
      },
    })
  }
}
