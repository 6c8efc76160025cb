import t from 'tap'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readIdxDataset } from '../../src/data/idx.ts'
import { DEBIAN_FASHION_MNIST, FASHION_SPLITS, firstPerClass, takeRows } from '../../src/data/fashion-mnist-subset.ts'

const bundle = fileURLToPath(new URL('../../data/fashion-mnist/', import.meta.url))

t.test('firstPerClass keeps the first k of each class, in file order', async (t) => {
  t.same(Array.from(firstPerClass(Uint8Array.from([1, 0, 1, 1, 0, 2, 2]), 2)), [0, 1, 2, 4, 5, 6])
  t.throws(() => firstPerClass(Uint8Array.from([1, 0, 1]), 2), /class 0 has only 1 examples/)
})

t.test('the bundled subset: real IDX files, balanced, <= 5 MB, with its licence', async (t) => {
  const bytes = readdirSync(bundle).reduce((a, f) => a + statSync(join(bundle, f)).size, 0)
  t.ok(bytes <= 5 * 1024 * 1024, `${bytes} bytes`)
  const licence = readFileSync(join(bundle, 'LICENSE'), 'utf8')
  t.match(licence, /The MIT License \(MIT\) Copyright © \[2017\] Zalando SE/)
  t.match(readFileSync(join(bundle, 'README.md'), 'utf8'), /\/usr\/share\/datasets\/fashion-mnist\//)
  for (const split of FASHION_SPLITS) {
    const d = await readIdxDataset(join(bundle, split.images), join(bundle, split.labels))
    t.same([d.n, d.rows, d.cols], [10 * split.perClass, 28, 28], split.images)
    const counts = new Array<number>(10).fill(0)
    for (const l of d.labels) counts[l]!++
    t.same(counts, new Array(10).fill(split.perClass), `${split.images}: ${split.perClass} per class`)
    let max = 0
    for (const p of d.images) max = Math.max(max, p)
    t.ok(max > 200, 'real pixels, not blank')
  }
})

t.test('the bundle is exactly the documented rows of the Debian full set', { skip: existsSync(DEBIAN_FASHION_MNIST) ? false : `${DEBIAN_FASHION_MNIST} not installed` }, async (t) => {
  for (const split of FASHION_SPLITS) {
    const full = await readIdxDataset(join(DEBIAN_FASHION_MNIST, split.images), join(DEBIAN_FASHION_MNIST, split.labels))
    const want = takeRows(full, firstPerClass(full.labels, split.perClass))
    const got = await readIdxDataset(join(bundle, split.images), join(bundle, split.labels))
    t.ok(Buffer.from(got.labels).equals(Buffer.from(want.labels)), `${split.labels} equal`)
    t.ok(Buffer.from(got.images).equals(Buffer.from(want.images)), `${split.images} equal`)
  }
})
