/**
 * Reuse of the θ-only work between conv HVPs at one θ (src/science/conv-hvp.ts: the forward pass
 * and the gradient's δ's cached per chunk at the last θ). Every output is compared bit for bit with
 * the uncached path (reuse off) over a sequence of HVPs: several directions at one θ on two
 * chunks, then a θ differing in one element (which must give the uncached answer at that θ, and
 * not the old one), then back; a chunk with the same pixels and other labels, and a chunk whose
 * pixels were changed in place, never hit. No tensors are left behind: the live count returns to
 * the same value whenever the cache holds the same entries, and to the start once it is cleared; a
 * byte budget too small for an entry keeps nothing. The worker threads (where reuse is on) give
 * the in-process bits for repeated HVPs at one θ.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { clearConvCache, convCacheStats, setConvCacheBytes, setConvReuse } from '../../src/science/conv-hvp.ts'
import { initEngine } from '../../src/science/engine.ts'
import { chunkHvp, datasetHvp, type Chunk, type Dataset } from '../../src/science/hvp.ts'
import { buildModel, initParams, type Model, type ModelSpec } from '../../src/science/models.ts'
import { createObjective } from '../../src/science/objective.ts'
import { createRng } from '../../src/science/rng.ts'
import { makeChunk } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
await initEngine('wasm')
t.teardown(() => setConvReuse(false))

const bits = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
const normal = (n: number, seed: number): Float32Array => {
  const rng = createRng(seed, 'conv-hvp-reuse')
  return Float32Array.from({ length: n }, () => rng.normal())
}
const thetaOf = (m: Model, seed: number): Float32Array => {
  const noise = normal(m.size, seed + 1)
  return initParams(m, seed).map((a, i) => a + 0.05 * noise[i]!)
}

/** relu and tanh, average and max pools, the explicit pad of AlexNet's first layer, VGG's stack. */
const SPECS: Array<[ModelSpec, number]> = [
  [{ arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10, pool: 'avg', width: 0.5 }, 12],
  [{ arch: 'cnn', activation: 'tanh', inputShape: [13, 11, 2], classes: 3, pool: 'max', width: 0.7 }, 5],
  [{ arch: 'cnn', activation: 'tanh', inputShape: [9, 15, 3], classes: 5, pool: 'avg', width: 0.3 }, 5],
  [{ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 8 }, 6],
  [{ arch: 'alexnet', activation: 'tanh', inputShape: [35, 33, 3], classes: 10, width: 1 / 16 }, 3],
  [{ arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 }, 3],
]

t.test('HVPs with reuse equal the uncached ones bit for bit; a changed θ or chunk never hits', async (tt) => {
  for (const [spec, n] of SPECS) {
    const m = buildModel(spec)
    const label = `${spec.arch} ${spec.activation} ${spec.pool ?? ''}`
    const c1 = makeChunk(m, n, 1)
    const c2 = makeChunk(m, n + 1, 2)
    // The same pixels as c1, the labels shifted: another chunk.
    const c3: Chunk = { x: c1.x, y: c1.y.map((y) => (y + 1) % spec.classes), n }
    const th1 = thetaOf(m, 3)
    const th2 = th1.slice()
    th2[0] = th2[0]! + 0.01 // a first-layer weight: every activation moves
    const vs = [1, 2, 3].map((s) => normal(m.size, 10 + s))
    // [θ, chunk, v, expected hit]
    const calls: Array<[Float32Array, Chunk, Float32Array, boolean]> = [
      [th1, c1, vs[0]!, false],
      [th1, c2, vs[0]!, false],
      [th1, c1, vs[1]!, true],
      [th1, c2, vs[1]!, true],
      [th1, c1, vs[2]!, true],
      [th1, c3, vs[0]!, false],
      [th2, c1, vs[0]!, false],
      [th2, c1, vs[1]!, true],
      [th1, c1, vs[0]!, false],
      [th1, c2, vs[2]!, false],
      [th1, c1, vs[2]!, true],
    ]
    setConvReuse(false)
    const want = calls.map(([th, c, v]) => chunkHvp(m, th, v, c))
    const start = tf.memory().numTensors
    setConvReuse(true)
    const s0 = convCacheStats()
    calls.forEach(([th, c, v, hit], k) => {
      const before = convCacheStats()
      const got = chunkHvp(m, th, v, c)
      const after = convCacheStats()
      tt.ok(bits(got).equals(bits(want[k]!)), `${label} call ${k}: bit for bit`)
      tt.equal(after.hits - before.hits, hit ? 1 : 0, `${label} call ${k}: ${hit ? 'hit' : 'miss'}`)
    })
    const s1 = convCacheStats()
    tt.equal(s1.hits - s0.hits + s1.misses - s0.misses, calls.length, `${label}: every call counted`)
    tt.notOk(bits(want[6]!).equals(bits(want[0]!)), `${label}: θ with one element changed gives another Hv`)
    tt.notOk(bits(want[5]!).equals(bits(want[0]!)), `${label}: other labels give another Hv`)
    // c1's pixels changed in place (the same array object): a miss, the uncached answer.
    const x0 = c1.x[0]!
    c1.x[0] = x0 + 0.5
    const before = convCacheStats()
    const moved = chunkHvp(m, th1, vs[2]!, c1)
    tt.equal(convCacheStats().misses - before.misses, 1, `${label}: pixels changed in place: a miss`)
    setConvReuse(false)
    tt.ok(bits(moved).equals(bits(chunkHvp(m, th1, vs[2]!, c1))), `${label}: pixels changed in place: the uncached bits`)
    tt.notOk(bits(moved).equals(bits(want[10]!)), `${label}: pixels changed in place: another Hv`)
    c1.x[0] = x0
    tt.equal(tf.memory().numTensors, start, `${label}: setConvReuse(false) empties the cache: ${start} tensors`)
  }
})

