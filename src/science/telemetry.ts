/**
 * The paper's per-checkpoint telemetry (sections 3.2, 4.1, 5.2-5.4) as pure functions over float32
 * vectors with float64 reductions: the coordinates d_i = h_i . g of the gradient in the Hessian's
 * eigenbasis, the split g = P_top g + P_bulk g onto the top subspace (the largest n_c - 1
 * eigenvectors) and the bulk, rho_i = eta / eta_i* with eta_i* = 2 / lambda_i, the change in the
 * training loss from ONE actual step along a direction (weights moved, loss recomputed: section
 * 4.1 insists on "not by using the Taylor approximation"), its second-order prediction for
 * comparison, and the cusp scan L(theta* + Delta h_1) - L(theta*) of section 5.4. The loss is
 * injected (`LossFn`), so nothing here knows about networks or workers.
 */
import { dot } from './eigen/vector-ops.ts'
import { createRng } from './rng.ts'

/** The training loss L(theta) at a flat float32 parameter vector (e.g. Objective.loss). */
export type LossFn = (theta: Float32Array) => Promise<number> | number

/** d_i = h_i . g for each vector h_i (section 3.2: g = sum_i d_i h_i); float64 dot products. */
export function projections(g: Float32Array, vectors: readonly Float32Array[]): number[] {
  return vectors.map((h) => dot(h, g))
}

/** The gradient split onto span(topVectors) and its orthogonal complement (section 3.2). */
export interface GradientSplit {
  /** P_top g = sum_i d_i h_i. */
  top: Float32Array
  /** P_bulk g = g - P_top g. */
  bulk: Float32Array
  /** ||P_top g||_2 and ||P_bulk g||_2, from the float64 vectors before rounding to float32. */
  topNorm: number
  bulkNorm: number
  /** d_i = h_i . g. */
  coefficients: number[]
}

/**
 * Splits g into its top-subspace and bulk components. `topVectors` must be orthonormal (the
 * eigen-solvers' output is, to float32 rounding); with n_c classes the paper's top subspace is the
 * first n_c - 1 eigenvectors (pass `vectors.slice(0, nc - 1)`).
 */
export function splitGradient(g: Float32Array, topVectors: readonly Float32Array[]): GradientSplit {
  const coefficients = projections(g, topVectors)
  const top = new Float64Array(g.length)
  topVectors.forEach((h, i) => {
    const d = coefficients[i] as number
    for (let e = 0; e < g.length; e++) top[e] = (top[e] as number) + d * (h[e] as number)
  })
  const bulk = new Float64Array(g.length)
  let topSq = 0
  let bulkSq = 0
  for (let e = 0; e < g.length; e++) {
    const t = top[e] as number
    const b = (g[e] as number) - t
    bulk[e] = b
    topSq += t * t
    bulkSq += b * b
  }
  return {
    top: Float32Array.from(top),
    bulk: Float32Array.from(bulk),
    topNorm: Math.sqrt(topSq),
    bulkNorm: Math.sqrt(bulkSq),
    coefficients,
  }
}

/** eta_i* = 2 / lambda_i, the largest stable learning rate along h_i (section 3.2, from [11]). */
export function maxStableRate(lambda: number): number {
  return 2 / lambda
}

/** rho_i = eta / eta_i* = eta lambda_i / 2: 1 is the edge of stability along h_i (section 3.2). */
export function rho(eta: number, lambda: number): number {
  return (eta * lambda) / 2
}

/**
 * L(theta - eta * direction) - L(theta), by moving the weights (float32, as training would) and
 * recomputing the loss: Table 1's "change in the training loss caused by taking a single
 * optimization step in the direction of P_top g / P_bulk g". Pass `baseline` = L(theta) when it is
 * already known, to save one loss evaluation.
 */
export async function stepLossChange(
  loss: LossFn,
  theta: Float32Array,
  direction: Float32Array,
  eta: number,
  baseline?: number,
): Promise<number> {
  if (direction.length !== theta.length) {
    throw new RangeError(`stepLossChange: direction length ${direction.length} != theta length ${theta.length}`)
  }
  const before = baseline ?? (await loss(theta))
  const moved = new Float32Array(theta.length)
  for (let i = 0; i < theta.length; i++) moved[i] = (theta[i] as number) - eta * (direction[i] as number)
  return (await loss(moved)) - before
}

