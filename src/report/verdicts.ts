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
import type { ClaimsFile } from './claims.ts'
import type { StageResults } from './records.ts'
import { judgeC1 } from './c1.ts'
import { judgeC2 } from './c2.ts'
import { judgeC3 } from './c3.ts'
import { judgeC4 } from './c4.ts'
import type { ClaimVerdict } from './claim-verdict.ts'
import { splitTransient, type Excluded } from './transient.ts'

export { groupBy, jnum, verdictOf, type Check, type ClaimVerdict, type JudgeInput, type Verdict } from './claim-verdict.ts'

/** Every claim of the file, judged on the results after the one transient exclusion. */
export function judgeAll(file: ClaimsFile, r: StageResults): { verdicts: ClaimVerdict[]; excluded: Excluded[] } {
  const { kept, excluded } = splitTransient(r.probes, file.transient)
  const results: StageResults = { ...r, probes: kept }
  const judges = { C1: judgeC1, C2: judgeC2, C3: judgeC3, C4: judgeC4 }
  const verdicts = file.claims.map((claim) =>
    judges[claim.id]({ claim, transient: file.transient, level: file.level, power: file.power, results, excluded }),
  )
  return { verdicts, excluded }
}
