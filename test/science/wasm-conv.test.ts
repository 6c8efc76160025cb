/**
 * cusp's SIMD convolution kernels (src/science/wasm/simd/conv.as) against the reference kernels of
 * the tfjs cpu backend on seeded random inputs: Conv2D, the stride-1 input gradient and the filter
 * gradient, each called directly (so a silent fallback cannot pass for it) and through the
 * registered wasm kernels, on the shapes, strides and paddings of the reference CNN, AlexNet-CIFAR
 * and VGG-16 and on random odd shapes; the packed-filter cache under a reshaped view of the same
 * data; bit-identical repeats; and that the committed module is what conv.as builds to.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { installWasmKernels } from '../../src/science/wasm-kernels.ts'
import { setSkipPadding, simdConv2D, simdConvFilterGrad, simdConvInputGrad } from '../../src/science/wasm/conv-simd.ts'
import { convWasmBase64 } from '../../src/science/wasm/simd/conv-wasm.ts'
import { lcgNumbers, maxRelErr } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
installWasmKernels()

/** Deterministic numbers in [-2, 2) (sums of 4 uniforms, fixtures/oracles.ts). */
const rand = (n: number, seed: number): Float32Array => lcgNumbers(n, seed)
const size = (sh: number[]): number => sh.reduce((a, b) => a * b, 1)

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]]
interface Case {
  x: number[]
  f: number[]
  s: number | [number, number]
  pad: Pad
  what: string
}

const cases: Case[] = [
  { x: [5, 28, 28, 1], f: [3, 3, 1, 16], s: 1, pad: 'same', what: 'CNN conv1 (one input channel)' },
  { x: [4, 14, 14, 16], f: [3, 3, 16, 32], s: 1, pad: 'same', what: 'CNN conv2' },
  { x: [3, 42, 42, 3], f: [11, 11, 3, 64], s: 4, pad: 'valid', what: 'AlexNet-CIFAR conv1 11x11/4 (input pre-padded by 5)' },
  { x: [2, 32, 32, 3], f: [11, 11, 3, 64], s: 4, pad: 5, what: 'AlexNet-CIFAR conv1 11x11/4 p5' },
  { x: [3, 4, 4, 64], f: [5, 5, 64, 192], s: 1, pad: 'same', what: 'AlexNet-CIFAR conv2 5x5 p2' },
  { x: [3, 2, 2, 192], f: [3, 3, 192, 384], s: 1, pad: 'same', what: 'AlexNet-CIFAR conv3 3x3 p1' },
  { x: [2, 2, 2, 384], f: [3, 3, 384, 256], s: 1, pad: 'same', what: 'AlexNet-CIFAR conv4 3x3 p1' },
  { x: [2, 32, 32, 3], f: [3, 3, 3, 64], s: 1, pad: 'same', what: 'VGG-16 conv1' },
  { x: [1, 2, 2, 512], f: [3, 3, 512, 512], s: 1, pad: 'same', what: 'VGG-16 conv13 (2x2 map)' },
  { x: [3, 9, 10, 3], f: [3, 3, 3, 8], s: 2, pad: 'valid', what: 'strided valid, rows no window reads' },
  { x: [2, 11, 7, 5], f: [3, 2, 5, 13], s: [2, 3], pad: 'same', what: 'odd sizes, unequal strides, 13 outputs' },
  {
    x: [1, 7, 9, 3],
    f: [4, 3, 3, 6],
    s: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 3],
      [0, 0],
    ],
    what: 'asymmetric explicit padding',
  },
  { x: [3, 5, 5, 7], f: [5, 5, 7, 3], s: 1, pad: 'valid', what: 'window as large as the image, 3 outputs' },
  { x: [3, 13, 11, 1], f: [5, 4, 1, 8], s: 2, pad: 'same', what: 'one input channel, stride 2, odd sizes' },
  { x: [2, 12, 9, 1], f: [3, 3, 1, 1], s: 1, pad: 'same', what: 'one channel in and out' },
  { x: [7, 3, 5, 9], f: [2, 3, 9, 20], s: 1, pad: 'valid', what: 'pixel count not a multiple of 4' },
]
// Random odd shapes (seeded): sizes 1..13, channels 1..9 in, 1..24 out, strides 1..3.
{
  const r = rand(400, 99)
  let i = 0
  const pick = (lo: number, hi: number): number => lo + Math.floor(((r[i++]! + 2) / 4) * (hi - lo + 1))
  for (let c = 0; c < 10; c++) {
    const k = pick(1, 5)
    const h = pick(k, 13)
    const w = pick(k, 13)
    cases.push({
      x: [pick(1, 3), h, w, pick(1, 9)],
      f: [k, pick(1, Math.min(5, w)), 0, pick(1, 24)],
      s: c % 3 === 0 ? 1 : pick(1, 3),
      pad: c % 2 === 0 ? 'same' : 'valid',
      what: `random #${c}`,
    })
  }
  for (const c of cases) c.f[2] = c.x[3]!
}

