/**
 * C2 (paper §5.2, Figure 4): entering the edge of stability coincides with the gradient
 * concentrating in the top subspace. In each densely probed run (after the initial transient), each
 * of the top n_c - 1 directions (at the probe where rho_{n_c-1} is largest) is followed through the
 * run by eigenvector overlap (src/report/overlap.ts; by rank only when no vectors were stored). Per
 * direction: its entry (the first probe with rho >= rho_edge, seen only when an earlier probe was
 * below) and its |d| jump (the largest ratio of consecutive |d| = |h . g|). Central test: the jump is
 * >= jump_factor and within tolerance_probes of the entry for >= min_fraction of the observed entries,
 * AND that many coincidences are unlikely by chance: under the null that the jump position is uniform
 * over the run's probe positions, coincidences are a Poisson-binomial count, and its tail p must be
 * <= alpha. Beside it, the magnitude null: how often a jump that large happens away from any entry.
 */
import type { JsonObject } from '../harness/types.ts'
import { numParam } from './claims.ts'
import { trackByOverlap, trackByRank, type Track } from './overlap.ts'
import type { ProbeRecord } from './records.ts'
import { c2Power, poissonBinomialUpper, type C2Power } from './c2-power.ts'
import { fmt } from './stats.ts'
import { rhoTopLast } from './table1.ts'
import { groupBy, jnum, verdictOf, type Check, type ClaimVerdict, type JudgeInput, type Verdict } from './claim-verdict.ts'

/** One direction that was seen entering the edge. */
export interface EntryEvent {
  series: string
  /** Rank at the reference probe (1-based in text). */
  rank: number
  entryIteration: number
  jumpIteration: number
  ratio: number
  coincide: boolean
  /** Chance that a uniformly placed jump lands within tolerance of this entry. */
  p0: number
}

/** What one dense run shows. */
export interface RunEntries {
  series: string
  probes: number
  method: 'overlap' | 'rank'
  events: EntryEvent[]
  notes: string[]
  /** |d| ratios of consecutive probes away from any entry (the magnitude null). */
  nullRatios: number[]
}

export interface C2Params {
  rhoEdge: number
  jumpFactor: number
  tol: number
  minOverlap: number
}

/** Entries and jumps of one run's probes (sorted by iteration inside). */
export function analyseRun(probes: readonly ProbeRecord[], p: C2Params): RunEntries {
  const ps = [...probes].sort((a, b) => a.iteration - b.iteration)
  const n = ps.length
  const nTop = Math.max(1, ps[0]!.classes - 1)
  const hasVectors = ps.every((q) => q.vectors !== null && q.vectors.length >= Math.min(nTop, q.rho.length))
  let ref = 0
  ps.forEach((q, j) => {
    if ((rhoTopLast(q) ?? -Infinity) > (rhoTopLast(ps[ref]!) ?? -Infinity)) ref = j
  })
  const tracks: Track[] = hasVectors
    ? trackByOverlap(
        ps.map((q) => q.vectors!),
        ref,
        nTop,
        p.minOverlap,
      )
    : trackByRank(n, nTop)
  const events: EntryEvent[] = []
  const notes: string[] = []
  const nullRatios: number[] = []
  for (const tr of tracks) {
    const rho = tr.index.map((i, j) => (i >= 0 ? ps[j]!.rho[i] : undefined))
    const d = tr.index.map((i, j) => (i >= 0 ? Math.abs(ps[j]!.d[i] ?? NaN) : undefined))
    const ratios: { j: number; r: number }[] = []
    for (let j = 1; j < n; j++) {
      const a = d[j - 1]
      const b = d[j]
      if (a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && a > 0) ratios.push({ j, r: b / a })
    }
    const label = `h_${tr.rank + 1}`
    const entry = rho.findIndex((x) => x !== undefined && x >= p.rhoEdge)
    if (entry < 0 || entry === 0 || ratios.length === 0) {
      notes.push(
        `${label}: ${entry < 0 ? `rho never reached ${p.rhoEdge}` : entry === 0 ? 'already at the edge at the first probe after the transient' : '|d| not measured'}`,
      )
      if (entry < 0) nullRatios.push(...ratios.map((x) => x.r))
      continue
    }
    const best = ratios.reduce((m, x) => (x.r > m.r ? x : m))
    const near = ratios.filter((x) => Math.abs(x.j - entry) <= p.tol).length
    nullRatios.push(...ratios.filter((x) => Math.abs(x.j - entry) > p.tol).map((x) => x.r))
    events.push({
      series: ps[0]!.series,
      rank: tr.rank,
      entryIteration: ps[entry]!.iteration,
      jumpIteration: ps[best.j]!.iteration,
      ratio: best.r,
      coincide: best.r >= p.jumpFactor && Math.abs(best.j - entry) <= p.tol,
      p0: near / ratios.length,
    })
  }
  return { series: ps[0]!.series, probes: n, method: hasVectors ? 'overlap' : 'rank', events, notes, nullRatios }
}

