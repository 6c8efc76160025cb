/**
 * A `GraphView` as SVG: the Eclipse Layout Kernel (elkjs, its layered algorithm, pure JS) places
 * the nodes and routes the edges; this module only draws what it computed. Deterministic: node
 * sizes come from the label lengths (a monospace font, so no font metrics are needed), ELK's
 * layered layout is deterministic for the same graph, and every coordinate is rounded to 0.01,
 * so the same pipeline gives byte-identical SVG. All text is XML-escaped. elkjs (1.6 MB) is
 * imported on first use, so no other command pays for loading it.
 */
import type { ELK, ElkNode } from 'elkjs/lib/elk-api.js'
import { PALETTE, legendStates, nodeDetail } from './dag-format.ts'
import type { GraphView } from './dag-graph.ts'
import { KEEPERS, type Keeper } from './warm-keepers.ts'

/** Escapes text for XML content and attribute values. */
export function xmlText(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!)
}

export interface SvgOptions {
  /** Prefix of the ids inside the SVG (its arrow marker), unique per page when inlined in HTML. */
  idPrefix?: string
  /** A link per node (e.g. `#stage-train` in the report); none when absent or undefined. */
  href?: (id: string) => string | undefined
  /** The SVG's accessible title. */
  title?: string
}

/** A node's box in the SVG's coordinates. */
export interface NodeBox {
  id: string
  x: number
  y: number
  width: number
  height: number
}

export interface DagSvg {
  svg: string
  width: number
  height: number
  boxes: NodeBox[]
}

const FONT = 12
/** Advance of one character of DejaVu Sans Mono (0.602 em), rounded up. */
const CHAR = 7.3
const PAD = 10
const LINE = 15
const MARGIN = 12

const r2 = (x: number): string => {
  const v = Math.round(x * 100) / 100
  return String(v === 0 ? 0 : v)
}

/** A fresh ELK (CommonJS: its constructor is the module's `default`, typed as the namespace). */
async function newElk(): Promise<ELK> {
  const mod = (await import('elkjs/lib/elk.bundled.js')) as unknown as { default: new () => ELK }
  return new mod.default()
}

/**
 * What elkjs leaves in the process: its first layout installs the global `goog` (GWT's
 * `goog.global`, pointing at globalThis) and stamps GWT identity hashes (`$H`) on the graph it was
 * given; nothing else. Layouts do not depend on earlier ones in the same process (the SVG of a
 * graph laid out again is byte-identical; test/harness/dag.test.ts), so in a warm stage worker the
 * package may stay loaded: a keeper declares `goog` and checks it keeps that one shape, so the job
 * that draws the report's DAG no longer costs its worker. Registered after the first layout, when
 * `goog` exists; a no-op outside a warm worker.
 */
function offerWarmElk(): void {
  const keepers = (globalThis as Record<symbol, unknown>)[KEEPERS]
  if (!(keepers instanceof Map) || keepers.has('elkjs')) return
  const describe = (): string => {
    const g = (globalThis as { goog?: unknown }).goog
    if (g === undefined) return 'absent'
    if (typeof g !== 'object' || g === null) return typeof g
    const keys = Object.keys(g).sort()
    return `${keys.join(',')}${(g as { global?: unknown }).global === globalThis ? ' (global is globalThis)' : ''}`
  }
  const keeper: Keeper = { globals: ['goog'], events: [], state: () => ({ goog: describe() }) }
  keepers.set('elkjs', keeper)
}

