/**
 * Softmax cross-entropy (paper §3.2, the criterion l(x, y, θ)), written so that tfjs can differentiate
 * it twice: l_i = log sum_j exp(z_ij - m_i) - (z_iy - m_i), where m_i, the row max, is read back as a
 * constant (it cancels exactly; it only keeps exp from overflowing). tf.logSoftmax and tf.max are not
 * twice differentiable in tfjs (docs/architecture.md "Engine facts"); Exp's gradient is re-registered in terms of
 * its input (gradients/exp.ts).
 */
import * as tf from '@tensorflow/tfjs';

export type Reduction = 'mean' | 'sum';

/** Sum over the batch of the cross-entropy of logits [n,k] against int32 labels [n] in [0, k). */
export function crossEntropySum(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const [n, k] = logits.shape;
    if (labels.shape[0] !== n) throw new Error(`crossEntropySum: ${labels.shape[0]} labels for ${n} rows of logits`);
    const ys = labels.dataSync();
    for (let i = 0; i < n; i++) {
      const y = ys[i]!;
      if (!Number.isInteger(y) || y < 0 || y >= k) throw new Error(`crossEntropySum: label ${y} at row ${i} is not a class in [0, ${k})`);
    }
    const z = logits.dataSync(); // only to find the row maxima: no gradient flows through m
    const m = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let best = -Infinity;
      for (let j = 0; j < k; j++) best = Math.max(best, z[i * k + j]!);
      m[i] = best;
    }
    const shifted = tf.sub(logits, tf.tensor2d(m, [n, 1])); // [n,k]
    const lse = tf.log(tf.sum(tf.exp(shifted), 1)); // [n]
    const onehot = tf.cast(tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, k), 'float32'); // [n,k]
    const picked = tf.sum(tf.mul(shifted, onehot), 1); // [n]
    return tf.sum(tf.sub(lse, picked)) as tf.Scalar;
  });
}
