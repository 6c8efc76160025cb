/**
 * Freshness through `execute()` on a toy project whose stages count their invocations: what
 * runs, what is restored and what is left alone after each kind of change. One project is
 * carried through the steps in order (each step starts from the previous one's state).
 */
import t from 'tap'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { plan } from '../../src/harness/run-pipeline.ts'
import { parseListing } from '../../src/harness/store/dir-listing.ts'
import { pipelineYaml, Project } from './fixtures/counting-project.ts'

const p = new Project()
t.teardown(() => p.cleanup())

const ALL = ['side', 'source', 'square@k=1', 'square@k=2', 'square@k=3', 'sum']

t.test('plan() and dryRun are effects-free: no lock, no store, no work dir, no stage', async (t) => {
  const steps = await plan({ pipeline: p.pipeline(), store: p.store, lockPath: p.lockPath })
  t.ok(steps.ok)
  if (steps.ok)
    t.same(
      steps.value.map((s) => s.action),
      ['run', 'run', 'run', 'run', 'run', 'run'],
    )
  const { summary, events } = await p.run({ dryRun: true })
  t.same(summary.outcomes, {})
  t.same(
    events.map((e) => e.type),
    ['plan'],
  )
  for (const path of [p.lockPath, p.storeRoot, join(p.root, '.cusp')]) t.notOk(existsSync(path), `${path} not created`)
  t.same(p.counts(), [])
})

t.test('first run runs everything, once each, and records every instance in the lock', async (t) => {
  const { summary, ran, events } = await p.run()
  t.same(events[0]?.type, 'plan')
  t.ok(
    events.some((e) => e.type === 'progress' && e.instance === 'source' && e.fraction === 1 && e.message === 'wrote 4 rows'),
    'progress streamed',
  )
  t.ok(
    events.some((e) => e.type === 'log' && e.instance === 'square@k=3' && e.message === 'squared 4 values from source'),
    'log streamed',
  )
  t.same(ran, ALL)
  t.ok(summary.ok)
  t.same(Object.keys(p.lock().instances).sort(), ALL)
  t.ok(Object.values(summary.outcomes).every((o) => o.outcome === 'ran'))
  t.equal((await p.outputBytes('sum', 'total.txt')).toString(), 'square@k=1 30\nsquare@k=2 60\nsquare@k=3 90\ntotal 180\n')
  t.same(JSON.parse((await p.outputBytes('sum', 'result.json')).toString()), { total: 180 })
})

t.test('an immediate rerun runs nothing and restores nothing', async (t) => {
  const lockBefore = readFileSync(p.lockPath, 'utf8')
  const { summary, ran, events } = await p.run()
  t.same(ran, [])
  t.ok(Object.values(summary.outcomes).every((o) => o.outcome === 'fresh'))
  t.same(
    events.filter((e) => e.type === 'start'),
    [],
    'no stage started, no restore',
  )
  t.equal(readFileSync(p.lockPath, 'utf8'), lockBefore, 'lock untouched')
})

t.test('changing one param of one instance reruns exactly that instance', async (t) => {
  const { ran, summary } = await p.run({ overrides: ['side.word=bye'] })
  t.same(ran, ['side'])
  t.same(summary.steps.find((s) => s.instance === 'side')?.reasons, [{ kind: 'param-changed', key: 'word', old: 'hello', new: 'bye' }])
  t.same((await p.run({ overrides: ['side.word=bye'] })).ran, [])
})

t.test('changing one matrix value reruns exactly that instance and its dependents; switching back restores', async (t) => {
  writeFileSync(join(p.root, 'pipeline.yaml'), pipelineYaml({}, 4, [1, 2, 5]))
  const { ran, summary } = await p.run({ overrides: ['side.word=bye'] })
  t.same(ran, ['square@k=5', 'sum'])
  t.equal(summary.outcomes['square@k=1']?.outcome, 'fresh')
  writeFileSync(join(p.root, 'pipeline.yaml'), pipelineYaml({}, 4, [1, 2, 3]))
  const back = await p.run({ overrides: ['side.word=hello'] })
  t.same(back.ran, [], 'nothing recomputed')
  t.equal(back.summary.outcomes.sum?.outcome, 'restored', 'sum restored from its run record')
  t.equal(back.summary.outcomes.side?.outcome, 'restored')
  t.equal(back.summary.outcomes['square@k=3']?.outcome, 'fresh', 'its lock entry was kept')
  t.equal((await p.outputBytes('sum', 'total.txt')).toString(), 'square@k=1 30\nsquare@k=2 60\nsquare@k=3 90\ntotal 180\n')
})

