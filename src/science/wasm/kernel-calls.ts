/**
 * Plumbing shared by cusp's wasm kernel replacements: calling another wasm kernel directly (no
 * tape, no engine bookkeeping), releasing the intermediate tensors a composed kernel makes, and
 * keeping the wasm backend's own kernel configs that a replacement delegates to. Kernels are
 * looked up in tfjs's registry at call time, so a composed kernel always runs whatever is
 * registered for its building blocks (Transpose, Conv2D, Slice, Reverse) on the 'wasm' backend.
 */
import { getKernel } from '@tensorflow/tfjs'
import type { KernelConfig, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'

/** The backend name every replacement registers under. */
export const WASM = 'wasm'

/** Kernel configs the wasm backend shipped with, saved before cusp replaced them (by name). */
export const originals = new Map<string, KernelConfig>()

/** Run the kernel currently registered as `name` on wasm; throws if none is registered. */
export function callKernel(name: string, backend: BackendWasm, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
  const config = getKernel(name, WASM)
  if (config === undefined) throw new Error(`wasm kernel '${name}' is not registered`)
  return config.kernelFunc({ inputs, backend, attrs }) as TensorInfo
}

/** Run the wasm backend's original kernel `name` (saved by installWasmKernels). */
export function callOriginal(name: string, backend: BackendWasm, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
  const config = originals.get(name) ?? getKernel(name, WASM)
  if (config === undefined) throw new Error(`wasm kernel '${name}' is not registered`)
  return config.kernelFunc({ inputs, backend, attrs }) as TensorInfo
}

/** Release intermediate tensors a composed kernel made (reference-counted by the backend). */
export function release(backend: BackendWasm, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId)
}

/** A transpose of `x` by `perm` through the registered wasm Transpose kernel. */
export function transpose(backend: BackendWasm, x: TensorInfo, perm: number[]): TensorInfo {
  return callKernel('Transpose', backend, { x }, { perm })
}

/** `x` viewed with another shape (shares the data, like every wasm Reshape). */
export function reshape(backend: BackendWasm, x: TensorInfo, shape: number[]): TensorInfo {
  return callKernel('Reshape', backend, { x }, { shape })
}

/** A real copy of `x` in fresh wasm memory (new data id), unlike Identity/Reshape which share. */
export function copyTensor(backend: BackendWasm, x: TensorInfo): TensorInfo {
  const out = backend.makeOutput([...x.shape], x.dtype)
  // Views are taken after the allocation: makeOutput may grow (and so detach) the wasm heap.
  const src = backend.typedArrayFromHeap(x) as Float32Array
  const dst = backend.typedArrayFromHeap(out) as Float32Array
  dst.set(src)
  return out
}

/** Product of a shape's entries (1 for a scalar). */
export function sizeOf(shape: readonly number[]): number {
  let s = 1
  for (const d of shape) s *= d
  return s
}
