/**
 * Hand-written gradient and Hessian-vector product (paper §3.3) of the summed softmax cross-entropy
 * of a dense network (the MLP: flatten, then dense layers with relu or tanh between them), instead
 * of tfjs's double backprop through the tape. The HVP is Pearlmutter's R-operator: R{f} = d/dε
 * f(θ + εv) at ε = 0, pushed through the forward pass (R-forward) and the backward pass
 * (R-backward), so Hv = R{∇L} exactly, the same quantity the tape computes, with no finite step.
 * For one chunk (rows = examples), layers l = 1..L, h_0 = x flattened, z_l = h_{l-1} W_l + b_l,
 * h_l = σ(z_l), logits z_L, p = softmax(z_L), Y one-hot labels, direction v = (V_l, c_l):
 *   backward    δ_L = p - Y,  ∇W_l = h_{l-1}ᵀ δ_l,  ∇b_l = Σ_rows δ_l,
 *               g_{l-1} = δ_l W_lᵀ,  δ_{l-1} = g_{l-1} ⊙ σ'(z_{l-1})
 *   R-forward   Rz_l = Rh_{l-1} W_l + h_{l-1} V_l + c_l  (Rh_0 = 0),  Rh_l = σ'(z_l) ⊙ Rz_l
 *   R-backward  Rδ_L = p ⊙ Rz_L - p ⊙ Σ_cols(p ⊙ Rz_L),
 *               R∇W_l = Rh_{l-1}ᵀ δ_l + h_{l-1}ᵀ Rδ_l,  R∇b_l = Σ_rows Rδ_l,
 *               Rg_{l-1} = Rδ_l W_lᵀ + δ_l V_lᵀ,  Rδ_{l-1} = Rg_{l-1} ⊙ σ'(z_{l-1}) + g_{l-1} ⊙ σ''(z_{l-1}) ⊙ Rz_{l-1}
 * with relu σ' = [z > 0] (tfjs's own choice at 0), σ'' = 0; tanh σ' = 1 - h², σ'' = -2h(1 - h²).
 * About 36 kernel calls per HVP at a new θ (15 at a θ already seen, 28 per gradient) instead of ~350
 * on the tape (whose per-call engine cost was 41% of the MLP HVP on wasm) and 19 matrix products
 * instead of 22: each product goes through cusp's fused dense kernel (wasm/dense-fused.ts), which
 * also adds the bias or a second product and applies the relu mask in the same call, with the bits
 * of the separate BatchMatMul / Add / Multiply calls. Every op is a fixed kernel, so the bits are
 * fixed by the inputs (the same on every worker count). Call the tensor functions inside the
 * caller's tidy.
 */
import * as tf from '@tensorflow/tfjs'
import type { Chunk } from './hvp.ts'
import type { Model } from './models.ts'
import { copyOf, paramTensors, sameBits, sameTheta, type ThetaKey } from './param-vectors.ts'
import { CUSP_COL_SUM, CUSP_DENSE } from './wasm/dense-fused.ts'

/** One dense layer of the plan: its weight and bias indices in `model.params`, and whether σ follows. */
interface DenseStep {
  w: number
  b: number
  act: boolean
}

/** A dense network in the form the hand-written passes handle. */
export interface DensePlan {
  steps: DenseStep[]
  inputs: number
  classes: number
  activation: 'relu' | 'tanh'
}

type T = tf.Tensor

/** The optional parts of a fused dense step (see `dense`). */
interface DenseOpts {
  ta?: boolean
  tb?: boolean
  c?: T
  d?: T
  tc?: boolean
  td?: boolean
  bias?: T
  mask?: T
}
/** Whether the current backend has cusp's fused kernels (wasm, installed); else the unfused ops. */
const fused = (): boolean => tf.getKernel(CUSP_DENSE, tf.getBackend()) !== undefined
const mm = (a: T, b: T, ta = false, tb = false): T => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, ta, tb)

/**
 * ((a b + bias) + c d) ⊙ mask with optional transposes, each term optional but a b: one call of
 * cusp's fused CuspDense kernel (wasm/dense-fused.ts), with the bits of the separate BatchMatMul,
 * Add and Multiply calls it replaces, which other backends (the cpu oracle in tests) run instead.
 */
