/**
 * cusp's own wasm SIMD kernels (src/science/wasm/simd/) against the reference kernels of the tfjs
 * cpu backend, on seeded random inputs: the filter gradient on the shapes, strides and paddings of
 * the reference CNN, AlexNet-CIFAR and VGG-16 and on random odd shapes; that the SIMD path really
 * ran (not the composed fallback) where it applies; and that the committed module is exactly what
 * its AssemblyScript source builds to, imports only the backend's memory and has no data segment
 * (it must never write tfjs's heap at instantiation).
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { installWasmKernels } from '../../src/science/wasm-kernels.ts'
import { simdFilterGrad } from '../../src/science/wasm/filter-grad-simd.ts'
import { kernelsWasmBase64 } from '../../src/science/wasm/simd/kernels-wasm.ts'
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
  { x: [3, 32, 32, 3], f: [11, 11, 3, 64], s: 4, pad: 5, what: 'AlexNet-CIFAR conv1 11x11/4 p5' },
  { x: [2, 4, 4, 64], f: [5, 5, 64, 192], s: 1, pad: 2, what: 'AlexNet-CIFAR conv2 5x5 p2' },
  { x: [2, 2, 2, 192], f: [3, 3, 192, 384], s: 1, pad: 1, what: 'AlexNet-CIFAR conv3 3x3 p1' },
  { x: [2, 32, 32, 3], f: [3, 3, 3, 64], s: 1, pad: 1, what: 'VGG-16 conv1' },
  { x: [2, 2, 2, 512], f: [3, 3, 512, 512], s: 1, pad: 1, what: 'VGG-16 conv13 (2x2 map)' },
  { x: [3, 9, 10, 3], f: [3, 3, 3, 8], s: 2, pad: 'valid', what: 'strided valid, rows no window reads' },
  { x: [2, 11, 7, 5], f: [3, 2, 5, 16], s: [2, 3], pad: 'same', what: 'odd sizes, unequal strides, same' },
  {
    x: [1, 7, 9, 3],
    f: [4, 3, 3, 8],
    s: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 3],
      [0, 0],
    ],
    what: 'asymmetric explicit padding',
  },
  { x: [3, 5, 5, 7], f: [5, 5, 7, 24], s: 1, pad: 'valid', what: 'window as large as the image' },
  { x: [3, 13, 11, 1], f: [5, 4, 1, 8], s: 2, pad: 'same', what: 'one input channel, stride 2, odd sizes' },
  { x: [2, 12, 9, 1], f: [3, 3, 1, 24], s: [1, 2], pad: 'valid', what: 'one input channel, valid, strided columns' },
]
// Random odd shapes (seeded): sizes 1..13, channels 1..9 in, multiples of 8 out, strides 1..3.
{
  const r = rand(400, 99)
  let i = 0
  const pick = (lo: number, hi: number): number => lo + Math.floor(((r[i++]! + 2) / 4) * (hi - lo + 1))
  for (let c = 0; c < 12; c++) {
    const k = pick(1, 5)
    const h = pick(k, 13)
    const w = pick(k, 13)
    cases.push({
      x: [pick(1, 3), h, w, pick(1, 9)],
      f: [k, pick(1, Math.min(5, w)), 0, 8 * pick(1, 3)],
      s: pick(1, 3),
      pad: c % 2 === 0 ? 'same' : 'valid',
      what: `random #${c}`,
    })
  }
  for (const c of cases) c.f[2] = c.x[3]!
}

/**
 * The filter gradient on `how`: 'cpu' (the reference kernel), 'wasm' (whatever is registered: the
 * SIMD kernel for one input channel, the composed one otherwise) or 'simd' (the SIMD kernel called
 * directly, whatever the shape; it must not decline).
 */
async function filterGradOn(how: 'cpu' | 'wasm' | 'simd', c: Case, seed: number): Promise<Float32Array> {
  await tf.setBackend(how === 'cpu' ? 'cpu' : 'wasm')
  const info = tf.backend_util.computeConv2DInfo(c.x as never, c.f as never, c.s, 1, c.pad as never)
  const x = tf.tensor(rand(size(c.x), seed), c.x)
  const dy = tf.tensor(rand(size(info.outShape), seed + 1), info.outShape)
  let out: tf.Tensor
  if (how === 'simd') {
    const got = simdFilterGrad(tf.backend() as unknown as BackendWasm, x as never, dy as never, info)
    if (got === undefined) throw new Error(`SIMD filter gradient declined ${c.what}`)
    out = tf.engine().makeTensorFromTensorInfo(got)
  } else {
    out = tf
      .engine()
      .runKernel(
        'Conv2DBackpropFilter',
        { x, dy } as never,
        { strides: c.s, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f } as never,
      ) as tf.Tensor
  }
  const v = (await out.data()) as Float32Array
  tf.dispose([x, dy, out])
  return v.slice()
}

