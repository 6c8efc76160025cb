/**
 * Loss, gradient and exact Hessian-vector product of the training loss (paper §3.2-3.3: "we obtain
 * Hessian-vector products using the PyTorch autograd engine"; here tfjs double backprop):
 *   Hv = d/dθ ( ∇L(θ) · v ),  no finite differences.
 * Three levels: `hvp` on tensors (inside the caller's tidy); `chunk*` on plain arrays for one chunk of
 * examples, returning the chunk's SUM (these are what the worker pool calls); `dataset*` over a whole
 * dataset, split into FIXED chunks of at most `chunkSize` examples (default 250), equal in size and
 * independent of the number of workers (`chunks`), whose sums are accumulated in float64 in chunk
 * order, so results are bit-reproducible on a given backend. Memory is flat: every tensor is created and disposed inside these functions,
 * but for the bounded θ caches of the R-operator paths (dense-hvp.ts; conv-hvp.ts, on in worker threads).
 */
import * as tf from '@tensorflow/tfjs'
import { convGradient, convHvp, convLoss, useConvHvpPath } from './conv-hvp.ts'
import { denseGradient, denseHvp, useDensePath } from './dense-hvp.ts'
import { paramTensors } from './param-vectors.ts'
import { installGradients } from './gradients/index.ts'
import { crossEntropySum, type Reduction } from './loss.ts'
import type { Model } from './models.ts'
import { throwIfDeviceError } from './webgpu/errors.ts'
import { heapF32, pointerOf } from './wasm/simd/kernels.ts'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'

export type { Reduction } from './loss.ts'

/** Exact Hv of a scalar function at θ by double backprop. Pure; call inside the caller's tidy. */
export function hvp(f: (theta: tf.Tensor1D) => tf.Scalar, theta: tf.Tensor1D, v: tf.Tensor1D): tf.Tensor1D {
  installGradients()
  const g = tf.grad(f as (x: tf.Tensor) => tf.Tensor) // θ -> ∇f(θ) [P]
  const gv = (th: tf.Tensor): tf.Tensor => tf.sum(tf.mul(g(th), v)) // θ -> ∇f(θ)·v
  return tf.grad(gv)(theta) as tf.Tensor1D
}

/** One chunk of examples: x [n,h,w,c] row-major, y int32 [n]. */
export interface Chunk {
  x: Float32Array
  y: Int32Array
  n: number
}

/** A whole dataset: x [n,h,w,c] row-major float32, y int32 [n]. */
export interface Dataset {
  x: Float32Array
  y: Int32Array
  n: number
  shape: [number, number, number]
}

/** Options of the dataset-level functions. */
export interface DatasetOptions {
  reduction?: Reduction
  chunkSize?: number
}

/** Summed cross-entropy of the chunk at θ. */
export function chunkLoss(model: Model, theta: Float32Array, c: Chunk): number {
  return readSync(lossTensors(model, theta, c), model)
}

/** Summed loss and its gradient [P] on the chunk at θ. */
export function chunkGradient(model: Model, theta: Float32Array, c: Chunk): { loss: number; grad: Float32Array } {
  const grad = new Float32Array(model.size)
  return { loss: readSync(gradientTensors(model, theta, c), model, grad), grad }
}

/**
 * H v [P] of the chunk's summed loss at θ: the same double backprop as `hvp`, taken w.r.t. one
 * tensor per parameter (v cut the same way), so θ is never split or concatenated (fewer copies).
 */
export function chunkHvp(model: Model, theta: Float32Array, v: Float32Array, c: Chunk): Float32Array {
  const out = new Float32Array(model.size)
  readSync(hvpTensors(model, theta, v, c), model, out)
  return out
}

/**
 * The chunk functions with an asynchronous read back (`data()` where the backend needs it), the
 * same arithmetic and bits: the only form the webgpu backend allows in Node (its `dataSync`
 * throws). Everything up to the one read back per call stays on the device.
 */
export async function chunkLossAsync(model: Model, theta: Float32Array, c: Chunk): Promise<number> {
  return readAsync(lossTensors(model, theta, c), model)
}

