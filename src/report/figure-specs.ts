/**
 * The paper's figures as declarative Vega-Lite specs, built from `StageResults` with the same axes
 * and encodings as the captions: Figure 1 (rho_{n_c-1} solid, rho_{n_c} dotted vs t = n eta, colour
 * = eta, one panel per architecture/activation), Figure 2 (the same per class count, colour = n_c),
 * Figure 3 (||P_top g|| solid, ||P_bulk g|| dotted), Figure 4 (rho_1..rho_{n_c-1} and |d_i| of the
 * densely probed run), Figure 5 (lambda_1 vs t of the gradient-flow runs, colour = n_D, one panel per
 * activation), Figure 6 (L(theta* + Delta h_1) - L(theta*) vs Delta, colour = n_D), and the peak
 * lambda_1 vs n_D with the audit's least-squares line and R^2 (only when the audit shows them). Styling comes from a `Theme` (the figures
 * stage's theme.json), so restyling changes no data. A figure without data is a labelled empty panel.
 */
import type { TopLevelSpec } from 'vega-lite'
import type { ProbeRecord, StageResults } from './records.ts'
import { fmt } from './stats.ts'
import { rhoBulkFirst, rhoTopLast } from './table1.ts'

/** Colours, sizes and fonts (stages/figures/theme.json). */
export interface Theme {
  font: string
  fontSize: number
  titleFontSize: number
  width: number
  height: number
  strokeWidth: number
  pointSize: number
  /** A Vega colour scheme name. */
  scheme: string
  dash: { solid: number[]; dotted: number[] }
  background: string
  fitColor: string
}

/** One figure: its id, caption title, spec, and what fed it. */
export interface FigureSpec {
  id: string
  title: string
  caption: string
  spec: TopLevelSpec
  /** Data rows plotted. */
  points: number
  /** Stage instances whose outputs fed it. */
  instances: string[]
}

type Row = Record<string, string | number | null>

function config(th: Theme): TopLevelSpec['config'] {
  return {
    font: th.font,
    background: th.background,
    axis: { labelFontSize: th.fontSize, titleFontSize: th.fontSize },
    legend: { labelFontSize: th.fontSize, titleFontSize: th.fontSize },
    header: { labelFontSize: th.fontSize, titleFontSize: th.fontSize },
    title: { fontSize: th.titleFontSize },
    range: { category: { scheme: th.scheme } },
    line: { strokeWidth: th.strokeWidth, point: { size: th.pointSize, filled: true } },
    view: { stroke: '#bbbbbb' },
  }
}

function empty(th: Theme, title: string, why: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: th.width,
    height: th.height,
    data: { values: [{ text: `no data: ${why}` }] },
    mark: { type: 'text', fontSize: th.fontSize },
    encoding: { text: { field: 'text', type: 'nominal' } },
    config: config(th),
  }
}

/** Solid/dotted line pairs: `kind` holds the two labels, in (solid, dotted) order. */
function dashedLines(
  th: Theme,
  rows: Row[],
  o: {
    title: string
    x: string
    xTitle: string
    y: string
    yTitle: string
    color: string
    colorTitle: string
    kinds: [string, string]
    panel?: string
    yLog?: boolean
  },
): TopLevelSpec {
  const unit = {
    width: th.width,
    height: th.height,
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: o.x, type: 'quantitative' as const, title: o.xTitle },
      y: { field: o.y, type: 'quantitative' as const, title: o.yTitle, ...(o.yLog === true ? { scale: { type: 'log' as const } } : {}) },
      color: { field: o.color, type: 'nominal' as const, title: o.colorTitle, sort: 'ascending' as const },
      strokeDash: {
        field: 'kind',
        type: 'nominal' as const,
        title: null,
        scale: { domain: o.kinds, range: [th.dash.solid, th.dash.dotted] },
      },
      detail: { field: 'series', type: 'nominal' as const },
    },
  }
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title: o.title, data: { values: rows }, config: config(th) }
  return (
    o.panel !== undefined
      ? { ...base, facet: { column: { field: o.panel, type: 'nominal', title: null } }, spec: unit }
      : { ...base, ...unit }
  ) as TopLevelSpec
}

const panelOf = (p: ProbeRecord): string => `${p.arch}-${p.activation}`
const uniq = (xs: string[]): string[] => [...new Set(xs)].sort()