function dense(a: T, b: T, o: DenseOpts = {}): T {
  if (!fused()) {
    let out = mm(a, b, o.ta, o.tb)
    if (o.bias !== undefined) out = tf.add(out, o.bias)
    if (o.c !== undefined && o.d !== undefined) out = tf.add(mm(o.c, o.d, o.tc, o.td), out)
    return o.mask === undefined ? out : tf.mul(out, o.mask)
  }
  const inputs: Record<string, T> = { a, b }
  if (o.c !== undefined && o.d !== undefined) {
    inputs['c'] = o.c
    inputs['d'] = o.d
  }
  if (o.bias !== undefined) inputs['bias'] = o.bias
  if (o.mask !== undefined) inputs['mask'] = o.mask
  const attrs = { transposeA: o.ta ?? false, transposeB: o.tb ?? false, transposeC: o.tc ?? false, transposeD: o.td ?? false }
  return tf.engine().runKernel(CUSP_DENSE, inputs as never, attrs as never) as T
}
/** Σ_rows a, [cols] (CuspColSum: rows added in order, the bits of ones · a, which other backends run). */
const sumRows = (a: T): T =>
  fused() ? (tf.engine().runKernel(CUSP_COL_SUM, { x: a } as never) as T) : tf.reshape(mm(tf.ones([1, a.shape[0]!]), a), [a.shape[1]!])

const plans = new WeakMap<Model, DensePlan | null>()
let enabled = true

/** Turns the hand-written path on or off (tests and benches compare it with the tape). */
export function setDenseFastPath(on: boolean): void {
  enabled = on
}

/**
 * The plan of `model` when it is a dense network (an 'hwc' flatten, then dense layers with one
 * activation between consecutive ones, ending on a dense layer), else undefined.
 */
export function densePlan(model: Model): DensePlan | undefined {
  let plan = plans.get(model)
  if (plan === undefined) {
    plan = buildPlan(model) ?? null
    plans.set(model, plan)
  }
  return plan ?? undefined
}

/** Whether chunk calls on the current backend take the hand-written path (wasm, dense models). */
export function useDensePath(model: Model): boolean {
  return enabled && tf.getBackend() === 'wasm' && densePlan(model) !== undefined
}

function buildPlan(model: Model): DensePlan | undefined {
  const [first, ...rest] = model.layers
  if (first?.kind !== 'flatten' || first.order !== 'hwc' || rest.length === 0) return undefined
  const steps: DenseStep[] = []
  let p = 0
  for (let i = 0; i < rest.length; i++) {
    const L = rest[i]!
    if (L.kind !== 'dense') return undefined
    const act = rest[i + 1]?.kind === 'act'
    if (act) {
      i++
      if (i === rest.length - 1) return undefined // an activation on the logits
    }
    steps.push({ w: p, b: p + 1, act })
    p += 2
  }
  if (p !== model.params.length) return undefined
  const [h, w, c] = model.spec.inputShape
  return { steps, inputs: h * w * c, classes: model.spec.classes, activation: model.spec.activation }
}

/**
 * What depends on θ and the chunk only, not on v: the forward pass and the backward chain. An HVP
 * at a θ already seen (the Lanczos and power iterations of §3.3 call many at one θ) reuses it: 0.31
 * of the HVP's products (the forward pass and δ_l, g_l).
 */
interface AtTheta {
  /** Input of each dense layer: h_0 .. h_{L-1}, [n, in]. */
  hs: T[]
  /** σ'(z_l) and (tanh only) σ''(z_l) of each hidden layer; undefined for the last. */
  d1: (T | undefined)[]
  d2: (T | undefined)[]
  /** Softmax probabilities [n, classes]. */
  p: T
  /** δ_l, the loss gradient at layer l's output pre-activation (δ_{L-1} = p - Y). */
  deltas: T[]
  /** g_l = δ_l W_lᵀ for l ≥ 1 (tanh only: its σ'' term), at index l. */
  gs: (T | undefined)[]
  /** Summed cross-entropy. */
  loss: T
}

