/**
 * `npm run bench -- wasm-kernels [repeats]`: each cusp wasm kernel replacement against what it
 * replaces, on the shapes the reference CNN, the MLP and AlexNet-CIFAR use per 250-example chunk.
 * "before" is the shipped wasm kernel (XNNPACK for Conv2D; for Conv2DBackpropFilter, which wasm
 * lacks, either the cpu backend on a tenth of the batch, scaled, or the composition from XNNPACK's
 * Conv2D that cusp ran before its own SIMD kernels, run with the shipped kernels installed); "after"
 * is cusp's. Every run gets fresh input tensors (XNNPACK caches packed operands by tensor id, and
 * cusp caches packed filters, which would flatter repeated calls). Runs are interleaved and the
 * median process CPU time is reported (single-threaded work; on a shared machine CPU time is a
 * steadier estimate of unloaded wall time than wall time). Throughput is GFLOP/s for the
 * arithmetic kernels and G elements/s (of the largest tensor) for the data-movement ones. Prints a
 * table, then one JSON line.
 */
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { installWasmKernels, uninstallWasmKernels } from '../src/science/wasm-kernels.ts'
import { composedFilterGrad } from '../src/science/wasm/conv-backprop.ts'

const repeats = Number(process.argv[2] ?? 5)

interface Case {
  name: string
  kernel: string
  inputs: Record<string, number[]>
  attrs: Record<string, unknown>
  flops: number
  unit?: 'GFLOP/s' | 'Gelem/s'
  /**
   * 'cpu': wasm has no such kernel; measure the cpu backend on batch/scale instead. 'composed':
   * the filter gradient composed from XNNPACK's Conv2D, which cusp's SIMD kernels replaced.
   */
  before: 'shipped' | 'cpu' | 'composed'
}

