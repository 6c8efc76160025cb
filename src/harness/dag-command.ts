/**
 * `npm run pipeline -- dag`: the pipeline as a picture. The stage graph (one node per stage with
 * its matrix size) or, with `--instances`, the instance graph, as text, Mermaid, Graphviz DOT or
 * SVG (laid out by elkjs: dag-svg.ts). With `--state` it plans exactly as `--dry-run` does (the
 * lock and the store are read, nothing is written) and colours each node by its plan state; with
 * `--events FILE` instances that failed in that run (`run --json` lines) are coloured failed.
 * `--stage` limits the picture to the selection and its upstream, the instances a run would touch.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { DagFlags } from './dag-args.ts'
import { dagDot, dagMermaid, dagText } from './dag-format.ts'
import { instanceStates, instanceView, stageGraphOf, stageView, type GraphView, type NodeState } from './dag-graph.ts'
import { dagSvg } from './dag-svg.ts'
import { selectInstances } from './planner.ts'
import { plan } from './run-pipeline.ts'
import type { RunOptions } from './run-types.ts'
import { fail, ok, type Failure, type Result } from './types.ts'

/** What `dag --state` plans with: the same options `status` plans with. */
export type DagPlanOptions = Omit<RunOptions, 'onEvent'>

/** The text `dag` prints for these flags, or the failures that stopped it. */
export async function dagOutput(flags: DagFlags, opts: DagPlanOptions, cwd: string): Promise<Result<string, Failure[]>> {
  let states: Map<string, NodeState> | undefined
  if (flags.state) {
    const steps = await plan(opts)
    if (!steps.ok) return steps
    const failed = flags.events === undefined ? new Set<string>() : await failedIn(resolve(cwd, flags.events))
    if (!(failed instanceof Set)) return fail([failed])
    states = instanceStates(steps.value, failed)
  }
  // --stage: the selection and its ancestry, as a run would touch them.
  const chosen = selectInstances(opts.pipeline, opts.targets, false)
  if (!chosen.ok) return chosen
  const instances = [...opts.pipeline.instances.values()].filter((i) => chosen.value.has(i.id))
  const view: GraphView = flags.instances ? instanceView(instances, states) : stageView(stageGraphOf(instances), instances, states)
  switch (flags.format) {
    case 'text':
      return ok(dagText(view))
    case 'mermaid':
      return ok(dagMermaid(view))
    case 'dot':
      return ok(dagDot(view))
    case 'svg':
      return ok((await dagSvg(view, { title: `cusp ${view.kind === 'stages' ? 'stage' : 'instance'} graph` })).svg)
  }
}

/** Instances a `run --json` event stream reports as failed (its `failed` events and summary). */
async function failedIn(file: string): Promise<Set<string> | Failure> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e)
    return { reason: 'usage', message: `--events ${file}: cannot be read (${code}); pass the output of \`npm run pipeline -- --json\`` }
  }
  const failed = new Set<string>()
  for (const [n, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    let e: unknown
    try {
      e = JSON.parse(line)
    } catch {
      return { reason: 'usage', message: `--events ${file}:${n + 1}: not a JSON line; pass the output of \`npm run pipeline -- --json\`` }
    }
    if (typeof e !== 'object' || e === null) continue
    const ev = e as { type?: unknown; instance?: unknown; outcomes?: unknown }
    if (ev.type === 'failed' && typeof ev.instance === 'string') failed.add(ev.instance)
    if (ev.type === 'summary' && typeof ev.outcomes === 'object' && ev.outcomes !== null)
      for (const [id, o] of Object.entries(ev.outcomes as Record<string, { outcome?: unknown }>))
        if (o?.outcome === 'failed') failed.add(id)
  }
  return failed
}
