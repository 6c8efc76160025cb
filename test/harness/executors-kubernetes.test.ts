/**
 * The Kubernetes runner against a fake API server on loopback (fixtures/fake-kube.ts) that
 * speaks the real REST paths the client uses: the Job manifest field by field; a whole toy DAG
 * scheduled by the harness, one Job per instance, whose "pods" run the Job's container args
 * through the image's entrypoint command locally (so each instance really is published by
 * run-stage into the shared store and read back by the scheduler); a failing pod whose
 * termination reason, exit code and log tail reach the failure; a Job deleted by someone else;
 * and Ctrl-C (cancelAll) deleting the Jobs in flight. No cluster, no Docker.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KubeConfig, type V1Job } from '@kubernetes/client-node'
import t from 'tap'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { execute } from '../../src/harness/run-pipeline.ts'
import { jobManifest, jobName, KubernetesRunner } from '../../src/harness/executors/kubernetes.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { envForInstance } from '../../src/science/env-record.ts'
import type { Fingerprint, StageInstance } from '../../src/harness/types.ts'
import { startFakeKube, type ContainerEnd } from './fixtures/fake-kube.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..')
const FP = 'cd'.repeat(32) as Fingerprint

function kubeConfig(url: string): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u', namespace: 'ml' }],
    currentContext: 'c',
  })
  return kc
}

/** The pod: the Job's container args through the image entrypoint (Dockerfile), /app = this checkout. */
function runContainerLocally(root: string) {
  return (job: V1Job): Promise<ContainerEnd> =>
    new Promise((resolve) => {
      const args = job.spec?.template.spec?.containers[0]?.args ?? []
      const child = spawn(process.execPath, [join(REPO, 'scripts/pipeline.mjs'), 'run-stage', ...args], {
        cwd: root,
        env: { ...process.env, CUSP_STORE: '' },
      })
      let log = ''
      child.stdout.on('data', (c: Buffer) => (log += c.toString()))
      child.stderr.on('data', (c: Buffer) => (log += c.toString()))
      child.on('close', (code) => resolve({ exitCode: code ?? 137, log }))
    })
}

const never = (): Promise<ContainerEnd> => new Promise(() => undefined)

/** A one-CPU instance of the toy's prepare stage. */
const PREPARE = {
  id: 'prepare',
  stage: 'prepare',
  impl: 'prepare',
  params: {},
  deps: [],
  outputs: [],
  resources: { cpu: 1, memory: '1Gi', gpu: 0 },
} as unknown as StageInstance

/** A runner against the fake API server at `url`, with a fixed (empty) attempt tag unless `over` says otherwise. */
function testRunner(url: string, over: Partial<ConstructorParameters<typeof KubernetesRunner>[0]> = {}): KubernetesRunner {
  return new KubernetesRunner({
    image: 'cusp:cpu',
    spec: { store: 's3://b/p' },
    pipelineName: 'toy',
    namespace: 'ml',
    kubeConfig: kubeConfig(url),
    attempt: () => '',
    ...over,
  })
}

