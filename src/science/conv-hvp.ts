/**
 * Hand-written Hessian-vector product (paper §3.3) of the summed softmax cross-entropy of a
 * convolutional network (conv layers with relu or tanh, average or max pools, a flatten, then
 * dense layers: the reference CNN, AlexNet-CIFAR, VGG-16) on wasm, by Pearlmutter's R-operator
 * instead of tfjs's double backprop through the tape, as dense-hvp.ts does for the MLP:
 * R{f} = d/dε f(θ + εv) at ε = 0 is
 * pushed through the forward pass (R-forward) and the backward pass (R-backward), so Hv = R{∇L}
 * exactly, with no finite step. Per layer l with input h, direction (V, c), z = W*h + b, a = σ(z):
 *   R-forward   Rz = V*h + c + W*Rh  (Rh = 0 at the input),  Ra = σ'(z) ⊙ Rz
 *   backward    δ = σ'(z) ⊙ g  (g: the loss gradient at a),  g_in = Wᵀ*δ
 *   R-backward  Rδ = σ'(z) ⊙ Rg + σ''(z) ⊙ g ⊙ Rz,  R∇W = h ⋆ Rδ + Rh ⋆ δ,  R∇b = Σ Rδ,
 *               Rg_in = Wᵀ*Rδ + Vᵀ*δ
 * where * is the convolution (or matrix product), Wᵀ* its transpose (the input gradient) and ⋆ the
 * filter gradient; average pools and the flatten are linear, so R passes through them as they are,
 * and a max pool is linear too once its arg-max cells are fixed (R reads Rh there; backward routes
 * to them, as the tape's MaxPoolGrad does, whose own derivative is zero);
 * at the softmax, δ = p - Y and Rδ = p ⊙ Rz - p ⊙ Σ_cols(p ⊙ Rz). relu: σ' = [z > 0] (tfjs's choice at
 * 0), σ'' = 0; tanh: σ' = 1 - a², σ'' = -2a(1 - a²). Against the tape this does 5 convolutions, 3
 * filter gradients and 2 input gradients instead of 5, 5 and 3 on the reference CNN, in ~60 kernel
 * calls instead of ~380, and no elementwise passes of the tape's double backprop. The forward
 * convolutions run fused with their bias and relu, and with a 2x2 average pool after them, and a
 * pool's gradient with the relu mask below it (wasm/conv-relu.ts). Not bit-identical to the
 * tape (another summation order); every op is a plain kernel, so the bits are fixed by the inputs.
 * What depends on θ and the chunk only (the forward pass, the max pools' routing, the δ's) can be
 * kept between HVPs at one θ (AtTheta, `setConvReuse`; on in worker threads): an HVP at a θ already
 * seen then runs the R-passes only, on the same kernels and inputs, so with the same bits.
 * The loss and gradient of the same networks (convLoss, convGradient) are the first-order half.
 */
import * as tf from '@tensorflow/tfjs'
import type { Chunk } from './hvp.ts'
import { crossEntropySum } from './loss.ts'
import type { Model } from './models.ts'
import { copyOf, paramTensors, sameBits, sameTheta, type ThetaKey } from './param-vectors.ts'
import { CONV_BIAS_ACT, CONV_BIAS_ACT_POOL, POOL_RELU_MASK, RELU_MASK } from './wasm/conv-relu.ts'

type T = tf.Tensor

/** One step of the plan: parameter indices in `model.params` where it has parameters. */
type Step =
  | { kind: 'conv'; w: number; b: number; stride: number; pad: 'same' | 'valid'; explicit: number; act: boolean }
  | { kind: 'pool'; op: 'avg' | 'max'; size: number }
  | { kind: 'flatten'; order: 'chw' | 'hwc' }
  | { kind: 'dense'; w: number; b: number; act: boolean }

interface ConvPlan {
  steps: Step[]
  activation: 'relu' | 'tanh'
  classes: number
}

