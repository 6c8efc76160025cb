// Figures from synthetic results: every figure renders headlessly to SVG and PNG with the encodings
// of its caption (solid and dotted series, the colour legend's title, axis titles), a figure without
// data renders as a labelled empty panel, and the page holds every figure, the audit and Table 1.
import t from 'tap'
import { allFigures } from '../../src/report/figure-specs.ts'
import { renderSvg } from '../../src/report/render.ts'
import { supportedResults } from './fixtures.ts'
import { syntheticReport, THEME } from './support/synthetic-report.ts'

t.test('all figures render with their encodings; the page holds them', async (t) => {
  const { html, svgs, pngs } = await syntheticReport()
  t.same([...svgs.keys()], ['figure-1', 'figure-2', 'figure-3', 'figure-4', 'figure-5', 'figure-6', 'figure-peak'])
  for (const [id, png] of pngs) t.same([...png.slice(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${id}: a PNG`)
  const f1 = svgs.get('figure-1')!
  t.match(f1, /t = nη/)
  t.match(f1, /ρ9 \(top\)/)
  t.match(f1, /ρ10 \(bulk\)/)
  t.match(f1, /stroke-dasharray="2,3"/, 'dotted rho_10')
  t.match(f1, /mlp-relu/)
  t.match(f1, /mlp-tanh/)
  t.match(svgs.get('figure-2')!, /n_c/)
  t.match(svgs.get('figure-3')!, /‖P_bulk g‖/)
  t.match(svgs.get('figure-4')!, /\|d_i\| = \|h_i · g\|/)
  t.match(svgs.get('figure-5')!, /λ_1/)
  t.match(svgs.get('figure-6')!, /L\(θ\* \+ Δh_1\) − L\(θ\*\)/)
  t.match(svgs.get('figure-peak')!, /R² = 0\.9998 \(mean-reduced\)/)
  t.equal((html.match(/<figure /g) ?? []).length, 7)
  t.match(html, /<table id="audit">/)
  t.match(html, /<table id="table-1">/)
  t.notMatch(html, /https?:\/\/(?!vega\.github\.io)/, 'no network references')
})

t.test('a figure without data is a labelled empty panel', async (t) => {
  const r = supportedResults()
  const figs = allFigures({ ...r, scans: [], flows: [] }, THEME)
  const f6 = figs.find((f) => f.id === 'figure-6')!
  t.equal(f6.points, 0)
  t.match(await renderSvg(f6.spec), /no data: no cusp scans/)
})
