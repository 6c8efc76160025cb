/**
 * `npm run bench -- hvp [--rounds R] [--n N] [--n-alexnet M] [--models cnn,mlp,alexnet] [--cpu] [--leak K]`:
 * full-batch loss, gradient and Hessian-vector product (paper §3.3) of the reference CNN (avg pool,
 * relu) and the MLP 784-200-200-10 on N = 1000 seeded-random 28x28x1 images, and the paper's CIFAR
 * AlexNet on M = 256 seeded-random 32x32x3 images (uniform pixels, uniform labels; speed does not
 * depend on the values), through cusp's worker-pool objective on wasm with 1 and 2 workers,
 * against PyTorch (bench/peers/torch_hessian.py --time, 2 threads) on the same inputs in the same
 * run. The peer is only fair on an optimized BLAS: its JSON says which BLAS the PyTorch process
 * actually loaded and with how many threads (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are set to the
 * stated thread count), and the bench warns loudly when it is the reference (netlib) BLAS.
 * Every call of ours runs at a θ not seen before (worker threads cache θ-only work: dense-hvp.ts,
 * conv-hvp.ts), as the peer recomputes everything per call; a second HVP at the same θ is reported
 * apart.
 * Ours and the peer alternate round by round (the machine is shared); the min/median/max of the
 * rounds are reported with ratios ours/peer of the medians (wall time), plus process CPU time (all
 * worker threads; PyTorch's at 2 threads too) and
 * the load average, since on a shared machine the wall times say as much about the neighbours;
 * and, load-robust, the CPU time per call of one worker against PyTorch at one thread
 * (bench/support/torch_cpu_time.py).
 * `--cpu` adds the pure-JS cpu backend at N = 100 (about 100x
 * slower). Then one HVP chunk (250 examples) is profiled kernel by kernel (CPU time) on wasm in
 * this thread. Memory: the peak RSS of this process after each model (models run in the order
 * given, so a later model's peak includes the earlier ones'; run one model per invocation for its
 * own) and the peer's peak RSS; `--leak K` runs K HVPs of one chunk (`--leak-n`, default 64
 * examples) in this thread and records tf.memory().numTensors, wasm heap bytes, RSS and JS heap at the start
 * and end, which must stay flat.
 * Ends with one JSON line per model. `--backend webgpu` runs the GPU bench instead
 * (bench/support/hvp-webgpu.ts: reference CNN and AlexNet-CIFAR, PyTorch CUDA as the peer).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../src/science/engine.ts'
import { chunkHvp, type Dataset } from '../src/science/hvp.ts'
import { setConvReuse } from '../src/science/conv-hvp.ts'
import { setDenseCacheBytes } from '../src/science/dense-hvp.ts'
import { buildModel, initParams, type ModelSpec } from '../src/science/models.ts'
import { createObjective } from '../src/science/objective.ts'
import { createRng } from '../src/science/rng.ts'

const args = process.argv.slice(2)
if (args.includes('--backend') && args[args.indexOf('--backend') + 1] === 'webgpu') {
  const { benchWebgpu } = await import('./support/hvp-webgpu.ts')
  await benchWebgpu(args)
  process.exit(0)
}
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt
}
const rounds = Number(opt('rounds', '3'))
const N = Number(opt('n', '1000'))
const nAlexnet = Number(opt('n-alexnet', '256'))
const models = opt('models', 'cnn,mlp,alexnet').split(',')
const withCpu = args.includes('--cpu')
const leakCalls = Number(opt('leak', '0'))
const leakN = Number(opt('leak-n', '64'))
const peerRepeats = 3
const peerThreads = 2
/** The peer's thread count, stated to every pool it may use (OpenMP for torch, OpenBLAS's own). */
const threadEnv = (threads: number): Record<string, string> => ({
  OMP_NUM_THREADS: String(threads),
  OPENBLAS_NUM_THREADS: String(threads),
  MKL_NUM_THREADS: String(threads),
})

const specs: Record<string, ModelSpec> = {
  cnn: { arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10, pool: 'avg' },
  mlp: { arch: 'mlp', activation: 'relu', inputShape: [28, 28, 1], classes: 10, hidden: [200, 200] },
  // The paper's CIFAR AlexNet, at `--n-alexnet` images (default 256).
  alexnet: { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10 },
}

