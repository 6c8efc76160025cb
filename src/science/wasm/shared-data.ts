/**
 * Identity and same-dtype Cast for the wasm backend, sharing data instead of copying it. The
 * shipped kernels copy every byte; the tfjs engine clones each tensor a gradient saves for the
 * backward pass (and core's gradients cast float32 to float32), so one CNN HVP chunk spent ~100
 * calls and ~6% of its time copying (docs/architecture.md "Engine facts": "the engine copies saved
 * tensors"). tfjs tensors are immutable and the wasm backend reference-counts data ids (its own
 * Reshape already shares), so a clone can share: exactly what the cpu backend's Identity does.
 * Strings and real dtype changes keep the shipped kernels.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { callOriginal, WASM } from './kernel-calls.ts'

function share(backend: BackendWasm, x: TensorInfo): TensorInfo {
  backend.incRef(x.dataId)
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype }
}

function identity(args: { inputs: { x: TensorInfo }; backend: BackendWasm }): TensorInfo {
  const { inputs, backend } = args
  if (inputs.x.dtype === 'string') return callOriginal('Identity', backend, inputs)
  return share(backend, inputs.x)
}

function cast(args: { inputs: { x: TensorInfo }; backend: BackendWasm; attrs: { dtype: string } }): TensorInfo {
  const { inputs, backend, attrs } = args
  if (inputs.x.dtype === 'string' || inputs.x.dtype !== attrs.dtype) return callOriginal('Cast', backend, inputs, attrs)
  return share(backend, inputs.x)
}

/** Replaces wasm's 'Identity' (shares the data id; strings copied as before). */
export const identityConfig: KernelConfig = { kernelName: 'Identity', backendName: WASM, kernelFunc: identity as unknown as KernelFunc }

/** Replaces wasm's 'Cast' (same dtype: shares; otherwise the shipped conversion). */
export const castConfig: KernelConfig = { kernelName: 'Cast', backendName: WASM, kernelFunc: cast as unknown as KernelFunc }