/** chunkGradient, read back asynchronously. */
export async function chunkGradientAsync(model: Model, theta: Float32Array, c: Chunk): Promise<{ loss: number; grad: Float32Array }> {
  const grad = new Float32Array(model.size)
  return { loss: await chunkGradientInto(model, theta, c, grad), grad }
}

/** chunkHvp, read back asynchronously. */
export async function chunkHvpAsync(model: Model, theta: Float32Array, v: Float32Array, c: Chunk): Promise<Float32Array> {
  const out = new Float32Array(model.size)
  await chunkHvpInto(model, theta, v, c, out)
  return out
}

/**
 * chunkGradientAsync writing the gradient into `out` ([P], every entry overwritten) instead of a
 * new array; resolves with the loss. What the worker threads call, with result buffers they reuse:
 * a fresh array of P floats per call costs page faults (a 2-core VM took up to ~10 us per 4 KiB
 * page, 2 ms per MLP-sized array; docs/architecture.md "Engine facts").
 */
export async function chunkGradientInto(model: Model, theta: Float32Array, c: Chunk, out: Float32Array): Promise<number> {
  checkLength(model, out, 'out')
  return readAsync(gradientTensors(model, theta, c), model, out)
}

/** chunkHvpAsync writing H v into `out` ([P], every entry overwritten). */
export async function chunkHvpInto(model: Model, theta: Float32Array, v: Float32Array, c: Chunk, out: Float32Array): Promise<void> {
  checkLength(model, out, 'out')
  await readAsync(hvpTensors(model, theta, v, c), model, out)
}

/** Device results of one chunk call: a scalar loss and/or one tensor per parameter. */
interface Pending {
  loss?: tf.Tensor
  parts?: tf.Tensor[]
}

function lossTensors(model: Model, theta: Float32Array, c: Chunk): Pending {
  installGradients()
  checkLength(model, theta, 'theta')
  if (useConvHvpPath(model)) {
    // Conv networks on wasm: the plan's forward pass, each relu conv layer and its pool one kernel (conv-hvp.ts).
    checkChunk(model, c)
    return { loss: tf.tidy(() => convLoss(model, paramTensors(model, theta), c)) }
  }
  return { loss: tf.tidy(() => lossOnParts(model, paramTensors(model, theta), c, true)) }
}

function gradientTensors(model: Model, theta: Float32Array, c: Chunk): Pending {
  installGradients()
  checkLength(model, theta, 'theta')
  if (useDensePath(model)) {
    // Dense models on wasm: the hand-written backward pass (dense-hvp.ts), no tape.
    checkChunk(model, c)
    const r = tf.tidy(() => denseGradient(model, theta, c))
    return { loss: r.loss, parts: r.grads }
  }
  if (useConvHvpPath(model)) {
    // Conv networks on wasm: the hand-written backward pass (conv-hvp.ts), no tape.
    checkChunk(model, c)
    const r = tf.tidy(() => convGradient(model, paramTensors(model, theta), c))
    return { loss: r.loss, parts: r.grads }
  }
  const { value, grads } = tf.tidy(() => {
    const f = (...ps: tf.Tensor[]): tf.Scalar => lossOnParts(model, ps, c, true)
    return tf.valueAndGrads(f)(paramTensors(model, theta))
  })
  return { loss: value, parts: grads }
}