type Figures = { loss: number; grad: number; hvp: number }
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!
}
/** min / median / max of each figure over the rounds, rounded to ms. */
function spread(xs: Figures[]): Record<keyof Figures, [number, number, number]> {
  const of = (k: keyof Figures): [number, number, number] => {
    const v = xs.map((f) => f[k])
    return [Math.round(Math.min(...v)), Math.round(median(v)), Math.round(Math.max(...v))]
  }
  return { loss: of('loss'), grad: of('grad'), hvp: of('hvp') }
}

function dataset(n: number, seed: number, shape: [number, number, number]): Dataset {
  const r = createRng(seed, 'bench-data')
  const x = new Float32Array(n * shape[0] * shape[1] * shape[2])
  for (let i = 0; i < x.length; i++) x[i] = r.uniform()
  const y = new Int32Array(n)
  for (let i = 0; i < n; i++) y[i] = r.nextUint32() % 10
  return { x, y, n, shape }
}

/**
 * Wall ms and CPU ms of this process (all worker threads, in `cpu`) per call, on the peer's protocol
 * (torch_hessian.py --time): for each kind, one warm-up call, then `peerRepeats` timed calls, the
 * median kept. Before, ours was one call per kind, right after the peer's processes had run, while
 * the peer was timed warm: on a 2-core Zen 5 the MLP's 1-worker HVP took 115-149 ms of CPU that
 * way and 78-113 ms this way (the gradient 82-99 and 82-90).
 * Every call runs at its own θ (θ[0] nudged), so no call reuses a θ cache (dense-hvp.ts,
 * conv-hvp.ts) and every figure is comparable to the peer's, which recomputes everything per call;
 * then HVPs at one θ already seen, the steady state of an eigen-iteration, go to `same`.
 */
async function timeOurs(
  obj: Awaited<ReturnType<typeof createObjective>>,
  theta: Float32Array,
  v: Float32Array,
  cpu?: Figures[],
  same?: { wall: number[]; cpu: number[] },
): Promise<Figures> {
  const timed = async (call: () => Promise<unknown>): Promise<[number, number]> => {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await call()
    const wall = performance.now() - t0
    const c = process.cpuUsage(c0)
    return [wall, (c.user + c.system) / 1000]
  }
  /**
   * One warm-up call, then the median wall and CPU of `peerRepeats` calls, call i at θs[i] (made
   * before timing, so copying θ is not timed).
   */
  const kind = async (call: (at: Float32Array) => Promise<unknown>, fresh = true): Promise<[number, number]> => {
    const one = nudged(theta)
    const thetas = Array.from({ length: peerRepeats + 1 }, () => (fresh ? nudged(theta) : one))
    await call(thetas[0]!)
    const runs: Array<[number, number]> = []
    for (let r = 1; r <= peerRepeats; r++) runs.push(await timed(() => call(thetas[r]!)))
    return [median(runs.map((x) => x[0])), median(runs.map((x) => x[1]))]
  }
  const [lossW, lossC] = await kind((at) => obj.loss(at))
  const [gradW, gradC] = await kind((at) => obj.gradient(at))
  const [hvpW, hvpC] = await kind((at) => obj.hvp(at, v))
  const [sameW, sameC] = await kind((at) => obj.hvp(at, v), false)
  cpu?.push({ loss: lossC, grad: gradC, hvp: hvpC })
  same?.wall.push(sameW)
  same?.cpu.push(sameC)
  return { loss: lossW, grad: gradW, hvp: hvpW }
}
let nudges = 0
/** θ with its first entry moved by a distinct small step each call (a new θ for every cache). */
function nudged(theta: Float32Array): Float32Array {
  const out = theta.slice()
  out[0] = out[0]! + ++nudges * 2 ** -20
  return out
}

/** What the peer's `--time` line says about its BLAS (torch_hessian.py blas_info). */
interface PeerBlas {
  kind: string
  libraries: string[]
  openblas_config?: string
  openblas_threads?: number
  torch_blas_info: string | null
  torch_threads: number
  torch_interop_threads: number
  torch_parallel_backend: string | null
}
interface PeerRun extends Figures {
  cpu: Figures
  torch: string
  threads: number
  blas: PeerBlas
  peakRssMb: number
}

