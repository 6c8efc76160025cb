/**
 * File I/O shared by the science stages (train, spectrum-probe, cusp-scan): reading the prepared
 * dataset (prepare-data's `dataset`: safetensors with x float32 [n, h, w, c] and y int32 [n]) and
 * its manifest, the train stage's checkpoint directory (`index.json` + one safetensors file per
 * snapshot, src/science/checkpoint.ts), its telemetry JSONL, atomic writes, and starting the
 * worker-pool Objective with the stage's engine params. Science stays in src/science; this file
 * is the thin, effectful edge the stages share.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readSafetensors } from '../../src/data/safetensors.ts'
import { decodeCheckpoint, type Checkpoint } from '../../src/science/checkpoint.ts'
import type { EnvRecord } from '../../src/core/vocabulary.ts'
import type { BackendChoice } from '../../src/science/engine.ts'
import { engineMismatch } from '../../src/science/env-record.ts'
import type { Dataset } from '../../src/science/hvp.ts'
import type { ModelSpec } from '../../src/science/models.ts'
import { createObjective, type Objective } from '../../src/science/objective.ts'
import type { LogRow } from '../../src/science/train-loop.ts'

/** The prepared dataset and the number of classes n_c it has. */
export interface LoadedData {
  data: Dataset
  classes: number
}

/** Reads prepare-data's `dataset` (+ optional `manifest`); n_c from the manifest, else max(y) + 1. */
export async function loadDataset(datasetPath: string, manifestPath?: string): Promise<LoadedData> {
  const { tensors } = await readSafetensors(datasetPath)
  const x = tensors.x
  const y = tensors.y
  if (x === undefined || x.dtype !== 'F32' || x.shape.length !== 4)
    throw new Error(`${datasetPath}: expected tensor x float32 [n, h, w, c]`)
  if (y === undefined || y.dtype !== 'I32' || y.shape.length !== 1 || y.shape[0] !== x.shape[0])
    throw new Error(`${datasetPath}: expected tensor y int32 [n] matching x`)
  const [n, h, w, c] = x.shape as [number, number, number, number]
  let classes = 0
  for (const label of y.data) classes = Math.max(classes, label + 1)
  if (manifestPath !== undefined) {
    const m = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>
    const fromManifest = classCount(m)
    if (fromManifest !== undefined) {
      if (fromManifest < classes) throw new Error(`${manifestPath}: says ${fromManifest} classes but labels reach ${classes - 1}`)
      classes = fromManifest
    }
  }
  return { data: { x: x.data, y: y.data, n, shape: [h, w, c] }, classes }
}

function classCount(m: Record<string, unknown>): number | undefined {
  for (const key of ['num_classes', 'numClasses', 'n_classes']) if (typeof m[key] === 'number') return m[key]
  for (const key of ['class_names', 'classNames', 'classes']) {
    const v = m[key]
    if (Array.isArray(v)) return v.length
    if (typeof v === 'number') return v
    if (typeof v === 'object' && v !== null && Array.isArray((v as { names?: unknown }).names))
      return (v as { names: unknown[] }).names.length
  }
  return undefined
}

/** One entry of `checkpoints/index.json`. */
export interface CheckpointEntry {
  iteration: number
  t: number
  loss: number
  kind: 'regular' | 'dense' | 'final'
  final: boolean
  file: string
}

/** `checkpoints/index.json`: the model spec, cadence, and every snapshot in iteration order. */
export interface CheckpointIndex {
  format: 'cusp-checkpoints/1'
  spec: ModelSpec
  mode: 'gd' | 'gradient-flow'
  eta: number
  seed: number
  checkpointEvery: number
  entries: CheckpointEntry[]
}

/** File name of the snapshot at `iteration` (zero-padded so names sort by iteration). */
export function checkpointFile(iteration: number): string {
  return `iter-${String(iteration).padStart(8, '0')}.safetensors`
}

export async function readCheckpointIndex(dir: string): Promise<CheckpointIndex> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as CheckpointIndex
  if (index.format !== 'cusp-checkpoints/1') throw new Error(`${dir}/index.json: not a cusp checkpoint index`)
  return index
}

export async function readCheckpoint(dir: string, entry: CheckpointEntry): Promise<Checkpoint> {
  const path = join(dir, entry.file)
  return decodeCheckpoint(new Uint8Array(await readFile(path)), path)
}

/** Reads the train stage's telemetry JSONL. */
export async function readTelemetry(path: string): Promise<LogRow[]> {
  const text = await readFile(path, 'utf8')
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogRow)
}

/** Writes via a temp file and rename, so a killed process never leaves a torn file behind. */
export async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, bytes)
  await rename(tmp, path)
}

/** Engine params every science stage takes (schema: backend, chunk_size). */
export interface EngineParams {
  backend: BackendChoice
  chunk_size: number
}

/**
 * The full-batch Objective for `spec` on `data`. Worker threads: CUSP_THREADS if set, else one:
 * the harness already runs one instance per core (`--jobs` defaults to the core count), so more
 * threads per instance only oversubscribe the cores, and on a loaded machine every extra thread adds
 * a cross-core wakeup per chunk (measured on the shared 2-core machine at load ~20: an MLP run made
 * 1.7 iterations/s with two workers per instance, ~25 with one). The count never changes the bits
 * (objective.ts), so it is not a param. With `expected`
 * (the stage's StageContext.env), an engine other than the one in the fingerprint is refused:
 * the objective is closed and the stage fails with a one-line reason, before computing anything.
 */
export async function openObjective(spec: ModelSpec, data: Dataset, p: EngineParams, expected?: EnvRecord): Promise<Objective> {
  const env = Number(process.env.CUSP_THREADS)
  const workers = Number.isInteger(env) && env > 0 ? env : 1
  const objective = await createObjective({ spec, data, reduction: 'mean', chunkSize: p.chunk_size, workers, backend: p.backend })
  const mismatch = engineMismatch(expected, { backend: objective.backend })
  if (mismatch !== undefined) {
    await objective.dispose()
    throw new Error(mismatch)
  }
  return objective
}

/** The one input of dep `name` (a plain or matched dep resolving to one instance). */
export function singleInput(
  inputs: Record<string, { path: string; params: Record<string, unknown> }[]>,
  name: string,
): { path: string; params: Record<string, unknown> } {
  const list = inputs[name] ?? []
  if (list.length !== 1) throw new Error(`expected exactly one input '${name}', got ${list.length}: check the deps in pipeline.yaml`)
  return list[0]!
}

/** A progress reporter that emits at most every `ms` milliseconds (and always at the end). */
export function throttled(report: (fraction: number, message?: string) => void, ms = 500): (fraction: number, message: string) => void {
  let last = 0
  return (fraction, message) => {
    const now = Date.now()
    if (now - last < ms && fraction < 1) return
    last = now
    report(fraction, message)
  }
}