/**
 * The second-order prediction of a step -eta * g restricted to eigen-directions with coordinates
 * d_i and curvatures lambda_i: eta * sum_i d_i^2 (eta lambda_i / 2 - 1) (section 3.2). Exact for a
 * quadratic loss; compared with `stepLossChange` it shows how far the landscape is from quadratic.
 */
export function quadraticStepChange(eta: number, d: readonly number[], lambda: readonly number[]): number {
  if (d.length !== lambda.length) throw new RangeError(`quadraticStepChange: ${d.length} coordinates, ${lambda.length} eigenvalues`)
  return d.reduce((sum, di, i) => sum + eta * di * di * ((eta * (lambda[i] as number)) / 2 - 1), 0)
}

/** The cusp scan's result: one loss change per Delta. */
export interface DirectionalScan {
  /** L(theta). */
  base: number
  deltas: number[]
  /** L(theta + Delta h) - L(theta), one per delta. */
  changes: number[]
}

/**
 * L(theta + Delta h) - L(theta) for each Delta (section 5.4, Figure 6 left: h = h_1 at the peak-
 * curvature checkpoint, Delta in [-0.003, 0.003]). `h` should be unit-norm so Delta is a distance.
 * Weights are moved in float32: with ~1e4-1e7 parameters a step of 0.003 along a unit vector still
 * changes every weight representably, but the loss itself is only resolved to its float32 ulp
 * (~1e-7 L), which is the floor of the scan near Delta = 0.
 */
export async function directionalScan(
  loss: LossFn,
  theta: Float32Array,
  h: Float32Array,
  deltas: readonly number[],
): Promise<DirectionalScan> {
  if (h.length !== theta.length) throw new RangeError(`directionalScan: h length ${h.length} != theta length ${theta.length}`)
  const base = await loss(theta)
  const changes: number[] = []
  for (const delta of deltas) {
    // A fresh array per point: the loss may keep or transfer (postMessage) what it is given.
    const moved = new Float32Array(theta.length)
    for (let i = 0; i < theta.length; i++) moved[i] = (theta[i] as number) + delta * (h[i] as number)
    changes.push((await loss(moved)) - base)
  }
  return { base, deltas: [...deltas], changes }
}

/**
 * A random sketch of unit vectors for matching eigenvectors across checkpoints by overlap (section
 * 5.2, Figure 4 follows each h_i through training): rows[i] = S h_i with S an m x P matrix of
 * independent N(0, 1/m) entries drawn from `seed` (row by row, so the same seed and P give the same
 * S). For unit h, h' the sketches' dot product estimates h . h' with standard deviation about
 * sqrt((1 + (h . h')^2) / m) (Johnson-Lindenstrauss), so m = 1024 resolves overlaps to ~0.03-0.045
 * without storing P floats per eigenvector. S is generated on the fly: O(m P) work, O(P) memory.
 */
export function sketchVectors(vectors: readonly Float32Array[], m: number, seed: number): number[][] {
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`sketchVectors: m must be a positive integer, got ${m}`)
  const dim = vectors[0]?.length ?? 0
  for (const v of vectors) if (v.length !== dim) throw new RangeError(`sketchVectors: vectors of lengths ${dim} and ${v.length}`)
  const rows = vectors.map(() => new Array<number>(m).fill(0))
  const rng = createRng(seed, 'eigenvector-sketch')
  const s = new Float64Array(dim)
  const scaleBy = 1 / Math.sqrt(m)
  for (let r = 0; r < m; r++) {
    for (let e = 0; e < dim; e++) s[e] = rng.normal() * scaleBy
    vectors.forEach((h, i) => {
      let acc = 0
      for (let e = 0; e < dim; e++) acc += (s[e] as number) * (h[e] as number)
      ;(rows[i] as number[])[r] = acc
    })
  }
  return rows
}

