/**
 * A network as a flat list of layers, and the one interpreter that runs it on a parameter vector.
 * Every cusp model (MLP, reference CNN, AlexNet, VGG-16; paper §4) is such a list, so the parameter
 * layout, the parameter count and the forward pass come from one description, and the PyTorch oracle
 * can rebuild the same network from `Model.layers`. Only plain functional ops are used (conv2d, 'valid'
 * pools, matMul, add, relu/tanh, pad, transpose, reshape) because those are the ones cusp can
 * differentiate twice on every backend (docs/architecture.md "Engine facts"); no tf.layers, no fused ops.
 */
import * as tf from '@tensorflow/tfjs'

/** One layer. Convs and denses own parameters `${name}.weight` and `${name}.bias`, in that order. */
export type Layer =
  | { kind: 'conv'; name: string; kernel: number; stride: number; pad: number; cin: number; cout: number }
  | { kind: 'act' }
  | { kind: 'pool'; op: 'avg' | 'max'; size: number }
  /** 'hwc': NHWC row-major (the MLP's input); 'chw': PyTorch's torch.flatten of NCHW (conv features). */
  | { kind: 'flatten'; order: 'hwc' | 'chw' }
  | { kind: 'dense'; name: string; in: number; out: number }

/** A parameter tensor's place in the flat vector θ (same fields as models.ts' ParamSpec). */
export interface ParamSlot {
  name: string
  shape: number[]
  offset: number
  fanIn: number
}

/** Per-site overrides of the nonlinear layers: how the frozen-pattern test surrogates are built. */
export interface LayerHooks {
  act?(z: tf.Tensor, site: number): tf.Tensor
  maxPool?(x: tf.Tensor4D, size: number, site: number): tf.Tensor4D
}

/**
 * The fused conv layer (conv2d + bias, and the relu that follows) where the backend has it (wasm,
 * wasm/conv-relu.ts): same bits, fewer passes, but differentiable once only, so for the loss and
 * gradient, never under an HVP's double backprop.
 */
const CONV_BIAS_ACT = 'CuspConvBiasAct'

/**
 * Lays the parameters out in forward order (weight then bias per layer, as PyTorch's
 * named_parameters does), checking shapes: throws if a pool or conv would leave no pixels or a dense
 * layer's fan-in does not match what reaches it.
 */
export function layoutParams(layers: Layer[], inputShape: [number, number, number]): ParamSlot[] {
  let [h, w, c] = inputShape
  let flat: number | undefined
  let offset = 0
  const slots: ParamSlot[] = []
  const add = (name: string, shape: number[], fanIn: number): void => {
    slots.push({ name, shape, offset, fanIn })
    offset += shape.reduce((a, b) => a * b, 1)
  }
  for (const L of layers) {
    switch (L.kind) {
      case 'conv': {
        if (flat !== undefined || L.cin !== c) throw new Error(`${L.name}: expects ${L.cin} input channels, gets ${flat ?? c}`)
        h = Math.floor((h + 2 * L.pad - L.kernel) / L.stride) + 1
        w = Math.floor((w + 2 * L.pad - L.kernel) / L.stride) + 1
        if (h < 1 || w < 1) throw new Error(`${L.name}: input too small (output ${h}x${w})`)
        c = L.cout
        add(`${L.name}.weight`, [L.kernel, L.kernel, L.cin, L.cout], L.kernel * L.kernel * L.cin)
        add(`${L.name}.bias`, [L.cout], L.kernel * L.kernel * L.cin)
        break
      }
      case 'pool':
        h = Math.floor(h / L.size)
        w = Math.floor(w / L.size)
        if (h < 1 || w < 1) throw new Error(`pool ${L.size}: input too small`)
        break
      case 'flatten':
        flat = h * w * c
        break
      case 'dense':
        if (flat !== L.in) throw new Error(`${L.name}: expects ${L.in} inputs, gets ${flat ?? 'an unflattened map'}`)
        add(`${L.name}.weight`, [L.in, L.out], L.in)
        add(`${L.name}.bias`, [L.out], L.in)
        flat = L.out
        break
      case 'act':
        break
    }
  }
  return slots
}

export { featureShape } from './layer-shape.ts'

