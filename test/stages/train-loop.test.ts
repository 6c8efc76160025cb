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

interface Run { rows: LogRow[]; ckpts: { iteration: number; theta: Float32Array; kind: string }[]; states: LoopState[] }
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
  t.same(r.ckpts.map((c) => c.iteration), [0, 10, 20, 25])
  t.same(r.rows.map((x) => x.iteration), [0, 5, 10, 15, 20, 25])
  t.ok(Math.abs(r.rows[1]!.t - 0.5) < 1e-12, 't = nη')
  t.equal(r.rows[0]!.gradNorm, Math.hypot(1, 4))
  t.end()
})

t.test('gd: stops below the loss threshold; dense checkpoints for the first M', async (t) => {
  const obj = quadratic([1, 1])
  const r = await run(obj, { iteration: 0, theta: Float32Array.from([1, 0]), t: 0 }, { ...gd, stopLoss: 0.1, maxIterations: 1000, denseEvery: 3, denseUntil: 7 })
  // L_n = ½ 0.81^n < 0.1  <=>  n >= 8
  t.equal(r.summary.stopReason, 'loss-below-threshold')
  t.equal(r.summary.iterations, 8)
  t.same(r.ckpts.map((c) => [c.iteration, c.kind]), [[0, 'regular'], [3, 'dense'], [6, 'dense'], [8, 'final']])
  const diverged = await run(quadratic([30]), { iteration: 0, theta: Float32Array.from([1]), t: 0 }, { ...gd, maxIterations: 100000 })
  t.equal(diverged.summary.stopReason, 'diverged', 'η λ = 3 > 2 blows up to Infinity')
  t.end()
})

t.test('gradient-flow: η_n = min(η_max, 0.5/λ_1), λ_1 logged every iteration', async (t) => {
  const obj = quadratic([20, 3, 1])
  const opts: TrainOptions = { mode: 'gradient-flow', eta: 0.1, stopLoss: 0, maxIterations: 12, checkpointEvery: 5, logEvery: 4, eigTol: 1e-6 }
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
  t.ok(capped.rows.every((x) => x.eta === 0.01), 'η_max caps the step when 0.5/λ_1 is larger')
  t.end()
})

t.test('resuming from any saved state gives bit-identical checkpoints and rows', async (t) => {
  for (const opts of [gd, { mode: 'gradient-flow', eta: 0.1, stopLoss: 0, maxIterations: 12, checkpointEvery: 5, logEvery: 4 } satisfies TrainOptions]) {
    const obj = quadratic([7, 3, 1, 0.2])
    const full = await run(obj, { iteration: 0, theta: Float32Array.from([1, -1, 0.5, 2]), t: 0 }, opts)
    const k = 7
    const resumed = await run(obj, full.states[k]!, opts)
    t.same(resumed.rows, full.rows.filter((x) => x.iteration >= k), `${opts.mode}: rows from ${k} on`)
    const tail = full.ckpts.filter((c) => c.iteration >= k)
    t.equal(resumed.ckpts.length, tail.length)
    resumed.ckpts.forEach((c, i) => t.same(Buffer.from(c.theta.buffer), Buffer.from(tail[i]!.theta.buffer), `${opts.mode}: checkpoint ${c.iteration} bytes`))
  }
  t.end()
})
