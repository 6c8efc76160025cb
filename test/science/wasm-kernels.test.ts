/**
 * cusp's wasm kernel replacements against the cpu backend (the oracle: tfjs-core's reference
 * kernels), on seeded random inputs, including the cases the shipped wasm kernels got wrong:
 * windows whose maximum is <= 0 (MaxPoolGrad) and a right operand reused with another shape
 * (BatchMatMul's packed-operand cache). Tolerance: 1e-5 relative to the largest oracle entry.
 */
import t from 'tap'
import type { Test } from 'tap'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { installWasmKernels, replacedWasmKernels } from '../../src/science/wasm-kernels.ts'
import { maxRelErr } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
installWasmKernels()
installWasmKernels() // idempotent

/** Deterministic normal-ish numbers (sum of uniforms from a small LCG). */
function rand(n: number, seed: number, shift = 0): Float32Array {
  let s = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    let acc = 0
    for (let k = 0; k < 4; k++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0
      acc += s / 2 ** 32
    }
    out[i] = acc - 2 + shift
  }
  return out
}

type Shape = number[]
/** Run `f` on a backend over fresh tensors built from `inputs`; return the output's values. */
async function on(
  backend: 'wasm' | 'cpu',
  inputs: Array<[Float32Array, Shape]>,
  f: (...xs: tf.Tensor[]) => tf.Tensor,
): Promise<Float32Array> {
  await tf.setBackend(backend)
  const xs = inputs.map(([v, s]) => tf.tensor(v, s))
  const y = f(...xs)
  const out = y.dataSync() as Float32Array
  tf.dispose([...xs, y])
  return out.slice()
}

async function same(tt: Test, inputs: Array<[Float32Array, Shape]>, f: (...xs: tf.Tensor[]) => tf.Tensor, what: string): Promise<void> {
  const want = await on('cpu', inputs, f)
  const got = await on('wasm', inputs, f)
  tt.equal(got.length, want.length, `${what}: size`)
  tt.ok(maxRelErr(got, want) <= 1e-5, `${what}: rel err ${maxRelErr(got, want).toExponential(2)} <= 1e-5`)
}

const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: object): tf.Tensor =>
  tf.engine().runKernel(name, inputs as never, attrs as never) as tf.Tensor

t.before(async () => {
  await tf.setBackend('wasm')
})

t.test('installs every replacement on wasm only', async (tt) => {
  for (const name of replacedWasmKernels) tt.ok(tf.getKernel(name, 'wasm'), name)
  tt.equal(tf.getKernel('Conv2DBackpropFilter', 'cpu')?.backendName, 'cpu')
})

// [x shape, filter shape, stride, pad] covering the models: reference CNN 3x3 'same' (Ci=1 and
// 16), AlexNet 11x11 stride 4 pad 5, 5x5 pad 2, VGG 3x3 pad 1, and a strided 'valid' conv that
// leaves input rows no window reads.
const convCases: Array<[Shape, Shape, number, 'same' | 'valid' | number]> = [
  [[5, 28, 28, 1], [3, 3, 1, 16], 1, 'same'],
  [[4, 14, 14, 16], [3, 3, 16, 32], 1, 'same'],
  [[2, 32, 32, 3], [11, 11, 3, 8], 4, 5],
  [[2, 8, 8, 4], [5, 5, 4, 6], 1, 2],
  [[2, 8, 8, 8], [3, 3, 8, 8], 1, 1],
  [[2, 9, 10, 3], [3, 3, 3, 5], 2, 'valid'],
  [[3, 7, 7, 2], [3, 3, 2, 4], 1, 'valid'],
]

t.test('Conv2DBackpropFilter matches cpu', async (tt) => {
  for (const [xs, fs, s, pad] of convCases) {
    const info = tf.backend_util.computeConv2DInfo(xs as never, fs as never, s, 1, pad as never)
    const dyShape = info.outShape
    const size = (sh: Shape): number => sh.reduce((a, b) => a * b, 1)
    await same(
      tt,
      [
        [rand(size(xs), 1), xs],
        [rand(size(dyShape), 2), dyShape],
      ],
      (x, dy) => run('Conv2DBackpropFilter', { x: x!, dy: dy! }, { strides: s, pad, dataFormat: 'NHWC', filterShape: fs }),
      `dW x=${xs} f=${fs} s=${s} pad=${pad}`,
    )
  }
})

