/**
 * The measurements of paper §5.4 ("The trajectory of theta lies near a singularity"): peak lambda_1
 * of each gradient-flow run against the dataset size n_D with its least-squares line (Figure 5's
 * claim, R^2 = 99.91% in the paper), for the mean-reduced loss the engine uses and for the
 * sum-reduced loss (lambda_sum = n_D lambda_mean, so that line is nearly trivial and is reported
 * only beside the other); the largest relative change of ||theta|| during training ("increased by
 * much less than 1%"); and a shape measure of the cusp scan (Figure 6).
 */
import type { RunTelemetry, ScanRecord } from './records.ts'
import { linearFit, mean, type LinearFit } from './stats.ts'

/** Peak lambda_1 per dataset size (runs of one size averaged), sorted by n_D. */
export interface PeakSeries {
  activation: string
  points: { nData: number; peakMean: number; peakSum: number; instances: string[] }[]
  /** Fit of peak lambda_1 (mean-reduced loss) against n_D. */
  fitMean: LinearFit
  /** Fit of n_D * peak lambda_1 (the sum-reduced loss's lambda_1) against n_D. */
  fitSum: LinearFit
}

/** The largest logged lambda_1 of a run, or undefined when none was logged. */
export function peakLambda1(run: RunTelemetry): number | undefined {
  let best: number | undefined
  for (const r of run.rows) if (r.lambda1 !== null && (best === undefined || r.lambda1 > best)) best = r.lambda1
  return best
}

/** Peak lambda_1 against n_D for the gradient-flow runs of one activation. */
export function peakSeries(flows: readonly RunTelemetry[], activation: string): PeakSeries {
  const bySize = new Map<number, { peaks: number[]; instances: string[] }>()
  for (const f of flows) {
    if (f.activation !== activation || f.nData === null) continue
    const p = peakLambda1(f)
    if (p === undefined) continue
    const e = bySize.get(f.nData) ?? { peaks: [], instances: [] }
    e.peaks.push(p)
    e.instances.push(f.instance)
    bySize.set(f.nData, e)
  }
  const points = [...bySize.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([nData, e]) => ({ nData, peakMean: mean(e.peaks), peakSum: nData * mean(e.peaks), instances: e.instances.sort() }))
  const xs = points.map((p) => p.nData)
  return { activation, points, fitMean: linearFit(xs, points.map((p) => p.peakMean)), fitSum: linearFit(xs, points.map((p) => p.peakSum)) }
}

/** max_n | ||theta_n|| - ||theta_0|| | / ||theta_0|| over a run's logged rows; undefined without rows. */
export function thetaRelChange(run: RunTelemetry): number | undefined {
  const first = run.rows[0]
  if (first === undefined || !(first.thetaNorm > 0)) return undefined
  let m = 0
  for (const r of run.rows) if (Number.isFinite(r.thetaNorm)) m = Math.max(m, Math.abs(r.thetaNorm - first.thetaNorm) / first.thetaNorm)
  return m
}

/**
 * Cusp sharpness kappa of a scan: the mean curvature (c(d) + c(-d)) / d^2 at the smallest |Delta| on
 * the grid, over the same at the largest |Delta|. A parabola (smooth minimum) gives 1, |Delta|^p with
 * p < 2 gives (d_max / d_min)^(2-p) > 1: the sharper the cusp, the larger kappa. Undefined when the
 * grid lacks a symmetric pair or the outer curvature is not positive.
 */
export function cuspSharpness(scan: Pick<ScanRecord, 'deltas' | 'changes'>): number | undefined {
  const at = new Map<number, number>()
  scan.deltas.forEach((d, i) => {
    const c = scan.changes[i]
    if (c !== null && c !== undefined && Number.isFinite(c)) at.set(d, c)
  })
  const pairs = [...at.keys()].filter((d) => d > 0 && at.has(-d)).sort((a, b) => a - b)
  if (pairs.length < 2) return undefined
  const curv = (d: number): number => (at.get(d)! + at.get(-d)!) / (d * d)
  const inner = curv(pairs[0]!)
  const outer = curv(pairs[pairs.length - 1]!)
  if (!(outer > 0)) return undefined
  return inner / outer
}
