/**
 * The training loop of paper §4: full-batch gradient descent without momentum on the whole
 * training set, θ_{n+1} = θ_n − η_n g(θ_n). Mode 'gd' (§4.1) uses a fixed η and stops when the
 * training loss drops below `stopLoss` (0.1) or after `maxIterations` (40/η); mode
 * 'gradient-flow' (§4.2) approximates dθ/dt = −g by computing λ_1(θ_n) every iteration, warm-
 * started from the previous h_1 (eigen/lanczos.ts `topEigen`, a few HVPs instead of a full solve),
 * and stepping with η_n = min(η_max, c/λ_1), c = 0.5. Time is t_n = Σ_{m<n} η_m (t = nη for 'gd').
 *
 * Pure over an `Objective` (loss/gradient/HVP) plus hooks: the caller decides where log rows,
 * checkpoints and resume states go. Determinism: every iteration is a function of (θ_n, t_n, and
 * in gradient-flow the warm start h_1 of iteration n−1) only, all carried in `LoopState`, so a run
 * restarted from a state handed to `atIterationStart` continues bit for bit as if never stopped
 * (the HVPs and gradients are deterministic for fixed chunks and backend, objective.ts).
 */
import { topEigen } from './eigen/lanczos.ts'
import type { Objective } from './objective.ts'

export type TrainMode = 'gd' | 'gradient-flow'

/** How to train (all fixed by the stage's params). */
export interface TrainOptions {
  mode: TrainMode
  /** 'gd': the learning rate; 'gradient-flow': η_max. */
  eta: number
  /** Stop when L(θ_n) < stopLoss (paper: 0.1). */
  stopLoss: number
  /** Stop at iteration n = maxIterations (paper §4.1: 40/η). */
  maxIterations: number
  /** Checkpoint when n % checkpointEvery === 0 (§4.1: 1/η; §4.2: 100). */
  checkpointEvery: number
  /** Extra checkpoints when n % denseEvery === 0 and n <= denseUntil (§4.1's every-10-iterations run). */
  denseEvery?: number
  denseUntil?: number
  /** Log a row when n % logEvery === 0 (gradient-flow logs λ_1 every iteration regardless). */
  logEvery: number
  /** Gradient flow: η_n = min(η_max, flowFactor / λ_1) (§4.2: 0.5). */
  flowFactor?: number
  /** Gradient flow: topEigen tolerance / matvec budget per iteration / seed. */
  eigTol?: number
  eigMaxMatvecs?: number
  eigSeed?: number
  /**
   * Gradient flow: also stop once λ_1 <= peakDrop * (its running maximum), i.e. the peak of λ_1 is
   * behind the run (a certified peak, §5.4's "peak λ_1"); undefined: no such rule.
   */
  peakDrop?: number
  /** Gradient flow: the running maximum of peakDrop counts only iterations with t_n >= peakMinT (default 0),
   *  so an initial spike of λ_1 (tanh, §5.4) is not taken for the peak. */
  peakMinT?: number
}

/** Everything iteration n depends on: hand it back to `train` to resume. */
export interface LoopState {
  iteration: number
  theta: Float32Array
  /** t_n = Σ_{m<n} η_m. */
  t: number
  /** Gradient flow: h_1 of iteration n − 1 (the warm start), absent at n = 0 or in 'gd'. */
  warm?: Float32Array
  /** Gradient flow with peakDrop: the running maximum of λ_1 over iterations < n with t >= peakMinT. */
  lambdaMax?: number
}

/** One telemetry row (JSONL line) for iteration n. */
export interface LogRow {
  iteration: number
  t: number
  loss: number
  /** Training accuracy at θ_n (only when the row falls on logEvery and a hook computes it). */
  accuracy?: number
  thetaNorm: number
  gradNorm: number
  /** The step size used from θ_n (the last row: the one that would have been used). */
  eta: number
  /** Gradient flow: λ_1(θ_n), its residual and the HVPs spent. */
  lambda1?: number
  lambda1Residual?: number
  matvecs?: number
  /** The last row only: why the run stopped, and whether that certifies the peak of λ_1 (loss below
   *  the threshold, or λ_1 fallen to peakDrop of its running maximum). */
  stop?: StopReason
  peakCertified?: boolean
}

/** Where the loop's results go. All may be async; the loop awaits each. */
export interface TrainHooks {
  /** Called at the top of every iteration before any work: save `state` to resume from here. */
  atIterationStart?(state: LoopState): Promise<void> | void
  log(row: LogRow): Promise<void> | void
  /** θ_n at a checkpoint iteration; `final` for the last iteration (also checkpointed). */
  checkpoint(
    iteration: number,
    theta: Float32Array,
    info: { t: number; loss: number; final: boolean; kind: 'regular' | 'dense' | 'final' },
  ): Promise<void> | void
  accuracy?(theta: Float32Array): Promise<number> | number
  progress?(fraction: number, message: string): void
}

