/**
 * The claims audit's verdict logic: measured stage results + a claim's test thresholds (claims.yaml)
 * -> supported / not supported / inconclusive, with the reason, our number beside the paper's, and
 * the instances it was measured on. Each claim is decided by checks; a claim's verdict is the worst
 * of its checks (not supported > inconclusive > supported), its reason the deciding checks' details.
 * Nothing here is written by hand per run: tests feed synthetic results that flip every verdict.
 * C1: §5.1 (Figures 1-2); C2: §5.2 (Figure 4); C3: §5.3 (Table 1); C4: §5.4 (Figures 5-6).
 */
import type { JsonObject } from '../harness/types.ts'
import { numParam, type Claim } from './claims.ts'
import type { ProbeRecord, StageResults } from './records.ts'
import { cuspSharpness, peakSeries, thetaRelChange } from './singularity.ts'
import { fmt, strictlyIncreasing } from './stats.ts'
import { computeTable1, rhoBulkFirst, rhoTopLast } from './table1.ts'

export type Verdict = 'supported' | 'not supported' | 'inconclusive'

/** One deciding check of a claim. */
export interface Check {
  name: string
  verdict: Verdict
  detail: string
}

/** What the audit says about one claim. */
export interface ClaimVerdict {
  id: string
  title: string
  verdict: Verdict
  reason: string
  /** Our number(s), in words. */
  ours: string
  /** The paper's number, from claims.yaml. */
  paper: string
  checks: Check[]
  /** The numbers behind `ours`, for machines. */
  measured: JsonObject
  /** The stage instances whose results decided it. */
  instances: string[]
}

const RANK: Record<Verdict, number> = { supported: 0, inconclusive: 1, 'not supported': 2 }

/** The worst verdict of the checks (none: inconclusive) and the details of the checks that decided it. */
export function combine(checks: readonly Check[]): { verdict: Verdict; reason: string } {
  if (checks.length === 0) return { verdict: 'inconclusive', reason: 'nothing was measured' }
  const worst = checks.reduce<Verdict>((w, c) => (RANK[c.verdict] > RANK[w] ? c.verdict : w), 'supported')
  return { verdict: worst, reason: checks.filter((c) => c.verdict === worst).map((c) => `${c.name}: ${c.detail}`).join('; ') }
}

function groupBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>()
  for (const x of xs) {
    const k = key(x)
    const g = m.get(k)
    if (g === undefined) m.set(k, [x])
    else g.push(x)
  }
  return m
}

const maxOf = (xs: readonly (number | undefined)[]): number | undefined => {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x))
  return v.length === 0 ? undefined : Math.max(...v)
}

/** C1: rho_{n_c-1} reaches the edge while rho_{n_c} stays low, at the smallest eta and per class count. */
export function judgeC1(claim: Claim, r: StageResults): ClaimVerdict {
  const topMin = numParam(claim, 'rho_top_min', 0.7)
  const bulkMax = numParam(claim, 'rho_bulk_max', 0.25)
  const minProbes = numParam(claim, 'min_probes', 3)
  const checks: Check[] = []
  const measured: JsonObject = {}
  const instances: string[] = []
  const judgeSeries = (label: string, ps: readonly ProbeRecord[]): Check => {
    const top = maxOf(ps.map(rhoTopLast))
    const bulk = maxOf(ps.map(rhoBulkFirst))
    const nc = ps[0]!.classes
    measured[label] = { rho_top_max: top ?? null, rho_bulk_max: bulk ?? null, n_c: nc, probes: ps.length }
    instances.push(...ps.map((p) => p.instance))
    const text = `max rho_${nc - 1} = ${fmt(top)}, max rho_${nc} = ${fmt(bulk)} over ${ps.length} probes`
    if (top === undefined || bulk === undefined) return { name: label, verdict: 'inconclusive', detail: `rho_${nc} not measured (k < n_c = ${nc})` }
    if (ps.length < minProbes) return { name: label, verdict: 'inconclusive', detail: `${text}: too few probes over training (needs ${minProbes})` }
    const pass = top >= topMin && bulk <= bulkMax
    return { name: label, verdict: pass ? 'supported' : 'not supported', detail: pass ? text : `${text} (needs >= ${topMin} and <= ${bulkMax})` }
  }
  const grid = r.probes.filter((p) => p.role === 'grid')
  if (grid.length === 0) checks.push({ name: 'main grid', verdict: 'inconclusive', detail: 'no main-grid probes' })
  for (const [, ps] of groupBy(grid, (p) => `${p.arch}-${p.activation}`)) {
    const etaMin = Math.min(...ps.map((p) => p.eta))
    checks.push(judgeSeries(`${ps[0]!.arch}-${ps[0]!.activation} eta=${etaMin}`, ps.filter((p) => p.eta === etaMin)))
  }
  const cls = r.probes.filter((p) => p.role === 'classes')
  if (cls.length === 0) checks.push({ name: 'class counts', verdict: 'inconclusive', detail: 'no 2/3/5-class probes' })
  for (const [, ps] of [...groupBy(cls, (p) => String(p.classes))].sort((a, b) => Number(a[0]) - Number(b[0]))) checks.push(judgeSeries(`${ps[0]!.classes} classes`, ps))
  const { verdict, reason } = combine(checks)
  const ours = checks.filter((c) => c.detail.startsWith('max')).map((c) => `${c.name}: ${c.detail.replace(/ over \d+ probes.*/, '')}`).join('; ')
  return { id: claim.id, title: claim.title, verdict, reason, ours: ours || 'n/a', paper: claim.paper_value, checks, measured, instances: instances.sort() }
}

