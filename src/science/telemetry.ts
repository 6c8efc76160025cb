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
