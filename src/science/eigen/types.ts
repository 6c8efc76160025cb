/**
 * Shared vocabulary of the eigen-solvers: the operator they see (a matrix-vector product, in
 * practice a Hessian-vector product, so they know nothing about networks; docs/architecture.md
 * "Layers"), the result they return, and the one convergence rule they all apply, so that
 * Lanczos and power iteration are compared on the same footing (paper section 3.3).
 */

/**
 * y = H v for a symmetric operator H of dimension `dim`. Vectors are float32 (as the HVP
 * produces them); the solver never mutates `v` and never keeps the returned array.
 */
export type MatVec = (v: Float32Array) => Promise<Float32Array> | Float32Array

/** Eigenpairs of a symmetric operator, largest (algebraic) eigenvalue first. */
export interface EigenResult {
  /** Ritz values, descending (algebraic: +5 before -7). */
  values: number[]
  /** Unit-norm (to float32 rounding) vectors, `vectors[i]` belonging to `values[i]`. */
  vectors: Float32Array[]
  /** ||H v_i - lambda_i v_i||_2 for each pair (see each solver for how it is obtained). */
  residuals: number[]
  /** Matrix-vector products spent (the cost measure: each is one HVP). */
  matvecs: number
  /** How many of the returned pairs meet the tolerance (`isConverged`); the solver's caller decides
   *  what to do with an unconverged tail (it is returned, not dropped). */
  converged: number
}

/** Progress report, called after every matvec. */
export type EigenProgress = (info: { matvecs: number; converged: number }) => void

/** Default relative-residual tolerance: ||H v - lambda v|| <= 1e-3 |lambda|. */
export const DEFAULT_TOL = 1e-3

/**
 * The residual floor, as a fraction of the largest |eigenvalue| seen. A float32 HVP carries
 * relative rounding noise ~1e-7..1e-6 of ||H||, so an eigenvalue near zero can never reach a tight
 * residual relative to itself; measuring it against at least 1e-3 |lambda_max| keeps that reachable.
 */
export const RESIDUAL_FLOOR = 1e-3

/**
 * The convergence rule shared by all solvers: a pair converges when
 *   ||H v - lambda v|| <= tol * max(|lambda|, RESIDUAL_FLOOR * lambdaMaxAbs).
 * With tol = 1e-3 this is "relative residual <= 1e-3" for every eigenvalue within a factor 1000
 * of the largest, which covers the top-20 of every Hessian in the paper.
 */
export function isConverged(residual: number, value: number, lambdaMaxAbs: number, tol: number): boolean {
  return residual <= tol * Math.max(Math.abs(value), RESIDUAL_FLOOR * lambdaMaxAbs)
}

/** Validates the common arguments; throws a RangeError naming what is wrong (a programming error). */
export function checkArgs(solver: string, dim: number, k: number): void {
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`${solver}: dim must be a positive integer, got ${dim}`)
  if (!Number.isInteger(k) || k < 1 || k > dim) {
    throw new RangeError(`${solver}: k must be an integer in [1, dim=${dim}], got ${k}`)
  }
}
