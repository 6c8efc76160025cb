// Table 1 (paper §5.3) and the statistics under it, against hand-worked numbers: which iterations
// count (rho_{n_c-1} > 0.7, strictly), the omission of combinations with fewer than three, the
// sample standard deviation, and the least-squares line with its R^2.
import t from 'tap'
import { linearFit, mean, sampleStd, strictlyIncreasing } from '../../src/report/stats.ts'
import { computeTable1 } from '../../src/report/table1.ts'
import { cuspSharpness, peakSeries } from '../../src/report/singularity.ts'
import { flow, probe, scan } from './fixtures.ts'

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

t.test('Table 1: edge iterations, omission below three, sorted as printed', async (t) => {
  const at = (eta: number, iteration: number, rhoTop: number, top: number, bulk: number) => probe({ eta, iteration, rhoTop, rhoBulk: 0.1, top, bulk })
  const probes = [
    // eta 0.1: four probes, three strictly above 0.7 (0.7 itself does not count).
    at(0.1, 0, 0.7 / 1.02 ** 0, 9, 9), // rho_9 = 0.7 exactly: excluded
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
  const rows = computeTable1(probes)
  t.equal(rows.length, 2)
  const [r3, r1] = rows
  t.equal(r3!.eta, 0.3, 'larger eta first, as in the paper')
  t.same([r3!.included, r3!.atEdge, r3!.topMean], [false, 2, null])
  t.same([r1!.included, r1!.atEdge, r1!.probes], [true, 3, 4])
  t.ok(Math.abs(r1!.topMean! - 0.01) < 1e-15)
  t.ok(Math.abs(r1!.topStd! - 0.02) < 1e-15, String(r1!.topStd)) // std of [0.01, -0.01, 0.03] (ddof 1) = 0.02
  t.ok(Math.abs(r1!.bulkMean! + 0.003) < 1e-15)
  t.ok(Math.abs(r1!.bulkStd! - 0.001) < 1e-15)
  t.equal(r1!.instances.length, 3)
})

t.test('peak lambda_1 per size; cusp sharpness of |Delta|^p', async (t) => {
  const s = peakSeries([flow('relu', 100, 50), flow('relu', 300, 150), flow('tanh', 200, 9)], 'relu')
  t.same(s.points.map((p) => p.nData), [100, 300])
  t.ok(Math.abs(s.points[0]!.peakMean - 51) < 1e-9, 'peak = max of the logged rows')
  t.ok(Math.abs(s.points[1]!.peakSum - 300 * 151) < 1e-6)
  // kappa of a parabola is 1; of |Delta|^p it is (d_max / d_min)^(2 - p) = 10^(2-p) on this grid.
  t.ok(Math.abs(cuspSharpness(scan(1, 2))! - 1) < 1e-9)
  t.ok(Math.abs(cuspSharpness(scan(1, 1))! - 10) < 1e-9)
  t.equal(cuspSharpness({ deltas: [0, 0.001], changes: [0, 1] }), undefined)
})
