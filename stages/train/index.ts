/**
 * Stage `train` (paper §4): full-batch gradient descent without momentum on the whole prepared
 * set from a seeded Kaiming init, in mode `gd` (§4.1: fixed η; stop at loss < 0.1 or 40/η
 * iterations; a checkpoint every 1/η iterations, optionally every m for the first M) or
 * `gradient-flow` (§4.2: η_n = min(η_max, 0.5/λ_1), λ_1 every iteration by warm-started Lanczos,
 * a snapshot every 100 iterations). Outputs: `checkpoints/` (index.json + one PyTorch-layout
 * safetensors file per snapshot, src/science/checkpoint.ts) and `telemetry.jsonl` (one row per
 * logged iteration: loss, accuracy, ||θ||, ||g||, η, and λ_1 in gradient flow).
 *
 * Resume: when the harness passes `ctx.resumeDir` (a directory private to this instance's
 * fingerprint, outside the store), the run writes its telemetry and checkpoints there as it goes
 * and saves a resume state (θ_n, t_n, the warm-start h_1, the telemetry length, the checkpoint
 * list) at the top of every checkpoint iteration and at least every 30 s. A rerun after a kill
 * restarts from that state; since each iteration depends only on the state, the outputs are bit
 * for bit those of an uninterrupted run. On success the files are linked into `outDir`; the
 * resume directory is left for the harness, which removes it only once it has published the
 * outputs. Without `resumeDir`, a temporary directory plays its part (and is removed).
 */
import { createHash } from 'node:crypto'
import { appendFile, copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeSafetensors, encodeSafetensors, tensor, type Tensor } from '../../src/data/safetensors.ts'
import { defineStage, type StageContext } from '../../src/harness/stage-api.ts'
import { datasetAccuracy } from '../../src/science/accuracy.ts'
import { encodeCheckpoint } from '../../src/science/checkpoint.ts'
import { initEngine } from '../../src/science/engine.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { norm2, train, type LoopState, type TrainOptions } from '../../src/science/train-loop.ts'
import { checkDataCoordinates } from '../shared/coordinates.ts'
import {
  checkpointFile,
  loadDataset,
  openObjective,
  singleInput,
  throttled,
  writeAtomic,
  type CheckpointEntry,
  type CheckpointIndex,
  type EngineParams,
} from '../shared/io.ts'

/** Params (schemas/stages/train.params.schema.json; defaults filled by the analyzer). */
export interface TrainParams extends EngineParams {
  arch: ModelSpec['arch']
  activation: ModelSpec['activation']
  width?: number
  hidden?: number[]
  pool?: 'avg' | 'max'
  seed: number
  mode: 'gd' | 'gradient-flow'
  eta: number
  stop_loss: number
  max_t: number
  max_iterations?: number
  checkpoint_every?: number
  dense_every?: number
  dense_until?: number
  log_every: number
  flow_factor: number
  eig_tol: number
  eig_max_matvecs: number
  peak_drop?: number
  peak_min_t: number
  /** Dataset coordinates (for matching in pipeline.yaml), checked against the data. */
  classes?: number
  n_data?: number
}

const STATE = 'state.safetensors'
const SAVE_SECONDS = 30

/** The model spec of this run: params plus the data's input shape and class count. */
export function specFor(p: TrainParams, inputShape: [number, number, number], classes: number): ModelSpec {
  const spec: ModelSpec = { arch: p.arch, activation: p.activation, inputShape, classes }
  if (p.width !== undefined) spec.width = p.width
  if (p.hidden !== undefined && p.arch === 'mlp') spec.hidden = p.hidden
  if (p.pool !== undefined && p.arch === 'cnn') spec.pool = p.pool
  return spec
}

/** The loop options the params mean (§4.1: 40/η iterations, checkpoints every 1/η; §4.2: every 100). */
export function trainOptions(p: TrainParams): TrainOptions {
  const flow = p.mode === 'gradient-flow'
  const o: TrainOptions = {
    mode: p.mode,
    eta: p.eta,
    stopLoss: p.stop_loss,
    maxIterations: p.max_iterations ?? Math.round(p.max_t / p.eta),
    checkpointEvery: p.checkpoint_every ?? (flow ? 100 : Math.max(1, Math.round(1 / p.eta))),
    logEvery: p.log_every,
    flowFactor: p.flow_factor,
    eigTol: p.eig_tol,
    eigMaxMatvecs: p.eig_max_matvecs,
    eigSeed: p.seed,
  }
  if (p.peak_drop !== undefined) {
    o.peakDrop = p.peak_drop
    o.peakMinT = p.peak_min_t
  }
  if (p.dense_every !== undefined) {
    o.denseEvery = p.dense_every
    o.denseUntil = p.dense_until ?? Infinity
  }
  return o
}

interface Saved {
  state: LoopState
  telemetryBytes: number
  entries: CheckpointEntry[]
}

