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
import { judgeAll, type ClaimVerdict, type Verdict } from './verdicts.ts'

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

/** The audit stage's result (result.json): what the CLI prints. */
export interface AuditSummary {
  profile: string
  dataset: string
  verdicts: { id: string; title: string; verdict: Verdict; reason: string; ours: string; paper: string }[]
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

/** True for a value shaped like an AuditSummary (the CLI reads it back from the store). */
export function isAuditSummary(x: unknown): x is AuditSummary {
  const s = x as AuditSummary
  return typeof s === 'object' && s !== null && typeof s.profile === 'string' && Array.isArray(s.verdicts)
}

/** The human summary printed at the end of `npm run pipeline`: one block per claim. */
export function formatSummary(s: AuditSummary): string {
  const lines = [`Claims audit (profile ${s.profile}; data: ${s.dataset})`]
  for (const v of s.verdicts) {
    lines.push(`  ${v.id} ${v.verdict.toUpperCase()}: ${v.title}`)
    lines.push(`     ours:  ${v.ours}`)
    lines.push(`     paper: ${v.paper}`)
    if (v.verdict !== 'supported') lines.push(`     why:   ${v.reason}`)
  }
  return `${lines.join('\n')}\n`
}
