// The GD / gradient-flow loop (src/science/train-loop.ts) on a quadratic objective with a known
// Hessian: step rule, stop rules, checkpoint cadence, η = min(η_max, 0.5/λ_1), and resume equivalence.
import t from 'tap'
import type { Objective } from '../../src/science/objective.ts'
import { train, type LogRow, type LoopState, type TrainOptions } from '../../src/science/train-loop.ts'

/** L(θ) = ½ Σ a_i θ_i² + c: gradient a ⊙ θ, Hessian diag(a). */
function quadratic(a: number[], c = 0): Objective {
  const loss = (th: Float32Array): number => th.reduce((s, x, i) => s + 0.5 * a[i]! * x * x, c)
  return {
    size: a.length,
    workers: 1,
    backend: 'js',
    loss: async (th) => loss(th),
    gradient: async (th) => ({ loss: loss(th), grad: Float32Array.from(th, (x, i) => a[i]! * x) }),
    hvp: async (_th, v) => Float32Array.from(v, (x, i) => a[i]! * x),
    dispose: async () => undefined,
  }
}

interface Run {
  rows: LogRow[]
  ckpts: { iteration: number; theta: Float32Array; kind: string }[]
  states: LoopState[]
}
async function run(obj: Objective, start: LoopState, opts: TrainOptions) {
  const r: Run = { rows: [], ckpts: [], states: [] }
  const summary = await train(obj, start, opts, {
    atIterationStart: (s) => void r.states.push({ ...s, theta: s.theta.slice(), ...(s.warm ? { warm: s.warm.slice() } : {}) }),
    log: (row) => void r.rows.push(row),
    checkpoint: (iteration, theta, info) => void r.ckpts.push({ iteration, theta: theta.slice(), kind: info.kind }),
  })
  return { ...r, summary }
}

const gd: TrainOptions = { mode: 'gd', eta: 0.1, stopLoss: 0, maxIterations: 25, checkpointEvery: 10, logEvery: 5 }

t.test('gd: θ_{n+1} = θ_n − η g, cadence, max-iterations stop', async (t) => {
  const obj = quadratic([1, 4])
  const r = await run(obj, { iteration: 0, theta: Float32Array.from([1, 1]), t: 0 }, gd)
  t.equal(r.summary.stopReason, 'max-iterations')
  t.equal(r.summary.iterations, 25)
  // closed form: θ_n = (1 − η a)^n θ_0, in float32 steps
  const last = r.ckpts[r.ckpts.length - 1]!
  t.equal(last.iteration, 25)
  t.equal(last.kind, 'final')
  t.ok(Math.abs(last.theta[0]! - 0.9 ** 25) < 1e-6 && Math.abs(last.theta[1]! - 0.6 ** 25) < 1e-6, 'closed form')
  t.same(
    r.ckpts.map((c) => c.iteration),
    [0, 10, 20, 25],
  )
  t.same(
    r.rows.map((x) => x.iteration),
    [0, 5, 10, 15, 20, 25],
  )
  t.ok(Math.abs(r.rows[1]!.t - 0.5) < 1e-12, 't = nη')
  t.equal(r.rows[0]!.gradNorm, Math.hypot(1, 4))
  t.end()
})

t.test('gd: stops below the loss threshold; dense checkpoints for the first M', async (t) => {
  const obj = quadratic([1, 1])
  const r = await run(
    obj,
    { iteration: 0, theta: Float32Array.from([1, 0]), t: 0 },
    { ...gd, stopLoss: 0.1, maxIterations: 1000, denseEvery: 3, denseUntil: 7 },
  )
  // L_n = ½ 0.81^n < 0.1  <=>  n >= 8
  t.equal(r.summary.stopReason, 'loss-below-threshold')
  t.equal(r.summary.iterations, 8)
  t.same(
    r.ckpts.map((c) => [c.iteration, c.kind]),
    [
      [0, 'regular'],
      [3, 'dense'],
      [6, 'dense'],
      [8, 'final'],
    ],
  )
  const diverged = await run(quadratic([30]), { iteration: 0, theta: Float32Array.from([1]), t: 0 }, { ...gd, maxIterations: 100000 })
  t.equal(diverged.summary.stopReason, 'diverged', 'η λ = 3 > 2 blows up to Infinity')
  t.end()
})

t.test('gradient-flow: η_n = min(η_max, 0.5/λ_1), λ_1 logged every iteration', async (t) => {
  const obj = quadratic([20, 3, 1])
  const opts: TrainOptions = {
    mode: 'gradient-flow',
    eta: 0.1,
    stopLoss: 0,
    maxIterations: 12,
    checkpointEvery: 5,
    logEvery: 4,
    eigTol: 1e-6,
  }
  const r = await run(obj, { iteration: 0, theta: Float32Array.from([1, 1, 1]), t: 0 }, opts)
  t.equal(r.rows.length, 13, 'a row every iteration')
  for (const row of r.rows) {
    t.ok(Math.abs(row.lambda1! - 20) < 1e-3, `λ_1 ≈ 20 at ${row.iteration}`)
    t.ok(Math.abs(row.eta - 0.5 / row.lambda1!) < 1e-12, 'η = 0.5/λ_1 < η_max')
  }
  t.ok(r.rows.filter((x) => x.accuracy === undefined).length === 13, 'no accuracy hook, no accuracy')
  t.ok(Math.abs(r.rows[12]!.t - r.rows.slice(0, 12).reduce((s, x) => s + x.eta, 0)) < 1e-12, 't = Σ η_m')
  t.ok(r.rows[1]!.matvecs! <= r.rows[0]!.matvecs!, 'warm start costs no more than the cold one')
  const capped = await run(quadratic([1, 0.5]), { iteration: 0, theta: Float32Array.from([1, 1]), t: 0 }, { ...opts, eta: 0.01 })
  t.ok(
    capped.rows.every((x) => x.eta === 0.01),
    'η_max caps the step when 0.5/λ_1 is larger',
  )
  t.end()
})

