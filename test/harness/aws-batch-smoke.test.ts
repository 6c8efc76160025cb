/**
 * End to end through the real CLI: the smoke profile with `--executor aws-batch` against the fake
 * Batch + CloudWatch Logs API (fixtures/fake-batch.ts, reached through AWS_ENDPOINT_URL_BATCH as a
 * user would point the SDK at another endpoint) and an S3 store (s3rver). Each fake job runs its
 * command through the image's entrypoint locally, so every instance is computed and published by
 * `run-stage` into the bucket and locked by the scheduler. The same profile run locally
 * (in-process, local store) writes a byte-identical lock: same fingerprints, same output digests.
 * Then the cost side on that local project: before a paid run above the threshold off a terminal
 * the CLI refuses in one line and submits nothing; `status --estimate` after the run costs nothing;
 * with one cusp-scan param changed only the cusp-scan instance has a cost.
 * By default the profile's cusp-scan chain runs (synthetic data, gradient-flow training with its
 * lambda_1 solves, the cusp scan: every kind of stage process, three jobs), which fits the suite's
 * time limit on a loaded 2-core CI machine; CUSP_BATCH_SMOKE_FULL=1 runs the whole smoke profile
 * (16 jobs; give tap a longer --timeout).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { captureMain } from './fixtures/run-main.ts'
import { startFakeBatch, type FakeJob } from './fixtures/fake-batch.ts'
import { startS3Server, TEST_BUCKET, TEST_ENV } from './fixtures/s3-server.ts'

const ROOT = join(import.meta.dirname, '../..')
Object.assign(process.env, TEST_ENV) // the SDKs' default credential chain reads this process's env
const s3 = await startS3Server()
t.teardown(() => s3.close())

async function project(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `cusp-batch-${name}-`))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const f of ['src', 'stages', 'schemas', 'data', 'scripts', 'node_modules', 'package.json', 'package-lock.json', 'claims.yaml'])
    await symlink(join(ROOT, f), join(dir, f))
  await writeFile(join(dir, 'pipeline.yaml'), await readFile(join(ROOT, 'pipeline.yaml'), 'utf8'))
  return dir
}

const batchDir = await project('remote')
const localDir = await project('local')

/** Jobs still running when the file ends (a timeout) are killed with it. */
const children = new Set<ReturnType<typeof spawn>>()
t.teardown(() => {
  for (const c of children) c.kill('SIGKILL')
})

/** A Batch job: its command through the image entrypoint (Dockerfile), its environment added. */
const exec = (job: FakeJob) =>
  new Promise<{ exitCode: number; log: string }>((resolve) => {
    const env = Object.fromEntries(job.environment.map((e) => [e.name, e.value]))
    const child = spawn(process.execPath, [join(ROOT, 'scripts/pipeline.mjs'), 'run-stage', ...job.command], {
      cwd: batchDir,
      env: { ...process.env, ...env },
    })
    children.add(child)
    let log = ''
    child.stdout.on('data', (c: Buffer) => (log += c.toString()))
    child.stderr.on('data', (c: Buffer) => (log += c.toString()))
    child.on('close', (code) => {
      children.delete(child)
      resolve({ exitCode: code ?? 137, log })
    })
  })
const fake = await startFakeBatch({ exec })
t.teardown(() => fake.close())
process.env.AWS_ENDPOINT_URL_BATCH = fake.endpoint
process.env.AWS_ENDPOINT_URL_CLOUDWATCH_LOGS = fake.endpoint

const cli = (cwd: string, args: string[]) =>
  captureMain(cwd, args, { ...process.env, NO_COLOR: '1', CUSP_STORE: '', CUSP_BATCH_POLL_MS: '20' })

const spec = `s3://${TEST_BUCKET}/batch?endpoint=${encodeURIComponent(s3.endpoint)}`
const FULL = process.env.CUSP_BATCH_SMOKE_FULL === '1'
const SELECT = FULL ? [] : ['--stage', 'cusp-scan']
const BATCH = [
  ...SELECT,
  '--profile',
  'smoke',
  '--backend',
  'wasm',
  '--executor',
  'aws-batch',
  '--job-queue',
  'gpu-q',
  '--image',
  'cusp:cpu',
  '--store',
  spec,
  '--jobs',
  '3',
  '--json',
]

t.test('above the confirmation threshold and not on a terminal: refused in one line, nothing submitted', async (t) => {
  const r = await cli(batchDir, [...BATCH, '--confirm-above', '0'])
  t.equal(r.code, 2)
  t.match(r.stderr, /estimated cost \$[0-9.]+ is above the confirmation threshold \$0\.00 and there is no terminal to ask: pass --yes/)
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line')
  t.equal(fake.jobs.size, 0, 'nothing submitted')
})