const plans = new WeakMap<Model, ConvPlan | null>()
let enabled = true

/** Turns the hand-written path on or off (tests and benches compare it with the tape). */
export function setConvFastPath(on: boolean): void {
  enabled = on
}

/** Whether chunk losses, gradients and HVPs on the current backend take this file's passes (wasm, a network of the kind above). */
export function useConvHvpPath(model: Model): boolean {
  if (
    !enabled ||
    tf.getBackend() !== 'wasm' ||
    [CONV_BIAS_ACT, CONV_BIAS_ACT_POOL, POOL_RELU_MASK].some((k) => tf.getKernel(k, 'wasm') === undefined)
  )
    return false
  let plan = plans.get(model)
  if (plan === undefined) {
    plan = buildPlan(model) ?? null
    plans.set(model, plan)
  }
  return plan !== null
}

function buildPlan(model: Model): ConvPlan | undefined {
  const L = model.layers
  const steps: Step[] = []
  let p = 0
  let flat = false
  for (let i = 0; i < L.length; i++) {
    const layer = L[i]!
    const act = L[i + 1]?.kind === 'act'
    switch (layer.kind) {
      case 'conv': {
        if (flat) return undefined
        // As runLayers pads: tfjs 'same' where it equals PyTorch's symmetric padding, else an explicit pad.
        const same = layer.pad > 0 && layer.stride === 1 && 2 * layer.pad === layer.kernel - 1
        const explicit = layer.pad > 0 && !same ? layer.pad : 0
        if (explicit > 0 && p > 0) return undefined // an explicit pad is handled on the first layer only (its dx is never needed)
        steps.push({ kind: 'conv', w: p, b: p + 1, stride: layer.stride, pad: same ? 'same' : 'valid', explicit, act })
        p += 2
        if (act) i++
        break
      }
      case 'dense':
        if (!flat || (act && i + 1 === L.length - 1)) return undefined
        steps.push({ kind: 'dense', w: p, b: p + 1, act })
        p += 2
        if (act) i++
        break
      case 'pool':
        if (flat) return undefined
        steps.push({ kind: 'pool', op: layer.op, size: layer.size })
        break
      case 'flatten':
        flat = true
        steps.push({ kind: 'flatten', order: layer.order })
        break
      case 'act':
        return undefined // an activation not after a conv or dense layer
    }
  }
  if (!steps.some((s) => s.kind === 'conv') || steps[steps.length - 1]?.kind !== 'dense' || p !== model.params.length) return undefined
  return { steps, activation: model.spec.activation, classes: model.spec.classes }
}

/** What the forward pass keeps of one step for the gradient's backward pass. */
interface Saved {
  h: T
  /** conv / dense: the activation output a (or z without one); max pool: its output. */
  a?: T
}

const convAct = (x: T, w: T, b: T, s: { stride: number; pad: 'same' | 'valid' }, relu: boolean): T =>
  tf.engine().runKernel(CONV_BIAS_ACT, { x, filter: w, bias: b }, { strides: [s.stride, s.stride], pad: s.pad, relu } as never) as T
/** Whether step i is a relu conv layer followed by a 2x2 average pool: the two then run as one kernel (convPool). */
const poolsNext = (plan: ConvPlan, i: number): boolean => {
  const next = plan.steps[i + 1]
  return fusesMask(plan, i + 1) && next?.kind === 'pool' && next.size === 2
}
/** A relu conv layer and the 2x2 average pool after it: [a, pooled] with `keepA`, else [pooled] (AvgPool's bits). */
const convPool = (x: T, w: T, b: T, s: { stride: number; pad: 'same' | 'valid' }, keepA: boolean): T[] =>
  tf.engine().runKernel(CONV_BIAS_ACT_POOL, { x, filter: w, bias: b }, {
    strides: [s.stride, s.stride],
    pad: s.pad,
    relu: true,
    keep: keepA,
  } as never) as unknown as T[]