/** Figure 1: rho_{n_c-1} (solid) and rho_{n_c} (dotted) vs t, colour = eta, a panel per architecture/activation. */
export function figure1(r: StageResults, th: Theme): FigureSpec {
  const grid = r.probes.filter((p) => p.role === 'grid')
  const nc = grid[0]?.classes ?? 10
  const kinds: [string, string] = [`ρ${nc - 1} (top)`, `ρ${nc} (bulk)`]
  const rows: Row[] = grid
    .flatMap((p) => [
      { panel: panelOf(p), t: p.t, eta: String(p.eta), kind: kinds[0], value: rhoTopLast(p) ?? null, series: p.series },
      { panel: panelOf(p), t: p.t, eta: String(p.eta), kind: kinds[1], value: rhoBulkFirst(p) ?? null, series: p.series },
    ])
    .filter((x) => x.value !== null)
  const title = 'Figure 1: Edge of Stability'
  return {
    id: 'figure-1',
    title,
    caption: `ρ${nc - 1} = η/η*${nc - 1} (solid) and ρ${nc} (dotted) against t = nη; colour = learning rate; one panel per architecture and activation.`,
    spec:
      rows.length === 0
        ? empty(th, title, 'no main-grid probes')
        : dashedLines(th, rows, {
            title,
            x: 't',
            xTitle: 't = nη',
            y: 'value',
            yTitle: 'ρ',
            color: 'eta',
            colorTitle: 'η',
            kinds,
            panel: 'panel',
          }),
    points: rows.length,
    instances: uniq(grid.map((p) => p.instance)),
  }
}

/** Figure 2: rho_{n_c-1} (solid) and rho_{n_c} (dotted) per class count (the main grid's matching run as n_c = 10). */
export function figure2(r: StageResults, th: Theme): FigureSpec {
  const cls = r.probes.filter((p) => p.role === 'classes')
  const eta = cls[0]?.eta
  const grid = r.probes.filter((p) => p.role === 'grid')
  const arch = grid.find((p) => p.activation === 'relu')?.arch
  const main = eta === undefined ? [] : grid.filter((p) => p.eta === eta && p.activation === 'relu' && p.arch === arch)
  const used = [...cls, ...main]
  const kinds: [string, string] = ['ρ(n_c−1) (top)', 'ρ(n_c) (bulk)']
  const rows: Row[] = used
    .flatMap((p) => [
      { t: p.t, classes: String(p.classes).padStart(2, ' '), kind: kinds[0], value: rhoTopLast(p) ?? null, series: p.series },
      { t: p.t, classes: String(p.classes).padStart(2, ' '), kind: kinds[1], value: rhoBulkFirst(p) ?? null, series: p.series },
    ])
    .filter((x) => x.value !== null)
  const title = 'Figure 2: Edge of Stability and n_c'
  return {
    id: 'figure-2',
    title,
    caption: 'ρ_{n_c−1} (solid) and ρ_{n_c} (dotted) against t = nη; colour = number of classes.',
    spec:
      rows.length === 0
        ? empty(th, title, 'no class-count probes')
        : dashedLines(th, rows, { title, x: 't', xTitle: 't = nη', y: 'value', yTitle: 'ρ', color: 'classes', colorTitle: 'n_c', kinds }),
    points: rows.length,
    instances: uniq(used.map((p) => p.instance)),
  }
}

/** Figure 3: ||P_top g|| (solid) and ||P_bulk g|| (dotted) vs t, colour = eta, a panel per architecture/activation. */
export function figure3(r: StageResults, th: Theme): FigureSpec {
  const grid = r.probes.filter((p) => p.role === 'grid')
  const kinds: [string, string] = ['‖P_top g‖', '‖P_bulk g‖']
  const rows: Row[] = grid
    .flatMap((p) => [
      { panel: panelOf(p), t: p.t, eta: String(p.eta), kind: kinds[0], value: p.topNorm, series: p.series },
      { panel: panelOf(p), t: p.t, eta: String(p.eta), kind: kinds[1], value: p.bulkNorm, series: p.series },
    ])
    .filter((x) => x.value !== null)
  const title = 'Figure 3: Gradient Concentration'
  return {
    id: 'figure-3',
    title,
    caption: '‖P_top g‖ (solid) and ‖P_bulk g‖ (dotted) against t = nη; colour = learning rate; one panel per architecture and activation.',
    spec:
      rows.length === 0
        ? empty(th, title, 'no main-grid probes')
        : dashedLines(th, rows, {
            title,
            x: 't',
            xTitle: 't = nη',
            y: 'value',
            yTitle: 'gradient component norm',
            color: 'eta',
            colorTitle: 'η',
            kinds,
            panel: 'panel',
          }),
    points: rows.length,
    instances: uniq(grid.map((p) => p.instance)),
  }
}