t.test('resuming from any saved state gives bit-identical checkpoints and rows', async (t) => {
  for (const opts of [
    gd,
    { mode: 'gradient-flow', eta: 0.1, stopLoss: 0, maxIterations: 12, checkpointEvery: 5, logEvery: 4 } satisfies TrainOptions,
  ]) {
    const obj = quadratic([7, 3, 1, 0.2])
    const full = await run(obj, { iteration: 0, theta: Float32Array.from([1, -1, 0.5, 2]), t: 0 }, opts)
    const k = 7
    const resumed = await run(obj, full.states[k]!, opts)
    t.same(
      resumed.rows,
      full.rows.filter((x) => x.iteration >= k),
      `${opts.mode}: rows from ${k} on`,
    )
    const tail = full.ckpts.filter((c) => c.iteration >= k)
    t.equal(resumed.ckpts.length, tail.length)
    resumed.ckpts.forEach((c, i) =>
      t.same(Buffer.from(c.theta.buffer), Buffer.from(tail[i]!.theta.buffer), `${opts.mode}: checkpoint ${c.iteration} bytes`),
    )
  }
  t.end()
})

/** An objective whose curvature rises then falls as θ_0 decays from 1 to 0: λ(θ) = 1 + 40 θ_0 (1 − θ_0). */
function risingThenFalling(spike = 0): Objective {
  const lam = (th: Float32Array): number => 1 + 40 * th[0]! * (1 - th[0]!) + (th[0]! > 0.97 ? spike : 0)
  const loss = (th: Float32Array): number => 0.5 * th[0]! * th[0]!
  return {
    size: 2,
    workers: 1,
    backend: 'js',
    loss: async (th) => loss(th),
    gradient: async (th) => ({ loss: loss(th), grad: Float32Array.from([th[0]!, 0]) }),
    hvp: async (th, v) => Float32Array.from(v, (x) => lam(th) * x),
    dispose: async () => undefined,
  }
}

t.test('gradient-flow: peakDrop stops once λ_1 falls to a fraction of its running max (a certified peak)', async (t) => {
  const opts: TrainOptions = {
    mode: 'gradient-flow',
    eta: 0.05,
    stopLoss: 0,
    maxIterations: 5000,
    checkpointEvery: 1000,
    logEvery: 1000,
    eigTol: 1e-9,
    peakDrop: 0.8,
  }
  const r = await run(risingThenFalling(), { iteration: 0, theta: Float32Array.from([1, 0]), t: 0 }, opts)
  t.equal(r.summary.stopReason, 'peak-passed')
  const l = r.rows.map((x) => x.lambda1!)
  const last = l.length - 1
  const maxBefore = Math.max(...l.slice(0, last))
  t.ok(maxBefore > 10.9, `the peak (11 at θ_0 = 0.5) was seen: ${maxBefore}`)
  t.ok(l[last]! <= 0.8 * maxBefore, 'stopped at or below 0.8 of the running max')
  t.ok(l[last - 1]! > 0.8 * Math.max(...l.slice(0, last - 1)), 'and not earlier')
  t.equal(r.rows[last]!.stop, 'peak-passed')
  t.equal(r.rows[last]!.peakCertified, true)
  t.equal(r.rows[last - 1]!.stop, undefined, 'only the last row says why it stopped')
  const uncertified = await run(
    risingThenFalling(),
    { iteration: 0, theta: Float32Array.from([1, 0]), t: 0 },
    { ...opts, maxIterations: 5 },
  )
  t.equal(uncertified.rows[5]!.stop, 'max-iterations')
  t.equal(uncertified.rows[5]!.peakCertified, false, 'cut on the way up: not certified')
  // An initial spike of λ_1 (θ_0 > 0.97, the first iterations) would be taken for the peak without peakMinT.
  const spiked = await run(risingThenFalling(100), { iteration: 0, theta: Float32Array.from([1, 0]), t: 0 }, opts)
  t.ok(spiked.summary.iterations < 10, `without peakMinT the spike stops the run at once (${spiked.summary.iterations})`)
  t.ok(spiked.rows[spiked.rows.length - 1]!.lambda1! < 5, 'long before the real peak (11)')
  const guarded = await run(risingThenFalling(100), { iteration: 0, theta: Float32Array.from([1, 0]), t: 0 }, { ...opts, peakMinT: 0.05 })
  t.equal(guarded.summary.stopReason, 'peak-passed')
  const after = guarded.rows.filter((x) => x.t >= 0.05).map((x) => x.lambda1!)
  t.ok(Math.max(...after) > 10.9, `with peakMinT past the spike the run reaches the real peak (${Math.max(...after)})`)
  // resume carries the running max: restarting from a mid-run state stops at the same iteration
  const mid = r.states[Math.floor(r.states.length / 2)]!
  t.ok(mid.lambdaMax !== undefined, 'the state carries the running max')
  const resumed = await run(risingThenFalling(), mid, opts)
  t.equal(resumed.summary.iterations, r.summary.iterations, 'resume stops where the uninterrupted run did')
  t.end()
})
