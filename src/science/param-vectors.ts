/**
 * Flat parameter vectors (θ, v: every parameter's values, in `model.params` order) as the science
 * code handles them: cut into one tensor per parameter, and used as the keys of the θ caches of the
 * R-operator paths (dense-hvp.ts, conv-hvp.ts), which compare contents, never array identities.
 */
import * as tf from '@tensorflow/tfjs'
import type { Model } from './models.ts'

/** One tensor per parameter, shaped, from a flat vector (uploads; no split kernel). Call inside the caller's tidy. */
export function paramTensors(model: Model, a: Float32Array): tf.Tensor[] {
  return model.params.map((p) => tf.tensor(a.subarray(p.offset, p.offset + p.shape.reduce((x, y) => x * y, 1)), p.shape))
}

/** Whether two arrays hold the same bytes (memcmp through Buffer: ~10x a JS loop on θ-sized arrays). */
export const sameBits = (a: Float32Array | Int32Array, b: Float32Array | Int32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))

/**
 * `a` copied into `into` when that has a's length, else into a new array: a new θ's key reuses the
 * last one's memory (a fresh array of P floats costs page faults, see hvp.ts chunkGradientInto).
 */
export function copyOf(a: Float32Array, into?: Float32Array): Float32Array {
  if (into === undefined || into.length !== a.length) return a.slice()
  into.set(a)
  return into
}

/** What a θ cache is keyed by: the model, the backend its tensors live on, and θ's contents. */
export interface ThetaKey {
  model: Model
  backend: tf.KernelBackend
  theta: Float32Array
}

/** Whether `key` is (model, current backend, θ): a cache so keyed holds work done at this θ. */
export const sameTheta = (key: ThetaKey, model: Model, theta: Float32Array): boolean =>
  key.model === model && key.backend === tf.backend() && sameBits(key.theta, theta)
