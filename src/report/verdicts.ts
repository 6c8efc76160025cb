/**
 * The claims audit's verdict logic: measured stage results + claims.yaml (each claim's thresholds,
 * and the shared transient rule, interval level and power) -> supported / not supported /
 * inconclusive. Each claim has ONE central test, which alone decides the headline verdict; side
 * checks are reported beside it and never folded in. Each verdict states its power (what the design
 * could have detected) and its design limits, and every number carries its uncertainty. The initial
 * transient is removed once, here, before any claim sees the probes (src/report/transient.ts).
 * C1: §5.1 (Figures 1-2) in c1.ts; C2: §5.2 (Figure 4) in c2.ts; C3: §5.3 (Table 1) in c3.ts;
 * C4: §5.4 (Figures 5-6) in c4.ts. Tests feed synthetic results that flip every verdict.
 */
import type { JsonObject } from '../harness/types.ts'
import type { Claim, ClaimsFile, TransientRule } from './claims.ts'
import type { StageResults } from './records.ts'
import { judgeC1 } from './c1.ts'
import { judgeC2 } from './c2.ts'
import { judgeC3 } from './c3.ts'
import { judgeC4 } from './c4.ts'
import { splitTransient, type Excluded } from './transient.ts'

export type Verdict = 'supported' | 'not supported' | 'inconclusive'

/** One check of a claim: the central test (decides the verdict) or a side check (reported beside it). */
export interface Check {
  name: string
  role: 'central' | 'side'
  verdict: Verdict
  detail: string
}

/** What the audit says about one claim. */
export interface ClaimVerdict {
  id: string
  title: string
  /** The central test's verdict. */
  verdict: Verdict
  /** Why, from the central test. */
  reason: string
  /** The central test, in words, with its thresholds. */
  central: string
  /** What this design could detect (its power), with the numbers that set it. */
  power: string
  /** What the design cannot show. */
  limits: string[]
  /** Our number(s) with their uncertainty, in words. */
  ours: string
  /** The paper's number, from claims.yaml. */
  paper: string
  /** The central check first, then the side checks. */
  checks: Check[]
  /** The numbers behind `ours`, for machines. */
  measured: JsonObject
  /** The stage instances whose results decided it. */
  instances: string[]
}

/** What every judge gets: its claim, the shared rules, the results with the transient removed. */
export interface JudgeInput {
  claim: Claim
  transient: TransientRule
  level: number
  power: number
  /** Results whose probes exclude the initial transient. */
  results: StageResults
  excluded: Excluded[]
}

/** A claim's verdict from its central check; side checks ride along. */
export function verdictOf(claim: Claim, central: Check, sides: Check[], rest: Pick<ClaimVerdict, 'central' | 'power' | 'limits' | 'ours' | 'measured' | 'instances'>): ClaimVerdict {
  return {
    id: claim.id,
    title: claim.title,
    verdict: central.verdict,
    reason: central.detail,
    paper: claim.paper_value,
    checks: [central, ...sides],
    ...rest,
    instances: [...new Set(rest.instances)].sort(),
  }
}

export function groupBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>()
  for (const x of xs) {
    const k = key(x)
    const g = m.get(k)
    if (g === undefined) m.set(k, [x])
    else g.push(x)
  }
  return m
}

/** A number or null (JSON has no NaN). */
export const jnum = (x: number | undefined | null): number | null => (x === undefined || x === null || !Number.isFinite(x) ? null : x)

/** Every claim of the file, judged on the results after the one transient exclusion. */
export function judgeAll(file: ClaimsFile, r: StageResults): { verdicts: ClaimVerdict[]; excluded: Excluded[] } {
  const { kept, excluded } = splitTransient(r.probes, file.transient)
  const results: StageResults = { ...r, probes: kept }
  const judges = { C1: judgeC1, C2: judgeC2, C3: judgeC3, C4: judgeC4 }
  const verdicts = file.claims.map((claim) => judges[claim.id]({ claim, transient: file.transient, level: file.level, power: file.power, results, excluded }))
  return { verdicts, excluded }
}