const n = 250
const conv = (x: number[], f: number[], oh: number, ow: number): number => 2 * x[0]! * oh * ow * f[0]! * f[1]! * f[2]! * f[3]!
const cases: Case[] = [
  {
    name: 'dense dW = x^T dy (784x250 @ 250x200)',
    kernel: 'BatchMatMul',
    inputs: { a: [n, 784], b: [n, 200] },
    attrs: { transposeA: true, transposeB: false },
    flops: 2 * 784 * n * 200,
    before: 'shipped',
  },
  {
    name: 'dense dx = dy W^T (250x200 @ 200x784)',
    kernel: 'BatchMatMul',
    inputs: { a: [n, 200], b: [784, 200] },
    attrs: { transposeA: false, transposeB: true },
    flops: 2 * n * 200 * 784,
    before: 'shipped',
  },
  {
    name: 'cnn conv2 dx (3x3 16->32, 14x14)',
    kernel: 'Conv2DBackpropInput',
    inputs: { dy: [n, 14, 14, 32], filter: [3, 3, 16, 32] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [n, 14, 14, 16] },
    flops: conv([n], [3, 3, 16, 32], 14, 14),
    before: 'shipped',
  },
  {
    name: 'cnn conv1 dW (3x3 1->16, 28x28)',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 28, 28, 1], dy: [n, 28, 28, 16] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 1, 16] },
    flops: conv([n], [3, 3, 1, 16], 28, 28),
    before: 'cpu',
  },
  {
    name: 'cnn conv1 dW SIMD vs composed (1->16)',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 28, 28, 1], dy: [n, 28, 28, 16] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 1, 16] },
    flops: conv([n], [3, 3, 1, 16], 28, 28),
    before: 'composed',
  },
  {
    name: 'cnn conv2 dW (3x3 16->32, 14x14)',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 14, 14, 16], dy: [n, 14, 14, 32] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 16, 32] },
    flops: conv([n], [3, 3, 16, 32], 14, 14),
    before: 'cpu',
  },
  {
    name: 'cnn conv2 forward (3x3 16->32, 14x14)',
    kernel: 'Conv2D',
    inputs: { x: [n, 14, 14, 16], filter: [3, 3, 16, 32] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 },
    flops: conv([n], [3, 3, 16, 32], 14, 14),
    before: 'shipped',
  },
  {
    name: 'cnn conv2 dW vs composed (16->32)',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 14, 14, 16], dy: [n, 14, 14, 32] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 16, 32] },
    flops: conv([n], [3, 3, 16, 32], 14, 14),
    before: 'composed',
  },
  {
    name: 'alexnet conv1 11x11/4 3->64, 42x42 in forward',
    kernel: 'Conv2D',
    inputs: { x: [n, 42, 42, 3], filter: [11, 11, 3, 64] },
    attrs: { strides: 4, pad: 'valid', dataFormat: 'NHWC', dilations: 1 },
    flops: conv([n], [11, 11, 3, 64], 8, 8),
    before: 'shipped',
  },
  {
    name: 'alexnet conv1 11x11/4 3->64, 42x42 in dW',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 42, 42, 3], dy: [n, 8, 8, 64] },
    attrs: { strides: 4, pad: 'valid', dataFormat: 'NHWC', filterShape: [11, 11, 3, 64] },
    flops: conv([n], [11, 11, 3, 64], 8, 8),
    before: 'composed',
  },
  {
    name: 'alexnet conv2 5x5 64->192, 4x4 forward',
    kernel: 'Conv2D',
    inputs: { x: [n, 4, 4, 64], filter: [5, 5, 64, 192] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 },
    flops: conv([n], [5, 5, 64, 192], 4, 4),
    before: 'shipped',
  },
  {
    name: 'alexnet conv2 5x5 64->192, 4x4 dx',
    kernel: 'Conv2DBackpropInput',
    inputs: { dy: [n, 4, 4, 192], filter: [5, 5, 64, 192] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [n, 4, 4, 64] },
    flops: conv([n], [5, 5, 64, 192], 4, 4),
    before: 'shipped',
  },
  {
    name: 'alexnet conv2 5x5 64->192, 4x4 dW',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 4, 4, 64], dy: [n, 4, 4, 192] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [5, 5, 64, 192] },
    flops: conv([n], [5, 5, 64, 192], 4, 4),
    before: 'composed',
  },
  {
    name: 'alexnet conv3 3x3 192->384, 2x2 forward',
    kernel: 'Conv2D',
    inputs: { x: [n, 2, 2, 192], filter: [3, 3, 192, 384] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 },
    flops: conv([n], [3, 3, 192, 384], 2, 2),
    before: 'shipped',
  },
  {
    name: 'alexnet conv3 3x3 192->384, 2x2 dx',
    kernel: 'Conv2DBackpropInput',
    inputs: { dy: [n, 2, 2, 384], filter: [3, 3, 192, 384] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [n, 2, 2, 192] },
    flops: conv([n], [3, 3, 192, 384], 2, 2),
    before: 'shipped',
  },
  {
    name: 'alexnet conv3 3x3 192->384, 2x2 dW',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 2, 2, 192], dy: [n, 2, 2, 384] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 192, 384] },
    flops: conv([n], [3, 3, 192, 384], 2, 2),
    before: 'composed',
  },
  {
    name: 'alexnet conv4 3x3 384->256, 2x2 forward',
    kernel: 'Conv2D',
    inputs: { x: [n, 2, 2, 384], filter: [3, 3, 384, 256] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 1 },
    flops: conv([n], [3, 3, 384, 256], 2, 2),
    before: 'shipped',
  },
  {
    name: 'alexnet conv4 3x3 384->256, 2x2 dx',
    kernel: 'Conv2DBackpropInput',
    inputs: { dy: [n, 2, 2, 256], filter: [3, 3, 384, 256] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [n, 2, 2, 384] },
    flops: conv([n], [3, 3, 384, 256], 2, 2),
    before: 'shipped',
  },
  {
    name: 'alexnet conv4 3x3 384->256, 2x2 dW',
    kernel: 'Conv2DBackpropFilter',
    inputs: { x: [n, 2, 2, 384], dy: [n, 2, 2, 256] },
    attrs: { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 384, 256] },
    flops: conv([n], [3, 3, 384, 256], 2, 2),
    before: 'composed',
  },
  {
    name: 'maxPool 2x2 grad (28x28x16)',
    kernel: 'MaxPoolGrad',
    inputs: { dy: [n, 14, 14, 16], input: [n, 28, 28, 16], output: [n, 14, 14, 16] },
    attrs: { filterSize: 2, strides: 2, pad: 'valid' },
    flops: n * 28 * 28 * 16,
    unit: 'Gelem/s',
    before: 'shipped',
  },
  {
    name: 'avgPool 2x2 grad (28x28x16)',
    kernel: 'AvgPoolGrad',
    inputs: { dy: [n, 14, 14, 16], input: [n, 28, 28, 16] },
    attrs: { filterSize: 2, strides: 2, pad: 'valid' },
    flops: n * 28 * 28 * 16,
    unit: 'Gelem/s',
    before: 'shipped',
  },
  {
    name: 'bias grad: sum over [n,h,w] (28x28x16)',
    kernel: 'Sum',
    inputs: { x: [n, 28, 28, 16] },
    attrs: { axis: [0, 1, 2], keepDims: false },
    flops: n * 28 * 28 * 16,
    unit: 'Gelem/s',
    before: 'shipped',
  },
  {
    name: 'identity (tape clone, 28x28x16)',
    kernel: 'Identity',
    inputs: { x: [n, 28, 28, 16] },
    attrs: {},
    flops: n * 28 * 28 * 16,
    unit: 'Gelem/s',
    before: 'shipped',
  },
]

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

