/**
 * The arithmetic of one forward pass of a cusp model, per example, counted from its layer list
 * (the same description models.ts builds and runs), so a cost estimate follows the architecture
 * rather than a hand-kept table. Convention: a multiply-add is 2 FLOPs; convolutions and dense
 * layers are counted (2 * fan-in * outputs), biases, activations and pools are not (they are
 * under 1% of any of these networks). Pure: no tfjs, no I/O.
 */
import type { Arch } from './models.ts'
import { alexnetLayers } from './models/alexnet.ts'
import { cnnLayers } from './models/cnn.ts'
import type { Layer } from './models/layers.ts'
import { mlpLayers } from './models/mlp.ts'
import { vggLayers } from './models/vgg.ts'

/** What determines a model's size: as in ModelSpec, without the activation (it costs nothing here). */
export interface FlopSpec {
  arch: Arch
  inputShape: [number, number, number]
  classes: number
  hidden?: number[]
  width?: number
  pool?: 'avg' | 'max'
}

/** FLOPs of one forward pass of `layers` on one example of `inputShape` ([h, w, c]). */
export function layerFlops(layers: readonly Layer[], inputShape: [number, number, number]): number {
  let [h, w] = inputShape
  let total = 0
  for (const L of layers) {
    if (L.kind === 'conv') {
      h = Math.floor((h + 2 * L.pad - L.kernel) / L.stride) + 1
      w = Math.floor((w + 2 * L.pad - L.kernel) / L.stride) + 1
      total += 2 * L.kernel * L.kernel * L.cin * L.cout * h * w
    } else if (L.kind === 'pool') {
      h = Math.floor(h / L.size)
      w = Math.floor(w / L.size)
    } else if (L.kind === 'dense') total += 2 * L.in * L.out
  }
  return total
}

/** FLOPs of one forward pass of the model `spec` on one example. */
export function forwardFlops(spec: FlopSpec): number {
  const width = spec.width ?? 1
  switch (spec.arch) {
    case 'mlp':
      return layerFlops(mlpLayers(spec.inputShape, spec.hidden ?? [200, 200], spec.classes), spec.inputShape)
    case 'cnn':
      return layerFlops(cnnLayers(spec.inputShape, spec.classes, spec.pool ?? 'avg', width), spec.inputShape)
    case 'alexnet':
      return layerFlops(alexnetLayers(spec.inputShape, spec.classes, width), spec.inputShape)
    case 'vgg16':
      return layerFlops(vggLayers(spec.inputShape, spec.classes, width), spec.inputShape)
  }
}