/**
 * Runs the layers on x [n,h,w,c], returning logits [n, classes]. Parameters come either from θ [P],
 * cut by one split (whose gradient is a single concat), or as one tensor per slot, already shaped
 * (the chunk functions' path: no split or concat to copy θ around). Call inside the caller's tidy.
 */
export function runLayers(
  layers: Layer[],
  slots: ParamSlot[],
  theta: tf.Tensor1D | tf.Tensor[],
  x: tf.Tensor4D,
  act: 'relu' | 'tanh',
  hooks?: LayerHooks,
  firstOrder = false,
): tf.Tensor2D {
  const fuse = firstOrder && hooks === undefined && tf.getKernel(CONV_BIAS_ACT, tf.getBackend()) !== undefined
  let parts: tf.Tensor[]
  if (Array.isArray(theta)) {
    if (theta.length !== slots.length) throw new Error(`expected ${slots.length} parameter tensors, got ${theta.length}`)
    parts = theta
  } else {
    const sizes = slots.map((s) => s.shape.reduce((a, b) => a * b, 1))
    parts = sizes.length > 1 ? tf.split(theta, sizes) : [theta]
  }
  let p = 0
  const next = (shape: number[]): tf.Tensor => tf.reshape(parts[p++]!, shape) // a no-op when already shaped
  let hcur: tf.Tensor = x
  let actSite = 0
  let poolSite = 0
  let skipAct = false
  for (const [li, L] of layers.entries()) {
    if (skipAct) {
      skipAct = false
      if (L.kind === 'act') continue
    }
    switch (L.kind) {
      case 'conv': {
        const W = next([L.kernel, L.kernel, L.cin, L.cout]) as tf.Tensor4D // [kh,kw,cin,cout]
        const b = next([L.cout]) // [cout]
        let xin = hcur as tf.Tensor4D // [n,h,w,cin]
        let pad: 'same' | 'valid' = 'valid'
        // PyTorch pads symmetrically; tfjs 'same' does too exactly when stride 1 and 2*pad = k-1.
        if (L.pad > 0 && L.stride === 1 && 2 * L.pad === L.kernel - 1) pad = 'same'
        else if (L.pad > 0)
          xin = tf.pad(xin, [
            [0, 0],
            [L.pad, L.pad],
            [L.pad, L.pad],
            [0, 0],
          ])
        if (fuse) {
          // The relu, when it comes next, is applied in the same kernel (and its layer skipped).
          const relu = act === 'relu' && layers[li + 1]?.kind === 'act'
          hcur = tf
            .engine()
            .runKernel(CONV_BIAS_ACT, { x: xin, filter: W, bias: b }, { strides: [L.stride, L.stride], pad, relu }) as tf.Tensor
          skipAct = relu
        } else hcur = tf.add(tf.conv2d(xin, W, L.stride, pad), b) // [n,oh,ow,cout]
        break
      }
      case 'act': {
        const site = actSite++ // (a relu fused into the conv before it never gets here: no hooks then)
        hcur = hooks?.act ? hooks.act(hcur, site) : act === 'relu' ? tf.relu(hcur) : tf.tanh(hcur)
        break
      }
      case 'pool': {
        const h4 = hcur as tf.Tensor4D
        if (L.op === 'avg') hcur = tf.avgPool(h4, L.size, L.size, 'valid')
        else {
          const site = poolSite++
          hcur = hooks?.maxPool ? hooks.maxPool(h4, L.size, site) : tf.maxPool(h4, L.size, L.size, 'valid')
        }
        break
      }
      case 'flatten': {
        const n = hcur.shape[0]!
        const t = L.order === 'chw' ? tf.transpose(hcur, [0, 3, 1, 2]) : hcur // [n,c,h,w] for 'chw'
        hcur = tf.reshape(t, [n, -1]) // [n, features]
        break
      }
      case 'dense': {
        const W = next([L.in, L.out]) as tf.Tensor2D // [in,out]
        const b = next([L.out]) // [out]
        hcur = tf.add(tf.matMul(hcur as tf.Tensor2D, W), b) // [n,out]
        break
      }
    }
  }
  return hcur as tf.Tensor2D
}