const mask = (g: T, a: T): T => tf.engine().runKernel(RELU_MASK, { dy: g, y: a }) as T
/** g at an average pool's output taken back through the pool and masked by the relu output a below it, in one kernel. */
const poolMask = (g: T, a: T, size: number): T => tf.engine().runKernel(POOL_RELU_MASK, { dy: g, y: a }, { size } as never) as T
/** Whether step i is an average pool right after a relu conv layer: its gradient and that layer's mask then run fused. */
const fusesMask = (plan: ConvPlan, i: number): boolean => {
  const s = plan.steps[i]
  const below = plan.steps[i - 1]
  return plan.activation === 'relu' && s?.kind === 'pool' && s.op === 'avg' && below?.kind === 'conv' && below.act
}
const attrs = (s: { stride: number; pad: 'same' | 'valid' }): Record<string, unknown> => ({
  strides: [s.stride, s.stride],
  pad: s.pad,
  dataFormat: 'NHWC',
  dimRoundingMode: undefined,
})
const filterGrad = (x: T, dy: T, w: T, s: { stride: number; pad: 'same' | 'valid' }): T =>
  tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs(s), filterShape: w.shape } as never) as T
const inputGrad = (dy: T, w: T, xShape: number[], s: { stride: number; pad: 'same' | 'valid' }): T =>
  tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs(s), inputShape: xShape } as never) as T
const poolGrad = (dy: T, x: T, size: number): T =>
  tf.engine().runKernel('AvgPoolGrad', { dy, input: x }, { filterSize: size, strides: size, pad: 'valid' } as never) as T
/** dy routed to each window's arg-max cell of x (y = maxPool(x)): the max pool's (fixed) Jacobian transposed. */
const maxRoute = (dy: T, x: T, y: T, size: number): T =>
  tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, { filterSize: size, strides: size, pad: 'valid' } as never) as T
const padded = (t: T, p: number): T =>
  tf.pad(t, [
    [0, 0],
    [p, p],
    [p, p],
    [0, 0],
  ])
const add = (a: T | undefined, b: T): T => (a === undefined ? b : tf.add(a, b))

/**
 * What an HVP needs of θ and the chunk only, not of v: the forward pass and the gradient's backward
 * chain (the δ's). An HVP at a θ already seen (the Lanczos and power iterations of §3.3 take many
 * at one θ) reuses it from the cache below, and runs only the R-forward and R-backward passes.
 */
interface AtTheta {
  /** Per step: its input h (the padded data on an explicitly padded first layer), and its output a (conv / dense: after σ; max pool). */
  h: T[]
  a: (T | undefined)[]
  /** Max pools above the first parameter layer: the routing of ones to each window's arg-max cell (R{max pool} reads Rh there). */
  route: (T | undefined)[]
  /** tanh layers: σ' = 1 - a², and -2a(1 - a²) ⊙ g (g: the loss gradient at a), the σ'' term without Rz. */
  s1: (T | undefined)[]
  s2g: (T | undefined)[]
  /** Parameter layers: δ, the loss gradient at z, where the R-backward reads it (above the first layer, or tanh). */
  d: (T | undefined)[]
  /** Softmax probabilities of the logits. */
  p: T
}

const isParam = (t: Step): boolean => t.kind === 'conv' || t.kind === 'dense'

