/**
 * Failures during execution: a failing stage publishes nothing (no run record, no lock entry,
 * no work directory left), keepGoing continues independent branches and skips dependents,
 * without keepGoing nothing new starts after the first failure, and the output contract
 * (exactly the declared outputs; a result valid against its schema) is enforced.
 */
import t from 'tap'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { execute } from '../../src/harness/run-pipeline.ts'
import { Project } from './fixtures/counting-project.ts'

const outcomes = (o: Record<string, { outcome: string }>): Record<string, string> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v.outcome]))

async function recordedInstances(p: Project): Promise<string[]> {
  return (await p.store.listRuns()).map((r) => r.instance).sort()
}

t.test('a failing stage publishes nothing; keepGoing runs independent branches and skips dependents', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  p.control('fail', 'square@k=2')
  const { summary, ran, events } = await p.run({ keepGoing: true })
  t.same(ran, ['side', 'source', 'square@k=1', 'square@k=2', 'square@k=3'])
  t.same(outcomes(summary.outcomes), {
    side: 'ran',
    source: 'ran',
    'square@k=1': 'ran',
    'square@k=2': 'failed',
    'square@k=3': 'ran',
    sum: 'skipped',
  })
  t.notOk(summary.ok)
  t.match(summary.failures, [
    { reason: 'stage-failed', instance: 'square@k=2', exitCode: 1, signal: null, stderrTail: /asked to fail: square@k=2/ },
  ])
  t.match(
    events.find((e) => e.type === 'skipped'),
    { instance: 'sum', because: 'upstream square@k=2 failed' },
  )
  t.same(Object.keys(p.lock().instances).sort(), ['side', 'source', 'square@k=1', 'square@k=3'])
  t.same(await recordedInstances(p), ['side', 'source', 'square@k=1', 'square@k=3'])
  t.same(readdirSync(join(p.root, '.cusp', 'work')), [], 'no work directory left behind')

  p.control('fail', 'square@k=2', false)
  const again = await p.run()
  t.same(again.ran, ['square@k=2', 'sum'], 'only the failed and skipped instances run next time')
  t.ok(again.summary.ok)
})

t.test('without keepGoing nothing new starts after the first failure', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  p.control('fail', 'side')
  const { summary, ran } = await p.run({ jobs: 1 })
  t.same(ran, ['side'], 'side is first in order and fails; nothing else starts')
  t.equal(summary.outcomes.side?.outcome, 'failed')
  for (const id of ['source', 'square@k=1', 'square@k=2', 'square@k=3', 'sum']) {
    t.equal(summary.outcomes[id]?.outcome, 'skipped', id)
  }
  t.equal(summary.outcomes.source?.because, 'not started: side failed')
  t.notOk(existsSync(p.lockPath), 'no lock written at all')
})

t.test('outputs must be exactly the declared ones: a stray file fails the instance', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  p.control('stray', 'side')
  const { summary } = await p.run({ targets: ['side'] })
  t.match(summary.failures, [{ reason: 'outputs-mismatch', instance: 'side', missing: [], unexpected: ['stray.txt'] }])
  t.same(await recordedInstances(p), [])
})

t.test('a result that violates the stage result schema fails the instance', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  p.control('badresult', 'sum')
  const { summary } = await p.run({ targets: ['sum'] })
  t.equal(summary.outcomes.sum?.outcome, 'failed')
  t.match(summary.failures, [{ reason: 'result-invalid', instance: 'sum', message: /total/ }])
  t.notOk(p.lock().instances.sum, 'no lock entry for sum')
  t.same(await recordedInstances(p), ['source', 'square@k=1', 'square@k=2', 'square@k=3'])
})

t.test('an invalid lock is a failure value, and nothing runs', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  writeFileSync(p.lockPath, '{ not json')
  const r = await execute({ pipeline: p.pipeline(), store: p.store, lockPath: p.lockPath })
  t.notOk(r.ok)
  if (!r.ok) t.match(r.error, [{ reason: 'lock-invalid' }])
  t.same(p.counts(), [])
})
