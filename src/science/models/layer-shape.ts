/**
 * Shape arithmetic over a layer list, apart from layers.ts so that what only counts (the FLOP and
 * cost estimates the CLI makes on every run, src/science/flops.ts) does not load tfjs.
 */
import type { Layer } from './layers.ts'

/** Spatial shape [h, w, c] reaching the first flatten: what a head's fan-in is computed from. */
export function featureShape(layers: Layer[], inputShape: [number, number, number]): [number, number, number] {
  let [h, w, c] = inputShape
  for (const L of layers) {
    if (L.kind === 'conv') {
      h = Math.floor((h + 2 * L.pad - L.kernel) / L.stride) + 1
      w = Math.floor((w + 2 * L.pad - L.kernel) / L.stride) + 1
      c = L.cout
    } else if (L.kind === 'pool') {
      h = Math.floor(h / L.size)
      w = Math.floor(w / L.size)
    } else if (L.kind === 'flatten') break
  }
  return [h, w, c]
}
