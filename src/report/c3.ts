/**
 * C3 (paper §5.3, Table 1): once at the edge of stability, the loss falls through the bulk step,
 * not the top. Central test, per Table 1 row (paper definition: top = the n_c - 1 leading
 * eigenvectors; rows need min_iterations probes at the edge after the transient): the paired
 * difference top - bulk of the one-step loss changes has its t interval above 0 (the bulk step
 * lowers the loss more) -> the row agrees; below 0 -> the row disagrees; straddling 0 -> undecided.
 * The claim is supported when at least min_fraction of the included rows agree. Beside it: the
 * paper's own description (top >= 0 or within one std of 0; bulk negative, std below its size),
 * the same paired test with the edge set as the top, and whether the sign depends on n_D.
 */
import type { JsonObject } from '../harness/types.ts'
import { numParam } from './claims.ts'
import { fmt } from './stats.ts'
import { computeTable1, sameCut, type Table1Options, type Table1Row } from './table1.ts'
import { verdictOf, type Check, type ClaimVerdict, type JudgeInput, type Verdict } from './claim-verdict.ts'

/** A row's paired verdict: interval above 0 agrees with the paper, below 0 disagrees. */
export function rowVerdict(t: Table1Row): Verdict {
  if (t.diffLo === null || t.diffHi === null) return 'inconclusive'
  return t.diffLo > 0 ? 'supported' : t.diffHi < 0 ? 'not supported' : 'inconclusive'
}

export const rowName = (t: Table1Row): string =>
  `${t.arch}-${t.activation} eta=${t.eta}${t.nData !== null ? ` n_D=${t.nData}` : ''}${t.classes !== 10 ? ` n_c=${t.classes}` : ''}`

function rowText(t: Table1Row, level: number): string {
  return `${rowName(t)}: top ${fmt(t.topMean)} (${fmt(t.topStd)}), bulk ${fmt(t.bulkMean)} (${fmt(t.bulkStd)}), top - bulk ${fmt(t.diffMean)} [${fmt(t.diffLo)}, ${fmt(t.diffHi)}] (${level * 100}% CI) over ${t.atEdge} probes`
}

/** The C3 options from the claim and the shared rules. */
export function table1Options(inp: Pick<JudgeInput, 'claim' | 'level' | 'power'>): Table1Options {
  return {
    rhoThreshold: numParam(inp.claim, 'rho_threshold'),
    minIterations: numParam(inp.claim, 'min_iterations'),
    level: inp.level,
    power: inp.power,
  }
}

function pairedCheck(name: string, role: 'central' | 'side', rows: Table1Row[], minFraction: number, level: number, none: string): Check {
  if (rows.length === 0) return { name, role, verdict: 'inconclusive', detail: none }
  const vs = rows.map(rowVerdict)
  const agree = vs.filter((v) => v === 'supported').length
  const disagree = vs.filter((v) => v === 'not supported').length
  const verdict: Verdict =
    agree / rows.length >= minFraction ? 'supported' : disagree / rows.length > 1 - minFraction ? 'not supported' : 'inconclusive'
  const lines = rows.map(
    (t, i) =>
      `${rowText(t, level)}${vs[i] === 'supported' ? '' : vs[i] === 'not supported' ? ': the top step lowers the loss more than the bulk step' : ': interval includes 0'}`,
  )
  return {
    name,
    role,
    verdict,
    detail: `${agree}/${rows.length} rows with the bulk step lowering the loss more (needs ${minFraction * 100}%; ${disagree} the other way): ${lines.join('; ')}`,
  }
}

/** A row's sign in words, with its paired difference and interval. */
const signWord = (t: Table1Row): string => {
  const v = rowVerdict(t)
  const w = v === 'supported' ? 'bulk lowers more' : v === 'not supported' ? 'top lowers more' : 'undecided'
  return `n_D=${t.nData}: ${w} (${fmt(t.diffMean)} [${fmt(t.diffLo)}, ${fmt(t.diffHi)}], ${t.atEdge} probes)`
}

