// Telemetry (src/science/telemetry.ts) against hand-computed cases and closed forms on quadratics.
import t from 'tap'
import {
  directionalScan,
  maxStableRate,
  projections,
  quadraticStepChange,
  rho,
  splitGradient,
  stepLossChange,
} from '../../src/science/telemetry.ts'

const f32 = (...x: number[]): Float32Array => Float32Array.from(x)
const s2 = Math.SQRT1_2

t.test('projections d_i = h_i . g', (t) => {
  const g = f32(3, 4, 12)
  t.same(projections(g, [f32(1, 0, 0), f32(0, 1, 0), f32(0, 0, -1)]), [3, 4, -12])
  const [d] = projections(g, [f32(s2, s2, 0)])
  t.ok(Math.abs((d as number) - 7 * Math.fround(s2)) < 1e-12, 'tilted unit vector: (3 + 4) / sqrt(2)')
  t.same(projections(g, []), [])
  t.end()
})

t.test('splitGradient: P_top g + P_bulk g = g, orthogonal parts, norms', (t) => {
  const g = f32(3, 4, 12)
  const s = splitGradient(g, [f32(1, 0, 0)])
  t.same(Array.from(s.top), [3, 0, 0])
  t.same(Array.from(s.bulk), [0, 4, 12])
  t.equal(s.topNorm, 3)
  t.equal(s.bulkNorm, Math.sqrt(160))
  t.same(s.coefficients, [3])

  const two = splitGradient(g, [f32(s2, s2, 0), f32(s2, -s2, 0)])
  t.ok(Math.abs(two.topNorm - 5) < 1e-6 && Math.abs(two.bulkNorm - 12) < 1e-6, 'a rotated basis of the same plane')
  t.ok(Math.abs((two.top[0] as number) - 3) < 1e-6 && Math.abs((two.top[1] as number) - 4) < 1e-6)
  t.ok(Math.abs(two.topNorm ** 2 + two.bulkNorm ** 2 - 169) < 1e-5, 'Pythagoras')

  const none = splitGradient(g, [])
  t.equal(none.topNorm, 0)
  t.same(Array.from(none.bulk), [3, 4, 12], 'empty top subspace: all bulk')
  t.end()
})

t.test('reductions accumulate in float64', (t) => {
  // One million entries of 1e-4 plus a 1: a float32 running sum of squares would stall near 1.
  const n = 1_000_000
  const g = new Float32Array(n).fill(1e-4)
  g[0] = 1
  const e0 = new Float32Array(n)
  e0[0] = 1
  const s = splitGradient(g, [e0])
  const expected = Math.sqrt((n - 1) * Math.fround(1e-4) ** 2)
  t.ok(Math.abs(s.bulkNorm - expected) <= 1e-9 * expected, `bulk norm ${s.bulkNorm} vs ${expected}`)
  let f32sum = 0
  for (let i = 1; i < n; i++) f32sum = Math.fround(f32sum + Math.fround((g[i] as number) ** 2))
  t.ok(Math.abs(Math.sqrt(f32sum) - expected) > 1e-4 * expected, 'where a float32 accumulator is visibly off')
  t.equal(s.topNorm, 1)
  t.end()
})

t.test('rho and the maximum stable learning rate (section 3.2)', (t) => {
  t.equal(maxStableRate(100), 0.02)
  t.equal(rho(0.02, 100), 1, 'lambda = 2 / eta is the edge of stability')
  t.ok(Math.abs(rho(0.001, 693) - 0.3465) < 1e-15)
  t.equal(rho(0.01, 50) * maxStableRate(50), 0.01, 'rho * eta* = eta')
  t.end()
})

// L(theta) = 1/2 theta^T A theta - b^T theta with A = diag(lambda): eigenvectors e_i, g = A theta - b.
const lambda = [40, 10, 1, -2, 0.5]
const b = [1, -2, 0.5, 3, -1]
const quad = (theta: Float32Array): number =>
  lambda.reduce((s, l, i) => s + 0.5 * l * (theta[i] as number) ** 2 - (b[i] as number) * (theta[i] as number), 0)
