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
  const sum = new Float64Array(channels)
  for (let i = 0; i < x.length; i++) sum[i % channels] = sum[i % channels]! + x[i]!
  const mean = Array.from(sum, (s) => s / count)
  const sq = new Float64Array(channels)
  for (let i = 0; i < x.length; i++) {
    const d = x[i]! - mean[i % channels]!
    sq[i % channels] = sq[i % channels]! + d * d
  }
  return { mean, std: Array.from(sq, (s) => Math.sqrt(s / count)) }
}

/**
 * Standardises NHWC `x` in place with `stats` and returns it. A channel with zero spread (a
 * constant channel) is only centred, not divided by zero.
 */
export function standardise(x: Float32Array, stats: ChannelStats): Float32Array {
  const c = stats.mean.length
  const inv = stats.std.map((s) => (s > 0 ? 1 / s : 1))
  for (let i = 0; i < x.length; i++) x[i] = (x[i]! - stats.mean[i % c]!) * inv[i % c]!
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
