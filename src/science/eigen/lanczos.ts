/**
 * Thick-restart Lanczos for the top-k (largest algebraic) eigenpairs of a symmetric operator
 * given only as a matvec (paper section 3.3 computes the same quantities by power iteration;
 * `power.ts` has that for comparison). Wu & Simon (2000) thick restart, with these choices:
 *
 * - Full reorthogonalisation, twice (`orthogonalise`), of every new vector against the whole
 *   basis; the coefficients are kept as a dense projected matrix T = V^T H V rather than a
 *   tridiagonal, so the relation H V = V T + f e_m^T holds to float32 storage rounding even when
 *   the three-term recurrence would have lost orthogonality (near-degenerate clusters).
 * - Restart when the basis is full: keep the `keep` best Ritz vectors plus the residual direction
 *   (an arrowhead T), rotate the basis in place, continue. Ritz values of a clustered top
 *   spectrum (9 eigenvalues near 2/eta at the edge of stability) then keep improving instead of
 *   being rebuilt from scratch.
 * - Residuals are the Lanczos-relation residuals ||H y - theta y|| = |beta * s_m| (the ARPACK
 *   convention): no extra matvecs; they equal the explicit residual up to the float32 rounding of
 *   the matvec itself (the tests check this against explicit products).
 * - Deterministic: seeded start vector (`../rng.ts`, stream 'lanczos-start'), fixed operation order: same seed and same
 *   matvec give bit-identical output.
 *
 * Memory: the basis holds at most `maxBasis` float32 vectors (default 2k + 10, at least k + 2,
 * at most dim) plus a float64 work vector or two: about (4 maxBasis + 16) dim bytes; for k = 20
 * and VGG-16's 15.25M parameters, 50 x 61 MB + 244 MB ~ 3.3 GB. The returned vectors reuse the
 * basis storage. Pass a smaller `maxBasis` to trade matvecs for memory (restarts lose little:
 * on the reference CNN a basis of 100, never restarted, needed 86 HVPs where 50 needed 88).
 */
import { createRng } from '../rng.ts'
import { symmetricEigen } from './symmetric.ts'
import { DEFAULT_TOL, checkArgs, isConverged, type EigenProgress, type EigenResult, type MatVec } from './types.ts'
import { combineInPlace, norm, normalVector, orthogonalise, scale, toFloat32 } from './vector-ops.ts'

export type { EigenResult, MatVec } from './types.ts'

/** Options of `lanczos`. */
export interface LanczosOptions {
  /** Stop after this many matvecs even if not converged (default 50 * maxBasis). */
  maxMatvecs?: number
  /** Relative residual tolerance, `isConverged` in types.ts (default 1e-3). */
  tol?: number
  /** Seed (an integer) of the random start vector (default 0). */
  seed?: number
  /** Warm start: previous eigenvectors. The first Lanczos vector is their normalised sum, so
   *  their span is in the Krylov space after a few steps. */
  start?: Float32Array[]
  /** Basis size before a restart (default 2k + 10; clamped to [k + 2, dim]). */
  maxBasis?: number
  /** Ritz vectors kept at a restart (default k + (maxBasis - k) / 2, clamped to [k, maxBasis - 2]). */
  keep?: number
  onProgress?: EigenProgress
}

/**
 * The k largest (algebraic) eigenpairs of the symmetric operator `matvec` of dimension `dim`.
 * Stops when all k meet the tolerance or after `maxMatvecs`; `converged` says how many did.
 * Throws a RangeError on invalid arguments or a matvec result of the wrong length.
 */
