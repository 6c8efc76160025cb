/**
 * Headless rendering of the declarative figure specs: Vega-Lite -> Vega -> SVG in Node with the
 * `none` renderer (no browser, no canvas; text widths are estimated), then SVG -> PNG with resvg
 * using the system fonts. No filesystem access: callers write the returned text and bytes.
 */
import { Resvg } from '@resvg/resvg-js'
import * as vega from 'vega'
import { compile, type TopLevelSpec } from 'vega-lite'

/** The SVG text of a Vega-Lite spec. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** A PNG of an SVG at `scale` pixels per SVG pixel, on a white background, text in `font` (a system font family). */
export function svgToPng(svg: string, scale: number, font: string): Uint8Array {
  const r = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: font },
  })
  return r.render().asPng()
}
