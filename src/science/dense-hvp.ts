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
 * About 55 kernel calls per HVP instead of ~350 on the tape (whose per-call engine cost was 41% of
 * the MLP HVP on wasm) and 19 matrix products instead of 22. Every op is a plain tfjs kernel, so the
 * bits are fixed by the inputs (the same on every worker count). Call the tensor functions inside
 * the caller's tidy.
 */
import * as tf from '@tensorflow/tfjs'
import type { Model } from './models.ts'

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
/** a b, with optional transposes (BatchMatMul: cusp's SIMD product on wasm). */
const mm = (a: T, b: T, ta = false, tb = false): T => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, ta, tb)

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

/** What the backward and R passes reuse from the forward pass. */
interface Forward {
  /** Input of each dense layer: h_0 .. h_{L-1}, [n, in]. */
  hs: T[]
  /** σ'(z_l) and (tanh only) σ''(z_l) of each hidden layer; undefined for the last. */
  d1: (T | undefined)[]
  d2: (T | undefined)[]
  /** Softmax probabilities [n, classes]. */
  p: T
  /** Summed cross-entropy (when asked for). */
  loss?: tf.Scalar
}

function forward(plan: DensePlan, params: tf.Tensor[], x: Float32Array, y: Int32Array, n: number, withLoss: boolean): Forward {
  const hs: T[] = [tf.tensor2d(x, [n, plan.inputs])]
  const d1: (T | undefined)[] = []
  const d2: (T | undefined)[] = []
  let z: T = hs[0]!
  plan.steps.forEach((s, l) => {
    z = tf.add(mm(hs[l]!, params[s.w]!), params[s.b]!)
    if (!s.act) {
      d1.push(undefined)
      d2.push(undefined)
      return
    }
    if (plan.activation === 'relu') {
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
  if (!withLoss) return { hs, d1, d2, p }
  const lse = tf.log(tf.reshape(s, [n]))
  const picked = tf.sum(tf.mul(shifted, oneHot(y, plan.classes)), 1)
  const loss = tf.sum(tf.sub(lse, picked)) as tf.Scalar
  return { hs, d1, d2, p, loss }
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
export function denseGradient(
  model: Model,
  params: tf.Tensor[],
  x: Float32Array,
  y: Int32Array,
  n: number,
): { loss: tf.Scalar; grads: tf.Tensor[] } {
  const plan = planOf(model)
  const f = forward(plan, params, x, y, n, true)
  const grads: tf.Tensor[] = new Array<tf.Tensor>(params.length)
  let delta: T = tf.sub(f.p, oneHot(y, plan.classes))
  for (let l = plan.steps.length - 1; l >= 0; l--) {
    const s = plan.steps[l]!
    grads[s.w] = mm(f.hs[l]!, delta, true, false)
    grads[s.b] = tf.sum(delta, 0)
    if (l > 0) delta = tf.mul(mm(delta, params[s.w]!, false, true), f.d1[l - 1]!)
  }
  return { loss: f.loss!, grads }
}

/** H v of the summed loss, one tensor per parameter, by the R-operator (v cut like the parameters). */
export function denseHvp(model: Model, params: tf.Tensor[], vs: tf.Tensor[], x: Float32Array, y: Int32Array, n: number): tf.Tensor[] {
  const plan = planOf(model)
  const f = forward(plan, params, x, y, n, false)
  const L = plan.steps.length
  // R-forward: Rz_l, and Rh_l = σ'(z_l) ⊙ Rz_l as the next layer's R-input.
  const rz: T[] = []
  const rh: (T | undefined)[] = [undefined]
  plan.steps.forEach((s, l) => {
    let r = tf.add(mm(f.hs[l]!, vs[s.w]!), vs[s.b]!)
    const prev = rh[l]
    if (prev !== undefined) r = tf.add(mm(prev, params[s.w]!), r)
    rz.push(r)
    if (l < L - 1) rh.push(tf.mul(f.d1[l]!, r))
  })
  // Backward and R-backward together, from the softmax down.
  const out: tf.Tensor[] = new Array<tf.Tensor>(params.length)
  let delta: T = tf.sub(f.p, oneHot(y, plan.classes))
  const pr = tf.mul(f.p, rz[L - 1]!)
  let rdelta: T = tf.sub(pr, tf.mul(f.p, tf.sum(pr, 1, true)))
  for (let l = L - 1; l >= 0; l--) {
    const s = plan.steps[l]!
    let rgw = mm(f.hs[l]!, rdelta, true, false)
    const prev = rh[l]
    if (prev !== undefined) rgw = tf.add(mm(prev, delta, true, false), rgw)
    out[s.w] = rgw
    out[s.b] = tf.sum(rdelta, 0)
    if (l === 0) break
    const W = params[s.w]!
    const g = mm(delta, W, false, true)
    const rg = tf.add(mm(rdelta, W, false, true), mm(delta, vs[s.w]!, false, true))
    const d1 = f.d1[l - 1]!
    const d2 = f.d2[l - 1]
    let nextR: T = tf.mul(rg, d1)
    if (d2 !== undefined) nextR = tf.add(nextR, tf.mul(g, tf.mul(d2, rz[l - 1]!)))
    delta = tf.mul(g, d1)
    rdelta = nextR
  }
  return out
}
