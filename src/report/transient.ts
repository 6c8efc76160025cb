/**
 * The initial transient is not the edge of stability: the one place that decides which probes (and
 * which gradient-flow telemetry rows) belong to it, used by every claim and by Table 1. The rule
 * (claims.yaml `transient:`) has two parts: a probe at t = n eta < t_min is transient (the untrained
 * network, paper §5.1 measures time in t); and a run whose first probe has rho_1 >= catapult_rho
 * started above the edge, so its probes before the first one with rho_1 < catapult_rho are the
 * catapult at initialisation, not an edge the training reached.
 */
import type { TransientRule } from './claims.ts'
import type { ProbeRecord } from './records.ts'

/** One excluded probe, with why. */
export interface Excluded {
  instance: string
  series: string
  t: number
  why: 't < t_min' | 'catapult'
}

/** The probes split by the rule; `excluded` lists each probe left out. */
export interface TransientSplit {
  kept: ProbeRecord[]
  excluded: Excluded[]
}

/** Splits probes of any number of runs (grouped by series, ordered by iteration within each). */
export function splitTransient(probes: readonly ProbeRecord[], rule: TransientRule): TransientSplit {
  const bySeries = new Map<string, ProbeRecord[]>()
  for (const p of probes) bySeries.set(p.series, [...(bySeries.get(p.series) ?? []), p])
  const kept: ProbeRecord[] = []
  const excluded: Excluded[] = []
  for (const [series, ps] of bySeries) {
    ps.sort((a, b) => a.iteration - b.iteration)
    const rho1 = (p: ProbeRecord): number => p.rho[0] ?? NaN
    const startsAbove = ps.length > 0 && rho1(ps[0]!) >= rule.catapult_rho
    // The catapult ends at the first probe with rho_1 below catapult_rho (never: the whole run is catapult).
    const catapultEnd = startsAbove ? ps.findIndex((p) => rho1(p) < rule.catapult_rho) : 0
    ps.forEach((p, j) => {
      if (p.t < rule.t_min) excluded.push({ instance: p.instance, series, t: p.t, why: 't < t_min' })
      else if (startsAbove && (catapultEnd < 0 || j < catapultEnd)) excluded.push({ instance: p.instance, series, t: p.t, why: 'catapult' })
      else kept.push(p)
    })
  }
  return { kept, excluded }
}

/** The rule in words, for the audit and the report. */
export function describeRule(rule: TransientRule): string {
  return `probes at t = n·eta < ${rule.t_min}, and, in a run whose first probe has rho_1 >= ${rule.catapult_rho} (it started above the edge), every probe before rho_1 first falls below ${rule.catapult_rho}, are the initial transient and never count as the edge of stability`
}

/** True when a gradient-flow telemetry row at time t belongs to the transient (only the t_min part applies: no rho there). */
export function isTransientT(t: number, rule: TransientRule): boolean {
  return t < rule.t_min
}
