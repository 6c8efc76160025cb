/**
 * C4 (paper §5.4, Figures 5-6): a singularity forms as the dataset grows. Central test: peak
 * lambda_1 of the certified gradient-flow runs of `activation` rises linearly with n_D (seeds of a
 * size pooled into their mean): at least min_sizes sizes, slope > 0 with its interval above 0, and
 * R^2 >= r2_min (R^2 is never shown for fewer than min_sizes sizes: a line through two points fits
 * exactly). R^2's interval: a seeded bootstrap over the runs of each size. Side checks beside it:
 * ||theta|| nearly constant over the gradient-flow runs (not the gradient-descent runs: §5.4 speaks
 * of the flow), and the cusp scan's exponent for `activation` against the `control_activation`
 * scan (a ReLU kink gives p = 1, a smooth minimum p = 2, a singularity p < 1).
 */
import type { JsonObject } from '../harness/types.ts'
import { numParam } from './claims.ts'
import { cuspExponent, peakSeries, thetaRelChange, type PeakSeries } from './singularity.ts'
import { bootstrapInterval, fmt, linearFit, mean, slopeInterval, tQuantile } from './stats.ts'
import { jnum, verdictOf, type Check, type ClaimVerdict, type JudgeInput, type Verdict } from './claim-verdict.ts'

const strParam = (inp: JudgeInput, name: string): string => {
  const v = inp.claim.params[name]
  if (typeof v !== 'string') throw new Error(`claims.yaml ${inp.claim.id}: params.${name} must be a string`)
  return v
}

/** R^2 of the per-size means with a bootstrap interval (runs of each size resampled with replacement). */
export function r2Interval(s: PeakSeries, opts: { resamples: number; seed: string; level: number }): { lo: number; hi: number } {
  const xs = s.points.map((p) => p.nData)
  const b = bootstrapInterval((rng) => {
    const ys = s.points.map((p) => mean(p.peaks.map(() => p.peaks[Math.floor(rng() * p.peaks.length)]!)))
    return linearFit(xs, ys).r2
  }, opts)
  return { lo: b.lo, hi: b.hi }
}