async function timePeer(dir: string): Promise<PeerRun> {
  const { stdout } = await execa('/usr/bin/python3', ['bench/peers/torch_hessian.py', '--time', dir], { env: threadEnv(peerThreads) })
  const f = JSON.parse(stdout.trim().split('\n').pop()!) as {
    loss_ms: number
    grad_ms: number
    hvp_ms: number
    cpu_ms: Figures
    torch: string
    threads: number
    blas: PeerBlas
    peak_rss_mb: number
  }
  return {
    loss: f.loss_ms,
    grad: f.grad_ms,
    hvp: f.hvp_ms,
    cpu: f.cpu_ms,
    torch: f.torch,
    threads: f.threads,
    blas: f.blas,
    peakRssMb: f.peak_rss_mb,
  }
}

/** Loud, unmissable: a peer on the reference BLAS (or one we cannot identify) is not a fair peer. */
function warnIfHandicapped(blas: PeerBlas, threads: number): void {
  const problems: string[] = []
  if (blas.kind === 'reference')
    problems.push(`PyTorch loaded the REFERENCE (netlib) BLAS ${blas.libraries.join(', ')}: matrix products ~20x slower than OpenBLAS`)
  else if (blas.kind === 'unknown')
    problems.push('no BLAS library found mapped into the PyTorch process: cannot tell whether the peer is fair')
  if (blas.torch_threads !== threads) problems.push(`PyTorch runs ${blas.torch_threads} threads, not the stated ${threads}`)
  if (blas.kind === 'openblas' && blas.openblas_threads !== undefined && blas.openblas_threads !== threads)
    problems.push(`OpenBLAS runs ${blas.openblas_threads} threads, not the stated ${threads}`)
  if (problems.length === 0) return
  const bar = '!'.repeat(100)
  console.error(
    `${bar}\n!! UNFAIR PEER: ${problems.join('; ')}.\n!! Install an optimized BLAS (apt-get install libopenblas0-pthread) and rerun; ratios below flatter cusp.\n${bar}`,
  )
}

/** PyTorch's per-call process CPU time at one thread (bench/support/torch_cpu_time.py). */
async function timePeerCpu(dir: string): Promise<Figures> {
  const { stdout } = await execa('/usr/bin/python3', ['bench/support/torch_cpu_time.py', dir, '1', String(peerRepeats)], {
    env: threadEnv(1),
  })
  const f = JSON.parse(stdout.trim().split('\n').pop()!) as { cpu_ms: { loss: number; grad: number; hvp: number } }
  return { loss: f.cpu_ms.loss, grad: f.cpu_ms.grad, hvp: f.cpu_ms.hvp }
}

/** Flops of the kernels that dominate, from their shapes. */
function flopsOf(name: string, inShapes: number[][], outShape: number[]): number | undefined {
  const size = (s: number[] | undefined): number => (s ?? []).reduce((a, b) => a * b, 1)
  if (name === 'BatchMatMul' || name === '_FusedMatMul') {
    const [a, b] = inShapes as [number[], number[]]
    const k = Math.sqrt((size(a) * size(b)) / size(outShape) / size(outShape.slice(0, -2))) // m*k * k*n / m*n
    return 2 * size(outShape) * k
  }
  if (name === 'Conv2D' || name === 'CuspConvBiasAct') return 2 * size(outShape) * size(inShapes[1]!.slice(0, 3)) // out * kh*kw*ci
  if (name === 'Conv2DBackpropInput') return 2 * size(inShapes[0]) * size(inShapes[1]!.slice(0, 3)) // dy * kh*kw*ci
  if (name === 'Conv2DBackpropFilter') return 2 * size(inShapes[1]) * size(outShape.slice(0, 3)) // dy * kh*kw*ci
  return undefined
}

/**
 * One HVP chunk (250 examples) on wasm in this thread, by kernel: every wasm kernel is wrapped to
 * add up the process CPU time it takes (outermost kernel calls only; composed kernels count as
 * one), over `reps` HVPs. CPU time, not wall time: the machine is shared. The θ caches (dense and
 * conv paths) are off while profiling (every HVP a fresh θ); `sameThetaMs` is the CPU time per HVP
 * with them on, at one θ (the steady state of an eigen-iteration; the tape path does not cache).
 */
