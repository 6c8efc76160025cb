/**
 * What every figure spec shares: the theme, the figure record, the Vega-Lite config built from the
 * theme, the labelled empty panel, solid/dotted line pairs, and small helpers (figure-specs.ts,
 * figure-peak.ts).
 */
import type { TopLevelSpec } from 'vega-lite'
import type { ProbeRecord } from './records.ts'

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

export type Row = Record<string, string | number | null>

export function config(th: Theme): TopLevelSpec['config'] {
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

export function empty(th: Theme, title: string, why: string): TopLevelSpec {
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
export function dashedLines(
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

export const panelOf = (p: ProbeRecord): string => `${p.arch}-${p.activation}`
export const uniq = (xs: string[]): string[] => [...new Set(xs)].sort()
