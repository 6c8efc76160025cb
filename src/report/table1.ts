/**
 * Table 1 of the paper (§5.3, "Learning occurs in the bulk, not the top"): per combination of
 * architecture, activation, eta and dataset size n_D, the mean and standard deviation of the change
 * in the training loss from one eta-step along -P_top g and along -P_bulk g, over the probes (after
 * the initial transient) where the network is at the edge of stability, omitting a combination with
 * fewer than `minIterations` such probes (the row stays, with its reason). Two definitions of the top:
 * the paper's (top = the n_c - 1 leading eigenvectors; a probe counts when rho_{n_c-1} >
 * rhoThreshold) and the edge set (top = {i : rho_i >= the probe's edge threshold}; a probe counts
 * when the set is non-empty; needs the probe's edge-set step changes). Each row also carries the
 * paired comparison top - bulk (same probe) with its t interval and the smallest difference the
 * row could detect.
 */
import type { ProbeRecord } from './records.ts'
import { detectableMean, mean, sampleStd, tInterval } from './stats.ts'

/** How rows are chosen and judged (all from claims.yaml, C3's params and the shared level/power). */
export interface Table1Options {
  /** A probe counts when rho_{n_c-1} is strictly above this (paper: 0.7). */
  rhoThreshold: number
  /** A combination needs at least this many such probes. */
  minIterations: number
  /** Confidence level of the paired interval. */
  level: number
  /** Power of the detectable-difference statement. */
  power: number
}

export type Table1Definition = 'paper' | 'edge-set'

/** One combination of hyperparameters under one definition of the top. */
export interface Table1Row {
  definition: Table1Definition
  arch: string
  activation: string
  eta: number
  nData: number | null
  /** n_c of the run (the top is its n_c - 1 leading eigenvectors). */
  classes: number
  /** Probes of this combination after the transient, and those at the edge of stability. */
  probes: number
  atEdge: number
  included: boolean
  /** Why the row is omitted (null when included). */
  omitted: string | null
  topMean: number | null
  topStd: number | null
  bulkMean: number | null
  bulkStd: number | null
  /** Paired difference top - bulk per probe: mean, t interval, and the smallest |mean| detectable. */
  diffMean: number | null
  diffLo: number | null
  diffHi: number | null
  detectable: number | null
  /** The probe instances at the edge that fed the row. */
  instances: string[]
}

/** rho_{n_c-1} of a probe (the last eigenvalue of the top subspace), or undefined if not measured. */
export function rhoTopLast(p: ProbeRecord): number | undefined {
  return p.classes >= 2 ? p.rho[p.classes - 2] : undefined
}

/** rho_{n_c} of a probe (the first of the bulk), or undefined when k < n_c. */
export function rhoBulkFirst(p: ProbeRecord): number | undefined {
  return p.rho[p.classes - 1]
}

const fin = (x: number): number | null => (Number.isFinite(x) ? x : null)

/**
 * True when the probe measured its edge set at C3's rho_threshold (or did not say at which cut): the
 * probe stage needs the cut when it measures, but the threshold is claims.yaml's, so a probe measured
 * at another cut is not an edge-set probe of this audit.
 */
export function sameCut(p: Pick<ProbeRecord, 'edgeThreshold'>, rhoThreshold: number): boolean {
  return p.edgeThreshold === null || Math.abs(p.edgeThreshold - rhoThreshold) <= 1e-12
}

/** The step changes a probe contributes under a definition, or undefined when it is not at the edge. */
function edgeChanges(p: ProbeRecord, def: Table1Definition, rhoThreshold: number): { top: number; bulk: number } | undefined {
  if (def === 'paper') {
    const r = rhoTopLast(p)
    return r !== undefined && r > rhoThreshold && p.lossChangeTop !== null && p.lossChangeBulk !== null
      ? { top: p.lossChangeTop, bulk: p.lossChangeBulk }
      : undefined
  }
  return p.edgeDim !== null && p.edgeDim > 0 && p.lossChangeTopEdge !== null && p.lossChangeBulkEdge !== null
    ? { top: p.lossChangeTopEdge, bulk: p.lossChangeBulkEdge }
    : undefined
}

/**
 * Table 1 from the probes of every fixed-cadence run under one definition; rows sorted by
 * architecture, activation, n_D, then eta descending (as printed). `includeDense` adds the densely
 * probed runs (C2's, not in the printed table) as rows of their own combination: C3's n_D side check
 * uses them, since they are the only runs of an architecture and eta at a second dataset size.
 */
export function computeTable1(
  probes: readonly ProbeRecord[],
  opts: Table1Options,
  def: Table1Definition = 'paper',
  includeDense = false,
): Table1Row[] {
  const groups = new Map<string, ProbeRecord[]>()
  for (const p of probes) {
    // Every fixed-cadence GD run: the eta grid, the CNN row and the class runs (dense runs are C2's).
    if (p.role === 'dense' && !includeDense) continue
    if (def === 'edge-set' && (p.edgeDim === null || !sameCut(p, opts.rhoThreshold))) continue
    const key = JSON.stringify([p.arch, p.activation, p.eta, p.nData, p.classes])
    groups.set(key, [...(groups.get(key) ?? []), p])
  }
  const rows: Table1Row[] = []
  for (const g of groups.values()) {
    const first = g[0]!
    const edge = g
      .map((p) => ({ p, c: edgeChanges(p, def, opts.rhoThreshold) }))
      .filter((x): x is { p: ProbeRecord; c: { top: number; bulk: number } } => x.c !== undefined)
    const included = edge.length >= opts.minIterations
    const top = edge.map((x) => x.c.top)
    const bulk = edge.map((x) => x.c.bulk)
    const diff = tInterval(
      edge.map((x) => x.c.top - x.c.bulk),
      opts.level,
    )
    const what = def === 'paper' ? `rho_(n_c-1) > ${opts.rhoThreshold}` : 'a non-empty edge set'
    rows.push({
      definition: def,
      arch: first.arch,
      activation: first.activation,
      eta: first.eta,
      nData: first.nData,
      classes: first.classes,
      probes: g.length,
      atEdge: edge.length,
      included,
      omitted: included ? null : `${edge.length} probe(s) with ${what} after the transient; a row needs ${opts.minIterations}`,
      topMean: included ? mean(top) : null,
      topStd: included ? sampleStd(top) : null,
      bulkMean: included ? mean(bulk) : null,
      bulkStd: included ? sampleStd(bulk) : null,
      diffMean: included ? fin(diff.mean) : null,
      diffLo: included ? fin(diff.lo) : null,
      diffHi: included ? fin(diff.hi) : null,
      detectable: included ? fin(detectableMean(diff.sd, diff.n, 1 - opts.level, opts.power)) : null,
      instances: edge.map((x) => x.p.instance).sort(),
    })
  }
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
  rows.sort((a, b) => cmp(a.arch, b.arch) || cmp(a.activation, b.activation) || (a.nData ?? 0) - (b.nData ?? 0) || b.eta - a.eta)
  return rows
}
