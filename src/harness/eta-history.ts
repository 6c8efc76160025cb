/**
 * The I/O side of the plan's ETA (eta.ts is the pure side): the run records of the store give
 * each planned stage's earlier durations, and the host's `workSize` (FLOPs, wired in src/main.ts)
 * gives the work size of each planned instance and of each earlier run. A run record keeps its
 * params and its inputs' digests, not its upstream's params, so an earlier run is rebuilt as an
 * instance from its record, with each upstream rebuilt from the record that produced the input's
 * digest (the size of a train run depends on its dataset's size). Only read when something will
 * run; a store that cannot be listed gives no history, never an error.
 */
import { etaPlan, type EtaPlan, type PastRun, type PlannedRun } from './eta.ts'
import type { WorkSizeFn } from './host.ts'
import type { Reporter } from './reporter.ts'
import type { ExecEvent } from './run-types.ts'
import type { ArtifactStore, InstanceDep, PlanStep, RunRecord, StageInstance, ValidPipeline } from './types.ts'

export interface EtaInput {
  store: ArtifactStore
  pipeline: ValidPipeline
  steps: readonly PlanStep[]
  /** Job slots of the run (`--jobs`, else the machine's parallelism). */
  slots: number
  /** A remote runner: every instance takes one slot, whatever its CPUs. */
  remote: boolean
  workSize?: WorkSizeFn | undefined
}

/**
 * Feeds a reporter its ETA: on the plan event, reads the history in the background and hands the
 * estimate over when read (`settled()` waits for that; the CLI waits before a dry run's end).
 */
export function etaFeed(
  reporter: Pick<Reporter, 'setEta'>,
  o: Omit<EtaInput, 'steps'>,
): { onEvent(e: ExecEvent): void; settled(): Promise<void> } {
  let pending: Promise<void> = Promise.resolve()
  return {
    onEvent(e) {
      if (e.type !== 'plan') return
      pending = loadEtaPlan({ ...o, steps: e.steps }).then(
        (p) => reporter.setEta(p),
        () => undefined, // an ETA is never worth failing a run for
      )
    },
    settled: () => pending,
  }
}

/** The ETA of the plan's runs, or undefined when nothing will run. */
export async function loadEtaPlan(o: EtaInput): Promise<EtaPlan | undefined> {
  const runs = o.steps.filter((s) => s.action === 'run')
  if (runs.length === 0) return undefined
  let records: RunRecord[] = []
  try {
    records = await o.store.listRuns()
  } catch {
    records = [] // no history: the ETA says so
  }
  const lookup = (id: string): StageInstance | undefined => o.pipeline.instances.get(id)
  const planned: PlannedRun[] = []
  for (const s of runs) {
    const inst = lookup(s.instance)
    if (inst === undefined) continue
    planned.push({
      id: inst.id,
      stage: inst.stage,
      deps: inst.deps.map((d) => d.instance),
      weight: o.remote ? 1 : inst.resources.cpu,
      size: o.workSize?.(inst, lookup),
    })
  }
  const stages = new Set(planned.map((p) => p.stage))
  const past = records.filter((r) => stages.has(r.stage))
  const sizeOf = recordSizer(o.pipeline, records, o.workSize)
  const history = past.map((r): PastRun => ({ stage: r.stage, ms: r.durationMs, size: sizeOf(r) }))
  return etaPlan(planned, history, o.slots)
}

/** The work size of an earlier run, from its record and the records of its upstream. */
export function recordSizer(
  pipeline: ValidPipeline,
  records: readonly RunRecord[],
  workSize: WorkSizeFn | undefined,
): (r: RunRecord) => number | undefined {
  if (workSize === undefined) return () => undefined
  const implOf = new Map([...pipeline.instances.values()].map((i) => [i.stage, i.impl]))
  const byDigest = new Map<string, RunRecord[]>()
  for (const r of records) {
    for (const out of Object.values(r.outputs)) byDigest.set(out.digest, [...(byDigest.get(out.digest) ?? []), r])
  }
  /** The record's instance and the records that produced its inputs. */
  const rebuild = (r: RunRecord): { inst: StageInstance; producers: RunRecord[] } | undefined => {
    const impl = implOf.get(r.stage)
    if (impl === undefined) return undefined
    const deps: InstanceDep[] = []
    const producers: RunRecord[] = []
    for (const [key, digest] of Object.entries(r.breakdown.inputs)) {
      for (const c of byDigest.get(digest) ?? []) {
        const name = Object.keys(c.outputs).find((n) => c.outputs[n]?.digest === digest && key.endsWith(`/${c.instance}/${n}`))
        if (name === undefined) continue
        deps.push({ as: key.slice(0, key.length - c.instance.length - name.length - 2), instance: c.instance, output: name })
        producers.push(c)
        break
      }
    }
    const inst: StageInstance = {
      id: r.instance,
      stage: r.stage,
      impl,
      matrix: {},
      params: r.breakdown.params,
      deps,
      outputs: [],
      resources: { cpu: 1, memory: '1Gi', gpu: 0 },
    }
    return { inst, producers }
  }
  return (r) => {
    const self = rebuild(r)
    if (self === undefined) return undefined
    // The upstream chain, a few levels deep (a probe's checkpoints' dataset).
    const chain = new Map<string, StageInstance>()
    let frontier = self.producers
    for (let depth = 0; depth < 4 && frontier.length > 0; depth++) {
      const next: RunRecord[] = []
      for (const p of frontier) {
        if (chain.has(p.instance)) continue
        const b = rebuild(p)
        if (b === undefined) continue
        chain.set(p.instance, b.inst)
        next.push(...b.producers)
      }
      frontier = next
    }
    try {
      return workSize(self.inst, (id) => chain.get(id))
    } catch {
      return undefined
    }
  }
}
