// The experiment-design helpers of src/science/telemetry.ts: the curvature-scaled log grid and the
// power-law fit of the cusp scan (checked against known functions |x|^p), the random sketch used to
// match eigenvectors across probes by overlap (checked against known vectors), and the edge-set size.
import t from 'tap'
import { edgeSetSize, evenPart, fitPowerLaw, logDeltaGrid, sketchVectors } from '../../src/science/telemetry.ts'

t.test('logDeltaGrid: symmetric, sorted, one exact 0, magnitudes scale * 10^u', (t) => {
  const g = logDeltaGrid(0.1, -3, 0, 4)
  t.equal(g.length, 9)
  const mags = g.slice(5)
  ;[1e-4, 1e-3, 1e-2, 1e-1].forEach((want, i) => t.ok(Math.abs(mags[i]! - want) / want < 1e-12, `|D| ${want}`))
  t.equal(g[4], 0)
  g.forEach((x, i) => t.equal(g[g.length - 1 - i], -x === 0 ? 0 : -x, 'every +D has its -D'))
  for (let i = 1; i < g.length; i++) t.ok(g[i]! > g[i - 1]!, 'ascending')
  t.throws(() => logDeltaGrid(0, -3, 0, 4), RangeError)
  t.throws(() => logDeltaGrid(1, 0, -1, 4), RangeError)
  t.throws(() => logDeltaGrid(1, -1, 0, 1), RangeError)
  t.end()
})

t.test('fitPowerLaw recovers p of c|x|^p, ignoring an odd (gradient) term and points below the floor', (t) => {
  const grid = logDeltaGrid(0.05, -3, 0, 13)
  for (const p of [2, 1, 0.5]) {
    const changes = grid.map((x) => 3 * Math.abs(x) ** p + 0.7 * x) // the odd part g.h Delta cancels in the even part
    const fit = fitPowerLaw(grid, changes)!
    t.ok(Math.abs(fit.exponent - p) < 1e-9, `exponent ${fit.exponent} = ${p}`)
    t.ok(Math.abs(fit.coefficient - 3) < 1e-8, `coefficient ${fit.coefficient}`)
    t.ok(fit.r2 > 1 - 1e-12)
    t.equal(fit.points, 13)
    fit.local_exponents.forEach((q) => t.ok(Math.abs(q - p) < 1e-9))
  }
  // a kink (|x|) below D = 1e-3 and a quadratic above it: the local exponents show the change of regime
  const mixed = grid.map((x) => (Math.abs(x) < 1e-3 ? 0.5 * Math.abs(x) : 500 * x * x))
  const fm = fitPowerLaw(grid, mixed)!
  t.ok(fm.local_exponents[0]! < 1.01 && fm.local_exponents[fm.local_exponents.length - 1]! > 1.99, 'kink then quadratic')
  // a floor drops the small points
  const quad = grid.map((x) => x * x)
  const floored = fitPowerLaw(grid, quad, 1e-6)!
  t.ok(floored.points < 13 && floored.d_min * floored.d_min > 1e-6, `only points above the floor (${floored.points})`)
  t.equal(
    fitPowerLaw(
      grid,
      grid.map(() => 0),
    ),
    null,
    'nothing above the floor: no fit',
  )
  const ev = evenPart([-2, -1, 0, 1, 2, 3], [5, 1, 0, 3, 7, 100])
  t.same(ev, { d: [1, 2], e: [2, 6] }, 'even part pairs +D with -D, skips a D without its -D')
  t.end()
})

t.test('sketchVectors: overlaps of known vectors survive the sketch to ~1/sqrt(m); deterministic by seed', (t) => {
  const dim = 3000
  // two orthonormal vectors a, b and c = cos(0.6) a + sin(0.6) b (overlap with a: 0.825, with b: 0.565)
  const a = new Float32Array(dim)
  const b = new Float32Array(dim)
  for (let i = 0; i < dim; i++) {
    a[i] = (i % 2 === 0 ? 1 : -1) / Math.sqrt(dim)
    b[i] = (i < dim / 2 ? 1 : -1) / Math.sqrt(dim)
  }
  const c = Float32Array.from(a, (x, i) => Math.cos(0.6) * x + Math.sin(0.6) * b[i]!)
  const m = 1024
  const [sa, sb, sc] = sketchVectors([a, b, c], m, 7)
  const dot = (x: number[], y: number[]): number => x.reduce((s, v, i) => s + v * y[i]!, 0)
  const tol = 4 / Math.sqrt(m)
  t.ok(Math.abs(dot(sa!, sa!) - 1) < tol, `|Sa|^2 ~ 1: ${dot(sa!, sa!)}`)
  t.ok(Math.abs(dot(sa!, sb!)) < tol, `Sa.Sb ~ 0: ${dot(sa!, sb!)}`)
  t.ok(Math.abs(dot(sa!, sc!) - Math.cos(0.6)) < tol, `Sa.Sc ~ cos 0.6: ${dot(sa!, sc!)}`)
  t.ok(Math.abs(dot(sb!, sc!) - Math.sin(0.6)) < tol, `Sb.Sc ~ sin 0.6: ${dot(sb!, sc!)}`)
  // the same seed gives the same S: sketching separately equals sketching together
  const [sc2] = sketchVectors([c], m, 7)
  t.same(sc2, sc)
  const [sc3] = sketchVectors([c], m, 8)
  t.not(sc3![0], sc![0], 'another seed, another S')
  t.throws(() => sketchVectors([a], 0, 1), RangeError)
  t.throws(() => sketchVectors([a, new Float32Array(3)], 4, 1), RangeError)
  t.end()
})

t.test('edgeSetSize counts rho_i >= threshold', (t) => {
  t.equal(edgeSetSize([1.1, 0.95, 0.7, 0.69, 0.1], 0.7), 3)
  t.equal(edgeSetSize([0.5, 0.4], 0.7), 0)
  t.end()
})
