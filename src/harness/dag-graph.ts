/**
 * The pipeline as a graph to draw: the stage graph (one node per stage with its matrix size, one
 * edge per stage that reads another's outputs) and the instance graph (one node per instance),
 * optionally coloured by plan state. Pure functions of a `ValidPipeline` and a plan; every list is
 * sorted, so the same pipeline gives the same graph, byte for byte, whatever order it was built in.
 *
 * The canonical stage graph (`StageGraph`) is also what a stage may ask for as a param: a params
 * schema marking a top-level property `"x-cusp-stage-graph": true` gets the graph of the pipeline
 * it runs in as that param's value, filled by the analyzer (`injectStageGraph`). Being a param, it
 * is part of the instance's fingerprint: editing the DAG (a stage, a dep, a matrix size) reruns
 * such a stage, an unrelated edit (another stage's params) does not. It holds no params, so a
 * param edit elsewhere leaves it unchanged.
 */
import { sortKeysDeep } from './overrides.ts'
import type { JsonObject, PlanAction, PlanStep, StageInstance } from './types.ts'

/** The schema keyword that asks the analyzer for the stage graph (see the module comment). */
export const STAGE_GRAPH_MARK = 'x-cusp-stage-graph'

/** One stage: its name, its implementation directory name and how many instances its matrix has. */
export interface GraphStage {
  name: string
  impl: string
  instances: number
}

/** Stage `to` reads outputs `outputs` (sorted, distinct) of stage `from`. */
export interface GraphEdge {
  from: string
  to: string
  outputs: string[]
}

/** The canonical stage graph: stages and edges sorted by name. JSON data (it may be a param). */
export interface StageGraph {
  stages: GraphStage[]
  edges: GraphEdge[]
}

/** What a node is coloured by: the plan's action, or `failed` (from a run's events). */
export type NodeState = PlanAction | 'failed'
/** Worst first: a stage takes the state of its worst instance. */
export const STATES: readonly NodeState[] = ['failed', 'run', 'restore', 'fresh']

/** A drawable node: what every format (text, mermaid, dot, svg) renders. */
export interface ViewNode {
  /** The stage or instance id (any text; each format escapes it). */
  id: string
  /** The second line: the matrix size, or the instance's stage. */
  detail: string
  /** The node's colour (its worst instance's state); absent when states were not asked for. */
  state?: NodeState
  /** Per state, how many instances are in it (stage graph with states only). */
  counts?: Partial<Record<NodeState, number>>
}

export interface ViewEdge {
  from: string
  to: string
  /** The outputs that flow along it (for labels). */
  label: string
}