type Op = 'conv' | 'input' | 'filter'
const stride1 = (c: Case): boolean => c.s === 1 || (Array.isArray(c.s) && c.s[0] === 1 && c.s[1] === 1)

/** One op on `how`: 'cpu' (reference), 'wasm' (the registered kernel) or 'simd' (cusp's kernel called directly; must not decline). */
async function run(op: Op, how: 'cpu' | 'wasm' | 'simd', c: Case, seed: number): Promise<Float32Array> {
  await tf.setBackend(how === 'cpu' ? 'cpu' : 'wasm')
  const info = tf.backend_util.computeConv2DInfo(c.x as never, c.f as never, c.s, 1, c.pad as never)
  const x = tf.tensor(rand(size(c.x), seed), c.x)
  const f = tf.tensor(rand(size(c.f), seed + 1), c.f)
  const dy = tf.tensor(rand(size(info.outShape), seed + 2), info.outShape)
  const backend = tf.backend() as unknown as BackendWasm
  let out: tf.Tensor
  if (how === 'simd') {
    const got =
      op === 'conv'
        ? simdConv2D(backend, x as never, f as never, info)
        : op === 'input'
          ? simdConvInputGrad(backend, dy as never, f as never, info)
          : simdConvFilterGrad(backend, x as never, dy as never, info)
    if (got === undefined) throw new Error(`SIMD ${op} declined ${c.what}`)
    out = tf.engine().makeTensorFromTensorInfo(got)
  } else if (op === 'conv') {
    out = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.s, c.pad as never)
  } else if (op === 'input') {
    const attrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', inputShape: c.x }
    out = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f } as never, attrs as never) as tf.Tensor
  } else {
    const attrs = { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f }
    out = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy } as never, attrs as never) as tf.Tensor
  }
  const v = (await out.data()) as Float32Array
  tf.dispose([x, f, dy, out])
  return v.slice()
}

for (const op of ['conv', 'input', 'filter'] as const) {
  t.test(`SIMD ${op} matches the cpu reference kernel (called directly and as registered)`, async (tt) => {
    let seed = 10
    for (const c of cases) {
      seed += 3
      if (op === 'input' && !stride1(c)) continue
      const want = await run(op, 'cpu', c, seed)
      for (const how of ['simd', 'wasm'] as const) {
        const got = await run(op, how, c, seed)
        tt.equal(got.length, want.length, `${c.what}: size`)
        const e = maxRelErr(got, want)
        tt.ok(
          e <= 1e-5 && Number.isFinite(e),
          `${how} ${c.what} x=${c.x} f=${c.f} s=${c.s} pad=${JSON.stringify(c.pad)}: rel err ${e.toExponential(2)}`,
        )
      }
    }
  })
}