/** The forward pass and the backward chain of the δ's at θ (`params`) for the chunk's pixels x and labels y. */
function atTheta(plan: ConvPlan, params: T[], x: T, y: Int32Array): AtTheta {
  const relu = plan.activation === 'relu'
  const L = plan.steps.length
  const at: Omit<AtTheta, 'p'> = { h: [], a: [], route: [], s1: [], s2g: [], d: new Array<T | undefined>(L) }
  const firstParam = plan.steps.findIndex(isParam)
  let h = x
  let pooled: T | undefined // the output of the pool step next, made with the conv layer before it
  for (const [i, s] of plan.steps.entries()) {
    if (s.kind === 'conv' && s.explicit > 0) h = padded(h, s.explicit) // the first layer only (buildPlan): what ⋆ reads
    at.h.push(h)
    at.a.push(undefined)
    at.route.push(undefined)
    at.s1.push(undefined)
    at.s2g.push(undefined)
    if (s.kind === 'conv' || s.kind === 'dense') {
      let z: T
      if (s.kind === 'conv') {
        if (poolsNext(plan, i)) [z, pooled] = convPool(h, params[s.w]!, params[s.b]!, s, true) as [T, T]
        else z = convAct(h, params[s.w]!, params[s.b]!, s, s.act && relu)
      } else {
        z = tf.add(tf.matMul(h as tf.Tensor2D, params[s.w] as tf.Tensor2D), params[s.b]!)
        if (s.act && relu) z = tf.relu(z)
      }
      h = at.a[i] = s.act && !relu ? tf.tanh(z) : z
      if (s.act && !relu) at.s1[i] = tf.sub(1, tf.square(h))
    } else if (s.kind === 'pool' && s.op === 'avg') {
      h = pooled ?? tf.avgPool(h as tf.Tensor4D, s.size, s.size, 'valid')
      pooled = undefined
    } else if (s.kind === 'pool') {
      const y = tf.maxPool(h as tf.Tensor4D, s.size, s.size, 'valid')
      at.a[i] = y
      if (i > firstParam) at.route[i] = maxRoute(tf.onesLike(y), h, y, s.size)
      h = y
    } else h = tf.reshape(s.order === 'chw' ? tf.transpose(h, [0, 3, 1, 2]) : h, [h.shape[0]!, -1])
  }
  // δ = p - Y at the logits, then down. g (and so δ) is needed below step i where a layer there uses
  // δ: tanh (its σ'' term), or a parameter layer above the first (its Rh ⋆ δ and Vᵀ*δ terms). With
  // relu the first layer needs Rδ only.
  const p = tf.softmax(h as tf.Tensor2D)
  let g: T | undefined = tf.sub(p, oneHot(y, plan.classes))
  const needG = (i: number): boolean => !relu || plan.steps.some((t, j) => isParam(t) && j > firstParam && j < i)
  for (let i = L - 1; i >= firstParam && g !== undefined; i--) {
    const s = plan.steps[i]!
    const hin = at.h[i]!
    const a = at.a[i]
    if (s.kind === 'conv' || s.kind === 'dense') {
      let d: T = g
      if (fusesMask(plan, i + 1)) {
        // Masked by the pool step above (poolMask).
      } else if (s.act && relu) d = mask(g, a!)
      else if (s.act) {
        const s1 = at.s1[i]!
        d = tf.mul(g, s1)
        at.s2g[i] = tf.mul(tf.mul(-2, tf.mul(a!, s1)), g)
      }
      at.d[i] = d
      if (i > firstParam && needG(i))
        g =
          s.kind === 'conv'
            ? inputGrad(d, params[s.w]!, hin.shape, s)
            : tf.matMul(d as tf.Tensor2D, params[s.w] as tf.Tensor2D, false, true)
      else g = undefined
    } else if (s.kind === 'pool' && fusesMask(plan, i)) g = poolMask(g, hin, s.size)
    else g = backThrough(s, g, hin, a)
  }
  return { ...at, p }
}

/** The tensors of an AtTheta (a tensor may appear twice: a step's output is the next one's input). */
const tensorsOf = (at: AtTheta): T[] =>
  [...at.h, ...at.a, ...at.route, ...at.s1, ...at.s2g, ...at.d, at.p].filter((t): t is T => t !== undefined)

/**
 * Hv of the chunk's summed loss, one tensor per parameter (in `model.params` order), at θ (flat)
 * for the direction `dirs` (v cut per parameter, shaped). The θ-only part (AtTheta) comes from the
 * cache when reuse is on and (θ, chunk) were seen at the last θ; either way the same kernels run on
 * the same inputs, so the bits do not depend on it. Call inside the caller's tidy.
 */
