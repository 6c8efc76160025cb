/**
 * Power iteration with deflation, as the paper computes its top-20 eigenpairs (section 3.3:
 * "power iteration method [24]", returning the k largest eigenvalues BY ABSOLUTE VALUE) and as
 * PyHessian implements it: for each i in turn, iterate v <- H v / ||H v|| from a seeded random
 * start, projecting out the eigenvectors already found before every product (deflation by
 * projection, equivalent in exact arithmetic to Hotelling's H - sum lambda_j h_j h_j^T), until
 * the stopping rule holds or `maxIterations` products were spent on this pair.
 *
 * Kept for comparison with `lanczos.ts`: on a near-degenerate cluster (the 9 eigenvalues at the
 * edge of stability) each pair converges at the rate lambda_{i+1}/lambda_i ~ 1 - 1e-3, so it either
 * spends its whole budget or, with PyHessian's eigenvalue-change rule, stops early on a MIXTURE of
 * cluster eigenvectors whose residual is large. Residuals here are explicit: ||H v - lambda v||
 * from the last product, so that failure is visible.
 */
import { createRng } from '../rng.ts'
import { DEFAULT_TOL, checkArgs, isConverged, type EigenProgress, type EigenResult, type MatVec } from './types.ts'
import { dot, norm, normalVector, orthogonalise, scale, toFloat32 } from './vector-ops.ts'

/** Options of `powerIteration`. */
export interface PowerOptions {
  /** Tolerance (default 1e-3); its meaning depends on `criterion`. */
  tol?: number
  /**
   * 'residual' (default): stop a pair when ||H v - lambda v|| meets `isConverged`, the same rule as
   * Lanczos. 'eigenvalue-change': PyHessian's rule, |lambda - lambda_prev| / (|lambda_prev| + 1e-6) < tol.
   */
  criterion?: 'residual' | 'eigenvalue-change'
  /** Products per eigenpair before moving on (default 100, PyHessian's maxIter). */
  maxIterations?: number
  /** Total budget; the remaining pairs are not computed once it is spent (default k * maxIterations). */
  maxMatvecs?: number
  seed?: number
  onProgress?: EigenProgress
}

/**
 * The k eigenpairs of largest |lambda| by deflated power iteration, returned in descending
 * algebraic order like every EigenResult (so a large negative eigenvalue found by magnitude sorts
 * last). Fewer than k pairs come back if `maxMatvecs` ran out first.
 */
export async function powerIteration(matvec: MatVec, dim: number, k: number, opts: PowerOptions = {}): Promise<EigenResult> {
  checkArgs('powerIteration', dim, k)
  const tol = opts.tol ?? DEFAULT_TOL
  const criterion = opts.criterion ?? 'residual'
  const maxIterations = opts.maxIterations ?? 100
  const maxMatvecs = opts.maxMatvecs ?? k * maxIterations
  const rng = createRng(opts.seed ?? 0, 'power-start')

  const found: { value: number; vector: Float32Array; residual: number }[] = []
  const vectors: Float32Array[] = []
  let matvecs = 0
  let lambdaMaxAbs = 0
  let converged = 0

  for (let i = 0; i < k && matvecs < maxMatvecs; i++) {
    let v = Float64Array.from(normalVector(rng, dim))
    let x: Float32Array = new Float32Array(dim)
    let value = 0
    let residual = Infinity
    for (let it = 0; it < maxIterations && matvecs < maxMatvecs; it++) {
      orthogonalise(v, vectors) // deflation: stay in the complement of the pairs already found
      scale(1 / norm(v), v)
      x = toFloat32(v)
      const y = await matvec(x)
      if (y.length !== dim) throw new RangeError(`powerIteration: matvec returned length ${y.length}, expected ${dim}`)
      matvecs++
      const w = Float64Array.from(y)
      const previous = value
      value = dot(x, w) // Rayleigh quotient of the stored (float32) iterate
      let r2 = 0
      for (let e = 0; e < dim; e++) r2 += ((w[e] as number) - value * (x[e] as number)) ** 2
      residual = Math.sqrt(r2)
      lambdaMaxAbs = Math.max(lambdaMaxAbs, Math.abs(value))
      const ok =
        criterion === 'residual'
          ? isConverged(residual, value, lambdaMaxAbs, tol)
          : it > 0 && Math.abs(value - previous) / (Math.abs(previous) + 1e-6) < tol
      if (ok) break
      v = w
      opts.onProgress?.({ matvecs, converged })
    }
    // The last iterate, whose Rayleigh quotient and residual were measured (unit to float32 rounding).
    const vector = x
    found.push({ value, vector, residual })
    vectors.push(vector)
    // Count converged under the shared residual rule, whatever stopped the iteration.
    if (isConverged(residual, value, lambdaMaxAbs, tol)) converged++
    opts.onProgress?.({ matvecs, converged })
  }

  found.sort((a, b) => b.value - a.value)
  return {
    values: found.map((f) => f.value),
    vectors: found.map((f) => f.vector),
    residuals: found.map((f) => f.residual),
    matvecs,
    converged,
  }
}