async function profileHvp(
  spec: ModelSpec,
  data: Dataset,
  theta: Float32Array,
  v: Float32Array,
  reps = 3,
): Promise<{
  totalMs: number
  sameThetaMs: number
  rows: Array<{ kernel: string; ms: number; share: number; calls: number; gflops?: number }>
}> {
  await initEngine('wasm')
  const model = buildModel(spec)
  const budget = setDenseCacheBytes(0)
  const reuse = setConvReuse(false)
  const m = Math.min(250, data.n)
  const d = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2]
  const chunk = { x: data.x.subarray(0, m * d), y: data.y.subarray(0, m), n: m }
  chunkHvp(model, theta, v, chunk) // warm-up
  const acc = new Map<string, { ms: number; calls: number; flops: number; counted: boolean }>()
  let depth = 0
  const saved = tf.getKernelsForBackend('wasm')
  for (const k of saved) {
    const inner = k.kernelFunc
    tf.unregisterKernel(k.kernelName, 'wasm')
    tf.registerKernel({
      ...k,
      kernelFunc: (a) => {
        if (depth > 0) return inner(a)
        depth++
        const c0 = process.cpuUsage()
        try {
          const out = inner(a)
          const used = process.cpuUsage(c0)
          const e = acc.get(k.kernelName) ?? { ms: 0, calls: 0, flops: 0, counted: false }
          e.ms += (used.user + used.system) / 1000
          e.calls++
          const first = (Array.isArray(out) ? out[0] : out) as tf.TensorInfo
          const f = flopsOf(
            k.kernelName,
            Object.values(a.inputs).map((t) => [...(t as tf.TensorInfo).shape]),
            [...first.shape],
          )
          if (f !== undefined) {
            e.flops += f
            e.counted = true
          }
          acc.set(k.kernelName, e)
          return out
        } finally {
          depth--
        }
      },
    })
  }
  const c0 = process.cpuUsage()
  for (let r = 0; r < reps; r++) chunkHvp(model, theta, v, chunk)
  const used = process.cpuUsage(c0)
  for (const k of saved) {
    tf.unregisterKernel(k.kernelName, 'wasm')
    tf.registerKernel(k)
  }
  const totalMs = (used.user + used.system) / 1000 / reps
  setDenseCacheBytes(budget)
  setConvReuse(true)
  chunkHvp(model, theta, v, chunk) // fills the cache
  const s0 = process.cpuUsage()
  for (let r = 0; r < reps; r++) chunkHvp(model, theta, v, chunk)
  const sUsed = process.cpuUsage(s0)
  const sameThetaMs = (sUsed.user + sUsed.system) / 1000 / reps
  setConvReuse(reuse)
  const kernelMs = [...acc.values()].reduce((s, e) => s + e.ms, 0) / reps
  const rows = [...acc.entries()]
    .map(([kernel, e]) => ({
      kernel,
      ms: e.ms / reps,
      share: e.ms / reps / totalMs,
      calls: e.calls / reps,
      ...(e.counted ? { gflops: e.flops / e.ms / 1e6 } : {}),
    }))
    .sort((x, y) => y.ms - x.ms)
  const calls = [...acc.values()].reduce((s, e) => s + e.calls, 0) / reps
  rows.push({ kernel: '(outside kernels: engine, tape)', ms: totalMs - kernelMs, share: (totalMs - kernelMs) / totalMs, calls })
  return { totalMs, sameThetaMs, rows }
}

/**
 * `calls` HVPs of one chunk on wasm in this thread: tf.memory().numTensors, the wasm heap's size
 * and this process's RSS before and after (a leak shows as growth; the wasm heap never shrinks, so
 * it must stop growing after the warm-up call). θ changes every fourth call, so the θ cache (on
 * here, as in a worker thread) is emptied and refilled along the way.
 */
