import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { channelStats, normalise, standardise } from '../../src/data/normalise.ts'
import { syntheticImageSet } from '../../src/data/synthetic.ts'
import { prepareDataset } from '../../src/data/prepare.ts'
import { indicesDigest, sourceDigest } from '../../src/data/manifest.ts'
import { createRng } from '../../src/science/rng.ts'

const PY = '/usr/bin/python3'
const havePy = existsSync(PY) && (() => {
  try {
    execFileSync(PY, ['-c', 'import numpy'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

// Values with a large common offset: a one-pass float32 variance would lose most digits here.
const rng = createRng(3)
const x = Float32Array.from({ length: 2000 * 3 }, (_, i) => 1000 + (i % 3) * 5 + rng.normal() * (1 + (i % 3))) // [2000, 1, 1, 3]

t.test('channelStats matches numpy (float64 mean and population std)', { skip: havePy ? false : 'no numpy' }, async (t) => {
  const ours = channelStats(x, 3)
  const np = JSON.parse(execFileSync(PY, ['-c', [
    'import sys, json, numpy as np',
    'a = np.frombuffer(sys.stdin.buffer.read(), dtype="<f4").astype(np.float64).reshape(-1, 3)',
    'print(json.dumps({"mean": a.mean(axis=0).tolist(), "std": a.std(axis=0).tolist()}))',
  ].join('\n')], { input: Buffer.from(x.buffer), encoding: 'utf8' })) as { mean: number[]; std: number[] }
  ours.mean.forEach((m, c) => t.ok(Math.abs(m - np.mean[c]!) <= 1e-12 * Math.abs(m), `mean ${c}: ${m} vs ${np.mean[c]}`))
  ours.std.forEach((s, c) => t.ok(Math.abs(s - np.std[c]!) <= 1e-9 * s, `std ${c}: ${s} vs ${np.std[c]}`))
})

t.test('standardise gives zero mean, unit std per channel; a constant channel is only centred', async (t) => {
  const y = Float32Array.from(x)
  const stats = normalise(y, 3, 'standardise')
  t.same(stats, channelStats(x, 3))
  const after = channelStats(y, 3)
  after.mean.forEach((m) => t.ok(Math.abs(m) < 1e-4, `mean ${m}`))
  after.std.forEach((s) => t.ok(Math.abs(s - 1) < 1e-4, `std ${s}`))
  const constant = Float32Array.from([2, 5, 2, 7]) // channel 0 is constant
  standardise(constant, channelStats(constant, 2))
  t.same(Array.from(constant), [0, -1, 0, 1])
  const z = Float32Array.from(x)
  t.same(normalise(z, 3, 'none'), { mean: [0, 0, 0], std: [1, 1, 1] })
  t.same(z, x, "'none' leaves the data alone")
})

t.test('synthetic images: deterministic, balanced, class-structured', async (t) => {
  const spec = { classes: 3, perClass: 20, height: 4, width: 4, channels: 2, noise: 0.3, seed: 9 }
  const a = syntheticImageSet(spec)
  t.same([a.n, a.height, a.width, a.channels], [60, 4, 4, 2])
  t.same(a.classNames, ['class-0', 'class-1', 'class-2'])
  t.same(Array.from(a.labels.subarray(0, 6)), [0, 1, 2, 0, 1, 2])
  t.same(syntheticImageSet(spec).images, a.images, 'same seed, same images')
  t.notSame(syntheticImageSet({ ...spec, seed: 10 }).images, a.images, 'another seed, other images')
  // Nearest-class-mean classification is perfect: the classes are separable.
  const per = 32
  const means = [0, 1, 2].map((k) => {
    const m = new Float64Array(per)
    for (let i = k; i < a.n; i += 3) for (let p = 0; p < per; p++) m[p] = m[p]! + a.images[i * per + p]! / 20
    return m
  })
  let correct = 0
  for (let i = 0; i < a.n; i++) {
    const d = means.map((m) => m.reduce((s, v, p) => s + (v - a.images[i * per + p]!) ** 2, 0))
    if (d.indexOf(Math.min(...d)) === a.labels[i]) correct++
  }
  t.equal(correct, 60)
  t.throws(() => syntheticImageSet({ ...spec, classes: 0 }), /classes = 0 must be a positive integer/)
})

t.test('synthetic images: oversized sets are refused in one line before any allocation (no RangeError)', async (t) => {
  const base = { classes: 2, perClass: 1, height: 8, width: 8, channels: 1, noise: 1, seed: 0 }
  const refuses = (over: Partial<typeof base>, message: RegExp, what: string) => {
    let thrown: unknown
    try {
      syntheticImageSet({ ...base, ...over })
    } catch (e) {
      thrown = e
    }
    t.ok(thrown instanceof Error && !(thrown instanceof RangeError), `${what}: an Error, not a RangeError`)
    t.match((thrown as Error).message, message, what)
    t.notMatch((thrown as Error).message, /\n/, `${what}: one line`)
  }
  refuses({ height: 100_000, width: 100_000 }, /100000 x 100000 images are larger than 4096 x 4096/, '100000 x 100000 images')
  refuses({ classes: 1000, perClass: 100_000, height: 64, width: 64 }, /more than 268435456 floats \(1 GiB\)/, '1 GiB of floats')
  refuses({ channels: 5 }, /at most 4 channels/, 'five channels')
})

t.test('prepareDataset: shapes, labels, manifest, determinism', async (t) => {
  const set = syntheticImageSet({ classes: 5, perClass: 30, height: 3, width: 3, channels: 2, noise: 1, seed: 1 })
  const spec = { classes: ['class-4', 'class-1'], nD: 21, seed: 5, normalisation: 'standardise' as const }
  const src = { kind: 'synthetic' as const, digest: 'abc', split: 'train' }
  const p = prepareDataset(set, spec, src)
  t.equal(p.x.length, 21 * 18)
  t.same(p.manifest.shape, [21, 3, 3, 2])
  t.same(p.manifest.classes, { names: ['class-4', 'class-1'], sourceIds: [4, 1] })
  t.same(p.manifest.labelCounts, [11, 10])
  t.equal(p.manifest.indices.count, 21)
  t.equal(p.manifest.indices.digest, indicesDigest(p.indices))
  t.ok(Array.from(p.indices).every((i, k) => (set.labels[i] === 4 ? 0 : 1) === p.y[k]), 'y is the remapped source label')
  t.equal(p.manifest.normalisation.kind, 'standardise')
  t.equal(p.manifest.normalisation.mean.length, 2)
  const again = prepareDataset(set, spec, src)
  t.same(again.manifest, p.manifest)
  t.ok(Buffer.from(again.x.buffer).equals(Buffer.from(p.x.buffer)), 'bit-identical x')
  t.throws(() => prepareDataset(set, { ...spec, nD: 70 }, src), /fewer than the 35/)
})

t.test('digests: indices as little-endian int32; one file is its plain sha256', async (t) => {
  t.equal(indicesDigest(Int32Array.from([1, -2])), createHash('sha256').update(Buffer.from([1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff])).digest('hex'))
  const a = Uint8Array.from([1, 2, 3])
  t.equal(sourceDigest(a), createHash('sha256').update(a).digest('hex'))
  t.not(sourceDigest(Uint8Array.from([1]), Uint8Array.from([2, 3])), sourceDigest(Uint8Array.from([1, 2]), Uint8Array.from([3])), 'file boundaries count')
})