export function convHvp(model: Model, theta: Float32Array, dirs: T[], c: Chunk): T[] {
  const plan = plans.get(model)
  if (plan === undefined || plan === null) throw new Error(`model ${model.spec.arch} has no conv R-operator plan`)
  const { params, at } = thetaPart(model, plan, theta, c)
  return rPasses(plan, params, dirs, at)
}

/** The R-forward and R-backward passes for the direction `dirs`, on the θ-only part `at`. */
function rPasses(plan: ConvPlan, params: T[], dirs: T[], at: AtTheta): T[] {
  const relu = plan.activation === 'relu'
  const Rhs: (T | undefined)[] = [] // each step's R-input
  const Rzs: (T | undefined)[] = [] // tanh layers: Rz, for the σ'' term
  let Rh: T | undefined
  // R-forward.
  for (const [i, s] of plan.steps.entries()) {
    const h = at.h[i]!
    if (s.kind === 'conv' && s.explicit > 0) Rh = Rh === undefined ? undefined : padded(Rh, s.explicit)
    Rhs.push(Rh)
    Rzs.push(undefined)
    if (s.kind === 'conv' || s.kind === 'dense') {
      const W = params[s.w]!
      const V = dirs[s.w]!
      let Rz: T
      if (s.kind === 'conv') {
        Rz = convAct(h, V, dirs[s.b]!, s, false)
        if (Rh !== undefined) Rz = tf.add(Rz, tf.conv2d(Rh as tf.Tensor4D, W as tf.Tensor4D, s.stride, s.pad))
      } else {
        Rz = tf.add(tf.matMul(h as tf.Tensor2D, V as tf.Tensor2D), dirs[s.b]!)
        if (Rh !== undefined) Rz = tf.add(Rz, tf.matMul(Rh as tf.Tensor2D, W as tf.Tensor2D))
      }
      if (s.act && !relu) Rzs[i] = Rz
      Rh = s.act ? (relu ? mask(Rz, at.a[i]!) : tf.mul(at.s1[i]!, Rz)) : Rz
    } else if (s.kind === 'pool' && s.op === 'avg') {
      Rh = Rh === undefined ? undefined : tf.avgPool(Rh as tf.Tensor4D, s.size, s.size, 'valid')
    } else if (s.kind === 'pool') {
      // R{max pool} reads Rh at each window's arg-max cell: the sum over the window of Rh masked by
      // the routing of ones (one cell per window), as size² times its average.
      if (Rh !== undefined) Rh = tf.mul(tf.avgPool(tf.mul(at.route[i]!, Rh) as tf.Tensor4D, s.size, s.size, 'valid'), s.size * s.size)
    } else {
      const flatten = (t: T): T => tf.reshape(s.order === 'chw' ? tf.transpose(t, [0, 3, 1, 2]) : t, [t.shape[0]!, -1])
      Rh = Rh === undefined ? undefined : flatten(Rh)
    }
  }
  // Softmax: Rδ = p ⊙ Rz - p ⊙ Σ_cols(p ⊙ Rz), with z the logits (the last step's output).
  const p = at.p
  const pR = tf.mul(p, Rh!)
  let Rg: T = tf.sub(pR, tf.mul(p, tf.sum(pR, 1, true)))
  const out: T[] = new Array<T>(params.length)
  const firstParam = plan.steps.findIndex(isParam)
  // R-backward.
  for (let i = plan.steps.length - 1; i >= firstParam; i--) {
    const s = plan.steps[i]!
    const hin = at.h[i]!
    const Rhin = Rhs[i]
    const a = at.a[i]
    if (s.kind === 'conv' || s.kind === 'dense') {
      // Rδ at z from Rg at a.
      const d = at.d[i]
      let Rd: T = Rg
      if (fusesMask(plan, i + 1)) {
        // Masked by the pool step above (poolMask).
      } else if (s.act && relu) Rd = mask(Rg, a!)
      else if (s.act) Rd = tf.add(tf.mul(Rg, at.s1[i]!), tf.mul(at.s2g[i]!, Rzs[i]!))
      const W = params[s.w]!
      const V = dirs[s.w]!
      if (s.kind === 'conv') {
        out[s.w] = add(Rhin === undefined ? undefined : filterGrad(Rhin, d!, W, s), filterGrad(hin, Rd, W, s))
        out[s.b] = tf.sum(Rd, [0, 1, 2])
        if (i > firstParam) Rg = tf.add(inputGrad(Rd, W, hin.shape, s), inputGrad(d!, V, hin.shape, s))
      } else {
        const mm = (x: T, y: T, ta: boolean, tb: boolean): T => tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D, ta, tb)
        out[s.w] = add(Rhin === undefined ? undefined : mm(Rhin, d!, true, false), mm(hin, Rd, true, false))
        out[s.b] = tf.sum(Rd, 0)
        if (i > firstParam) Rg = tf.add(mm(Rd, W, false, true), mm(d!, V, false, true))
      }
    } else if (s.kind === 'pool' && fusesMask(plan, i)) Rg = poolMask(Rg, hin, s.size)
    else Rg = backThrough(s, Rg, hin, a)
  }
  return out
}

