/**
 * A small seeded pseudo-random generator for the eigen-solvers' start vectors and the tests'
 * random orthogonal matrices. Solvers must be reproducible bit for bit (same seed, same matvec ->
 * same eigenpairs), so nothing here reads `Math.random`. Uniforms come from mulberry32 (32-bit
 * state, period 2^32, ample for start vectors); normals from the Box-Muller transform.
 * If the models' `src/science/rng.ts` grows the same contract, this module can re-export it.
 */

/** A deterministic stream of numbers; `uniform()` is in [0, 1), `normal()` is N(0, 1). */
export interface Rng {
  uniform(): number
  normal(): number
}

/** Seeded generator: the same `seed` (any finite number, truncated to 32 bits) gives the same stream. */
export function createRng(seed: number): Rng {
  let state = (Math.trunc(seed) ^ 0x9e3779b9) >>> 0
  let spare: number | undefined
  const uniform = (): number => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const normal = (): number => {
    if (spare !== undefined) {
      const s = spare
      spare = undefined
      return s
    }
    // Box-Muller; 1 - u keeps the logarithm's argument in (0, 1].
    const u = 1 - uniform()
    const v = uniform()
    const r = Math.sqrt(-2 * Math.log(u))
    spare = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }
  return { uniform, normal }
}

/** A length-`dim` vector of independent N(0, 1) draws, stored as float32. */
export function normalVector(rng: Rng, dim: number): Float32Array {
  const out = new Float32Array(dim)
  for (let i = 0; i < dim; i++) out[i] = rng.normal()
  return out
}
