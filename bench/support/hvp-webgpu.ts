/**
 * `npm run bench -- hvp --backend webgpu [--models cnn,alexnet] [--n-cnn 1000] [--n-alexnet 5000]
 *  [--rounds 3] [--chunk 500] [--wasm-n 100] [--peer auto|cuda|cpu|none]`: full-batch loss, gradient and
 * Hessian-vector product (paper §3.3) of the reference CNN (28x28x1) and AlexNet-CIFAR (32x32x3) on
 * seeded-random images, on the webgpu backend (in this thread, one device), against PyTorch on the
 * same inputs in the same run (bench/peers/torch_hessian.py --time, on CUDA when PyTorch sees a GPU:
 * fp32, TF32 off), and against cusp's wasm backend. wasm is timed on `--wasm-n` images in one thread
 * and scaled linearly to N (the products are sums over examples); the 2-core figure assumes perfect
 * scaling over 2 workers, which favours wasm, so the stated speedup is a lower bound. Medians of the
 * rounds. One JSON line per model, then the summary JSON line (last line of output).
 * Also the entry of the packed GPU check (scripts/gpu-pack.sh), so it imports no test helpers.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initEngine, type EngineInfo } from '../../src/science/engine.ts'
import { chunkGradientAsync, chunkHvpAsync, chunkLossAsync, chunks, type Dataset } from '../../src/science/hvp.ts'
import { buildModel, initParams, type Model, type ModelSpec } from '../../src/science/models.ts'
import { createRng } from '../../src/science/rng.ts'

type Figures = { loss: number; grad: number; hvp: number }

const SPECS: Record<string, ModelSpec> = {
  cnn: { arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10, pool: 'avg' },
  alexnet: { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10 },
}
const DEFAULT_N: Record<string, number> = { cnn: 1000, alexnet: 5000 }

function dataset(n: number, seed: number, shape: [number, number, number]): Dataset {
  const r = createRng(seed, 'bench-data')
  const x = new Float32Array(n * shape[0] * shape[1] * shape[2])
  for (let i = 0; i < x.length; i++) x[i] = r.uniform()
  const y = new Int32Array(n)
  for (let i = 0; i < n; i++) y[i] = r.nextUint32() % 10
  return { x, y, n, shape }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? NaN

/** One full-batch call of each product, in this thread, read back once per chunk; wall ms. */
async function timeCalls(
  m: Model,
  data: Dataset,
  theta: Float32Array,
  v: Float32Array,
  chunk: number,
): Promise<Figures & { hvNorm: number }> {
  const parts = chunks(m, data, chunk)
  const t0 = performance.now()
  for (const c of parts) await chunkLossAsync(m, theta, c)
  const t1 = performance.now()
  for (const c of parts) await chunkGradientAsync(m, theta, c)
  const t2 = performance.now()
  const acc = new Float64Array(m.size)
  for (const c of parts) (await chunkHvpAsync(m, theta, v, c)).forEach((a, i) => (acc[i]! += a))
  const t3 = performance.now()
  let s = 0
  for (const a of acc) s += (a / data.n) ** 2
  return { loss: t1 - t0, grad: t2 - t1, hvp: t3 - t2, hvNorm: Math.sqrt(s) }
}

function peer(dir: string, device: string, python: string): (Figures & Record<string, unknown>) | { error: string } {
  const r = spawnSync(python, ['bench/peers/torch_hessian.py', '--time', '--device', device, dir], { encoding: 'utf8' })
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() ?? 'failed' }
  const f = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown> & { loss_ms: number; grad_ms: number; hvp_ms: number }
  return { ...f, loss: f.loss_ms, grad: f.grad_ms, hvp: f.hvp_ms }
}

