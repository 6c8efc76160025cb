// The science stages end to end through the real stage runner (a child process per job, as the
// executor runs them) on a tiny synthetic set: train (gd and gradient-flow), spectrum-probe checked
// against an exact Hessian built in-process, and cusp-scan checked against the run's telemetry.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { readSafetensors } from '../../src/data/safetensors.ts'
import { decodeCheckpoint } from '../../src/science/checkpoint.ts'
import { symmetricEigen } from '../../src/science/eigen/symmetric.ts'
import { initEngine } from '../../src/science/engine.ts'
import { datasetHvp, datasetLoss, type Dataset } from '../../src/science/hvp.ts'
import { buildModel, initParams } from '../../src/science/models.ts'
import { fitPowerLaw } from '../../src/science/telemetry.ts'
import { readJson, runJob, writeJob, writeToyData } from './fixtures.ts'

const engine = { backend: 'wasm', chunk_size: 32 }
interface Probe {
  iteration: number
  top_dim: number
  arch: string
  activation: string
  eigenvalues: number[]
  rho: number[]
  top_norm: number
  bulk_norm: number
  grad_norm: number
  loss: number
  loss_change_top: number
}
interface Scan {
  peak_iteration: number
  lambda_1: number
  deltas: number[]
  changes: number[]
  theta_norm_initial: number
}
const trainBase = {
  arch: 'mlp',
  activation: 'relu',
  hidden: [8],
  seed: 1,
  stop_loss: 0.1,
  max_t: 40,
  log_every: 5,
  flow_factor: 0.5,
  eig_tol: 1e-3,
  eig_max_matvecs: 60,
  ...engine,
}