async function leakLoop(
  spec: ModelSpec,
  data: Dataset,
  theta: Float32Array,
  v: Float32Array,
  calls: number,
  m: number,
): Promise<{ tensors: [number, number]; wasm_heap_mb: [number, number]; rss_mb: [number, number]; js_heap_used_mb: [number, number] }> {
  await initEngine('wasm')
  const model = buildModel(spec)
  const d = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2]
  const chunk = { x: data.x.subarray(0, m * d), y: data.y.subarray(0, m), n: m }
  const reuse = setConvReuse(true)
  chunkHvp(model, theta, v, chunk) // warm-up: first calls compile and size the heap
  const heapMb = (): number => +((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.byteLength / 2 ** 20).toFixed(1)
  const rss = (): number => +(process.memoryUsage().rss / 2 ** 20).toFixed(1)
  const js = (): number => +(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)
  const start = { tensors: tf.memory().numTensors, heap: heapMb(), rss: rss(), js: js() }
  const other = nudged(theta)
  for (let i = 0; i < calls; i++) chunkHvp(model, i % 4 === 3 ? other : theta, v, chunk)
  chunkHvp(model, theta, v, chunk) // back to the warm-up's θ: the same cache contents as at the start
  const tensors = tf.memory().numTensors
  setConvReuse(reuse)
  return {
    tensors: [start.tensors, tensors],
    wasm_heap_mb: [start.heap, heapMb()],
    rss_mb: [start.rss, rss()],
    js_heap_used_mb: [start.js, js()],
  }
}

/** The goals of issue 13 for each model, ratios ours (2 workers) / PyTorch (2 threads, OpenBLAS). */
const goals: Record<string, string> = {
  cnn: 'loss <= 0.5, gradient <= 0.7, HVP <= 0.5',
  mlp: 'gradient <= 2.0, HVP <= 2.0',
  alexnet: 'HVP <= 1.0',
}

