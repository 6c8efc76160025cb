/**
 * cusp's wasm SIMD convolution kernels (conv.as, AssemblyScript, built into conv-wasm.ts by
 * build-conv.mjs), instantiated on tfjs-backend-wasm's own memory like kernels.ts: kernels read
 * tensors where tfjs keeps them and write outputs tfjs allocated. One instance per backend memory.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { convWasmBase64 } from './conv-wasm.ts'

/** The exports of conv.as (pointers are byte offsets in the tfjs wasm heap). */
export interface ConvKernels {
  padCopy(src: number, dst: number, n: number, h: number, w: number, ci: number, hp: number, wp: number, pt: number, pl: number): void
  packFilter(f: number, dst: number, taps: number, tapSize: number, cin: number, cout: number, sc: number, so: number, flip: number): void
  conv(...args: number[]): void
  convPos(...args: number[]): void
  filterGrad(...args: number[]): void
  reluMask(dy: number, y: number, dz: number, count: number): void
  avgPoolReluMask(
    dy: number,
    y: number,
    dz: number,
    n: number,
    h: number,
    w: number,
    c: number,
    s: number,
    oh: number,
    ow: number,
    mult: number,
  ): void
}

interface MemoryOf {
  wasm: { asm: { memory: WebAssembly.Memory } }
}

let compiled: WebAssembly.Module | undefined
const instances = new WeakMap<WebAssembly.Memory, ConvKernels>()

/** The convolution kernels bound to this backend's memory. */
export function convKernels(backend: BackendWasm): ConvKernels {
  const memory = (backend as unknown as MemoryOf).wasm.asm.memory
  let k = instances.get(memory)
  if (k === undefined) {
    compiled ??= new WebAssembly.Module(Buffer.from(convWasmBase64, 'base64'))
    k = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as ConvKernels
    instances.set(memory, k)
  }
  return k
}