/**
 * What depends on the chunk only, not on θ: its pixels as [n, inputs] and the one-hot labels.
 * (Bias gradients are column sums of δ, rows in order: the same sequential float32 sum, 0 + δ_0 +
 * δ_1 + ..., as ones · δ and as wasm's Sum over axis 0, which first transposes δ; tested bit for bit.)
 */
interface ChunkInputs {
  x: T
  Y: T
}

function chunkInputs(plan: DensePlan, c: Chunk): ChunkInputs {
  return { x: tf.tensor2d(c.x, [c.n, plan.inputs]), Y: oneHot(c.y, plan.classes) }
}

function atTheta(plan: DensePlan, params: T[], inp: ChunkInputs): AtTheta {
  const n = inp.x.shape[0]!
  const hs: T[] = [inp.x]
  const d1: (T | undefined)[] = []
  const d2: (T | undefined)[] = []
  let z: T = hs[0]!
  plan.steps.forEach((s, l) => {
    z = dense(hs[l]!, params[s.w]!, { bias: params[s.b]! })
    if (!s.act) {
      d1.push(undefined)
      d2.push(undefined)
    } else if (plan.activation === 'relu') {
      hs.push(tf.relu(z))
      d1.push(tf.step(z))
      d2.push(undefined)
    } else {
      const h = tf.tanh(z)
      const s1 = tf.sub(1, tf.square(h))
      hs.push(h)
      d1.push(s1)
      d2.push(tf.mul(-2, tf.mul(h, s1)))
    }
  })
  // Cross-entropy exactly as loss.ts computes it (same ops, same order: the same bits as chunkLoss),
  // with the row max subtracted (a constant: it cancels).
  const shifted = tf.sub(z, tf.max(z, 1, true))
  const e = tf.exp(shifted)
  const s = tf.sum(e, 1, true)
  const p = tf.div(e, s)
  const Y = inp.Y
  const loss = tf.sum(tf.sub(tf.log(tf.reshape(s, [n])), tf.sum(tf.mul(shifted, Y), 1)))
  const L = plan.steps.length
  const deltas: T[] = new Array<T>(L)
  const gs: (T | undefined)[] = new Array<T | undefined>(L)
  deltas[L - 1] = tf.sub(p, Y)
  for (let l = L - 1; l > 0; l--) {
    const w = params[plan.steps[l]!.w]!
    if (d2[l - 1] !== undefined) {
      // tanh keeps g_l for its σ'' term.
      const g = dense(deltas[l]!, w, { tb: true })
      gs[l] = g
      deltas[l - 1] = tf.mul(g, d1[l - 1]!)
    } else deltas[l - 1] = dense(deltas[l]!, w, { tb: true, mask: d1[l - 1]! })
  }
  return { hs, d1, d2, p, deltas, gs, loss }
}

/** Labels as a float32 one-hot matrix built on the host (no OneHot/Cast kernels, int32 or not). */
function oneHot(y: Int32Array, k: number): T {
  const out = new Float32Array(y.length * k)
  for (let i = 0; i < y.length; i++) {
    const c = y[i]!
    if (!Number.isInteger(c) || c < 0 || c >= k) throw new Error(`dense loss: label ${c} at row ${i} is not a class in [0, ${k})`)
    out[i * k + c] = 1
  }
  return tf.tensor2d(out, [y.length, k])
}

function planOf(model: Model): DensePlan {
  const plan = densePlan(model)
  if (plan === undefined) throw new Error(`model ${model.spec.arch} is not a dense network`)
  return plan
}

/** Summed loss and its gradient, one tensor per parameter (in `model.params` order). */
export function denseGradient(model: Model, theta: Float32Array, c: Chunk): { loss: tf.Scalar; grads: T[] } {
  const plan = planOf(model)
  const { params, at } = thetaPart(model, plan, theta, c)
  const grads: T[] = new Array<T>(params.length)
  plan.steps.forEach((s, l) => {
    grads[s.w] = dense(at.hs[l]!, at.deltas[l]!, { ta: true })
    grads[s.b] = sumRows(at.deltas[l]!)
  })
  return { loss: tf.clone(at.loss) as tf.Scalar, grads }
}

