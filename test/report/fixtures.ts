// Synthetic stage results shaped like the science stages' outputs, built so that every claim is
// supported; tests then change one thing to flip a verdict. Also the parsed claims.yaml.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseClaims, parseClaimsFile, type Claim, type ClaimsFile } from '../../src/report/claims.ts'
import type { ProbeRecord, RunTelemetry, ScanRecord, StageResults } from '../../src/report/records.ts'
import type { ClaimVerdict } from '../../src/report/verdicts.ts'
import { judgeAll } from '../../src/report/verdicts.ts'

export const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..')

/** claims.yaml of this checkout, parsed (throws when invalid). */
export function repoClaims(): Claim[] {
  const r = parseClaims(readFileSync(join(ROOT, 'claims.yaml'), 'utf8'))
  if (!r.ok) throw new Error(r.error.join('\n'))
  return r.value
}

/**
 * claims.yaml of this checkout with its shared rules (throws when invalid), except the transient
 * rule, pinned to t_min = 1: the synthetic runs below are laid out in whole units of t around that
 * rule (transient.test.ts tests the rule itself), so tuning claims.yaml's t_min to measured runs
 * does not move the verdict fixtures.
 */
export function repoClaimsFile(): ClaimsFile {
  const r = parseClaimsFile(readFileSync(join(ROOT, 'claims.yaml'), 'utf8'))
  if (!r.ok) throw new Error(r.error.join('\n'))
  return { ...r.value, transient: { ...r.value.transient, t_min: 1 } }
}

/** The verdict on one claim, judged as the audit does (transient removed first). */
export function judge(id: string, r: StageResults, file: ClaimsFile = repoClaimsFile()): ClaimVerdict {
  return judgeAll(file, r).verdicts.find((v) => v.id === id)!
}

interface ProbeOpts {
  role?: ProbeRecord['role']
  arch?: string
  activation?: string
  eta: number
  classes?: number
  iteration: number
  /** rho of the top n_c - 1 eigenvalues and of the rest. */
  rhoTop: number
  rhoBulk: number
  d?: number[]
  top?: number
  bulk?: number
  seed?: number
  nData?: number
}

/** One probe record with k = n_c + 2 eigenvalues. */
export function probe(o: ProbeOpts): ProbeRecord {
  const nc = o.classes ?? 10
  const role = o.role ?? 'grid'
  const arch = o.arch ?? 'mlp'
  const activation = o.activation ?? 'relu'
  const extra = `${o.nData !== undefined ? `,n_data=${o.nData}` : ''}${o.seed !== undefined ? `,seed=${o.seed}` : ''}`
  const axes =
    role === 'grid'
      ? `arch=${arch},activation=${activation},eta=${o.eta}${extra}`
      : role === 'classes'
        ? `classes=${nc}${extra}`
        : extra.slice(1)
  const stage = role === 'grid' ? 'probe' : role === 'classes' ? 'probe-classes' : 'probe-dense'
  const series = axes === '' ? stage : `${stage}@${axes}`
  const instance = `${stage}@${axes}${axes === '' ? '' : ','}iteration=${o.iteration}`
  const rho = Array.from({ length: nc + 2 }, (_, i) =>
    i < nc - 1 ? o.rhoTop * (1 + 0.02 * (nc - 2 - i)) : o.rhoBulk * (1 - 0.1 * (i - nc + 1)),
  )
  return {
    instance,
    role,
    series,
    arch,
    activation,
    eta: o.eta,
    classes: nc,
    iteration: o.iteration,
    t: o.iteration * o.eta,
    rho,
    d: o.d ?? rho.map((_, i) => 1 / (i + 1)),
    lambda1: (2 * rho[0]!) / o.eta,
    topNorm: 1,
    bulkNorm: 0.3,
    lossChangeTop: o.top ?? 0,
    lossChangeBulk: o.bulk ?? -0.002,
    thetaNorm: 10,
    seed: o.seed ?? null,
    nData: o.nData ?? null,
    vectors: null,
    edgeDim: null,
    edgeDimCapped: false,
    edgeThreshold: null,
    lossChangeTopEdge: null,
    lossChangeBulkEdge: null,
  }
}

