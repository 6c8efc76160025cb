/**
 * The audit's short summary: the shape of the audit stage's result (result.json) and the text
 * `npm run pipeline` prints at its end, one block per claim (verdict, our number, the paper's, and
 * the reason when not supported, and what the design could detect). Kept apart from the verdict logic so the CLI imports only this.
 */
export type SummaryVerdict = 'supported' | 'not supported' | 'inconclusive'

/** The audit stage's result (result.json). */
export interface AuditSummary {
  profile: string
  dataset: string
  /** `power` (what the design could detect) is optional so summaries stored by older audits still print. */
  verdicts: { id: string; title: string; verdict: SummaryVerdict; reason: string; ours: string; paper: string; power?: string }[]
}

/** True for a value shaped like an AuditSummary (the CLI reads it back from the store). */
export function isAuditSummary(x: unknown): x is AuditSummary {
  const s = x as AuditSummary
  return typeof s === 'object' && s !== null && typeof s.profile === 'string' && typeof s.dataset === 'string' && Array.isArray(s.verdicts)
}

/** The human summary printed at the end of `npm run pipeline`. */
export function formatSummary(s: AuditSummary): string {
  const lines = [`Claims audit (profile ${s.profile}; data: ${s.dataset})`]
  for (const v of s.verdicts) {
    lines.push(`  ${v.id} ${v.verdict.toUpperCase()}: ${v.title}`)
    lines.push(`     ours:  ${v.ours}`)
    lines.push(`     paper: ${v.paper}`)
    if (v.verdict !== 'supported') lines.push(`     why:   ${v.reason}`)
    if (v.power !== undefined) lines.push(`     power: ${v.power}`)
  }
  return `${lines.join('\n')}\n`
}
