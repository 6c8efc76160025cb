/**
 * Dense symmetric eigen-solver in float64: the cyclic Jacobi method. Lanczos and the block
 * solvers reduce a huge Hessian to a small projected matrix (at most a few dozen rows); this
 * diagonalises it. Jacobi is chosen over implicit QL because it is short, unconditionally
 * convergent, and accurate to working precision even for tiny eigenvalues relative to the norm
 * (Demmel & Veselic, 1992), which matters when a projected matrix mixes a cluster near 2/eta with
 * a bulk near 0. Cost is O(n^3) per sweep, with quadratic convergence after a few sweeps: under a
 * millisecond for n = 50.
 */

/** Eigen-decomposition `A = S diag(values) S^T` with values in descending (algebraic) order. */
export interface SymmetricEigen {
  /** Eigenvalues, largest first. */
  values: Float64Array
  /** Eigenvectors as columns of an n x n row-major matrix: `vectors[row * n + col]`; orthonormal. */
  vectors: Float64Array
}

/**
 * Eigenvalues and orthonormal eigenvectors of the symmetric n x n matrix `a` (row-major; only
 * symmetric input is meaningful: the strictly upper triangle is read, the lower one ignored).
 * `a` is not modified. Throws a RangeError if `a.length !== n * n`.
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): SymmetricEigen {
  if (!Number.isInteger(n) || n < 0 || a.length !== n * n) {
    throw new RangeError(`symmetricEigen: expected an ${n} x ${n} matrix, got ${a.length} entries`)
  }
  // Work on a symmetrised copy built from the upper triangle.
  const m = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const x = a[i * n + j] as number
      m[i * n + j] = x
      m[j * n + i] = x
    }
  }
  const s = new Float64Array(n * n)
  for (let i = 0; i < n; i++) s[i * n + i] = 1

  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0
    let diag = 0
    for (let i = 0; i < n; i++) {
      diag += (m[i * n + i] as number) ** 2
      for (let j = i + 1; j < n; j++) off += (m[i * n + j] as number) ** 2
    }
    // Converged when the off-diagonal mass is at rounding level of the whole matrix.
    if (off === 0 || off <= 1e-32 * (diag + 2 * off)) break
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q] as number
        if (apq === 0) continue
        const app = m[p * n + p] as number
        const aqq = m[q * n + q] as number
        // Skip rotations that cannot change the diagonal in float64 (after the first sweeps).
        if (sweep > 3 && Math.abs(apq) < 1e-18 * (Math.abs(app) + Math.abs(aqq))) {
          m[p * n + q] = 0
          m[q * n + p] = 0
          continue
        }
        // Rotation angle zeroing m[p][q]: t = tan(phi), the smaller root of t^2 + 2 theta t - 1 = 0.
        const theta = (aqq - app) / (2 * apq)
        const t = Math.abs(theta) > 1e150 ? 1 / (2 * theta) : Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1))
        const c = 1 / Math.sqrt(t * t + 1)
        const sn = t * c
        for (let r = 0; r < n; r++) {
          if (r === p || r === q) continue
          const arp = m[r * n + p] as number
          const arq = m[r * n + q] as number
          const np = c * arp - sn * arq
          const nq = sn * arp + c * arq
          m[r * n + p] = np
          m[p * n + r] = np
          m[r * n + q] = nq
          m[q * n + r] = nq
        }
        m[p * n + p] = app - t * apq
        m[q * n + q] = aqq + t * apq
        m[p * n + q] = 0
        m[q * n + p] = 0
        for (let r = 0; r < n; r++) {
          const srp = s[r * n + p] as number
          const srq = s[r * n + q] as number
          s[r * n + p] = c * srp - sn * srq
          s[r * n + q] = sn * srp + c * srq
        }
      }
    }
  }

  // Sort descending; permute the columns of s to match.
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => (m[j * n + j] as number) - (m[i * n + i] as number) || i - j)
  const values = new Float64Array(n)
  const vectors = new Float64Array(n * n)
  order.forEach((from, to) => {
    values[to] = m[from * n + from] as number
    for (let r = 0; r < n; r++) vectors[r * n + to] = s[r * n + from] as number
  })
  return { values, vectors }
}