/** C2: the probe of the jump in |d_i| lies within tolerance of the probe where rho_i first reaches the edge. */
export function judgeC2(claim: Claim, r: StageResults): ClaimVerdict {
  const rhoEdge = numParam(claim, 'rho_edge', 0.9)
  const jumpFactor = numParam(claim, 'jump_factor', 2)
  const tol = numParam(claim, 'tolerance_probes', 1)
  const minFraction = numParam(claim, 'min_fraction', 0.5)
  const minProbes = numParam(claim, 'min_probes', 3)
  const dense = r.probes.filter((p) => p.role === 'dense').sort((a, b) => a.iteration - b.iteration)
  const measured: JsonObject = {}
  const base = { id: claim.id, title: claim.title, paper: claim.paper_value, instances: dense.map((p) => p.instance).sort() }
  if (dense.length < minProbes) {
    const detail = `${dense.length} probes of the densely probed run (needs ${minProbes})`
    return { ...base, verdict: 'inconclusive', reason: detail, ours: 'n/a', checks: [{ name: 'dense run', verdict: 'inconclusive', detail }], measured }
  }
  const nTop = Math.max(1, dense[0]!.classes - 1)
  const rows: string[] = []
  let observed = 0
  let coincide = 0
  const notes: string[] = []
  for (let i = 0; i < nTop; i++) {
    const rho = dense.map((p) => p.rho[i])
    const d = dense.map((p) => Math.abs(p.d[i] ?? NaN))
    if (rho.some((x) => x === undefined) || d.some((x) => !Number.isFinite(x))) {
      notes.push(`i=${i + 1}: not measured in every probe`)
      continue
    }
    const entry = rho.findIndex((x) => x! >= rhoEdge)
    if (entry < 0) {
      notes.push(`i=${i + 1}: rho never reached ${rhoEdge}`)
      continue
    }
    if (entry === 0) {
      notes.push(`i=${i + 1}: already at the edge at the first probe`)
      continue
    }
    let jump = 1
    let best = -Infinity
    for (let j = 1; j < d.length; j++) {
      const ratio = d[j]! / d[j - 1]!
      if (ratio > best) [best, jump] = [ratio, j]
    }
    observed++
    const hit = best >= jumpFactor && Math.abs(jump - entry) <= tol
    if (hit) coincide++
    measured[`i${i + 1}`] = { edge_iteration: dense[entry]!.iteration, jump_iteration: dense[jump]!.iteration, jump_ratio: best }
    rows.push(`i=${i + 1}: edge at n=${dense[entry]!.iteration}, |d| x${fmt(best, 3)} at n=${dense[jump]!.iteration}`)
  }
  measured.observed = observed
  measured.coincident = coincide
  const ours = rows.length > 0 ? `${coincide}/${observed} coincide (${rows.join('; ')})` : 'n/a'
  let check: Check
  if (observed === 0) check = { name: 'edge entry', verdict: 'inconclusive', detail: `no top eigenvector was seen entering the edge of stability (${notes.join('; ')})` }
  else if (coincide / observed >= minFraction) check = { name: 'edge entry', verdict: 'supported', detail: ours }
  else check = { name: 'edge entry', verdict: 'not supported', detail: `${ours}; needs a jump >= x${jumpFactor} within ${tol} probe(s) for ${minFraction * 100}%` }
  return { ...base, verdict: check.verdict, reason: `${check.name}: ${check.detail}`, ours, checks: [check], measured }
}

