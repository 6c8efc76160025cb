/**
 * cusp's kernel fixes for @tensorflow/tfjs-backend-webgpu 4.22 on the second-order path.
 *
 * AddN: the shipped kernel binds every input as its own storage buffer in one shader, and a WebGPU
 * device allows `maxStorageBuffersPerShaderStage` of them (8 unless more is requested; the output
 * takes one). The HVP's ∇L·v = Σ_i ∇_i L·v_i over a network's parameter tensors (12 for AlexNet)
 * exceeds it; the device then only prints a validation error and the product comes back silently
 * wrong. The replacement sums at most `limit - 1` tensors per shader, folding left to right (the
 * running sum first in every later group), as the shipped Concat does for the same limit.
 */
import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs'
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs'

const WEBGPU = 'webgpu'

interface DeviceBackend {
  device: { limits: { maxStorageBuffersPerShaderStage: number } }
  disposeData(id: unknown): void
}

let installed = false

/** Most inputs one AddN shader may bind on this device (one binding is the output). */
export function addNGroupSize(backend: DeviceBackend): number {
  return Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1)
}

/** Replaces the webgpu AddN with the grouped one, once per thread; the backend must be registered. */
export function installWebgpuKernels(): void {
  if (installed) return
  const original = getKernel('AddN', WEBGPU)
  if (original === undefined) throw new Error('installWebgpuKernels: tfjs-backend-webgpu registered no AddN kernel (was it imported?)')
  const shipped = original.kernelFunc
  const kernelFunc: KernelFunc = (args) => {
    const tensors = args.inputs as unknown as TensorInfo[]
    const backend = args.backend as unknown as DeviceBackend
    const group = addNGroupSize(backend)
    if (tensors.length <= group) return shipped(args)
    let acc = shipped({ ...args, inputs: tensors.slice(0, group) as never }) as TensorInfo
    for (let i = group; i < tensors.length; i += group - 1) {
      const next = shipped({ ...args, inputs: [acc, ...tensors.slice(i, i + group - 1)] as never }) as TensorInfo
      backend.disposeData(acc.dataId)
      acc = next
    }
    return acc
  }
  unregisterKernel('AddN', WEBGPU)
  registerKernel({ ...original, kernelFunc } satisfies KernelConfig)
  installed = true
}