const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`).padStart(8)

for (const name of models) {
  const spec = specs[name]
  if (spec === undefined) throw new Error(`unknown model ${name}; choose from ${Object.keys(specs).join(', ')}`)
  const n = name === 'alexnet' ? nAlexnet : N
  const model = buildModel(spec)
  const data = dataset(n, 1, spec.inputShape)
  const theta = initParams(model, 1)
  const r = createRng(2, 'bench-v')
  const v = Float32Array.from({ length: model.size }, () => r.normal())

  const dir = mkdtempSync(join(tmpdir(), 'cusp-bench-hvp-'))
  writeFileSync(
    join(dir, 'header.json'),
    JSON.stringify({
      spec,
      n,
      reduction: 'mean',
      params: model.params.map((p) => ({ name: p.name, shape: p.shape, offset: p.offset })),
      time: { repeats: peerRepeats, threads: peerThreads },
    }),
  )
  writeFileSync(join(dir, 'theta.f32'), theta)
  writeFileSync(join(dir, 'x.f32'), data.x)
  writeFileSync(join(dir, 'y.i32'), data.y)
  writeFileSync(join(dir, 'v.f32'), v)

  console.log(`\n${name}: ${model.size} parameters, n = ${n} (seeded random), mean cross-entropy, ${rounds} rounds`)
  const w1 = await createObjective({ spec, data, workers: 1, backend: 'wasm' })
  const w2 = await createObjective({ spec, data, workers: 2, backend: 'wasm' })
  // Warm-up: one call of each kind per pool, as the peer warms up each call before timing it (first
  // calls compile; warming up only the HVP left the loss and gradient of round 1 cold).
  for (const w of [w1, w2]) {
    await w.loss(theta)
    await w.gradient(theta)
    await w.hvp(theta, v)
  }
  const samples: Record<string, Figures[]> = { wasm1: [], wasm2: [], torch: [], cpu1: [], cpu2: [], torchCpu: [], torchCpu2: [] }
  const same1 = { wall: [] as number[], cpu: [] as number[] }
  const loadBefore = loadavg()[0]!
  let torchVersion = ''
  let peerBlas: PeerBlas | undefined
  let peerRss = 0
  for (let round = 0; round < rounds; round++) {
    samples['wasm1']!.push(await timeOurs(w1, theta, v, samples['cpu1'], same1))
    const p = await timePeer(dir)
    torchVersion = p.torch
    if (peerBlas === undefined) warnIfHandicapped(p.blas, peerThreads)
    peerBlas = p.blas
    peerRss = Math.max(peerRss, p.peakRssMb)
    samples['torch']!.push(p)
    samples['torchCpu2']!.push(p.cpu)
    samples['wasm2']!.push(await timeOurs(w2, theta, v, samples['cpu2']))
    samples['torchCpu']!.push(await timePeerCpu(dir))
    process.stdout.write(`  round ${round + 1}/${rounds} done\n`)
  }
  await w1.dispose()
  await w2.dispose()
  rmSync(dir, { recursive: true, force: true })

  const med = (k: string): Figures => {
    const xs = samples[k]!
    return { loss: median(xs.map((f) => f.loss)), grad: median(xs.map((f) => f.grad)), hvp: median(xs.map((f) => f.hvp)) }
  }
  const ours = { wasm_1worker: med('wasm1'), wasm_2workers: med('wasm2') }
  const oursCpu = { wasm_1worker: med('cpu1'), wasm_2workers: med('cpu2') }
  const load = [loadBefore, loadavg()[0]!]
  const peerCpu = med('torchCpu')
  const peer = med('torch')
  let cpu: Figures | undefined
  if (withCpu) {
    const small = dataset(100, 1, spec.inputShape)
    const c = await createObjective({ spec, data: small, workers: 1, backend: 'cpu' })
    cpu = await timeOurs(c, theta, v)
    await c.dispose()
  }
  const rssMb = Math.round(process.resourceUsage().maxRSS / 1024)
  console.log(
    `  load average ${load.map((l) => l.toFixed(1)).join(' -> ')} on ${availableParallelism()} cores (wall times inflate with it; CPU time less so)`,
  )
  console.log(
    `  peer BLAS: ${peerBlas?.kind} (${peerBlas?.openblas_config ?? peerBlas?.libraries.join(', ')}), OpenBLAS threads ${peerBlas?.openblas_threads ?? '-'}, torch threads ${peerBlas?.torch_threads}`,
  )
  console.log(`  peak RSS: ours ${rssMb} MB (this process so far), PyTorch ${peerRss} MB`)
  console.log(`  ${''.padEnd(24)}${'loss'.padStart(8)}${'gradient'.padStart(10)}${'HVP'.padStart(9)}`)
  const row = (label: string, f: Figures): void =>
    console.log(`  ${label.padEnd(24)}${fmt(f.loss)}${fmt(f.grad).padStart(10)}${fmt(f.hvp).padStart(9)}`)
  row(`PyTorch ${torchVersion} (2 threads)`, peer)
  row('  CPU time, PyTorch 2 thr', med('torchCpu2'))
  row('wasm, 1 worker', ours.wasm_1worker)
  row('wasm, 2 workers', ours.wasm_2workers)
  row('  CPU time, 1 worker', oursCpu.wasm_1worker)
  row('  CPU time, 2 workers', oursCpu.wasm_2workers)
  row('  CPU time, PyTorch 1 thr', peerCpu)
  if (cpu !== undefined) row('cpu backend, n = 100', cpu)
  const ratio = (f: Figures): Figures => ({ loss: f.loss / peer.loss, grad: f.grad / peer.grad, hvp: f.hvp / peer.hvp })
  const r1 = ratio(ours.wasm_1worker)
  const r2 = ratio(ours.wasm_2workers)
  console.log(`  ratio ours/peer, 1 worker : loss ${r1.loss.toFixed(2)}  gradient ${r1.grad.toFixed(2)}  HVP ${r1.hvp.toFixed(2)}`)
  console.log(
    `  ratio ours/peer, 2 workers: loss ${r2.loss.toFixed(2)}  gradient ${r2.grad.toFixed(2)}  HVP ${r2.hvp.toFixed(2)}   (goal: ${goals[name] ?? 'none set'})`,
  )
  const rc = {
    loss: oursCpu.wasm_1worker.loss / peerCpu.loss,
    grad: oursCpu.wasm_1worker.grad / peerCpu.grad,
    hvp: oursCpu.wasm_1worker.hvp / peerCpu.hvp,
  }
  console.log(
    `  CPU-time ratio, 1 worker / PyTorch 1 thread: loss ${rc.loss.toFixed(2)}  gradient ${rc.grad.toFixed(2)}  HVP ${rc.hvp.toFixed(2)}   (load-robust)`,
  )

  console.log(
    `  HVP again at the same θ, 1 worker: ${fmt(median(same1.wall))} wall, ${fmt(median(same1.cpu))} CPU (the R-operator paths reuse the θ-only work)`,
  )
  const { totalMs, sameThetaMs, rows: prof } = await profileHvp(spec, data, theta, v)
  const leak = leakCalls > 0 ? await leakLoop(spec, data, theta, v, leakCalls, Math.min(leakN, n)) : undefined
  if (leak !== undefined)
    console.log(
      `  ${leakCalls} HVPs of ${Math.min(leakN, n)} examples: tensors ${leak.tensors[0]} -> ${leak.tensors[1]}, wasm heap ${leak.wasm_heap_mb[0]} -> ${leak.wasm_heap_mb[1]} MB, RSS ${leak.rss_mb[0]} -> ${leak.rss_mb[1]} MB, JS heap used ${leak.js_heap_used_mb[0]} -> ${leak.js_heap_used_mb[1]} MB`,
    )
  console.log(`  one HVP chunk (250 examples) on wasm: ${totalMs.toFixed(0)} ms CPU, by kernel:`)
  for (const p of prof.filter((q, i) => i < 10 || q.kernel.startsWith('('))) {
    const per = p.kernel.startsWith('(') ? `  (${((1000 * p.ms) / Math.max(1, p.calls)).toFixed(0)} us per kernel call)` : ''
    console.log(
      `    ${p.kernel.padEnd(34)}${p.ms.toFixed(1).padStart(7)} ms ${(100 * p.share).toFixed(0).padStart(3)}% ${String(p.calls).padStart(4)} calls${p.gflops !== undefined ? `  ${p.gflops.toFixed(1)} GFLOP/s` : ''}${per}`,
    )
  }
  const round1 = (f: Figures): Figures => ({ loss: Math.round(f.loss), grad: Math.round(f.grad), hvp: Math.round(f.hvp) })
  const round2 = (f: Figures): Figures => ({ loss: +f.loss.toFixed(2), grad: +f.grad.toFixed(2), hvp: +f.hvp.toFixed(2) })
  console.log(
    JSON.stringify({
      bench: 'hvp',
      model: name,
      n,
      params: model.size,
      data: 'seeded-random',
      rounds,
      per_round: `each kind: 1 warm-up call, then the median of ${peerRepeats} calls, each at a new θ (ours and the peer alike)`,
      load_average: load.map((l) => +l.toFixed(1)),
      ours_ms: {
        wasm_1worker: round1(ours.wasm_1worker),
        wasm_2workers: round1(ours.wasm_2workers),
        ...(cpu ? { cpu_n100: round1(cpu) } : {}),
      },
      ours_ms_min_med_max: { wasm_1worker: spread(samples['wasm1']!), wasm_2workers: spread(samples['wasm2']!) },
      peer_ms: { ...round1(peer), torch: torchVersion, threads: peerThreads },
      peer_ms_min_med_max: spread(samples['torch']!),
      peer_blas: peerBlas,
      peer_cpu_ms_2threads: round1(med('torchCpu2')),
      peer_cpu_ms_1thread: round1(peerCpu),
      ours_cpu_ms: { wasm_1worker: round1(oursCpu.wasm_1worker), wasm_2workers: round1(oursCpu.wasm_2workers) },
      ours_hvp_same_theta_1worker: { wall_ms: Math.round(median(same1.wall)), cpu_ms: Math.round(median(same1.cpu)) },
      ratio: { wasm_1worker: round2(r1), wasm_2workers: round2(r2), cpu_1worker_vs_torch_1thread: round2(rc) },
      peak_rss_mb: { ours_process_so_far: rssMb, peer: peerRss },
      ...(leak !== undefined ? { leak: { hvps: leakCalls, examples: Math.min(leakN, n), ...leak } } : {}),
      profile_hvp_chunk_cpu_ms: +totalMs.toFixed(1),
      profile_hvp_chunk_same_theta_cpu_ms: +sameThetaMs.toFixed(1),
      engine_share: +prof.find((q) => q.kernel.startsWith('('))!.share.toFixed(3),
      engine_us_per_kernel_call: +(
        (1000 * prof.find((q) => q.kernel.startsWith('('))!.ms) /
        Math.max(1, prof.find((q) => q.kernel.startsWith('('))!.calls)
      ).toFixed(1),
      profile_hvp_chunk: prof
        .filter((q, i) => i < 8 || q.kernel.startsWith('('))
        .map((p) => ({
          kernel: p.kernel,
          ms: +p.ms.toFixed(1),
          calls: p.calls,
          ...(p.gflops !== undefined ? { gflops: +p.gflops.toFixed(1) } : {}),
        })),
    }),
  )
}