t.test('Conv2DBackpropInput matches cpu (stride 1 composed, strided shipped)', async (tt) => {
  for (const [xs, fs, s, pad] of convCases) {
    const info = tf.backend_util.computeConv2DInfo(xs as never, fs as never, s, 1, pad as never)
    const dyShape = info.outShape
    const size = (sh: Shape): number => sh.reduce((a, b) => a * b, 1)
    await same(
      tt,
      [
        [rand(size(dyShape), 3), dyShape],
        [rand(size(fs), 4), fs],
      ],
      (dy, w) => run('Conv2DBackpropInput', { dy: dy!, filter: w! }, { strides: s, pad, dataFormat: 'NHWC', inputShape: xs }),
      `dx x=${xs} f=${fs} s=${s} pad=${pad}`,
    )
  }
})

t.test('conv2d gradients through tf.grad match cpu', async (tt) => {
  const xs = [3, 12, 12, 2]
  const fs = [3, 3, 2, 4]
  await same(
    tt,
    [
      [rand(3 * 144 * 2, 5), xs],
      [rand(72, 6), fs],
    ],
    (x, w) => tf.grad((wv: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x as tf.Tensor4D, wv as tf.Tensor4D, 1, 'same'))))(w!),
    'grad of sum(conv^2) w.r.t. W',
  )
})

