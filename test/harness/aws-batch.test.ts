/**
 * The AWS Batch runner against a fake Batch + CloudWatch Logs API on loopback
 * (fixtures/fake-batch.ts), through the real SDK v3 clients with an endpoint override: the
 * shapes sent (definition and submission, field by field, no credentials), definition reuse by
 * content tag, the retry rules (a lost host is retried, a stage's exit is not), restart while a
 * job is running (adopted, not resubmitted), a job that never leaves RUNNABLE (reported and
 * terminated), throttling (429s absorbed by the SDK's retries), Ctrl-C, the status transitions
 * as events, the CloudWatch log tail of a failure, the time limit. A whole pipeline scheduled by
 * the harness with each job "run" by the image's entrypoint command is aws-batch-smoke.test.ts.
 * No AWS account.
 */
import { BatchClient } from '@aws-sdk/client-batch'
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs'
import { ConfiguredRetryStrategy } from '@smithy/core/retry'
import t from 'tap'
import type { ExecEvent } from '../../src/harness/run-types.ts'
import { AwsBatchRunner, type AwsBatchOptions } from '../../src/harness/executors/aws-batch.ts'
import {
  batchJobName,
  classifyFailure,
  contentTag,
  jobDefinitionName,
  registerInput,
  shapeFor,
  submitInput,
} from '../../src/harness/executors/aws-batch-jobdef.ts'
import type { Fingerprint, StageInstance } from '../../src/harness/types.ts'
import { scienceHost } from '../../src/science/host.ts'
import { startFakeBatch, type AttemptPlan, type FakeBatch } from './fixtures/fake-batch.ts'

