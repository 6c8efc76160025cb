// Table 1 (paper §5.3) and the statistics under it, against hand-worked and scipy numbers: which
// probes count (rho_{n_c-1} > threshold, strictly), the omission of combinations below the minimum
// with the reason, the paired top - bulk interval and its detectable difference, the edge-set table,
// the t quantiles, slope intervals, the seeded bootstrap, the Poisson-binomial tail, the cusp exponent.
import t from 'tap'
import {
  bootstrapInterval,
  detectableMean,
  linearFit,
  mean,
  poissonBinomialTail,
  quantile,
  sampleStd,
  slopeInterval,
  strictlyIncreasing,
  tInterval,
  tQuantile,
} from '../../src/report/stats.ts'
import { computeTable1, type Table1Options } from '../../src/report/table1.ts'
import { cuspExponent, cuspSharpness, peakSeries } from '../../src/report/singularity.ts'
import { flow, probe, scan } from './fixtures.ts'
import { parseTelemetry } from '../../src/report/records.ts'

const close = (a: number, b: number, tol: number): boolean => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b))

t.test('mean, sample std, least squares', async (t) => {
  t.equal(mean([1, 2, 3, 4]), 2.5)
  // numpy: np.std([1, 2, 3, 4], ddof=1) = 1.2909944487358056
  t.ok(Math.abs(sampleStd([1, 2, 3, 4]) - 1.2909944487358056) < 1e-15)
  t.equal(sampleStd([5]), 0)
  t.ok(Number.isNaN(mean([])))
  const exact = linearFit([1, 2, 3], [3, 5, 7])
  t.same([exact.intercept, exact.slope, exact.r2], [1, 2, 1])
  // y = [1, 3, 2] on x = [0, 1, 2]: slope 0.5, intercept 1.5, SS_res = 1.5, SS_tot = 2, R^2 = 0.25.
  const f = linearFit([0, 1, 2], [1, 3, 2])
  t.ok(Math.abs(f.slope - 0.5) < 1e-12 && Math.abs(f.intercept - 1.5) < 1e-12 && Math.abs(f.r2 - 0.25) < 1e-12, JSON.stringify(f))
  t.ok(Number.isNaN(linearFit([1], [1]).r2))
  t.ok(strictlyIncreasing([1, 2, 3]))
  t.notOk(strictlyIncreasing([1, 2, 2]))
})

t.test('t quantiles, intervals, detectable mean, slope interval (scipy oracle)', async (t) => {
  // scipy.stats.t.ppf(0.975, 4), t.ppf(0.975, 8), t.ppf(0.8, 8)
  t.ok(close(tQuantile(0.975, 4), 2.7764451051977934, 1e-8))
  t.ok(close(tQuantile(0.975, 8), 2.306004135204166, 1e-8))
  t.ok(close(tQuantile(0.8, 8), 0.8888895177670202, 1e-8))
  // scipy.stats.t.interval(0.95, 2, loc=mean, scale=std/sqrt(3)) of [0.01, -0.01, 0.03]
  const ci = tInterval([0.01, -0.01, 0.03], 0.95)
  t.ok(close(ci.lo, -0.0396827542350066, 1e-8) && close(ci.hi, 0.0596827542350066, 1e-8), JSON.stringify(ci))
  t.ok(Number.isNaN(tInterval([1], 0.95).lo))
  // (t_{0.975,8} + t_{0.8,8}) * 2 / 3
  t.ok(close(detectableMean(2, 9, 0.05, 0.8), ((2.306004135204166 + 0.8888895177670202) * 2) / 3, 1e-8))
  // scipy.stats.linregress([0,1,2,3],[1,3,2,5]): slope 1.1, stderr 0.5196152422706632; t.ppf(0.975, 2) = 4.302652729749462
  const s = slopeInterval([0, 1, 2, 3], [1, 3, 2, 5], 0.95)
  t.ok(close(s.slope, 1.1, 1e-12) && close(s.se, 0.5196152422706632, 1e-12))
  t.ok(close(s.lo, 1.1 - 4.302652729749462 * 0.5196152422706632, 1e-8))
})

