// Deflated power iteration (src/science/eigen/power.ts, the paper's section 3.3 method) on the same
// kind of known spectra as Lanczos, asserting what it really does: fine on separated eigenvalues
// at a large matvec cost, mixing inside a near-degenerate cluster, magnitude- not algebraic-order.
import t from 'tap'
import { knownSpectrum, subspaceDistance } from '../../src/science/eigen/known-spectrum.ts'
import { lanczos } from '../../src/science/eigen/lanczos.ts'
import { powerIteration } from '../../src/science/eigen/power.ts'

const dim = 300
const frac = (i: number): number => (i * 0.6180339887) % 1
const spectrum = (f: (i: number) => number): number[] => Array.from({ length: dim }, (_, i) => f(i))
const bulk = (i: number): number => -1 + 4 * frac(i)
const separated = spectrum((i) => (i < 20 ? 100 * 0.9 ** i : bulk(i)))
const cluster = spectrum((i) => (i < 9 ? 100 * (1 - 1e-3 * i) : i < 20 ? 50 * 0.9 ** (i - 9) : bulk(i)))
const negative = spectrum((i) => (i < 20 ? 100 * 0.9 ** i : i < 23 ? -80 + 10 * (i - 20) : bulk(i)))
const relResiduals = (r: { values: number[]; residuals: number[] }): number[] =>
  r.residuals.map((x, i) => x / Math.abs(r.values[i] as number))

t.test('separated spectrum: about right, at >= 10x the matvecs of Lanczos', async (t) => {
  const op = knownSpectrum(separated, 21)
  const lz = await lanczos(op.matvec, dim, 20)
  const pw = await powerIteration(op.matvec, dim, 10, { maxIterations: 300 })
  t.comment(`top-10: power ${pw.matvecs} matvecs (${pw.converged} converged); top-20 Lanczos ${lz.matvecs}`)
  // Deflating against vectors that are only accurate to residual/gap ~ 1e-2 leaves components of
  // the larger eigenvectors behind, which the iteration re-amplifies: later pairs stall.
  t.ok(pw.converged >= 6 && pw.converged < 10, `most, not all, of the 10 largest (10% apart) converge: ${pw.converged}`)
  t.ok(
    pw.values.every((v, i) => Math.abs(v - 100 * 0.9 ** i) <= (relResiduals(pw)[i] as number) * v),
    'each value within its own relative residual of the truth',
  )
  t.ok(
    pw.values.every((v, i) => Math.abs(v - 100 * 0.9 ** i) <= 1e-3 * v),
    'all to 1e-3 relative',
  )
  t.ok(pw.matvecs >= 10 * lz.matvecs, 'half the pairs cost >= 10x what Lanczos spends on all 20')
})

t.test("near-degenerate cluster: PyHessian's stopping rule stops early on mixtures", async (t) => {
  const op = knownSpectrum(cluster, 22)
  const exact9 = Array.from({ length: 9 }, (_, j) => op.eigenvector(j))
  const lz = await lanczos(op.matvec, dim, 20)
  const pw = await powerIteration(op.matvec, dim, 20, { criterion: 'eigenvalue-change' })
  const worst = Math.max(...relResiduals(pw))
  const mix = subspaceDistance(exact9, pw.vectors.slice(0, 9))
  const lzMix = subspaceDistance(exact9, lz.vectors.slice(0, 9))
  t.comment(
    `power: ${pw.matvecs} matvecs, max rel residual ${worst.toExponential(1)}, top-9 sin ${mix.toExponential(1)}; Lanczos ${lz.matvecs}, ${lzMix.toExponential(1)}`,
  )
  t.equal(pw.converged, 0, 'no pair meets the residual tolerance')
  t.ok(worst > 1e-2, 'relative residuals above 1e-2')
  t.ok(
    pw.values.slice(0, 9).every((v) => Math.abs(v - 99.6) < 1),
    'eigenvalues still land in the cluster',
  )
  t.ok(mix > 10 * lzMix && mix > 1e-3, 'top-9 subspace leaks into the rest of the spectrum')
})

t.test('near-degenerate cluster with the residual rule: the budget runs out', async (t) => {
  const op = knownSpectrum(cluster, 23)
  const pw = await powerIteration(op.matvec, dim, 20, { maxIterations: 200, maxMatvecs: 1500 })
  t.comment(`power: ${pw.matvecs} matvecs, ${pw.values.length} pairs, ${pw.converged} converged`)
  t.equal(pw.matvecs, 1500, 'cap hit')
  t.ok(pw.converged < 9, 'not even the cluster converges within 1500 matvecs')
})

t.test('a large negative eigenvalue: power iteration orders by magnitude', async (t) => {
  const op = knownSpectrum(negative, 24)
  const pw = await powerIteration(op.matvec, dim, 20, { criterion: 'eigenvalue-change' })
  const lz = await lanczos(op.matvec, dim, 20)
  t.ok(Math.min(...pw.values) < -50, `power's "top 20" include ${Math.min(...pw.values).toFixed(1)}`)
  t.ok(Math.min(...lz.values) > 10, 'Lanczos returns the algebraic top 20')
  t.ok(
    pw.values.every((v, i) => i === 0 || v <= (pw.values[i - 1] as number)),
    'still sorted descending',
  )
})

t.test('deterministic, budgeted, checked', async (t) => {
  const op = knownSpectrum(separated, 25)
  const a = await powerIteration(op.matvec, dim, 3, { seed: 4 })
  const b = await powerIteration(op.matvec, dim, 3, { seed: 4 })
  t.same(a.values, b.values)
  t.ok(a.vectors.every((v, i) => Buffer.from(v.buffer).equals(Buffer.from((b.vectors[i] as Float32Array).buffer))))
  const short = await powerIteration(op.matvec, dim, 5, { maxMatvecs: 7, maxIterations: 3 })
  t.equal(short.matvecs, 7)
  t.equal(short.values.length, 3, 'pairs not started are not returned')
  await t.rejects(powerIteration(op.matvec, dim, 0), RangeError)
  await t.rejects(
    powerIteration(() => new Float32Array(2), dim, 1),
    RangeError,
  )
})
