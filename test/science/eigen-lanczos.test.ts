// Thick-restart Lanczos (src/science/eigen/lanczos.ts) against operators with KNOWN spectra,
// H = Q diag(lambda) Q^T applied in float32 arithmetic like a real HVP (known-spectrum.ts).
import t, { type Test } from 'tap'
import { knownSpectrum, subspaceDistance, type KnownSpectrum } from '../../src/science/eigen/known-spectrum.ts'
import { lanczos, topEigen } from '../../src/science/eigen/lanczos.ts'
import { createRng } from '../../src/science/rng.ts'
import type { EigenResult, MatVec } from '../../src/science/eigen/types.ts'
import { dot, norm, normalVector } from '../../src/science/eigen/vector-ops.ts'

const dim = 500
const frac = (i: number): number => (i * 0.6180339887) % 1
const spectrum = (f: (i: number) => number): number[] => Array.from({ length: dim }, (_, i) => f(i))
const bulk = (i: number): number => -1 + 4 * frac(i) // [-1, 3)

/** Named test spectra; the top 20 lie within a factor ~10 of lambda_1. */
export const spectra = {
  separated: spectrum((i) => (i < 20 ? 100 * 0.9 ** i : bulk(i))),
  // 9 near-equal top eigenvalues, as at the edge of stability across n_c - 1 = 9 eigenvectors.
  cluster: spectrum((i) => (i < 9 ? 100 * (1 - 1e-3 * i) : i < 20 ? 50 * 0.9 ** (i - 9) : bulk(i))),
  // Large negative eigenvalues that beat most of the top 20 in magnitude but must not appear.
  negative: spectrum((i) => (i < 20 ? 100 * 0.9 ** i : i < 23 ? -80 + 10 * (i - 20) : bulk(i))),
  // lambda_3 = lambda_4 exactly.
  degenerate: spectrum((i) => (i === 4 ? 100 * 0.9 ** 3 : i < 20 ? 100 * 0.9 ** i : bulk(i))),
  // CNN-like: a 9-cluster, one more outlier, then a power-law bulk running into the top 20.
  cnnLike: spectrum((i) => (i < 9 ? 100 * (1 - 1e-3 * i) : i < 10 ? 60 : i < dim - 50 ? 8 * (i - 9) ** -0.8 : -0.5 * frac(i))),
}

/** Indices of the k largest prescribed eigenvalues, in descending order. */
const topIndices = (values: ArrayLike<number>, k: number): number[] =>
  Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => (values[b] as number) - (values[a] as number))
    .slice(0, k)

async function explicitResidual(matvec: MatVec, value: number, v: Float32Array): Promise<number> {
  const hv = await matvec(v)
  let s = 0
  for (let i = 0; i < v.length; i++) s += ((hv[i] as number) - value * (v[i] as number)) ** 2
  return Math.sqrt(s)
}

/** Asserts the top-20 values to 1e-5 relative and residuals reported, small, and honest. */
async function checkTop20(t: Test, op: KnownSpectrum, r: EigenResult, tol: number): Promise<void> {
  const idx = topIndices(op.values, 20)
  // The float32 matvec's own rounding noise (~4e-7 of ||H|| measured on exact eigenvectors) bounds
  // how well an explicit residual can be measured.
  const noise = 1e-6 * Math.abs(op.values[idx[0] as number] as number)
  t.equal(r.values.length, 20)
  t.equal(r.converged, 20, 'all 20 converged')
  const relErr = Math.max(
    ...idx.map((j, i) => Math.abs((r.values[i] as number) - (op.values[j] as number)) / Math.abs(op.values[j] as number)),
  )
  t.ok(relErr <= 1e-5, `top-20 eigenvalues to 1e-5 relative (max ${relErr.toExponential(2)})`)
  for (let i = 0; i < 20; i++) {
    const value = r.values[i] as number
    const v = r.vectors[i] as Float32Array
    const reported = r.residuals[i] as number
    const actual = await explicitResidual(op.matvec, value, v)
    if (!(reported <= tol * Math.abs(value)) || Math.abs(actual - reported) > noise || Math.abs(norm(v) - 1) > 1e-6) {
      t.fail(`pair ${i}: reported residual ${reported}, explicit ${actual}, |v| = ${norm(v)}`)
      return
    }
  }
  t.pass('residuals within tol, equal to explicit ||Hv - lambda v|| up to the matvec noise, unit vectors')
}

