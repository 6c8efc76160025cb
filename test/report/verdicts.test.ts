// The verdict logic on synthetic results: all four claims supported on results built to agree with
// the paper, and each verdict flipped (to not supported, and to inconclusive) by changing one thing.
import t from 'tap'
import type { Claim } from '../../src/report/claims.ts'
import type { StageResults } from '../../src/report/records.ts'
import { combine, judgeAll, judgeC1, judgeC2, judgeC3, judgeC4 } from '../../src/report/verdicts.ts'
import { probe, repoClaims, scan, supportedResults, flow } from './fixtures.ts'

const claims = repoClaims()
const claim = (id: string): Claim => claims.find((c) => c.id === id)!

t.test('all supported on results that agree with the paper', async (t) => {
  const vs = judgeAll(claims, supportedResults())
  t.same(vs.map((v) => [v.id, v.verdict]), [['C1', 'supported'], ['C2', 'supported'], ['C3', 'supported'], ['C4', 'supported']], vs.map((v) => `${v.id}: ${v.reason}`).join('\n'))
  for (const v of vs) t.ok(v.instances.length > 0, `${v.id} names its instances`)
})

t.test('combine: worst verdict wins; none is inconclusive', async (t) => {
  t.equal(combine([]).verdict, 'inconclusive')
  t.equal(combine([{ name: 'a', verdict: 'supported', detail: '' }, { name: 'b', verdict: 'inconclusive', detail: 'x' }]).verdict, 'inconclusive')
  const c = combine([{ name: 'a', verdict: 'not supported', detail: 'bad' }, { name: 'b', verdict: 'inconclusive', detail: 'x' }])
  t.equal(c.verdict, 'not supported')
  t.equal(c.reason, 'a: bad')
})

t.test('C1 flips', async (t) => {
  const r = supportedResults()
  // rho_10 at the smallest eta rises above 0.25: the bulk is on the edge too.
  const high: StageResults = { ...r, probes: r.probes.map((p) => (p.role === 'grid' && p.eta === 0.06 && p.activation === 'tanh' ? { ...p, rho: p.rho.map((x, i) => (i === 9 ? 0.4 : x)) } : p)) }
  const v = judgeC1(claim('C1'), high)
  t.equal(v.verdict, 'not supported')
  t.match(v.reason, /mlp-tanh eta=0.06: max rho_9 = .*max rho_10 = 0.4/)
  // rho_9 never reaches 0.69.
  const low: StageResults = { ...r, probes: r.probes.map((p) => (p.role === 'classes' && p.classes === 3 ? { ...p, rho: p.rho.map((x) => x * 0.5) } : p)) }
  t.match(judgeC1(claim('C1'), low).reason, /3 classes/)
  t.equal(judgeC1(claim('C1'), low).verdict, 'not supported')
  // k < n_c: rho_{n_c} not measured -> inconclusive; no class runs -> inconclusive.
  const shortK: StageResults = { ...r, probes: r.probes.map((p) => ({ ...p, rho: p.rho.slice(0, p.classes - 1) })) }
  t.equal(judgeC1(claim('C1'), shortK).verdict, 'inconclusive')
  const noClasses: StageResults = { ...r, probes: r.probes.filter((p) => p.role !== 'classes') }
  const nc = judgeC1(claim('C1'), noClasses)
  t.equal(nc.verdict, 'inconclusive')
  t.match(nc.reason, /no 2\/3\/5-class probes/)
})

t.test('C2 flips', async (t) => {
  const r = supportedResults()
  const shift = (k: number): StageResults => ({
    ...r,
    probes: r.probes.map((p) => {
      if (p.role !== 'dense') return p
      const j = p.iteration / 10
      return { ...p, d: [j >= 4 + k ? 5 : 1, j >= 4 + k ? 2.5 : 0.5, 0.1, 0.1, 0.1] }
    }),
  })
  t.equal(judgeC2(claim('C2'), shift(1)).verdict, 'supported', 'one probe later is within tolerance')
  const late = judgeC2(claim('C2'), shift(4))
  t.equal(late.verdict, 'not supported')
  t.match(late.ours, /0\/2 coincide/)
  // No jump at all.
  const flat: StageResults = { ...r, probes: r.probes.map((p) => (p.role === 'dense' ? { ...p, d: [1, 1, 1, 1, 1] } : p)) }
  t.equal(judgeC2(claim('C2'), flat).verdict, 'not supported')
  // Never reaches the edge; already on it at the first probe; too few probes: inconclusive.
  const never: StageResults = { ...r, probes: r.probes.map((p) => (p.role === 'dense' ? { ...p, rho: p.rho.map((x) => Math.min(x, 0.5)) } : p)) }
  t.match(judgeC2(claim('C2'), never).reason, /never reached 0.9/)
  t.equal(judgeC2(claim('C2'), never).verdict, 'inconclusive')
  const early: StageResults = { ...r, probes: r.probes.map((p) => (p.role === 'dense' ? { ...p, rho: p.rho.map((x, i) => (i < 2 ? 0.99 : x)) } : p)) }
  t.equal(judgeC2(claim('C2'), early).verdict, 'inconclusive')
  const few: StageResults = { ...r, probes: r.probes.filter((p) => p.role !== 'dense' || p.iteration < 20) }
  t.equal(judgeC2(claim('C2'), few).verdict, 'inconclusive')
})

