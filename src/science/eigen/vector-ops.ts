/**
 * Float32 vectors with float64 reductions: the small set of BLAS-1 operations the eigen-solvers
 * and the telemetry need. Storage stays float32 (a basis of 50 vectors of a 15M-parameter
 * Hessian is already 3 GB), but every dot product and norm is accumulated in a JS number
 * (float64), so reductions over millions of entries do not lose the digits float32 sums would.
 */
import type { Rng } from '../rng.ts'

/** Anything indexable as numbers: Float32Array for stored vectors, Float64Array for work vectors. */
export type Vec = Float32Array | Float64Array

/** Dot product x . y accumulated in float64. Lengths must match (checked). */
export function dot(x: Vec, y: Vec): number {
  if (x.length !== y.length) throw new RangeError(`dot: length ${x.length} != ${y.length}`)
  let s = 0
  for (let i = 0; i < x.length; i++) s += (x[i] as number) * (y[i] as number)
  return s
}

/** Euclidean norm accumulated in float64. */
export function norm(x: Vec): number {
  return Math.sqrt(dot(x, x))
}

/** y += a * x in place. */
export function axpy(a: number, x: Vec, y: Vec): void {
  if (x.length !== y.length) throw new RangeError(`axpy: length ${x.length} != ${y.length}`)
  for (let i = 0; i < x.length; i++) y[i] = (y[i] as number) + a * (x[i] as number)
}

/** x *= a in place. */
export function scale(a: number, x: Vec): void {
  for (let i = 0; i < x.length; i++) x[i] = a * (x[i] as number)
}

/** A float32 copy of `x` (rounds a float64 work vector to storage). */
export function toFloat32(x: Vec): Float32Array {
  return Float32Array.from(x)
}

/**
 * Orthogonalise `w` (in place) against the orthonormal `basis`, twice (classical Gram-Schmidt
 * with one full reorthogonalisation: "twice is enough", Giraud et al. 2005). Returns the summed
 * coefficients c_i = basis_i . w_original, which are the projected-matrix column when w = H v.
 */
export function orthogonalise(w: Float64Array, basis: readonly Float32Array[]): Float64Array {
  const coeffs = new Float64Array(basis.length)
  for (let pass = 0; pass < 2; pass++) {
    const c = basis.map((b) => dot(b, w))
    c.forEach((ci, i) => {
      axpy(-ci, basis[i] as Float32Array, w)
      coeffs[i] = (coeffs[i] as number) + ci
    })
  }
  return coeffs
}

/**
 * out_j = sum_l basis_l * s[l * cols + j] for j < count: the Ritz vectors of the column-major
 * coefficients `s` (rows = basis.length), written IN PLACE into basis[0..count). Done in chunks
 * of elements with float64 accumulators, so no extra full-length vectors are allocated: the
 * memory bound of the basis is also the solver's bound.
 */
export function combineInPlace(basis: Float32Array[], s: Float64Array, cols: number, count: number): void {
  const rows = basis.length
  const dim = basis[0]?.length ?? 0
  const chunk = 2048
  const acc = new Float64Array(count * chunk)
  for (let start = 0; start < dim; start += chunk) {
    const len = Math.min(chunk, dim - start)
    acc.fill(0)
    for (let l = 0; l < rows; l++) {
      const b = basis[l] as Float32Array
      for (let j = 0; j < count; j++) {
        const coef = s[l * cols + j] as number
        if (coef === 0) continue
        const off = j * chunk
        for (let e = 0; e < len; e++) acc[off + e] = (acc[off + e] as number) + coef * (b[start + e] as number)
      }
    }
    for (let j = 0; j < count; j++) {
      const b = basis[j] as Float32Array
      const off = j * chunk
      for (let e = 0; e < len; e++) b[start + e] = acc[off + e] as number
    }
  }
}

/** A length-`dim` vector of independent N(0, 1) draws from the seeded `rng`, as float32. */
export function normalVector(rng: Rng, dim: number): Float32Array {
  const out = new Float32Array(dim)
  for (let i = 0; i < dim; i++) out[i] = rng.normal()
  return out
}
