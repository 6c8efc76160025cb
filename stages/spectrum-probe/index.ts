/**
 * Stage `spectrum-probe` (paper §4.1's telemetry, §5.1-5.3): for ONE checkpoint of a train run,
 * the top-k Hessian eigenpairs (Lanczos, or the paper's deflated power iteration, §3.3) with
 * their residuals; ρ_i = η/η_i* = ηλ_i/2; d_i = h_i·g; ||P_top g|| and ||P_bulk g|| with the top
 * subspace = the top n_c − 1 eigenvectors (§3.2); and the change in the training loss from ONE
 * step of size η along −P_top g and along −P_bulk g, computed by moving the weights and
 * re-evaluating the loss ("not by using the Taylor approximation", §4.1), next to the quadratic
 * prediction. One instance per checkpoint (a matrix axis), so probes run in parallel and are
 * cached independently. Which checkpoint: `iteration`, or `checkpoint` = k meaning iteration
 * k · (the run's checkpoint cadence), i.e. time t = k for the paper's 1/η cadence. A checkpoint
 * the run never reached (it stopped early) gives `present: false` and no numbers.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defineStage, type StageContext } from '../../src/harness/stage-api.ts'
import { lanczos } from '../../src/science/eigen/lanczos.ts'
import { powerIteration } from '../../src/science/eigen/power.ts'
import type { EigenResult } from '../../src/science/eigen/types.ts'
import {
  edgeSetSize,
  projections,
  quadraticStepChange,
  rho,
  sketchVectors,
  splitGradient,
  stepLossChange,
} from '../../src/science/telemetry.ts'
import { norm2 } from '../../src/science/train-loop.ts'
import {
  loadDataset,
  openObjective,
  readCheckpoint,
  readCheckpointIndex,
  singleInput,
  throttled,
  type CheckpointIndex,
  type EngineParams,
} from '../shared/io.ts'
import { checkCoordinates, type RunCoordinates } from '../shared/coordinates.ts'

/** Params (schemas/stages/spectrum-probe.params.schema.json). */
export interface ProbeParams extends EngineParams, RunCoordinates {
  checkpoint?: number
  iteration?: number
  k: number
  solver: 'lanczos' | 'power'
  tol: number
  max_matvecs: number
  eig_seed: number
  /** The edge set: eigenvectors with rho_i >= edge_threshold (the paper's Table 1 cut is 0.7). */
  edge_threshold: number
  /** > 0: write a random sketch S h_i (m = sketch_rows) of each eigenvector, for overlap matching. */
  sketch_rows: number
  sketch_seed: number
}

/** The iteration a probe's params select from the run's index. */
export function selectedIteration(
  p: Pick<ProbeParams, 'checkpoint' | 'iteration'>,
  index: Pick<CheckpointIndex, 'checkpointEvery'>,
): number {
  if (p.iteration !== undefined) return p.iteration
  if (p.checkpoint !== undefined) return p.checkpoint * index.checkpointEvery
  throw new Error('spectrum-probe needs a checkpoint (index k: iteration k * cadence) or an iteration param')
}

