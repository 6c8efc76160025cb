/**
 * Softmax cross-entropy (paper §3.2, the criterion l(x, y, θ)), written so that tfjs can differentiate
 * it twice: l_i = log sum_j exp(z_ij - m_i) - (z_iy - m_i), where m_i, the row max, is a constant to
 * differentiation (it cancels exactly; it only keeps exp from overflowing). It is computed on the
 * device and cut from the gradient (`rowMaxConstant`), never read back to the host: a read back
 * would stall the GPU backends (and `dataSync` throws on webgpu in Node). tf.logSoftmax and tf.max
 * are not twice differentiable in tfjs; Exp's gradient is re-registered in terms of its input
 * (gradients/exp.ts).
 */
import * as tf from '@tensorflow/tfjs'

export type Reduction = 'mean' | 'sum'

/** m_i = max_j z_ij as [n,1], with a zero gradient (a stop-gradient; its gradient is constant too). */
const rowMaxConstant = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const z = args[0] as tf.Tensor
  return { value: tf.max(z, 1, true), gradFunc: () => tf.zerosLike(z) }
})

/**
 * Sum over the batch of the cross-entropy of logits [n,k] against labels [n] in [0, k): an int32
 * tensor created from host values (checked without touching the device), or the host array itself.
 */
export function crossEntropySum(logits: tf.Tensor2D, labels: tf.Tensor1D | Int32Array): tf.Scalar {
  return tf.tidy(() => {
    const [n, k] = logits.shape
    const count = labels instanceof Int32Array ? labels.length : labels.shape[0]
    if (count !== n) throw new Error(`crossEntropySum: ${count} labels for ${n} rows of logits`)
    // A tensor made from host values still holds them on every backend until first used.
    const ys = labels instanceof Int32Array ? labels : labels.dataSync()
    for (let i = 0; i < n; i++) {
      const y = ys[i]!
      if (!Number.isInteger(y) || y < 0 || y >= k) throw new Error(`crossEntropySum: label ${y} at row ${i} is not a class in [0, ${k})`)
    }
    const yT = labels instanceof Int32Array ? tf.tensor1d(labels, 'int32') : tf.cast(labels, 'int32')
    const shifted = tf.sub(logits, rowMaxConstant(logits) as tf.Tensor2D) // [n,k]
    const lse = tf.log(tf.sum(tf.exp(shifted), 1)) // [n]
    const onehot = tf.cast(tf.oneHot(yT as tf.Tensor1D, k), 'float32') // [n,k]
    const picked = tf.sum(tf.mul(shifted, onehot), 1) // [n]
    return tf.sum(tf.sub(lse, picked)) as tf.Scalar
  })
}
