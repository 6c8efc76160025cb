/**
 * Conv2DBackpropFilter through cusp's own SIMD kernel (simd/kernels.as `filterGrad`): a direct
 * register-blocked product dW[(kh,kw,ci), co] = sum over pixels of x-window values times dy, reading
 * dy where it lies (no per-call repacking) and x in place when no window reaches past its edges, or
 * from one zero-padded copy otherwise. Needs co a multiple of 8, dilation 1, NHWC, float32; any
 * stride and padding. Returns undefined when it does not apply (the caller composes from Conv2D).
 */
import type { backend_util, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { allocScratch, freeScratch, heapF32, pointerOf, simdKernels } from './simd/kernels.ts'

export function simdFilterGrad(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, info: backend_util.Conv2DInfo): TensorInfo | undefined {
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow } = info
  const { dilationHeight, dilationWidth } = info
  const [n, h, w, ci] = x.shape as [number, number, number, number]
  const co = dy.shape[3]!
  if (co % 8 !== 0 || dilationHeight !== 1 || dilationWidth !== 1 || x.dtype !== 'float32' || dy.dtype !== 'float32') return undefined
  if (n === 0 || oh === 0 || ow === 0) return undefined
  const { top: pt, left: pl } = info.padInfo
  // The rows and columns the windows reach, from the padded corner: [0, hp) x [0, wp).
  const hp = (oh - 1) * sh + fh
  const wp = (ow - 1) * sw + fw
  const inPlace = pt === 0 && pl === 0 && hp <= h && wp <= w
  const out = backend.makeOutput([fh, fw, ci, co], 'float32')
  let scratch = 0
  if (!inPlace) {
    scratch = allocScratch(backend, n * hp * wp * ci)
    padInto(heapF32(backend), pointerOf(backend, x.dataId) >> 2, scratch >> 2, n, h, w, ci, hp, wp, pt, pl)
  }
  const dwPtr = pointerOf(backend, out.dataId)
  heapF32(backend).fill(0, dwPtr >> 2, (dwPtr >> 2) + fh * fw * ci * co)
  const xp = inPlace ? pointerOf(backend, x.dataId) : scratch
  simdKernels(backend).filterGrad(
    xp,
    pointerOf(backend, dy.dataId),
    dwPtr,
    n,
    inPlace ? h : hp,
    inPlace ? w : wp,
    ci,
    oh,
    ow,
    co,
    fh,
    fw,
    sh,
    sw,
  )
  if (scratch !== 0) freeScratch(backend, scratch)
  return out
}

/** dst[b, r, c, :] = src[b, r - pt, c - pl, :] where in range, else 0 (float32 indices). */
function padInto(
  heap: Float32Array,
  src: number,
  dst: number,
  n: number,
  h: number,
  w: number,
  ci: number,
  hp: number,
  wp: number,
  pt: number,
  pl: number,
): void {
  heap.fill(0, dst, dst + n * hp * wp * ci)
  const c0 = Math.max(0, -pl) // first source column copied
  const c1 = Math.min(w, wp - pl) // one past the last
  if (c1 <= c0) return
  const len = (c1 - c0) * ci
  for (let b = 0; b < n; b++) {
    for (let r = Math.max(0, pt); r < Math.min(hp, h + pt); r++) {
      const s = src + ((b * h + (r - pt)) * w + c0) * ci
      heap.copyWithin(dst + ((b * hp + r) * wp + c0 + pl) * ci, s, s + len)
    }
  }
}
