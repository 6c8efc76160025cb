/**
 * `export --format argo` on the toy project (test/harness/fixtures/toy-dag.ts, with GPU
 * resources on `train`): the Workflow validates against the official Argo Workflows v4.1.2 JSON
 * Schema and against a strict copy that rejects unknown keys; it has one DAG task per instance
 * that must run, with dependencies mirroring the pipeline's; cache hits already in the store are
 * left out and dependencies on them dropped; templates carry requests/limits incl.
 * nvidia.com/gpu and the image entrypoint's run-stage arguments. Negative controls show the
 * validators can fail.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { main } from '../../src/main.ts'
import { execute, plan } from '../../src/harness/run-pipeline.ts'
import { exportArgo } from '../../src/harness/export-argo.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import type { ValidPipeline } from '../../src/harness/types.ts'
import { argoValidators } from './fixtures/argo-schema.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

type Task = { name: string; template: string; dependencies?: string[]; arguments: { parameters: { name: string; value: string }[] } }
type Template = {
  name: string
  dag?: { tasks: Task[] }
  container?: {
    image: string
    args: string[]
    resources: { requests: Record<string, string>; limits: Record<string, string> }
    envFrom?: unknown
  }
}

function project(t: { teardown(fn: () => void): void }): { root: string; file: string } {
  const root = mkdtempSync(join(tmpdir(), 'cusp-argo-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const file = writeToyDag(root, { etas: [0.1, 0.2], seeds: [0] })
  const text = readFileSync(file, 'utf8').replace('  train:\n', '  train:\n    resources: { cpu: 2, memory: 4Gi, gpu: 1 }\n')
  writeFileSync(file, text)
  return { root, file }
}

async function load(file: string, root: string): Promise<ValidPipeline> {
  const a = await analyze({ file, profile: undefined, overrides: [], reader: nodeReader(root) })
  if (!a.ok) throw new Error(JSON.stringify(a.error))
  return a.value
}

function tasksOf(wf: Record<string, unknown>): Task[] {
  const templates = (wf.spec as { templates: Template[] }).templates
  return templates.find((x) => x.dag !== undefined)?.dag?.tasks ?? []
}

const v = argoValidators()

t.test('the whole DAG validates against the Argo v4.1.2 schema, one task per instance, dependencies as in the pipeline', async (t) => {
  const { root, file } = project(t)
  const pipeline = await load(file, root)
  const store = new LocalStore(join(root, 'store'))
  const steps = await plan({ pipeline, store, lockPath: join(root, 'pipeline.lock') })
  if (!steps.ok) throw new Error(JSON.stringify(steps.error))
  const out = exportArgo({
    pipeline,
    steps: steps.value,
    image: 'registry.example/cusp:gpu',
    spec: { store: 's3://bucket/runs' },
    pipelineName: 'toy',
    namespace: 'ml',
    secret: 'cusp-s3',
  })
  t.ok(v.official(out.workflow), JSON.stringify(v.official.errors))
  t.ok(v.strict(out.workflow), JSON.stringify(v.strict.errors))
  t.equal(out.tasks, pipeline.instances.size)
  t.same(out.cached, [])

  const tasks = tasksOf(out.workflow)
  const byInstance = new Map(tasks.map((x) => [x.arguments.parameters[0]?.value, x]))
  const nameOf = new Map(tasks.map((x) => [x.arguments.parameters[0]?.value, x.name]))
  t.equal(new Set(tasks.map((x) => x.name)).size, tasks.length, 'task names are unique')
  for (const inst of pipeline.instances.values()) {
    const task = byInstance.get(inst.id)
    t.ok(task, `a task for ${inst.id}`)
    const want = [...new Set(inst.deps.map((d) => nameOf.get(d.instance)))].sort()
    t.same([...(task?.dependencies ?? [])].sort(), want, `${inst.id} depends on its upstream's tasks`)
  }
  const templates = (out.workflow.spec as { templates: Template[] }).templates
  for (const task of tasks)
    t.ok(
      templates.some((x) => x.name === task.template),
      `template ${task.template} exists`,
    )
  const trainTask = byInstance.get('train@eta=0.1,seed=0')
  const train = templates.find((x) => x.name === trainTask?.template)
  t.same(train?.container?.resources, {
    requests: { cpu: '2', memory: '4Gi', 'nvidia.com/gpu': '1' },
    limits: { cpu: '2', memory: '4Gi', 'nvidia.com/gpu': '1' },
  })
  t.equal(train?.container?.image, 'registry.example/cusp:gpu')
  t.same(train?.container?.args, ['{{inputs.parameters.instance}}', '--store', 's3://bucket/runs'])
  t.same(train?.container?.envFrom, [{ secretRef: { name: 'cusp-s3' } }])
  const prep = templates.find((x) => x.name === byInstance.get('prepare')?.template)
  t.notOk('nvidia.com/gpu' in (prep?.container?.resources.requests ?? {}), 'a CPU stage requests no GPU')
  t.equal((out.workflow.metadata as { namespace?: string }).namespace, 'ml')
})

t.test('cache hits in the store are left out and dependencies on them dropped', async (t) => {
  const { root, file } = project(t)
  const pipeline = await load(file, root)
  const store = new LocalStore(join(root, 'store'))
  const lockPath = join(root, 'pipeline.lock')
  const ran = await execute({ pipeline, store, lockPath, targets: ['train@eta=0.1,seed=0'], jobs: 1 })
  t.ok(ran.ok && ran.value.ok, 'prepare and one train ran in-process')
  // A fresh lock elsewhere: hits come from the store (restore), as on a new cluster.
  const steps = await plan({ pipeline, store, lockPath: join(root, 'other.lock') })
  if (!steps.ok) throw new Error(JSON.stringify(steps.error))
  const out = exportArgo({ pipeline, steps: steps.value, image: 'cusp:gpu', spec: { store: 's3://b/p' }, pipelineName: 'toy' })
  t.ok(v.official(out.workflow), JSON.stringify(v.official.errors))
  t.ok(v.strict(out.workflow), JSON.stringify(v.strict.errors))
  t.same([...out.cached].sort(), ['prepare', 'train@eta=0.1,seed=0'])
  t.equal(out.tasks, pipeline.instances.size - 2)
  const tasks = tasksOf(out.workflow)
  const ids = tasks.map((x) => x.arguments.parameters[0]?.value)
  t.notOk(ids.includes('prepare'))
  const train2 = tasks.find((x) => x.arguments.parameters[0]?.value === 'train@eta=0.2,seed=0')
  t.same(train2?.dependencies, undefined, 'its only upstream (prepare) is in the store: no dependency')
  const probe1 = tasks.find((x) => x.arguments.parameters[0]?.value === 'probe@eta=0.1,seed=0')
  t.same(probe1?.dependencies, undefined, 'probe of the cached train has no dependency')
  const probe2 = tasks.find((x) => x.arguments.parameters[0]?.value === 'probe@eta=0.2,seed=0')
  t.equal(probe2?.dependencies?.length, 1, 'probe of the train that must run depends on it')
})

t.test('negative controls: the validators reject a broken Workflow', async (t) => {
  const { root, file } = project(t)
  const pipeline = await load(file, root)
  const steps = await plan({ pipeline, store: new LocalStore(join(root, 'store')), lockPath: join(root, 'pipeline.lock') })
  if (!steps.ok) throw new Error('plan failed')
  const wf = exportArgo({ pipeline, steps: steps.value, image: 'cusp:gpu', spec: { store: 's3://b/p' }, pipelineName: 'toy' }).workflow
  const broken = structuredClone(wf) as { spec: { templates: Template[] } }
  const task = broken.spec.templates[0]?.dag?.tasks.find((x) => x.dependencies !== undefined) as unknown as Record<string, unknown>
  task.dependencies = 'prepare'
  t.notOk(v.official(broken), 'dependencies must be an array')
  const typo = structuredClone(wf) as { spec: { templates: Template[] } }
  const task2 = typo.spec.templates[0]?.dag?.tasks[0] as unknown as Record<string, unknown>
  task2.dependancies = task2.dependencies ?? []
  t.notOk(v.strict(typo), 'a misspelt key fails the strict copy')
  t.notOk(v.official({ ...wf, kind: 'Job' }), 'kind must be Workflow')
})

t.test('the CLI prints the Workflow as YAML and reports the task count', async (t) => {
  const { root } = project(t)
  let stdout = ''
  let stderr = ''
  // A local store keeps the test off the network; on a cluster it is s3://bucket/prefix.
  const code = await main(['export', '--format', 'argo', '--image', 'cusp:cpu', '--store', join(root, 'store'), '--secret', 's3-creds'], {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
    cwd: root,
    env: {},
  })
  t.equal(code, 0, stderr)
  const wf = parse(stdout) as Record<string, unknown>
  t.ok(v.official(wf), JSON.stringify(v.official.errors))
  t.ok(v.strict(wf), JSON.stringify(v.strict.errors))
  t.match(stderr, /argo: 6 tasks, 0 cache hits left out/)
  t.match(stdout, /image: cusp:cpu/)
})
