/**
 * A `GraphView` (dag-graph.ts) as text, Mermaid or Graphviz DOT. Names are any text, so each
 * format escapes them its own way: Mermaid gets generated node ids (`n0`, `n1`, ...) and every
 * name only inside a quoted label with `"`, `#`, `<`, `>` and `&` written as Mermaid entity codes;
 * DOT gets every id and label double-quoted with `\` and `"` escaped. Colours and the legend
 * come from one palette (`PALETTE`), shared with the SVG (dag-svg.ts).
 */
import { countsText, STATES, type GraphView, type NodeState, type ViewNode } from './dag-graph.ts'

/** Fill and stroke per state, and for nodes without one. */
export const PALETTE: Record<NodeState | 'none', { fill: string; stroke: string; meaning: string }> = {
  fresh: { fill: '#dcefdc', stroke: '#3b7d3b', meaning: 'fresh: up to date, nothing to do' },
  restore: { fill: '#dbe7f8', stroke: '#35609c', meaning: 'restore: outputs in the store, copied back' },
  run: { fill: '#fbe8c8', stroke: '#a86a00', meaning: 'run: will be computed' },
  failed: { fill: '#f6d2d2', stroke: '#a83232', meaning: 'failed: the last run failed' },
  none: { fill: '#f3f3f3', stroke: '#555555', meaning: '' },
}

/** The states a legend lists: those present, in the palette's order. */
export function legendStates(view: GraphView): NodeState[] {
  const present = new Set(view.nodes.map((n) => n.state))
  return STATES.filter((s) => present.has(s))
}

/** The node's second line: its detail, plus its counts when states were asked for. */
export function nodeDetail(n: ViewNode): string {
  const counts = countsText(n.counts)
  return counts === '' ? n.detail : `${n.detail}: ${counts}`
}

/** One line per node in topological order with what it reads; a legend line when coloured. */
export function dagText(view: GraphView): string {
  const into = new Map<string, string[]>()
  for (const e of view.edges) into.set(e.to, [...(into.get(e.to) ?? []), `${e.from} (${e.label})`])
  const width = Math.max(0, ...view.nodes.map((n) => n.id.length))
  const lines = view.nodes.map((n) => {
    const state = view.states ? `  [${n.state ?? 'not planned'}]` : ''
    const from = into.get(n.id)
    return `${n.id.padEnd(width)}  ${nodeDetail(n)}${state}${from === undefined ? '' : `  <- ${from.join('; ')}`}`
  })
  const kind = view.kind === 'stages' ? 'stage' : 'instance'
  const head = `${view.nodes.length} ${kind}${view.nodes.length === 1 ? '' : 's'}, ${view.edges.length} edge${view.edges.length === 1 ? '' : 's'}`
  const legend = view.states ? [`states: ${STATES.join(', ')} (a stage shows its worst instance)`] : []
  return `${[head, ...lines, ...legend].join('\n')}\n`
}

/** Text inside a Mermaid quoted label: entity codes for the characters Mermaid would read. */
export function mermaidText(s: string): string {
  return s.replace(/[#"<>&]/g, (c) => `#${c.charCodeAt(0)};`).replace(/[\r\n]+/g, ' ')
}

/** A Mermaid flowchart (left to right); classes colour the nodes, a legend subgraph explains them. */
export function dagMermaid(view: GraphView): string {
  const ids = new Map(view.nodes.map((n, i) => [n.id, `n${i}`]))
  const lines = ['flowchart LR']
  for (const n of view.nodes) lines.push(`  ${ids.get(n.id)}["${mermaidText(n.id)}<br/>${mermaidText(nodeDetail(n))}"]`)
  for (const e of view.edges) {
    const from = ids.get(e.from)
    const to = ids.get(e.to)
    if (from !== undefined && to !== undefined) lines.push(`  ${from} -->|"${mermaidText(e.label)}"| ${to}`)
  }
  if (view.states) {
    const shown = legendStates(view)
    lines.push('  subgraph legend["legend"]')
    for (const s of shown) lines.push(`    legend_${s}["${mermaidText(PALETTE[s].meaning)}"]`)
    lines.push('  end')
    for (const s of STATES) lines.push(`  classDef ${s} fill:${PALETTE[s].fill},stroke:${PALETTE[s].stroke}`)
    for (const s of shown) {
      const members = view.nodes.filter((n) => n.state === s).map((n) => ids.get(n.id)!)
      lines.push(`  class ${[...members, `legend_${s}`].join(',')} ${s}`)
    }
  }
  return `${lines.join('\n')}\n`
}

/** A DOT double-quoted string (ids and labels): backslash and quote escaped, newlines as `\n`. */
export function dotString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n')}"`
}

/** A Graphviz digraph (left to right); node fill by state and a legend cluster when coloured. */
export function dagDot(view: GraphView): string {
  const lines = [
    'digraph cusp {',
    '  rankdir=LR;',
    '  node [shape=box, style="rounded,filled", fontname="DejaVu Sans", fontsize=11];',
    '  edge [fontname="DejaVu Sans", fontsize=9, color="#777777"];',
  ]
  for (const n of view.nodes) {
    const p = PALETTE[n.state ?? 'none']
    // The label is escaped as a whole, then joined by DOT's line break `\n` (outside any name).
    const label = `${dotString(n.id).slice(0, -1)}\\n${dotString(nodeDetail(n)).slice(1)}`
    lines.push(`  ${dotString(n.id)} [label=${label}, fillcolor=${dotString(p.fill)}, color=${dotString(p.stroke)}];`)
  }
  for (const e of view.edges) lines.push(`  ${dotString(e.from)} -> ${dotString(e.to)} [label=${dotString(e.label)}];`)
  if (view.states) {
    lines.push('  subgraph cluster_legend {', '    label="legend";')
    for (const s of legendStates(view))
      lines.push(
        `    ${dotString(`legend: ${s}`)} [label=${dotString(PALETTE[s].meaning)}, fillcolor=${dotString(PALETTE[s].fill)}, color=${dotString(PALETTE[s].stroke)}];`,
      )
    lines.push('  }')
  }
  lines.push('}')
  return `${lines.join('\n')}\n`
}