t.test('MaxPoolGrad matches cpu, incl. windows whose max is <= 0', async (tt) => {
  const cases: Array<[Shape, number, number, 'same' | 'valid', number]> = [
    [[2, 8, 8, 3], 2, 2, 'valid', -5], // every window negative
    [[2, 8, 8, 3], 2, 2, 'valid', 0], // mixed signs
    [[2, 9, 9, 4], 3, 2, 'same', -5], // overlapping windows, padding
    [[1, 7, 6, 2], 3, 1, 'valid', -1],
  ]
  for (const [xs, k, s, pad, shift] of cases) {
    const info = tf.backend_util.computePool2DInfo(xs as never, k, s, 1, pad)
    const n = xs.reduce((a, b) => a * b, 1)
    const m = info.outShape.reduce((a, b) => a * b, 1)
    await same(
      tt,
      [
        [rand(n, 7, shift), xs],
        [rand(m, 8), info.outShape],
      ],
      (x, dy) => {
        const y = tf.maxPool(x as tf.Tensor4D, k, s, pad)
        return run('MaxPoolGrad', { dy: dy!, input: x!, output: y }, { filterSize: k, strides: s, pad })
      },
      `maxPoolGrad x=${xs} k=${k} s=${s} ${pad} shift=${shift}`,
    )
  }
  // Ties: an all-equal window sends its gradient to its first cell, as on cpu.
  await same(
    tt,
    [
      [new Float32Array(16).fill(-1), [1, 4, 4, 1]],
      [rand(4, 9), [1, 2, 2, 1]],
    ],
    (x, dy) =>
      run(
        'MaxPoolGrad',
        { dy: dy!, input: x!, output: tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid') },
        { filterSize: 2, strides: 2, pad: 'valid' },
      ),
    'maxPoolGrad ties',
  )
})

t.test('AvgPoolGrad: valid matches cpu; windows over padding are refused', async (tt) => {
  const xs = [2, 8, 8, 3]
  await same(
    tt,
    [
      [rand(384, 10), xs],
      [rand(96, 11), [2, 4, 4, 3]],
    ],
    (x, dy) => run('AvgPoolGrad', { dy: dy!, input: x! }, { filterSize: 2, strides: 2, pad: 'valid' }),
    'avgPoolGrad valid',
  )
  await tf.setBackend('wasm')
  const x = tf.ones([1, 5, 5, 1])
  const dy = tf.ones([1, 3, 3, 1])
  tt.throws(() => run('AvgPoolGrad', { dy, input: x }, { filterSize: 2, strides: 2, pad: 'same' }), /valid/)
  tf.dispose([x, dy])
})

t.test('BatchMatMul matches cpu with transposes and batches', async (tt) => {
  for (const [ta, tb] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    const as = ta ? [37, 19] : [19, 37]
    const bs = tb ? [23, 37] : [37, 23]
    await same(
      tt,
      [
        [rand(19 * 37, 12), as],
        [rand(37 * 23, 13), bs],
      ],
      (a, b) => tf.matMul(a!, b!, ta, tb),
      `matMul tA=${ta} tB=${tb}`,
    )
    await same(
      tt,
      [
        [rand(3 * 19 * 37, 14), [3, ...as]],
        [rand(3 * 37 * 23, 15), [3, ...bs]],
      ],
      (a, b) => tf.matMul(a!, b!, ta, tb),
      `batched matMul tA=${ta} tB=${tb}`,
    )
  }
})

t.test('BatchMatMul: the same right operand reshaped gives the right product', async (tt) => {
  const bv = rand(24, 16)
  const a1 = rand(3 * 6, 17)
  const a2 = rand(5 * 4, 18)
  const f = (x1: tf.Tensor, x2: tf.Tensor, b: tf.Tensor): tf.Tensor => {
    const p1 = tf.matMul(x1, b) // b as [6, 4]
    const p2 = tf.matMul(x2, tf.reshape(b, [4, 6])) // same data as [4, 6]
    const p3 = tf.matMul(x1, b) // back to [6, 4]
    return tf.concat([p1.flatten(), p2.flatten(), p3.flatten()])
  }
  await same(
    tt,
    [
      [a1, [3, 6]],
      [a2, [5, 4]],
      [bv, [6, 4]],
    ],
    f,
    'reshaped right operand',
  )
})

t.test('AvgPoolGrad matches cpu for overlapping and odd-sized valid pools', async (tt) => {
  const cases: Array<[Shape, number, number]> = [
    [[2, 9, 9, 4], 3, 2],
    [[2, 7, 7, 3], 2, 2], // last row/column in no window
    [[1, 6, 6, 5], 3, 3],
  ]
  for (const [xs, k, s] of cases) {
    const info = tf.backend_util.computePool2DInfo(xs as never, k, s, 1, 'valid')
    const n = xs.reduce((a, b) => a * b, 1)
    const m = info.outShape.reduce((a, b) => a * b, 1)
    await same(
      tt,
      [
        [rand(n, 19), xs],
        [rand(m, 20), info.outShape],
      ],
      (x, dy) => run('AvgPoolGrad', { dy: dy!, input: x! }, { filterSize: k, strides: s, pad: 'valid' }),
      `avgPoolGrad x=${xs} k=${k} s=${s}`,
    )
  }
})

t.test('Sum over [n, h, w] matches cpu; other axes unchanged', async (tt) => {
  const xs = [40, 12, 12, 6]
  const x = rand(40 * 144 * 6, 21, 0.3) // a mean offset, so the sums are large
  for (const [axis, keep] of [
    [[0, 1, 2], false],
    [[0, 1, 2], true],
    [[2, 0, 1], false],
    [[0], false],
    [[1, 2], true],
  ] as const) {
    await same(tt, [[x, xs]], (v) => tf.sum(v!, axis as unknown as number[], keep), `sum axis=${JSON.stringify(axis)} keepDims=${keep}`)
  }
})

t.test('Identity and same-dtype Cast share data; dtype changes still convert', async (tt) => {
  await tf.setBackend('wasm')
  const backend = tf.backend() as unknown as { numDataIds(): number }
  const before = backend.numDataIds()
  const a = tf.tensor([1.5, -2.25, 3], [3])
  const b = a.clone()
  const c = tf.cast(a, 'float32')
  const d = tf.cast(a, 'int32')
  tt.equal(backend.numDataIds(), before + 2, "clone and same-dtype cast share a's data; int32 cast has its own")
  a.dispose()
  tt.same(Array.from(b.dataSync()), [1.5, -2.25, 3], 'clone survives disposing the original')
  tt.same(Array.from(c.dataSync()), [1.5, -2.25, 3])
  tt.same(Array.from(d.dataSync()), [1, -2, 3], 'int32 cast converts')
  tf.dispose([b, c, d])
  tt.equal(backend.numDataIds(), before, 'all data released')
})

t.test('a CNN gradient on wasm leaks no wasm data', async (tt) => {
  await tf.setBackend('wasm')
  const backend = tf.backend() as unknown as { numDataIds(): number }
  const x = tf.tensor4d(rand(4 * 10 * 10 * 2, 22), [4, 10, 10, 2])
  const w = tf.tensor4d(rand(3 * 3 * 2 * 4, 23), [3, 3, 2, 4])
  const before = backend.numDataIds()
  const f = (wv: tf.Tensor): tf.Scalar => tf.sum(tf.square(tf.avgPool(tf.relu(tf.conv2d(x, wv as tf.Tensor4D, 1, 'same')), 2, 2, 'valid')))
  const g = tf.tidy(() => tf.grad(f)(w))
  g.dispose()
  tt.equal(backend.numDataIds(), before, 'data ids back to where they were')
  tf.dispose([x, w])
})
