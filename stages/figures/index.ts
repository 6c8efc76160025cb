/**
 * Stage `figures`: the paper's Figures 1-6, the peak-lambda_1 regression and Table 1 from the
 * science stages' results, rendered headlessly (Vega-Lite -> SVG -> PNG, src/report/render.ts), and
 * `report.html`: one self-contained page with the figures inline, the claims audit (the audit stage's
 * audit.json), Table 1 and provenance. Outputs: `figures/` (<id>.svg, <id>.png, <id>.vl.json: the
 * spec with its data, and table1.json) and `report.html`. Styling lives in `theme.json` beside this
 * file and nowhere else, so restyling changes only this stage's code digest: only it reruns.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defineStage, type StageContext } from '../../src/harness/stage-api.ts'
import type { AuditRecord } from '../../src/report/audit.ts'
import { allFigures, auditedPeaks, type Theme } from '../../src/report/figure-specs.ts'
import { gatherResults } from '../../src/report/gather.ts'
import { buildReportHtml } from '../../src/report/html.ts'
import { dagSection, stageGraphFromParam } from '../../src/report/dag-section.ts'
import { describeDatasets } from '../../src/report/records.ts'
import { renderSvg, svgToPng } from '../../src/report/render.ts'
import { producersEnv } from '../shared/producers-env.ts'

const THEME = new URL('./theme.json', import.meta.url)

/** Params (schemas/stages/figures.params.schema.json). */
export interface FiguresParams {
  profile: string
  png_scale: number
  /** Filled by the harness (x-cusp-stage-graph): the stage graph the report draws. */
  stage_graph?: unknown
}

export default defineStage(async (ctx: StageContext<FiguresParams>) => {
  const theme = JSON.parse(await readFile(THEME, 'utf8')) as Theme
  const { results, provenance, auditText } = await gatherResults(ctx.inputs)
  const audit = auditText === undefined ? undefined : (JSON.parse(auditText) as AuditRecord)
  const dir = join(ctx.outDir, 'figures')
  await mkdir(dir)
  const figures = allFigures(results, theme, auditedPeaks(audit))
  const rendered = []
  for (const [i, f] of figures.entries()) {
    ctx.progress(i / (figures.length + 1), `rendering ${f.id}`)
    const svg = await renderSvg(f.spec)
    const png = svgToPng(svg, ctx.params.png_scale, theme.font)
    await writeFile(join(dir, `${f.id}.svg`), svg)
    await writeFile(join(dir, `${f.id}.png`), png)
    await writeFile(join(dir, `${f.id}.vl.json`), `${JSON.stringify(f.spec, null, 2)}\n`)
    rendered.push({ figure: f, svg, png: `figures/${f.id}.png` })
  }
  // Table 1 is the audit's (its rule lives in claims.yaml, which this stage does not read).
  const table1 = audit?.table1 ?? []
  await writeFile(join(dir, 'table1.json'), `${JSON.stringify({ paper: table1, edge_set: audit?.table1_edge ?? [] }, null, 2)}\n`)
  const engine = audit?.engine ?? producersEnv(ctx.inputs)
  const dataset = audit?.dataset ?? describeDatasets(results.datasets)
  const dag = await dagSection(stageGraphFromParam(ctx.params.stage_graph))
  const html = buildReportHtml({ figures: rendered, audit, provenance, engine, profile: ctx.params.profile, dataset, dag })
  await writeFile(join(ctx.outDir, 'report.html'), html)
  ctx.progress(1, `${figures.length} figures, report.html`)
  return {
    figures: rendered.map(({ figure: f }) => ({
      id: f.id,
      title: f.title,
      svg: `figures/${f.id}.svg`,
      png: `figures/${f.id}.png`,
      points: f.points,
      instances: f.instances.length,
    })),
    table1_rows: table1.filter((r) => r.included).length,
    report: 'report.html',
  }
})