/**
 * Does C3's sign depend on n_D? Like for like only: rows of one architecture, activation, eta and n_c
 * at two or more dataset sizes, under either definition of the top, the densely probed runs counted
 * too (they are the only runs of an architecture and eta at a second size). The sign depends on n_D
 * when one such comparison has a size whose interval lies above 0 and another whose interval lies below.
 */
export function signByNData(
  probes: Parameters<typeof computeTable1>[0],
  opts: Table1Options,
): { verdict: Verdict; detail: string; depends: boolean | null; rows: Table1Row[] } {
  const groups = new Map<string, Table1Row[]>()
  for (const def of ['paper', 'edge-set'] as const)
    for (const t of computeTable1(probes, opts, def, true))
      if (t.included && t.nData !== null) {
        const key = `${def === 'paper' ? 'top = n_c - 1' : 'top = edge set'}, ${rowName({ ...t, nData: null })}`
        groups.set(key, [...(groups.get(key) ?? []), t])
      }
  const comparisons = [...groups].filter(([, ts]) => new Set(ts.map((t) => t.nData)).size >= 2)
  if (comparisons.length === 0)
    return {
      verdict: 'inconclusive',
      detail: `no architecture, activation, eta and n_c has Table 1 rows (either definition, dense runs included) at two dataset sizes: cannot say whether the sign depends on n_D`,
      depends: null,
      rows: [],
    }
  const judged = comparisons.map(([key, ts]) => {
    const sorted = [...ts].sort((a, b) => (a.nData ?? 0) - (b.nData ?? 0))
    const vs = sorted.map(rowVerdict)
    return { key, sorted, flips: vs.includes('supported') && vs.includes('not supported'), decided: vs.every((v) => v !== 'inconclusive') }
  })
  const depends = judged.some((j) => j.flips)
  const text = judged.map((j) => `${j.key}: ${j.sorted.map(signWord).join(', ')}`).join('; ')
  const verdict: Verdict = depends ? 'not supported' : judged.some((j) => j.decided) ? 'supported' : 'inconclusive'
  const head = depends
    ? 'the sign depends on n_D'
    : verdict === 'supported'
      ? 'the sign does not flip with n_D'
      : 'no comparison decides the sign at every size: cannot say whether it depends on n_D'
  return {
    verdict,
    detail: `${head} (${text})`,
    depends: verdict === 'inconclusive' ? null : depends,
    rows: comparisons.flatMap(([, ts]) => ts),
  }
}

