/**
 * Synthetic, class-structured images from a seed, for tests and quick runs that need no files:
 * class k has a prototype image whose pixels are standard normals from the stream
 * `createRng(seed, "synthetic/prototype/<k>")`, and example i (of class i mod n_classes, so the
 * classes are balanced and interleaved) is its class's prototype plus `noise` times standard
 * normals from the stream "synthetic/noise". The classes are separable when `noise` is small
 * relative to the prototypes' distance (about sqrt(2 * pixels)), so a network can learn them.
 */
import { createRng } from '../science/rng.ts'
import type { ImageSet } from './image-set.ts'

/** Shape and seed of a synthetic image set. */
export interface SyntheticSpec {
  classes: number
  perClass: number
  height: number
  width: number
  channels: number
  /** Standard deviation of the per-example noise added to the prototype. */
  noise: number
  seed: number
}

/** Bounds of a synthetic set (the params schema states the same): sides, channels, and total floats (1 GiB). */
export const SYNTHETIC_LIMITS = { side: 4096, channels: 4, classes: 1000, perClass: 100_000, floats: 2 ** 28 } as const

/** Builds the synthetic image set of `spec` (float32 NHWC, classes named `class-<k>`). */
export function syntheticImageSet(spec: SyntheticSpec): ImageSet {
  const { classes, perClass, height, width, channels, noise, seed } = spec
  for (const [k, v] of Object.entries({ classes, perClass, height, width, channels })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`synthetic: ${k} = ${v} must be a positive integer`)
  }
  if (!(noise >= 0) || !Number.isFinite(noise)) throw new Error(`synthetic: noise = ${noise} must be a finite number >= 0`)
  const L = SYNTHETIC_LIMITS
  if (height > L.side || width > L.side) throw new Error(`synthetic: ${height} x ${width} images are larger than ${L.side} x ${L.side}`)
  if (channels > L.channels || classes > L.classes || perClass > L.perClass) throw new Error(`synthetic: at most ${L.channels} channels, ${L.classes} classes, ${L.perClass} per class`)
  const per = height * width * channels
  if (classes * perClass * per > L.floats) throw new Error(`synthetic: ${classes * perClass} images of ${per} values are more than ${L.floats} floats (1 GiB)`)
  const prototypes = Array.from({ length: classes }, (_, k) => {
    const rng = createRng(seed, `synthetic/prototype/${k}`)
    return Float32Array.from({ length: per }, () => rng.normal()) // [h, w, c]
  })
  const n = classes * perClass
  const images = new Float32Array(n * per) // [n, h, w, c]
  const labels = new Int32Array(n) // [n]
  const rng = createRng(seed, 'synthetic/noise')
  for (let i = 0; i < n; i++) {
    const k = i % classes
    labels[i] = k
    const proto = prototypes[k]!
    for (let p = 0; p < per; p++) images[i * per + p] = proto[p]! + noise * rng.normal()
  }
  return { n, height, width, channels, images, labels, classNames: Array.from({ length: classes }, (_, k) => `class-${k}`) }
}
