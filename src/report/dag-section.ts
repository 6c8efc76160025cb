/**
 * The report's "Pipeline" section: the stage graph the harness hands the figures stage (its
 * `stage_graph` param, src/harness/dag-graph.ts) drawn inline as SVG laid out by elkjs
 * (src/harness/dag-svg.ts), each node a link to that stage's entry below it (`#stage-<name>`),
 * which says what the stage is, how many instances it has, what it reads and which parts of the
 * report use it. Pure: the same graph gives the same HTML, byte for byte.
 */
import { stageView, type StageGraph } from '../harness/dag-graph.ts'
import { dagSvg } from '../harness/dag-svg.ts'
import { esc } from './html.ts'

/** The anchor of a stage's entry in the report. */
export function stageAnchor(stage: string): string {
  return `stage-${stage.replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}_`)}`
}

/** Where in the report a stage's outputs are used, besides its own entry. */
const USED_IN: Record<string, { href: string; text: string }> = {
  audit: { href: '#audit', text: 'the claims audit' },
  figures: { href: '#figures', text: 'the figures' },
}

/** The section's HTML (heading, inline SVG, one entry per stage); empty without a graph. */
export async function dagSection(graph: StageGraph | undefined): Promise<string> {
  if (graph === undefined || graph.stages.length === 0) return ''
  const view = stageView(graph)
  const { svg } = await dagSvg(view, { idPrefix: 'report-dag', href: (id) => `#${stageAnchor(id)}`, title: 'The pipeline: stage graph' })
  const into = new Map<string, string[]>()
  const outOf = new Map<string, string[]>()
  for (const e of graph.edges) {
    into.set(e.to, [...(into.get(e.to) ?? []), `<a href="#${stageAnchor(e.from)}">${esc(e.from)}</a> (${esc(e.outputs.join(', '))})`])
    outOf.set(e.from, [...(outOf.get(e.from) ?? []), `<a href="#${stageAnchor(e.to)}">${esc(e.to)}</a>`])
  }
  const items = view.nodes.map((n) => {
    const s = graph.stages.find((x) => x.name === n.id)!
    const reads = into.get(s.name)
    const readBy = outOf.get(s.name)
    const used = USED_IN[s.impl]
    return (
      `<li id="${stageAnchor(s.name)}"><b>${esc(s.name)}</b> (<code>stages/${esc(s.impl)}</code>): ${s.instances} instance${s.instances === 1 ? '' : 's'}` +
      `${reads === undefined ? '' : `; reads ${reads.join(', ')}`}${readBy === undefined ? '' : `; read by ${readBy.join(', ')}`}` +
      `${used === undefined ? '' : `; see <a href="${used.href}">${used.text}</a>`}.</li>`
    )
  })
  return `<h2 id="pipeline">Pipeline</h2>
<p>The stages that produced this report, with the number of instances each ran (its matrix), laid out by the Eclipse Layout Kernel (elkjs). Each stage links to its entry below.</p>
<div class="dag-figure" style="overflow-x: auto">${svg.trimEnd()}</div>
<ul class="dag-stages">${items.join('')}</ul>`
}

/** The graph from the figures stage's `stage_graph` param, re-derived so only known fields are drawn. */
export function stageGraphFromParam(value: unknown): StageGraph | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const g = value as Partial<StageGraph>
  if (!Array.isArray(g.stages) || !Array.isArray(g.edges)) return undefined
  return {
    stages: g.stages.map((s) => ({ name: String(s.name), impl: String(s.impl), instances: Number(s.instances) })),
    edges: g.edges.map((e) => ({
      from: String(e.from),
      to: String(e.to),
      outputs: (Array.isArray(e.outputs) ? e.outputs : []).map(String),
    })),
  }
}