/** C3: Table 1's rows: the top step does not reduce the loss (>= ~0, large spread), the bulk step does. */
export function judgeC3(claim: Claim, r: StageResults): ClaimVerdict {
  const rhoThreshold = numParam(claim, 'rho_threshold', 0.7)
  const minIterations = numParam(claim, 'min_iterations', 3)
  const minFraction = numParam(claim, 'min_fraction', 1)
  const table = computeTable1(r.probes, { rhoThreshold, minIterations })
  const rows = table.filter((t) => t.included)
  const checks: Check[] = rows.map((t) => {
    const topOk = t.topMean! >= 0 || Math.abs(t.topMean!) <= t.topStd!
    const bulkOk = t.bulkMean! < 0 && t.bulkStd! < Math.abs(t.bulkMean!)
    const detail = `top ${fmt(t.topMean)} (${fmt(t.topStd)}), bulk ${fmt(t.bulkMean)} (${fmt(t.bulkStd)}) over ${t.atEdge} probes`
    return { name: `${t.arch}-${t.activation} eta=${t.eta}`, verdict: topOk && bulkOk ? 'supported' : 'not supported', detail: topOk && bulkOk ? detail : `${detail}: ${topOk ? '' : 'the top step lowers the loss; '}${bulkOk ? '' : 'the bulk step is not consistently negative'}`.replace(/; $/, '') }
  })
  const measured: JsonObject = { rows: rows.map((t) => ({ arch: t.arch, activation: t.activation, eta: t.eta, at_edge: t.atEdge, top_mean: t.topMean, top_std: t.topStd, bulk_mean: t.bulkMean, bulk_std: t.bulkStd })), omitted: table.length - rows.length }
  const base = { id: claim.id, title: claim.title, paper: claim.paper_value, checks, measured, instances: rows.flatMap((t) => t.instances).sort() }
  if (rows.length === 0) {
    const detail = `too few iterations at the edge of stability: no combination has >= ${minIterations} probes with rho_{n_c-1} > ${rhoThreshold} (${table.map((t) => `${t.arch}-${t.activation} eta=${t.eta}: ${t.atEdge}`).join(', ') || 'no main-grid probes'})`
    return { ...base, verdict: 'inconclusive', reason: detail, ours: 'n/a' }
  }
  const passed = checks.filter((c) => c.verdict === 'supported').length
  const ours = checks.map((c) => `${c.name}: ${c.detail.split(':')[0]}`).join('; ')
  const ok = passed / rows.length >= minFraction
  const failing = checks.filter((c) => c.verdict !== 'supported').map((c) => `${c.name}: ${c.detail}`)
  return { ...base, verdict: ok ? 'supported' : 'not supported', reason: ok ? `${passed}/${rows.length} rows as the paper says` : `${passed}/${rows.length} rows as the paper says (needs ${minFraction * 100}%); ${failing.join('; ')}`, ours }
}