function time(c: Case, scale: number, composed = false): number {
  const inputs: Record<string, tf.Tensor> = {}
  for (const [k, shape] of Object.entries(c.inputs)) {
    const s = [...shape]
    s[0] = Math.max(1, Math.round(s[0]! * scale))
    inputs[k] = k === 'filter' || (k === 'b' && c.attrs['transposeB'] === true) ? tf.randomNormal(shape) : tf.randomNormal(s)
  }
  const attrs = { ...c.attrs }
  if (Array.isArray(attrs['inputShape'])) attrs['inputShape'] = [inputs['dy']!.shape[0], ...(attrs['inputShape'] as number[]).slice(1)]
  const c0 = process.cpuUsage()
  const out = composed
    ? tf
        .engine()
        .makeTensorFromTensorInfo(
          composedFilterGrad(
            tf.backend() as never,
            inputs['x']! as never,
            inputs['dy']! as never,
            tf.backend_util.computeConv2DInfo(
              inputs['x']!.shape as never,
              attrs['filterShape'] as never,
              attrs['strides'] as never,
              1,
              attrs['pad'] as never,
            ),
          ),
        )
    : (tf.engine().runKernel(c.kernel, inputs as never, attrs as never) as tf.Tensor)
  const used = process.cpuUsage(c0)
  tf.dispose([out, ...Object.values(inputs)])
  return (used.user + used.system) / 1000 / scale
}

await tf.setBackend('wasm')
const results: Array<{
  name: string
  unit: string
  before: string
  before_rate: number | null
  after_rate: number
  after_ms: number
  speedup: number | null
}> = []
for (const c of cases) {
  const before: number[] = []
  const after: number[] = []
  const cpuScale = 0.04
  for (let r = 0; r < repeats; r++) {
    if (c.before === 'cpu') {
      if (r < 2) {
        await tf.setBackend('cpu')
        before.push(time(c, cpuScale))
        await tf.setBackend('wasm')
      }
    } else if (c.before === 'composed') {
      uninstallWasmKernels() // the composition as it ran before: on XNNPACK's Conv2D
      before.push(time(c, 1, true))
    } else {
      uninstallWasmKernels()
      before.push(time(c, 1))
    }
    installWasmKernels()
    after.push(time(c, 1))
  }
  const gf = (ms: number): number => c.flops / ms / 1e6
  const b = before.length > 0 ? gf(median(before)) : null
  const a = gf(median(after))
  const unit = c.unit ?? 'GFLOP/s'
  results.push({
    name: c.name,
    unit,
    before: c.before,
    before_rate: b,
    after_rate: a,
    after_ms: +median(after).toFixed(2),
    speedup: b === null ? null : a / b,
  })
  console.log(
    `${c.name.padEnd(46)} before ${b === null ? '   n/a' : b.toFixed(2).padStart(6)} (${c.before === 'cpu' ? 'cpu backend ' : c.before === 'composed' ? 'composed    ' : 'shipped wasm'})  after ${a.toFixed(2).padStart(6)} ${unit} (${median(after).toFixed(1)} ms)  x${b === null ? '?' : (a / b).toFixed(1)}`,
  )
}
console.log(JSON.stringify({ bench: 'wasm-kernels', batch: n, repeats, kernels: results }))
