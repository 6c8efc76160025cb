import t from 'tap'
import {
  balancedIndices,
  classQuotas,
  gatherSubset,
  labelCounts,
  selectClasses,
} from '../../src/data/subset.ts'
import type { ImageSet } from '../../src/data/image-set.ts'

const NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']

t.test('selectClasses: first n, ids, names; remap follows the listed order', async (t) => {
  t.same(selectClasses(NAMES, 3), { sourceIds: [0, 1, 2], names: ['airplane', 'automobile', 'bird'] })
  t.same(selectClasses(NAMES, ['cat', 1, 'ship']), { sourceIds: [3, 1, 8], names: ['cat', 'automobile', 'ship'] })
  t.throws(() => selectClasses(NAMES, 11), /between 1 and 10/)
  t.throws(() => selectClasses(NAMES, 0), /between 1 and 10/)
  t.throws(() => selectClasses(NAMES, []), /empty/)
  t.throws(() => selectClasses(NAMES, ['cow']), /no class named "cow"/)
  t.throws(() => selectClasses(NAMES, [10]), /not a class id \(0\.\.9\)/)
  t.throws(() => selectClasses(NAMES, [3, 'cat']), /class 3 \(cat\) is listed twice/)
})

t.test('classQuotas spread the remainder over the first classes', async (t) => {
  t.same(classQuotas(10, 3), [4, 3, 3])
  t.same(classQuotas(12, 3), [4, 4, 4])
  t.same(classQuotas(5, 5), [1, 1, 1, 1, 1])
})

// 10 classes, class of example i = (i * 7) % 10 so classes are interleaved irregularly.
const labels = Uint8Array.from({ length: 500 }, (_, i) => (i * 7) % 10)

t.test('balancedIndices: exact per-class counts, sorted, unique, only chosen classes', async (t) => {
  const ids = [3, 1, 8]
  const idx = balancedIndices(labels, ids, 31, 42)
  t.equal(idx.length, 31)
  t.ok(idx.every((v, i) => i === 0 || v > idx[i - 1]!), 'strictly ascending (so unique)')
  const per = ids.map((id) => Array.from(idx).filter((i) => labels[i] === id).length)
  t.same(per, [11, 10, 10], 'quotas in listed order')
  t.ok(Array.from(idx).every((i) => ids.includes(labels[i]!)), 'no other class')
})

t.test('balancedIndices: deterministic, seed-dependent, class-order-independent, prefix-stable', async (t) => {
  const a = balancedIndices(labels, [0, 5], 20, 7)
  t.same(Array.from(balancedIndices(labels, [0, 5], 20, 7)), Array.from(a), 'same seed, same subset')
  t.notSame(Array.from(balancedIndices(labels, [0, 5], 20, 8)), Array.from(a), 'another seed, another subset')
  t.same(Array.from(balancedIndices(labels, [5, 0], 20, 7)), Array.from(a), 'class order does not change the examples')
  const big = new Set(balancedIndices(labels, [0, 5], 40, 7))
  t.ok(Array.from(a).every((i) => big.has(i)), 'the n_D = 20 subset is inside the n_D = 40 one')
  const all = balancedIndices(labels, [0, 5], 100, 7)
  t.same(Array.from(all), Array.from(labels.keys()).filter((i) => labels[i] === 0 || labels[i] === 5), 'taking every example gives them all')
})

t.test('balancedIndices: the shuffle is uniform enough (each example chosen about equally often)', async (t) => {
  // class 0 has 50 examples; choose 10 of them over 2,000 seeds: each is chosen ~400 times.
  const hits = new Map<number, number>()
  for (let seed = 0; seed < 2000; seed++) for (const i of balancedIndices(labels, [0], 10, seed)) hits.set(i, (hits.get(i) ?? 0) + 1)
  t.equal(hits.size, 50)
  const counts = [...hits.values()]
  t.ok(Math.min(...counts) > 300 && Math.max(...counts) < 500, `counts within 400 +- 100: ${Math.min(...counts)}..${Math.max(...counts)}`)
})

t.test('balancedIndices: errors', async (t) => {
  t.throws(() => balancedIndices(labels, [0, 1], 1, 0), /at least one example per class \(2\)/)
  t.throws(() => balancedIndices(labels, [0, 1], 102, 0), /class 0 has 50 examples, fewer than the 51/)
  t.throws(() => balancedIndices(labels, [0], 2.5, 0), /must be an integer/)
})

t.test('gatherSubset: u8 scaled to [0,1], NHWC rows copied, labels remapped', async (t) => {
  const set: ImageSet = {
    n: 4, height: 1, width: 2, channels: 3,
    images: Uint8Array.from({ length: 24 }, (_, i) => i * 10),
    labels: Uint8Array.from([2, 0, 2, 1]),
    classNames: ['a', 'b', 'c'],
  }
  const { x, y } = gatherSubset(set, Int32Array.from([0, 2, 3]), [2, 1])
  t.same(Array.from(y), [0, 0, 1])
  t.same(Array.from(x.subarray(6, 12)), [120, 130, 140, 150, 160, 170].map((v) => Math.fround(v / 255)))
  t.same(labelCounts(y, 2), [2, 1])
  t.throws(() => gatherSubset(set, Int32Array.from([1]), [2, 1]), /example 1 has class 0, which is not selected/)
  const f: ImageSet = { ...set, images: Float32Array.from({ length: 24 }, (_, i) => i - 0.5) }
  t.same(Array.from(gatherSubset(f, Int32Array.from([3]), [1]).x), Array.from({ length: 6 }, (_, i) => 18 + i - 0.5), 'float pixels copied unscaled')
})