/**
 * The cache of θ-only work: for one model, backend and θ at a time (the last θ an HVP was asked
 * at), the parameter tensors and, per chunk, its AtTheta, up to `cacheBytes` of tensors in all;
 * chunks beyond that are computed afresh each call. A new θ, model or backend drops everything.
 * Keys are contents compared bit for bit (θ, the chunk's pixels and labels, hence its size), not
 * array identities, so a changed array can never hit a stale entry. Off unless switched on
 * (`setConvReuse`): worker threads (worker.ts) switch it on and empty it at each setup and park; in
 * process, chunkHvp keeps no tensor between calls unless asked to. An entry is about 31 MiB for a
 * 250-image chunk of the reference CNN, 16 MiB for 128 images of AlexNet-CIFAR, plus a host copy of
 * its pixels; the parameter tensors are kept once (9.4 MiB for AlexNet-CIFAR).
 */
interface Entry {
  x: Float32Array
  y: Int32Array
  at: AtTheta
  bytes: number
}
interface Cache extends ThetaKey {
  params: T[]
  entries: Entry[]
  bytes: number
}
let cache: Cache | undefined
let reuse = false
let cacheBytes = 256 * 2 ** 20
const stats = { hits: 0, misses: 0 }

/** Turns the reuse of θ-only work between HVPs at one θ on or off (and empties the cache); returns the previous setting. */
export function setConvReuse(on: boolean): boolean {
  const was = reuse
  reuse = on
  clearConvCache()
  return was
}

/** Sets the cache's byte budget for AtTheta tensors (default 256 MiB) and empties it; returns the previous budget. */
export function setConvCacheBytes(bytes: number): number {
  const was = cacheBytes
  cacheBytes = bytes
  clearConvCache()
  return was
}

/** Frees every cached tensor. */
export function clearConvCache(): void {
  if (cache !== undefined) tf.dispose([...cache.params, ...cache.entries.flatMap((e) => tensorsOf(e.at))])
  cache = undefined
}

/** Chunks cached at the current θ, their tensor bytes (distinct buffers), and hit / miss counts so far (tests, benches). */
export function convCacheStats(): { entries: number; bytes: number; hits: number; misses: number } {
  return { entries: cache?.entries.length ?? 0, bytes: cache?.entries.reduce((b, e) => b + e.bytes, 0) ?? 0, ...stats }
}

/** Bytes of the distinct buffers behind `ts` (a reshape shares its input's). */
function bytesOf(ts: T[]): number {
  const seen = new Set<object>()
  let bytes = 0
  for (const t of ts) {
    if (seen.has(t.dataId)) continue
    seen.add(t.dataId)
    bytes += 4 * t.size
  }
  return bytes
}

