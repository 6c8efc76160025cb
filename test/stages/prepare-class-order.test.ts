// prepare-data's class_order (the cpu profile's class sweep: a matrix over an integer `classes` takes
// the first n of a list of confusable classes): the chosen classes, their order (new labels), and the
// examples equal an explicit class list; a count beyond the list is a one-line error.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { readJson, runJob, writeJob } from './fixtures.ts'

const base = {
  source: 'idx',
  split: 'train',
  n_data: 40,
  normalisation: 'standardise',
  seed: 0,
  cifar10: { md5: 'c32a1d4ab5d03f1284b67883e8d87530' },
  idx: {},
  synthetic: { classes: 10, per_class: 100, height: 8, width: 8, channels: 1, noise: 1, seed: 0 },
}
const order = ['T-shirt/top', 'Shirt', 'Pullover', 'Coat']

t.test('class_order: classes = n takes the first n listed classes, in that order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-class-order-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const a = await writeJob(join(dir, 'a'), 'prepare-data', { ...base, classes: 2, class_order: order }, {})
  const b = await writeJob(join(dir, 'b'), 'prepare-data', { ...base, classes: ['T-shirt/top', 'Shirt'] }, {})
  for (const d of ['a', 'b']) {
    const r = await runJob(join(dir, d))
    t.equal(r.code, 0, r.stderr)
  }
  const ra = await readJson(join(a, 'result.json'))
  t.same(ra.class_names, ['T-shirt/top', 'Shirt'], 'T-shirt and Shirt, not T-shirt and Trouser')
  t.same(ra.label_counts, [20, 20])
  t.same(await readFile(join(a, 'dataset')), await readFile(join(b, 'dataset')), 'same bytes as the explicit list')
  const c = await writeJob(join(dir, 'c'), 'prepare-data', { ...base, classes: 5, class_order: order }, {})
  t.ok(c)
  const rc = await runJob(join(dir, 'c'))
  t.equal(rc.code, 1)
  t.match(rc.stderr, /classes = 5 but class_order lists only 4 classes/)
})
