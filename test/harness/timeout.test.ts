/**
 * Per-stage time limits (`timeout:` in pipeline.yaml, `--job-timeout` over it): the analyzer
 * reads and validates the key (stage and profile entry), each executor that can stop a run
 * applies it (in-process: the stage process is killed; local-process: the run-stage child;
 * kubernetes: activeDeadlineSeconds; aws-batch: the attempt timeout, in aws-batch.test.ts), and a
 * run stopped at its limit fails as `timed-out`, naming the instance, the limit and where it was
 * set. No test depends on timing: a stage that is stopped is one that never ends by itself (it
 * is held until released), and a stage that must not be stopped has a limit of minutes.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { runStreaming } from '../../src/harness/executors/local.ts'
import { effectiveTimeout, type RunnerRequest } from '../../src/harness/executors/runner.ts'
import { jobEnd, jobManifest } from '../../src/harness/executors/kubernetes.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import { timeoutSeconds } from '../../src/harness/stage-decl.ts'
import type { ExecEvent } from '../../src/harness/run-types.ts'
import type { Fingerprint } from '../../src/harness/types.ts'
import { Project } from './fixtures/counting-project.ts'

const FP = 'f'.repeat(64) as Fingerprint

/** The toy project with `timeout:` lines added to stage `side` and, optionally, a profile. */
function withTimeout(p: Project, stage: string | number | undefined, profile?: string | number): void {
  const file = join(p.root, 'pipeline.yaml')
  let y = readFileSync(file, 'utf8')
  if (stage !== undefined) y = y.replace('    outputs: { side.txt: file }\n', `    outputs: { side.txt: file }\n    timeout: ${stage}\n`)
  if (profile !== undefined) y += `profiles:\n  quick:\n    stages:\n      side: { timeout: ${profile} }\n`
  writeFileSync(file, y)
}

function analyzeToy(p: Project, profile?: string) {
  return analyze({ file: join(p.root, 'pipeline.yaml'), reader: nodeReader(p.root), ...(profile !== undefined ? { profile } : {}) })
}

t.test('timeout: seconds or 90s/45m/6h; a profile entry overrides the stage; not part of anything else', async (t) => {
  t.equal(timeoutSeconds(90), 90)
  t.equal(timeoutSeconds('90s'), 90)
  t.equal(timeoutSeconds('45m'), 2700)
  t.equal(timeoutSeconds('6h'), 21600)

  const p = new Project()
  t.teardown(() => p.cleanup())
  const plain = p.pipeline()
  withTimeout(p, '45m', 120)
  const r = analyzeToy(p)
  if (!r.ok) throw new Error(JSON.stringify(r.error))
  t.same(r.value.instances.get('side')?.timeout, { seconds: 2700, from: 'stages.side.timeout' })
  t.equal(r.value.instances.get('source')?.timeout, undefined, 'a stage without timeout: has no limit')
  const q = analyzeToy(p, 'quick')
  if (!q.ok) throw new Error(JSON.stringify(q.error))
  t.same(q.value.instances.get('side')?.timeout, { seconds: 120, from: 'profiles.quick.stages.side.timeout' })

  const side = r.value.instances.get('side')!
  t.same(effectiveTimeout(side, undefined), { seconds: 2700, from: 'stages.side.timeout' })
  t.same(effectiveTimeout(side, 30), { seconds: 30, from: '--job-timeout' }, '--job-timeout wins over the declaration')
  t.equal(effectiveTimeout(side, false), undefined, 'false (run-stage inside a runner): no limit')
  t.same(effectiveTimeout(plain.instances.get('side')!, 30), { seconds: 30, from: '--job-timeout' }, 'and applies to undeclared stages')
  const { timeout: _dropped, ...rest } = side
  t.same(rest, plain.instances.get('side'), 'the instance is otherwise unchanged (params, resources, ids)')
})

t.test('bad timeout values are schema violations located at the key', async (t) => {
  for (const bad of ['0', '1.5', '"5 minutes"', '"10d"', '-3', '"0s"']) {
    const p = new Project()
    withTimeout(p, bad)
    const r = analyzeToy(p)
    p.cleanup()
    t.notOk(r.ok, `timeout: ${bad} is refused`)
    if (r.ok) continue
    const msg = r.error.map(formatFailure).join('\n')
    t.match(msg, /stages\.side\.timeout/, `${bad}: the message names stages.side.timeout`)
    t.match(r.error[0], { reason: 'schema-violation', location: { line: 19 } }, `${bad}: located at its line`)
  }
})

