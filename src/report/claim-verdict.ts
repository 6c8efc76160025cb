/**
 * The vocabulary every claim's judge (c1.ts .. c4.ts) shares with the verdict logic (verdicts.ts):
 * a verdict, a check, a claim's verdict record and the judge's input, and the small helpers that
 * build them. Its own module so that the judges and verdicts.ts import it rather than each other.
 */
import type { JsonObject } from '../core/vocabulary.ts'
import type { Claim, TransientRule } from './claims.ts'
import type { StageResults } from './records.ts'
import type { Excluded } from './transient.ts'

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
export function verdictOf(
  claim: Claim,
  central: Check,
  sides: Check[],
  rest: Pick<ClaimVerdict, 'central' | 'power' | 'limits' | 'ours' | 'measured' | 'instances'>,
): ClaimVerdict {
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
