/**
 * The networks of the paper (§4: AlexNet and non-normalised VGG-16 on CIFAR-10, ReLU or tanh, Kaiming
 * init) plus an MLP and the small reference CNN, as pure functions of one flat parameter vector θ, so
 * that gradients, Hessian-vector products and eigenvectors (paper §3.3) all live in the same space.
 * Layout of θ: layers in forward order, `${layer}.weight` then `${layer}.bias`, each row-major in tfjs
 * layout (conv [kh,kw,cin,cout], dense [in,out]). PyTorch equivalents: conv weight.permute(3,2,0,1),
 * dense weight.T; conv features are flattened in PyTorch's NCHW order, the MLP's input in NHWC order.
 */
import type * as tf from '@tensorflow/tfjs'
import { alexnetLayers } from './models/alexnet.ts'
import { cnnLayers } from './models/cnn.ts'
import { kaimingInit } from './models/init.ts'
import { layoutParams, runLayers, type Layer, type LayerHooks } from './models/layers.ts'
import { mlpLayers } from './models/mlp.ts'
import { vggLayers } from './models/vgg.ts'
import { offerWarmEngine } from './warm-engine.ts'

export type { Layer, LayerHooks } from './models/layers.ts'

// Every stage that computes with the engine builds a model: a warm stage worker may keep the engine.
offerWarmEngine()

export type Arch = 'mlp' | 'cnn' | 'alexnet' | 'vgg16'
export type Activation = 'relu' | 'tanh'

/** What to build. `width` multiplies channel counts (cnn/alexnet/vgg16) for small test versions. */
export interface ModelSpec {
  arch: Arch
  activation: Activation
  inputShape: [number, number, number] // [h, w, c]
  classes: number
  pool?: 'avg' | 'max' // cnn; default avg
  hidden?: number[] // mlp; default [200, 200]
  width?: number // channel multiplier, default 1
}

/** One parameter tensor inside θ: PyTorch-style name, tfjs shape, offset into θ, fan-in. */
export interface ParamSpec {
  name: string
  shape: number[]
  offset: number
  fanIn: number
}

/** A built network: its parameter layout and a forward pass on θ. */
export interface Model {
  spec: ModelSpec
  params: ParamSpec[]
  size: number
  /** The layer list θ is laid out from (for oracles that rebuild the network elsewhere). */
  layers: Layer[]
  /** x [n,h,w,c] -> logits [n, classes]. Call inside a tidy. */
  forward(theta: tf.Tensor1D, x: tf.Tensor4D): tf.Tensor2D
  /** forward with per-site overrides of the activations / max pools (test surrogates). */
  forwardWith(theta: tf.Tensor1D, x: tf.Tensor4D, hooks: LayerHooks): tf.Tensor2D
  /**
   * forward with one tensor per ParamSpec (in `params` order, each of its shape) instead of θ.
   * `firstOrder`: the result is differentiated at most once (loss, gradient), so conv layers may
   * run fused where the backend has the kernel (models/layers.ts runLayers); same bits.
   */
  forwardParts(params: tf.Tensor[], x: tf.Tensor4D, firstOrder?: boolean): tf.Tensor2D
}

/** Builds a model from its spec; throws on an unknown arch or an input too small for it. */
export function buildModel(spec: ModelSpec): Model {
  const width = spec.width ?? 1
  const layers = layersFor(spec, width)
  const params = layoutParams(layers, spec.inputShape)
  const last = params[params.length - 1]
  const size = last ? last.offset + last.shape.reduce((a, b) => a * b, 1) : 0
  const check = (theta: tf.Tensor1D | tf.Tensor[], x: tf.Tensor4D): void => {
    if (Array.isArray(theta)) {
      theta.forEach((t, i) => {
        const want = params[i]?.shape ?? []
        if (t.shape.join() !== want.join())
          throw new Error(`parameter ${i} has shape [${t.shape.join(',')}], model ${spec.arch} needs [${want.join(',')}]`)
      })
    } else if (theta.size !== size) throw new Error(`theta has ${theta.size} entries, model ${spec.arch} needs ${size}`)
    const [, h, w, c] = x.shape
    if (h !== spec.inputShape[0] || w !== spec.inputShape[1] || c !== spec.inputShape[2]) {
      throw new Error(`input [${x.shape.join(',')}] does not match inputShape [${spec.inputShape.join(',')}]`)
    }
  }
  return {
    spec,
    params,
    size,
    layers,
    forward(theta, x) {
      check(theta, x)
      return runLayers(layers, params, theta, x, spec.activation)
    },
    forwardWith(theta, x, hooks) {
      check(theta, x)
      return runLayers(layers, params, theta, x, spec.activation, hooks)
    },
    forwardParts(parts, x, firstOrder = false) {
      check(parts, x)
      return runLayers(layers, params, parts, x, spec.activation, undefined, firstOrder)
    },
  }
}

function layersFor(spec: ModelSpec, width: number): Layer[] {
  switch (spec.arch) {
    case 'mlp':
      return mlpLayers(spec.inputShape, spec.hidden ?? [200, 200], spec.classes)
    case 'cnn':
      return cnnLayers(spec.inputShape, spec.classes, spec.pool ?? 'avg', width)
    case 'alexnet':
      return alexnetLayers(spec.inputShape, spec.classes, width)
    case 'vgg16':
      return vggLayers(spec.inputShape, spec.classes, width)
    default:
      return unreachable(spec.arch)
  }
}

function unreachable(x: never): never {
  throw new Error(`unknown arch ${String(x)}`)
}

/**
 * θ0 for `model`: Kaiming normal (fan_in, gain sqrt(2), as PyTorch's kaiming_normal_ default; also
 * for tanh), biases 0, from the seeded generator in rng.ts: identical on every backend.
 */
export function initParams(model: Model, seed: number): Float32Array {
  return kaimingInit(model.params, model.size, seed)
}
