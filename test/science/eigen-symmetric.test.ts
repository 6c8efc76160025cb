// Jacobi eigen-solver (src/science/eigen/symmetric.ts) against matrices with known spectra:
// A = Q diag(lambda) Q^T built in float64 from a seeded orthogonal Q.
import t, { type Test } from 'tap'
import { createRng } from '../../src/science/rng.ts'
import { symmetricEigen } from '../../src/science/eigen/symmetric.ts'

/** Row-major Q diag(lambda) Q^T with Q from n seeded Householder reflections, and Q itself. */
function build(lambda: number[], seed: number): { a: Float64Array; q: Float64Array } {
  const n = lambda.length
  const rng = createRng(seed)
  const q = new Float64Array(n * n)
  for (let i = 0; i < n; i++) q[i * n + i] = 1
  for (let r = 0; r < n; r++) {
    const u = Array.from({ length: n }, () => rng.normal())
    const un = Math.hypot(...u)
    // Q <- Q (I - 2 u u^T)
    for (let i = 0; i < n; i++) {
      let d = 0
      for (let j = 0; j < n; j++) d += (q[i * n + j] as number) * (u[j] as number)
      for (let j = 0; j < n; j++) q[i * n + j] = (q[i * n + j] as number) - (2 * d * (u[j] as number)) / (un * un)
    }
  }
  const a = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0
      for (let l = 0; l < n; l++) s += (q[i * n + l] as number) * (lambda[l] as number) * (q[j * n + l] as number)
      a[i * n + j] = s
    }
  }
  return { a, q }
}

function check(t: Test, lambda: number[], seed: number, name: string): void {
  const n = lambda.length
  const { a } = build(lambda, seed)
  const { values, vectors } = symmetricEigen(a, n)
  const sorted = [...lambda].sort((x, y) => y - x)
  const scale = Math.max(...lambda.map(Math.abs))
  const maxErr = Math.max(...sorted.map((l, i) => Math.abs(l - (values[i] as number))))
  t.ok(maxErr <= 1e-12 * scale, `${name}: eigenvalues to 1e-12 of the norm (max err ${maxErr.toExponential(2)})`)
  // A s_j = lambda_j s_j and S^T S = I.
  let res = 0
  let orth = 0
  for (let j = 0; j < n; j++) {
    for (let i = 0; i < n; i++) {
      let s = 0
      for (let l = 0; l < n; l++) s += (a[i * n + l] as number) * (vectors[l * n + j] as number)
      res = Math.max(res, Math.abs(s - (values[j] as number) * (vectors[i * n + j] as number)))
    }
    for (let k = 0; k < n; k++) {
      let d = 0
      for (let l = 0; l < n; l++) d += (vectors[l * n + j] as number) * (vectors[l * n + k] as number)
      orth = Math.max(orth, Math.abs(d - (j === k ? 1 : 0)))
    }
  }
  t.ok(res <= 1e-12 * scale, `${name}: residuals at rounding level (${res.toExponential(2)})`)
  t.ok(orth <= 1e-12, `${name}: orthonormal eigenvectors (${orth.toExponential(2)})`)
  t.ok(
    values.every((v, i) => i === 0 || v <= (values[i - 1] as number)),
    `${name}: descending`,
  )
}

t.test('random spectra, mixed signs', (t) => {
  check(
    t,
    Array.from({ length: 30 }, (_, i) => Math.sin(i * 1.7) * 10 ** ((i % 5) - 2)),
    1,
    'mixed 30',
  )
  check(t, [3, -7, 0.5, 100, -100, 1e-9], 2, 'with a +-100 pair and a tiny one')
  t.end()
})

t.test('exact multiplicities and a tight cluster', (t) => {
  check(t, [5, 5, 5, 1, 1, -2, 0, 0], 3, 'degenerate')
  check(
    t,
    Array.from({ length: 12 }, (_, i) => (i < 9 ? 100 * (1 - 1e-3 * i) : i)),
    4,
    'edge-of-stability cluster',
  )
  t.end()
})

t.test('tiny relative eigenvalues keep their relative accuracy on a diagonal-dominant case', (t) => {
  // diag(1, 1e-10) coupled by 1e-14: the small eigenvalue is 1e-10 - 1e-28 ~ 1e-10 to full precision.
  const { values } = symmetricEigen([1, 1e-14, 1e-14, 1e-10], 2)
  t.ok(Math.abs((values[1] as number) - 1e-10) <= 1e-24, `small eigenvalue ${values[1]}`)
  t.end()
})

t.test('edge cases and argument checks', (t) => {
  t.same(Array.from(symmetricEigen([], 0).values), [])
  const one = symmetricEigen([4], 1)
  t.same([...one.values, ...one.vectors], [4, 1])
  const diag = symmetricEigen([1, 0, 0, 0, 3, 0, 0, 0, 2], 3)
  t.same(Array.from(diag.values), [3, 2, 1], 'diagonal input is sorted, no rotations needed')
  t.throws(() => symmetricEigen([1, 2, 3], 2), RangeError)
  const input = new Float64Array([2, 1, 1, 2])
  symmetricEigen(input, 2)
  t.same(Array.from(input), [2, 1, 1, 2], 'input untouched')
  t.end()
})
