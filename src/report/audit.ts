/**
 * The audit record (audit.json, schemas/audit.schema.json) and its summary: per claim the central
 * test, its verdict, its power statement and design limits, our numbers with their uncertainty
 * beside the paper's, the side checks, the profile and dataset; the shared rules it applied (the
 * initial-transient exclusion, the interval level and power) with the probes it excluded; Table 1
 * under the paper's definition of the top and with the edge set; and the inputs' provenance. Pure:
 * the stage gathers, this assembles, the CLI prints.
 */
import type { EnvRecord } from '../harness/types.ts'
import type { ClaimsFile, TransientRule } from './claims.ts'
import { table1Options } from './c3.ts'
import type { ProvenanceEntry } from './gather.ts'
import { describeDatasets, type StageResults } from './records.ts'
import { computeTable1, type Table1Row } from './table1.ts'
import type { AuditSummary } from './summary.ts'
import { describeRule, splitTransient, type Excluded } from './transient.ts'
import { judgeAll, type ClaimVerdict } from './verdicts.ts'

export { formatSummary, isAuditSummary, type AuditSummary } from './summary.ts'

/** One claim in audit.json: the verdict plus the paper's sentence and where it was measured. */
export interface AuditClaim extends ClaimVerdict {
  sentence: string
  profile: string
  dataset: string
}

/** The shared rules the audit applied (claims.yaml), with the rule in words. */
export interface AuditRules {
  transient: TransientRule
  transient_text: string
  level: number
  power: number
  /** C3's row rule, so the report states it without its own thresholds. */
  table1: { rho_threshold: number; min_iterations: number }
}

/** audit.json. */
export interface AuditRecord {
  schema: 2
  profile: string
  dataset: string
  engine: EnvRecord
  rules: AuditRules
  /** Probes left out as the initial transient. */
  excluded: Excluded[]
  claims: AuditClaim[]
  /** Table 1, the paper's definition (top = the n_c - 1 leading eigenvectors). */
  table1: Table1Row[]
  /** Table 1 with the edge set {i : rho_i >= threshold} as the top (empty when the probes do not measure it). */
  table1_edge: Table1Row[]
  inputs: ProvenanceEntry[]
}

/** Judges every claim and assembles audit.json; Table 1 uses C3's rule. */
export function buildAudit(
  file: ClaimsFile,
  results: StageResults,
  provenance: ProvenanceEntry[],
  meta: { profile: string; engine: EnvRecord },
): AuditRecord {
  const dataset = describeDatasets(results.datasets)
  const { verdicts, excluded } = judgeAll(file, results)
  const c3 = file.claims.find((c) => c.id === 'C3')
  if (c3 === undefined) throw new Error('claims.yaml has no C3 (parseClaims requires it)')
  const opts = table1Options({ claim: c3, level: file.level, power: file.power })
  const kept = splitTransient(results.probes, file.transient).kept
  return {
    schema: 2,
    profile: meta.profile,
    dataset,
    engine: meta.engine,
    rules: {
      transient: file.transient,
      transient_text: describeRule(file.transient),
      level: file.level,
      power: file.power,
      table1: { rho_threshold: opts.rhoThreshold, min_iterations: opts.minIterations },
    },
    excluded,
    claims: verdicts.map((v, i) => ({ ...v, sentence: file.claims[i]!.sentence, profile: meta.profile, dataset })),
    table1: computeTable1(kept, opts, 'paper'),
    table1_edge: computeTable1(kept, opts, 'edge-set'),
    inputs: provenance,
  }
}

/** The summary kept as the stage's result (what `npm run pipeline` prints). */
export function summarise(a: AuditRecord): AuditSummary {
  return {
    profile: a.profile,
    dataset: a.dataset,
    verdicts: a.claims.map((c) => ({
      id: c.id,
      title: c.title,
      verdict: c.verdict,
      reason: c.reason,
      ours: c.ours,
      paper: c.paper,
      power: c.power,
    })),
  }
}
