/**
 * C2's power, exactly. Under the chance null, entry i coincides with its |d| jump with its own
 * probability p_i (the share of probe steps within tolerance of that entry), independently, so the
 * number of coincidences K is Poisson-binomial. The test rejects chance when P(K >= c) <= alpha;
 * the critical count is the smallest such c (also at least min_fraction of the entries, the
 * claim's other condition). Power against "each entry truly coincides with probability q" (q >= p_i,
 * so a true entry keeps its chance share) is P(K_q >= critical count) with K_q Poisson-binomial over
 * max(q, p_i); the smallest q reaching the target power is what the design could detect.
 */

/** P(K = j), j = 0..n, for K a sum of independent Bernoulli(p_i): exact, by dynamic programming. */
export function poissonBinomialPmf(ps: readonly number[]): number[] {
  let dist = [1]
  for (const p of ps) {
    const next = new Array<number>(dist.length + 1).fill(0)
    for (let j = 0; j < dist.length; j++) {
      next[j]! += dist[j]! * (1 - p)
      next[j + 1]! += dist[j]! * p
    }
    dist = next
  }
  return dist
}

/** P(K >= k). */
export function poissonBinomialUpper(ps: readonly number[], k: number): number {
  const pmf = poissonBinomialPmf(ps)
  let tail = 0
  for (let j = Math.max(0, Math.ceil(k)); j < pmf.length; j++) tail += pmf[j]!
  return Math.min(1, tail)
}

/**
 * The smallest count c with P(K >= c) <= alpha and c >= minFraction x n; null when even n of n
 * coincidences would not reach alpha (the design cannot decide).
 */
export function criticalCount(ps: readonly number[], alpha: number, minFraction = 0): number | null {
  const n = ps.length
  const floor = Math.max(1, Math.ceil(minFraction * n - 1e-12))
  for (let c = floor; c <= n; c++) if (poissonBinomialUpper(ps, c) <= alpha) return c
  return null
}

/** P(at least `needed` coincidences) when entry i coincides with probability max(q, p_i). */
export function powerAt(ps: readonly number[], needed: number, q: number): number {
  return poissonBinomialUpper(
    ps.map((p) => Math.max(q, p)),
    needed,
  )
}

export interface C2Power {
  /** Entries observed. */
  n: number
  /** Smallest number of coincidences that the test calls supported; null: none would. */
  critical: number | null
  /** Chance p of `critical` coincidences (P(K >= critical) under the null). */
  pAtCritical: number | null
  /** Smallest per-entry coincidence probability detected with probability `target`; null: none. */
  qDetectable: number | null
  target: number
}

/** What the design could detect: the critical count and the per-entry rate detected at `target`. */
export function c2Power(ps: readonly number[], alpha: number, target: number, minFraction = 0): C2Power {
  const critical = criticalCount(ps, alpha, minFraction)
  if (critical === null) return { n: ps.length, critical, pAtCritical: null, qDetectable: null, target }
  let qDetectable: number | null = null
  if (powerAt(ps, critical, 1) >= target) {
    // powerAt rises with q: bisect to 1e-9.
    let lo = 0
    let hi = 1
    for (let i = 0; i < 40; i++) {
      const mid = (lo + hi) / 2
      if (powerAt(ps, critical, mid) >= target) hi = mid
      else lo = mid
    }
    qDetectable = hi
  }
  return { n: ps.length, critical, pAtCritical: poissonBinomialUpper(ps, critical), qDetectable, target }
}