export default defineStage(async (ctx: StageContext<ProbeParams>) => {
  const p = ctx.params
  const ckptDir = singleInput(ctx.inputs, 'checkpoints').path
  const index = await readCheckpointIndex(ckptDir)
  checkCoordinates(p, index)
  const iteration = selectedIteration(p, index)
  const entry = index.entries.find((e) => e.iteration === iteration)
  const outFile = join(ctx.outDir, 'probe.json')
  if (entry === undefined) {
    const last = index.entries[index.entries.length - 1]
    const reason =
      last !== undefined && last.iteration < iteration
        ? `the run stopped at iteration ${last.iteration}`
        : `no checkpoint at iteration ${iteration}`
    await writeFile(outFile, `${JSON.stringify({ present: false, iteration, reason }, null, 2)}\n`)
    ctx.log(`iteration ${iteration}: ${reason}`)
    return { present: false, iteration, reason }
  }

  const ck = await readCheckpoint(ckptDir, entry)
  const { data, classes } = await loadDataset(singleInput(ctx.inputs, 'data').path, ctx.inputs.manifest?.[0]?.path)
  if (classes !== ck.spec.classes)
    throw new Error(`the dataset has ${classes} classes but the checkpoint's model has ${ck.spec.classes}: wrong data dep?`)
  const eta = index.eta
  const theta = ck.theta // [P]
  const objective = await openObjective(ck.spec, data, p, ctx.env)
  try {
    const { loss, grad } = await objective.gradient(theta) // L(θ), g [P]
    const report = throttled(ctx.progress)
    const matvec = (v: Float32Array): Promise<Float32Array> => objective.hvp(theta, v)
    const onProgress = ({ matvecs, converged }: { matvecs: number; converged: number }): void =>
      report(Math.min(0.95, matvecs / p.max_matvecs), `${matvecs} HVPs, ${converged}/${p.k} eigenpairs converged`)
    const k = Math.min(p.k, objective.size)
    const eig: EigenResult =
      p.solver === 'power'
        ? await powerIteration(matvec, objective.size, k, { tol: p.tol, maxMatvecs: p.max_matvecs, seed: p.eig_seed, onProgress })
        : await lanczos(matvec, objective.size, k, { tol: p.tol, maxMatvecs: p.max_matvecs, seed: p.eig_seed, onProgress })
    const nTop = Math.max(0, Math.min(classes - 1, eig.vectors.length)) // top subspace: n_c − 1 eigenvectors (§3.2)
    const split = splitGradient(grad, eig.vectors.slice(0, nTop))
    const d = projections(grad, eig.vectors) // d_i = h_i · g
    ctx.progress(0.96, 'loss change of top and bulk steps')
    const topChange = await stepLossChange((t) => objective.loss(t), theta, split.top, eta, loss)
    const bulkChange = await stepLossChange((t) => objective.loss(t), theta, split.bulk, eta, loss)
    const fullChange = await stepLossChange((t) => objective.loss(t), theta, grad, eta, loss)
    const lambdaTop = eig.values.slice(0, nTop)
    // The edge set (#{i : rho_i >= edge_threshold}) as an alternative top subspace: its own split and steps.
    const rhos = eig.values.map((l) => rho(eta, l))
    const edgeDim = Math.min(edgeSetSize(rhos, p.edge_threshold), eig.vectors.length)
    let edge: { top: number; bulk: number; topNorm: number; bulkNorm: number } | null = null
    if (edgeDim > 0) {
      const es = splitGradient(grad, eig.vectors.slice(0, edgeDim))
      edge = {
        top: await stepLossChange((t) => objective.loss(t), theta, es.top, eta, loss),
        bulk: await stepLossChange((t) => objective.loss(t), theta, es.bulk, eta, loss),
        topNorm: es.topNorm,
        bulkNorm: es.bulkNorm,
      }
    }
    let sketch: { seed: number; rows: number[][] } | undefined
    if (p.sketch_rows > 0) {
      ctx.progress(0.98, `sketching ${eig.vectors.length} eigenvectors (${p.sketch_rows} rows)`)
      sketch = { seed: p.sketch_seed, rows: sketchVectors(eig.vectors, p.sketch_rows, p.sketch_seed) }
    }
    const detail = {
      present: true,
      iteration,
      t: entry.t,
      kind: entry.kind,
      eta,
      classes,
      n_data: data.n,
      seed: index.seed,
      arch: ck.spec.arch, // the checkpoint's model, so figures label every probe series by it
      activation: ck.spec.activation,
      parameters: objective.size,
      solver: p.solver,
      loss,
      grad_norm: norm2(grad),
      theta_norm: norm2(theta),
      eigenvalues: eig.values,
      residuals: eig.residuals,
      converged: eig.converged,
      matvecs: eig.matvecs,
      rho: rhos,
      d,
      vectors_k: eig.vectors.length,
      top_dim: nTop,
      top_norm: split.topNorm,
      bulk_norm: split.bulkNorm,
      loss_change_top: topChange,
      loss_change_bulk: bulkChange,
      loss_change_full: fullChange,
      predicted_change_top: quadraticStepChange(eta, split.coefficients, lambdaTop),
      edge_threshold: p.edge_threshold,
      edge_dim: edgeDim,
      edge_dim_capped: edgeDim > 0 && edgeDim === eig.vectors.length,
      edge_top_norm: edge?.topNorm ?? null,
      edge_bulk_norm: edge?.bulkNorm ?? null,
      loss_change_top_edge: edge?.top ?? null,
      loss_change_bulk_edge: edge?.bulk ?? null,
      ...(sketch !== undefined ? { sketch } : {}),
    }
    await writeFile(outFile, `${JSON.stringify(detail, null, 2)}\n`)
    const rhoTop = nTop > 0 ? rho(eta, eig.values[nTop - 1]!) : null // ρ_{n_c−1}
    const rhoNext = eig.values[nTop] !== undefined ? rho(eta, eig.values[nTop]!) : null // ρ_{n_c}
    return {
      present: true,
      iteration,
      t: entry.t,
      eta,
      loss,
      lambda_1: eig.values[0] ?? null,
      rho_1: eig.values[0] !== undefined ? rho(eta, eig.values[0]) : null,
      rho_top_last: rhoTop,
      rho_bulk_first: rhoNext,
      top_norm: split.topNorm,
      bulk_norm: split.bulkNorm,
      loss_change_top: topChange,
      loss_change_bulk: bulkChange,
      converged: eig.converged,
      k,
      matvecs: eig.matvecs,
    }
  } finally {
    await objective.dispose()
  }
})