t.test('train -> spectrum-probe -> cusp-scan on toy data', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-stages-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { dataset, manifest } = await writeToyData(join(dir, 'data'), 64, 3)
  const din = {
    data: [{ instance: 'd', output: 'dataset', params: {}, path: dataset }],
    manifest: [{ instance: 'd', output: 'manifest', params: {}, path: manifest }],
  }

  // train, gd
  const gdOut = await writeJob(
    join(dir, 'gd'),
    'train',
    { ...trainBase, mode: 'gd', eta: 0.5, stop_loss: 0, max_iterations: 30, checkpoint_every: 10 },
    din,
  )
  const gd = await runJob(join(dir, 'gd'))
  t.equal(gd.code, 0, gd.stderr)
  const res = await readJson(join(gdOut, 'result.json'))
  t.equal(res.classes, 3)
  t.equal(res.parameters, 64 * 8 + 8 + 8 * 3 + 3)
  const index = (await readJson(join(gdOut, 'checkpoints', 'index.json'))) as {
    entries: { iteration: number; file: string }[]
    checkpointEvery: number
  }
  t.equal(index.checkpointEvery, 10)
  t.same(index.entries.map((e) => e.iteration).slice(0, 2), [0, 10])
  const rows = (await readFile(join(gdOut, 'telemetry.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
  t.same(Object.keys(rows[0]!).sort(), ['accuracy', 'eta', 'gradNorm', 'iteration', 'loss', 't', 'thetaNorm'])
  t.ok(rows[rows.length - 1]!.loss! < rows[0]!.loss!, 'the loss went down')
  const model = buildModel({ arch: 'mlp', activation: 'relu', hidden: [8], inputShape: [8, 8, 1], classes: 3 })
  const ck0 = decodeCheckpoint(new Uint8Array(await readFile(join(gdOut, 'checkpoints', index.entries[0]!.file))))
  t.same(Buffer.from(ck0.theta.buffer), Buffer.from(initParams(model, 1).buffer), 'checkpoint 0 is the seeded Kaiming init')

  // spectrum-probe at checkpoint k = 1 (iteration 10), against an exact Hessian
  const ckIn = { checkpoints: [{ instance: 'tr', output: 'checkpoints', params: {}, path: join(gdOut, 'checkpoints') }] }
  const pOut = await writeJob(
    join(dir, 'probe'),
    'spectrum-probe',
    { checkpoint: 1, k: 4, solver: 'lanczos', tol: 1e-4, max_matvecs: 400, eig_seed: 0, arch: 'mlp', eta: 0.5, ...engine },
    { ...din, ...ckIn },
  )
  const pr = await runJob(join(dir, 'probe'))
  t.equal(pr.code, 0, pr.stderr)
  const probe = (await readJson(join(pOut, 'probe.json'))) as unknown as Probe
  t.equal(probe.iteration, 10)
  t.equal(probe.top_dim, 2, 'top subspace = n_c − 1 = 2 eigenvectors')
  t.same([probe.arch, probe.activation], ['mlp', 'relu'], "the checkpoint's model labels the probe")

  await initEngine('wasm')
  const { tensors } = await readSafetensors(dataset)
  const data: Dataset = { x: tensors.x!.data as Float32Array, y: tensors.y!.data as Int32Array, n: 64, shape: [8, 8, 1] }
  const ck = decodeCheckpoint(new Uint8Array(await readFile(join(gdOut, 'checkpoints', index.entries[1]!.file))))
  const P = model.size
  const H = new Float64Array(P * P)
  for (let j = 0; j < P; j++) {
    const e = new Float32Array(P)
    e[j] = 1
    const col = datasetHvp(model, ck.theta, e, data, { chunkSize: 32 })
    for (let i = 0; i < P; i++) H[i * P + j] = col[i]!
  }
  const exact = symmetricEigen(H, P)
  for (let i = 0; i < 4; i++) {
    const want = exact.values[i]!
    t.ok(Math.abs(probe.eigenvalues[i]! - want) <= 1e-3 * Math.abs(exact.values[0]!), `λ_${i + 1} ${probe.eigenvalues[i]} vs exact ${want}`)
    t.ok(Math.abs(probe.rho[i]! - (0.5 * probe.eigenvalues[i]!) / 2) < 1e-12, `ρ_${i + 1} = ηλ/2`)
  }
  t.ok(
    Math.abs(probe.top_norm ** 2 + probe.bulk_norm ** 2 - probe.grad_norm ** 2) < 1e-5 * probe.grad_norm ** 2,
    '||P_top g||² + ||P_bulk g||² = ||g||²',
  )
  // the top step, recomputed from the exact top-2 eigenvectors: θ − η P_top g
  const g = new Float64Array(P)
  const { grad } = await import('../../src/science/hvp.ts').then((m) => m.datasetGradient(model, ck.theta, data, { chunkSize: 32 }))
  grad.forEach((v, i) => (g[i] = v))
  const top = new Float64Array(P)
  for (let c = 0; c < 2; c++) {
    let d = 0
    for (let i = 0; i < P; i++) d += exact.vectors[i * P + c]! * g[i]!
    for (let i = 0; i < P; i++) top[i]! += d * exact.vectors[i * P + c]!
  }
  const moved = Float32Array.from(ck.theta, (x, i) => x - 0.5 * top[i]!)
  const base = datasetLoss(model, ck.theta, data, { chunkSize: 32 })
  t.ok(Math.abs(probe.loss - base) < 1e-6, 'probe loss = L(θ)')
  t.ok(
    Math.abs(probe.loss_change_top - (datasetLoss(model, moved, data, { chunkSize: 32 }) - base)) < 2e-4,
    `top-step loss change ${probe.loss_change_top} by moving the weights`,
  )

  // a checkpoint the run never reached
  const missOut = await writeJob(
    join(dir, 'miss'),
    'spectrum-probe',
    { checkpoint: 99, k: 4, solver: 'lanczos', tol: 1e-3, max_matvecs: 50, eig_seed: 0, ...engine },
    { ...din, ...ckIn },
  )
  const miss = await runJob(join(dir, 'miss'))
  t.equal(miss.code, 0, miss.stderr)
  t.match(await readJson(join(missOut, 'result.json')), { present: false, iteration: 990, reason: 'the run stopped at iteration 30' })
  // a probe wired to the wrong run fails loudly
  const wrong = await writeJob(
    join(dir, 'wrong'),
    'spectrum-probe',
    { checkpoint: 0, k: 2, solver: 'lanczos', tol: 1e-3, max_matvecs: 50, eig_seed: 0, eta: 0.1, ...engine },
    { ...din, ...ckIn },
  )
  t.ok(wrong)
  const bad = await runJob(join(dir, 'wrong'))
  t.equal(bad.code, 1)
  t.match(bad.stderr, /param eta = 0.1 but the checkpoints come from a run with eta = 0.5/)

  // gradient flow, then the cusp scan at its peak-λ_1 snapshot
  const gfOut = await writeJob(
    join(dir, 'gf'),
    'train',
    { ...trainBase, mode: 'gradient-flow', eta: 1, stop_loss: 0, max_iterations: 12, checkpoint_every: 4 },
    din,
  )
  const gf = await runJob(join(dir, 'gf'))
  t.equal(gf.code, 0, gf.stderr)
  const gfRows = (await readFile(join(gfOut, 'telemetry.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
  t.equal(gfRows.length, 13, 'λ_1 logged every iteration')
  for (const r of gfRows) t.ok(Math.abs(r.eta! - Math.min(1, 0.5 / r.lambda1!)) < 1e-12, 'η = min(η_max, 0.5/λ_1)')
  const snaps = [0, 4, 8, 12]
  const peakIter = snaps.reduce((b, i) => (gfRows[i]!.lambda1! > gfRows[b]!.lambda1! ? i : b), 0)
  const gfIn = {
    checkpoints: [{ instance: 'gf', output: 'checkpoints', params: {}, path: join(gfOut, 'checkpoints') }],
    telemetry: [{ instance: 'gf', output: 'telemetry.jsonl', params: {}, path: join(gfOut, 'telemetry.jsonl') }],
  }
  const sOut = await writeJob(
    join(dir, 'scan'),
    'cusp-scan',
    { delta_max: 0.003, points: 5, tol: 1e-4, max_matvecs: 200, eig_seed: 0, mode: 'gradient-flow', ...engine },
    { ...din, ...gfIn },
  )
  const sc = await runJob(join(dir, 'scan'))
  t.equal(sc.code, 0, sc.stderr)
  const scan = (await readJson(join(sOut, 'result.json'))) as unknown as Scan
  t.equal(scan.peak_iteration, peakIter)
  t.ok(Math.abs(scan.lambda_1 - gfRows[peakIter]!.lambda1!) < 2e-3 * scan.lambda_1, 'h_1 solve agrees with the logged λ_1')
  t.same(scan.deltas, [-0.003, -0.0015, 0, 0.0015, 0.003])
  t.equal(scan.changes[2], 0)
  // near a smooth minimum-ish point the change along h_1 is ~ ½ λ_1 Δ² + g·h_1 Δ: symmetric part ≈ ½ λ_1 Δ²
  const sym = (scan.changes[0]! + scan.changes[4]!) / 2
  t.ok(Math.abs(sym - 0.5 * scan.lambda_1 * 0.003 ** 2) < 0.2 * 0.5 * scan.lambda_1 * 0.003 ** 2 + 1e-6, `even part ${sym} ≈ ½λ_1Δ²`)
  t.ok(Math.abs(scan.theta_norm_initial - gfRows[0]!.thetaNorm!) < 1e-12)

  // the log-spaced scan scaled to the curvature, with its power-law fit
  const lOut = await writeJob(
    join(dir, 'logscan'),
    'cusp-scan',
    { spacing: 'log', points: 5, log_min: -2, log_max: 0, delta_max: 0.003, tol: 1e-4, max_matvecs: 200, eig_seed: 0, ...engine },
    { ...din, ...gfIn },
  )
  const ls = await runJob(join(dir, 'logscan'))
  t.equal(ls.code, 0, ls.stderr)
  const log = (await readJson(join(lOut, 'result.json'))) as unknown as Scan & {
    spacing: string
    delta_scale: number
    fit: { exponent: number; points: number } | null
    loss_resolution: number
    summed_in: string
  }
  t.equal(log.spacing, 'log')
  t.ok(Math.abs(log.delta_scale - 1 / Math.sqrt(log.lambda_1)) < 1e-12 * log.delta_scale, 'scale = 1/sqrt(λ_1)')
  t.equal(log.deltas.length, 11)
  t.equal(log.deltas[5], 0)
  ;[-2, -1.5, -1, -0.5, 0].forEach((u, i) => {
    const want = log.delta_scale * 10 ** u
    t.ok(Math.abs(log.deltas[6 + i]! - want) < 1e-12 * want && log.deltas[4 - i] === -log.deltas[6 + i]!, `±scale·10^${u}`)
  })
  t.match(log.summed_in, /chunks of 32/)
  const refit = fitPowerLaw(log.deltas, log.changes, 10 * log.loss_resolution)
  t.same(log.fit, refit, 'the stored fit is the fit of the stored changes')
  t.ok(log.fit !== null && log.fit.exponent > 1.5 && log.fit.exponent < 2.5, `a smooth-ish toy minimum: exponent ${log.fit?.exponent} ~ 2`)

  // the probe's edge set and eigenvector sketch: orthonormal eigenvectors sketch to ~orthonormal rows
  const kOut = await writeJob(
    join(dir, 'sketch'),
    'spectrum-probe',
    {
      checkpoint: 1,
      k: 4,
      solver: 'lanczos',
      tol: 1e-4,
      max_matvecs: 400,
      eig_seed: 0,
      edge_threshold: 1e-9,
      sketch_rows: 512,
      sketch_seed: 3,
      ...engine,
    },
    { ...din, ...ckIn },
  )
  const kr = await runJob(join(dir, 'sketch'))
  t.equal(kr.code, 0, kr.stderr)
  const sp = (await readJson(join(kOut, 'probe.json'))) as unknown as Probe & {
    edge_dim: number
    edge_dim_capped: boolean
    loss_change_top_edge: number
    n_data: number
    seed: number
    sketch: { seed: number; rows: number[][] }
  }
  t.equal(sp.n_data, 64)
  t.equal(sp.seed, 1, "the run's seed")
  t.equal(sp.edge_dim, sp.rho.filter((r) => r >= 1e-9).length, 'edge set = #{rho_i >= threshold}')
  t.equal(sp.edge_dim_capped, sp.edge_dim === 4)
  t.equal(typeof sp.loss_change_top_edge, 'number')
  t.equal(sp.sketch.seed, 3)
  t.equal(sp.sketch.rows.length, 4)
  const sdot = (a: number[], b: number[]): number => a.reduce((x, v, i) => x + v * b[i]!, 0)
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++)
      t.ok(Math.abs(sdot(sp.sketch.rows[i]!, sp.sketch.rows[j]!) - (i === j ? 1 : 0)) < 4 / Math.sqrt(512), `sketch overlap ${i},${j}`)
  }
})