t.test('the Job manifest', async (t) => {
  const inst = {
    id: 'train@eta=0.1,seed=0',
    stage: 'train',
    impl: 'train',
    params: {},
    deps: [],
    outputs: [],
    resources: { cpu: 4, memory: '16Gi', gpu: 2 },
  } as unknown as StageInstance
  const job = jobManifest(
    {
      image: 'ghcr.io/x/cusp:gpu',
      spec: { store: 's3://b/p', profile: 'paper' },
      pipelineName: 'cusp',
      namespace: 'ml',
      secret: 'cusp-s3',
    },
    inst,
    FP,
  )
  const name = jobName(inst, FP)
  t.match(name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 name')
  t.ok(name.length <= 63)
  t.equal(job.metadata?.name, name)
  t.equal(job.metadata?.namespace, 'ml')
  t.equal(job.spec?.backoffLimit, 0)
  t.equal(job.spec?.ttlSecondsAfterFinished, 3600)
  t.same(job.metadata?.annotations, { 'cusp.dev/instance-id': inst.id, 'cusp.dev/fingerprint': FP, 'cusp.dev/pipeline': 'cusp' })
  for (const labels of [job.metadata?.labels ?? {}, job.spec?.template.metadata?.labels ?? {}]) {
    t.equal(labels['app.kubernetes.io/managed-by'], 'cusp')
    t.match(labels['cusp.dev/pipeline'], /^cusp-[0-9a-f]{8}$/)
    t.match(labels['cusp.dev/instance'], /^train-eta-0-1-seed-0-[0-9a-f]{8}$/)
    for (const v of Object.values(labels)) t.match(v, /^[a-z0-9A-Z]([-a-z0-9A-Z_.]{0,61}[a-z0-9A-Z])?$/, `label value ${v} is valid`)
  }
  const pod = job.spec?.template.spec
  t.equal(pod?.restartPolicy, 'Never')
  t.same(pod?.securityContext, { runAsNonRoot: true })
  const c = pod?.containers[0]
  t.equal(c?.image, 'ghcr.io/x/cusp:gpu')
  t.same(c?.args, [inst.id, '--store', 's3://b/p', '--expect', FP, '--profile', 'paper', '--json'])
  t.same(c?.resources, {
    requests: { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '2' },
    limits: { cpu: '4', memory: '16Gi', 'nvidia.com/gpu': '2' },
  })
  t.same(c?.envFrom, [{ secretRef: { name: 'cusp-s3' } }])
  const cpuJob = jobManifest(
    { image: 'i', spec: { store: 's3://b/p' }, pipelineName: 'p', namespace: 'n' },
    { ...inst, resources: { cpu: 1, memory: '2Gi', gpu: 0 } },
    FP,
  )
  t.notOk('nvidia.com/gpu' in (cpuJob.spec?.template.spec?.containers[0]?.resources?.limits ?? {}), 'no GPU for a CPU stage')
  t.notOk(cpuJob.spec?.template.spec?.containers[0]?.envFrom, 'no envFrom without a secret')
})

t.test('a toy DAG: one Job per instance, published by run-stage, read back by the scheduler; a failing pod explained', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-k8s-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const file = writeToyDag(root, { etas: [0.1], seeds: [0] })
  const storeDir = join(root, 'shared-store')
  const fake = await startFakeKube(runContainerLocally(root))
  t.teardown(() => fake.close())
  const a = await analyze({ file, profile: undefined, overrides: [], reader: nodeReader(root) })
  if (!a.ok) throw new Error(JSON.stringify(a.error))
  const runner = new KubernetesRunner({
    image: 'cusp:cpu',
    spec: { store: storeDir },
    pipelineName: 'toy',
    namespace: 'ml',
    kubeConfig: kubeConfig(fake.url),
    attempt: () => '',
  })
  const lockPath = join(root, 'pipeline.lock')
  // The "pods" run this checkout, so the scheduler predicts this machine's numeric environment
  // (the toy's `train` shares its name with the science stage, so it gets a backend record).
  const r = await execute({ pipeline: a.value, store: new LocalStore(storeDir), lockPath, runner, jobs: 8, env: envForInstance })
  if (!r.ok) throw new Error(JSON.stringify(r.error))
  t.ok(r.value.ok, JSON.stringify(r.value.failures))
  t.same(
    Object.values(r.value.outcomes).map((o) => o.outcome),
    ['ran', 'ran', 'ran', 'ran'],
  )
  t.equal(fake.jobs.size, 4, 'one Job per instance')
  t.same(fake.unknown, [], 'only real Kubernetes REST paths were used')
  t.ok(
    fake.requests.some((q) => /^GET \/apis\/batch\/v1\/namespaces\/ml\/jobs\?.*watch=true/.test(q)),
    'Jobs were watched',
  )
  const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as { instances: Record<string, unknown> }
  t.same(Object.keys(lock.instances).sort(), [...a.value.instances.keys()].sort(), 'the scheduler locked every instance')
  t.equal((await new LocalStore(storeDir).listRuns()).length, 4, 'run-stage published four run records')

  // Now make prepare fail: its pod's reason, exit code and log reach the failure; dependents are skipped.
  writeFileSync(file, readFileSync(file, 'utf8').replace('fail: false', 'fail: true'))
  const b = await analyze({ file, profile: undefined, overrides: [], reader: nodeReader(root) })
  if (!b.ok) throw new Error('analyze')
  const f = await execute({ pipeline: b.value, store: new LocalStore(storeDir), lockPath, runner, env: envForInstance })
  if (!f.ok) throw new Error(JSON.stringify(f.error))
  t.notOk(f.value.ok)
  t.equal(f.value.outcomes.prepare?.outcome, 'failed')
  t.match(f.value.failures[0], {
    reason: 'stage-failed',
    instance: 'prepare',
    exitCode: 1,
    stderrTail: /BackoffLimitExceeded[\s\S]*container stage terminated: Error, exit code 1[\s\S]*prepare was asked to fail/,
  })
  t.equal(f.value.outcomes['train@eta=0.1,seed=0']?.outcome, 'skipped')
  t.notOk(existsSync(join(root, '.cusp', 'work', 'x')), 'nothing ran in the scheduler')
})