t.test('quantile, seeded bootstrap, Poisson-binomial tail', async (t) => {
  t.equal(quantile([3, 1, 2, 4], 0.5), 2.5) // numpy.quantile([1,2,3,4], 0.5)
  t.equal(quantile([1, 2, 3, 4], 0.25), 1.75)
  const xs = [1, 2, 3, 4, 5, 6, 7, 8]
  const stat = (rng: () => number): number => mean(xs.map(() => xs[Math.floor(rng() * xs.length)]!))
  const a = bootstrapInterval(stat, { resamples: 500, seed: 's', level: 0.9 })
  const b = bootstrapInterval(stat, { resamples: 500, seed: 's', level: 0.9 })
  t.same(a, b, 'same seed, same interval')
  t.ok(a.lo < 4.5 && a.hi > 4.5 && a.lo > 2 && a.hi < 7, JSON.stringify(a))
  t.not(bootstrapInterval(stat, { resamples: 500, seed: 'other', level: 0.9 }).lo, a.lo)
  // Binomial(3, 0.5): P(X >= 2) = 0.5; P(X >= 0) = 1; two unequal p: P(both) = p1 p2.
  t.ok(close(poissonBinomialTail([0.5, 0.5, 0.5], 2), 0.5, 1e-15))
  t.equal(poissonBinomialTail([0.2, 0.7], 0), 1)
  t.ok(close(poissonBinomialTail([0.2, 0.7], 2), 0.14, 1e-15))
  t.ok(close(poissonBinomialTail([0.2, 0.7], 1), 1 - 0.8 * 0.3, 1e-15))
})

const OPTS: Table1Options = { rhoThreshold: 0.7, minIterations: 3, level: 0.95, power: 0.8 }

t.test('Table 1: edge probes, omission with the reason, paired interval, sorted as printed', async (t) => {
  const at = (eta: number, iteration: number, rhoTop: number, top: number, bulk: number) =>
    probe({ eta, iteration, rhoTop, rhoBulk: 0.1, top, bulk })
  const probes = [
    // eta 0.1: four probes, three strictly above 0.7 (0.7 itself does not count).
    at(0.1, 0, 0.7, 9, 9),
    at(0.1, 10, 0.9, 0.01, -0.002),
    at(0.1, 20, 0.95, -0.01, -0.004),
    at(0.1, 30, 0.99, 0.03, -0.003),
    // eta 0.3: only two at the edge: omitted.
    at(0.3, 0, 0.9, 1, -1),
    at(0.3, 10, 0.9, 1, -1),
    at(0.3, 20, 0.1, 1, -1),
  ]
  // The fixture scales rho_i for i < n_c - 1 above rhoTop; rho_9 (index 8) is rhoTop itself.
  t.equal(probes[0]!.rho[8], 0.7)
  const rows = computeTable1(probes, OPTS)
  t.equal(rows.length, 2)
  const [r3, r1] = rows
  t.equal(r3!.eta, 0.3, 'larger eta first, as in the paper')
  t.same([r3!.included, r3!.atEdge, r3!.topMean], [false, 2, null])
  t.equal(r3!.omitted, '2 probe(s) with rho_(n_c-1) > 0.7 after the transient; a row needs 3')
  t.same([r1!.included, r1!.atEdge, r1!.probes, r1!.omitted], [true, 3, 4, null])
  t.ok(Math.abs(r1!.topMean! - 0.01) < 1e-15)
  t.ok(Math.abs(r1!.topStd! - 0.02) < 1e-15, String(r1!.topStd)) // std of [0.01, -0.01, 0.03] (ddof 1) = 0.02
  t.ok(Math.abs(r1!.bulkMean! + 0.003) < 1e-15)
  t.ok(Math.abs(r1!.bulkStd! - 0.001) < 1e-15)
  // Paired differences [0.012, -0.006, 0.033]: mean 0.013, the t interval from scipy's formula.
  const d = tInterval([0.012, -0.006, 0.033], 0.95)
  t.ok(close(r1!.diffMean!, 0.013, 1e-12) && close(r1!.diffLo!, d.lo, 1e-12) && close(r1!.diffHi!, d.hi, 1e-12))
  t.ok(close(r1!.detectable!, detectableMean(d.sd, 3, 0.05, 0.8), 1e-12))
  t.equal(r1!.instances.length, 3)
  t.equal(r1!.definition, 'paper')
})