const theta = f32(0.3, -0.2, 0.7, 0.1, -0.4)
const grad = Float32Array.from(lambda, (l, i) => l * (theta[i] as number) - (b[i] as number))

t.test('stepLossChange: moving the weights on a quadratic matches the closed form', async (t) => {
  for (const eta of [0.001, 0.02, 0.05, 0.1]) {
    // Closed form with the float32-rounded moved weights: Delta L = L(theta - eta g) - L(theta).
    const moved = Float32Array.from(theta, (x, i) => x - eta * (grad[i] as number))
    const exact = quad(moved) - quad(theta)
    const measured = await stepLossChange(quad, theta, grad, eta)
    t.ok(Math.abs(measured - exact) <= 1e-12, `eta ${eta}: ${measured} vs ${exact}`)
    // And the section 3.2 formula eta sum d_i^2 (eta lambda_i / 2 - 1), exact for a quadratic.
    const taylor = quadraticStepChange(eta, Array.from(grad), lambda)
    t.ok(Math.abs(measured - taylor) <= 1e-6 * Math.max(1, Math.abs(taylor)), `eta ${eta}: Taylor ${taylor}`)
  }
  // Past eta* = 2 / 40 the top direction alone makes the loss go UP (Table 1's top-subspace step).
  const top = splitGradient(grad, [f32(1, 0, 0, 0, 0)])
  t.ok((await stepLossChange(quad, theta, top.top, 0.1)) > 0, 'rho_1 = 2: top step increases the loss')
  t.ok((await stepLossChange(quad, theta, top.top, 0.02)) < 0, 'rho_1 = 0.4: top step decreases it')
})

t.test('stepLossChange: baseline saves one evaluation; lengths checked', async (t) => {
  let calls = 0
  const counted = (x: Float32Array): number => {
    calls++
    return quad(x)
  }
  await stepLossChange(counted, theta, grad, 0.01, quad(theta))
  t.equal(calls, 1)
  await t.rejects(stepLossChange(counted, theta, f32(1), 0.01), RangeError)
})

t.test('directionalScan: L(theta + Delta h) - L(theta) along an eigenvector, and a cusp', async (t) => {
  const deltas = [-0.003, -0.001, 0, 0.001, 0.003]
  const h = f32(1, 0, 0, 0, 0)
  const scan = await directionalScan(quad, theta, h, deltas)
  t.equal(scan.base, quad(theta))
  t.same(scan.deltas, deltas)
  scan.changes.forEach((c, i) => {
    const d = deltas[i] as number
    const moved = Float32Array.from(theta, (x, j) => (j === 0 ? x + d : x))
    t.ok(Math.abs(c - (quad(moved) - quad(theta))) <= 1e-12, `Delta ${d}: ${c}`)
    t.ok(Math.abs(c - (d * (grad[0] as number) + 0.5 * 40 * d * d)) <= 1e-6, 'Delta h.g + Delta^2 lambda / 2')
  })
  // A vertical cusp, F = |x|^(1/2) (section 3.1): the scan shows sqrt(|Delta|), unbounded slope at 0.
  const cusp = (x: Float32Array): number => Math.sqrt(Math.abs(x[0] as number))
  const c = await directionalScan(cusp, f32(0), f32(1), [-1e-4, 1e-4, 4e-4])
  t.ok(c.changes.every((v, i) => Math.abs(v - Math.sqrt(Math.abs([1e-4, 1e-4, 4e-4][i] as number))) < 1e-6))
  // The loss may keep what it is given: every point gets its own array.
  const seen: Float32Array[] = []
  await directionalScan((x) => (seen.push(x), 0), theta, h, [1, 2])
  t.equal(seen.length, 3, 'base + one per Delta')
  t.not(seen[1], seen[2])
  t.equal(seen[1]?.[0], Math.fround(Math.fround(0.3) + 1))
  t.equal(seen[2]?.[0], Math.fround(Math.fround(0.3) + 2))
  await t.rejects(directionalScan(quad, theta, f32(1), [0]), RangeError)
})
