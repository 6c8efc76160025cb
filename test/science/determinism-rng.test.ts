/**
 * The seeded generator behind Kaiming init (src/science/rng.ts): pinned outputs, so a change to the
 * generator (which would silently change every θ0 and so every downstream result) fails here; streams
 * separated by seed and name; uniforms strictly inside (0, 1); normal moments.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { buildModel, initParams } from '../../src/science/models.ts'
import { createRng, hashString } from '../../src/science/rng.ts'

t.test('pinned outputs (changing these changes every initialisation)', async (t) => {
  const r = createRng(0, 'conv1.weight')
  t.same([r.nextUint32(), r.nextUint32(), r.nextUint32()], [4162112528, 410571803, 4070046060])
  t.same([r.normal(), r.normal()], [-0.5825930778280277, 1.6372038562556268])
  t.equal(hashString(''), 0x811c9dc5, 'FNV-1a offset basis')
  t.equal(hashString('a'), 0xe40c292c, 'FNV-1a of "a"')
  // θ0 of the reference CNN, seed 0. Besides the generator this pins V8's Math.log/cos/sin (fdlibm
  // ports): if a Node upgrade ever changed them, this fails rather than results drifting silently.
  const m = buildModel({ arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10 })
  const digest = createHash('sha256')
    .update(Buffer.from(initParams(m, 0).buffer))
    .digest('hex')
  t.equal(digest, 'ffd9d98c2ecf0927ad502765713e13ceafb3880674b957ab22a37662b9691051', 'sha256 of reference-CNN θ0, seed 0')
})

t.test('streams: same (seed, name) repeats; other seeds, names or high seed bits differ', async (t) => {
  const first = (seed: number, name: string): number[] => {
    const r = createRng(seed, name)
    return [r.nextUint32(), r.nextUint32(), r.nextUint32(), r.nextUint32()]
  }
  t.same(first(7, 'fc.weight'), first(7, 'fc.weight'))
  t.not(first(7, 'fc.weight').join(), first(8, 'fc.weight').join())
  t.not(first(7, 'fc.weight').join(), first(7, 'fc.bias').join())
  t.not(first(7, '').join(), first(7 + 2 ** 32, '').join(), 'seeds above 2^32 are not truncated')
  t.throws(() => createRng(1.5), /integer/)
})

t.test('uniforms lie strictly inside (0, 1); normals have mean 0, variance 1, kurtosis 3', async (t) => {
  const r = createRng(123, 'moments')
  const N = 200_000
  let lo = 1
  let hi = 0
  for (let i = 0; i < 10_000; i++) {
    const u = r.uniform()
    lo = Math.min(lo, u)
    hi = Math.max(hi, u)
  }
  t.ok(lo > 0 && hi < 1, `uniform range (${lo}, ${hi})`)
  let s1 = 0
  let s2 = 0
  let s4 = 0
  for (let i = 0; i < N; i++) {
    const z = r.normal()
    s1 += z
    s2 += z * z
    s4 += z ** 4
  }
  const mean = s1 / N
  const variance = s2 / N - mean * mean
  const kurt = s4 / N / (variance * variance)
  // Standard errors: mean 1/sqrt(N) ~ 0.0022, variance sqrt(2/N) ~ 0.0032, kurtosis sqrt(24/N) ~ 0.011.
  t.ok(Math.abs(mean) < 0.011, `mean ${mean.toFixed(4)}`)
  t.ok(Math.abs(variance - 1) < 0.016, `variance ${variance.toFixed(4)}`)
  t.ok(Math.abs(kurt - 3) < 0.06, `kurtosis ${kurt.toFixed(3)}`)
})
