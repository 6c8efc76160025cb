/**
 * The measurements of paper §5.4 ("The trajectory of theta lies near a singularity"): peak lambda_1
 * of each gradient-flow run against the dataset size n_D (Figure 5's claim, R^2 = 99.91% in the
 * paper), seeds of one size pooled, for the mean-reduced loss the engine uses and for the
 * sum-reduced loss (lambda_sum = n_D lambda_mean, so that line is nearly trivial and is reported
 * only beside the other); whether a run's peak is certified (the run went past it); the largest
 * relative change of ||theta|| during training ("increased by much less than 1%"); and the cusp
 * scan's exponent p in L(theta* + Delta h_1) - L(theta*) ~ |Delta|^p (Figure 6): a ReLU kink gives
 * p = 1, a smooth minimum p = 2, a singularity in the sense of Definition 3.1 p < 1.
 */
import type { RunTelemetry, ScanRecord } from './records.ts'
import { linearFit, mean, slopeInterval, type LinearFit, type SlopeInterval } from './stats.ts'

/** When a run's peak counts (claims.yaml C4 params and the shared transient rule). */
export interface PeakRule {
  /** Rows before this t are the initial transient. */
  tMin: number
  /** A run is certified past its peak when its last logged loss is below this ... */
  certLoss: number
  /** ... or its last lambda_1 is at least this fraction below the peak. */
  certDrop: number
}

/** One run's peak. */
export interface RunPeak {
  instance: string
  nData: number
  seed: number | null
  peak: number
  peakT: number
  certified: boolean
  /** The train stage's own flag (its stop rule), when written: reported, not used. */
  stageCertified: boolean | null
}

/** Peak lambda_1 per dataset size (certified runs of one size averaged), sorted by n_D. */
export interface PeakSeries {
  activation: string
  runs: RunPeak[]
  points: { nData: number; peakMean: number; peakSum: number; peaks: number[]; instances: string[] }[]
  /** Fit of the per-size mean peak lambda_1 (mean-reduced loss) against n_D. */
  fitMean: LinearFit
  /** Fit of n_D * peak lambda_1 (the sum-reduced loss's lambda_1) against n_D. */
  fitSum: LinearFit
}

/**
 * The largest logged lambda_1 of a run at t >= tMin, its time, and whether the run went past it by
 * claims.yaml's rule: last loss < certLoss or last lambda_1 at least certDrop below the peak. The
 * train stage's own `peak_certified` flag (its stop rule, from pipeline params) is returned beside
 * it, never in its place: the thresholds are claims.yaml's.
 */
export function runPeak(
  run: RunTelemetry,
  rule: PeakRule,
): { peak: number; peakT: number; certified: boolean; stageCertified: boolean | null } | undefined {
  let best: { peak: number; peakT: number } | undefined
  for (const r of run.rows)
    if (r.t >= rule.tMin && r.lambda1 !== null && (best === undefined || r.lambda1 > best.peak)) best = { peak: r.lambda1, peakT: r.t }
  if (best === undefined) return undefined
  const last = run.rows[run.rows.length - 1]!
  const lastLambda = [...run.rows].reverse().find((r) => r.lambda1 !== null)?.lambda1 ?? best.peak
  const certified = last.loss < rule.certLoss || lastLambda <= (1 - rule.certDrop) * best.peak
  return { ...best, certified, stageCertified: run.peakCertified }
}

/** Peak lambda_1 against n_D for the gradient-flow runs of one activation (certified runs only in the points). */
export function peakSeries(flows: readonly RunTelemetry[], activation: string, rule: PeakRule): PeakSeries {
  const runs: RunPeak[] = []
  for (const f of flows) {
    if (f.activation !== activation || f.nData === null) continue
    const p = runPeak(f, rule)
    if (p !== undefined) runs.push({ instance: f.instance, nData: f.nData, seed: f.seed, ...p })
  }
  const bySize = new Map<number, RunPeak[]>()
  for (const r of runs) if (r.certified) bySize.set(r.nData, [...(bySize.get(r.nData) ?? []), r])
  const points = [...bySize.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([nData, rs]) => ({
      nData,
      peakMean: mean(rs.map((r) => r.peak)),
      peakSum: nData * mean(rs.map((r) => r.peak)),
      peaks: rs.map((r) => r.peak),
      instances: rs.map((r) => r.instance).sort(),
    }))
  const xs = points.map((p) => p.nData)
  return {
    activation,
    runs,
    points,
    fitMean: linearFit(
      xs,
      points.map((p) => p.peakMean),
    ),
    fitSum: linearFit(
      xs,
      points.map((p) => p.peakSum),
    ),
  }
}

/** max_n | ||theta_n|| - ||theta_0|| | / ||theta_0|| over a run's logged rows; undefined without rows. */
export function thetaRelChange(run: RunTelemetry): number | undefined {
  const first = run.rows[0]
  if (first === undefined || !(first.thetaNorm > 0)) return undefined
  let m = 0
  for (const r of run.rows) if (Number.isFinite(r.thetaNorm)) m = Math.max(m, Math.abs(r.thetaNorm - first.thetaNorm) / first.thetaNorm)
  return m
}

/** The symmetric part s(d) = (c(d) + c(-d)) / 2 at each d > 0 that has both signs (the odd, gradient term cancels). */
export function symmetricChanges(scan: Pick<ScanRecord, 'deltas' | 'changes'>): { d: number; s: number }[] {
  const at = new Map<number, number>()
  scan.deltas.forEach((d, i) => {
    const c = scan.changes[i]
    if (c !== null && c !== undefined && Number.isFinite(c)) at.set(d, c)
  })
  return [...at.keys()]
    .filter((d) => d > 0 && at.has(-d))
    .sort((a, b) => a - b)
    .map((d) => ({ d, s: (at.get(d)! + at.get(-d)!) / 2 }))
}

/**
 * The cusp exponent p of s(d) ~ a d^p: least squares of log s on log d over the d with s above the
 * scan's loss resolution (0 when it has none: changes below it are float32 noise), with
 * the slope's t interval at `level`. Undefined with fewer than 3 usable points.
 */
export function cuspExponent(
  scan: Pick<ScanRecord, 'deltas' | 'changes'> & { lossResolution?: number | null },
  level: number,
): (SlopeInterval & { points: number }) | undefined {
  const floor = scan.lossResolution ?? 0
  const pts = symmetricChanges(scan).filter((x) => x.s > floor)
  if (pts.length < 3) return undefined
  const f = slopeInterval(
    pts.map((x) => Math.log(x.d)),
    pts.map((x) => Math.log(x.s)),
    level,
  )
  return { ...f, points: pts.length }
}

/**
 * Cusp sharpness kappa of a scan (kept beside the exponent for continuity with earlier audits): the
 * mean curvature s(d) / d^2 at the smallest |Delta| over the same at the largest. A parabola gives 1,
 * |Delta|^p gives (d_max / d_min)^(2-p). Undefined without two symmetric pairs or a positive outer curvature.
 */
export function cuspSharpness(scan: Pick<ScanRecord, 'deltas' | 'changes'>): number | undefined {
  const pts = symmetricChanges(scan)
  if (pts.length < 2) return undefined
  const inner = pts[0]!.s / pts[0]!.d ** 2
  const outer = pts[pts.length - 1]!.s / pts[pts.length - 1]!.d ** 2
  if (!(outer > 0)) return undefined
  return inner / outer
}