t.test('C3 flips', async (t) => {
  const r = supportedResults()
  // The top step lowers the loss reliably (mean well below 0, small std): not supported.
  const topLearns: StageResults = { ...r, probes: r.probes.map((p) => (p.role === 'grid' ? { ...p, lossChangeTop: -0.01 - 0.0001 * (p.iteration % 3) } : p)) }
  const v = judgeC3(claim('C3'), topLearns)
  t.equal(v.verdict, 'not supported')
  t.match(v.reason, /the top step lowers the loss/)
  // The bulk step raises the loss in one combination.
  const bulkUp: StageResults = { ...r, probes: r.probes.map((p) => (p.role === 'grid' && p.eta === 0.2 && p.activation === 'relu' ? { ...p, lossChangeBulk: 0.001 } : p)) }
  t.equal(judgeC3(claim('C3'), bulkUp).verdict, 'not supported')
  // Too few iterations at the edge: every combination has < 3 probes with rho_9 > 0.7.
  const few: StageResults = { ...r, probes: r.probes.filter((p) => p.role !== 'grid' || p.iteration * p.eta < 4) }
  const f = judgeC3(claim('C3'), few)
  t.equal(f.verdict, 'inconclusive')
  t.match(f.reason, /too few iterations at the edge of stability/)
})

t.test('C4 flips', async (t) => {
  const r = supportedResults()
  const v = judgeC4(claim('C4'), r)
  t.equal(v.verdict, 'supported', v.reason)
  t.ok((v.measured.r2_mean as number) > 0.99, 'mean-reduced R^2 of a linear peak')
  // lambda_sum = n_D lambda_mean is quadratic in n_D here, so its straight line fits worse: both are reported.
  t.ok((v.measured.r2_sum as number) > 0.9 && (v.measured.r2_sum as number) < (v.measured.r2_mean as number), 'sum-reduced R^2 reported beside it')
  // Peak lambda_1 flat in n_D (noisy): not linear.
  const flat: StageResults = { ...r, flows: [flow('relu', 100, 50), flow('relu', 200, 80), flow('relu', 400, 55)] }
  const nf = judgeC4(claim('C4'), flat)
  t.equal(nf.verdict, 'not supported')
  t.match(nf.reason, /peak lambda_1 vs n_D/)
  // ||theta|| grows 5%.
  const grow: StageResults = { ...r, runs: [flow('relu', 500, 10, 0.05)] }
  t.match(judgeC4(claim('C4'), grow).reason, /\|\|theta\|\|: max relative change 5%/)
  // The cusp does not sharpen.
  const blunt: StageResults = { ...r, scans: [scan(100, 1.1), scan(200, 1.5), scan(400, 2)] }
  t.match(judgeC4(claim('C4'), blunt).reason, /does not sharpen/)
  // Two sizes: inconclusive (a line through two points has R^2 = 1).
  const two: StageResults = { ...r, flows: r.flows.filter((f) => f.nData !== 400) }
  const tw = judgeC4(claim('C4'), two)
  t.equal(tw.verdict, 'inconclusive')
  t.match(tw.reason, /only 2 dataset size/)
})

t.test('probe helper sanity: rho_{n_c-1} and rho_{n_c} where the fixture puts them', async (t) => {
  const p = probe({ eta: 0.1, iteration: 0, rhoTop: 0.9, rhoBulk: 0.2 })
  t.ok(p.rho[8]! >= 0.9 && p.rho[9]! <= 0.2)
})

t.test('C1: a run probed fewer than min_probes times is inconclusive, not a verdict', async (t) => {
  const r = supportedResults()
  const few: StageResults = { ...r, probes: r.probes.filter((p) => p.role !== 'classes' || p.classes !== 5 || p.iteration < 10) }
  const v = judgeC1(claim('C1'), few)
  t.equal(v.verdict, 'inconclusive')
  t.match(v.reason, /5 classes: .*too few probes over training \(needs 3\)/)
})