function hvpTensors(model: Model, theta: Float32Array, v: Float32Array, c: Chunk): Pending {
  installGradients()
  checkLength(model, theta, 'theta')
  checkLength(model, v, 'v')
  if (useDensePath(model)) {
    // Dense models on wasm: the R-operator (dense-hvp.ts) instead of double backprop.
    checkChunk(model, c)
    return { parts: tf.tidy(() => denseHvp(model, theta, v, c)) }
  }
  if (useConvHvpPath(model)) {
    // Conv networks with average pools on wasm: the R-operator (conv-hvp.ts) instead of double backprop.
    checkChunk(model, c)
    return { parts: tf.tidy(() => convHvp(model, theta, paramTensors(model, v), c)) }
  }
  const parts = tf.tidy(() => {
    const vs = paramTensors(model, v)
    const g = tf.grads((...ps: tf.Tensor[]) => lossOnParts(model, ps, c)) // θ -> ∇L(θ), per tensor
    const gv = (...ps: tf.Tensor[]): tf.Scalar => tf.addN(g(ps).map((gi, i) => tf.sum(tf.mul(gi, vs[i]!)))) as tf.Scalar // ∇L(θ)·v
    return tf.grads(gv)(paramTensors(model, theta))
  })
  return { parts }
}

/**
 * Reads a chunk call's results to the host and disposes them (cpu / wasm / tensorflow): returns the
 * loss (0 when there is none) and writes the parts, if any, into `out` at their parameters' offsets.
 */
function readSync(p: Pending, model: Model, out?: Float32Array): number {
  try {
    const heap = wasmHeap()
    if (heap !== undefined) return fromHeap(heap, p, model, out)
    const loss = p.loss === undefined ? 0 : p.loss.dataSync()[0]!
    p.parts?.forEach((t, i) => out!.set(t.dataSync() as Float32Array, model.params[i]!.offset))
    return loss
  } finally {
    tf.dispose([...(p.loss ? [p.loss] : []), ...(p.parts ?? [])])
  }
}

/** readSync with `data()` (wasm: straight from its heap): one round trip per call (every buffer mapped at once), then disposed. */
async function readAsync(p: Pending, model: Model, out?: Float32Array): Promise<number> {
  try {
    const heap = wasmHeap()
    if (heap !== undefined) return fromHeap(heap, p, model, out)
    const [lossData, ...parts] = await Promise.all([p.loss?.data(), ...(p.parts ?? []).map((t) => t.data())])
    throwIfDeviceError()
    parts.forEach((d, i) => out!.set(d as Float32Array, model.params[i]!.offset))
    return lossData === undefined ? 0 : lossData[0]!
  } finally {
    tf.dispose([...(p.loss ? [p.loss] : []), ...(p.parts ?? [])])
  }
}

/** The wasm backend and its heap as float32s, when it is the current backend. */
function wasmHeap(): { backend: BackendWasm; f32: Float32Array } | undefined {
  if (tf.getBackend() !== 'wasm') return undefined
  const backend = tf.backend() as BackendWasm
  return { backend, f32: heapF32(backend) }
}

/**
 * The results copied straight out of the wasm heap: the bytes `dataSync` would return, without the
 * intermediate array per tensor it allocates. Every result tensor is float32 (losses and parts).
 */
function fromHeap(heap: { backend: BackendWasm; f32: Float32Array }, p: Pending, model: Model, out?: Float32Array): number {
  const at = (t: tf.Tensor): number => {
    if (t.dtype !== 'float32') throw new Error(`chunk result is ${t.dtype}, not float32`)
    return pointerOf(heap.backend, t.dataId) / 4
  }
  p.parts?.forEach((t, i) => {
    const from = at(t)
    out!.set(heap.f32.subarray(from, from + t.size), model.params[i]!.offset)
  })
  return p.loss === undefined ? 0 : heap.f32[at(p.loss)]!
}

/** Loss over the dataset: sum, or mean when reduction is 'mean' (the default). */
export function datasetLoss(model: Model, theta: Float32Array, data: Dataset, opts: DatasetOptions = {}): number {
  let total = 0
  for (const c of chunks(model, data, opts.chunkSize)) total += chunkLoss(model, theta, c)
  return scale(opts.reduction) === 'mean' ? total / data.n : total
}