t.test('top-20 of four known spectra to 1e-5 relative', async (t) => {
  for (const [name, values] of Object.entries(spectra)) {
    const op = knownSpectrum(values, 11)
    const r = await lanczos(op.matvec, dim, 20, { tol: 1e-5, maxMatvecs: 400 })
    t.comment(`${name}: ${r.matvecs} matvecs`)
    await checkTop20(t, op, r, 1e-5)
    const exact = topIndices(op.values, 20).map((j) => op.eigenvector(j))
    t.ok(subspaceDistance(exact, r.vectors) < 1e-4, `${name}: top-20 subspace`)
    if (name === 'separated') {
      const worst = Math.max(...exact.map((e, i) => subspaceDistance([e], [r.vectors[i] as Float32Array])))
      t.ok(worst < 1e-4, `separated: every eigenvector individually (sin angle ${worst.toExponential(2)})`)
    }
    if (name === 'cluster' || name === 'cnnLike') {
      // Inside the cluster eigenvectors are ill-determined (gaps 0.1); the 9-dim subspace is not (gap 40).
      const d = subspaceDistance(exact.slice(0, 9), r.vectors.slice(0, 9))
      t.ok(d < 1e-5, `${name}: the 9-dim top cluster subspace (sin angle ${d.toExponential(2)})`)
    }
    if (name === 'degenerate') {
      const d = subspaceDistance(exact.slice(3, 5), r.vectors.slice(3, 5))
      t.ok(d < 1e-5, `degenerate pair: both copies found, subspace sin angle ${d.toExponential(2)}`)
      t.equal(Math.abs((r.values[3] as number) - (r.values[4] as number)) <= 1e-5 * 73, true, 'equal pair values')
    }
    if (name === 'negative')
      t.ok(
        r.values.every((v) => v > 0),
        'no negative eigenvalue among the algebraic top 20',
      )
  }
})

t.test('default tolerance: relative residual <= 1e-3, within the matvec goal', async (t) => {
  const op = knownSpectrum(spectra.cnnLike, 12)
  const r = await lanczos(op.matvec, dim, 20)
  t.equal(r.converged, 20)
  const worst = Math.max(...r.residuals.map((x, i) => x / Math.abs(r.values[i] as number)))
  t.ok(worst <= 1e-3, `max relative residual ${worst.toExponential(2)}`)
  t.ok(r.matvecs <= 60, `${r.matvecs} matvecs for the top 20 of a CNN-like spectrum`)
})

t.test('thick restarts: a basis of k + 4 vectors still converges', async (t) => {
  const op = knownSpectrum(spectra.cnnLike, 13)
  const big = await lanczos(op.matvec, dim, 20, { tol: 1e-5 })
  const small = await lanczos(op.matvec, dim, 20, { tol: 1e-5, maxBasis: 24, maxMatvecs: 2000 })
  t.comment(`matvecs: basis 50 -> ${big.matvecs}, basis 24 -> ${small.matvecs}`)
  t.ok(small.matvecs > 24, 'restarted at least once')
  await checkTop20(t, op, small, 1e-5)
})

t.test('exact multiplicities beyond the Krylov space: a 3-fold eigenvalue', async (t) => {
  const values = Array.from({ length: 60 }, (_, i) => (i < 3 ? 5 : i < 5 ? 2 : 0.5 * frac(i)))
  const op = knownSpectrum(values, 14)
  const r = await lanczos(op.matvec, 60, 5, { tol: 1e-6, maxMatvecs: 300 })
  t.same(
    r.values.map((v) => Math.round(v * 1e4) / 1e4),
    [5, 5, 5, 2, 2],
    `found ${r.values.join(', ')}`,
  )
  const exact = [0, 1, 2].map((j) => op.eigenvector(j))
  t.ok(subspaceDistance(exact, r.vectors.slice(0, 3)) < 1e-5, '3-dim eigenspace recovered')
})

t.test('dim <= basis: the whole space, exact', async (t) => {
  const op = knownSpectrum([3, -1, 2, 0.5, 7, 1], 15)
  const r = await lanczos(op.matvec, 6, 3, { tol: 1e-12 })
  t.ok(r.matvecs <= 6)
  t.ok(
    r.values.every((v, i) => Math.abs(v - ([7, 3, 2][i] as number)) < 1e-5),
    `values ${r.values.join(', ')}`,
  )
})

