/**
 * Measures where a model trained by full-batch GD sits against the edge of stability on the bundled
 * Fashion-MNIST subset, with the project's own engine (the same loop, objective and Lanczos the
 * pipeline's train and spectrum-probe stages use): every `--every` iterations the top-k Hessian
 * eigenvalues and rho_i = eta lambda_i / 2. Used to choose the cpu profile's eta and n_D
 * (pipeline.yaml cites its numbers). One JSON line per probe on stdout, a summary line at the end.
 *
 *   node --import tsx scripts/measure-edge.ts --arch mlp --activation relu --eta 0.03 --n 1000 \
 *     --classes 10 --iterations 400 --every 50 --k 10
 *
 * --classes: a count (the first n classes) or a comma list of class ids (e.g. 0,6 = T-shirt, Shirt).
 * --mode flow: gradient flow (eta_n = min(eta, 0.5 / lambda_1)), logging lambda_1 every --every.
 * Threads: CUSP_THREADS (default 1, to share a busy machine).
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, decodeIdx, idxDataset } from '../src/data/idx.ts'
import { FASHION_MNIST_CLASSES } from '../src/data/image-set.ts'
import { prepareDataset } from '../src/data/prepare.ts'
import { lanczos } from '../src/science/eigen/lanczos.ts'
import { buildModel, initParams, type ModelSpec } from '../src/science/models.ts'
import { createObjective } from '../src/science/objective.ts'
import { splitGradient } from '../src/science/telemetry.ts'
import { train } from '../src/science/train-loop.ts'

const { values: a } = parseArgs({
  options: {
    arch: { type: 'string', default: 'mlp' },
    activation: { type: 'string', default: 'relu' },
    eta: { type: 'string', default: '0.03' },
    n: { type: 'string', default: '1000' },
    classes: { type: 'string', default: '10' },
    iterations: { type: 'string', default: '400' },
    every: { type: 'string', default: '50' },
    k: { type: 'string', default: '10' },
    seed: { type: 'string', default: '0' },
    mode: { type: 'string', default: 'gd' },
    hidden: { type: 'string', default: '100,100' },
    tol: { type: 'string', default: '0.01' },
    'max-matvecs': { type: 'string', default: '120' },
  },
})

const dir = new URL('../data/fashion-mnist/', import.meta.url)
const imagesPath = fileURLToPath(new URL('train-images-idx3-ubyte.gz', dir))
const labelsPath = fileURLToPath(new URL('train-labels-idx1-ubyte.gz', dir))
const [ib, lb] = await Promise.all([readFile(imagesPath), readFile(labelsPath)])
const d = idxDataset(decodeIdx(ib, imagesPath, IDX_IMAGES_MAGIC), decodeIdx(lb, labelsPath, IDX_LABELS_MAGIC), imagesPath, labelsPath)
const set = { n: d.n, height: d.rows, width: d.cols, channels: 1, images: d.images, labels: d.labels, classNames: FASHION_MNIST_CLASSES }
const classes = a.classes!.includes(',') ? a.classes!.split(',').map(Number) : Number(a.classes)
const prepared = prepareDataset(
  set,
  { classes, nD: Number(a.n), seed: 0, normalisation: 'standardise' },
  { kind: 'idx', digest: 'bundled', split: 'train' },
)
const nc = prepared.manifest.classes.names.length
const data = { x: prepared.x, y: prepared.y, n: prepared.y.length, shape: [28, 28, 1] as [number, number, number] }
const spec: ModelSpec = {
  arch: a.arch as ModelSpec['arch'],
  activation: a.activation as ModelSpec['activation'],
  inputShape: [28, 28, 1],
  classes: nc,
}
if (spec.arch === 'mlp') spec.hidden = a.hidden!.split(',').map(Number)
const model = buildModel(spec)
const env = Number(process.env.CUSP_THREADS)
const objective = await createObjective({
  spec,
  data,
  reduction: 'mean',
  chunkSize: 250,
  workers: Number.isInteger(env) && env > 0 ? env : 1,
  backend: 'wasm',
})
const eta = Number(a.eta)
const k = Number(a.k)
const every = Number(a.every)
const flow = a.mode === 'flow'
const started = Date.now()
let maxRho1 = 0
let firstEdge: number | null = null
const rho1s: number[] = []
try {
  await train(
    objective,
    { iteration: 0, theta: initParams(model, Number(a.seed)), t: 0 },
    {
      mode: flow ? 'gradient-flow' : 'gd',
      eta,
      maxIterations: Number(a.iterations),
      checkpointEvery: every,
      logEvery: every,
      eigTol: 3e-3,
      eigMaxMatvecs: 30,
      stopLoss: flow ? 0.1 : 0,
      peakDrop: flow ? 0.8 : undefined,
      peakMinT: 0.5,
    },
    {
      log(row) {
        if (flow && (row.iteration % every === 0 || row.stop !== undefined))
          process.stdout.write(
            `${JSON.stringify({ iteration: row.iteration, t: +row.t.toFixed(4), loss: +row.loss.toFixed(5), lambda1: row.lambda1, eta: row.eta, thetaNorm: row.thetaNorm, stop: row.stop, s: Math.round((Date.now() - started) / 1000) })}\n`,
          )
      },
      async checkpoint(iteration, theta, info) {
        if (flow) return
        const { grad } = await objective.gradient(theta)
        const eig = await lanczos((v) => objective.hvp(theta, v), objective.size, k, {
          tol: Number(a.tol),
          maxMatvecs: Number(a['max-matvecs']),
          seed: 0,
        })
        const rho = eig.values.map((l) => (eta * l) / 2)
        const split = splitGradient(grad, eig.vectors.slice(0, nc - 1))
        rho1s.push(rho[0]!)
        if (rho[0]! > maxRho1) maxRho1 = rho[0]!
        if (firstEdge === null && iteration > 0 && rho[0]! >= 0.9) firstEdge = iteration
        // d_i = h_i . g for every measured eigenvector (C2's |d| jump at the edge entry)
        const d = eig.vectors.map((h) => h.reduce((s, x, e) => s + x * grad[e]!, 0))
        process.stdout.write(
          `${JSON.stringify({ iteration, t: +info.t.toFixed(3), loss: +info.loss.toFixed(4), rho: rho.map((r) => +r.toFixed(3)), d: d.map((x) => +x.toExponential(2)), top: +split.topNorm.toFixed(3), bulk: +split.bulkNorm.toFixed(3), matvecs: eig.matvecs, s: Math.round((Date.now() - started) / 1000) })}\n`,
        )
      },
    },
  )
} finally {
  await objective.dispose()
}
process.stdout.write(
  `${JSON.stringify({ summary: true, arch: a.arch, activation: a.activation, eta, n: data.n, classes: nc, rho1_initial: rho1s[0] ?? null, rho1_max: maxRho1, first_rho1_ge_0_9: firstEdge, seconds: Math.round((Date.now() - started) / 1000) })}\n`,
)
