/**
 * Per-channel standardisation of a prepared subset: each channel c is mapped to
 * (x - mean_c) / std_c with mean and (population) standard deviation computed on the subset
 * itself, so the network sees inputs of zero mean and unit variance per channel whatever the
 * source and the chosen classes. Sums are float64 and two-pass (mean first, then squared
 * deviations), so the statistics do not depend on summation order at float32 precision. The
 * statistics go into the manifest, so the same transform can be applied to a test split.
 */

/** How the prepared images are normalised: per-channel standardisation on the subset, or not at all. */
export type Normalisation = 'standardise' | 'none'

/** Per-channel statistics (float64), one entry per channel. */
export interface ChannelStats {
  mean: number[]
  std: number[]
}

/** Per-channel mean and population standard deviation of NHWC `x` (channels innermost). */
export function channelStats(x: ArrayLike<number>, channels: number): ChannelStats {
  const count = x.length / channels
  if (!Number.isInteger(count) || count === 0) throw new Error(`channelStats: ${x.length} values do not split into ${channels} non-empty channels`)
  const mean: number[] = []
  const std: number[] = []
  for (let c = 0; c < channels; c++) {
    let sum = 0 // float64
    for (let i = c; i < x.length; i += channels) sum += x[i]!
    const m = sum / count
    let sq = 0
    for (let i = c; i < x.length; i += channels) {
      const d = x[i]! - m
      sq += d * d
    }
    mean.push(m)
    std.push(Math.sqrt(sq / count))
  }
  return { mean, std }
}

/**
 * Standardises NHWC `x` in place with `stats` and returns it. A channel with zero spread (a
 * constant channel) is only centred, not divided by zero.
 */
export function standardise(x: Float32Array, stats: ChannelStats): Float32Array {
  const channels = stats.mean.length
  for (let c = 0; c < channels; c++) {
    const m = stats.mean[c]!
    const s = stats.std[c]!
    const inv = s > 0 ? 1 / s : 1
    for (let i = c; i < x.length; i += channels) x[i] = (x[i]! - m) * inv
  }
  return x
}

/** Applies `kind` to `x` in place; returns the statistics used (identity ones for 'none'). */
export function normalise(x: Float32Array, channels: number, kind: Normalisation): ChannelStats {
  switch (kind) {
    case 'none':
      return { mean: new Array<number>(channels).fill(0), std: new Array<number>(channels).fill(1) }
    case 'standardise': {
      const stats = channelStats(x, channels)
      standardise(x, stats)
      return stats
    }
  }
}