/** #{i : rho_i >= threshold} among the given rho (sorted descending or not): the edge set's size. */
export function edgeSetSize(rhos: readonly number[], threshold: number): number {
  return rhos.filter((r) => r >= threshold).length
}

/**
 * A symmetric log-spaced grid for the cusp scan scaled to the curvature: `perSide` magnitudes
 * D = scale * 10^u, u evenly spaced over [uMin, uMax], each with its negative, plus an exact 0,
 * sorted ascending. With scale = 1 / sqrt(lambda_1), lambda_1 D^2 / 2 = 10^(2u) / 2, so the grid
 * covers the quadratic regime (u << 0) up to where the step changes the loss by O(1) (u ~ 0).
 */
export function logDeltaGrid(scale: number, uMin: number, uMax: number, perSide: number): number[] {
  if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`logDeltaGrid: scale must be a positive number, got ${scale}`)
  if (!Number.isInteger(perSide) || perSide < 2) throw new RangeError(`logDeltaGrid: perSide must be an integer >= 2, got ${perSide}`)
  if (!(uMax > uMin)) throw new RangeError(`logDeltaGrid: need uMin < uMax, got ${uMin}, ${uMax}`)
  const mags = Array.from({ length: perSide }, (_, i) => scale * 10 ** (uMin + ((uMax - uMin) * i) / (perSide - 1)))
  return [...mags.map((m) => -m).reverse(), 0, ...mags]
}

/** The even part e(D) = (c(D) + c(-D)) / 2 of a scan, for each D > 0 that has its -D (ascending D). */
export function evenPart(deltas: readonly number[], changes: readonly number[]): { d: number[]; e: number[] } {
  const byDelta = new Map(deltas.map((x, i) => [x, changes[i] as number]))
  const d: number[] = []
  const e: number[] = []
  for (const x of [...deltas].filter((v) => v > 0).sort((a, b) => a - b)) {
    const minus = byDelta.get(-x)
    if (minus === undefined) continue
    d.push(x)
    e.push(((byDelta.get(x) as number) + minus) / 2)
  }
  return { d, e }
}

/** A power law e ~ coefficient * D^exponent fitted by least squares in log-log coordinates. */
export interface PowerFit {
  exponent: number
  coefficient: number
  /** R^2 of the log-log fit. */
  r2: number
  /** Points used (those with e > floor) and their D range. */
  points: number
  d_min: number
  d_max: number
  /** Slopes of log e between consecutive used points: the exponent scale by scale. */
  local_exponents: number[]
}

/**
 * Fits the even part of a directional scan to coefficient * |D|^exponent (section 5.4: a smooth
 * minimum gives exponent 2, i.e. curvature; a vertical cusp such as |D|^(1/2) gives exponent < 1;
 * a kink, |D|). Only points with e(D) > floor count (below it the loss's rounding dominates).
 * Returns null when fewer than 3 points qualify.
 */
export function fitPowerLaw(deltas: readonly number[], changes: readonly number[], floor = 0): PowerFit | null {
  const { d, e } = evenPart(deltas, changes)
  const xs: number[] = []
  const ys: number[] = []
  d.forEach((x, i) => {
    const v = e[i] as number
    if (v > floor && v > 0) {
      xs.push(Math.log(x))
      ys.push(Math.log(v))
    }
  })
  const n = xs.length
  if (n < 3) return null
  const mx = xs.reduce((a, b) => a + b, 0) / n
  const my = ys.reduce((a, b) => a + b, 0) / n
  let sxy = 0
  let sxx = 0
  let syy = 0
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] as number) - mx
    const dy = (ys[i] as number) - my
    sxy += dx * dy
    sxx += dx * dx
    syy += dy * dy
  }
  const exponent = sxy / sxx
  const intercept = my - exponent * mx
  const r2 = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy)
  const local: number[] = []
  for (let i = 1; i < n; i++) local.push(((ys[i] as number) - (ys[i - 1] as number)) / ((xs[i] as number) - (xs[i - 1] as number)))
  return {
    exponent,
    coefficient: Math.exp(intercept),
    r2,
    points: n,
    d_min: Math.exp(xs[0] as number),
    d_max: Math.exp(xs[n - 1] as number),
    local_exponents: local,
  }
}
