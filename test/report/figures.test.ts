// Figures from synthetic results: every figure renders headlessly to SVG and PNG with the encodings
// of its caption (solid and dotted series, the colour legend's title, axis titles), a figure without
// data renders as a labelled empty panel, and the page holds every figure, the audit and Table 1.
import t from 'tap'
import { buildAudit } from '../../src/report/audit.ts'
import { allFigures, auditedPeaks, figurePeak } from '../../src/report/figure-specs.ts'
import { buildReportHtml } from '../../src/report/html.ts'
import { renderSvg } from '../../src/report/render.ts'
import { repoClaimsFile, supportedResults } from './fixtures.ts'
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
  t.match(svgs.get('figure-peak')!, /R² = 0\.9999 \[0\.9998, 1\] \(mean-reduced\)/)
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

t.test("the peak figure shows no line and no R^2 below the audit's minimum number of sizes", async (t) => {
  const r = supportedResults()
  const two = { ...r, flows: r.flows.filter((f) => f.nData !== 400) }
  const engine = { backend: 'wasm', versions: {} }
  const audit = buildAudit(repoClaimsFile(), two, [], { profile: 'x', engine })
  const f = figurePeak(two, THEME, auditedPeaks(audit))
  const svg = await renderSvg(f.spec)
  t.notMatch(svg, /R² =/)
  t.match(f.caption, /2 size\(s\): no line or R² below 3 sizes/)
  t.notMatch(JSON.stringify(f.spec), /"kind":"fit"/, 'no fitted points')
})

t.test("the report states the audit's thresholds, power and limits, none of its own", async (t) => {
  const file = repoClaimsFile()
  const c3 = file.claims.find((c) => c.id === 'C3')!
  const changed = {
    ...file,
    claims: file.claims.map((c) => (c === c3 ? { ...c, params: { ...c.params, rho_threshold: 0.8, min_iterations: 4 } } : c)),
  }
  const engine = { backend: 'wasm', versions: {} }
  const audit = buildAudit(changed, supportedResults(), [], { profile: 'x', engine })
  const html = buildReportHtml({ figures: [], audit, provenance: [], engine, profile: 'x', dataset: 'd' })
  t.match(html, /ρ_\(n_c−1\) &gt; 0\.8; combinations with fewer than 4 such probes/)
  t.notMatch(html, /fewer than three|&gt; 0\.7;/)
  for (const c of audit.claims)
    t.ok(
      html.includes(
        c.power.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;'),
      ),
      `${c.id}: power statement on the page`,
    )
  t.match(html, /design limits/)
  t.match(html, /Initial transient: probes at t = n·eta &lt; 1/)
  t.match(html, /<table id="table-1-edge">|Not measured: the probes carry no edge-set step changes/)
})

t.test("Table 1 on the page names each row's class count (a 2-class row is not a 10-class one)", async (t) => {
  const engine = { backend: 'wasm', versions: {} }
  const audit = buildAudit(repoClaimsFile(), supportedResults(), [], { profile: 'x', engine })
  const html = buildReportHtml({ figures: [], audit, provenance: [], engine, profile: 'x', dataset: 'd' })
  const table = html.slice(html.indexOf('<table id="table-1">'), html.indexOf('</table>', html.indexOf('<table id="table-1">')))
  t.match(table, /<th>n_D<\/th><th>n_c<\/th>/)
  const rows = table.split('<tr').slice(2)
  t.equal(rows.length, audit.table1.length)
  audit.table1.forEach((r, i) =>
    t.match(
      rows[i]!,
      new RegExp(`<td class="num">${r.nData ?? '—'}</td><td class="num">${r.classes}</td>`),
      `${r.arch} eta ${r.eta} n_c ${r.classes}`,
    ),
  )
  t.ok(audit.table1.some((r) => r.classes === 2) && audit.table1.some((r) => r.classes === 10), 'rows of 2 and 10 classes')
})
