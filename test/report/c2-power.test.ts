// C2's power from the exact Poisson-binomial law of the number of coincidences: checked against
// brute-force enumeration of every outcome on small cases and against closed binomial values.
import t from 'tap'
import { c2Power, criticalCount, poissonBinomialPmf, poissonBinomialUpper, powerAt } from '../../src/report/c2-power.ts'

/** P(K = j) by enumerating all 2^n outcomes (the oracle). */
function bruteForcePmf(ps: readonly number[]): number[] {
  const n = ps.length
  const pmf = new Array<number>(n + 1).fill(0)
  for (let mask = 0; mask < 1 << n; mask++) {
    let pr = 1
    let k = 0
    for (let i = 0; i < n; i++) {
      if (mask & (1 << i)) {
        pr *= ps[i]!
        k++
      } else pr *= 1 - ps[i]!
    }
    pmf[k]! += pr
  }
  return pmf
}

/** A seeded uniform generator (mulberry32), so the cases are fixed. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const choose = (n: number, k: number): number => {
  let c = 1
  for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i
  return c
}
const binomUpper = (n: number, p: number, k: number): number => {
  let s = 0
  for (let j = k; j <= n; j++) s += choose(n, j) * p ** j * (1 - p) ** (n - j)
  return s
}

t.test('the pmf and its upper tail equal brute-force enumeration (n = 1..10, random p_i)', async (t) => {
  const u = rng(7)
  let worst = 0
  for (let n = 1; n <= 10; n++) {
    for (let rep = 0; rep < 5; rep++) {
      const ps = Array.from({ length: n }, () => u())
      const exact = poissonBinomialPmf(ps)
      const brute = bruteForcePmf(ps)
      t.equal(exact.length, n + 1)
      for (let k = 0; k <= n; k++) {
        worst = Math.max(worst, Math.abs(exact[k]! - brute[k]!))
        const tail = brute.slice(k).reduce((a, b) => a + b, 0)
        worst = Math.max(worst, Math.abs(poissonBinomialUpper(ps, k) - Math.min(1, tail)))
      }
    }
  }
  t.ok(worst < 1e-14, `max abs error ${worst}`)
  t.equal(poissonBinomialUpper([0.3, 0.6], 0), 1)
  t.equal(poissonBinomialUpper([0.3, 0.6], 3), 0, 'more than n coincidences is impossible')
})

t.test('equal p_i give the binomial law: closed values', async (t) => {
  t.ok(Math.abs(poissonBinomialUpper(new Array(10).fill(0.5), 8) - 56 / 1024) < 1e-15, 'Bin(10, 1/2): P(K >= 8) = 56/1024')
  t.ok(Math.abs(poissonBinomialUpper(new Array(5).fill(0.3), 2) - (1 - 0.7 ** 5 - 5 * 0.3 * 0.7 ** 4)) < 1e-15, 'Bin(5, 0.3): P(K >= 2)')
  for (const [n, p] of [
    [6, 0.1],
    [12, 0.254],
    [20, 3 / 19],
  ] as const)
    for (let k = 0; k <= n; k++)
      t.ok(Math.abs(poissonBinomialUpper(new Array(n).fill(p), k) - binomUpper(n, p, k)) < 1e-13, `Bin(${n}, ${p.toFixed(3)}) tail at ${k}`)
  // All must coincide: the chance is the product of the p_i (the README's 3/3 case).
  const ps = [3 / 19, 3 / 19, 3 / 8]
  t.ok(Math.abs(poissonBinomialUpper(ps, 3) - (9 / 361) * (3 / 8)) < 1e-16)
})

t.test('critical count: the smallest count at or under alpha, and at least min_fraction of n', async (t) => {
  // Bin(10, 1/2): P(K >= 9) = 11/1024 = 0.0107 <= 0.05 < P(K >= 8) = 0.0547.
  t.equal(criticalCount(new Array(10).fill(0.5), 0.05), 9)
  // Brute force over random cases: c is the first count whose enumerated tail is <= alpha.
  const u = rng(11)
  for (let rep = 0; rep < 40; rep++) {
    const n = 1 + Math.floor(u() * 8)
    const ps = Array.from({ length: n }, () => u() * 0.6)
    const tails = bruteForcePmf(ps).map((_, k, pmf) => pmf.slice(k).reduce((a, b) => a + b, 0))
    const want = tails.findIndex((x, k) => k >= 1 && x <= 0.05)
    t.equal(criticalCount(ps, 0.05), want < 0 ? null : want, `n ${n}`)
  }
  t.equal(criticalCount([0.1, 0.1, 0.1, 0.1], 0.05), 3, 'Bin(4, 0.1): P(K >= 2) = 0.0523 > 0.05, P(K >= 3) = 0.0037')
  t.equal(criticalCount([0.01, 0.01, 0.01, 0.01], 0.05, 0.5), 2, 'min_fraction 0.5 of 4 entries needs 2 even though 1 beats alpha')
  t.equal(criticalCount([3 / 8, 3 / 8], 0.05), null, '(3/8)^2 = 0.14: no count reaches alpha')
})

t.test('power: P(reaching the critical count) when each entry coincides with probability q', async (t) => {
  // Two entries at p = 3/28: critical 2 (p = 0.0115); power q^2 >= 0.8 from q = sqrt(0.8).
  const ps = [3 / 28, 3 / 28]
  const pw = c2Power(ps, 0.05, 0.8)
  t.equal(pw.critical, 2)
  t.ok(Math.abs(pw.pAtCritical! - (3 / 28) ** 2) < 1e-15)
  t.ok(Math.abs(pw.qDetectable! - Math.sqrt(0.8)) < 1e-8, String(pw.qDetectable))
  // Against enumeration: at the detectable q the power reaches the target, just below it does not.
  const u = rng(5)
  for (let rep = 0; rep < 20; rep++) {
    const n = 2 + Math.floor(u() * 7)
    const qs = Array.from({ length: n }, () => 0.05 + u() * 0.2)
    const r = c2Power(qs, 0.05, 0.8)
    if (r.critical === null) {
      t.equal(r.qDetectable, null)
      continue
    }
    const brute = (q: number) =>
      bruteForcePmf(qs.map((p) => Math.max(p, q)))
        .slice(r.critical!)
        .reduce((a, b) => a + b, 0)
    t.ok(Math.abs(powerAt(qs, r.critical, 0.37) - brute(0.37)) < 1e-14)
    t.ok(brute(r.qDetectable!) >= 0.8 - 1e-12 && brute(r.qDetectable! - 1e-6) < 0.8, `n ${n}: q* ${r.qDetectable}`)
  }
  // The null itself: power at q = 0 is the test's size, <= alpha.
  t.ok(powerAt([0.2, 0.2, 0.2, 0.2, 0.2], criticalCount([0.2, 0.2, 0.2, 0.2, 0.2], 0.05)!, 0) <= 0.05)
})