t.test('the smoke profile through --executor aws-batch: byte-identical lock to a local run', async (t) => {
  const remote = await cli(batchDir, [...BATCH, '--yes'])
  t.equal(remote.code, 0, remote.stderr.slice(-3000))
  const summary = JSON.parse(remote.stdout.trim().split('\n').at(-1) ?? '{}') as { outcomes: Record<string, { outcome: string }> }
  const ids = Object.keys(summary.outcomes)
  t.ok(FULL ? ids.length >= 14 : ids.length === 3, `${ids.length} instances`)
  t.ok(
    Object.values(summary.outcomes).every((o) => o.outcome === 'ran'),
    'every instance ran',
  )
  t.equal(fake.jobs.size, ids.length, 'one Batch job per instance')
  t.ok([...fake.jobs.values()].every((j) => j.status === 'SUCCEEDED'))
  // Job definitions: one per resource shape, each registered once and used by its jobs.
  const shapes = new Set(
    fake.definitions.map((d) => JSON.stringify((d.containerProperties as { resourceRequirements: unknown }).resourceRequirements)),
  )
  t.equal(shapes.size, fake.definitions.length, 'no two definitions of the same shape')
  t.equal(fake.calls.filter((c) => c === 'RegisterJobDefinition').length, fake.definitions.length, 'each registered once')
  t.same(new Set([...fake.jobs.values()].map((j) => j.jobDefinition)), new Set(fake.definitions.map((d) => d.jobDefinitionArn)))
  t.match(
    remote.stdout,
    /"type":"log","instance":"[^"]+","message":"Batch job cusp-cusp-batch-remo[^"]*: RUNNING"/,
    'status transitions are --json events',
  )
  t.notMatch(JSON.stringify([...fake.jobs.values()].map((j) => j.environment)), /S3RVER/, 'no credentials in any job')

  const local = await cli(localDir, [...SELECT, '--profile', 'smoke', '--backend', 'wasm', '--json'])
  t.equal(local.code, 0, local.stderr.slice(-3000))
  t.equal(
    await readFile(join(batchDir, 'pipeline.lock'), 'utf8'),
    await readFile(join(localDir, 'pipeline.lock'), 'utf8'),
    'byte-identical locks: same fingerprints and output digests',
  )
})

t.test('after the run: nothing costs; one cusp-scan param changed: only cusp-scan has a cost', async (t) => {
  const fresh = await cli(localDir, ['status', ...SELECT, '--profile', 'smoke', '--backend', 'wasm', '--estimate', '--json'])
  t.equal(fresh.code, 0, fresh.stderr)
  const before = JSON.parse(fresh.stdout.trim().split('\n').at(-1) ?? '{}') as {
    type: string
    total: { instances: number; usd: number }
    stages: unknown[]
  }
  t.equal(before.type, 'estimate')
  t.same(before.total, { instances: 0, flops: 0, deviceHours: 0, usd: 0 })
  t.same(before.stages, [])

  const changed = await cli(localDir, [
    'status',
    ...SELECT,
    '--profile',
    'smoke',
    '--backend',
    'wasm',
    '--set',
    'cusp-scan.points=7',
    '--estimate',
    '--json',
  ])
  t.equal(changed.code, 0, changed.stderr)
  const after = JSON.parse(changed.stdout.trim().split('\n').at(-1) ?? '{}') as {
    total: { instances: number; usd: number; flops: number }
    stages: { stage: string; instances: number }[]
    instances: { instance: string }[]
  }
  t.same(
    after.stages.map((s) => [s.stage, s.instances]),
    [['cusp-scan', 1]],
    'only the cusp-scan instance would run at a cost',
  )
  t.match(after.instances[0]?.instance, /^cusp-scan@/)
  t.ok(after.total.flops > 0 && after.total.usd > 0)

  const text = await cli(localDir, [
    '--dry-run',
    '--estimate',
    ...SELECT,
    '--profile',
    'smoke',
    '--backend',
    'wasm',
    '--set',
    'cusp-scan.points=7',
  ])
  t.equal(text.code, 0, text.stderr)
  t.match(text.stdout, /^stage\s+to run\s+compute \(upper bound\)\s+device\s+longest instance\s+device-hours\s+cost\ncusp-scan\s+1\s/)
  t.match(text.stdout, /\ntotal\s+1\s/)
  t.match(text.stdout, /instance\(s\) fresh or restorable from the store: no cost/)
})