export function judgeC4(inp: JudgeInput): ClaimVerdict {
  const { claim, results: r, level } = inp
  const activation = strParam(inp, 'activation')
  const control = strParam(inp, 'control_activation')
  const minSizes = numParam(claim, 'min_sizes')
  const r2Min = numParam(claim, 'r2_min')
  const thetaMax = numParam(claim, 'theta_rel_max')
  const rule = { tMin: inp.transient.t_min, certLoss: numParam(claim, 'cert_loss'), certDrop: numParam(claim, 'cert_drop') }
  const boot = { resamples: numParam(claim, 'bootstrap_resamples'), seed: `${claim.id}:${numParam(claim, 'bootstrap_seed')}`, level }
  const s = peakSeries(r.flows, activation, rule)
  const uncertified = s.runs.filter((x) => !x.certified)
  const certified = s.runs.filter((x) => x.certified)
  const disagree = s.runs.filter((x) => x.stageCertified !== null && x.stageCertified !== x.certified)
  const sizes = s.points.map((p) => p.nData)
  const seedsPer = s.points.map((p) => p.peaks.length)
  const shown = s.points.length >= minSizes
  const slope = slopeInterval(
    certified.map((x) => x.nData),
    certified.map((x) => x.peak),
    level,
  )
  const r2 = shown ? r2Interval(s, boot) : { lo: NaN, hi: NaN }
  const r2Text = `R^2 = ${fmt(s.fitMean.r2)} [${fmt(r2.lo)}, ${fmt(r2.hi)}] (mean-reduced; sum-reduced ${fmt(s.fitSum.r2)}), slope ${fmt(s.fitMean.slope)} [${fmt(slope.lo)}, ${fmt(slope.hi)}] per example over n_D = ${sizes.join(', ')} (${seedsPer.join('/')} seeds)`
  let verdict: Verdict
  let detail: string
  if (!shown) {
    verdict = 'inconclusive'
    detail = `only ${s.points.length} dataset size(s)${sizes.length > 0 ? ` (n_D = ${sizes.join(', ')})` : ''} with certified ${activation} gradient-flow runs; needs ${minSizes} (a line through 2 points has R^2 = 1, so none is shown)${uncertified.length > 0 ? `; ${uncertified.length} run(s) not certified past their peak` : ''}`
  } else if (s.fitMean.slope > 0 && s.fitMean.r2 >= r2Min && slope.lo > 0) {
    verdict = 'supported'
    detail = r2Text
  } else if (s.fitMean.slope <= 0 || s.fitMean.r2 < r2Min) {
    verdict = 'not supported'
    detail = `${r2Text} (needs slope > 0 and R^2 >= ${r2Min})`
  } else {
    verdict = 'inconclusive'
    detail = `${r2Text}: the slope's interval includes 0`
  }
  const central: Check = { name: 'peak lambda_1 vs n_D', role: 'central', verdict, detail }

  // ||theta|| over the gradient-flow runs only.
  const rel = r.flows
    .map((f) => ({ instance: f.instance, value: thetaRelChange(f) }))
    .filter((x): x is { instance: string; value: number } => x.value !== undefined)
  const worst = rel.reduce<{ instance: string; value: number } | undefined>(
    (w, x) => (w === undefined || x.value > w.value ? x : w),
    undefined,
  )
  const thetaText =
    worst === undefined ? '' : `max relative change ${fmt(worst.value * 100, 3)}% (${worst.instance}) over ${rel.length} gradient-flow runs`
  const theta: Check =
    worst === undefined
      ? { name: '||theta||', role: 'side', verdict: 'inconclusive', detail: 'no gradient-flow telemetry with ||theta||' }
      : {
          name: '||theta||',
          role: 'side',
          verdict: worst.value < thetaMax ? 'supported' : 'not supported',
          detail: worst.value < thetaMax ? thetaText : `${thetaText} (needs < ${thetaMax * 100}%)`,
        }

  // The cusp exponent, ReLU against the tanh control.
  const exps = r.scans
    .map((x) => ({ activation: x.activation, nData: x.nData, instance: x.instance, e: cuspExponent(x, level) }))
    .sort((a, b) => a.nData - b.nData)
  // Seeds of one size pooled: the mean exponent, with the union of the seeds' intervals.
  const of = (a: string) => {
    const bySize = new Map<number, { slope: number; lo: number; hi: number }[]>()
    for (const x of exps) if (x.activation === a && x.e !== undefined) bySize.set(x.nData, [...(bySize.get(x.nData) ?? []), x.e])
    return [...bySize]
      .sort((p, q) => p[0] - q[0])
      .map(([nData, es]) => ({
        nData,
        seeds: es.length,
        slope: mean(es.map((e) => e.slope)),
        lo: Math.min(...es.map((e) => e.lo)),
        hi: Math.max(...es.map((e) => e.hi)),
      }))
  }
  const main = of(activation)
  const ctl = of(control)
  const eText = (xs: ReturnType<typeof of>) =>
    xs
      .map((x) => `p(${x.nData}) = ${fmt(x.slope, 3)} [${fmt(x.lo, 3)}, ${fmt(x.hi, 3)}]${x.seeds > 1 ? ` (${x.seeds} seeds)` : ''}`)
      .join(', ')
  const cuspText = `${activation}: ${eText(main) || 'none'}; ${control} control: ${eText(ctl) || 'none'}`
  let cv: Verdict = 'inconclusive'
  let cd = `${cuspText}: needs ${activation} scans at >= 2 sizes and a ${control} control`
  if (main.length >= 2 && ctl.length >= 1) {
    const big = main[main.length - 1]!
    const small = main[0]!
    const ctlBig = ctl[ctl.length - 1]!
    const sharper = big.hi < ctlBig.lo
    // Falls: the largest n_D's interval lies wholly below the smallest's (a drop inside the intervals is not a trend).
    const falls = big.hi < small.lo
    cv = sharper && falls ? 'supported' : 'not supported'
    cd = `${cuspText}: ${activation} ${sharper ? 'sharper than' : 'not sharper than'} the control at the largest n_D, exponent ${falls ? 'falls' : 'does not fall'} with n_D${big.hi < 1 ? ' (p < 1: a singularity in the sense of Definition 3.1)' : big.lo <= 1 ? ' (p ~ 1 is a kink, which Definition 3.1 excludes)' : ''}`
  }
  const cusp: Check = { name: 'cusp exponent', role: 'side', verdict: cv, detail: cd }

  const df = certified.length - 2
  const detectableSlope =
    df >= 1 && Number.isFinite(slope.se) ? (tQuantile(1 - (1 - level) / 2, df) + tQuantile(inp.power, df)) * slope.se : NaN
  const power = !shown
    ? `${s.points.length} size(s) of ${activation} runs: no regression is shown below ${minSizes} sizes, so the design could not test the claim`
    : `with ${s.points.length} sizes (n_D ${sizes[0]}-${sizes[sizes.length - 1]}) and ${certified.length} certified runs, a slope of peak lambda_1 above ${fmt(detectableSlope)} per example would be detected (alpha = ${fmt(1 - level)}, power ${inp.power}); R^2's interval comes from ${boot.resamples} seeded bootstrap resamples of the runs of each size`
  const limits = [
    ...(seedsPer.some((n) => n < 2)
      ? ['a size with one seed has no seed spread: the bootstrap interval of R^2 understates the uncertainty']
      : []),
    ...(uncertified.length > 0
      ? [
          `${uncertified.length} run(s) not certified past their peak (last loss >= ${rule.certLoss} and lambda_1 less than ${rule.certDrop * 100}% below its maximum): left out of the fit (${uncertified.map((x) => x.instance).join(', ')})`,
        ]
      : []),
    ...(disagree.length > 0
      ? [
          `${disagree.length} run(s) where the train stage's own stop flag disagrees with claims.yaml's rule (which decides): ${disagree.map((x) => `${x.instance} stage ${x.stageCertified ? 'certified' : 'not certified'}, rule ${x.certified ? 'certified' : 'not certified'}`).join('; ')}`,
        ]
      : []),
    `peak lambda_1 is taken at logged rows with t >= ${rule.tMin}; a peak between logged rows is underestimated`,
    'a finite network on a finite dataset has finite curvature: linear growth over the sizes measured is evidence for, not proof of, a singularity as n_D grows',
  ]
  const ours = `${shown ? r2Text : `${s.points.length} size(s)`}; ||theta|| max change ${worst === undefined ? 'n/a' : `${fmt(worst.value * 100, 3)}%`}; cusp ${cuspText}`
  const measured: JsonObject = {
    min_sizes: minSizes,
    r2_shown: shown,
    peaks: s.points.map((p) => ({ n_data: p.nData, peak_lambda_1: p.peakMean, seeds: p.peaks.length, peaks: p.peaks })),
    runs: s.runs.map((x) => ({
      instance: x.instance,
      n_data: x.nData,
      seed: x.seed,
      peak: x.peak,
      peak_t: x.peakT,
      certified: x.certified,
      stage_certified: x.stageCertified,
    })),
    r2_mean: shown ? jnum(s.fitMean.r2) : null,
    r2_lo: shown ? jnum(r2.lo) : null,
    r2_hi: shown ? jnum(r2.hi) : null,
    r2_sum: shown ? jnum(s.fitSum.r2) : null,
    slope_mean: shown ? jnum(s.fitMean.slope) : null,
    intercept_mean: shown ? jnum(s.fitMean.intercept) : null,
    slope_lo: shown ? jnum(slope.lo) : null,
    slope_hi: shown ? jnum(slope.hi) : null,
    theta_rel_change_max: worst?.value ?? null,
    cusp_exponent: exps.map((x) => ({
      activation: x.activation,
      n_data: x.nData,
      p: jnum(x.e?.slope),
      p_lo: jnum(x.e?.lo),
      p_hi: jnum(x.e?.hi),
    })),
  }
  return verdictOf(claim, central, [theta, cusp], {
    central: claim.test,
    power,
    limits,
    ours,
    measured,
    instances: [...s.points.flatMap((p) => p.instances), ...exps.map((x) => x.instance), ...rel.map((x) => x.instance)],
  })
}
