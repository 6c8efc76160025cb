/**
 * C1 (paper §5.1, Figures 1-2): training is on the edge of stability across n_c - 1 eigenvectors.
 * Central test, per run (each seed its own run) at each architecture's smallest eta and for each
 * class count, over the probes after the initial transient: rho_{n_c-1} reaches rho_top_min while
 * rho_{n_c} stays <= rho_bulk_max (the paper's own numbers: "rho_9 always reaches at least 0.693,
 * rho_10 never exceeds 0.246"). Reported with it: the edge-set size #{i : rho_i >= rho_top_min}
 * against n_c - 1 and the gap rho_{n_c-1}/rho_{n_c}. Side check: across the eta span at fixed
 * architecture, rho_{n_c} falls with eta (log-log slope) while rho_{n_c-1} stays at the edge.
 */
import type { JsonObject } from '../harness/types.ts'
import { numParam } from './claims.ts'
import type { ProbeRecord } from './records.ts'
import { fmt, linearFit } from './stats.ts'
import { rhoBulkFirst, rhoTopLast } from './table1.ts'
import { groupBy, jnum, verdictOf, type Check, type ClaimVerdict, type JudgeInput, type Verdict } from './claim-verdict.ts'

/** One run's edge: the largest rho_{n_c-1} and rho_{n_c} after the transient, the edge set, the gap. */
export interface RunEdge {
  label: string
  series: string
  nc: number
  probes: number
  k: number
  topMax: number | undefined
  bulkMax: number | undefined
  /** max over probes of #{i : rho_i >= threshold}. */
  edgeSet: number
  /** rho_{n_c-1}/rho_{n_c} at the probe where rho_{n_c-1} is largest. */
  gap: number | undefined
  /** max rho_1: below the edge threshold, the run never reached the edge of stability at all. */
  rho1Max: number | undefined
  /** How far rho_{n_c-1} and rho_{n_c} may be off: eta/2 x the Lanczos residual, the largest over the probes. */
  topErr: number | undefined
  bulkErr: number | undefined
  instances: string[]
}

const maxOf = (xs: readonly (number | undefined)[]): number | undefined => {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x))
  return v.length === 0 ? undefined : Math.max(...v)
}

/**
 * The largest eta/2 x ||H h_i - lambda_i h_i|| over `ps` at rank index `i`: a symmetric matrix has an
 * eigenvalue within the residual of each Ritz value, so this bounds how far the reported rho_(i+1)
 * may be from one. Undefined when a probe did not write its residuals.
 */
function rhoErr(ps: readonly ProbeRecord[], i: number): number | undefined {
  const errs = ps.map((p) => {
    const r = p.residuals?.[i]
    return r === undefined || !Number.isFinite(r) ? undefined : (p.eta * Math.abs(r)) / 2
  })
  return errs.some((e) => e === undefined) ? undefined : maxOf(errs)
}

/** `x` with its bound when known: "0.107 ± 0.0011". */
const withErr = (x: number | undefined, err: number | undefined): string =>
  err === undefined || x === undefined ? fmt(x) : `${fmt(x)} ± ${fmt(err, 2)}`

/** The edge of one run's (post-transient) probes. */
export function runEdge(label: string, ps: readonly ProbeRecord[], threshold: number): RunEdge {
  const nc = ps[0]!.classes
  const topMax = maxOf(ps.map(rhoTopLast))
  const bulkMax = maxOf(ps.map(rhoBulkFirst))
  const at = ps.find((p) => rhoTopLast(p) === topMax)
  const b = at === undefined ? undefined : rhoBulkFirst(at)
  return {
    label,
    series: ps[0]!.series,
    nc,
    probes: ps.length,
    k: Math.min(...ps.map((p) => p.rho.length)),
    topMax,
    bulkMax,
    edgeSet: Math.max(0, ...ps.map((p) => p.rho.filter((x) => x >= threshold).length)),
    gap: topMax !== undefined && b !== undefined && b > 0 ? topMax / b : undefined,
    rho1Max: maxOf(ps.map((p) => p.rho[0])),
    topErr: nc >= 2 ? rhoErr(ps, nc - 2) : undefined,
    bulkErr: rhoErr(ps, nc - 1),
    instances: ps.map((p) => p.instance),
  }
}

function judgeRun(e: RunEdge, topMin: number, bulkMaxAllowed: number, minProbes: number): Verdict {
  if (e.topMax === undefined || e.bulkMax === undefined || e.probes < minProbes) return 'inconclusive'
  return e.topMax >= topMin && e.bulkMax <= bulkMaxAllowed ? 'supported' : 'not supported'
}

/** ", max rho_1 = x" when rho_1 is not already the top's last, flagged when it never reached the edge. */
function rho1Text(e: RunEdge, threshold: number): string {
  if (e.rho1Max === undefined) return ''
  const never = e.rho1Max < threshold ? ' (never at the edge: even rho_1 stays below it)' : ''
  return e.nc > 2 ? `, max rho_1 = ${fmt(e.rho1Max)}${never}` : never
}

