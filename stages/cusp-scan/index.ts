/**
 * Stage `cusp-scan` (paper §5.4, Figure 6 left): in a gradient-flow run (§4.2), θ* = the saved
 * snapshot of peak λ_1 (λ_1 was logged every iteration; snapshots every 100), h_1 there by
 * Lanczos, and L(θ* + Δh_1) − L(θ*) for Δ on a uniform grid over [−Δ_max, Δ_max] (paper: 0.003),
 * moving the weights and re-evaluating the loss. Also ||θ|| over training from the telemetry, to
 * check the paper's "||θ||_2 increased by much less than 1%". Output `scan.json`: the grid, the
 * loss changes, λ_1 and its residual at θ*, and the ||θ|| series.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defineStage, type StageContext } from '../../src/harness/stage-api.ts'
import { lanczos } from '../../src/science/eigen/lanczos.ts'
import { directionalScan, fitPowerLaw, logDeltaGrid } from '../../src/science/telemetry.ts'
import type { LogRow } from '../../src/science/train-loop.ts'
import { checkCoordinates, type RunCoordinates } from '../shared/coordinates.ts'
import {
  loadDataset,
  openObjective,
  readCheckpoint,
  readCheckpointIndex,
  readTelemetry,
  singleInput,
  throttled,
  type CheckpointEntry,
  type EngineParams,
} from '../shared/io.ts'

/** Params (schemas/stages/cusp-scan.params.schema.json). */
export interface ScanParams extends EngineParams, RunCoordinates {
  spacing: 'linear' | 'log'
  delta_max: number
  points: number
  log_min: number
  log_max: number
  tol: number
  max_matvecs: number
  eig_seed: number
}

/** `points` values evenly spaced over [−max, max] (the middle one exactly 0 when points is odd). */
export function deltaGrid(max: number, points: number): number[] {
  const mid = (points - 1) / 2
  return Array.from({ length: points }, (_, i) => (i === mid ? 0 : (max * (i - mid)) / mid))
}

/** The snapshot whose logged λ_1 is largest (first on ties); undefined when none has λ_1 logged. */
export function peakSnapshot(
  entries: readonly CheckpointEntry[],
  rows: readonly LogRow[],
): { entry: CheckpointEntry; lambda1: number } | undefined {
  const byIter = new Map(rows.filter((r) => typeof r.lambda1 === 'number').map((r) => [r.iteration, r.lambda1 as number]))
  let best: { entry: CheckpointEntry; lambda1: number } | undefined
  for (const e of entries) {
    const l = byIter.get(e.iteration)
    if (l !== undefined && (best === undefined || l > best.lambda1)) best = { entry: e, lambda1: l }
  }
  return best
}

export default defineStage(async (ctx: StageContext<ScanParams>) => {
  const p = ctx.params
  const dir = singleInput(ctx.inputs, 'checkpoints').path
  const index = await readCheckpointIndex(dir)
  checkCoordinates(p, index)
  if (index.mode !== 'gradient-flow') ctx.log(`note: the run is mode ${index.mode}; λ_1 is logged only in gradient-flow runs`)
  const rows = await readTelemetry(singleInput(ctx.inputs, 'telemetry').path)
  const peak = peakSnapshot(index.entries, rows)
  if (peak === undefined) throw new Error('no snapshot has a logged λ_1: cusp-scan needs a gradient-flow train run (mode: gradient-flow)')
  let global = { iteration: 0, lambda1: -Infinity }
  for (const r of rows)
    if (typeof r.lambda1 === 'number' && r.lambda1 > global.lambda1) global = { iteration: r.iteration, lambda1: r.lambda1 }

  // ||θ|| over training (§5.4: "increased by much less than 1%").
  const norms = rows.map((r) => ({ iteration: r.iteration, t: r.t, theta_norm: r.thetaNorm }))
  const n0 = norms[0]?.theta_norm ?? NaN
  const maxRel = norms.reduce((m, r) => Math.max(m, Math.abs(r.theta_norm - n0) / n0), 0)

  const ck = await readCheckpoint(dir, peak.entry)
  const { data } = await loadDataset(singleInput(ctx.inputs, 'data').path, ctx.inputs.manifest?.[0]?.path)
  const objective = await openObjective(ck.spec, data, p, ctx.env)
  try {
    const theta = ck.theta // θ* [P]
    const report = throttled(ctx.progress)
    const eig = await lanczos((v) => objective.hvp(theta, v), objective.size, 1, {
      tol: p.tol,
      maxMatvecs: p.max_matvecs,
      seed: p.eig_seed,
      onProgress: ({ matvecs }) => report(Math.min(0.5, matvecs / p.max_matvecs / 2), `h_1: ${matvecs} HVPs`),
    })
    const h1 = eig.vectors[0]! // unit norm [P]
    // Log spacing: |D| = scale 10^u, scale = 1/sqrt(lambda_1(theta*)), so the grid follows the curvature.
    const lambda1 = eig.values[0]!
    const scale = p.spacing === 'log' ? 1 / Math.sqrt(Math.abs(lambda1)) : null
    const deltas = scale !== null ? logDeltaGrid(scale, p.log_min, p.log_max, p.points) : deltaGrid(p.delta_max, p.points)
    ctx.progress(0.5, `scanning ${deltas.length} points along h_1`)
    const scan = await directionalScan((t) => objective.loss(t), theta, h1, deltas)
    // The loss is a float64 sum of float32 chunk sums (chunk_size examples each): a change below
    // ~2^-23 * L * sqrt(chunk_size) is rounding, so the fit ignores it (x10 margin).
    const resolution = 2 ** -23 * Math.abs(scan.base) * Math.sqrt(p.chunk_size)
    const fit = fitPowerLaw(scan.deltas, scan.changes, 10 * resolution)
    const result = {
      peak_iteration: peak.entry.iteration,
      peak_t: peak.entry.t,
      peak_lambda_1_logged: peak.lambda1,
      global_peak_iteration: global.iteration,
      global_peak_lambda_1: global.lambda1,
      lambda_1: eig.values[0]!,
      residual: eig.residuals[0]!,
      converged: eig.converged === 1,
      activation: ck.spec.activation,
      seed: index.seed,
      spacing: p.spacing,
      delta_scale: scale,
      summed_in: `float64 over chunks of ${p.chunk_size} examples (each chunk's sum in float32)`,
      loss_resolution: resolution,
      fit,
      base_loss: scan.base,
      deltas: scan.deltas,
      changes: scan.changes,
      theta_norm_initial: n0,
      theta_norm_final: norms[norms.length - 1]?.theta_norm ?? NaN,
      theta_norm_max_rel_change: maxRel,
      n_data: data.n,
    }
    await writeFile(join(ctx.outDir, 'scan.json'), `${JSON.stringify({ ...result, theta_norms: norms }, null, 2)}\n`)
    return result
  } finally {
    await objective.dispose()
  }
})
