/**
 * Seeded, deterministic pseudo-random numbers for weight initialisation (paper §4: "We initialize all
 * networks with the Kaiming initialization"). Pure JavaScript, no Math.random and no backend, so the
 * same seed gives the same bits on every tfjs backend, machine and process. The generator is
 * xoshiro128** (Blackman & Vigna) seeded through splitmix32; normals come from the Box-Muller
 * transform in float64. Each named stream (one per parameter tensor) is seeded from (seed, name), so
 * adding or reshaping one layer does not shift the draws of the others.
 */

/** 32-bit FNV-1a hash of a string: stable stream ids from parameter names. */
export function hashString(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h >>> 0
}

/** splitmix32 step: turns any 32-bit state into well-mixed seed words. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0
  let z = state.s
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
  return (z ^ (z >>> 16)) >>> 0
}

/** A deterministic stream of uniforms and normals. */
export interface Rng {
  /** Next uint32. */
  nextUint32(): number
  /** Uniform in the open interval (0, 1), 32 bits of resolution. */
  uniform(): number
  /** Standard normal (Box-Muller, float64). */
  normal(): number
}

/** xoshiro128** stream seeded from `seed` and an optional stream name (e.g. 'conv1.weight'). */
export function createRng(seed: number, stream = ''): Rng {
  if (!Number.isInteger(seed)) throw new Error(`rng seed must be an integer, got ${seed}`)
  const mix = { s: ((seed >>> 0) ^ Math.imul(hashString(stream), 0x27d4eb2f)) >>> 0 }
  // Mix the high bits of large seeds too (seeds up to 2^53 stay distinct).
  mix.s = (mix.s ^ (Math.floor(seed / 0x100000000) >>> 0)) >>> 0
  const s = new Uint32Array(4)
  for (let i = 0; i < 4; i++) s[i] = splitmix32(mix)
  if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1 // the all-zero state is a fixed point
  let spare: number | undefined

  const nextUint32 = (): number => {
    const s0 = s[0]!,
      s1 = s[1]!,
      s2 = s[2]!,
      s3 = s[3]!
    const r = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0
    const t = (s1 << 9) >>> 0
    s[2] = s2 ^ s0
    s[3] = s3 ^ s1
    s[1] = s1 ^ s[2]!
    s[0] = s0 ^ s[3]!
    s[2] = s[2]! ^ t
    s[3] = rotl(s[3]!, 11)
    return r
  }
  const uniform = (): number => (nextUint32() + 0.5) / 4294967296
  const normal = (): number => {
    if (spare !== undefined) {
      const z = spare
      spare = undefined
      return z
    }
    const u1 = uniform()
    const u2 = uniform()
    const r = Math.sqrt(-2 * Math.log(u1))
    spare = r * Math.sin(2 * Math.PI * u2)
    return r * Math.cos(2 * Math.PI * u2)
  }
  return { nextUint32, uniform, normal }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0
}