function peerDevice(want: string, python: string): string | undefined {
  if (want === 'none') return undefined
  if (want !== 'auto') return want
  const r = spawnSync(python, ['-c', 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")'], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

const round = (f: Figures): Figures => ({ loss: +f.loss.toFixed(1), grad: +f.grad.toFixed(1), hvp: +f.hvp.toFixed(1) })
const ratio = (a: Figures, b: Figures): Figures => ({
  loss: +(a.loss / b.loss).toFixed(3),
  grad: +(a.grad / b.grad).toFixed(3),
  hvp: +(a.hvp / b.hvp).toFixed(3),
})

/** Runs the webgpu bench with the CLI arguments `args`; returns the summary (also printed). */
export async function benchWebgpu(args: string[]): Promise<Record<string, unknown>> {
  const opt = (name: string, dflt: string): string => {
    const i = args.lastIndexOf(`--${name}`) // the last one wins: gpu-check.sh puts its defaults first
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt
  }
  const rounds = Number(opt('rounds', '3'))
  const chunk = Number(opt('chunk', '500'))
  const wasmN = Number(opt('wasm-n', '100'))
  const python = process.env.CUSP_PYTHON ?? 'python3'
  const models = opt('models', 'cnn,alexnet').split(',')
  const device = peerDevice(opt('peer', 'auto'), python)
  let engine: EngineInfo | undefined
  const results: Record<string, unknown>[] = []
  for (const name of models) {
    const spec = SPECS[name]
    if (spec === undefined) throw new Error(`unknown model ${name}; choose from ${Object.keys(SPECS).join(', ')}`)
    const N = Number(opt(`n-${name}`, String(DEFAULT_N[name])))
    const m = buildModel(spec)
    const data = dataset(N, 1, spec.inputShape)
    const theta = initParams(m, 1)
    const r = createRng(2, 'bench-v')
    const v = Float32Array.from({ length: m.size }, () => r.normal())

    engine = await initEngine('webgpu')
    await timeCalls(m, data, theta, v, chunk) // warm-up: shaders compile, buffers pool
    const gpu: Figures[] = []
    let hvNorm = 0
    for (let k = 0; k < rounds; k++) {
      const f = await timeCalls(m, data, theta, v, chunk)
      hvNorm = f.hvNorm
      gpu.push(f)
    }
    const webgpu = { loss: median(gpu.map((f) => f.loss)), grad: median(gpu.map((f) => f.grad)), hvp: median(gpu.map((f) => f.hvp)) }

    await initEngine('wasm')
    const small = dataset(Math.min(wasmN, N), 1, spec.inputShape)
    await timeCalls(m, small, theta, v, 250) // warm-up
    const w = await timeCalls(m, small, theta, v, 250)
    const scale = N / small.n
    const wasm1 = { loss: w.loss * scale, grad: w.grad * scale, hvp: w.hvp * scale }
    const wasm2 = { loss: wasm1.loss / 2, grad: wasm1.grad / 2, hvp: wasm1.hvp / 2 }

    let torch: ReturnType<typeof peer> | undefined
    if (device !== undefined) {
      const dir = mkdtempSync(join(tmpdir(), 'cusp-bench-webgpu-'))
      writeFileSync(
        join(dir, 'header.json'),
        JSON.stringify({
          spec,
          n: N,
          reduction: 'mean',
          params: m.params.map((p) => ({ name: p.name, shape: p.shape, offset: p.offset })),
          time: { repeats: rounds, threads: 2 },
        }),
      )
      writeFileSync(join(dir, 'theta.f32'), theta)
      writeFileSync(join(dir, 'x.f32'), data.x)
      writeFileSync(join(dir, 'y.i32'), data.y)
      writeFileSync(join(dir, 'v.f32'), v)
      torch = peer(dir, device, python)
      rmSync(dir, { recursive: true, force: true })
    }
    const torchFig = torch !== undefined && !('error' in torch) ? torch : undefined
    const line = {
      bench: 'hvp-webgpu',
      model: name,
      n: N,
      params: m.size,
      chunk,
      rounds,
      adapter: engine.versions.adapter,
      hv_norm: +hvNorm.toPrecision(6),
      webgpu_ms: round(webgpu),
      wasm_ms_scaled: { one_thread: round(wasm1), two_cores_ideal: round(wasm2), measured_n: small.n },
      peer_ms: torchFig
        ? { ...round(torchFig), torch: torchFig['torch'], device: torchFig['device'], device_name: torchFig['device_name'] }
        : { error: torch && 'error' in torch ? torch.error : 'no PyTorch peer' },
      ratio_webgpu_over_peer: torchFig ? ratio(webgpu, torchFig) : null,
      speedup_vs_wasm_2cores: ratio(wasm2, webgpu),
    }
    console.log(
      `${name}: ${m.size} params, n = ${N}: webgpu HVP ${webgpu.hvp.toFixed(0)} ms, wasm (2 cores, scaled) ${wasm2.hvp.toFixed(0)} ms, peer ${torchFig ? `${torchFig.hvp.toFixed(0)} ms on ${String(torchFig['device'])}` : 'none'}`,
    )
    console.log(JSON.stringify(line))
    results.push(line)
  }
  const summary = {
    bench: 'hvp',
    backend: 'webgpu',
    adapter: engine?.versions.adapter,
    versions: { webgpu: engine?.versions.webgpu, 'tfjs-backend-webgpu': engine?.versions['tfjs-backend-webgpu'] },
    models: results,
  }
  console.log(JSON.stringify(summary))
  return summary
}
