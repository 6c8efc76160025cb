/**
 * Training accuracy at θ, for the train stage's telemetry (paper §4.1 logs training progress; the
 * Objective gives loss, gradient and HVPs but not predictions). Forward passes only, over the same
 * fixed chunks as hvp.ts, on whatever engine this thread initialised (engine.ts `initEngine`).
 * A prediction is the argmax of the logits (first index on ties); accuracy = correct / n. Logits are
 * read back with `data()` (webgpu in Node has no synchronous read back).
 */
import * as tf from '@tensorflow/tfjs'
import { chunks, type Dataset } from './hvp.ts'
import type { Model } from './models.ts'

/** Fraction of `data` whose argmax logit is its label, at θ [P]. */
export async function datasetAccuracy(model: Model, theta: Float32Array, data: Dataset, chunkSize = 250): Promise<number> {
  if (data.n === 0) return 0
  let correct = 0
  const th = tf.tensor1d(theta)
  try {
    for (const c of chunks(model, data, chunkSize)) {
      const [h, w, ch] = data.shape
      const logits = tf.tidy(() => model.forward(th, tf.tensor4d(c.x, [c.n, h, w, ch]))) // [n, classes]
      let values: Float32Array
      try {
        values = (await logits.data()) as Float32Array
      } finally {
        logits.dispose()
      }
      const k = model.spec.classes
      for (let i = 0; i < c.n; i++) {
        let best = 0
        for (let j = 1; j < k; j++) if (values[i * k + j]! > values[i * k + best]!) best = j
        if (best === c.y[i]) correct++
      }
    }
  } finally {
    th.dispose()
  }
  return correct / data.n
}