/** The parameter tensors and the AtTheta for (θ, chunk): cached, or computed (and kept if reuse is on and they fit). */
function thetaPart(model: Model, plan: ConvPlan, theta: Float32Array, c: Chunk): { params: T[]; at: AtTheta } {
  const x = (): T => tf.tensor4d(c.x, [c.n, ...model.spec.inputShape])
  if (!reuse || cacheBytes <= 0) {
    const params = paramTensors(model, theta)
    return { params, at: atTheta(plan, params, x(), c.y) }
  }
  if (cache === undefined || !sameTheta(cache, model, theta)) {
    const key = cache?.theta
    clearConvCache()
    cache = {
      model,
      backend: tf.backend(),
      theta: copyOf(theta, key),
      params: paramTensors(model, theta).map((t) => tf.keep(t)),
      entries: [],
      bytes: 0,
    }
  }
  const found = cache.entries.find((e) => sameBits(e.y, c.y) && sameBits(e.x, c.x))
  if (found !== undefined) {
    stats.hits++
    return { params: cache.params, at: found.at }
  }
  stats.misses++
  const at = atTheta(plan, cache.params, x(), c.y)
  const bytes = bytesOf(tensorsOf(at))
  if (cache.bytes + bytes <= cacheBytes) {
    tensorsOf(at).forEach((t) => tf.keep(t))
    cache.entries.push({ x: c.x.slice(), y: c.y.slice(), at, bytes })
    cache.bytes += bytes
  }
  return { params: cache.params, at }
}

/**
 * Summed loss and gradient of the chunk, one tensor per parameter (in `model.params` order), by a
 * hand-written backward pass (the first-order half of the above: backward δ = σ'(z) ⊙ g, ∇W = h ⋆ δ,
 * ∇b = Σ δ, g_in = Wᵀ*δ, δ = p - Y at the softmax), no tape: the tape's own kernels (fused forward
 * convolutions, filter and input gradients, pool gradients) without its engine bookkeeping,
 * saved-tensor clones and the chain of small kernels of the loss's derivative. The loss is
 * crossEntropySum of the same logits the loss path computes, so it has the loss path's bits.
 * `params` is θ cut per parameter, shaped. Call inside the caller's tidy.
 */
export function convGradient(model: Model, params: T[], c: Chunk): { loss: T; grads: T[] } {
  const plan = plans.get(model)
  if (plan === undefined || plan === null) throw new Error(`model ${model.spec.arch} has no conv plan`)
  const saved = forward(plan, params, tf.tensor4d(c.x, [c.n, ...model.spec.inputShape]), true)
  const logits = saved.pop()!.h
  const loss = crossEntropySum(logits as tf.Tensor2D, c.y)
  let g: T = tf.sub(tf.softmax(logits as tf.Tensor2D), oneHot(c.y, plan.classes))
  const relu = plan.activation === 'relu'
  const firstParam = plan.steps.findIndex((t) => t.kind === 'conv' || t.kind === 'dense')
  const grads: T[] = new Array<T>(params.length)
  for (let i = plan.steps.length - 1; i >= firstParam; i--) {
    const s = plan.steps[i]!
    const { h: hin, a } = saved[i]!
    if (s.kind === 'conv' || s.kind === 'dense') {
      const d = !s.act || fusesMask(plan, i + 1) ? g : relu ? mask(g, a!) : tf.mul(g, tf.sub(1, tf.square(a!)))
      const W = params[s.w]!
      if (s.kind === 'conv') {
        grads[s.w] = filterGrad(hin, d, W, s)
        grads[s.b] = tf.sum(d, [0, 1, 2])
        if (i > firstParam) g = inputGrad(d, W, hin.shape, s)
      } else {
        grads[s.w] = tf.matMul(hin as tf.Tensor2D, d as tf.Tensor2D, true, false)
        grads[s.b] = tf.sum(d, 0)
        if (i > firstParam) g = tf.matMul(d as tf.Tensor2D, W as tf.Tensor2D, false, true)
      }
    } else g = s.kind === 'pool' && fusesMask(plan, i) ? poolMask(g, hin, s.size) : backThrough(s, g, hin, a)
  }
  return { loss, grads }
}

