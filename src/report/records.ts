/**
 * The typed view of the science stages' outputs that the figures and the audit read: one
 * `ProbeRecord` per spectrum-probe instance (probe.json), one `RunTelemetry` per train run
 * (telemetry.jsonl), one `ScanRecord` per cusp-scan (scan.json), and the datasets (manifest.json).
 * Parsers take the file's text plus the upstream instance's id and params (StageInput), so they
 * are pure and tests feed them synthetic results. A record keeps its `instance` id: provenance in
 * the report names every instance behind each figure.
 */
import type { JsonObject } from '../harness/types.ts'

/** Which experiment of the paper a probe belongs to (the dep it arrived through). */
export type ProbeRole = 'grid' | 'classes' | 'dense'

/** One spectrum probe of one checkpoint (paper §4.1 telemetry). */
export interface ProbeRecord {
  instance: string
  role: ProbeRole
  /** Groups the probes of one train run: the instance's stage and params without the checkpoint axis. */
  series: string
  /** Architecture label: params.arch, else probe.json's arch, else the probe stage's name less `probe-` (probe-cnn: cnn). */
  arch: string
  activation: string
  eta: number
  classes: number
  iteration: number
  /** t = n * eta (the horizontal axis of Figures 1-4). */
  t: number
  /** rho_i = eta lambda_i / 2 for i = 1..k (index 0 is rho_1). */
  rho: number[]
  /** d_i = h_i . g (index 0 is d_1). */
  d: number[]
  /** Lanczos residuals ||H h_i - lambda_i h_i|| (probe.json `residuals`), when written. */
  residuals?: number[]
  lambda1: number | null
  topNorm: number | null
  bulkNorm: number | null
  lossChangeTop: number | null
  lossChangeBulk: number | null
  thetaNorm: number | null
  /** The run's seed (params.seed, else probe.json's), when known: seeds of one setting are separate series. */
  seed: number | null
  /** Training examples the run used (params.n_data, else probe.json's n_data), when known. */
  nData: number | null
  /**
   * The eigenvectors h_1..h_k, or a seeded random sketch S h_i of them (probe.json `vectors`, or
   * `sketch.rows`): only inner products between probes of one run are used (C2's overlap matching).
   */
  vectors: number[][] | null
  /** Step loss changes with top = the edge set {i : rho_i >= edgeThreshold} (probe.json, when measured). */
  edgeDim: number | null
  /** True when every measured eigenvalue was in the edge set (edge_dim is then a lower bound). */
  edgeDimCapped: boolean
  /** The cut the probe measured its edge set at (probe.json `edge_threshold`), when written. */
  edgeThreshold: number | null
  lossChangeTopEdge: number | null
  lossChangeBulkEdge: number | null
}

/** One train run's telemetry rows (gradient flow: with lambda_1 each logged row). */
export interface RunTelemetry {
  instance: string
  activation: string
  /** params.n_data when the run has it (the gradient-flow runs do), else null. */
  nData: number | null
  /** params.seed when the run has it, else null. */
  seed: number | null
  /** The train stage's own verdict on its last row (`peakCertified`: it stopped past its peak), when written; C4 reports it, claims.yaml's rule decides. */
  peakCertified: boolean | null
  rows: { iteration: number; t: number; loss: number; thetaNorm: number; lambda1: number | null }[]
}

/** One cusp scan (paper §5.4, Figure 6). */
export interface ScanRecord {
  instance: string
  activation: string
  nData: number
  deltas: number[]
  /** L(theta* + Delta h_1) - L(theta*); null where the loss was not finite. */
  changes: (number | null)[]
  lambda1: number
  peakLambda1Logged: number
  thetaNormMaxRelChange: number
  /** The smallest loss change the scan resolves (scan.json `loss_resolution`), when written: changes below it are noise. */
  lossResolution: number | null
  seed: number | null
}

/** What a prepared dataset is, in a line. */
export interface DatasetRecord {
  instance: string
  source: string
  split: string
  shape: number[]
  classes: number
  sourceDigest: string
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)
const str = (v: unknown, dflt: string): string => (typeof v === 'string' ? v : dflt)
const nums = (v: unknown): number[] => (Array.isArray(v) ? v.map((x) => (typeof x === 'number' ? x : NaN)) : [])
const matrix = (v: unknown): number[][] | null =>
  Array.isArray(v) && v.length > 0 && v.every((r) => Array.isArray(r)) ? v.map((r) => nums(r)) : null

/** The stage name of an instance id (`probe@eta=0.1` -> `probe`). */
export function stageOf(instance: string): string {
  const at = instance.indexOf('@')
  return at < 0 ? instance : instance.slice(0, at)
}

/** The instance id without the checkpoint / iteration axis: one series per train run. */
export function seriesOf(instance: string): string {
  const at = instance.indexOf('@')
  if (at < 0) return instance
  const axes = instance
    .slice(at + 1)
    .split(',')
    .filter((a) => !/^(checkpoint|iteration)=/.test(a))
  return axes.length === 0 ? instance.slice(0, at) : `${instance.slice(0, at)}@${axes.join(',')}`
}

/**
 * A probe.json (stages/spectrum-probe) as a record; undefined for a probe of a checkpoint the run
 * never reached (`present: false`). Throws on a file that is not a probe, naming the instance.
 */