t.test('skipping the padding taps leaves the bits of the full padded computation', async (tt) => {
  // The padding taps are products 0 * w: skipped (position-major convPos, taps4L) or computed, the
  // sums must be bit-identical. The cases with padding, each op called directly.
  let seed = 40
  let compared = 0
  for (const c of cases.filter((q) => q.pad !== 'valid')) {
    seed += 5
    for (const op of ['conv', 'input', 'filter'] as const) {
      if (op === 'input' && !stride1(c)) continue
      setSkipPadding(false)
      const full = await run(op, 'simd', c, seed)
      setSkipPadding(true)
      const skipped = await run(op, 'simd', c, seed)
      tt.same(Buffer.from(skipped.buffer), Buffer.from(full.buffer), `${op} ${c.what} x=${c.x} f=${c.f}: same bits`)
      compared++
    }
  }
  tt.ok(compared >= 20, `${compared} comparisons`)
})

t.test('registered strided input gradients (kept on the shipped kernel) still match cpu', async (tt) => {
  for (const c of cases.filter((q) => !stride1(q)).slice(0, 4)) {
    const e = maxRelErr(await run('input', 'wasm', c, 5), await run('input', 'cpu', c, 5))
    tt.ok(e <= 1e-5, `${c.what}: rel err ${e.toExponential(2)}`)
  }
})

t.test('the packed-filter cache tells a reshaped view of the same data from the original', async (tt) => {
  // Same data id, two shapes: [3,3,4,8] and [3,3,8,4] (tfjs reuses the id after a reshape).
  await tf.setBackend('wasm')
  const fData = rand(288, 4)
  const f1 = tf.tensor4d(fData, [3, 3, 4, 8])
  const f2 = tf.reshape(f1, [3, 3, 8, 4]) as tf.Tensor4D
  const x1 = tf.tensor4d(rand(2 * 6 * 6 * 4, 5), [2, 6, 6, 4])
  const x2 = tf.tensor4d(rand(2 * 6 * 6 * 8, 6), [2, 6, 6, 8])
  const a1 = await tf.conv2d(x1, f1, 1, 'same').data()
  const a2 = await tf.conv2d(x2, f2, 1, 'same').data()
  const a1again = await tf.conv2d(x1, f1, 1, 'same').data()
  await tf.setBackend('cpu')
  const c1 = tf.tensor4d(fData, [3, 3, 4, 8])
  const c2 = tf.tensor4d(fData, [3, 3, 8, 4])
  const xc1 = tf.tensor4d(rand(2 * 6 * 6 * 4, 5), [2, 6, 6, 4])
  const xc2 = tf.tensor4d(rand(2 * 6 * 6 * 8, 6), [2, 6, 6, 8])
  const w1 = await tf.conv2d(xc1, c1, 1, 'same').data()
  const w2 = await tf.conv2d(xc2, c2, 1, 'same').data()
  tt.ok(maxRelErr(a1 as Float32Array, w1 as Float32Array) <= 1e-5, 'original shape')
  tt.ok(maxRelErr(a2 as Float32Array, w2 as Float32Array) <= 1e-5, 'reshaped view (not the cached packing of the original)')
  tt.same(Array.from(a1again), Array.from(a1), 'original again, from the cache: same bits')
})

t.test('same inputs give the same bits (twice, and after other work in between)', async (tt) => {
  for (const op of ['conv', 'input', 'filter'] as const) {
    const a = await run(op, 'simd', cases[4]!, 77)
    await run(op, 'simd', cases[1]!, 3)
    const b = await run(op, 'simd', cases[4]!, 77)
    tt.same(Buffer.from(a.buffer), Buffer.from(b.buffer), op)
  }
})

t.test('the committed module is what conv.as builds to and imports only memory', async (tt) => {
  const { buildConv } = (await import('../../src/science/wasm/simd/build-conv.mjs' as string)) as { buildConv(): Promise<string> }
  const committed = readFileSync(new URL('../../src/science/wasm/simd/conv-wasm.ts', import.meta.url), 'utf8')
  tt.equal(
    await buildConv(),
    committed,
    'rebuild gives the committed conv-wasm.ts byte for byte (run node src/science/wasm/simd/build-conv.mjs)',
  )
  const mod = new WebAssembly.Module(Buffer.from(convWasmBase64, 'base64'))
  tt.same(WebAssembly.Module.imports(mod), [{ module: 'env', name: 'memory', kind: 'memory' }])
})
