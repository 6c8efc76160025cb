/**
 * The few statistics the report and the audit need, in float64 over plain arrays: mean, sample
 * standard deviation, ordinary least squares y = a + b x with its coefficient of determination R^2,
 * and a monotonicity check. Pure and dependency-free so each is checked against a hand-worked
 * oracle (test/report/stats.test.ts).
 */

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