export function parseProbe(text: string, instance: string, params: JsonObject, role: ProbeRole): ProbeRecord | undefined {
  const j = JSON.parse(text) as Record<string, unknown>
  if (j.present === false) return undefined
  if (j.present !== true || !Array.isArray(j.rho))
    throw new Error(`${instance}: probe.json has no rho list (is it a spectrum-probe output?)`)
  const eta = num(j.eta) ?? num(params.eta)
  if (eta === null) throw new Error(`${instance}: probe.json has no eta`)
  const iteration = num(j.iteration) ?? 0
  return {
    instance,
    role,
    series: seriesOf(instance),
    arch: str(params.arch, str(j.arch, stageOf(instance).replace(/^probe-?/, '') || 'model')),
    activation: str(params.activation, str(j.activation, 'relu')),
    eta,
    classes: num(j.classes) ?? num(params.classes) ?? 10,
    iteration,
    t: num(j.t) ?? iteration * eta,
    rho: nums(j.rho),
    d: nums(j.d),
    residuals: nums(j.residuals),
    lambda1: Array.isArray(j.eigenvalues) ? num(j.eigenvalues[0]) : null,
    topNorm: num(j.top_norm),
    bulkNorm: num(j.bulk_norm),
    lossChangeTop: num(j.loss_change_top),
    lossChangeBulk: num(j.loss_change_bulk),
    thetaNorm: num(j.theta_norm),
    seed: num(params.seed) ?? num(j.seed),
    nData: num(params.n_data) ?? num(j.n_data),
    vectors: matrix(j.vectors) ?? matrix((j.sketch as { rows?: unknown } | undefined)?.rows),
    edgeDim: num(j.edge_dim),
    edgeDimCapped: j.edge_dim_capped === true,
    edgeThreshold: num(j.edge_threshold),
    lossChangeTopEdge: num(j.loss_change_top_edge),
    lossChangeBulkEdge: num(j.loss_change_bulk_edge),
  }
}

/** A telemetry.jsonl (stages/train): one JSON row per line; blank lines ignored. */
export function parseTelemetry(text: string, instance: string, params: JsonObject): RunTelemetry {
  const rows: RunTelemetry['rows'] = []
  let peakCertified: boolean | null = null
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const r = JSON.parse(line) as Record<string, unknown>
    rows.push({
      iteration: num(r.iteration) ?? 0,
      t: num(r.t) ?? 0,
      loss: num(r.loss) ?? NaN,
      thetaNorm: num(r.thetaNorm) ?? NaN,
      lambda1: num(r.lambda1),
    })
    // The train loop writes it on its last row as `peakCertified` (older files: `peak_certified`).
    const flag = r.peakCertified ?? r.peak_certified
    if (typeof flag === 'boolean') peakCertified = flag
  }
  return { instance, activation: str(params.activation, 'relu'), nData: num(params.n_data), seed: num(params.seed), peakCertified, rows }
}

/** A scan.json (stages/cusp-scan). */
export function parseScan(text: string, instance: string, params: JsonObject): ScanRecord {
  const j = JSON.parse(text) as Record<string, unknown>
  if (!Array.isArray(j.deltas) || !Array.isArray(j.changes)) throw new Error(`${instance}: scan.json has no deltas/changes`)
  return {
    instance,
    activation: str(params.activation, 'relu'),
    nData: num(j.n_data) ?? num(params.n_data) ?? 0,
    deltas: nums(j.deltas),
    changes: j.changes.map((c) => num(c)),
    lambda1: num(j.lambda_1) ?? NaN,
    peakLambda1Logged: num(j.peak_lambda_1_logged) ?? NaN,
    thetaNormMaxRelChange: num(j.theta_norm_max_rel_change) ?? NaN,
    lossResolution: num(j.loss_resolution),
    seed: num(params.seed) ?? num(j.seed),
  }
}

/** A manifest.json (stages/prepare-data). */
export function parseManifest(text: string, instance: string): DatasetRecord {
  const j = JSON.parse(text) as {
    source?: { kind?: string; split?: string; digest?: string }
    shape?: number[]
    classes?: { names?: string[] }
  }
  return {
    instance,
    source: j.source?.kind ?? 'unknown',
    split: j.source?.split ?? '',
    shape: j.shape ?? [],
    classes: j.classes?.names?.length ?? 0,
    sourceDigest: j.source?.digest ?? '',
  }
}

/** Everything the figures and the audit read, gathered from the stage inputs. */
export interface StageResults {
  probes: ProbeRecord[]
  /** Probes of checkpoints the runs never reached, by instance (counted, not plotted). */
  absentProbes: string[]
  /** Train runs of the main grid (Figure 1's runs), for ||theta||. */
  runs: RunTelemetry[]
  /** Gradient-flow runs (§4.2, Figure 5). */
  flows: RunTelemetry[]
  scans: ScanRecord[]
  datasets: DatasetRecord[]
}

/** A one-line description of the datasets (`synthetic 48x8x8x1, 3 classes; ...`), deduplicated. */
export function describeDatasets(ds: readonly DatasetRecord[]): string {
  const seen = new Set<string>()
  for (const d of ds) seen.add(`${d.source}${d.split !== '' ? `/${d.split}` : ''} ${d.shape.join('x')} (${d.classes} classes)`)
  return seen.size === 0 ? 'unknown' : [...seen].sort().join('; ')
}
