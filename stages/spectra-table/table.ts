/**
 * The tidy spectra table: one row per (spectrum-probe instance, eigenvalue rank), with the
 * instance's coordinates, read from each probe.json as the probe wrote it (nothing recomputed:
 * rho is the probe's own rho_i = eta * lambda_i / 2). A probe of a checkpoint the run never
 * reached (`present: false`) has no rows; it is listed in `absent`. Rows are ordered by dep name,
 * instance id and rank, so the same probe files always give the same bytes.
 */
import type { StageInput } from '../../src/harness/stage-api.ts'

/** The columns, in CSV order. */
export const COLUMNS = [
  'stage',
  'instance',
  'model',
  'activation',
  'eta',
  'seed',
  'classes',
  'n_data',
  'checkpoint',
  'iteration',
  't',
  'rank',
  'eigenvalue',
  'rho',
  'd',
  'residual',
  'loss',
  'grad_norm',
] as const

export type Row = Record<(typeof COLUMNS)[number], string | number | null>

export interface ProbeFile {
  /** The probe instance (`probe@arch=mlp,...`) and its params, as the harness materialised them. */
  input: Pick<StageInput, 'instance' | 'params'>
  /** probe.json's text. */
  text: string
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null)
const str = (x: unknown): string | null => (typeof x === 'string' ? x : null)
const at = (xs: unknown, i: number): number | null => (Array.isArray(xs) ? num(xs[i]) : null)

/** Rows of every probe file, and the instances whose checkpoint was never reached. */
export function spectraRows(files: readonly ProbeFile[]): { rows: Row[]; absent: string[] } {
  const rows: Row[] = []
  const absent: string[] = []
  for (const { input, text } of files) {
    const j = JSON.parse(text) as Record<string, unknown>
    if (j.present === false) {
      absent.push(input.instance)
      continue
    }
    if (!Array.isArray(j.eigenvalues)) throw new Error(`${input.instance}: probe.json has no eigenvalues (is it a spectrum-probe output?)`)
    const p = input.params
    const base = {
      stage: input.instance.split('@')[0] ?? input.instance,
      instance: input.instance,
      model: str(j.arch) ?? str(p.arch),
      activation: str(j.activation) ?? str(p.activation),
      eta: num(j.eta) ?? num(p.eta),
      seed: num(j.seed) ?? num(p.seed),
      classes: num(j.classes) ?? num(p.classes),
      n_data: num(j.n_data) ?? num(p.n_data),
      checkpoint: num(p.checkpoint),
      iteration: num(j.iteration),
      t: num(j.t),
      loss: num(j.loss),
      grad_norm: num(j.grad_norm),
    }
    j.eigenvalues.forEach((lambda, i) => {
      rows.push({ ...base, rank: i + 1, eigenvalue: num(lambda), rho: at(j.rho, i), d: at(j.d, i), residual: at(j.residuals, i) })
    })
  }
  return { rows, absent }
}

function csvField(v: string | number | null): string {
  if (v === null) return '' // NA in R's read.csv and pandas' read_csv
  if (typeof v === 'number') return String(v) // shortest text that reads back as the same double
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v
}

/** RFC 4180 CSV with a header line; missing values empty. */
export function toCsv(rows: readonly Row[]): string {
  const lines = [COLUMNS.join(',')]
  for (const r of rows) lines.push(COLUMNS.map((c) => csvField(r[c])).join(','))
  return `${lines.join('\n')}\n`
}

/** A JSON array of row objects (pandas.read_json / jsonlite::fromJSON give a data frame). */
export function toJson(rows: readonly Row[]): string {
  return `${JSON.stringify(
    rows.map((r) => Object.fromEntries(COLUMNS.map((c) => [c, r[c]]))),
    null,
    1,
  )}\n`
}