/** Loss and gradient over the dataset (float64 accumulation over chunks in order). */
export function datasetGradient(
  model: Model,
  theta: Float32Array,
  data: Dataset,
  opts: DatasetOptions = {},
): { loss: number; grad: Float32Array } {
  const acc = new Float64Array(model.size)
  const grad = new Float32Array(model.size) // one buffer for every chunk (every entry overwritten)
  let total = 0
  for (const c of chunks(model, data, opts.chunkSize)) {
    total += readSync(gradientTensors(model, theta, c), model, grad)
    for (let i = 0; i < acc.length; i++) acc[i]! += grad[i]!
  }
  const d = scale(opts.reduction) === 'mean' ? data.n : 1
  return { loss: total / d, grad: toFloat32(acc, d) }
}

/** H v over the dataset (float64 accumulation over chunks in order). */
export function datasetHvp(model: Model, theta: Float32Array, v: Float32Array, data: Dataset, opts: DatasetOptions = {}): Float32Array {
  const acc = new Float64Array(model.size)
  const hv = new Float32Array(model.size)
  for (const c of chunks(model, data, opts.chunkSize)) {
    readSync(hvpTensors(model, theta, v, c), model, hv)
    for (let i = 0; i < acc.length; i++) acc[i]! += hv[i]!
  }
  return toFloat32(acc, scale(opts.reduction) === 'mean' ? data.n : 1)
}

/**
 * The fixed chunking every path uses: the fewest chunks of at most `chunkSize` examples, k =
 * ceil(n / chunkSize), as equal as can be (the first n mod k hold one more), consecutive, as views
 * into the dataset. A function of n and chunkSize only, never of the number of workers, so worker
 * pools split the same way and get the same bits; equal sizes keep small sets balanced across
 * workers (256 examples are 128 + 128, not 250 + 6).
 */
export function chunks(model: Model, data: Dataset, chunkSize = 250): Chunk[] {
  const [h, w, ch] = data.shape
  const m = model.spec.inputShape
  if (h !== m[0] || w !== m[1] || ch !== m[2])
    throw new Error(`dataset shape [${data.shape.join(',')}] does not match model inputShape [${m.join(',')}]`)
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`)
  const d = h * w * ch
  if (!Number.isInteger(data.n) || data.n < 1) throw new Error(`dataset must hold at least one example, n = ${data.n}`)
  if (data.x.length !== data.n * d || data.y.length !== data.n)
    throw new Error(`dataset arrays do not hold n = ${data.n} examples of [${data.shape.join(',')}]`)
  const k = Math.ceil(data.n / chunkSize)
  const base = Math.floor(data.n / k)
  const extra = data.n % k
  const out: Chunk[] = []
  for (let i = 0, s = 0; i < k; i++) {
    const e = s + base + (i < extra ? 1 : 0)
    out.push({ x: data.x.subarray(s * d, e * d), y: data.y.subarray(s, e), n: e - s })
    s = e
  }
  return out
}

function checkLength(model: Model, a: Float32Array, name: string): void {
  if (a.length !== model.size) throw new Error(`${name} has ${a.length} entries, model ${model.spec.arch} needs ${model.size}`)
}

/** The chunk's summed loss; `firstOrder` when it is differentiated at most once (fused conv layers). */
function lossOnParts(model: Model, params: tf.Tensor[], c: Chunk, firstOrder = false): tf.Scalar {
  const [h, w, ch] = model.spec.inputShape
  checkChunk(model, c)
  const x = tf.tensor4d(c.x, [c.n, h, w, ch]) // [n,h,w,c]
  return crossEntropySum(model.forwardParts(params, x, firstOrder), c.y)
}

function checkChunk(model: Model, c: Chunk): void {
  const [h, w, ch] = model.spec.inputShape
  if (!Number.isInteger(c.n) || c.n < 1 || c.x.length !== c.n * h * w * ch || c.y.length !== c.n) {
    throw new Error(`chunk must hold n >= 1 examples of [${h},${w},${ch}] (x ${c.x.length} values, y ${c.y.length} labels, n ${c.n})`)
  }
}

function scale(r: Reduction | undefined): Reduction {
  return r ?? 'mean'
}

function toFloat32(acc: Float64Array, divisor: number): Float32Array {
  const out = new Float32Array(acc.length)
  for (let i = 0; i < acc.length; i++) out[i] = acc[i]! / divisor
  return out
}
