/**
 * Runs the independent PyTorch oracle (`torch_hessian.py` beside this file, Debian python3-torch
 * through /usr/bin/python3) on cusp's own weights and data, and reads its answers back: loss, gradient,
 * Hessian-vector product and the exact top-k Hessian eigenpairs of small models (paper §3.3 computes
 * these with PyTorch autograd; this is how cusp's tfjs engine is checked against it), one case or
 * several in one Python process (`runTorchPeers`: torch's import is paid once). Also the
 * `--time` mode the `hvp` benchmark uses. Test and benchmark support only, hence outside src/: it
 * writes a temp dir, spawns a process and reads files. The file formats are documented at the top of
 * torch_hessian.py.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import type { Dataset, Reduction } from '../../src/science/hvp.ts'
import type { ModelSpec, ParamSpec } from '../../src/science/models.ts'

/** The interpreter that has Debian's torch (the pyenv python3 on PATH does not). */
export const TORCH_PYTHON = '/usr/bin/python3'
/** The oracle script. */
export const TORCH_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'torch_hessian.py')

/** What to ask the oracle. `params` (cusp's layout) is checked against the layout torch rebuilds. */
export interface TorchPeerInput {
  spec: ModelSpec
  theta: Float32Array
  data: Dataset
  reduction?: Reduction
  params?: Pick<ParamSpec, 'name' | 'shape' | 'offset'>[]
  /** Direction of the HVP (omitted: no HVP). */
  v?: Float32Array
  /** k > 0: assemble the full Hessian (float64) and return its top-k eigenpairs; small models only. */
  eigen?: number
  /** Precision torch computes in (default float64, the oracle's). */
  dtype?: 'float64' | 'float32'
}

/** The oracle's answers (vectors in cusp's θ layout, float64). */
export interface TorchPeerResult {
  loss: number
  grad: Float64Array
  hvp?: Float64Array
  /** Top-k eigenvalues, descending (algebraic), with unit eigenvectors. */
  eigenvalues?: number[]
  eigenvectors?: Float64Array[]
  /** All eigenvalues, descending. */
  spectrum?: Float64Array
  /** max_i ||H u_i - λ_i u_i|| of the returned pairs; max |H - H^T| before symmetrising. */
  eigenResidual?: number
  hessianAsymmetry?: number
  /** ||H v - hvp|| / ||hvp||: the oracle's full Hessian and its double-backward HVP agree (when both asked). */
  hvpVsHessian?: number
  /** [torch's name, cusp's name] where they differ (shapes and offsets must agree or it fails). */
  nameMismatches: [string, string][]
  torch: string
  seconds: number
}

/** Medians of the `--time` mode (float32, `threads` intra-op threads). */
export interface TorchTiming {
  loss_ms: number
  grad_ms: number
  hvp_ms: number
  threads: number
  n: number
  size: number
  repeats: number
  torch: string
}

/** True when /usr/bin/python3 can import torch (Debian python3-torch installed). */
export async function torchAvailable(): Promise<boolean> {
  const r = await execa(TORCH_PYTHON, ['-c', 'import torch, numpy'], { reject: false, timeout: 60_000 })
  return r.exitCode === 0
}

/** Computes loss, gradient and, as asked, HVP and top-k eigenpairs with PyTorch. Throws with torch's stderr on failure. */
export async function runTorchPeer(input: TorchPeerInput): Promise<TorchPeerResult> {
  return (await runTorchPeers([input]))[0]!
}

/**
 * `runTorchPeer` for several inputs in one Python process (torch's import, seconds of CPU, is paid
 * once); the results in the order of the inputs. Throws with torch's stderr if any case fails.
 */
export async function runTorchPeers(inputs: TorchPeerInput[]): Promise<TorchPeerResult[]> {
  if (inputs.length === 0) return []
  const parent = await mkdtemp(join(tmpdir(), 'cusp-torch-'))
  try {
    const dirs = inputs.map((_, i) => join(parent, String(i)))
    for (const [i, input] of inputs.entries()) await writeInputs(dirs[i]!, input, {})
    await run(dirs)
    return await Promise.all(inputs.map((input, i) => readResult(dirs[i]!, input)))
  } finally {
    await rm(parent, { recursive: true, force: true })
  }
}

async function readResult(dir: string, input: TorchPeerInput): Promise<TorchPeerResult> {
  const r = JSON.parse(await readFile(join(dir, 'result.json'), 'utf8')) as Omit<
    TorchPeerResult,
    'grad' | 'hvp' | 'eigenvectors' | 'spectrum'
  >
  const out: TorchPeerResult = { ...r, grad: await readF64(join(dir, 'grad.f64')) }
  if (input.v !== undefined) out.hvp = await readF64(join(dir, 'hvp.f64'))
  const k = input.eigen ?? 0
  if (k > 0) {
    const vecs = await readF64(join(dir, 'eigvecs.f64'))
    const p = input.theta.length
    out.eigenvectors = Array.from({ length: k }, (_, i) => vecs.slice(i * p, (i + 1) * p))
    out.spectrum = await readF64(join(dir, 'spectrum.f64'))
  }
  return out
}

/** Times torch's loss, gradient and HVP on the inputs (the peer of `npm run bench -- hvp`). */
export async function timeTorchPeer(input: TorchPeerInput, opts: { repeats?: number; threads?: number } = {}): Promise<TorchTiming> {
  const time = { repeats: opts.repeats ?? 5, threads: opts.threads ?? 2 }
  return withInputs(input, { time }, async (dir) => {
    const stdout = await run(['--time', dir])
    return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as TorchTiming
  })
}

async function withInputs<T>(input: TorchPeerInput, extra: object, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-torch-'))
  try {
    await writeInputs(dir, input, extra)
    return await body(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Writes one case's input files (header.json and the raw binaries) into `dir`, creating it. */
async function writeInputs(dir: string, input: TorchPeerInput, extra: object): Promise<void> {
  await mkdir(dir, { recursive: true })
  const header = {
    spec: input.spec,
    n: input.data.n,
    reduction: input.reduction ?? 'mean',
    dtype: input.dtype ?? 'float64',
    ...(input.params ? { params: input.params.map((p) => ({ name: p.name, shape: p.shape, offset: p.offset })) } : {}),
    ...(input.v ? { hvp: true } : {}),
    ...(input.eigen ? { eigen: input.eigen } : {}),
    ...extra,
  }
  await writeFile(join(dir, 'header.json'), JSON.stringify(header))
  await writeFile(join(dir, 'theta.f32'), bytes(input.theta))
  await writeFile(join(dir, 'x.f32'), bytes(input.data.x))
  await writeFile(join(dir, 'y.i32'), bytes(input.data.y))
  if (input.v) await writeFile(join(dir, 'v.f32'), bytes(input.v))
}

async function run(args: string[]): Promise<string> {
  const r = await execa(TORCH_PYTHON, [TORCH_SCRIPT, ...args], { reject: false })
  if (r.exitCode !== 0) throw new Error(`torch peer failed (exit ${r.exitCode}): ${r.stderr.trim() || r.stdout.trim()}`)
  return r.stdout
}

/** Little-endian bytes of a typed array (x86 and arm64 are little-endian; checked once). */
function bytes(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
}

async function readF64(path: string): Promise<Float64Array> {
  const buf = await readFile(path)
  const out = new Float64Array(buf.byteLength / 8)
  for (let i = 0; i < out.length; i++) out[i] = buf.readDoubleLE(i * 8)
  return out
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('torch-peer: big-endian hosts are not supported')