t.test('a Job deleted by someone else fails its instance; Ctrl-C deletes the Jobs in flight', async (t) => {
  const fake = await startFakeKube(never)
  t.teardown(() => fake.close())
  const inst = PREPARE
  const runner = testRunner(fake.url)
  const untilCreated = async (name: string) => {
    for (let i = 0; i < 400 && !fake.jobs.has(name); i++) await new Promise((r) => setTimeout(r, 10))
  }

  const running = runner.run({ instance: inst, fingerprint: FP, emit: () => undefined })
  await untilCreated(jobName(inst, FP))
  await new Promise((r) => setTimeout(r, 100)) // the watch is open
  fake.deleteJob(jobName(inst, FP))
  const r = await running
  t.notOk(r.ok)
  if (!r.ok) t.match(r.failure, { reason: 'stage-failed', instance: 'prepare', stderrTail: /was deleted before it finished/ })

  const fp2 = 'ef'.repeat(32) as Fingerprint
  const second = runner.run({ instance: inst, fingerprint: fp2, emit: () => undefined })
  await untilCreated(jobName(inst, fp2))
  await runner.cancelAll()
  const c = await second
  t.notOk(c.ok)
  if (!c.ok) t.match(c.failure, { reason: 'stage-failed', signal: 'SIGINT', stderrTail: /cancelled/ })
  t.ok(
    fake.requests.some((q) => q.startsWith(`DELETE /apis/batch/v1/namespaces/ml/jobs/${jobName(inst, fp2)}`)),
    'cancel deleted the Job',
  )
  t.notOk(fake.jobs.has(jobName(inst, fp2)))
  const after = await runner.run({ instance: inst, fingerprint: 'aa'.repeat(32) as Fingerprint, emit: () => undefined })
  t.notOk(after.ok, 'after cancel, no new Job is created')
  t.same(fake.unknown, [])

  // Deleted before the watch could open: the read after opening sees the 404.
  const fp3 = '12'.repeat(32) as Fingerprint
  const fresh = testRunner(fake.url)
  const origCreate = fake.jobs.set.bind(fake.jobs)
  fake.jobs.set = (k, v) => (k === jobName(inst, fp3) ? fake.jobs : origCreate(k, v)) // the Job vanishes as soon as it is created
  const vanished = await fresh.run({ instance: inst, fingerprint: fp3, emit: () => undefined })
  fake.jobs.set = origCreate
  t.notOk(vanished.ok)
  if (!vanished.ok) t.match(vanished.failure, { stderrTail: /was deleted before it finished/ })
})

