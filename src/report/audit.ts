/**
 * The audit record (audit.json, schemas/audit.schema.json) and its summary: the verdicts of every
 * claim with our number beside the paper's, the profile and dataset they were measured on, Table 1,
 * and the inputs' provenance; and the few lines `npm run pipeline` prints at its end from the audit
 * stage's result. Pure: the stage gathers, this assembles, the CLI prints.
 */
import type { EnvRecord } from '../harness/types.ts'
import type { Claim } from './claims.ts'
import type { ProvenanceEntry } from './gather.ts'
import { describeDatasets, type StageResults } from './records.ts'
import { computeTable1, type Table1Row } from './table1.ts'
import type { AuditSummary } from './summary.ts'
import { judgeAll, type ClaimVerdict } from './verdicts.ts'

export { formatSummary, isAuditSummary, type AuditSummary } from './summary.ts'

/** One claim in audit.json: the verdict plus the paper's sentence and where it was measured. */
export interface AuditClaim extends ClaimVerdict {
  sentence: string
  profile: string
  dataset: string
}

/** audit.json. */
export interface AuditRecord {
  schema: 1
  profile: string
  dataset: string
  engine: EnvRecord
  claims: AuditClaim[]
  table1: Table1Row[]
  inputs: ProvenanceEntry[]
}

/** Judges every claim and assembles audit.json. Table 1 uses C3's thresholds when given (the paper's otherwise). */
export function buildAudit(claims: readonly Claim[], results: StageResults, provenance: ProvenanceEntry[], meta: { profile: string; engine: EnvRecord }): AuditRecord {
  const dataset = describeDatasets(results.datasets)
  const c3 = claims.find((c) => c.id === 'C3')
  const rhoThreshold = typeof c3?.params.rho_threshold === 'number' ? c3.params.rho_threshold : 0.7
  const minIterations = typeof c3?.params.min_iterations === 'number' ? c3.params.min_iterations : 3
  const verdicts = judgeAll(claims, results)
  return {
    schema: 1,
    profile: meta.profile,
    dataset,
    engine: meta.engine,
    claims: verdicts.map((v, i) => ({ ...v, sentence: claims[i]!.sentence, profile: meta.profile, dataset })),
    table1: computeTable1(results.probes, { rhoThreshold, minIterations }),
    inputs: provenance,
  }
}

/** The summary kept as the stage's result. */
export function summarise(a: AuditRecord): AuditSummary {
  return {
    profile: a.profile,
    dataset: a.dataset,
    verdicts: a.claims.map((c) => ({ id: c.id, title: c.title, verdict: c.verdict, reason: c.reason, ours: c.ours, paper: c.paper })),
  }
}