/** C4: peak lambda_1 linear in n_D (R^2 mean- and sum-reduced), ||theta|| nearly constant, the cusp sharpening with n_D. */
export function judgeC4(claim: Claim, r: StageResults): ClaimVerdict {
  const activation = typeof claim.params.activation === 'string' ? claim.params.activation : 'relu'
  const minSizes = numParam(claim, 'min_sizes', 3)
  const r2Min = numParam(claim, 'r2_min', 0.95)
  const thetaMax = numParam(claim, 'theta_rel_max', 0.01)
  const checks: Check[] = []
  const measured: JsonObject = {}
  const instances: string[] = []

  const s = peakSeries(r.flows, activation)
  instances.push(...s.points.flatMap((p) => p.instances))
  measured.peaks = s.points.map((p) => ({ n_data: p.nData, peak_lambda_1: p.peakMean }))
  measured.r2_mean = Number.isFinite(s.fitMean.r2) ? s.fitMean.r2 : null
  measured.r2_sum = Number.isFinite(s.fitSum.r2) ? s.fitSum.r2 : null
  measured.slope_mean = Number.isFinite(s.fitMean.slope) ? s.fitMean.slope : null
  const sizes = s.points.map((p) => p.nData).join(', ')
  const r2Text = `R^2 = ${fmt(s.fitMean.r2)} mean-reduced, ${fmt(s.fitSum.r2)} sum-reduced, slope ${fmt(s.fitMean.slope)} over n_D = ${sizes}`
  if (s.points.length < minSizes) {
    checks.push({ name: 'peak lambda_1 vs n_D', verdict: 'inconclusive', detail: `only ${s.points.length} dataset size(s)${sizes ? ` (n_D = ${sizes})` : ''} with ${activation} gradient-flow runs; needs ${minSizes} (a line through 2 points has R^2 = 1)` })
  } else {
    const pass = s.fitMean.slope > 0 && s.fitMean.r2 >= r2Min
    checks.push({ name: 'peak lambda_1 vs n_D', verdict: pass ? 'supported' : 'not supported', detail: pass ? r2Text : `${r2Text} (needs slope > 0 and R^2 >= ${r2Min})` })
  }

  const rel: { instance: string; value: number }[] = []
  for (const run of [...r.runs, ...r.flows]) {
    const v = thetaRelChange(run)
    if (v !== undefined) rel.push({ instance: run.instance, value: v })
  }
  for (const sc of r.scans) if (Number.isFinite(sc.thetaNormMaxRelChange)) rel.push({ instance: sc.instance, value: sc.thetaNormMaxRelChange })
  const worst = rel.reduce<{ instance: string; value: number } | undefined>((w, x) => (w === undefined || x.value > w.value ? x : w), undefined)
  measured.theta_rel_change_max = worst?.value ?? null
  if (worst === undefined) checks.push({ name: '||theta||', verdict: 'inconclusive', detail: 'no telemetry with ||theta||' })
  else {
    const detail = `max relative change ${fmt(worst.value * 100, 3)}% (${worst.instance}) over ${rel.length} runs`
    checks.push({ name: '||theta||', verdict: worst.value < thetaMax ? 'supported' : 'not supported', detail: worst.value < thetaMax ? detail : `${detail} (needs < ${thetaMax * 100}%)` })
  }

  const scans = r.scans.filter((x) => x.activation === activation).sort((a, b) => a.nData - b.nData)
  instances.push(...scans.map((x) => x.instance))
  const kappas = scans.map((x) => ({ nData: x.nData, kappa: cuspSharpness(x) }))
  measured.cusp_kappa = kappas.map((k) => ({ n_data: k.nData, kappa: k.kappa ?? null }))
  const good = kappas.filter((k): k is { nData: number; kappa: number } => k.kappa !== undefined)
  const kText = good.map((k) => `kappa(${k.nData}) = ${fmt(k.kappa, 3)}`).join(', ')
  if (good.length < 2) checks.push({ name: 'cusp', verdict: 'inconclusive', detail: `cusp sharpness measured at ${good.length} dataset size(s)${kText ? ` (${kText})` : ''}; needs 2` })
  else {
    const pass = strictlyIncreasing(good.map((k) => k.kappa))
    checks.push({ name: 'cusp', verdict: pass ? 'supported' : 'not supported', detail: pass ? `sharpens with n_D: ${kText}` : `does not sharpen with n_D: ${kText}` })
  }

  const { verdict, reason } = combine(checks)
  const ours = `${s.points.length >= 2 ? r2Text : `${s.points.length} size(s)`}; ||theta|| max change ${worst === undefined ? 'n/a' : `${fmt(worst.value * 100, 3)}%`}; ${kText || 'no cusp scan'}`
  return { id: claim.id, title: claim.title, verdict, reason, ours, paper: claim.paper_value, checks, measured, instances: [...new Set(instances)].sort() }
}

/** Every claim of the file, judged on the results (an unknown id cannot occur: parseClaims checks). */
export function judgeAll(claims: readonly Claim[], r: StageResults): ClaimVerdict[] {
  const judges = { C1: judgeC1, C2: judgeC2, C3: judgeC3, C4: judgeC4 }
  return claims.map((c) => judges[c.id](c, r))
}
