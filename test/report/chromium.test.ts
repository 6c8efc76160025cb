// report.html in headless Chromium (Debian `chromium`): every figure decodes and is shown, and the
// page logs no console errors or exceptions. Also proves the check can fail: a page with a broken
// image and a script error is caught. Skipped (not failed) when Chromium is absent outside CI.
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { CHROMIUM, inspectInChromium } from './support/chromium.ts'
import { syntheticReport } from './support/synthetic-report.ts'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { stageGraphOf, stageView } from '../../src/harness/dag-graph.ts'
import { dagMermaid } from '../../src/harness/dag-format.ts'
import { dagSection } from '../../src/report/dag-section.ts'
import { ROOT } from './fixtures.ts'

const present = existsSync(CHROMIUM)
if (!present && process.env.CI !== undefined && process.env.CI !== '') t.fail(`${CHROMIUM} is missing (apt-get install chromium)`)

t.test('report.html renders every figure without console errors', { skip: present ? false : `${CHROMIUM} not installed` }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-report-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The report's DAG: the smoke profile's stage graph, as the harness hands it to the figures stage.
  const smoke = analyze({ file: join(ROOT, 'pipeline.yaml'), profile: 'smoke', reader: nodeReader(ROOT) })
  if (!smoke.ok) throw new Error('pipeline.yaml (smoke) does not analyse')
  const graph = stageGraphOf(smoke.value.instances.values())
  const { html } = await syntheticReport(undefined, { dag: await dagSection(graph) })
  const page = join(dir, 'report.html')
  await writeFile(page, html)
  const r = await inspectInChromium(page, { screenshot: true, evaluate: DAG_CHECK })
  t.same(r.errors, [], 'no console errors')
  t.equal(r.figures.length, 7)
  for (const f of r.figures)
    t.ok(f.complete && f.width > 100 && f.height > 100 && f.shownWidth > 100, `${f.id} rendered ${f.width}x${f.height}`)
  t.ok(r.screenshot !== undefined && r.screenshot.length > 10_000, 'a screenshot')
  const dag = r.evaluated as DagCheck
  t.equal(dag.svgs, 1, 'one inline SVG stage graph')
  t.strictSame(dag.nodes.map((n) => n.id).sort(), graph.stages.map((st) => st.name).sort(), 'one node per stage')
  for (const n of dag.nodes) {
    t.ok(n.shown, `${n.id} is drawn (has a box on the page)`)
    t.equal(n.href, `#stage-${n.id}`, `${n.id} links to its entry`)
    t.ok(n.target, `${n.href} resolves to an element of the page`)
  }
  t.ok(dag.anchorsResolve, 'every link inside the DAG section resolves to an element of the page')
  if (process.env.CUSP_REPORT_SCREENSHOT !== undefined && r.screenshot !== undefined)
    await writeFile(process.env.CUSP_REPORT_SCREENSHOT, r.screenshot)

  // The same check on a broken page finds the problems.
  const bad = join(dir, 'bad.html')
  await writeFile(
    bad,
    '<!DOCTYPE html><html><body><figure id="x"><img src="data:image/svg+xml;base64,bm90IGFuIHN2Zw=="></figure><script>console.error("boom"); undefinedFunction()</script></body></html>',
  )
  const b = await inspectInChromium(bad)
  t.ok(b.errors.length >= 2, b.errors.join('\n'))
  t.equal(b.figures[0]?.width, 0, 'the broken image is seen as not rendered')
})

/** Evaluated in the report page: the stage graph's nodes, their links, and whether each link lands. */
const DAG_CHECK = `(() => {
  const svgs = [...document.querySelectorAll('svg.dag')]
  const nodes = [...document.querySelectorAll('svg.dag a.dag-node')].map((a) => {
    const href = a.getAttribute('href') ?? ''
    const box = a.getBoundingClientRect()
    return { id: a.dataset.id, href, target: href.startsWith('#') && document.getElementById(decodeURIComponent(href.slice(1))) !== null, shown: box.width > 10 && box.height > 10 }
  })
  const links = [...document.querySelectorAll('#pipeline ~ ul.dag-stages a, svg.dag a')].map((a) => a.getAttribute('href') ?? '')
  const anchorsResolve = links.length > 0 && links.every((h) => h.startsWith('#') && document.getElementById(h.slice(1)) !== null)
  return { svgs: svgs.length, nodes, anchorsResolve }
})()`
interface DagCheck {
  svgs: number
  nodes: { id: string; href: string; target: boolean; shown: boolean }[]
  anchorsResolve: boolean
}

/** A page that loads Mermaid's browser bundle from node_modules (file:, no network) and parses `text`. */
async function mermaidParse(dir: string, name: string, text: string): Promise<unknown> {
  const bundle = join(ROOT, 'node_modules', 'mermaid', 'dist', 'mermaid.min.js')
  const page = join(dir, `${name}.html`)
  await writeFile(page, `<!DOCTYPE html><html><head><script src="${pathToFileURL(bundle).href}"></script></head><body></body></html>`)
  const expr = `mermaid.parse(${JSON.stringify(text)}).then((r) => ({ ok: true, type: r && r.diagramType }), (e) => ({ ok: false, message: String(e && e.message || e) }))`
  return (await inspectInChromium(page, { evaluate: expr })).evaluated
}

t.test('dag --format mermaid parses with the real Mermaid parser', { skip: present ? false : `${CHROMIUM} not installed` }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-mermaid-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const cpu = analyze({ file: join(ROOT, 'pipeline.yaml'), profile: 'cpu', reader: nodeReader(ROOT) })
  if (!cpu.ok) throw new Error('pipeline.yaml (cpu) does not analyse')
  const graph = stageGraphOf(cpu.value.instances.values())
  // Coloured (classes, legend subgraph) and with names Mermaid would otherwise read as syntax.
  const states = new Map([...cpu.value.instances.keys()].map((id, i) => [id, (['fresh', 'restore', 'run', 'failed'] as const)[i % 4]!]))
  const view = stageView(graph, cpu.value.instances.values(), states)
  view.nodes.push({ id: 'odd "name" #1; <b>&amp;</b> end', detail: 'a|b [c] {d} (e) --> f', state: 'failed' })
  view.edges.push({ from: view.nodes[0]!.id, to: view.nodes.at(-1)!.id, label: 'x"|y' })
  const text = dagMermaid(view)
  t.same(await mermaidParse(dir, 'good', text), { ok: true, type: 'flowchart-v2' }, 'the coloured cpu stage graph parses')
  // The same check fails on broken Mermaid: an unescaped quote inside a label.
  const broken = await mermaidParse(dir, 'bad', 'flowchart LR\n  n0["a "quoted" name"] --> n1\n')
  t.match(broken, { ok: false }, 'a label with a raw quote does not parse')
})
