/**
 * The few statistics the report and the audit need, in float64 over plain arrays: mean, sample
 * standard deviation, ordinary least squares y = a + b x with its coefficient of determination R^2,
 * and a monotonicity check, each checked against a hand-worked or scipy oracle
 * (test/report/table1.test.ts, test/report/stats.test.ts). Also the interval estimates the
 * audit states beside each number: Student t intervals and the smallest detectable mean (t quantiles
 * from jStat), least-squares slope intervals, a seeded percentile bootstrap, and the Poisson-binomial
 * tail behind C2's chance-coincidence null.
 */
import jstat from 'jstat'
import seedrandom from 'seedrandom'

const { jStat } = jstat

/** Arithmetic mean; NaN for an empty list. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  let s = 0
  for (const x of xs) s += x
  return s / xs.length
}

/**
 * Sample standard deviation (divisor n - 1, as numpy's `std(ddof=1)`); 0 for one value, NaN for none.
 * Table 1 reports the spread of a handful of probes, so the unbiased variance is the honest one.
 */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  if (xs.length === 1) return 0
  const m = mean(xs)
  let s = 0
  for (const x of xs) s += (x - m) ** 2
  return Math.sqrt(s / (xs.length - 1))
}

/** An ordinary least-squares line and how well it fits. */
export interface LinearFit {
  intercept: number
  slope: number
  /** 1 - SS_res / SS_tot; NaN when y is constant or there are fewer than 2 points. */
  r2: number
  n: number
}

/** Least squares y = intercept + slope * x (paper §5.4: peak λ_1 against n_D). */
export function linearFit(xs: readonly number[], ys: readonly number[]): LinearFit {
  if (xs.length !== ys.length) throw new Error(`linearFit: ${xs.length} x values but ${ys.length} y values`)
  const n = xs.length
  if (n < 2) return { intercept: NaN, slope: NaN, r2: NaN, n }
  const mx = mean(xs)
  const my = mean(ys)
  let sxx = 0
  let sxy = 0
  let syy = 0
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx
    const dy = ys[i]! - my
    sxx += dx * dx
    sxy += dx * dy
    syy += dy * dy
  }
  if (sxx === 0) return { intercept: NaN, slope: NaN, r2: NaN, n }
  const slope = sxy / sxx
  const intercept = my - slope * mx
  let ssRes = 0
  for (let i = 0; i < n; i++) ssRes += (ys[i]! - (intercept + slope * xs[i]!)) ** 2
  const r2 = syy === 0 ? NaN : 1 - ssRes / syy
  return { intercept, slope, r2, n }
}

/** True when ys is strictly increasing (each value above the one before). */
export function strictlyIncreasing(ys: readonly number[]): boolean {
  for (let i = 1; i < ys.length; i++) if (!(ys[i]! > ys[i - 1]!)) return false
  return true
}

/** A number for humans: 4 significant digits, exponent form for very large or small magnitudes. */
export function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || Number.isNaN(x)) return 'n/a'
  if (x === 0) return '0'
  const a = Math.abs(x)
  if (a >= 1e5 || a < 1e-4) return x.toExponential(digits - 1)
  return Number(x.toPrecision(digits)).toString()
}

/** Student's t quantile: the x with P(T_df <= x) = p (jStat's inverse CDF; df > 0). */
export function tQuantile(p: number, df: number): number {
  return jStat.studentt.inv(p, df)
}

/** A mean with its two-sided t confidence interval (NaN bounds for fewer than 2 values). */
export interface MeanInterval {
  mean: number
  sd: number
  n: number
  lo: number
  hi: number
  level: number
}

/** The mean of xs with a two-sided t interval at `level` (e.g. 0.95). */
export function tInterval(xs: readonly number[], level: number): MeanInterval {
  const n = xs.length
  const m = mean(xs)
  const sd = sampleStd(xs)
  if (n < 2) return { mean: m, sd, n, lo: NaN, hi: NaN, level }
  const half = (tQuantile(1 - (1 - level) / 2, n - 1) * sd) / Math.sqrt(n)
  return { mean: m, sd, n, lo: m - half, hi: m + half, level }
}

/**
 * The smallest true mean (in absolute value) that a two-sided t test at significance `alpha` on n
 * values with standard deviation sd detects with probability `power`: (t_{1-alpha/2} + t_power) sd / sqrt(n),
 * both with n - 1 degrees of freedom (the usual normal-theory approximation). NaN for n < 2.
 */
export function detectableMean(sd: number, n: number, alpha: number, power: number): number {
  if (n < 2 || !Number.isFinite(sd)) return NaN
  return ((tQuantile(1 - alpha / 2, n - 1) + tQuantile(power, n - 1)) * sd) / Math.sqrt(n)
}

/** A least-squares slope with its standard error and two-sided t interval (df = n - 2). */
export interface SlopeInterval extends LinearFit {
  se: number
  lo: number
  hi: number
}

/** linearFit plus the slope's t interval at `level`; NaN bounds for fewer than 3 points. */
export function slopeInterval(xs: readonly number[], ys: readonly number[], level: number): SlopeInterval {
  const f = linearFit(xs, ys)
  const n = xs.length
  if (n < 3 || !Number.isFinite(f.slope)) return { ...f, se: NaN, lo: NaN, hi: NaN }
  const mx = mean(xs)
  let sxx = 0
  let ssRes = 0
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2
    ssRes += (ys[i]! - (f.intercept + f.slope * xs[i]!)) ** 2
  }
  const se = Math.sqrt(ssRes / (n - 2) / sxx)
  const half = tQuantile(1 - (1 - level) / 2, n - 2) * se
  return { ...f, se, lo: f.slope - half, hi: f.slope + half }
}

/** A seeded uniform [0, 1) generator (seedrandom's ARC4): the same seed gives the same sequence. */
export function seededRandom(seed: string): () => number {
  return seedrandom(seed)
}

/** The empirical quantile q of xs (linear interpolation between order statistics, as numpy's default). */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const pos = (s.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo)
}

/**
 * A percentile bootstrap interval of a statistic: `resample(rng)` draws one resample and returns the
 * statistic on it (non-finite values are dropped); seeded, so the interval is the same on every run.
 */
export function bootstrapInterval(
  resample: (rng: () => number) => number,
  opts: { resamples: number; seed: string; level: number },
): { lo: number; hi: number; kept: number } {
  const rng = seededRandom(opts.seed)
  const stats: number[] = []
  for (let b = 0; b < opts.resamples; b++) {
    const v = resample(rng)
    if (Number.isFinite(v)) stats.push(v)
  }
  const a = (1 - opts.level) / 2
  return { lo: quantile(stats, a), hi: quantile(stats, 1 - a), kept: stats.length }
}

/** P(X >= k) for X a sum of independent Bernoulli(p_i) (Poisson-binomial), exactly by dynamic programming. */
export function poissonBinomialTail(ps: readonly number[], k: number): number {
  let dist = [1]
  for (const p of ps) {
    const next = new Array<number>(dist.length + 1).fill(0)
    dist.forEach((q, j) => {
      next[j] = next[j]! + q * (1 - p)
      next[j + 1] = next[j + 1]! + q * p
    })
    dist = next
  }
  let tail = 0
  for (let j = Math.max(0, k); j < dist.length; j++) tail += dist[j]!
  return Math.min(1, tail)
}
