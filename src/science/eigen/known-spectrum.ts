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
import { createRng } from './rng.ts'
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
  const rng = createRng(seed)
  const count = reflections ?? Math.min(dim, 64)
  const us: Float32Array[] = []
  for (let r = 0; r < count; r++) {
    const u = new Float64Array(dim)
    for (let i = 0; i < dim; i++) u[i] = rng.normal()
    const n = Math.hypot(...u)
    us.push(Float32Array.from(u, (x) => x / n))
  }

  // x <- (I - 2 u u^T) x in float32 arithmetic.
  const reflect32 = (u: Float32Array, x: Float32Array): void => {
    let d = 0
    for (let i = 0; i < dim; i++) d = Math.fround(d + Math.fround((u[i] as number) * (x[i] as number)))
    const a = Math.fround(2 * d)
    for (let i = 0; i < dim; i++) x[i] = Math.fround((x[i] as number) - Math.fround(a * (u[i] as number)))
  }
  // Q = R_0 R_1 ... R_{c-1}; Q^T v applies R_0 first.
  const matvec: MatVec = (v) => {
    const x = Float32Array.from(v)
    for (let r = 0; r < count; r++) reflect32(us[r] as Float32Array, x)
    for (let i = 0; i < dim; i++) x[i] = Math.fround((x[i] as number) * (lambda32[i] as number))
    for (let r = count - 1; r >= 0; r--) reflect32(us[r] as Float32Array, x)
    return x
  }
  const eigenvector = (i: number): Float64Array => {
    const x = new Float64Array(dim)
    x[i] = 1
    for (let r = count - 1; r >= 0; r--) {
      const u = us[r] as Float32Array
      let d = 0
      for (let e = 0; e < dim; e++) d += (u[e] as number) * (x[e] as number)
      for (let e = 0; e < dim; e++) x[e] = (x[e] as number) - 2 * d * (u[e] as number)
    }
    return x
  }
  return { dim, values: lambda, matvec, eigenvector }
}

/**
 * Sine of the largest principal angle between span(exact) and span(found): 0 when the found
 * vectors span exactly the exact subspace, 1 when some exact direction is orthogonal to them.
 * `exact` must be orthonormal; `found` is re-orthonormalised in float64 first (float32 rounding
 * of unit vectors alone would put a floor of ~3e-4 on the measured sine). Both sets have the same
 * size. This is how a degenerate or clustered eigenspace is compared, since its individual
 * eigenvectors are not unique.
 */
export function subspaceDistance(exact: readonly Vec[], found: readonly Vec[]): number {
  const p = exact.length
  if (found.length !== p) throw new RangeError(`subspaceDistance: ${p} exact vs ${found.length} found vectors`)
  // M = E^T F (p x p); cos^2 of the principal angles are the eigenvalues of M^T M.
  const basis: Float64Array[] = []
  for (const f of found) {
    const q = Float64Array.from(f)
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) {
        const c = dot(b, q)
        for (let i = 0; i < q.length; i++) q[i] = (q[i] as number) - c * (b[i] as number)
      }
    }
    const n = Math.sqrt(dot(q, q))
    basis.push(q.map((x) => x / n))
  }
  const m = exact.map((e) => basis.map((f) => dot(e, f)))
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
