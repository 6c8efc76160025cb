/**
 * Chooses and initialises the tfjs backend the science code runs on, and installs cusp's second-order
 * gradient registrations (gradients/index.ts) and, on wasm, its kernel replacements (wasm-kernels.ts),
 * so that the exact Hessian-vector products of paper §3.3 are correct wherever they run. 'auto' prefers
 * @tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node (native TensorFlow; loaded by dynamic import
 * because they are optional and absent on most dev machines), then wasm (XNNPACK), then the pure-JS cpu
 * backend. The backend name and package versions are returned for the fingerprint's env record, since
 * changing backend changes the bits (DESIGN.md "Engine facts").
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { installGradients } from './gradients/index.ts';
import { installWasmKernels } from './wasm-kernels.ts';

export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

/** The backend in use and the versions of the tfjs packages that computed with it. */
export interface EngineInfo { backend: string; versions: Record<string, string> }

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
const extraVersions: Record<string, string> = {};
let wasmReady: Promise<boolean> | undefined;

/**
 * Selects a backend (default 'auto'), installs the gradient registrations, and resolves with what was
 * selected. Idempotent: calling again with the same choice changes nothing; another choice switches
 * backend (tests compare backends in one process). Rejects when an explicit choice is unavailable.
 */
export async function initEngine(choice: BackendChoice = 'auto'): Promise<EngineInfo> {
  installGradients();
  const backend = await pick(choice);
  if (tf.getBackend() !== backend) {
    const ok = await tf.setBackend(backend);
    if (!ok) throw new Error(`tfjs backend '${backend}' failed to initialise`);
  }
  await tf.ready();
  return { backend: tf.getBackend(), versions: versions() };
}

async function pick(choice: BackendChoice): Promise<string> {
  switch (choice) {
    case 'cpu':
      return 'cpu';
    case 'wasm':
      if (await loadWasm()) return 'wasm';
      throw new Error('the wasm backend could not be loaded (@tensorflow/tfjs-backend-wasm)');
    case 'tensorflow':
      if (await loadNative()) return 'tensorflow';
      throw new Error(`backend 'tensorflow' needs ${NATIVE_PACKAGES.join(' or ')}, which are not installed`);
    case 'auto':
      if (await loadNative()) return 'tensorflow';
      if (await loadWasm()) return 'wasm';
      return 'cpu';
    default:
      return unreachable(choice);
  }
}

/** Imports tfjs-node(-gpu) if installed; it registers the 'tensorflow' backend on import. */
async function loadNative(): Promise<boolean> {
  if (tf.findBackendFactory('tensorflow') !== null) return true;
  for (const name of NATIVE_PACKAGES) {
    try {
      const mod = (await import(name)) as { version?: Record<string, string> };
      const v = mod.version?.['tfjs-node'];
      if (v !== undefined) extraVersions[name] = v;
      if (tf.findBackendFactory('tensorflow') !== null) return true;
    } catch {
      // not installed (the usual case off the GPU image): try the next one
    }
  }
  return false;
}

/** Imports the wasm backend, points it at its .wasm files, and installs cusp's kernel replacements. */
function loadWasm(): Promise<boolean> {
  wasmReady ??= (async () => {
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      const require = createRequire(import.meta.url);
      const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
      wasm.setWasmPaths(dist + path.sep);
      extraVersions['tfjs-backend-wasm'] = wasm.version_wasm;
      installWasmKernels(); // before the backend initialises, so replaced kernels' setup runs
      return tf.findBackendFactory('wasm') !== null;
    } catch {
      return false;
    }
  })();
  return wasmReady;
}

function versions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tf.version)) if (typeof v === 'string') out[k] = v;
  for (const [k, v] of Object.entries(extraVersions)) out[k] = v;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function unreachable(x: never): never {
  throw new Error(`unknown backend choice ${String(x)}`);
}