t.test('deterministic: same seed -> identical bits; another seed -> same answer', async (t) => {
  const op = knownSpectrum(spectra.cluster, 16)
  const a = await lanczos(op.matvec, dim, 20, { seed: 7 })
  const b = await lanczos(op.matvec, dim, 20, { seed: 7 })
  t.same(a.values, b.values)
  t.same(a.residuals, b.residuals)
  t.ok(
    a.vectors.every((v, i) => Buffer.from(v.buffer).equals(Buffer.from((b.vectors[i] as Float32Array).buffer))),
    'vector bits',
  )
  const c = await lanczos(op.matvec, dim, 20, { seed: 8 })
  t.not(c.values[12], a.values[12], 'another start vector rounds differently')
  t.ok(c.values.every((v, i) => Math.abs(v - (a.values[i] as number)) <= 1e-3 * Math.abs(v)))
})

/** H + eps w w^T for a seeded unit w: a slightly moved Hessian. */
function perturbed(op: KnownSpectrum, eps: number): MatVec {
  const w = normalVector(createRng(99), op.dim)
  const n = norm(w)
  return async (v) => {
    const y = Float32Array.from(await op.matvec(v))
    const d = (eps * dot(w, v)) / (n * n)
    for (let i = 0; i < y.length; i++) y[i] = (y[i] as number) + d * (w[i] as number)
    return y
  }
}

t.test('warm start from the previous eigenvectors on a perturbed operator', async (t) => {
  const op = knownSpectrum(spectra.cnnLike, 17)
  const before = await lanczos(op.matvec, dim, 20)
  const moved = perturbed(op, 0.1)
  const cold = await lanczos(moved, dim, 20, { seed: 3 })
  const warm = await lanczos(moved, dim, 20, { start: before.vectors })
  t.comment(`top-20: cold ${cold.matvecs} matvecs, warm ${warm.matvecs}`)
  t.equal(warm.converged, 20)
  t.ok(warm.matvecs <= 0.75 * cold.matvecs, 'warm start saves at least a quarter')
  t.ok(
    warm.values.every((v, i) => Math.abs(v - (cold.values[i] as number)) <= 1e-4 * Math.abs(v)),
    'same eigenvalues',
  )

  const sep = knownSpectrum(spectra.separated, 18)
  const top0 = await topEigen(sep.matvec, dim)
  const movedSep = perturbed(sep, 0.1)
  const topCold = await topEigen(movedSep, dim, { seed: 3 })
  const topWarm = await topEigen(movedSep, dim, { start: top0.vector })
  t.comment(`lambda_1: cold ${topCold.matvecs} matvecs, warm ${topWarm.matvecs}`)
  t.ok(topWarm.converged && topWarm.matvecs <= 3 && topCold.matvecs >= 3 * topWarm.matvecs, 'warm lambda_1 in a few matvecs')
  t.ok(Math.abs(topWarm.value - topCold.value) <= 1e-5 * topCold.value, `${topWarm.value} vs ${topCold.value}`)
  t.ok(topWarm.residual <= 1e-3 * topWarm.value)
})

t.test('progress, argument and operator checks', async (t) => {
  const op = knownSpectrum(spectra.separated, 19)
  const seen: number[] = []
  await lanczos(op.matvec, dim, 3, { onProgress: ({ matvecs }) => seen.push(matvecs) })
  t.same(
    seen,
    seen.map((_, i) => i + 1),
    'one report per matvec',
  )
  const r = await lanczos(op.matvec, dim, 20, { maxMatvecs: 10 })
  t.equal(r.matvecs, 10, 'budget respected')
  t.ok(r.converged < 20, 'and the shortfall is reported')
  await t.rejects(lanczos(op.matvec, dim, 0), RangeError)
  await t.rejects(lanczos(op.matvec, dim, dim + 1), RangeError)
  await t.rejects(
    lanczos(() => new Float32Array(3), dim, 2),
    RangeError,
  )
  await t.rejects(lanczos(op.matvec, dim, 2, { start: [new Float32Array(4)] }), RangeError)
})
