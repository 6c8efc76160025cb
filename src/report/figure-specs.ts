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
import { config, dashedLines, empty, panelOf, uniq, type FigureSpec, type Row, type Theme } from './figure-common.ts'
import { figurePeak, type AuditedPeaks } from './figure-peak.ts'
import type { StageResults } from './records.ts'
import { fmt } from './stats.ts'
import { rhoBulkFirst, rhoTopLast } from './table1.ts'

export type { FigureSpec, Theme } from './figure-common.ts'
export { auditedPeaks, figurePeak, type AuditedPeaks } from './figure-peak.ts'

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

/** Every figure, in the report's order. */
export function allFigures(r: StageResults, th: Theme, audited?: AuditedPeaks): FigureSpec[] {
  return [figure1(r, th), figure2(r, th), figure3(r, th), figure4(r, th), figure5(r, th), figure6(r, th), figurePeak(r, th, audited)]
}
