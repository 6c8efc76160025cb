/**
 * The peak lambda_1 vs n_D figure with the audit's least-squares line and R^2 (shown only when the
 * audit shows them: never for fewer sizes than claims.yaml's C4 minimum), and the reader of the
 * audit's C4 numbers it draws.
 */
import type { TopLevelSpec } from 'vega-lite'
import { config, empty, uniq, type FigureSpec, type Row, type Theme } from './figure-common.ts'
import type { StageResults } from './records.ts'
import { fmt } from './stats.ts'

/** The audited C4 numbers the peak figure shows (audit.json's C4 `measured`), when an audit is given. */
export interface AuditedPeaks {
  activation: string
  minSizes: number
  r2Shown: boolean
  peaks: { nData: number; peak: number }[]
  slope: number | null
  intercept: number | null
  r2: number | null
  r2Lo: number | null
  r2Hi: number | null
}

/** Reads the C4 entry of an audit record (audit.json read back as JSON). */
export function auditedPeaks(
  audit: { claims: readonly { id: string; measured: Record<string, unknown> }[] } | undefined,
  activation = 'relu',
): AuditedPeaks | undefined {
  const m = audit?.claims.find((c) => c.id === 'C4')?.measured
  if (m === undefined || typeof m.min_sizes !== 'number') return undefined
  const n = (v: unknown): number | null => (typeof v === 'number' ? v : null)
  const peaks = Array.isArray(m.peaks)
    ? (m.peaks as { n_data: number; peak_lambda_1: number }[]).map((p) => ({ nData: p.n_data, peak: p.peak_lambda_1 }))
    : []
  return {
    activation,
    minSizes: m.min_sizes,
    r2Shown: m.r2_shown === true,
    peaks,
    slope: n(m.slope_mean),
    intercept: n(m.intercept_mean),
    r2: n(m.r2_mean),
    r2Lo: n(m.r2_lo),
    r2Hi: n(m.r2_hi),
  }
}

/**
 * Peak lambda_1 vs n_D: the audited points (certified runs, seeds pooled) with the least-squares line
 * and R^2 only when the audit shows them (at least its minimum number of sizes); without an audit,
 * the raw peak of every run and no line.
 */
export function figurePeak(r: StageResults, th: Theme, audited?: AuditedPeaks): FigureSpec {
  const rows: Row[] = []
  const notes: string[] = []
  const instances = uniq(r.flows.filter((f) => f.rows.some((x) => x.lambda1 !== null)).map((f) => f.instance))
  if (audited !== undefined) {
    for (const p of audited.peaks) rows.push({ activation: audited.activation, nData: p.nData, peak: p.peak, kind: 'measured' })
    if (audited.r2Shown && audited.slope !== null && audited.intercept !== null) {
      for (const p of audited.peaks)
        rows.push({ activation: audited.activation, nData: p.nData, peak: audited.intercept + audited.slope * p.nData, kind: 'fit' })
      notes.push(
        `${audited.activation}: R² = ${fmt(audited.r2)} [${fmt(audited.r2Lo)}, ${fmt(audited.r2Hi)}] (mean-reduced), ${audited.peaks.length} sizes`,
      )
    } else notes.push(`${audited.activation}: ${audited.peaks.length} size(s): no line or R² below ${audited.minSizes} sizes`)
  } else {
    for (const f of r.flows) {
      let peak: number | undefined
      for (const x of f.rows) if (x.lambda1 !== null && (peak === undefined || x.lambda1 > peak)) peak = x.lambda1
      if (peak !== undefined && f.nData !== null) rows.push({ activation: f.activation, nData: f.nData, peak, kind: 'measured' })
    }
    notes.push('no audit: the raw peak of every run, no fit')
  }
  const title = 'Peak λ_1 against n_D'
  const spec: TopLevelSpec =
    rows.length === 0
      ? empty(th, title, 'no gradient-flow telemetry with λ_1')
      : ({
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title: { text: title, subtitle: notes },
          data: { values: rows },
          config: config(th),
          width: th.width,
          height: th.height,
          layer: [
            {
              transform: [{ filter: { field: 'kind', equal: 'measured' } }],
              mark: { type: 'point', filled: true, size: th.pointSize * 3 },
              encoding: {
                x: { field: 'nData', type: 'quantitative', title: 'n_D' },
                y: { field: 'peak', type: 'quantitative', title: 'peak λ_1' },
                color: { field: 'activation', type: 'nominal', title: 'activation' },
              },
            },
            {
              transform: [{ filter: { field: 'kind', equal: 'fit' } }],
              mark: { type: 'line', strokeDash: th.dash.dotted, color: th.fitColor },
              encoding: {
                x: { field: 'nData', type: 'quantitative' },
                y: { field: 'peak', type: 'quantitative' },
                detail: { field: 'activation', type: 'nominal' },
              },
            },
          ],
        } as TopLevelSpec)
  return {
    id: 'figure-peak',
    title,
    caption: `Peak λ_1 of the gradient-flow runs against the dataset size (seeds of a size pooled, runs certified past their peak), with the least-squares line (dotted) when the audit shows one. ${notes.join('; ')}.`,
    spec,
    points: rows.length,
    instances,
  }
}
