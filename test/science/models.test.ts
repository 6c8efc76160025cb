/**
 * Model construction: parameter counts of the paper's networks at CIFAR size (AlexNet 2,472,266,
 * VGG-16 15,245,130, reference CNN 20,490), the layout of θ (names, order, shapes, offsets), the
 * Kaiming initialisation (statistics, determinism, biases zero), and the forward pass against a naive
 * float64 implementation of the same layer list (PyTorch padding, floor pools, NCHW flatten).
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { makeChunk, relErr } from './fixtures/oracles.ts'
import { referenceForward } from './fixtures/reference-forward.ts'

tf.env().set('IS_TEST', true)
await initEngine('cpu')

t.test('parameter counts of the paper-size networks', async (t) => {
  const count = (spec: ModelSpec): number => buildModel(spec).size
  t.equal(count({ arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10 }), 20490, 'reference CNN 28x28x1')
  t.equal(count({ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10 }), 2472266, 'AlexNet 32x32x3')
  t.equal(count({ arch: 'vgg16', activation: 'tanh', inputShape: [32, 32, 3], classes: 10 }), 15245130, 'VGG-16 (D) 32x32x3')
  t.equal(
    count({ arch: 'mlp', activation: 'tanh', inputShape: [28, 28, 1], classes: 10 }),
    784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10,
    'MLP 784-200-200-10',
  )
  t.equal(count({ arch: 'mlp', activation: 'tanh', inputShape: [2, 2, 1], classes: 3, hidden: [] }), 4 * 3 + 3, 'MLP with no hidden layer')
})

t.test('layout: PyTorch names in forward order, weight before bias, contiguous offsets', async (t) => {
  const m = buildModel({ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10 })
  t.same(
    m.params.map((p) => p.name),
    ['conv1', 'conv2', 'conv3', 'conv4', 'conv5', 'fc'].flatMap((n) => [`${n}.weight`, `${n}.bias`]),
  )
  t.same(m.params[0], { name: 'conv1.weight', shape: [11, 11, 3, 64], offset: 0, fanIn: 363 })
  t.same(m.params[2]!.shape, [5, 5, 64, 192])
  t.same(m.params[10], { name: 'fc.weight', shape: [256, 10], offset: m.params[9]!.offset + 256, fanIn: 256 })
  let off = 0
  for (const p of m.params) {
    t.equal(p.offset, off, `${p.name} offset`)
    off += p.shape.reduce((a, b) => a * b, 1)
  }
  t.equal(off, m.size)
  const vgg = buildModel({ arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 10 })
  t.same(
    vgg.params.filter((p) => p.name.endsWith('.weight')).map((p) => p.name),
    [...Array.from({ length: 13 }, (_, i) => `conv${i + 1}.weight`), 'fc1.weight', 'fc2.weight', 'fc3.weight'],
  )
  const cnn = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [28, 28, 1], classes: 10 })
  t.same(
    cnn.params.map((p) => [p.name, p.shape]),
    [
      ['conv1.weight', [3, 3, 1, 16]],
      ['conv1.bias', [16]],
      ['conv2.weight', [3, 3, 16, 32]],
      ['conv2.bias', [32]],
      ['fc.weight', [1568, 10]],
      ['fc.bias', [10]],
    ],
  )
  const small = buildModel({ arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 })
  t.same(small.params[0]!.shape, [3, 3, 3, 4], 'width scales channels (64/16 = 4)')
  t.same(small.params.find((p) => p.name === 'fc1.weight')!.shape, [32, 32], 'and the head (512/16 = 32)')
})

t.test('inputs too small for the architecture are rejected with a message', async (t) => {
  t.throws(() => buildModel({ arch: 'alexnet', activation: 'relu', inputShape: [8, 8, 3], classes: 10 }), /too small/)
  t.throws(() => buildModel({ arch: 'vgg16', activation: 'relu', inputShape: [16, 16, 3], classes: 10 }), /too small/)
  t.throws(() => buildModel({ arch: 'cnn', activation: 'relu', inputShape: [8, 8, 1], classes: 10, width: 0 }), /width/)
  t.throws(() => buildModel({ arch: 'resnet' as never, activation: 'relu', inputShape: [8, 8, 1], classes: 10 }), /unknown arch/)
})

t.test('Kaiming init: N(0, 2/fanIn) weights, zero biases, deterministic, per-tensor streams', async (t) => {
  const spec: ModelSpec = { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10 }
  const m = buildModel(spec)
  const a = initParams(m, 42)
  t.same(Buffer.from(a.buffer), Buffer.from(initParams(buildModel(spec), 42).buffer), 'same seed, same bytes')
  t.not(Buffer.compare(Buffer.from(a.buffer), Buffer.from(initParams(m, 43).buffer)), 0, 'another seed, other bytes')
  for (const p of m.params) {
    const n = p.shape.reduce((x, y) => x * y, 1)
    const s = a.subarray(p.offset, p.offset + n)
    if (p.name.endsWith('.bias')) {
      t.ok(
        s.every((x) => x === 0),
        `${p.name} is zero`,
      )
      continue
    }
    let mean = 0
    for (const x of s) mean += x
    mean /= n
    let varr = 0
    for (const x of s) varr += (x - mean) ** 2
    const std = Math.sqrt(varr / n)
    const want = Math.sqrt(2 / p.fanIn)
    // Sample std of n normals has relative sd ~ 1/sqrt(2n); allow 6 of those (n >= 2,560 here).
    t.ok(Math.abs(std / want - 1) < 6 / Math.sqrt(2 * n), `${p.name} std ${std.toPrecision(4)} vs ${want.toPrecision(4)}`)
    t.ok(Math.abs(mean) < (6 * want) / Math.sqrt(n), `${p.name} mean ${mean.toExponential(2)}`)
  }
  // A tensor's draws depend only on (seed, name): a wider head leaves conv1 unchanged.
  const other = buildModel({ ...spec, classes: 100 })
  const b = initParams(other, 42)
  t.same(b.subarray(0, 11 * 11 * 3 * 64), a.subarray(0, 11 * 11 * 3 * 64))
})

t.test('forward matches a naive float64 implementation of the layer list', async (t) => {
  const specs: ModelSpec[] = [
    { arch: 'mlp', activation: 'tanh', inputShape: [4, 3, 2], classes: 5, hidden: [7, 6] },
    { arch: 'cnn', activation: 'relu', inputShape: [9, 10, 2], classes: 4, width: 0.25, pool: 'max' },
    { arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 },
    { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
    { arch: 'alexnet', activation: 'tanh', inputShape: [35, 33, 3], classes: 3, width: 1 / 32 },
    { arch: 'vgg16', activation: 'tanh', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
  ]
  for (const spec of specs) {
    const m = buildModel(spec)
    const theta = initParams(m, 7)
    // Non-zero biases so a bias misplacement would show.
    for (const p of m.params)
      if (p.name.endsWith('.bias')) for (let i = 0; i < p.shape[0]!; i++) theta[p.offset + i] = 0.05 * Math.sin(i + p.offset)
    const c = makeChunk(m, 2, 3)
    const [h, w, ch] = spec.inputShape
    const logits = tf.tidy(() => m.forward(tf.tensor1d(theta), tf.tensor4d(c.x, [2, h, w, ch])))
    t.same(logits.shape, [2, spec.classes])
    const got = logits.dataSync()
    logits.dispose()
    const d = h * w * ch
    const want = new Float64Array(2 * spec.classes)
    for (let i = 0; i < 2; i++)
      want.set(referenceForward(m.layers, theta, c.x.subarray(i * d, (i + 1) * d), spec.inputShape, spec.activation), i * spec.classes)
    t.ok(
      relErr(got, want) < 1e-5,
      `${spec.arch}-${spec.activation} ${spec.inputShape.join('x')}: rel err ${relErr(got, want).toExponential(2)}`,
    )
  }
})

t.test('forward rejects a θ or an input of the wrong size', async (t) => {
  const m = buildModel({ arch: 'mlp', activation: 'tanh', inputShape: [2, 2, 1], classes: 2, hidden: [3] })
  t.throws(() => tf.tidy(() => m.forward(tf.zeros([m.size + 1]), tf.zeros([1, 2, 2, 1]))), /theta has/)
  t.throws(() => tf.tidy(() => m.forward(tf.zeros([m.size]), tf.zeros([1, 2, 3, 1]))), /does not match/)
})