/** H v of the summed loss, one tensor per parameter, by the R-operator (v cut like the parameters). */
export function denseHvp(model: Model, theta: Float32Array, v: Float32Array, c: Chunk): T[] {
  const plan = planOf(model)
  const { params, at } = thetaPart(model, plan, theta, c)
  const vs = paramTensors(model, v)
  const L = plan.steps.length
  // R-forward: Rz_l, and Rh_l = σ'(z_l) ⊙ Rz_l as the next layer's R-input. With relu, Rz_l of a
  // hidden layer is needed only through Rh_l, so the mask is fused in and Rz_l is not kept.
  const rz: (T | undefined)[] = []
  const rh: (T | undefined)[] = [undefined]
  plan.steps.forEach((s, l) => {
    const prev = rh[l]
    const terms: DenseOpts = { bias: vs[s.b]!, ...(prev !== undefined ? { c: prev, d: params[s.w]! } : {}) }
    if (l < L - 1 && at.d2[l] === undefined) {
      rz.push(undefined)
      rh.push(dense(at.hs[l]!, vs[s.w]!, { ...terms, mask: at.d1[l]! }))
      return
    }
    const r = dense(at.hs[l]!, vs[s.w]!, terms)
    rz.push(r)
    if (l < L - 1) rh.push(tf.mul(at.d1[l]!, r))
  })
  // R-backward, from the softmax down.
  const out: T[] = new Array<T>(params.length)
  const pr = tf.mul(at.p, rz[L - 1]!)
  let rdelta: T = tf.sub(pr, tf.mul(at.p, tf.sum(pr, 1, true)))
  for (let l = L - 1; l >= 0; l--) {
    const s = plan.steps[l]!
    const prev = rh[l]
    out[s.w] = dense(at.hs[l]!, rdelta, { ta: true, ...(prev !== undefined ? { c: prev, d: at.deltas[l]!, tc: true } : {}) })
    out[s.b] = sumRows(rdelta)
    if (l === 0) break
    const rg: DenseOpts = { tb: true, c: at.deltas[l]!, d: vs[s.w]!, td: true }
    const d2 = at.d2[l - 1]
    if (d2 === undefined) rdelta = dense(rdelta, params[s.w]!, { ...rg, mask: at.d1[l - 1]! })
    else rdelta = tf.add(tf.mul(dense(rdelta, params[s.w]!, rg), at.d1[l - 1]!), tf.mul(at.gs[l]!, tf.mul(d2, rz[l - 1]!)))
  }
  return out
}

/**
 * The cache of θ-only work: for one model and one θ at a time, the parameter tensors and, per chunk,
 * its AtTheta and its ChunkInputs, up to `cacheBytes` in all; chunks beyond that are computed afresh
 * each call. A new θ drops every AtTheta, and the inputs of chunks not used at the previous θ; the
 * inputs of the others (a worker's fixed chunks) are kept, so they are not uploaded again per θ.
 * Keys are contents, compared bit for bit (θ, the chunk's pixels and labels), not array identities,
 * so a changed array can never hit a stale entry. A hit runs the same kernels on the same inputs as a
 * miss did: the same bits.
 */
interface Entry {
  x: Float32Array
  y: Int32Array
  inp: ChunkInputs
  /** The θ-only work at the current θ, once computed. */
  at?: AtTheta
  /** Whether the chunk was asked for at the current θ. */
  used: boolean
}
interface Cache extends ThetaKey {
  params: T[]
  entries: Entry[]
  bytes: number
}
let cache: Cache | undefined
let cacheBytes = 64 * 2 ** 20
const stats = { hits: 0, misses: 0 }

/** Sets the cache's byte budget (0 turns it off) and empties it; returns the previous budget. */
export function setDenseCacheBytes(bytes: number): number {
  const was = cacheBytes
  cacheBytes = bytes
  clearDenseCache()
  return was
}

