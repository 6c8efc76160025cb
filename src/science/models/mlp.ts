/**
 * The fully connected baseline: flatten the NHWC image row-major, then dense layers `fc1..fc{k}` with
 * the activation between them (default hidden widths [200, 200]). Not one of the paper's networks
 * (§4 uses AlexNet and VGG-16); cusp uses it for fast, smooth test and smoke runs.
 */
import type { Layer } from './layers.ts'

/** Layers of an MLP on inputs of shape [h,w,c] with the given hidden widths. */
export function mlpLayers(inputShape: [number, number, number], hidden: number[], classes: number): Layer[] {
  const layers: Layer[] = [{ kind: 'flatten', order: 'hwc' }]
  let fan = inputShape[0] * inputShape[1] * inputShape[2]
  hidden.forEach((width, i) => {
    layers.push({ kind: 'dense', name: `fc${i + 1}`, in: fan, out: width }, { kind: 'act' })
    fan = width
  })
  layers.push({ kind: 'dense', name: `fc${hidden.length + 1}`, in: fan, out: classes })
  return layers
}