/**
 * The resume state in `dir`, verified before use: it must decode, be for this run (`key`), and
 * agree with itself and with what is on disk (theta of the model's size, a finite t, an
 * iteration within the run, a telemetry prefix the file really has, every listed checkpoint
 * present). Anything else (a state truncated by a kill, a foreign or hand-edited file) is
 * discarded with the reason, and the run starts over: a damaged state never wedges the stage.
 */
async function loadState(
  dir: string,
  key: string,
  size: number,
  maxIterations: number,
): Promise<{ saved: Saved } | { discard: string } | undefined> {
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await readFile(join(dir, STATE)))
  } catch {
    return undefined
  }
  let decoded: ReturnType<typeof decodeSafetensors>
  try {
    decoded = decodeSafetensors(bytes, join(dir, STATE))
  } catch (e) {
    return { discard: `it does not decode (${e instanceof Error ? e.message : String(e)})` }
  }
  const { tensors, metadata } = decoded
  if (metadata.key !== key) return { discard: 'it belongs to other params or data' }
  const theta = tensors.theta
  if (theta?.dtype !== 'F32' || theta.data.length !== size) return { discard: `theta is not ${size} float32 values` }
  const iteration = Number(metadata.iteration)
  const t = Number(metadata.t)
  const telemetryBytes = Number(metadata.telemetryBytes)
  if (!Number.isInteger(iteration) || iteration < 0 || iteration > maxIterations)
    return { discard: `iteration ${String(metadata.iteration)} is not within the run` }
  if (!Number.isFinite(t) || t < 0) return { discard: `t ${String(metadata.t)} is not a finite time` }
  const onDisk = (await stat(join(dir, 'telemetry.jsonl')).catch(() => undefined))?.size ?? -1
  if (!Number.isInteger(telemetryBytes) || telemetryBytes < 0 || telemetryBytes > onDisk)
    return { discard: `the telemetry file has fewer than the ${String(metadata.telemetryBytes)} bytes it records` }
  let entries: CheckpointEntry[]
  try {
    entries = JSON.parse(metadata.entries ?? '[]') as CheckpointEntry[]
  } catch {
    return { discard: 'its checkpoint list is not JSON' }
  }
  if (!Array.isArray(entries)) return { discard: 'its checkpoint list is not a list' }
  for (const e of entries) {
    const ok =
      typeof e === 'object' && e !== null && typeof e.file === 'string' && /^[A-Za-z0-9._-]+$/.test(e.file) && Number.isInteger(e.iteration)
    if (
      !ok ||
      !(await stat(join(dir, 'checkpoints', e.file))
        .then((s) => s.isFile() && s.size > 0)
        .catch(() => false))
    ) {
      return { discard: `checkpoint ${ok ? e.file : JSON.stringify(e).slice(0, 80)} it lists is missing or invalid` }
    }
  }
  const state: LoopState = { iteration, theta: theta.data, t }
  if (tensors.warm !== undefined) {
    if (tensors.warm.dtype !== 'F32' || tensors.warm.data.length !== size)
      return { discard: `its warm start is not ${size} float32 values` }
    state.warm = tensors.warm.data
  }
  if (metadata.lambdaMax !== undefined) {
    const lambdaMax = Number(metadata.lambdaMax)
    if (!Number.isFinite(lambdaMax)) return { discard: `its running lambda_1 maximum ${String(metadata.lambdaMax)} is not finite` }
    state.lambdaMax = lambdaMax
  }
  return { saved: { state, telemetryBytes, entries } }
}

async function saveState(dir: string, key: string, s: Saved): Promise<void> {
  const tensors: Record<string, Tensor> = { theta: tensor.f32([s.state.theta.length], s.state.theta) }
  if (s.state.warm) tensors.warm = tensor.f32([s.state.warm.length], s.state.warm)
  await writeAtomic(
    join(dir, STATE),
    encodeSafetensors(tensors, {
      key,
      iteration: String(s.state.iteration),
      t: JSON.stringify(s.state.t),
      telemetryBytes: String(s.telemetryBytes),
      entries: JSON.stringify(s.entries),
      ...(s.state.lambdaMax !== undefined ? { lambdaMax: JSON.stringify(s.state.lambdaMax) } : {}),
    }),
  )
}

/** Hard link (same filesystem), else copy. */
async function place(from: string, to: string): Promise<void> {
  try {
    await link(from, to)
  } catch {
    await copyFile(from, to)
  }
}