t.test('a container that can never start (ImagePullBackOff) fails its instance and its Job is deleted', async (t) => {
  const fake = await startFakeKube(never)
  t.teardown(() => fake.close())
  const inst = PREPARE
  const runner = testRunner(fake.url, { image: 'nope:gpu', podPollMs: 30 })
  const running = runner.run({ instance: inst, fingerprint: FP, emit: () => undefined })
  const name = jobName(inst, FP)
  for (let i = 0; i < 400 && !fake.jobs.has(name); i++) await new Promise((r) => setTimeout(r, 10))
  fake.setWaiting(name, 'ImagePullBackOff', 'Back-off pulling image "nope:gpu"')
  const r = await running
  t.notOk(r.ok)
  if (!r.ok)
    t.match(r.failure, {
      reason: 'stage-failed',
      stderrTail: /cannot start \(ImagePullBackOff: Back-off pulling image "nope:gpu"\)[\s\S]*container stage waiting: ImagePullBackOff/,
    })
  t.notOk(fake.jobs.has(name), 'the Job was deleted')
})

t.test('Ctrl-C while a Job is being created: the Job is deleted and the run ends cancelled', async (t) => {
  const fake = await startFakeKube(never)
  t.teardown(() => fake.close())
  const inst = PREPARE
  const runner = testRunner(fake.url)
  // The cancel lands after the server created the Job and before the client has its answer.
  fake.beforeCreated = () => runner.cancelAll()
  const r = await Promise.race([
    runner.run({ instance: inst, fingerprint: FP, emit: () => undefined }),
    // Bounded only so that a regression fails instead of hanging (the Job's pod never ends).
    new Promise<'hung'>((res) => setTimeout(() => res('hung'), 60_000).unref()),
  ])
  t.not(r, 'hung', 'the run ended')
  if (r !== 'hung') {
    t.notOk(r.ok)
    if (!r.ok) t.match(r.failure, { reason: 'stage-failed', signal: 'SIGINT', stderrTail: /cancelled/ })
  }
  t.ok(
    fake.requests.some((q) => q.startsWith(`DELETE /apis/batch/v1/namespaces/ml/jobs/${jobName(inst, FP)}`)),
    'the Job created under the cancel was deleted',
  )
  t.notOk(fake.jobs.has(jobName(inst, FP)), 'no Job left behind')
})

t.test('two runs of one instance at one fingerprint create two Jobs (a kept failed Job never blocks the rerun)', async (t) => {
  const fake = await startFakeKube(async () => ({ exitCode: 0, log: '' }))
  t.teardown(() => fake.close())
  const inst = PREPARE
  // No `attempt` option: the runner's own attempt tags. The fake refuses a name in use (409), as the API server does.
  const runner = testRunner(fake.url, { attempt: undefined })
  const first = await runner.run({ instance: inst, fingerprint: FP, emit: () => undefined })
  const second = await runner.run({ instance: inst, fingerprint: FP, emit: () => undefined })
  t.ok(first.ok, 'the first Job succeeded')
  t.ok(second.ok, 'the second Job was created and succeeded beside the kept first one')
  const created = fake.requests.filter((q) => q.startsWith('POST /apis/batch/v1/namespaces/ml/jobs'))
  t.equal(created.length, 2)
  t.equal(fake.jobs.size, 2, 'two Jobs, two names')
})

t.test('Job names are unique per attempt and valid DNS-1123 names', async (t) => {
  const inst = {
    id: 'train@eta=0.1,seed=0',
    stage: 'train',
    impl: 'train',
    params: {},
    deps: [],
    outputs: [],
    resources: { cpu: 1, memory: '1Gi', gpu: 0 },
  } as unknown as StageInstance
  const a = jobName(inst, FP, 'a1b2c3')
  const b = jobName(inst, FP, 'd4e5f6')
  t.not(a, b, 'a rerun never collides with a kept failed Job')
  for (const n of [a, b, jobName({ ...inst, id: 'x'.repeat(200) } as StageInstance, FP, 'ffffff')])
    t.match(n, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/)
})
