/**
 * Symmetric operators with a KNOWN spectrum, H = Q diag(lambda) Q^T, for testing and benchmarking
 * the eigen-solvers against an oracle. Q is a seeded random orthogonal matrix, a product of
 * Householder reflections (I - 2 u u^T with Gaussian u), applied implicitly: a matvec costs
 * O(reflections * dim) and no dim x dim matrix is stored. The matvec computes in float32
 * arithmetic (every product and partial sum rounded with Math.fround) so the solvers see the same
 * kind of rounding noise as a float32 Hessian-vector product. Krylov solvers only see the spectrum
 * and the start vector's components in the eigenbasis, so a product of a few dozen reflections is
 * as good a test as a Haar-random Q.
 */
import { createRng } from '../rng.ts'
import { symmetricEigen } from './symmetric.ts'
import type { MatVec } from './types.ts'
import { dot, type Vec } from './vector-ops.ts'

/** An operator with prescribed eigenvalues and computable exact eigenvectors. */
export interface KnownSpectrum {
  dim: number
  /** The prescribed eigenvalues, in the order given (eigenvector(i) belongs to values[i]). */
  values: Float64Array
  /** y = H v, in float32 arithmetic. */
  matvec: MatVec
  /** The exact (float64) unit eigenvector Q e_i of values[i]. */
  eigenvector(i: number): Float64Array
}

/**
 * H = Q diag(values) Q^T with Q the product of `reflections` (default min(dim, 64)) seeded random
 * Householder reflections. `values.length` is the dimension.
 */
export function knownSpectrum(values: ArrayLike<number>, seed: number, reflections?: number): KnownSpectrum {
  const dim = values.length
  const lambda = Float64Array.from(values)
  const lambda32 = Float32Array.from(values)
  const rng = createRng(seed, 'known-spectrum')
  const count = reflections ?? Math.min(dim, 64)
  // Reflections I - tau u u^T with tau = 2 / (u^T u) computed from the STORED float32 u, so each
  // is exactly orthogonal in exact arithmetic and the float64 eigenvectors below are exact.
  const us: Float32Array[] = []
  const taus: number[] = []
  for (let r = 0; r < count; r++) {
    const u = new Float32Array(dim)
    for (let i = 0; i < dim; i++) u[i] = rng.normal()
    let uu = 0
    for (let i = 0; i < dim; i++) uu += (u[i] as number) ** 2
    us.push(u)
    taus.push(2 / uu)
  }

  // x <- (I - tau u u^T) x in float32 arithmetic.
  const reflect32 = (r: number, x: Float32Array): void => {
    const u = us[r] as Float32Array
    let d = 0
    for (let i = 0; i < dim; i++) d = Math.fround(d + Math.fround((u[i] as number) * (x[i] as number)))
    const a = Math.fround(Math.fround(taus[r] as number) * d)
    for (let i = 0; i < dim; i++) x[i] = Math.fround((x[i] as number) - Math.fround(a * (u[i] as number)))
  }
  // Q = R_0 R_1 ... R_{c-1}; Q^T v applies R_0 first.
  const matvec: MatVec = (v) => {
    const x = Float32Array.from(v)
    for (let r = 0; r < count; r++) reflect32(r, x)
    for (let i = 0; i < dim; i++) x[i] = Math.fround((x[i] as number) * (lambda32[i] as number))
    for (let r = count - 1; r >= 0; r--) reflect32(r, x)
    return x
  }
  const eigenvector = (i: number): Float64Array => {
    const x = new Float64Array(dim)
    x[i] = 1
    for (let r = count - 1; r >= 0; r--) {
      const u = us[r] as Float32Array
      let d = 0
      for (let e = 0; e < dim; e++) d += (u[e] as number) * (x[e] as number)
      const a = (taus[r] as number) * d
      for (let e = 0; e < dim; e++) x[e] = (x[e] as number) - a * (u[e] as number)
    }
    return x
  }
  return { dim, values: lambda, matvec, eigenvector }
}

/**
 * Sine of the largest principal angle between span(exact) and span(found): 0 when the found
 * vectors span exactly the exact subspace, 1 when some exact direction is orthogonal to them.
 * Both sets are orthonormalised in float64 first (Gram-Schmidt, twice): a non-orthogonality of
 * 1e-8, e.g. float32 rounding, would otherwise put a floor of ~1e-4 on the measured sine, since
 * it is sqrt(1 - cos^2). Both sets have the same size. This is how a degenerate or clustered eigenspace is compared, since its individual
 * eigenvectors are not unique.
 */
export function subspaceDistance(exact: readonly Vec[], found: readonly Vec[]): number {
  const p = exact.length
  if (found.length !== p) throw new RangeError(`subspaceDistance: ${p} exact vs ${found.length} found vectors`)
  // M = E^T F (p x p); cos^2 of the principal angles are the eigenvalues of M^T M.
  const e = orthonormal(exact)
  const f = orthonormal(found)
  const m = e.map((ei) => f.map((fj) => dot(ei, fj)))
  const mtm = new Float64Array(p * p)
  for (let i = 0; i < p; i++) {
    for (let j = 0; j < p; j++) {
      let s = 0
      for (let r = 0; r < p; r++) s += (m[r]?.[i] as number) * (m[r]?.[j] as number)
      mtm[i * p + j] = s
    }
  }
  const cos2 = symmetricEigen(mtm, p).values
  return Math.sqrt(Math.max(0, 1 - Math.min(1, cos2[p - 1] as number)))
}

function orthonormal(vectors: readonly Vec[]): Float64Array[] {
  const basis: Float64Array[] = []
  for (const v of vectors) {
    const q = Float64Array.from(v)
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) {
        const c = dot(b, q)
        for (let i = 0; i < q.length; i++) q[i] = (q[i] as number) - c * (b[i] as number)
      }
    }
    const n = Math.sqrt(dot(q, q))
    basis.push(q.map((x) => x / n))
  }
  return basis
}