t.test('in-process: a stage past its timeout is stopped and reported; publishes nothing', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  withTimeout(p, 1)
  p.control('hold', 'side') // never ends by itself
  const { summary } = await p.run({ targets: ['side'] })
  t.equal(summary.outcomes.side?.outcome, 'failed')
  t.match(summary.failures, [
    { reason: 'timed-out', instance: 'side', limit: { seconds: 1, from: 'stages.side.timeout' }, executor: 'local' },
  ])
  t.match(
    formatFailure(summary.failures[0]!),
    /^stage instance side ran past its time limit of 1 s \(stages\.side\.timeout\) and was stopped by the local executor\. Raise the stage's timeout: in pipeline\.yaml, or pass --job-timeout SECONDS\./,
  )
  t.same(await p.store.listRuns(), [], 'nothing published')
  t.same(readdirSync(join(p.root, '.cusp', 'work')), [], 'no work directory left')

  // --job-timeout overrides it (here for a stage that declares none), named as the source of the limit.
  const q = new Project()
  t.teardown(() => q.cleanup())
  q.control('hold', 'side')
  const over = await q.run({ targets: ['side'], jobTimeout: 1 })
  t.match(over.summary.failures, [{ reason: 'timed-out', instance: 'side', limit: { seconds: 1, from: '--job-timeout' } }])

  // A generous limit leaves a normal run alone.
  p.control('hold', 'side', false)
  writeFileSync(join(p.root, 'pipeline.yaml'), readFileSync(join(p.root, 'pipeline.yaml'), 'utf8').replace('timeout: 1', 'timeout: 10m'))
  const ok = await p.run({ targets: ['side'] })
  t.ok(ok.summary.ok, JSON.stringify(ok.summary.failures))
  t.equal(ok.summary.outcomes.side?.outcome, 'ran')
})

t.test('local-process and docker runners: the child is stopped at the limit and the failure says so', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  const events: ExecEvent[] = []
  const req: RunnerRequest = {
    instance: p.pipeline().instances.get('side')!,
    fingerprint: FP,
    emit: (e) => events.push(e),
    timeout: { seconds: 1, from: 'stages.side.timeout' },
  }
  const live = new Set<{ kill(signal?: NodeJS.Signals): boolean }>()
  // A child that never exits by itself, after saying something on stderr.
  const forever = ['-e', "process.stderr.write('working\\n'); setInterval(() => {}, 1000)"]
  const r = await runStreaming(process.execPath, forever, { env: process.env, executor: 'local-process' }, req, live)
  t.match(r, {
    ok: false,
    failure: { reason: 'timed-out', instance: 'side', limit: { seconds: 1 }, executor: 'local-process', stderrTail: /working/ },
  })
  t.equal(live.size, 0, 'the child is no longer tracked')
  const generous = { ...req, timeout: { seconds: 600, from: 'stages.side.timeout' } }
  const quick = await runStreaming(process.execPath, ['-e', '0'], { env: process.env, executor: 'local-process' }, generous, live)
  t.same(quick, { ok: true }, 'a child that exits within its limit succeeds')
})

t.test('kubernetes: the limit is the Job activeDeadlineSeconds; DeadlineExceeded is a timeout', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  const inst = p.pipeline().instances.get('side')!
  const o = { image: 'cusp:gpu', spec: { store: 's3://b/p' }, pipelineName: 'toy', namespace: 'ns' }
  t.equal(jobManifest(o, inst, FP, 'abc123', 5400).spec?.activeDeadlineSeconds, 5400)
  t.notOk('activeDeadlineSeconds' in (jobManifest(o, inst, FP, 'abc123').spec ?? {}), 'no limit: no deadline')
  const failed = (reason: string) =>
    jobEnd({ metadata: { name: 'j' }, status: { conditions: [{ type: 'Failed', status: 'True', reason, message: 'm' }] } })
  t.match(failed('DeadlineExceeded'), { kind: 'failed', deadline: true })
  t.notOk((failed('BackoffLimitExceeded') as { deadline?: boolean }).deadline, 'a failed pod is not a timeout')
})
