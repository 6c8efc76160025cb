/**
 * Scheduling through `execute()`: weighted job slots (a stage takes its `resources.cpu`) and
 * two executions at once on one project (each keeps the other's lock entries).
 */
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Project } from './fixtures/counting-project.ts'

t.test("two executions at once on different targets keep each other's lock entries", async (t) => {
  const q = new Project()
  t.teardown(() => q.cleanup())
  const [a, b] = await Promise.all([q.run({ targets: ['side'] }), q.run({ targets: ['square@k=1'] })])
  t.ok(a.summary.ok && b.summary.ok)
  t.same(Object.keys(q.lock().instances).sort(), ['side', 'source', 'square@k=1'])
  t.same(q.counts().sort(), ['side', 'source', 'square@k=1'])
})

t.test('a stage declaring 2 CPUs takes both of 2 job slots: nothing runs beside it', async (t) => {
  const q = new Project()
  t.teardown(() => q.cleanup())
  const yaml = readFileSync(join(q.root, 'pipeline.yaml'), 'utf8').replace(
    'params: { word: hello }',
    'params: { word: hello }\n    resources: { cpu: 2 }',
  )
  writeFileSync(join(q.root, 'pipeline.yaml'), yaml)
  const { events } = await q.run({ targets: ['side', 'source'], jobs: 2 })
  const order = events.filter((e) => e.type === 'start' || e.type === 'done').map((e) => `${e.type} ${e.instance}`)
  t.same(order, ['start side', 'done side', 'start source', 'done source'])
})
