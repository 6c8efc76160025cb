/**
 * cusp's own wasm SIMD kernels (kernels.as, AssemblyScript, built into kernels-wasm.ts by
 * build.mjs), instantiated on tfjs-backend-wasm's own memory: the module imports the backend's
 * WebAssembly.Memory, so kernels read tensors where tfjs keeps them and write outputs tfjs
 * allocated: no copy between two heaps. One instance per backend memory.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { kernelsWasmBase64 } from './kernels-wasm.ts'

/** The exports of kernels.as (pointers are byte offsets in the tfjs wasm heap). */
export interface SimdKernels {
  filterGrad(
    xp: number,
    dy: number,
    dw: number,
    n: number,
    hp: number,
    wp: number,
    ci: number,
    oh: number,
    ow: number,
    co: number,
    fh: number,
    fw: number,
    sh: number,
    sw: number,
  ): void
  packB(b: number, bp: number, k: number, n: number, sbk: number, sbn: number): void
  gemm(a: number, bp: number, c: number, m: number, n: number, k: number, sam: number, sak: number): void
  epilogue(c: number, bias: number, t: number, mask: number, m: number, n: number): void
  colSum(x: number, out: number, m: number, n: number): void
}

/** What cusp reads of the wasm backend's emscripten module and data map (not in its typings). */
interface WasmInternals {
  wasm: { asm: { memory: WebAssembly.Memory }; _malloc(bytes: number): number; _free(ptr: number): void; HEAPF32: Float32Array }
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined }
}

let compiled: WebAssembly.Module | undefined
const instances = new WeakMap<WebAssembly.Memory, SimdKernels>()

function internals(backend: BackendWasm): WasmInternals {
  return backend as unknown as WasmInternals
}

/** cusp's SIMD kernels bound to this backend's memory. */
export function simdKernels(backend: BackendWasm): SimdKernels {
  const memory = internals(backend).wasm.asm.memory
  let k = instances.get(memory)
  if (k === undefined) {
    compiled ??= new WebAssembly.Module(Buffer.from(kernelsWasmBase64, 'base64'))
    k = new WebAssembly.Instance(compiled, { env: { memory } }).exports as unknown as SimdKernels
    instances.set(memory, k)
  }
  return k
}

/** Byte offset of a tensor's data in the wasm heap. */
export function pointerOf(backend: BackendWasm, dataId: object): number {
  const d = internals(backend).dataIdMap.get(dataId)
  if (d === undefined) throw new Error('cusp wasm kernels: tensor data not found on the wasm backend')
  return d.memoryOffset
}

/** Scratch memory in the wasm heap (float32s); release with freeScratch. */
export function allocScratch(backend: BackendWasm, floats: number): number {
  return internals(backend).wasm._malloc(floats * 4)
}

export function freeScratch(backend: BackendWasm, ptr: number): void {
  internals(backend).wasm._free(ptr)
}

/** The heap as float32s (take it after every allocation: growing the heap detaches old views). */
export function heapF32(backend: BackendWasm): Float32Array {
  return internals(backend).wasm.HEAPF32
}