const FP = 'cd'.repeat(32) as Fingerprint
const CREDS = { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' }
const inst = (over: Partial<StageInstance> = {}): StageInstance =>
  ({
    id: 'train@eta=0.1,seed=0',
    stage: 'train',
    impl: 'train',
    matrix: {},
    params: {},
    deps: [],
    outputs: [],
    resources: { cpu: 4, memory: '16Gi', gpu: 1 },
    ...over,
  }) as StageInstance

function clients(fake: FakeBatch) {
  const common = { endpoint: fake.endpoint, region: 'us-east-1', credentials: CREDS, maxAttempts: 10 }
  return { batch: new BatchClient(common), logs: new CloudWatchLogsClient(common) }
}

function runnerFor(fake: FakeBatch, over: Partial<AwsBatchOptions> = {}): AwsBatchRunner {
  return new AwsBatchRunner({
    image: 'registry.example/cusp:gpu',
    spec: { store: 's3://bucket/cusp' },
    pipelineName: 'toy',
    jobQueue: 'gpu-q',
    env: {},
    pollMs: 5,
    ...clients(fake),
    ...over,
  })
}

t.test('the job definition and the submission, field by field; no credentials anywhere', async (t) => {
  const shape = shapeFor(inst(), { image: 'registry.example/cusp:gpu', jobRoleArn: 'arn:aws:iam::1:role/cusp-job' })
  t.same(shape, {
    image: 'registry.example/cusp:gpu',
    vcpus: 4,
    memoryMiB: 16384,
    gpus: 1,
    attempts: 3,
    jobRoleArn: 'arn:aws:iam::1:role/cusp-job',
  })
  const def = registerInput(shape)
  t.equal(def.type, 'container')
  t.match(def.jobDefinitionName, /^[A-Za-z0-9_-]{1,128}$/)
  t.equal(def.jobDefinitionName, jobDefinitionName(shape))
  t.same(def.containerProperties?.resourceRequirements, [
    { type: 'VCPU', value: '4' },
    { type: 'MEMORY', value: '16384' },
    { type: 'GPU', value: '1' },
  ])
  t.equal(def.containerProperties?.image, 'registry.example/cusp:gpu')
  t.equal(def.containerProperties?.jobRoleArn, 'arn:aws:iam::1:role/cusp-job')
  t.same(def.retryStrategy, {
    attempts: 3,
    evaluateOnExit: [
      { onStatusReason: 'Host EC2*', action: 'RETRY' },
      { onReason: '*', action: 'EXIT' },
    ],
  })
  t.same(def.tags, { 'cusp:content': contentTag(shape), 'cusp:managed-by': 'cusp' })
  t.notOk(def.containerProperties?.environment, 'the definition carries no environment at all')
  const cpu = registerInput(shapeFor(inst({ resources: { cpu: 1, memory: '2Gi', gpu: 0 } }), { image: 'i:cpu' }))
  t.notOk(
    cpu.containerProperties?.resourceRequirements?.some((r) => r.type === 'GPU'),
    'no GPU requirement for a CPU stage',
  )
  t.not(
    contentTag(shapeFor(inst(), { image: 'a' })),
    contentTag(shapeFor(inst({ resources: { cpu: 4, memory: '16Gi', gpu: 2 } }), { image: 'a' })),
    'another GPU count, another definition',
  )

  const env = {
    AWS_ACCESS_KEY_ID: 'AKIDSECRET',
    AWS_SECRET_ACCESS_KEY: 'shh',
    AWS_SESSION_TOKEN: 'tok',
    AWS_REGION: 'eu-west-1',
    AWS_ENDPOINT_URL_S3: 'http://minio:9000',
  }
  const sub = submitInput({
    jobQueue: 'gpu-q',
    jobDefinitionArn: 'arn:def:1',
    pipelineName: 'cusp',
    spec: { store: 's3://b/p', profile: 'paper' },
    inst: inst(),
    fingerprint: FP,
    env,
    timeoutSeconds: 7200,
  })
  t.equal(sub.jobName, batchJobName('cusp', inst(), FP))
  t.match(sub.jobName, /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/, 'a valid Batch job name')
  t.equal(sub.jobQueue, 'gpu-q')
  t.equal(sub.jobDefinition, 'arn:def:1')
  t.same(sub.containerOverrides?.command, ['train@eta=0.1,seed=0', '--store', 's3://b/p', '--expect', FP, '--profile', 'paper', '--json'])
  t.same(sub.containerOverrides?.environment, [
    { name: 'CUSP_STORE', value: 's3://b/p' },
    { name: 'AWS_REGION', value: 'eu-west-1' },
    { name: 'AWS_ENDPOINT_URL_S3', value: 'http://minio:9000' },
  ])
  t.same(sub.timeout, { attemptDurationSeconds: 7200 })
  t.same(sub.tags, { 'cusp:instance': 'train@eta=0.1,seed=0', 'cusp:fingerprint': FP, 'cusp:pipeline': 'cusp' })
  const text = JSON.stringify([def, sub])
  for (const secret of ['AKIDSECRET', 'shh', 'tok']) t.notOk(text.includes(secret), `${secret} is sent nowhere`)
  t.not(
    batchJobName('cusp', inst(), FP),
    batchJobName('cusp', inst(), 'ab'.repeat(32) as Fingerprint),
    'another fingerprint, another job name',
  )
  t.ok(batchJobName('p', inst({ id: `train@${'x'.repeat(300)}` }), FP).length <= 128)
})

t.test('classifyFailure: a lost host vs the stage failing', async (t) => {
  t.same(
    classifyFailure({
      status: 'FAILED',
      statusReason: 'Host EC2 (instance i-1) terminated.',
      attempts: [
        { container: {}, statusReason: 'Host EC2 (instance i-1) terminated.' },
        { container: {}, statusReason: 'Host EC2 (instance i-2) terminated.' },
      ],
    } as never),
    { kind: 'host', attempts: 2, reason: 'Host EC2 (instance i-2) terminated.' },
  )
  t.same(
    classifyFailure({
      status: 'FAILED',
      statusReason: 'Essential container in task exited',
      attempts: [{ container: { exitCode: 1 }, statusReason: 'Essential container in task exited' }],
    } as never),
    { kind: 'stage', exitCode: 1, reason: 'Essential container in task exited' },
  )
  t.match(
    classifyFailure({
      status: 'FAILED',
      statusReason: 'Host EC2 (instance i-1) terminated.',
      attempts: [{ container: { exitCode: 137 }, statusReason: 'Host EC2 (instance i-1) terminated.' }],
    } as never),
    { kind: 'stage', exitCode: 137 },
    'an exit code means the container ran to an end: not a lost host',
  )
  t.match(classifyFailure({ status: 'FAILED', statusReason: 'cusp: cancelled (Ctrl-C)', attempts: [] } as never), {
    kind: 'stage',
    exitCode: null,
    reason: 'cusp: cancelled (Ctrl-C)',
  })
})

/** Runs one instance with scripted attempts; returns the outcome and the emitted messages. */
async function runOnce(fake: FakeBatch, runner: AwsBatchRunner, onLog?: (m: string) => void, fp: Fingerprint = FP) {
  const logs: string[] = []
  const emit = (e: ExecEvent) => {
    if (e.type === 'log') {
      logs.push(e.message)
      onLog?.(e.message)
    }
  }
  const r = await runner.run({ instance: inst(), fingerprint: fp, emit })
  return { r, logs }
}

t.test('status transitions as events; a definition is registered once and found again by its tag', async (t) => {
  const fake = await startFakeBatch({ plan: () => [{ kind: 'exit', code: 0 }] })
  t.teardown(() => fake.close())
  const { r, logs } = await runOnce(fake, runnerFor(fake))
  t.ok(r.ok)
  const states = logs.filter((m) => /: [A-Z]+/.test(m) && !m.includes('submitted')).map((m) => /: ([A-Z]+)/.exec(m)?.[1])
  t.same(states, ['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING', 'SUCCEEDED'], 'every transition is an event, in order')
  t.match(logs[0], /submitted to gpu-q/)
  t.equal(fake.calls.filter((c) => c === 'RegisterJobDefinition').length, 1)
  // A new scheduler (new runner, as after a restart) reuses the definition: no second registration.
  const again = await runOnce(fake, runnerFor(fake), undefined, 'ee'.repeat(32) as Fingerprint)
  t.ok(again.r.ok)
  t.equal(fake.calls.filter((c) => c === 'RegisterJobDefinition').length, 1, 'found by its content tag, not registered again')
  t.equal(fake.definitions.length, 1)
  t.equal(fake.jobs.size, 2)
  const job = [...fake.jobs.values()][0]
  t.equal(job?.jobDefinition, fake.definitions[0]?.jobDefinitionArn, 'submitted against the registered definition')
  // Another image is another definition.
  const other = await runOnce(fake, runnerFor(fake, { image: 'registry.example/cusp:cpu' }), undefined, 'ef'.repeat(32) as Fingerprint)
  t.ok(other.r.ok)
  t.equal(fake.definitions.length, 2)
})

t.test('retry rules: a lost host (Spot reclaim) is retried by Batch, a stage failure is not; log tail on failure', async (t) => {
  let plans: AttemptPlan[] = []
  const fake = await startFakeBatch({ plan: () => plans })
  t.teardown(() => fake.close())

  plans = [{ kind: 'host-lost' }, { kind: 'exit', code: 0 }]
  const reclaimed = await runOnce(fake, runnerFor(fake))
  t.ok(reclaimed.r.ok, 'succeeds on the second attempt')
  t.equal([...fake.jobs.values()].at(-1)?.attempts.length, 2)
  t.ok(
    reclaimed.logs.some((m) => /RUNNABLE \(attempt 2\)/.test(m)),
    'the retry is visible',
  )

  plans = [{ kind: 'exit', code: 3, log: ['loading inputs', 'Error: loss is NaN at iteration 12'] }]
  const failed = await runOnce(fake, runnerFor(fake), undefined, '01'.repeat(32) as Fingerprint)
  t.notOk(failed.r.ok)
  t.equal([...fake.jobs.values()].at(-1)?.attempts.length, 1, 'a stage failure is not retried')
  if (!failed.r.ok) {
    t.match(failed.r.failure, { reason: 'stage-failed', instance: 'train@eta=0.1,seed=0', exitCode: 3 })
    if (failed.r.failure.reason === 'stage-failed') {
      t.match(failed.r.failure.stderrTail, /failed: Essential container in task exited, exit code 3/)
      t.match(
        failed.r.failure.stderrTail,
        /last lines of \/aws\/batch\/job\/cusp\/default\/[-0-9a-f]+-1 ---\nloading inputs\nError: loss is NaN at iteration 12/,
      )
    }
  }
  t.ok(fake.calls.includes('GetLogEvents'))

  plans = [{ kind: 'host-lost' }]
  const lost = await runOnce(fake, runnerFor(fake, { attempts: 2 }), undefined, '02'.repeat(32) as Fingerprint)
  t.notOk(lost.r.ok)
  t.equal([...fake.jobs.values()].at(-1)?.attempts.length, 2, "retried up to the definition's attempts")
  if (!lost.r.ok && lost.r.failure.reason === 'stage-failed') {
    t.match(lost.r.failure.stderrTail, /lost its host on each of 2 attempt\(s\) \(Spot reclaim or EC2 host failure: Host EC2/)
    t.equal(lost.r.failure.exitCode, null)
  }
})

t.test('the time limit: the attempt timeout of the submission; a job Batch stopped at it is a timeout, not retried', async (t) => {
  const fake = await startFakeBatch({ plan: () => [{ kind: 'timeout' }] })
  t.teardown(() => fake.close())
  const limit = { seconds: 5400, from: 'stages.train.timeout' }
  const r = await runnerFor(fake).run({ instance: inst(), fingerprint: FP, emit: () => undefined, timeout: limit })
  const job = [...fake.jobs.values()][0]
  t.same(job?.timeout, { attemptDurationSeconds: 5400 }, 'the limit is the attempt timeout')
  t.equal(job?.attempts.length, 1, 'a timed-out attempt is not retried')
  t.match(r, {
    ok: false,
    failure: {
      reason: 'timed-out',
      instance: 'train@eta=0.1,seed=0',
      limit,
      executor: 'aws-batch',
      stderrTail: /terminated by Batch at its attempt timeout: Job attempt duration exceeded timeout[^]*epoch 1 of 90/,
    },
  })
  t.match(classifyFailure({ status: 'FAILED', statusReason: 'Job attempt duration exceeded timeout', attempts: [] } as never), {
    kind: 'timeout',
  })
})

t.test("while a job runs, its CloudWatch log is streamed: run-stage's --json lines become progress and log events", async (t) => {
  const fake = await startFakeBatch({ plan: () => [{ kind: 'hold' }] })
  t.teardown(() => fake.close())
  const id = inst().id
  const events: ExecEvent[] = []
  let written = false
  const r = await runnerFor(fake).run({
    instance: inst(),
    fingerprint: FP,
    emit: (e) => {
      events.push(e)
      const job = [...fake.jobs.values()][0]
      if (job === undefined) return
      if (!written && e.type === 'log' && /: RUNNING$/.test(e.message)) {
        written = true
        fake.appendLog(job.jobId, [
          JSON.stringify({ type: 'start', instance: id, action: 'run' }),
          JSON.stringify({ type: 'progress', instance: id, fraction: 0.5, message: 'iteration 50/100' }),
          'a plain stderr line',
        ])
      }
      // Released only once the streamed lines have arrived: nothing depends on timing.
      if (e.type === 'log' && e.message === 'a plain stderr line') fake.release(job.jobId, 0)
    },
  })
  t.ok(r.ok)
  t.match(
    events.filter((e) => e.type === 'progress'),
    [{ type: 'progress', instance: id, fraction: 0.5, message: 'iteration 50/100' }],
    'the progress line is a progress event of the instance',
  )
  t.ok(
    events.some((e) => e.type === 'log' && e.message === 'a plain stderr line'),
    'other lines are log events',
  )
  t.notOk(
    events.some((e) => e.type === 'start'),
    "the child's own start event is not repeated",
  )
  t.equal(events.filter((e) => e.type === 'log' && e.message === 'a plain stderr line').length, 1, 'each line once')
})

t.test('restart while running: the live job with the same name and fingerprint is waited for, not resubmitted', async (t) => {
  const fake = await startFakeBatch()
  t.teardown(() => fake.close())
  const name = batchJobName('toy', inst(), FP)
  // A decoy: same name, another fingerprint tag (a 32-bit name hash collision) must not be adopted.
  const earlier = fake.preload({ jobName: name, jobQueue: 'gpu-q', tags: { 'cusp:fingerprint': FP }, status: 'RUNNING' }, [
    { kind: 'hold' },
  ])
  // RUNNING was preloaded, so start the held attempt by hand.
  earlier.release = (code) => {
    earlier.attempts.push({
      container: { exitCode: code, logStreamName: 's' },
      statusReason: 'Essential container in task exited',
      startedAt: 0,
      stoppedAt: 0,
    })
    earlier.status = code === 0 ? 'SUCCEEDED' : 'FAILED'
  }
  fake.preload({ jobName: name, jobQueue: 'gpu-q', tags: { 'cusp:fingerprint': 'ff'.repeat(32) }, status: 'RUNNING' }, [{ kind: 'hold' }])
  fake.preload({ jobName: name, jobQueue: 'gpu-q', tags: { 'cusp:fingerprint': FP }, status: 'FAILED' }, [{ kind: 'hold' }])
  const { r, logs } = await runOnce(fake, runnerFor(fake), (m) => {
    if (m.includes('from an earlier run')) fake.release(earlier.jobId, 0)
  })
  t.ok(r.ok, 'the adopted job succeeded')
  t.match(logs[0], new RegExp(`Batch job ${name} \\(${earlier.jobId}\\) from an earlier run is RUNNING: waiting for it`))
  t.notOk(fake.calls.includes('SubmitJob'), 'nothing was submitted')
  t.equal(fake.jobs.size, 3)
})

t.test('a job that never leaves RUNNABLE is reported and terminated, not waited on forever', async (t) => {
  const fake = await startFakeBatch({ plan: () => [{ kind: 'stuck' }] })
  t.teardown(() => fake.close())
  const { r } = await runOnce(fake, runnerFor(fake, { runnableLimitMs: 20 }))
  t.notOk(r.ok)
  if (!r.ok && r.failure.reason === 'stage-failed')
    t.match(
      r.failure.stderrTail,
      /stayed RUNNABLE for [0-9.]+ (min|s) in queue gpu-q and was terminated: no compute environment of the queue can place it/,
    )
  t.ok(fake.calls.includes('TerminateJob'))
  t.equal([...fake.jobs.values()][0]?.status, 'FAILED')
})

t.test('throttling: 429 TooManyRequests answers are retried by the SDK with backoff', async (t) => {
  const fake = await startFakeBatch({ plan: () => [{ kind: 'exit', code: 0 }] })
  t.teardown(() => fake.close())
  fake.throttle.set('SubmitJob', 2)
  fake.throttle.set('DescribeJobs', 3)
  fake.throttle.set('RegisterJobDefinition', 1)
  // The SDK's standard retry (which errors retry, the retry quota) with a 10 ms backoff instead of
  // its exponential one (up to seconds per retry): the same decisions, without sleeping through them.
  const common = { endpoint: fake.endpoint, region: 'us-east-1', credentials: CREDS, retryStrategy: new ConfiguredRetryStrategy(10, 10) }
  const { r } = await runOnce(fake, runnerFor(fake, { batch: new BatchClient(common) }))
  t.ok(r.ok, 'the run went through')
  t.equal(fake.calls.filter((c) => c === 'SubmitJob').length, 3, 'two throttled submissions, then one that went through')
  t.equal(fake.jobs.size, 1, 'throttled calls submitted nothing twice')
  t.equal(fake.throttle.get('DescribeJobs'), 0)
})

t.test('Ctrl-C (cancelAll) terminates the jobs in flight; nothing is submitted after', async (t) => {
  const fake = await startFakeBatch({ plan: () => [{ kind: 'hold' }] })
  t.teardown(() => fake.close())
  const runner = runnerFor(fake)
  const { r } = await runOnce(fake, runner, (m) => {
    if (/: RUNNING/.test(m)) void runner.cancelAll()
  })
  t.notOk(r.ok)
  if (!r.ok) t.match(r.failure, { reason: 'stage-failed', signal: 'SIGINT', stderrTail: /cancelled/ })
  t.ok(fake.calls.includes('TerminateJob'))
  const after = await runOnce(fake, runner, undefined, '03'.repeat(32) as Fingerprint)
  t.notOk(after.r.ok)
  t.equal(fake.jobs.size, 1, 'no job submitted after Ctrl-C')
})

t.test('instances submitted at once share one definition: registered once per shape, not once per job', async (t) => {
  const fake = await startFakeBatch({ plan: () => [{ kind: 'exit', code: 0 }] })
  t.teardown(() => fake.close())
  const runner = runnerFor(fake)
  const fps = ['a1', 'a2', 'a3'].map((h) => h.repeat(32) as Fingerprint)
  const rs = await Promise.all(
    fps.map((fingerprint, i) => runner.run({ instance: inst({ id: `train@seed=${i}` }), fingerprint, emit: () => undefined })),
  )
  t.ok(
    rs.every((r) => r.ok),
    'all three succeeded',
  )
  t.equal(fake.jobs.size, 3)
  t.equal(fake.calls.filter((c) => c === 'RegisterJobDefinition').length, 1, 'one shape, one registration')
  t.same(new Set([...fake.jobs.values()].map((j) => j.jobDefinition)), new Set([fake.definitions[0]?.jobDefinitionArn]))
})

t.test('the command line: aws-batch needs a queue; batch flags only with it; estimate flags on run and status', async (t) => {
  const { parseCli } = await import('../../src/harness/cli-args.ts')
  const bad = (argv: string[], re: RegExp) => {
    const r = parseCli(argv)
    t.notOk(r.ok, argv.join(' '))
    if (!r.ok) t.match(r.error, { reason: 'usage', message: re })
  }
  bad(['--executor', 'aws-batch'], /--executor aws-batch needs --job-queue QUEUE/)
  bad(['--job-queue', 'q'], /--job-queue is a flag of --executor aws-batch/)
  bad(['--executor', 'aws-batch', '--job-queue', 'q', '--job-timeout', '1.5'], /--job-timeout expects seconds/)
  bad(['--dry-run', '--estimate', '--price', 'cheap'], /--price expects USD per device-hour/)
  bad(['why', 'x', '--estimate'], /'--estimate' is a flag of 'run' and 'status'/)
  const run = parseCli([
    '--executor',
    'aws-batch',
    '--job-queue',
    'gpu-q',
    '--job-role',
    'arn:r',
    '--job-timeout',
    '3600',
    '--yes',
    '--confirm-above',
    '25',
    '--estimate',
    '--device',
    'h100',
    '--price',
    '2.5',
  ])
  t.match(run, {
    ok: true,
    value: {
      kind: 'run',
      executor: 'aws-batch',
      jobQueue: 'gpu-q',
      jobRole: 'arn:r',
      jobTimeout: 3600,
      yes: true,
      confirmAbove: 25,
      estimate: true,
      device: 'h100',
      price: 2.5,
    },
  })
  t.match(parseCli(['--executor', 'aws-batch', '--job-queue', 'q']), { ok: true, value: { yes: false, confirmAbove: 10, estimate: false } })
  t.match(parseCli(['status', '--estimate', '--device', 'a100']), { ok: true, value: { kind: 'status', estimate: true, device: 'a100' } })
})

t.test('select: aws-batch is a remote executor that needs an s3:// store and fingerprints with the image env', async (t) => {
  const { selectExecutor } = await import('../../src/harness/executors/select.ts')
  const pipeline = { root: '/p', file: '/p/pipeline.yaml' } as never
  const base = {
    pipeline,
    profile: 'paper',
    overrides: [],
    image: 'x/cusp:gpu',
    namespace: undefined,
    secret: undefined,
    env: {},
    host: scienceHost,
    executor: 'aws-batch' as const,
    jobQueue: 'q',
  }
  const b = selectExecutor({ ...base, store: 's3://b/p' })
  t.ok(b.ok && b.value.runner?.name === 'aws-batch')
  if (b.ok) t.equal(b.value.env({ params: { backend: 'auto' } } as never).backend, 'tensorflow', 'the image env, as for kubernetes')
  const local = selectExecutor({ ...base, store: '/shared/dir' })
  t.match(local, { ok: false, error: { reason: 'usage', message: /--executor aws-batch needs a store every container can reach/ } })
  t.match(selectExecutor({ ...base, jobQueue: undefined, store: 's3://b/p' }), { ok: false, error: { message: /--job-queue/ } })
})