export type StopReason = 'loss-below-threshold' | 'peak-passed' | 'max-iterations' | 'diverged'

/** How the run ended. */
export interface TrainSummary {
  iterations: number
  t: number
  finalLoss: number
  stopReason: StopReason
  checkpoints: number
}

/** ||x||_2 in float64. */
export function norm2(x: Float32Array): number {
  let s = 0
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!
  return Math.sqrt(s)
}

/**
 * Trains from `start` (θ_0 with iteration 0, or a saved LoopState) until a stop rule holds.
 * θ is never mutated in place: each step makes a new float32 vector, rounded once from float64.
 */
export async function train(objective: Objective, start: LoopState, opts: TrainOptions, hooks: TrainHooks): Promise<TrainSummary> {
  if (!(opts.eta > 0)) throw new RangeError(`train: eta must be > 0, got ${opts.eta}`)
  if (!Number.isInteger(opts.maxIterations) || opts.maxIterations < 0)
    throw new RangeError(`train: maxIterations must be a non-negative integer`)
  if (!Number.isInteger(opts.checkpointEvery) || opts.checkpointEvery < 1)
    throw new RangeError(`train: checkpointEvery must be a positive integer`)
  const flow = opts.mode === 'gradient-flow'
  const c = opts.flowFactor ?? 0.5
  let { iteration: n, theta, t } = start
  let warm = start.warm
  let lambdaMax = start.lambdaMax
  let checkpoints = 0
  for (;;) {
    const state: LoopState = warm === undefined ? { iteration: n, theta, t } : { iteration: n, theta, t, warm }
    if (lambdaMax !== undefined) state.lambdaMax = lambdaMax
    await hooks.atIterationStart?.(state)
    const { loss, grad } = await objective.gradient(theta) // g(θ_n) [P]
    let eta = opts.eta
    let eig: { value: number; residual: number; matvecs: number } | undefined
    if (flow) {
      const th = theta
      const top = await topEigen((v) => objective.hvp(th, v), objective.size, {
        ...(warm !== undefined ? { start: warm } : {}),
        ...(opts.eigTol !== undefined ? { tol: opts.eigTol } : {}),
        ...(opts.eigMaxMatvecs !== undefined ? { maxMatvecs: opts.eigMaxMatvecs } : {}),
        seed: opts.eigSeed ?? 0,
      })
      warm = top.vector
      eig = { value: top.value, residual: top.residual, matvecs: top.matvecs }
      eta = top.value > 0 ? Math.min(opts.eta, c / top.value) : opts.eta // §4.2: min(η_max, 0.5/λ_1)
    }
    const diverged = !Number.isFinite(loss)
    const peakPassed = eig !== undefined && opts.peakDrop !== undefined && lambdaMax !== undefined && eig.value <= opts.peakDrop * lambdaMax
    if (eig !== undefined && opts.peakDrop !== undefined && t >= (opts.peakMinT ?? 0) && (lambdaMax === undefined || eig.value > lambdaMax))
      lambdaMax = eig.value
    const stop: StopReason | undefined = diverged
      ? 'diverged'
      : loss < opts.stopLoss
        ? 'loss-below-threshold'
        : peakPassed
          ? 'peak-passed'
          : n >= opts.maxIterations
            ? 'max-iterations'
            : undefined
    const onLog = n % opts.logEvery === 0 || stop !== undefined
    if (onLog || flow) {
      const row: LogRow = { iteration: n, t, loss, thetaNorm: norm2(theta), gradNorm: norm2(grad), eta }
      if (onLog && hooks.accuracy) row.accuracy = await hooks.accuracy(theta)
      if (eig) {
        row.lambda1 = eig.value
        row.lambda1Residual = eig.residual
        row.matvecs = eig.matvecs
      }
      if (stop !== undefined) {
        row.stop = stop
        row.peakCertified = stop === 'loss-below-threshold' || stop === 'peak-passed'
      }
      await hooks.log(row)
    }
    const regular = n % opts.checkpointEvery === 0
    const dense = opts.denseEvery !== undefined && n % opts.denseEvery === 0 && n <= (opts.denseUntil ?? Infinity)
    if (regular || dense || stop !== undefined) {
      await hooks.checkpoint(n, theta, { t, loss, final: stop !== undefined, kind: regular ? 'regular' : dense ? 'dense' : 'final' })
      checkpoints++
    }
    hooks.progress?.(
      Math.min(1, n / Math.max(1, opts.maxIterations)),
      `iteration ${n}, loss ${loss.toPrecision(4)}${eig ? `, λ1 ${eig.value.toPrecision(4)}` : ''}`,
    )
    if (stop !== undefined) return { iterations: n, t, finalLoss: loss, stopReason: stop, checkpoints }
    const next = new Float32Array(theta.length)
    for (let i = 0; i < next.length; i++) next[i] = theta[i]! - eta * grad[i]!
    theta = next
    n++
    t = flow ? t + eta : n * opts.eta
  }
}
