/**
 * Kaiming initialisation (paper §4: "We initialize all networks with the Kaiming initialization [6]"),
 * as PyTorch's kaiming_normal_ with its defaults: fan_in mode, gain sqrt(2) (nonlinearity
 * 'leaky_relu' with a = 0), so every weight ~ N(0, 2 / fanIn) with fanIn = kh*kw*cin for convs and
 * `in` for dense layers. The same gain is used for tanh networks, since the paper says only "Kaiming
 * initialization". Biases are 0. Draws come from rng.ts, one stream per parameter tensor seeded by
 * (seed, name), in the tensor's tfjs (row-major) layout, rounded once to float32: identical on every
 * backend and machine.
 */
import { createRng } from '../rng.ts'
import type { ParamSlot } from './layers.ts'

/** θ0 [P] for the given layout and seed. */
export function kaimingInit(slots: ParamSlot[], size: number, seed: number): Float32Array {
  const theta = new Float32Array(size)
  for (const s of slots) {
    if (!s.name.endsWith('.weight')) continue // biases stay 0
    const rng = createRng(seed, s.name)
    const std = Math.sqrt(2 / s.fanIn)
    const n = s.shape.reduce((a, b) => a * b, 1)
    for (let i = 0; i < n; i++) theta[s.offset + i] = std * rng.normal()
  }
  return theta
}