/** Frees every cached tensor. */
export function clearDenseCache(): void {
  if (cache !== undefined) {
    const all: T[] = [...cache.params]
    for (const e of cache.entries) all.push(...inputTensors(e.inp), ...(e.at ? tensorsOf(e.at) : []))
    tf.dispose(all)
  }
  cache = undefined
}

/**
 * Chunks with their θ-only work cached (`entries`), chunks whose inputs are cached (`inputs`),
 * bytes now, and hit/miss counts of the θ-only work so far (tests, benches).
 */
export function denseCacheStats(): { entries: number; inputs: number; bytes: number; hits: number; misses: number } {
  const entries = cache?.entries.filter((e) => e.at !== undefined).length ?? 0
  return { entries, inputs: cache?.entries.length ?? 0, bytes: cache?.bytes ?? 0, ...stats }
}

/** The tensors of an AtTheta that it owns (h_0 is the chunk's input tensor). */
function tensorsOf(at: AtTheta): T[] {
  const all = [...at.hs.slice(1), ...at.d1, ...at.d2, at.p, ...at.deltas, ...at.gs, at.loss]
  return all.filter((t): t is T => t !== undefined)
}
const inputTensors = (inp: ChunkInputs): T[] => [inp.x, inp.Y]
const bytesOf = (ts: T[]): number => ts.reduce((b, t) => b + 4 * t.size, 0)

/** Empties the cache for another model, backend or θ (keeping the inputs of chunks used at the last θ). */
function startTheta(model: Model, theta: Float32Array): Cache {
  const same = cache !== undefined && cache.model === model && cache.backend === tf.backend()
  const kept: Entry[] = []
  if (cache !== undefined) {
    const drop: T[] = [...cache.params]
    for (const e of cache.entries) {
      if (e.at !== undefined) drop.push(...tensorsOf(e.at))
      if (same && e.used) kept.push({ x: e.x, y: e.y, inp: e.inp, used: false })
      else drop.push(...inputTensors(e.inp))
    }
    tf.dispose(drop)
  }
  const inputBytes = kept.reduce((b, e) => b + bytesOf(inputTensors(e.inp)) + e.x.byteLength + e.y.byteLength, 0)
  return {
    model,
    backend: tf.backend(),
    theta: copyOf(theta, cache?.theta),
    params: paramTensors(model, theta).map((t) => tf.keep(t)),
    entries: kept,
    bytes: theta.byteLength * 2 + inputBytes,
  }
}

/** The parameter tensors, AtTheta and inputs for (θ, chunk): cached, or computed (and kept if they fit). */
function thetaPart(model: Model, plan: DensePlan, theta: Float32Array, c: Chunk): { params: T[]; at: AtTheta; inp: ChunkInputs } {
  if (cacheBytes <= 0) {
    const params = paramTensors(model, theta)
    const inp = chunkInputs(plan, c)
    return { params, at: atTheta(plan, params, inp), inp }
  }
  if (cache === undefined || !sameTheta(cache, model, theta)) {
    cache = startTheta(model, theta)
  }
  const found = cache.entries.find((e) => sameBits(e.y, c.y) && sameBits(e.x, c.x))
  if (found?.at !== undefined) {
    stats.hits++
    found.used = true
    return { params: cache.params, at: found.at, inp: found.inp }
  }
  stats.misses++
  const inp = found?.inp ?? chunkInputs(plan, c)
  const at = atTheta(plan, cache.params, inp)
  const atBytes = bytesOf(tensorsOf(at))
  const newBytes = found === undefined ? bytesOf(inputTensors(inp)) + c.x.byteLength + c.y.byteLength : 0
  if (cache.bytes + atBytes + newBytes <= cacheBytes) {
    tensorsOf(at).forEach((t) => tf.keep(t))
    if (found !== undefined) {
      found.at = at
      found.used = true
    } else {
      inputTensors(inp).forEach((t) => tf.keep(t))
      cache.entries.push({ x: c.x.slice(), y: c.y.slice(), inp, at, used: true })
    }
    cache.bytes += atBytes + newBytes
  } else if (found !== undefined) found.used = true
  return { params: cache.params, at, inp }
}