t.test('Table 1 with the edge set as the top; rows split by n_D', async (t) => {
  const p = (iteration: number, nData: number, edgeDim: number | null) => ({
    ...probe({ eta: 0.1, iteration, rhoTop: 0.9, rhoBulk: 0.1, nData }),
    edgeDim,
    lossChangeTopEdge: edgeDim === null ? null : 0.001 * iteration,
    lossChangeBulkEdge: edgeDim === null ? null : -0.002,
  })
  const probes = [p(1, 500, 2), p(2, 500, 2), p(3, 500, 0), p(4, 500, 2), p(1, 1000, null), p(2, 1000, null), p(3, 1000, null)]
  const paper = computeTable1(probes, OPTS, 'paper')
  t.same(
    paper.map((r) => [r.nData, r.atEdge, r.included]),
    [
      [500, 4, true],
      [1000, 3, true],
    ],
  )
  const edge = computeTable1(probes, OPTS, 'edge-set')
  t.same(
    edge.map((r) => [r.definition, r.nData, r.atEdge, r.included]),
    [['edge-set', 500, 3, true]],
    'an empty edge set does not count; probes without the fields are not in the table',
  )
  t.ok(close(edge[0]!.topMean!, (0.001 + 0.002 + 0.004) / 3, 1e-12))
})

t.test('peak lambda_1 per size; cusp sharpness and exponent of |Delta|^p', async (t) => {
  const rule = { tMin: 1, certLoss: 0.1, certDrop: 0.1 }
  const s = peakSeries([flow('relu', 100, 50), flow('relu', 300, 150), flow('tanh', 200, 9)], 'relu', rule)
  t.same(
    s.points.map((p) => p.nData),
    [100, 300],
  )
  t.ok(Math.abs(s.points[0]!.peakMean - 51) < 1e-9, 'peak = max of the logged rows')
  t.ok(Math.abs(s.points[1]!.peakSum - 300 * 151) < 1e-6)
  // claims.yaml's rule decides, not the train stage's own flag (its stop rule); the flag rides along.
  const flagged = { ...flow('relu', 100, 50), peakCertified: false }
  const fs = peakSeries([flagged], 'relu', rule)
  t.equal(fs.points.length, 1, 'certified by the rule (lambda_1 back to 1 from 51)')
  t.same([fs.runs[0]!.certified, fs.runs[0]!.stageCertified], [true, false])
  const cut = { ...flow('relu', 100, 50), peakCertified: true, rows: flow('relu', 100, 50).rows.slice(0, 6) } // ends at the peak
  t.equal(peakSeries([cut], 'relu', rule).points.length, 0, 'a stage flag does not certify a run the rule does not')
  // The train loop's telemetry names the flag peakCertified on its last row.
  const tel = parseTelemetry(
    [
      '{"iteration":0,"t":0,"loss":2,"thetaNorm":20,"lambda1":40}',
      '{"iteration":9,"t":1,"loss":0.09,"thetaNorm":20,"lambda1":30,"stop":"loss-below-threshold","peakCertified":true}',
    ].join('\n'),
    'train-flow@activation=relu,n_data=100,seed=0',
    { activation: 'relu', n_data: 100, seed: 0 },
  )
  t.equal(tel.peakCertified, true)
  // kappa of a parabola is 1; of |Delta|^p it is (d_max / d_min)^(2-p) = 10^(2-p) on this grid.
  t.ok(Math.abs(cuspSharpness(scan(1, 2))! - 1) < 1e-9)
  t.ok(Math.abs(cuspSharpness(scan(1, 1))! - 10) < 1e-9)
  t.equal(cuspSharpness({ deltas: [0, 0.001], changes: [0, 1] }), undefined)
  // The exponent of a |Delta|^p + b Delta: the odd (gradient) term cancels in the symmetric part.
  for (const p of [2, 1.5, 1, 0.5]) t.ok(close(cuspExponent(scan(1, p, 'relu', 3, 0.5), 0.95)!.slope, p, 1e-9), `p = ${p}`)
  // Changes below the scan's loss resolution are left out of the fit.
  const noisy = scan(1, 2)
  noisy.changes = noisy.deltas.map((d) => (Math.abs(d) < 0.0012 ? 1e-6 : d * d))
  t.notOk(close(cuspExponent(noisy, 0.95)!.slope, 2, 1e-3), 'the noise floor bends the fit')
  t.ok(close(cuspExponent({ ...noisy, lossResolution: 1e-6 }, 0.95)!.slope, 2, 1e-9), 'above the resolution: p = 2')
  t.equal(cuspExponent({ deltas: [-1, 0, 1], changes: [1, 0, 1] }, 0.95), undefined)
})