/** Figure 4: rho_1..rho_{n_c-1} (left) and |d_i| = |h_i . g| (right) of the densely probed run, colour = i. */
export function figure4(r: StageResults, th: Theme): FigureSpec {
  const dense = r.probes.filter((p) => p.role === 'dense')
  const rows: Row[] = []
  for (const p of dense) {
    const nTop = Math.max(1, p.classes - 1)
    for (let i = 0; i < nTop; i++) {
      const rho = p.rho[i]
      const d = p.d[i]
      if (rho !== undefined && Number.isFinite(rho)) rows.push({ t: p.t, i: `${i + 1}`.padStart(2, ' '), quantity: 'ρ_i', value: rho })
      if (d !== undefined && Number.isFinite(d))
        rows.push({ t: p.t, i: `${i + 1}`.padStart(2, ' '), quantity: '|d_i|', value: Math.abs(d) })
    }
  }
  const title = 'Figure 4: Entering the Edge of Stability'
  const eta = dense[0]?.eta
  const panel = (q: string, yTitle: string) => ({
    width: th.width,
    height: th.height,
    transform: [{ filter: { field: 'quantity', equal: q } }],
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: { field: 't', type: 'quantitative' as const, title: 't = nη' },
      y: { field: 'value', type: 'quantitative' as const, title: yTitle },
      color: { field: 'i', type: 'nominal' as const, title: 'i' },
    },
  })
  const spec: TopLevelSpec =
    rows.length === 0
      ? empty(th, title, 'no dense-run probes')
      : ({
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title: `${title} (η = ${eta})`,
          data: { values: rows },
          hconcat: [panel('ρ_i', 'ρ_i'), panel('|d_i|', '|d_i| = |h_i · g|')],
          config: config(th),
        } as TopLevelSpec)
  return {
    id: 'figure-4',
    title,
    caption:
      'Left: ρ_1 … ρ_{n_c−1}; right: |d_i| = |h_i · g|, for the run probed every few iterations; colour = eigenvector i; horizontal axis t = nη.',
    spec,
    points: rows.length,
    instances: uniq(dense.map((p) => p.instance)),
  }
}

/** Figure 5: lambda_1 vs t of the gradient-flow runs, colour = n_D, a panel per activation. */
export function figure5(r: StageResults, th: Theme): FigureSpec {
  const rows: Row[] = r.flows.flatMap((f) =>
    f.rows
      .filter((x) => x.lambda1 !== null)
      .map((x) => ({
        activation: f.activation,
        nData: String(f.nData ?? '?').padStart(6, ' '),
        t: x.t,
        lambda1: x.lambda1,
        series: f.instance,
      })),
  )
  const title = 'Figure 5: Peak Curvature'
  const spec: TopLevelSpec =
    rows.length === 0
      ? empty(th, title, 'no gradient-flow telemetry with λ_1')
      : ({
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          config: config(th),
          facet: { column: { field: 'activation', type: 'nominal', title: null } },
          spec: {
            width: th.width,
            height: th.height,
            mark: { type: 'line' },
            encoding: {
              x: { field: 't', type: 'quantitative', title: 't' },
              y: { field: 'lambda1', type: 'quantitative', title: 'λ_1' },
              color: { field: 'nData', type: 'nominal', title: 'n_D' },
              detail: { field: 'series', type: 'nominal' },
            },
          },
          resolve: { scale: { y: 'independent' } },
        } as TopLevelSpec)
  return {
    id: 'figure-5',
    title,
    caption:
      'λ_1 over gradient-flow training (η = min(η_max, 0.5/λ_1)); colour = dataset size n_D; left ReLU, right tanh; horizontal axis t.',
    spec,
    points: rows.length,
    instances: uniq(r.flows.filter((f) => f.rows.some((x) => x.lambda1 !== null)).map((f) => f.instance)),
  }
}

/** Figure 6: the loss change along h_1 around the peak-curvature point, colour = n_D. */
export function figure6(r: StageResults, th: Theme): FigureSpec {
  const rows: Row[] = r.scans
    .flatMap((s) =>
      s.deltas.map((d, i) => ({
        delta: d,
        change: s.changes[i] ?? null,
        nData: String(s.nData).padStart(6, ' '),
        activation: s.activation,
        series: s.instance,
      })),
    )
    .filter((x) => x.change !== null)
  const title = 'Figure 6: Cusp Formation'
  const spec: TopLevelSpec =
    rows.length === 0
      ? empty(th, title, 'no cusp scans')
      : ({
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          config: config(th),
          width: th.width,
          height: th.height,
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'delta', type: 'quantitative', title: 'Δ (displacement along h_1)' },
            y: { field: 'change', type: 'quantitative', title: 'L(θ* + Δh_1) − L(θ*)' },
            color: { field: 'nData', type: 'nominal', title: 'n_D' },
            detail: { field: 'series', type: 'nominal' },
          },
        } as TopLevelSpec)
  return {
    id: 'figure-6',
    title,
    caption: 'Change in the training loss along h_1 around θ*, the snapshot of peak λ_1; colour = dataset size n_D.',
    spec,
    points: rows.length,
    instances: uniq(r.scans.map((s) => s.instance)),
  }
}

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

/** Every figure, in the report's order. */
export function allFigures(r: StageResults, th: Theme, audited?: AuditedPeaks): FigureSpec[] {
  return [figure1(r, th), figure2(r, th), figure3(r, th), figure4(r, th), figure5(r, th), figure6(r, th), figurePeak(r, th, audited)]
}