export async function lanczos(matvec: MatVec, dim: number, k: number, opts: LanczosOptions = {}): Promise<EigenResult> {
  checkArgs('lanczos', dim, k)
  const tol = opts.tol ?? DEFAULT_TOL
  const maxBasis = Math.min(dim, Math.max(k + 2, opts.maxBasis ?? 2 * k + 10))
  const keep = Math.min(Math.max(k, opts.keep ?? k + Math.floor((maxBasis - k) / 2)), Math.max(k, maxBasis - 2))
  const maxMatvecs = opts.maxMatvecs ?? 50 * maxBasis
  const rng = createRng(opts.seed ?? 0, 'lanczos-start')

  const basis: Float32Array[] = [] // orthonormal columns of V
  const t = new Float64Array(maxBasis * maxBasis) // projected matrix, row-major, symmetric
  let matvecs = 0

  // Start vector: normalised sum of the warm-start vectors, or a seeded Gaussian.
  const first = new Float64Array(dim)
  for (const s of opts.start ?? []) {
    if (s.length !== dim) throw new RangeError(`lanczos: start vector of length ${s.length}, expected ${dim}`)
    for (let i = 0; i < dim; i++) first[i] = (first[i] as number) + (s[i] as number)
  }
  if (norm(first) === 0) first.set(normalVector(rng, dim))
  scale(1 / norm(first), first)
  basis.push(toFloat32(first))

  for (;;) {
    // One Lanczos step on the newest basis vector: w = H v_j, orthogonalised against V.
    const j = basis.length - 1
    const w = await apply(matvec, basis[j] as Float32Array, dim)
    matvecs++
    const c = orthogonalise(w, basis)
    for (let i = 0; i <= j; i++) {
      t[i * maxBasis + j] = c[i] as number
      t[j * maxBasis + i] = c[i] as number
    }
    const beta = norm(w)

    // Rayleigh-Ritz on the projected matrix.
    const m = j + 1
    const eig = symmetricEigen(leading(t, maxBasis, m), m)
    const lambdaMax = Math.max(Math.abs(eig.values[0] as number), Math.abs(eig.values[m - 1] as number))
    const residuals = Array.from({ length: Math.min(k, m) }, (_, i) => Math.abs(beta * (eig.vectors[(m - 1) * m + i] as number)))
    const converged = countConverged(eig.values, residuals, lambdaMax, tol)
    opts.onProgress?.({ matvecs, converged })
    if ((converged === k && m >= k) || m === dim || matvecs >= maxMatvecs) {
      return finish(basis, eig, m, k, residuals, matvecs, converged)
    }

    // Next basis vector: the residual direction, or a fresh random one if the Krylov space is
    // invariant (beta at rounding level), which also lets exact multiplicities be found.
    let next: Float64Array
    let coupling = beta
    if (beta <= 1e-10 * Math.max(lambdaMax, Number.MIN_VALUE)) {
      next = Float64Array.from(normalVector(rng, dim))
      orthogonalise(next, basis)
      coupling = 0
    } else {
      next = w
    }
    scale(1 / norm(next), next)

    if (basis.length < maxBasis) {
      basis.push(toFloat32(next))
      continue
    }
    // Thick restart: V <- V S[:, :keep], T <- diag(theta) bordered by beta * s_m (arrowhead).
    combineInPlace(basis, eig.vectors, m, keep)
    basis.length = keep
    t.fill(0)
    for (let i = 0; i < keep; i++) {
      const arrow = coupling * (eig.vectors[(m - 1) * m + i] as number)
      t[i * maxBasis + i] = eig.values[i] as number
      t[i * maxBasis + keep] = arrow
      t[keep * maxBasis + i] = arrow
    }
    basis.push(toFloat32(next))
  }
}

/** Options of `topEigen`. */
export interface TopEigenOptions {
  /** Previous top eigenvector: a warm start converges in a few matvecs when H changed little. */
  start?: Float32Array
  tol?: number
  maxMatvecs?: number
  seed?: number
  /** Basis size before a restart (default 12). */
  maxBasis?: number
}

/** The top eigenpair alone, as the gradient-flow mode needs it every iteration (paper section 4.2). */
export interface TopEigen {
  value: number
  vector: Float32Array
  residual: number
  matvecs: number
  converged: boolean
}

/**
 * lambda_1 and h_1 by a short warm-started Lanczos (k = 1, small basis): with `start` = the
 * previous iteration's h_1 it stops as soon as the Rayleigh quotient's residual meets `tol`,
 * often after one or two matvecs. Caveat: if `start` is an accurate eigenvector of a now
 * non-top eigenvalue, the first step may already meet the tolerance and report it; perturb
 * `start` with a little noise when eigenvalue crossings matter more than matvecs.
 */
export async function topEigen(matvec: MatVec, dim: number, opts: TopEigenOptions = {}): Promise<TopEigen> {
  const r = await lanczos(matvec, dim, 1, {
    maxBasis: opts.maxBasis ?? 12,
    ...(opts.start ? { start: [opts.start] } : {}),
    ...(opts.tol !== undefined ? { tol: opts.tol } : {}),
    ...(opts.maxMatvecs !== undefined ? { maxMatvecs: opts.maxMatvecs } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  })
  return {
    value: r.values[0] as number,
    vector: r.vectors[0] as Float32Array,
    residual: r.residuals[0] as number,
    matvecs: r.matvecs,
    converged: r.converged === 1,
  }
}

async function apply(matvec: MatVec, v: Float32Array, dim: number): Promise<Float64Array> {
  const y = await matvec(v)
  if (y.length !== dim) throw new RangeError(`lanczos: matvec returned length ${y.length}, expected ${dim}`)
  return Float64Array.from(y)
}

/** The leading m x m block of the row-major `stride`-wide matrix t, compacted. */
function leading(t: Float64Array, stride: number, m: number): Float64Array {
  const out = new Float64Array(m * m)
  for (let i = 0; i < m; i++) out.set(t.subarray(i * stride, i * stride + m), i * m)
  return out
}

/** Number of leading Ritz pairs, in order, that meet the tolerance (a gap stops the count). */
function countConverged(values: Float64Array, residuals: number[], lambdaMax: number, tol: number): number {
  let n = 0
  while (n < residuals.length && isConverged(residuals[n] as number, values[n] as number, lambdaMax, tol)) n++
  return n
}

/** Ritz vectors of the top k, normalised, written over the basis (no new full-length storage). */
function finish(
  basis: Float32Array[],
  eig: { values: Float64Array; vectors: Float64Array },
  m: number,
  k: number,
  residuals: number[],
  matvecs: number,
  converged: number,
): EigenResult {
  const count = Math.min(k, m)
  combineInPlace(basis, eig.vectors, m, count)
  const vectors = basis.slice(0, count)
  for (const v of vectors) {
    const n = norm(v)
    for (let i = 0; i < v.length; i++) v[i] = (v[i] as number) / n
  }
  return {
    values: Array.from(eig.values.subarray(0, count)),
    vectors,
    residuals: residuals.slice(0, count),
    matvecs,
    converged,
  }
}
