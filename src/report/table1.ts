/**
 * Table 1 of the paper (§5.3, "Learning occurs in the bulk, not the top"): for each combination of
 * hyperparameters (architecture, activation, eta) of the main grid, the mean and standard deviation
 * of the change in the training loss from one step along -P_top g and along -P_bulk g, over the
 * iterations where the network is "indisputably on the edge of stability, as shown by
 * rho_{n_c-1} > 0.7" (the paper: rho_9 > 0.7 with 10 classes), omitting combinations "where this
 * left us with fewer than three iterations". Combinations omitted are kept with their count, so
 * the report can say why a row is missing.
 */
import type { ProbeRecord } from './records.ts'
import { mean, sampleStd } from './stats.ts'

/** How rows are chosen (the paper's values are the defaults). */
export interface Table1Options {
  /** An iteration counts when rho_{n_c-1} is strictly above this (paper: 0.7). */
  rhoThreshold: number
  /** A combination needs at least this many such iterations (paper: 3). */
  minIterations: number
}

export const PAPER_TABLE1: Table1Options = { rhoThreshold: 0.7, minIterations: 3 }

/** One combination of hyperparameters. */
export interface Table1Row {
  arch: string
  activation: string
  eta: number
  /** Probed iterations of this combination, and those at the edge of stability. */
  probes: number
  atEdge: number
  /** False when omitted (fewer than minIterations at the edge); the statistics are then null. */
  included: boolean
  topMean: number | null
  topStd: number | null
  bulkMean: number | null
  bulkStd: number | null
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

/** Table 1 from the main-grid probes, rows sorted by architecture, activation, then eta descending (as printed). */
export function computeTable1(probes: readonly ProbeRecord[], opts: Table1Options = PAPER_TABLE1): Table1Row[] {
  const groups = new Map<string, ProbeRecord[]>()
  for (const p of probes) {
    if (p.role !== 'grid') continue
    const key = JSON.stringify([p.arch, p.activation, p.eta])
    const g = groups.get(key)
    if (g === undefined) groups.set(key, [p])
    else g.push(p)
  }
  const rows: Table1Row[] = []
  for (const g of groups.values()) {
    const first = g[0]!
    const edge = g.filter((p) => {
      const r = rhoTopLast(p)
      return r !== undefined && r > opts.rhoThreshold && p.lossChangeTop !== null && p.lossChangeBulk !== null
    })
    const included = edge.length >= opts.minIterations
    const top = edge.map((p) => p.lossChangeTop!)
    const bulk = edge.map((p) => p.lossChangeBulk!)
    rows.push({
      arch: first.arch,
      activation: first.activation,
      eta: first.eta,
      probes: g.length,
      atEdge: edge.length,
      included,
      topMean: included ? mean(top) : null,
      topStd: included ? sampleStd(top) : null,
      bulkMean: included ? mean(bulk) : null,
      bulkStd: included ? sampleStd(bulk) : null,
      instances: edge.map((p) => p.instance).sort(),
    })
  }
  rows.sort((a, b) => (a.arch !== b.arch ? (a.arch < b.arch ? -1 : 1) : a.activation !== b.activation ? (a.activation < b.activation ? -1 : 1) : b.eta - a.eta))
  return rows
}