export default defineStage(async (ctx: StageContext<TrainParams>) => {
  const p = ctx.params
  const dataIn = singleInput(ctx.inputs, 'data')
  const manifest = ctx.inputs.manifest?.[0]?.path
  const { data, classes } = await loadDataset(dataIn.path, manifest)
  checkDataCoordinates(p, classes, data.n)
  const spec = specFor(p, data.shape, classes)
  const model = buildModel(spec)
  const opts = trainOptions(p)
  const theta0 = initParams(model, p.seed) // Kaiming, seeded (§4)
  const key = createHash('sha256')
    .update(JSON.stringify({ params: p, n: data.n, size: model.size, theta0: createHash('sha256').update(theta0).digest('hex') }))
    .digest('hex')

  const resumeDir = (ctx as StageContext<TrainParams> & { resumeDir?: string }).resumeDir
  const dir = resumeDir ?? (await mkdtemp(join(tmpdir(), 'cusp-train-')))
  await mkdir(join(dir, 'checkpoints'), { recursive: true })
  const telemetry = join(dir, 'telemetry.jsonl')
  const loaded = await loadState(dir, key, model.size, opts.maxIterations)
  if (loaded !== undefined && 'discard' in loaded) {
    ctx.log(`discarding the resume state in ${dir}: ${loaded.discard}; starting from iteration 0`)
    await rm(join(dir, STATE), { force: true })
  }
  const saved = loaded !== undefined && 'saved' in loaded ? loaded.saved : undefined
  let entries: CheckpointEntry[] = []
  let bytes = 0
  let start: LoopState = { iteration: 0, theta: theta0, t: 0 }
  if (saved !== undefined) {
    ;({ entries, state: start } = saved)
    bytes = saved.telemetryBytes
    await truncate(telemetry, bytes)
    ctx.log(`resuming from iteration ${start.iteration} (${entries.length} checkpoints kept)`)
  } else {
    await rm(join(dir, 'checkpoints'), { recursive: true, force: true })
    await mkdir(join(dir, 'checkpoints'), { recursive: true })
    await writeFile(telemetry, '')
  }

  const engine = await initEngine(p.backend) // this thread: accuracy only
  const objective = await openObjective(spec, data, p, ctx.env)
  if (objective.backend !== engine.backend) ctx.log(`note: workers run ${objective.backend}, accuracy runs ${engine.backend}`)
  let lastSave = Date.now()
  const report = throttled(ctx.progress)
  let summary
  try {
    summary = await train(objective, start, opts, {
      async atIterationStart(state) {
        if (state.iteration === start.iteration) return
        if (state.iteration % opts.checkpointEvery !== 0 && Date.now() - lastSave < SAVE_SECONDS * 1000) return
        await saveState(dir, key, { state, telemetryBytes: bytes, entries })
        lastSave = Date.now()
      },
      async log(row) {
        const line = `${JSON.stringify(row)}\n`
        await appendFile(telemetry, line)
        bytes += Buffer.byteLength(line)
      },
      async checkpoint(iteration, theta, info) {
        const file = checkpointFile(iteration)
        const extra = { eta: String(p.eta), t: JSON.stringify(info.t), loss: JSON.stringify(info.loss), mode: p.mode, seed: String(p.seed) }
        await writeAtomic(join(dir, 'checkpoints', file), encodeCheckpoint(theta, { spec, iteration, extra }))
        entries = [
          ...entries.filter((e) => e.iteration !== iteration),
          { iteration, t: info.t, loss: info.loss, kind: info.kind, final: info.final, file },
        ]
      },
      accuracy: (theta) => datasetAccuracy(model, theta, data, p.chunk_size),
      progress: report,
    })
  } finally {
    await objective.dispose()
  }

  // Publish into outDir: the checkpoints listed (nothing stale), the index, the telemetry.
  const out = join(ctx.outDir, 'checkpoints')
  await mkdir(out)
  entries.sort((a, b) => a.iteration - b.iteration)
  for (const e of entries) await place(join(dir, 'checkpoints', e.file), join(out, e.file))
  const index: CheckpointIndex = {
    format: 'cusp-checkpoints/1',
    spec,
    mode: p.mode,
    eta: p.eta,
    seed: p.seed,
    checkpointEvery: opts.checkpointEvery,
    entries,
  }
  await writeFile(join(out, 'index.json'), `${JSON.stringify(index, null, 2)}\n`)
  await place(telemetry, join(ctx.outDir, 'telemetry.jsonl'))
  const stray = (await readdir(join(dir, 'checkpoints'))).length - entries.length
  if (stray > 0) ctx.log(`${stray} unlisted files in the run directory were not published`)
  // The harness's resume directory stays until the harness has published these outputs (it
  // removes it then): a kill before that resumes from the saved state instead of starting over.
  if (resumeDir === undefined) await rm(dir, { recursive: true, force: true })
  ctx.progress(1, `done: ${summary.stopReason} at iteration ${summary.iterations}`)

  return {
    backend: objective.backend,
    parameters: model.size,
    classes,
    examples: data.n,
    spec: spec as unknown as Record<string, unknown>,
    mode: p.mode,
    iterations: summary.iterations,
    t: summary.t,
    final_loss: summary.finalLoss,
    stop_reason: summary.stopReason,
    peak_certified: summary.stopReason === 'loss-below-threshold' || summary.stopReason === 'peak-passed',
    checkpoints: entries.length,
    checkpoint_every: opts.checkpointEvery,
    max_iterations: opts.maxIterations,
    theta_norm_initial: norm2(theta0),
  }
})