/** Lay the view out with elkjs and draw it (nodes, edges, and a legend when coloured). */
export async function dagSvg(view: GraphView, opts: SvgOptions = {}): Promise<DagSvg> {
  const elk = await newElk()
  const prefix = opts.idPrefix ?? 'dag'
  const size = (n: GraphView['nodes'][number]) => ({
    width: Math.ceil(Math.max(n.id.length, nodeDetail(n).length) * CHAR + 2 * PAD),
    height: 2 * LINE + PAD,
  })
  const index = new Map(view.nodes.map((n, i) => [n.id, i]))
  const graph: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.edgeRouting': 'ORTHOGONAL',
      'elk.spacing.nodeNode': '14',
      'elk.layered.spacing.nodeNodeBetweenLayers': '36',
      'elk.layered.considerModelOrder.strategy': 'NODES_AND_EDGES',
      'elk.padding': `[top=${MARGIN},left=${MARGIN},bottom=${MARGIN},right=${MARGIN}]`,
    },
    children: view.nodes.map((n, i) => ({ id: `n${i}`, ...size(n) })),
    edges: view.edges.flatMap((e, i) => {
      const from = index.get(e.from)
      const to = index.get(e.to)
      return from === undefined || to === undefined ? [] : [{ id: `e${i}`, sources: [`n${from}`], targets: [`n${to}`] }]
    }),
  }
  const laid = await elk.layout(graph)
  offerWarmElk()
  const boxes: NodeBox[] = (laid.children ?? []).map((c, i) => ({
    id: view.nodes[i]!.id,
    x: c.x ?? 0,
    y: c.y ?? 0,
    width: c.width ?? 0,
    height: c.height ?? 0,
  }))
  const paths = (laid.edges ?? []).flatMap((e) =>
    (e.sections ?? []).map((s) => {
      const pts = [s.startPoint, ...(s.bendPoints ?? []), s.endPoint]
      return `<path d="M${pts.map((p) => `${r2(p.x)} ${r2(p.y)}`).join(' L')}" marker-end="url(#${prefix}-arrow)"/>`
    }),
  )
  const nodes = boxes.map((b, i) => {
    const n = view.nodes[i]!
    const p = PALETTE[n.state ?? 'none']
    const cx = b.x + b.width / 2
    const body =
      `<rect x="${r2(b.x)}" y="${r2(b.y)}" width="${r2(b.width)}" height="${r2(b.height)}" rx="5" fill="${p.fill}" stroke="${p.stroke}"/>` +
      `<text x="${r2(cx)}" y="${r2(b.y + PAD / 2 + LINE - 3)}" font-weight="bold">${xmlText(n.id)}</text>` +
      `<text x="${r2(cx)}" y="${r2(b.y + PAD / 2 + 2 * LINE - 3)}" fill="#444444">${xmlText(nodeDetail(n))}</text>`
    const title = `<title>${xmlText(n.state === undefined ? n.id : `${n.id}: ${n.state}`)}</title>`
    const href = opts.href?.(n.id)
    const attrs = `class="dag-node" data-id="${xmlText(n.id)}"${n.state !== undefined ? ` data-state="${n.state}"` : ''}`
    return href === undefined ? `<g ${attrs}>${title}${body}</g>` : `<a ${attrs} href="${xmlText(href)}">${title}${body}</a>`
  })
  let width = laid.width ?? 0
  let height = laid.height ?? 0
  const legend: string[] = []
  if (view.states) {
    let x = MARGIN
    for (const s of legendStates(view)) {
      const w = Math.ceil(s.length * CHAR + 2 * PAD)
      legend.push(
        `<g class="dag-legend" data-state="${s}"><title>${xmlText(PALETTE[s].meaning)}</title><rect x="${r2(x)}" y="${r2(height)}" width="${w}" height="${LINE + PAD}" rx="5" fill="${PALETTE[s].fill}" stroke="${PALETTE[s].stroke}"/><text x="${r2(x + w / 2)}" y="${r2(height + PAD / 2 + LINE - 3)}">${s}</text></g>`,
      )
      x += w + PAD
    }
    width = Math.max(width, x + MARGIN - PAD)
    height += LINE + PAD + MARGIN
  }
  const title = opts.title ?? `${view.kind === 'stages' ? 'Stage' : 'Instance'} graph`
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="${r2(width)}" height="${r2(height)}" viewBox="0 0 ${r2(width)} ${r2(height)}" role="img" font-family="DejaVu Sans Mono, monospace" font-size="${FONT}" text-anchor="middle">` +
    `<title>${xmlText(title)}</title>` +
    `<defs><marker id="${xmlText(prefix)}-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8" markerHeight="8" orient="auto"><path d="M0 0 L8 4 L0 8 z" fill="#777777"/></marker></defs>` +
    `<g class="dag-edges" fill="none" stroke="#777777">${paths.join('')}</g>` +
    `<g class="dag-nodes">${nodes.join('')}</g>` +
    (legend.length > 0 ? `<g class="dag-legend-box">${legend.join('')}</g>` : '') +
    `</svg>\n`
  return { svg, width, height, boxes }
}