/** A gradient-flow run whose lambda_1 peaks at `peak` (t = 0..10, peak at t = 5, back to 1 at the end). */
export function flow(activation: string, nData: number, peak: number, thetaGrowth = 0.001, seed?: number): RunTelemetry {
  const rows = Array.from({ length: 11 }, (_, i) => ({
    iteration: i * 10,
    t: i,
    loss: 2 - i * 0.1,
    thetaNorm: 10 * (1 + (thetaGrowth * i) / 10),
    lambda1: peak * Math.sin((Math.PI * i) / 10) + 1,
  }))
  return {
    instance: `train-flow@activation=${activation},n_data=${nData}${seed !== undefined ? `,seed=${seed}` : ''}`,
    activation,
    nData,
    seed: seed ?? null,
    peakCertified: null,
    rows,
  }
}

/** A cusp scan of c(Delta) = a |Delta|^p + b Delta (the odd term is the gradient's) on 21 points of [-0.003, 0.003]. */
export function scan(nData: number, p: number, activation = 'relu', a = 1, b = 0.01): ScanRecord {
  const deltas = Array.from({ length: 21 }, (_, i) => ((i - 10) * 0.003) / 10)
  return {
    instance: `cusp-scan@activation=${activation},n_data=${nData}`,
    activation,
    nData,
    deltas,
    changes: deltas.map((d) => a * Math.abs(d) ** p + b * d),
    lambda1: 100,
    peakLambda1Logged: 100,
    thetaNormMaxRelChange: 0.001,
    lossResolution: null,
    seed: null,
  }
}

/** The dense run (3 classes, eta 0.06, a probe every 10 iterations to 300): rho_1, rho_2 enter the edge at probe `entry`, where |d_1|, |d_2| jump x5 (at `jumpAt`). */
export function denseRun(entry = 10, jumpAt = entry): ProbeRecord[] {
  return Array.from({ length: 31 }, (_, j) => {
    const d = [j >= jumpAt ? 5 : 1, j >= jumpAt ? 2.5 : 0.5, 0.1, 0.1, 0.1]
    return probe({ role: 'dense', classes: 3, eta: 0.06, iteration: j * 10, rhoTop: j >= entry ? 0.97 : 0.2 + 0.05 * j, rhoBulk: 0.1, d })
  })
}

/** Results on which all four claims are supported. */
export function supportedResults(): StageResults {
  const probes: ProbeRecord[] = []
  for (const activation of ['relu', 'tanh']) {
    for (const eta of [0.2, 0.02]) {
      for (let n = 0; n <= 10; n++) {
        const iteration = Math.round(n / eta)
        const onEdge = n >= 2
        // rho_10 scales with eta (0.5 at 0.2, 0.05 at 0.02): an eta-independent bulk eigenvalue.
        probes.push(
          probe({
            activation,
            eta,
            iteration,
            rhoTop: onEdge ? 0.98 : 0.3,
            rhoBulk: eta === 0.02 ? 0.05 : 0.5,
            top: n % 2 === 0 ? 0.004 : -0.002,
            bulk: -0.002 - 0.0002 * (n % 3),
          }),
        )
      }
    }
  }
  for (const classes of [2, 3, 5]) {
    for (let n = 0; n <= 10; n++)
      probes.push(probe({ role: 'classes', classes, eta: 0.2, iteration: n * 5, rhoTop: n >= 2 ? 0.97 : 0.2, rhoBulk: 0.1 }))
  }
  probes.push(...denseRun())
  const flows = [100, 200, 400].flatMap((n) => [
    flow('relu', n, 0.5 * n + (n === 200 ? 2 : 0), 0.001, 0),
    flow('relu', n, 0.5 * n + 1, 0.001, 1),
    flow('tanh', n, 300),
  ])
  const scans = [scan(100, 2), scan(200, 1.5), scan(400, 1.1), scan(100, 2, 'tanh'), scan(400, 2, 'tanh')]
  const datasets = [{ instance: 'data', source: 'synthetic', split: 'train', shape: [48, 8, 8, 1], classes: 3, sourceDigest: 'x' }]
  return { probes, absentProbes: [], runs: [flow('relu', 500, 10)], flows, scans, datasets }
}