/** A graph ready to draw: nodes in a topological order (ties by id), edges sorted. */
export interface GraphView {
  kind: 'stages' | 'instances'
  nodes: ViewNode[]
  edges: ViewEdge[]
  /** Whether nodes carry states (then every format draws a legend). */
  states: boolean
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** The canonical stage graph of a pipeline's instances (stages without instances are absent). */
export function stageGraphOf(instances: Iterable<StageInstance>): StageGraph {
  const list = [...instances]
  const stageOf = new Map(list.map((i) => [i.id, i.stage]))
  const stages = new Map<string, GraphStage>()
  const edges = new Map<string, { from: string; to: string; outputs: Set<string> }>()
  for (const i of list) {
    const s = stages.get(i.stage) ?? { name: i.stage, impl: i.impl.replace(/^stages\//, ''), instances: 0 }
    s.instances++
    stages.set(i.stage, s)
    for (const d of i.deps) {
      const from = stageOf.get(d.instance)
      if (from === undefined) continue
      const key = JSON.stringify([from, i.stage])
      const e = edges.get(key) ?? { from, to: i.stage, outputs: new Set<string>() }
      e.outputs.add(d.output)
      edges.set(key, e)
    }
  }
  return {
    stages: [...stages.values()].sort((a, b) => byText(a.name, b.name)),
    edges: [...edges.values()]
      .map((e) => ({ from: e.from, to: e.to, outputs: [...e.outputs].sort(byText) }))
      .sort((a, b) => byText(a.from, b.from) || byText(a.to, b.to)),
  }
}

/** The stage graph as the JSON value a marked param gets (keys sorted). */
export function stageGraphParam(graph: StageGraph): JsonObject {
  return sortKeysDeep(graph) as unknown as JsonObject
}

/** Top-level param names a params schema marks with `x-cusp-stage-graph: true`. */
export function stageGraphParams(schemaText: string | undefined): string[] {
  if (schemaText === undefined || !schemaText.includes(STAGE_GRAPH_MARK)) return []
  let schema: unknown
  try {
    schema = JSON.parse(schemaText)
  } catch {
    return [] // the analyzer reports a broken schema itself
  }
  const props = (schema as { properties?: unknown } | null)?.properties
  if (typeof props !== 'object' || props === null) return []
  return Object.entries(props as Record<string, unknown>)
    .filter(([, sub]) => typeof sub === 'object' && sub !== null && (sub as Record<string, unknown>)[STAGE_GRAPH_MARK] === true)
    .map(([k]) => k)
    .sort(byText)
}

/**
 * Give every instance whose params schema marks a param (`marked(impl)`) the stage graph of
 * `instances` as that param's value, replacing whatever was written there. Mutates the params.
 */
export function injectStageGraph(instances: readonly StageInstance[], marked: (impl: string) => string[]): void {
  let param: JsonObject | undefined
  const cache = new Map<string, string[]>()
  for (const inst of instances) {
    let keys = cache.get(inst.impl)
    if (keys === undefined) cache.set(inst.impl, (keys = marked(inst.impl.replace(/^stages\//, ''))))
    if (keys.length === 0) continue
    param ??= stageGraphParam(stageGraphOf(instances))
    const params: JsonObject = { ...inst.params }
    for (const k of keys) params[k] = param
    inst.params = sortKeysDeep(params) as JsonObject
  }
}

/** Kahn's order over ids with ties broken by id: deterministic, deps first. */
function topoOrder(ids: readonly string[], edges: readonly { from: string; to: string }[]): string[] {
  const indegree = new Map(ids.map((id) => [id, 0]))
  const out = new Map<string, string[]>()
  for (const e of edges) {
    indegree.set(e.to, (indegree.get(e.to) ?? 0) + 1)
    out.set(e.from, [...(out.get(e.from) ?? []), e.to])
  }
  const ready = ids.filter((id) => indegree.get(id) === 0).sort(byText)
  const order: string[] = []
  while (ready.length > 0) {
    const id = ready.shift()!
    order.push(id)
    for (const to of out.get(id) ?? []) {
      const left = (indegree.get(to) ?? 1) - 1
      indegree.set(to, left)
      if (left === 0) {
        ready.push(to)
        ready.sort(byText)
      }
    }
  }
  return order
}

/** The state of each instance: the plan's action, overridden by `failed` for instances that failed. */
export function instanceStates(steps: readonly PlanStep[], failed: ReadonlySet<string> = new Set()): Map<string, NodeState> {
  const states = new Map<string, NodeState>(steps.map((s) => [s.instance, s.action]))
  for (const id of failed) states.set(id, 'failed')
  return states
}

const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`

/** The stage graph as a view; with `states`, each stage coloured by its worst instance. */
export function stageView(graph: StageGraph, instances?: Iterable<StageInstance>, states?: ReadonlyMap<string, NodeState>): GraphView {
  const nodes = new Map<string, ViewNode>(graph.stages.map((s) => [s.name, { id: s.name, detail: plural(s.instances, 'instance') }]))
  if (states !== undefined && instances !== undefined) {
    for (const inst of instances) {
      const node = nodes.get(inst.stage)
      const st = states.get(inst.id)
      if (node === undefined || st === undefined) continue
      node.counts = { ...node.counts, [st]: (node.counts?.[st] ?? 0) + 1 }
      if (node.state === undefined || STATES.indexOf(st) < STATES.indexOf(node.state)) node.state = st
    }
  }
  const edges = graph.edges.map((e) => ({ from: e.from, to: e.to, label: e.outputs.join(', ') }))
  const order = topoOrder([...nodes.keys()], edges)
  return { kind: 'stages', nodes: order.map((id) => nodes.get(id)!), edges, states: states !== undefined }
}

/** The instance graph as a view (one edge per producer/consumer pair, its outputs as the label). */
export function instanceView(instances: Iterable<StageInstance>, states?: ReadonlyMap<string, NodeState>): GraphView {
  const byId = new Map([...instances].map((i) => [i.id, i]))
  const edges = new Map<string, ViewEdge & { outs: Set<string> }>()
  for (const inst of byId.values()) {
    for (const d of inst.deps) {
      if (!byId.has(d.instance)) continue
      const key = JSON.stringify([d.instance, inst.id])
      const e = edges.get(key) ?? { from: d.instance, to: inst.id, label: '', outs: new Set<string>() }
      e.outs.add(d.output)
      edges.set(key, e)
    }
  }
  const list = [...edges.values()]
    .map(({ from, to, outs }) => ({ from, to, label: [...outs].sort(byText).join(', ') }))
    .sort((a, b) => byText(a.from, b.from) || byText(a.to, b.to))
  const order = topoOrder([...byId.keys()], list)
  const nodes = order.map((id): ViewNode => {
    const st = states?.get(id)
    return { id, detail: byId.get(id)!.stage, ...(st !== undefined ? { state: st } : {}) }
  })
  return { kind: 'instances', nodes, edges: list, states: states !== undefined }
}

/** `3 run, 2 fresh`: a node's counts, worst first. */
export function countsText(counts: ViewNode['counts']): string {
  return STATES.filter((s) => (counts?.[s] ?? 0) > 0)
    .map((s) => `${counts?.[s] ?? 0} ${s}`)
    .join(', ')
}