t.test('no tensors left behind: flat over repeated calls and θ changes, back to the start when cleared', async (tt) => {
  const spec: ModelSpec = { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 }
  const m = buildModel(spec)
  const c1 = makeChunk(m, 4, 5)
  const c2 = makeChunk(m, 4, 6)
  const th1 = thetaOf(m, 7)
  const th2 = th1.slice()
  th2[th2.length - 1] = th2[th2.length - 1]! + 0.01
  const v = normal(m.size, 8)
  const start = tf.memory().numTensors
  setConvReuse(true)
  chunkHvp(m, th1, v, c1)
  chunkHvp(m, th1, v, c2)
  const held = tf.memory().numTensors
  tt.ok(held > start, `the cache holds ${held - start} tensors for 2 chunks`)
  tt.equal(convCacheStats().entries, 2, 'two entries')
  for (let r = 0; r < 5; r++) {
    for (const th of [th1, th2, th1]) {
      chunkHvp(m, th, v, c1)
      chunkHvp(m, th, v, c2)
      chunkHvp(m, th, v, c1)
    }
    tt.equal(tf.memory().numTensors, held, `round ${r}: ${held} tensors, as after the first two calls`)
  }
  clearConvCache()
  tt.equal(tf.memory().numTensors, start, 'cleared: the tensors of the start')
  tt.equal(convCacheStats().entries, 0, 'cleared: no entries')
  // A budget below one entry: nothing kept but the parameters, each call the uncached bits.
  chunkHvp(m, th1, v, c1)
  const one = convCacheStats().bytes
  const budget = setConvCacheBytes(one - 1)
  const want = chunkHvp(m, th1, v, c1)
  const base = tf.memory().numTensors
  for (let r = 0; r < 3; r++) {
    tt.ok(bits(chunkHvp(m, th1, v, c1)).equals(bits(want)), `budget ${one - 1} B: the same bits`)
    tt.equal(tf.memory().numTensors, base, `budget ${one - 1} B: nothing more kept`)
  }
  tt.equal(convCacheStats().entries, 0, `budget ${one - 1} B: no entries`)
  setConvCacheBytes(budget)
  setConvReuse(false)
  tt.equal(tf.memory().numTensors, start, 'reuse off: the tensors of the start')
})

t.test('worker threads (reuse on) give the in-process bits for repeated HVPs at one θ', async (tt) => {
  const spec: ModelSpec = { arch: 'cnn', activation: 'relu', inputShape: [12, 12, 1], classes: 3, pool: 'max' }
  const m = buildModel(spec)
  const n = 30
  const rng = createRng(9, 'conv-hvp-reuse-data')
  const data: Dataset = {
    x: Float32Array.from({ length: n * 144 }, () => rng.normal()),
    y: Int32Array.from({ length: n }, () => rng.nextUint32() % 3),
    n,
    shape: [12, 12, 1],
  }
  const th1 = thetaOf(m, 10)
  const th2 = th1.slice()
  th2[5] = th2[5]! - 0.01
  const vs = [1, 2, 3].map((s) => normal(m.size, 20 + s))
  const seq: Array<[Float32Array, Float32Array]> = [
    [th1, vs[0]!],
    [th1, vs[1]!],
    [th1, vs[2]!],
    [th2, vs[0]!],
    [th2, vs[1]!],
    [th1, vs[0]!],
  ]
  setConvReuse(false)
  const want = seq.map(([th, v]) => datasetHvp(m, th, v, data, { chunkSize: 8 }))
  const obj = await createObjective({ spec, data, chunkSize: 8, workers: 2 })
  try {
    for (const [k, [th, v]] of seq.entries()) tt.ok(bits(await obj.hvp(th, v)).equals(bits(want[k]!)), `HVP ${k}: in-process bits`)
  } finally {
    await obj.dispose()
  }
})
