/**
 * Chooses and initialises the tfjs backend the science code runs on, and installs cusp's second-order
 * gradient registrations (gradients/index.ts) and, on wasm, its kernel replacements (wasm-kernels.ts),
 * so that the exact Hessian-vector products of paper §3.3 are correct wherever they run. 'auto' prefers
 * @tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node (native TensorFlow; loaded by dynamic import
 * because they are optional and absent on most dev machines), then wasm (XNNPACK), then the pure-JS cpu
 * backend. 'webgpu' (Dawn through Vulkan, webgpu/setup.ts) is only ever chosen explicitly: on a machine
 * without a GPU it finds Mesa's software driver, which is correct but slow. The backend name and package
 * versions (and, on webgpu, the adapter) are returned for the fingerprint's env record, since changing
 * backend changes the bits.
 */
import * as tf from '@tensorflow/tfjs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { installGradients } from './gradients/index.ts'
import { installWasmKernels } from './wasm-kernels.ts'
import { watchDevice } from './webgpu/errors.ts'
import { loadWebgpu } from './webgpu/setup.ts'

export type { BackendChoice } from './backends.ts'
import type { BackendChoice } from './backends.ts'

/** The backend in use and the versions of the tfjs packages that computed with it. */
export interface EngineInfo {
  backend: string
  versions: Record<string, string>
}

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const
const extraVersions: Record<string, string> = {}
let wasmReady: Promise<boolean> | undefined

/**
 * Selects a backend (default 'auto'), installs the gradient registrations, and resolves with what was
 * selected. 'auto' takes the first of tensorflow, wasm, cpu that loads and initialises. Idempotent:
 * calling again with the same choice changes nothing; another choice switches backend (tests compare
 * backends in one process). Rejects, saying why, when an explicit choice is unavailable.
 */
export async function initEngine(choice: BackendChoice = 'auto'): Promise<EngineInfo> {
  installGradients()
  const candidates: Exclude<BackendChoice, 'auto'>[] = choice === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [choice]
  const failures: string[] = []
  for (const backend of candidates) {
    const why = await unavailable(backend)
    if (why !== undefined) {
      failures.push(why)
      continue
    }
    if (tf.getBackend() !== backend && !(await tf.setBackend(backend))) {
      failures.push(`tfjs backend '${backend}' failed to initialise`)
      continue
    }
    await tf.ready()
    if (backend === 'webgpu') watchDevice((tf.backend() as unknown as { device: Parameters<typeof watchDevice>[0] }).device)
    return { backend: tf.getBackend(), versions: versions() }
  }
  throw new Error(choice === 'webgpu' ? failures.join('; ') : `no usable tfjs backend for '${choice}': ${failures.join('; ')}`)
}

/** Why a backend cannot be used here (its package is missing or fails to load), or undefined. */
async function unavailable(backend: Exclude<BackendChoice, 'auto'>): Promise<string | undefined> {
  switch (backend) {
    case 'cpu':
      return undefined
    case 'wasm':
      return (await loadWasm()) ? undefined : 'the wasm backend could not be loaded (@tensorflow/tfjs-backend-wasm)'
    case 'webgpu': {
      const loaded = await loadWebgpu()
      if (typeof loaded === 'string') return loaded
      Object.assign(extraVersions, loaded.versions, { adapter: `${loaded.adapter.vendor}/${loaded.adapter.architecture}` })
      return undefined
    }
    case 'tensorflow':
      return (await loadNative()) ? undefined : `backend 'tensorflow' needs ${NATIVE_PACKAGES.join(' or ')}, which are not installed`
    default:
      return unreachable(backend)
  }
}

/** Imports tfjs-node(-gpu) if installed; it registers the 'tensorflow' backend on import. */
async function loadNative(): Promise<boolean> {
  if (tf.findBackendFactory('tensorflow') !== null) return true
  for (const name of NATIVE_PACKAGES) {
    try {
      const mod = (await import(name)) as { version?: unknown }
      const v = typeof mod.version === 'string' ? mod.version : (mod.version as Record<string, unknown> | undefined)?.['tfjs-node']
      if (typeof v === 'string') extraVersions[name] = v
      if (tf.findBackendFactory('tensorflow') !== null) return true
    } catch {
      // not installed (the usual case off the GPU image): try the next one
    }
  }
  return false
}

/** Imports the wasm backend, points it at its .wasm files, and installs cusp's kernel replacements. */
function loadWasm(): Promise<boolean> {
  wasmReady ??= (async () => {
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm')
      const require = createRequire(import.meta.url)
      const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))
      wasm.setWasmPaths(dist + path.sep)
      extraVersions['tfjs-backend-wasm'] = wasm.version_wasm
      installWasmKernels() // before the backend initialises, so replaced kernels' setup runs
      return tf.findBackendFactory('wasm') !== null
    } catch {
      return false
    }
  })()
  return wasmReady
}

function versions(): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(tf.version)) if (typeof v === 'string') out[k] = v
  for (const [k, v] of Object.entries(extraVersions)) out[k] = v
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function unreachable(x: never): never {
  throw new Error(`unknown backend choice ${String(x)}`)
}