function describe(e: RunEdge, v: Verdict, minProbes: number, threshold: number): string {
  if (e.topMax === undefined || e.bulkMax === undefined) return `${e.label}: rho_${e.nc} not measured (k = ${e.k} < n_c = ${e.nc})`
  const s = `${e.label}: max rho_${e.nc - 1} = ${fmt(e.topMax)}, max rho_${e.nc} = ${fmt(e.bulkMax)}${rho1Text(e, threshold)}, edge set ${e.edgeSet >= e.k ? `>= ${e.k} (every measured eigenvalue)` : e.edgeSet} vs n_c - 1 = ${e.nc - 1}, gap ${fmt(e.gap, 3)}x over ${e.probes} probes`
  return v === 'inconclusive' ? `${s} (too few probes after the transient: needs ${minProbes})` : s
}

export function judgeC1(inp: JudgeInput): ClaimVerdict {
  const { claim, results: r } = inp
  const topMin = numParam(claim, 'rho_top_min')
  const bulkMaxAllowed = numParam(claim, 'rho_bulk_max')
  const minProbes = numParam(claim, 'min_probes')
  const spanMin = numParam(claim, 'eta_span_min')
  const bulkSlopeMin = numParam(claim, 'span_bulk_slope_min')
  const topSlopeMax = numParam(claim, 'span_top_slope_max')
  const runs: { e: RunEdge; v: Verdict }[] = []
  const grid = r.probes.filter((p) => p.role === 'grid')
  const byArch = groupBy(grid, (p) => `${p.arch}-${p.activation}`)
  const spanChecks: Check[] = []
  const spans: JsonObject[] = []
  for (const [arch, ps] of [...byArch].sort()) {
    const etas = [...new Set(ps.map((p) => p.eta))].sort((a, b) => a - b)
    for (const [, s] of groupBy(
      ps.filter((p) => p.eta === etas[0]),
      (p) => p.series,
    )) {
      const e = runEdge(`${arch} eta=${etas[0]}${s[0]!.seed !== null ? ` seed=${s[0]!.seed}` : ''}`, s, topMin)
      runs.push({ e, v: judgeRun(e, topMin, bulkMaxAllowed, minProbes) })
    }
    // Side check: the eta span (max over each eta's runs).
    const pts = etas.map((eta) => ({
      eta,
      e: runEdge(
        `${arch} eta=${eta}`,
        ps.filter((p) => p.eta === eta),
        topMin,
      ),
    }))
    const ok = pts.filter(({ e }) => e.topMax !== undefined && e.bulkMax !== undefined && e.topMax > 0 && e.bulkMax > 0)
    const span = etas.length > 0 ? etas[etas.length - 1]! / etas[0]! : 1
    const lx = ok.map((p) => Math.log(p.eta))
    const bulkSlope = linearFit(
      lx,
      ok.map((p) => Math.log(p.e.bulkMax!)),
    ).slope
    const topSlope = linearFit(
      lx,
      ok.map((p) => Math.log(p.e.topMax!)),
    ).slope
    spans.push({
      arch,
      etas,
      span,
      bulk_slope: jnum(bulkSlope),
      top_slope: jnum(topSlope),
      rho_bulk_max: ok.map((p) => p.e.bulkMax!),
      rho_top_max: ok.map((p) => p.e.topMax!),
    })
    const text = `eta ${etas.join(', ')} (span ${fmt(span, 3)}x): d log rho_n_c / d log eta = ${fmt(bulkSlope, 3)} (an eta-independent bulk eigenvalue gives 1), d log rho_(n_c-1) / d log eta = ${fmt(topSlope, 3)} (at the edge: 0)`
    let v: Verdict
    if (ok.length < 2 || span < spanMin) v = 'inconclusive'
    else v = bulkSlope >= bulkSlopeMin && Math.abs(topSlope) <= topSlopeMax ? 'supported' : 'not supported'
    spanChecks.push({
      name: `eta span ${arch}`,
      role: 'side',
      verdict: v,
      detail:
        v === 'inconclusive'
          ? `${text}: needs >= 2 eta with both measured and a span >= ${spanMin}x`
          : v === 'supported'
            ? text
            : `${text} (needs >= ${bulkSlopeMin} and |.| <= ${topSlopeMax})`,
    })
  }
  const cls = r.probes.filter((p) => p.role === 'classes')
  for (const [, s] of [...groupBy(cls, (p) => p.series)].sort((a, b) => a[1][0]!.classes - b[1][0]!.classes)) {
    // n_D in the label: class runs of one n_c at different images per class are different settings.
    const nD = s[0]!.nData !== null ? ` n_D=${s[0]!.nData}` : ''
    const e = runEdge(`${s[0]!.classes} classes${nD}${s[0]!.seed !== null ? ` seed=${s[0]!.seed}` : ''}`, s, topMin)
    runs.push({ e, v: judgeRun(e, topMin, bulkMaxAllowed, minProbes) })
  }
  const failing = runs.filter((x) => x.v === 'not supported')
  const open = runs.filter((x) => x.v === 'inconclusive')
  const text = runs.map((x) => describe(x.e, x.v, minProbes, topMin))
  let verdict: Verdict
  let detail: string
  if (grid.length === 0 || cls.length === 0) {
    verdict = 'inconclusive'
    detail = [
      grid.length === 0 ? 'no main-grid probes after the transient' : '',
      cls.length === 0 ? 'no class-count probes after the transient' : '',
      ...text,
    ]
      .filter((x) => x !== '')
      .join('; ')
  } else if (failing.length > 0) {
    verdict = 'not supported'
    detail = `${failing.length}/${runs.length} runs fail (needs max rho_(n_c-1) >= ${topMin} and max rho_n_c <= ${bulkMaxAllowed}): ${failing.map((x) => describe(x.e, x.v, minProbes, topMin)).join('; ')}`
  } else if (open.length > 0) {
    verdict = 'inconclusive'
    detail = `${open.length}/${runs.length} runs cannot be judged: ${open.map((x) => describe(x.e, x.v, minProbes, topMin)).join('; ')}`
  } else {
    verdict = 'supported'
    detail = `${runs.length}/${runs.length} runs: ${text.join('; ')}`
  }
  const central: Check = { name: 'edge set = n_c - 1', role: 'central', verdict, detail }
  const ks = runs.map((x) => x.e.k)
  const probeCounts = runs.map((x) => x.e.probes)
  const spanWords = spans.map((s) => {
    const span = s.span as number
    const can = span >= 1 / bulkMaxAllowed
    return `${s.arch as string}: eta span ${fmt(span, 3)}x, so a bulk eigenvalue that does not move with eta and sits at the edge at the largest eta (rho_n_c ~ 1) would read ~${fmt(1 / span, 3)} at the smallest: ${can ? 'below' : 'not below'} rho_bulk_max = ${bulkMaxAllowed}, so this span ${can ? 'can' : 'cannot'} tell an eta-independent bulk from one that follows 2/eta (needs >= ${fmt(1 / bulkMaxAllowed, 3)}x)`
  })
  const power = [
    runs.length > 0
      ? `${runs.length} runs judged, each with ${Math.min(...probeCounts) === Math.max(...probeCounts) ? Math.min(...probeCounts) : `${Math.min(...probeCounts)}-${Math.max(...probeCounts)}`} probes after the transient; the edge set is counted up to each run's k = ${Math.min(...ks) === Math.max(...ks) ? Math.min(...ks) : `${Math.min(...ks)}-${Math.max(...ks)}`} measured eigenvalues (a run with k < n_c - 1 cannot show a full edge set)`
      : 'no run could be judged',
    ...spanWords,
  ].join('; ')
  const tMax = Math.max(0, ...runs.flatMap((x) => r.probes.filter((p) => p.series === x.e.series).map((p) => p.t)))
  const limits = [
    `runs are probed up to t = ${fmt(tMax, 3)} (the paper: up to t = 40 or loss < 0.1); an edge reached later is not seen`,
    'rho_n_c above rho_bulk_max between two probes is not seen (the maximum is over probed checkpoints only)',
    "eigenvalues are Lanczos estimates: each rho is given ± eta/2 x its Lanczos residual (the largest over the run's probes), and a value within that of a threshold is not resolved; the seed-to-seed spread, where a setting has several seeds, is not folded in",
    `a run with k < n_c eigenvalues cannot show rho_n_c`,
    // A setting is a run's label less its seed; one with a single run has no seed spread.
    ...([...groupBy(runs, (x) => x.e.label.replace(/ seed=\S+$/, '')).values()].some((g) => g.length < 2)
      ? ['one seed per setting: no seed-to-seed spread of rho']
      : []),
  ]
  const ours =
    runs
      .map(
        (x) =>
          `${x.e.label}: rho_${x.e.nc - 1} ${withErr(x.e.topMax, x.e.topErr)}, rho_${x.e.nc} ${withErr(x.e.bulkMax, x.e.bulkErr)}, edge set ${x.e.edgeSet}/${x.e.nc - 1}`,
      )
      .join('; ') || 'n/a'
  const measured: JsonObject = {
    runs: runs.map(({ e, v }) => ({
      label: e.label,
      series: e.series,
      n_c: e.nc,
      probes: e.probes,
      k: e.k,
      rho_top_max: jnum(e.topMax),
      rho_bulk_max: jnum(e.bulkMax),
      rho_1_max: jnum(e.rho1Max),
      rho_top_err: jnum(e.topErr),
      rho_bulk_err: jnum(e.bulkErr),
      edge_set: e.edgeSet,
      gap: jnum(e.gap),
      verdict: v,
    })),
    eta_span: spans,
    transient_excluded: inp.excluded.filter((x) => !x.series.includes('dense')).length,
  }
  return verdictOf(claim, central, spanChecks, {
    central: claim.test,
    power,
    limits,
    ours,
    measured,
    instances: runs.flatMap((x) => x.e.instances),
  })
}
