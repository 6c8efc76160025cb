/**
 * `export --format argo`: the pipeline's DAG as an Argo Workflows `Workflow` (argoproj.io/v1alpha1),
 * for clusters where Argo, not the cusp process, should schedule. One DAG task per instance that
 * is not already a cache hit in the store (hits are left out, and a dependency on one is dropped:
 * its outputs are in the store, where run-stage reads them), with `dependencies` on the tasks of
 * its upstream instances. One container template per stage (and resource shape), taking the
 * instance id as a parameter and running the image's entrypoint `cusp run-stage <id> --store
 * <url>`, with the stage's requests and limits (`nvidia.com/gpu` for GPU stages) and the S3
 * credentials from a Secret. No `--expect` is passed: instances below one that must run get
 * their fingerprint only when their inputs exist. Pure: the plan is computed by the caller.
 */
import type { PlanStep, StageInstance, ValidPipeline } from './types.ts'
import { jobLabels } from './executors/kubernetes.ts'
import { nameFragment, runStageArgv, type PipelineSpec } from './executors/runner.ts'

export interface ArgoExportOptions {
  pipeline: ValidPipeline
  /** The plan against the store (steps in topological order). */
  steps: PlanStep[]
  image: string
  spec: PipelineSpec
  pipelineName: string
  namespace?: string
  /** Secret with the S3 credentials (envFrom). */
  secret?: string
}

export interface ArgoExport {
  workflow: Record<string, unknown>
  /** Tasks in the DAG (instances that must run). */
  tasks: number
  /** Instances left out because they are cache hits (fresh or restorable). */
  cached: string[]
}

const ROOT_TEMPLATE = 'cusp-dag'

/** The Workflow object (see the module comment); serialise it with YAML or JSON. */
export function exportArgo(o: ArgoExportOptions): ArgoExport {
  const hit = new Set(o.steps.filter((s) => s.action === 'fresh' || s.action === 'restore').map((s) => s.instance))
  const cached = o.steps.filter((s) => hit.has(s.instance)).map((s) => s.instance)
  const taskName = (id: string): string => `t-${nameFragment(id, 60)}`
  const templates = new Map<string, Record<string, unknown>>()
  const tasks: Record<string, unknown>[] = []
  for (const step of o.steps) {
    if (hit.has(step.instance)) continue
    const inst = o.pipeline.instances.get(step.instance)
    if (inst === undefined) continue
    const template = templateName(inst)
    if (!templates.has(template)) templates.set(template, containerTemplate(o, inst, template))
    const deps = [...new Set(inst.deps.map((d) => d.instance))]
      .filter((u) => !hit.has(u))
      .sort()
      .map(taskName)
    tasks.push({
      name: taskName(inst.id),
      template,
      arguments: { parameters: [{ name: 'instance', value: inst.id }] },
      ...(deps.length > 0 ? { dependencies: deps } : {}),
    })
  }
  const workflow = {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Workflow',
    metadata: {
      generateName: `cusp-${nameFragment(o.pipelineName, 40)}-`,
      ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'cusp', 'cusp.dev/pipeline': nameFragment(o.pipelineName) },
      annotations: { 'cusp.dev/cached-instances': String(cached.length), 'cusp.dev/store': o.spec.store },
    },
    spec: {
      entrypoint: ROOT_TEMPLATE,
      templates: [{ name: ROOT_TEMPLATE, dag: { tasks } }, ...templates.values()],
    },
  }
  return { workflow, tasks: tasks.length, cached }
}

/** One template per stage and resource shape. */
function templateName(inst: StageInstance): string {
  const r = inst.resources
  return nameFragment(`${inst.stage}-${r.cpu}-${r.memory}-${r.gpu}`, 60)
}

function containerTemplate(o: ArgoExportOptions, inst: StageInstance, name: string): Record<string, unknown> {
  const r = inst.resources
  const quantities: Record<string, string> = {
    cpu: String(r.cpu),
    memory: r.memory,
    ...(r.gpu > 0 ? { 'nvidia.com/gpu': String(r.gpu) } : {}),
  }
  const labels = jobLabels(o.pipelineName, inst, '' as never)
  delete labels['cusp.dev/instance']
  delete labels['cusp.dev/fingerprint']
  return {
    name,
    inputs: { parameters: [{ name: 'instance' }] },
    metadata: { labels },
    container: {
      image: o.image,
      // The image's entrypoint is `cusp run-stage`.
      args: runStageArgv(o.spec, '{{inputs.parameters.instance}}').slice(1),
      resources: { requests: quantities, limits: { ...quantities } },
      ...(o.secret !== undefined ? { envFrom: [{ secretRef: { name: o.secret } }] } : {}),
    },
  }
}