/**
 * Summed loss of the chunk (the forward pass with each relu conv layer and its 2x2 average pool as
 * one kernel that never writes the layer's output; the bits of the tape's loss). Call inside the
 * caller's tidy.
 */
export function convLoss(model: Model, params: T[], c: Chunk): T {
  const plan = plans.get(model)
  if (plan === undefined || plan === null) throw new Error(`model ${model.spec.arch} has no conv plan`)
  const [logits] = forward(plan, params, tf.tensor4d(c.x, [c.n, ...model.spec.inputShape]), false)
  return crossEntropySum(logits!.h as tf.Tensor2D, c.y)
}

/**
 * The forward pass of the plan. With `keepAll`, per step its input h and (conv / dense) its output a
 * or (max pool) its output; without, nothing of the steps. One more entry at the end holds the
 * logits as h.
 */
function forward(plan: ConvPlan, params: T[], x: T, keepAll: boolean): Saved[] {
  const relu = plan.activation === 'relu'
  const saved: Saved[] = []
  let h = x
  let pooled: T | undefined // the output of the pool step next, made with the conv layer before it
  for (const [i, s] of plan.steps.entries()) {
    const keep: Saved = { h }
    if (keepAll) saved.push(keep)
    if (s.kind === 'conv' || s.kind === 'dense') {
      let z: T
      if (s.kind === 'conv') {
        if (s.explicit > 0) h = keep.h = padded(h, s.explicit)
        if (poolsNext(plan, i)) {
          const outs = convPool(h, params[s.w]!, params[s.b]!, s, keepAll)
          pooled = outs.pop()!
          z = outs[0] ?? pooled // unkept, the layer's output is never made (the pool step takes `pooled`)
        } else z = convAct(h, params[s.w]!, params[s.b]!, s, s.act && relu)
      } else {
        z = tf.add(tf.matMul(h as tf.Tensor2D, params[s.w] as tf.Tensor2D), params[s.b]!)
        if (s.act && relu) z = tf.relu(z)
      }
      h = keep.a = s.act && !relu ? tf.tanh(z) : z
    } else if (s.kind === 'pool' && s.op === 'avg') {
      h = pooled ?? tf.avgPool(h as tf.Tensor4D, s.size, s.size, 'valid')
      pooled = undefined
    } else if (s.kind === 'pool') h = keep.a = tf.maxPool(h as tf.Tensor4D, s.size, s.size, 'valid')
    else h = tf.reshape(s.order === 'chw' ? tf.transpose(h, [0, 3, 1, 2]) : h, [h.shape[0]!, -1])
  }
  saved.push({ h })
  return saved
}

/** A gradient g at a pool's or flatten's output taken back to its input hin (a: a max pool's output). */
function backThrough(s: Step, g: T, hin: T, a: T | undefined): T {
  if (s.kind === 'pool') return s.op === 'avg' ? poolGrad(g, hin, s.size) : maxRoute(g, hin, a!, s.size)
  const [n, hh, ww, cc] = hin.shape as [number, number, number, number]
  return s.kind === 'flatten' && s.order === 'chw'
    ? tf.transpose(tf.reshape(g, [n, cc, hh, ww]), [0, 2, 3, 1])
    : tf.reshape(g, [n, hh, ww, cc])
}

/** Labels as a float32 one-hot matrix built on the host. */
function oneHot(y: Int32Array, k: number): T {
  const out = new Float32Array(y.length * k)
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!
    if (!Number.isInteger(c) || c < 0 || c >= k) throw new Error(`conv HVP: label ${c} at row ${i} is not a class in [0, ${k})`)
    out[i * k + c] = 1
  }
  return tf.tensor2d(out, [y.length, k])
}