/** The power sentence: the count the test needs and the per-entry coincidence rate it would detect. */
export function powerText(pw: C2Power, alpha: number): string {
  if (pw.critical === null) return `no count of coincidences reaches alpha = ${alpha}: the design cannot detect coincidence`
  const q =
    pw.qDetectable === null
      ? `no per-entry coincidence rate is detected with probability ${pw.target}`
      : `if each entry truly coincided with probability ${fmt(pw.qDetectable, 3)} or more, the test would detect it with probability ${pw.target}`
  return `supported needs ${pw.critical}/${pw.n} coincidences (chance p = ${fmt(pw.pAtCritical ?? NaN, 3)} <= alpha = ${alpha}); ${q}`
}

export function judgeC2(inp: JudgeInput): ClaimVerdict {
  const { claim, results: r } = inp
  const prm: C2Params = {
    rhoEdge: numParam(claim, 'rho_edge'),
    jumpFactor: numParam(claim, 'jump_factor'),
    tol: numParam(claim, 'tolerance_probes'),
    minOverlap: numParam(claim, 'min_overlap'),
  }
  const minFraction = numParam(claim, 'min_fraction')
  const minProbes = numParam(claim, 'min_probes')
  const alpha = numParam(claim, 'alpha')
  const nullRateMax = numParam(claim, 'null_rate_max')
  const dense = r.probes.filter((p) => p.role === 'dense')
  const runs = [...groupBy(dense, (p) => p.series).values()].filter((ps) => ps.length >= minProbes).map((ps) => analyseRun(ps, prm))
  const events = runs.flatMap((x) => x.events)
  const k = events.length
  const c = events.filter((e) => e.coincide).length
  const p0s = events.map((e) => e.p0)
  const pValue = poissonBinomialUpper(p0s, c)
  const pBest = poissonBinomialUpper(p0s, k)
  const pw = c2Power(p0s, alpha, inp.power, minFraction)
  const nullRatios = runs.flatMap((x) => x.nullRatios)
  const nullRate = nullRatios.length === 0 ? NaN : nullRatios.filter((x) => x >= prm.jumpFactor).length / nullRatios.length
  const rows = events.map(
    (e) => `${e.series} h_${e.rank + 1}: edge at n=${e.entryIteration}, |d| x${fmt(e.ratio, 3)} at n=${e.jumpIteration}`,
  )
  const notes = runs.flatMap((x) => x.notes.map((n) => `${x.series} ${n}`))
  const ours =
    k > 0 ? `${c}/${k} entries coincide with a |d| jump >= x${prm.jumpFactor} (chance p = ${fmt(pValue, 3)}; ${rows.join('; ')})` : 'n/a'
  let verdict: Verdict
  let detail: string
  if (runs.length === 0) {
    verdict = 'inconclusive'
    detail = `no densely probed run with >= ${minProbes} probes after the transient (${dense.length} dense probes)`
  } else if (k === 0) {
    verdict = 'inconclusive'
    detail = `no top eigenvector was seen entering the edge of stability (${notes.join('; ')})`
  } else if (pBest > alpha) {
    verdict = 'inconclusive'
    detail = `${ours}: even if all ${k} entries coincided, chance alignment would have p = ${fmt(pBest, 3)} > alpha = ${alpha}; the design cannot tell coincidence from chance`
  } else if (c / k >= minFraction && pValue <= alpha) {
    verdict = 'supported'
    detail = ours
  } else if (c / k >= minFraction) {
    verdict = 'inconclusive'
    detail = `${ours}: no more coincidences than chance gives (p > alpha = ${alpha})`
  } else {
    verdict = 'not supported'
    detail = `${ours}; needs a jump >= x${prm.jumpFactor} within ${prm.tol} probe(s) of the entry for ${minFraction * 100}% of entries`
  }
  const central: Check = { name: 'edge entry vs |d| jump', role: 'central', verdict, detail }
  const magnitude: Check = {
    name: 'magnitude null',
    role: 'side',
    verdict: nullRatios.length === 0 ? 'inconclusive' : nullRate <= nullRateMax ? 'supported' : 'not supported',
    detail:
      nullRatios.length === 0
        ? 'no probe positions away from an entry'
        : `a |d| jump >= x${prm.jumpFactor} occurs at ${fmt(nullRate * 100, 3)}% of the ${nullRatios.length} consecutive-probe steps away from any entry (and in directions that never enter)${nullRate <= nullRateMax ? '' : `: above null_rate_max = ${nullRateMax}, so a jump at entry is not special`}`,
  }
  const method = runs.some((x) => x.method === 'rank') ? 'rank' : 'overlap'
  const meanP0 = p0s.length === 0 ? NaN : p0s.reduce((a, b) => a + b, 0) / p0s.length
  const power =
    runs.length === 0
      ? `no densely probed run with >= ${minProbes} probes after the transient: the design could not test the claim`
      : k === 0
        ? `no entry observed in ${runs.length} dense run(s) with ${runs.map((x) => x.probes).join(', ')} probes after the transient: the design could not test the claim`
        : `${k} entries over ${runs.length} dense run(s) with ${runs.map((x) => x.probes).join(', ')} probes: a jump placed at random lands within ±${prm.tol} probe(s) of its entry with probability ${fmt(meanP0, 3)} on average (exact Poisson-binomial over each entry's own chance), so even ${k}/${k} coincidences would have chance p = ${fmt(pBest, 3)}; ${powerText(pw, alpha)}${Number.isFinite(nullRate) ? `; away from entries a jump >= x${prm.jumpFactor} happens at ${fmt(nullRate * 100, 3)}% of steps` : ''}`
  const limits = [
    method === 'overlap'
      ? `directions followed by eigenvector overlap (pairs below ${prm.minOverlap} are lost); with a random sketch of the vectors, overlaps carry an error of ~1/sqrt(sketch size)`
      : "no eigenvectors were stored: directions are followed by rank, so a swap of near-degenerate eigenvalues splices two directions' d_i",
    'entry and jump are resolved to the probe spacing only',
    'a gradual rise of |d| spread over several probes shows as several small ratios, not one jump',
    'the chance null assumes the jump position is uniform over the probes; a trend in |d| over training is not modelled',
  ]
  const measured: JsonObject = {
    method,
    observed: k,
    coincident: c,
    p_value: jnum(pValue),
    p_best: jnum(pBest),
    critical_count: pw.critical,
    p_at_critical: pw.pAtCritical === null ? null : jnum(pw.pAtCritical),
    q_detectable: pw.qDetectable === null ? null : jnum(pw.qDetectable),
    null_rate: jnum(nullRate),
    null_steps: nullRatios.length,
    events: events.map((e) => ({
      series: e.series,
      rank: e.rank + 1,
      edge_iteration: e.entryIteration,
      jump_iteration: e.jumpIteration,
      jump_ratio: e.ratio,
      coincide: e.coincide,
      p_chance: e.p0,
    })),
    notes,
  }
  return verdictOf(claim, central, [magnitude], {
    central: claim.test,
    power,
    limits,
    ours,
    measured,
    instances: dense.map((p) => p.instance),
  })
}
