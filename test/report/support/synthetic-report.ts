// Builds report.html from the synthetic results (fixtures.ts) through the same helpers the figures
// stage uses: figure specs, headless rendering, the audit, the page. For the figures and Chromium tests.
import { buildAudit } from '../../../src/report/audit.ts'
import { allFigures, auditedPeaks, type Theme } from '../../../src/report/figure-specs.ts'
import type { ProvenanceEntry } from '../../../src/report/gather.ts'
import { buildReportHtml } from '../../../src/report/html.ts'
import type { StageResults } from '../../../src/report/records.ts'
import { renderSvg, svgToPng } from '../../../src/report/render.ts'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoClaimsFile, ROOT, supportedResults } from '../fixtures.ts'

export const THEME = JSON.parse(readFileSync(join(ROOT, 'stages', 'figures', 'theme.json'), 'utf8')) as Theme

/** Renders every figure and the page; also returns the PNGs. */
export async function syntheticReport(
  results: StageResults = supportedResults(),
  extra: { dag?: string } = {},
): Promise<{ html: string; svgs: Map<string, string>; pngs: Map<string, Uint8Array> }> {
  const provenance: ProvenanceEntry[] = results.probes
    .slice(0, 5)
    .map((p) => ({ dep: 'probes', instance: p.instance, output: 'probe.json', digest: '0'.repeat(64) }))
  const engine = { backend: 'wasm', versions: { '@tensorflow/tfjs-core': '4.22.0' } }
  const audit = buildAudit(repoClaimsFile(), results, provenance, { profile: 'synthetic', engine })
  const svgs = new Map<string, string>()
  const pngs = new Map<string, Uint8Array>()
  const figures = []
  for (const f of allFigures(results, THEME, auditedPeaks(audit))) {
    const svg = await renderSvg(f.spec)
    svgs.set(f.id, svg)
    pngs.set(f.id, svgToPng(svg, 1, THEME.font))
    figures.push({ figure: f, svg, png: `figures/${f.id}.png` })
  }
  const html = buildReportHtml({ figures, audit, provenance, engine, profile: 'synthetic', dataset: audit.dataset, ...extra })
  return { html, svgs, pngs }
}