t.test('SIMD filter gradient matches the cpu reference kernel', async (tt) => {
  let seed = 10
  for (const c of cases) {
    const want = await filterGradOn('cpu', c, seed)
    const got = await filterGradOn('simd', c, seed)
    seed += 2
    tt.equal(got.length, want.length, `${c.what}: size`)
    const e = maxRelErr(got, want)
    tt.ok(
      e <= 1e-5 && Number.isFinite(e),
      `${c.what} x=${c.x} f=${c.f} s=${c.s} pad=${JSON.stringify(c.pad)}: rel err ${e.toExponential(2)} <= 1e-5`,
    )
  }
})

t.test('the registered wasm filter gradient (SIMD for one input channel) matches cpu', async (tt) => {
  for (const c of cases.filter((q) => q.x[3] === 1 || q.what.startsWith('CNN'))) {
    const e = maxRelErr(await filterGradOn('wasm', c, 31), await filterGradOn('cpu', c, 31))
    tt.ok(e <= 1e-5, `${c.what} x=${c.x}: rel err ${e.toExponential(2)} <= 1e-5`)
  }
})

t.test('the SIMD path is taken where it applies, and declines otherwise', async (tt) => {
  await tf.setBackend('wasm')
  const backend = tf.backend() as unknown as BackendWasm
  const try1 = (xs: number[], fs: number[]): boolean => {
    const info = tf.backend_util.computeConv2DInfo(xs as never, fs as never, 1, 1, 'same')
    const x = tf.tensor(rand(size(xs), 1), xs)
    const dy = tf.tensor(rand(size(info.outShape), 2), info.outShape)
    const out = simdFilterGrad(backend, x as never, dy as never, info)
    if (out !== undefined) backend.disposeData(out.dataId)
    tf.dispose([x, dy])
    return out !== undefined
  }
  tt.ok(try1([2, 6, 6, 3], [3, 3, 3, 16]), 'co = 16: SIMD')
  tt.notOk(try1([2, 6, 6, 3], [3, 3, 3, 10]), 'co = 10: declined (falls back to the composed kernel)')
  // A declined case still gives the right answer through the fallback.
  const c: Case = { x: [2, 6, 6, 3], f: [3, 3, 3, 10], s: 1, pad: 'same', what: 'co = 10' }
  tt.ok(maxRelErr(await filterGradOn('wasm', c, 5), await filterGradOn('cpu', c, 5)) <= 1e-5, 'fallback matches cpu')
})

t.test('same inputs give the same bits (twice, and after other work in between)', async (tt) => {
  const c = cases[1]!
  const a = await filterGradOn('simd', c, 77)
  await filterGradOn('simd', cases[2]!, 3)
  const b = await filterGradOn('simd', c, 77)
  tt.same(Buffer.from(a.buffer), Buffer.from(b.buffer))
})

t.test('the committed module is what kernels.as builds to, imports only memory, writes nothing at start', async (tt) => {
  const { buildKernels } = (await import('../../src/science/wasm/simd/build.mjs' as string)) as { buildKernels(): Promise<string> }
  const committed = readFileSync(new URL('../../src/science/wasm/simd/kernels-wasm.ts', import.meta.url), 'utf8')
  tt.equal(
    await buildKernels(),
    committed,
    'rebuild gives the committed kernels-wasm.ts byte for byte (run node src/science/wasm/simd/build.mjs)',
  )
  const bytes = Buffer.from(kernelsWasmBase64, 'base64')
  const mod = new WebAssembly.Module(bytes)
  tt.same(WebAssembly.Module.imports(mod), [{ module: 'env', name: 'memory', kind: 'memory' }])
  // Section ids after the 8-byte header: 11 = data, 8 = start. Neither may be present.
  const ids: number[] = []
  let p = 8
  while (p < bytes.length) {
    ids.push(bytes[p]!)
    p++
    let len = 0
    let shift = 0
    for (;;) {
      const b = bytes[p++]!
      len |= (b & 0x7f) << shift
      shift += 7
      if ((b & 0x80) === 0) break
    }
    p += len
  }
  tt.equal(p, bytes.length, 'sections parse to the end')
  tt.notOk(ids.includes(11), `no data section (sections ${ids})`)
  tt.notOk(ids.includes(8), 'no start function')
})