t.test('a target brings only itself and its stale ancestry up to date', async (t) => {
  const overrides = ['source.n=5', 'square.offset=1']
  const { ran, summary } = await p.run({ overrides, targets: ['square@k=2'] })
  t.same(ran, ['source', 'square@k=2'])
  t.same(Object.keys(summary.outcomes).sort(), ['source', 'square@k=2'])
  const { ran: rest } = await p.run({ overrides })
  t.same(rest, ['square@k=1', 'square@k=3', 'sum'], 'the others were still stale')
  // A stage name as target means all of its instances.
  const back = await p.run({ targets: ['square'] })
  t.same(back.summary.outcomes.source?.outcome, 'restored')
  t.same(Object.keys(back.summary.outcomes).sort(), ['source', 'square@k=1', 'square@k=2', 'square@k=3'])
  t.same((await p.run()).ran, [])
})

t.test('deleting an object from the store reruns exactly the instance that needs it', async (t) => {
  const lock = p.lock()
  await p.store.deleteObject(lock.instances['square@k=1']!.outputs['out.txt']!.digest)
  const { ran, summary } = await p.run()
  t.same(ran, ['square@k=1'], 'sum is fresh again: its producer wrote the same bytes (early cutoff)')
  t.same(summary.steps.find((s) => s.instance === 'square@k=1')?.reasons, [{ kind: 'output-missing', output: 'out.txt' }])
  t.equal(summary.outcomes.sum?.outcome, 'fresh')
  // A directory output's listing object, too.
  await p.store.deleteObject(p.lock().instances['square@k=2']!.outputs.parts!.digest)
  t.same((await p.run()).ran, ['square@k=2'])
  t.same((await p.run()).ran, [])
})

t.test('deleting one file of a directory output reruns its producer', async (t) => {
  const listing = p.lock().instances['square@k=3']!.outputs.parts!.digest
  const entries = parseListing(readFileSync(p.store.objectPath(listing)))
  const inner = entries?.find((e) => e.path === 'nested/last.txt')
  if (inner === undefined) throw new Error('listing without nested/last.txt')
  await p.store.deleteObject(inner.digest)
  t.same((await p.run()).ran, ['square@k=3'])
  t.same((await p.run()).ran, [])
})

t.test('force reruns the target only; with downstream, dependents re-decide (early cutoff)', async (t) => {
  const { ran, summary } = await p.run({ targets: ['sum'], force: true })
  t.same(ran, ['sum'])
  t.same(summary.steps.find((s) => s.instance === 'sum')?.reasons, [{ kind: 'forced' }])
  const down = await p.run({ targets: ['source'], force: true, downstream: true })
  t.same(down.ran, ['source'], 'source wrote identical bytes, so its dependents stay fresh')
  t.same(Object.fromEntries(Object.entries(down.summary.outcomes).map(([k, v]) => [k, v.outcome])), {
    source: 'ran',
    'square@k=1': 'fresh',
    'square@k=2': 'fresh',
    'square@k=3': 'fresh',
    sum: 'fresh',
  })
})

t.test('a corrupted object is detected when read and its producer reruns', async (t) => {
  const digest = p.lock().instances.source!.outputs['data.txt']!.digest
  const path = p.store.objectPath(digest)
  chmodSync(path, 0o644)
  const bytes = readFileSync(path)
  bytes[0] = bytes[0]! ^ 0xff
  writeFileSync(path, bytes)
  // Make the squares need their input: a param change of theirs.
  const { ran, summary, events } = await p.run({ overrides: ['square.offset=2'] })
  t.same(ran, ['source', 'square@k=1', 'square@k=2', 'square@k=3', 'sum'], 'source reran once, before its consumers')
  t.ok(summary.ok)
  t.ok(events.some((e) => e.type === 'log' && e.instance === 'source' && /missing or corrupt/.test(e.message)))
  t.ok(await p.store.verifyObject(digest), 'the object is intact again')
  t.equal(p.lock().instances.source?.outputs['data.txt']?.digest, digest, 'same bytes as before')
  t.same((await p.run({ overrides: ['square.offset=2'] })).ran, [])
})

t.test('a corrupted object is detected on restore, and the stage runs instead', async (t) => {
  const hello = p.lock().instances.side!.outputs['side.txt']!.digest
  t.equal((await p.run({ overrides: ['side.word=bye'] })).summary.outcomes.side?.outcome, 'restored')
  const path = p.store.objectPath(hello)
  chmodSync(path, 0o644)
  const bytes = readFileSync(path)
  bytes[0] = bytes[0]! ^ 0x01
  writeFileSync(path, bytes)
  const { ran, summary, events } = await p.run()
  t.same(ran, ['side'], 'side ran instead of restoring')
  t.equal(summary.outcomes.side?.outcome, 'ran')
  t.ok(events.some((e) => e.type === 'log' && e.instance === 'side' && /cannot restore: side.txt/.test(e.message)))
  t.equal(p.lock().instances.side?.outputs['side.txt']?.digest, hello, 'same bytes as before the corruption')
  t.ok(await p.store.verifyObject(hello), 'the object is intact again')
})