export function judgeC3(inp: JudgeInput): ClaimVerdict {
  const { claim, results: r, level } = inp
  const minFraction = numParam(claim, 'min_fraction')
  const opts = table1Options(inp)
  const table = computeTable1(r.probes, opts, 'paper')
  const rows = table.filter((t) => t.included)
  const edgeTable = computeTable1(r.probes, opts, 'edge-set')
  const edgeRows = edgeTable.filter((t) => t.included)
  const central =
    rows.length === 0
      ? {
          name: 'paired top - bulk',
          role: 'central' as const,
          verdict: 'inconclusive' as const,
          detail: `too few iterations at the edge of stability: no combination has >= ${opts.minIterations} probes with rho_(n_c-1) > ${opts.rhoThreshold} after the transient (${table.map((t) => `${rowName(t)}: ${t.atEdge}`).join(', ') || 'no main-grid probes'})`,
        }
      : pairedCheck('paired top - bulk', 'central', rows, minFraction, level, '')
  // The paper's description of Table 1, row by row.
  const desc = rows.map((t) => {
    const topOk = t.topMean! >= 0 || Math.abs(t.topMean!) <= t.topStd!
    const bulkOk = t.bulkMean! < 0 && t.bulkStd! < Math.abs(t.bulkMean!)
    return {
      t,
      ok: topOk && bulkOk,
      why: `${topOk ? '' : 'the top step lowers the loss by more than one std; '}${bulkOk ? '' : 'the bulk step is not consistently negative'}`.replace(
        /; $/,
        '',
      ),
    }
  })
  const descPassed = desc.filter((x) => x.ok).length
  const descCheck: Check =
    rows.length === 0
      ? { name: "the paper's description", role: 'side', verdict: 'inconclusive', detail: 'no Table 1 row' }
      : {
          name: "the paper's description",
          role: 'side',
          verdict: descPassed / rows.length >= minFraction ? 'supported' : 'not supported',
          detail: `${descPassed}/${rows.length} rows with top >= 0 or within one std of 0 and bulk negative with std below its size${desc
            .filter((x) => !x.ok)
            .map((x) => `; ${rowName(x.t)}: ${x.why}`)
            .join('')}`,
        }
  const offCut = r.probes.filter((p) => p.edgeDim !== null && !sameCut(p, opts.rhoThreshold))
  const edgeCheck = pairedCheck(
    'edge set as the top',
    'side',
    edgeRows,
    minFraction,
    level,
    edgeTable.length === 0
      ? offCut.length > 0
        ? `no edge-set row: every edge-set probe was measured at another cut than rho_threshold = ${opts.rhoThreshold}`
        : 'not measured: the probes carry no edge-set step changes'
      : `no edge-set row with >= ${opts.minIterations} probes`,
  )
  const signs = signByNData(r.probes, opts)
  const nCheck: Check = { name: 'sign vs n_D', role: 'side', verdict: signs.verdict, detail: signs.detail }
  const power =
    rows.length === 0
      ? `no row reached ${opts.minIterations} probes at the edge after the transient; the design could not test the claim`
      : rows
          .map(
            (t) =>
              `${rowName(t)}: with ${t.atEdge} probes at the edge and this spread, a mean top - bulk difference beyond ±${fmt(t.detectable)} would be detected (alpha = ${fmt(1 - level)}, power ${inp.power})`,
          )
          .join('; ')
  const limits = [
    'one eta-step loss change per probe; probes of one run are serially correlated, so the t interval (which treats them as independent) may be too narrow',
    "the paper's top (n_c - 1 leading eigenvectors) includes sub-edge directions when fewer than n_c - 1 eigenvalues are at the edge; the edge-set row removes them",
    'seeds of one combination are pooled into its row',
    ...(offCut.length > 0
      ? [
          `${offCut.length} probe(s) measured their edge set at edge_threshold ${[...new Set(offCut.map((p) => p.edgeThreshold))].join(', ')} (spectrum-probe param), not claims.yaml's rho_threshold = ${opts.rhoThreshold}: left out of the edge-set rows`,
        ]
      : []),
    ...(r.probes.some((p) => p.edgeDimCapped)
      ? [
          'some probes had every measured eigenvalue in the edge set (edge_dim capped at k): their edge-set top may miss edge directions beyond k',
        ]
      : []),
  ]
  const ours =
    rows.length > 0
      ? rows.map((t) => `${rowName(t)}: top - bulk ${fmt(t.diffMean)} [${fmt(t.diffLo)}, ${fmt(t.diffHi)}]`).join('; ')
      : 'n/a'
  const measured: JsonObject = {
    rows: rows.map((t) => ({
      arch: t.arch,
      activation: t.activation,
      eta: t.eta,
      n_data: t.nData,
      at_edge: t.atEdge,
      top_mean: t.topMean,
      top_std: t.topStd,
      bulk_mean: t.bulkMean,
      bulk_std: t.bulkStd,
      diff_mean: t.diffMean,
      diff_lo: t.diffLo,
      diff_hi: t.diffHi,
      detectable: t.detectable,
      verdict: rowVerdict(t),
    })),
    omitted: table.filter((t) => !t.included).map((t) => ({ row: rowName(t), why: t.omitted })),
    edge_set_rows: edgeRows.length,
    sign_depends_on_n_data: signs.depends,
  }
  return verdictOf(claim, central, [descCheck, edgeCheck, nCheck], {
    central: claim.test,
    power,
    limits,
    ours,
    measured,
    instances: [...rows, ...edgeRows, ...signs.rows].flatMap((t) => t.instances),
  })
}
