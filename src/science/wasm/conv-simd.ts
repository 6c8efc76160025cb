/**
 * The convolutions through cusp's own SIMD kernels (simd/conv.as): Conv2D, the stride-1
 * Conv2DBackpropInput (a valid convolution of dy padded by k-1-pad with the filter rotated 180
 * degrees and its channel axes swapped) and Conv2DBackpropFilter, NHWC float32, dilation 1, any
 * channel count. Inputs that need padding are copied once, zero-padded, into scratch memory so the
 * kernels never test bounds. Filters are packed into panels of 8 output channels, and the packed
 * copy is cached per backend, keyed by the tensor's data id *and* heap offset, shape and use
 * (tfjs reuses a data id for a reshaped view, and a data id may be moved), so the forward pass, the
 * backward pass and the double-backward passes of an HVP pack each filter once. Where a tenth or
 * more of the window taps fall in the padding (small maps: AlexNet-CIFAR's 4x4 and 2x2 layers), the
 * kernels skip them (conv.as convPos and the filter gradient's pixel lists), with the same bits. Each function
 * returns undefined where it does not apply (the caller keeps the composed or shipped kernel).
 */
import type { backend_util, TensorInfo } from '@tensorflow/tfjs'
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm'
import { convKernels } from './simd/conv-kernels.ts'
import { allocScratch, freeScratch, heapF32, pointerOf } from './simd/kernels.ts'

type Use = 'forward' | 'input-grad'

interface Packed {
  dataId: object
  offset: number
  shape: string
  use: Use
  ptr: number
  floats: number
}

/** Packed filters per backend, most recently used last; bounded in count and bytes (freed on eviction). */
const caches = new WeakMap<BackendWasm, Packed[]>()
const CACHE_ENTRIES = 16
const CACHE_FLOATS = 16 * 1024 * 1024 // 64 MiB

function packedFilter(backend: BackendWasm, filter: TensorInfo, use: Use): number {
  const [fh, fw, ci, co] = filter.shape as [number, number, number, number]
  const offset = pointerOf(backend, filter.dataId)
  const shape = filter.shape.join(',')
  let cache = caches.get(backend)
  if (cache === undefined) caches.set(backend, (cache = []))
  const i = cache.findIndex((e) => e.dataId === filter.dataId && e.offset === offset && e.shape === shape && e.use === use)
  if (i >= 0) {
    const hit = cache.splice(i, 1)[0]!
    cache.push(hit)
    return hit.ptr
  }
  const [cin, cout] = use === 'forward' ? [ci, co] : [co, ci]
  const size = fh * fw * cin * co8(cout)
  const ptr = allocScratch(backend, size)
  if (use === 'forward') convKernels(backend).packFilter(offset, ptr, fh * fw, ci * co, ci, co, co, 1, 0)
  else convKernels(backend).packFilter(offset, ptr, fh * fw, ci * co, co, ci, 1, co, 1)
  cache.push({ dataId: filter.dataId, offset, shape, use, ptr, floats: size })
  let total = cache.reduce((s, e) => s + e.floats, 0)
  while (cache.length > 1 && (cache.length > CACHE_ENTRIES || total > CACHE_FLOATS)) {
    const old = cache.shift()!
    total -= old.floats
    freeScratch(backend, old.ptr)
  }
  return ptr
}

const co8 = (c: number): number => (c + 7) & ~7

/** Free every cached packed filter of this backend (tests; the cache is otherwise bounded). */
export function clearPackedFilters(backend: BackendWasm): void {
  for (const e of caches.get(backend) ?? []) freeScratch(backend, e.ptr)
  caches.delete(backend)
}

/** Whether the SIMD kernels apply: float32, dilation 1, a non-empty output. */
function applies(info: backend_util.Conv2DInfo, ...ts: TensorInfo[]): boolean {
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1 || info.dataFormat !== 'channelsLast') return false
  if (ts.some((t) => t.dtype !== 'float32')) return false
  return info.batchSize * info.outHeight * info.outWidth * info.outChannels > 0 && info.inChannels > 0
}

/**
 * The input as the kernels read it: rows [0, hp) and columns [0, wp) from the padded corner, in
 * place when no padding is needed, else a zero-padded (or cropped) copy in scratch (to free).
 */
function paddedInput(
  backend: BackendWasm,
  x: TensorInfo,
  hp: number,
  wp: number,
  pt: number,
  pl: number,
): { ptr: number; rows: number; cols: number; scratch: number; inside: [number, number, number, number] } {
  const [n, h, w, c] = x.shape as [number, number, number, number]
  const src = pointerOf(backend, x.dataId)
  if (pt === 0 && pl === 0 && hp <= h && wp <= w) return { ptr: src, rows: h, cols: w, scratch: 0, inside: [0, h, 0, w] }
  const scratch = allocScratch(backend, n * hp * wp * c)
  convKernels(backend).padCopy(src, scratch, n, h, w, c, hp, wp, pt, pl)
  const inside: [number, number, number, number] = [Math.max(0, pt), Math.min(hp, h + pt), Math.max(0, pl), Math.min(wp, w + pl)]
  // Positions are packed into 16 bits each in the filter gradient: past that, no taps are skipped.
  return { ptr: scratch, rows: hp, cols: wp, scratch, inside: skipPadding && hp < 32768 && wp < 32768 ? inside : [0, hp, 0, wp] }
}

let skipPadding = true

/**
 * Whether the kernels skip the taps that fall in the zero padding (products 0 * w, whose skipping
 * leaves every sum's bits as they are for finite operands); off, they run over the padded copy as
 * if it were data (tests compare the two bit for bit).
 */
export function setSkipPadding(on: boolean): void {
  skipPadding = on
}

/** The share of the window taps of all output positions that lie inside the input (the rest are padding). */
function insideShare(
  inside: [number, number, number, number],
  oh: number,
  ow: number,
  fh: number,
  fw: number,
  sh: number,
  sw: number,
): number {
  const [r0, r1, c0, c1] = inside
  let rows = 0
  for (let oy = 0; oy < oh; oy++) rows += Math.max(0, Math.min(fh, r1 - oy * sh) - Math.max(0, r0 - oy * sh))
  let cols = 0
  for (let ox = 0; ox < ow; ox++) cols += Math.max(0, Math.min(fw, c1 - ox * sw) - Math.max(0, c0 - ox * sw))
  return (rows * cols) / (oh * fh * ow * fw)
}

/**
 * Runs conv.as's convolution on a prepared input: position-major without the padding taps
 * (convPos) where they are a tenth of the work or more, else raster order over the padded copy.
 */
function runConv(
  backend: BackendWasm,
  src: ReturnType<typeof paddedInput>,
  packed: number,
  y: number,
  n: number,
  ci: number,
  oh: number,
  ow: number,
  co: number,
  fh: number,
  fw: number,
  sh: number,
  sw: number,
  bp: number,
  relu: boolean,
): void {
  const k = convKernels(backend)
  const share = insideShare(src.inside, oh, ow, fh, fw, sh, sw)
  if (share < 0.9) {
    // Images per group: about 64 KiB of their windows' inside taps at one position.
    const perImage = Math.max(1, share * fh * fw * ci)
    const group = Math.max(4, Math.min(Math.ceil(n / 4) * 4, Math.floor(16384 / perImage / 4) * 4))
    const [r0, r1, c0, c1] = src.inside
    k.convPos(src.ptr, packed, y, group, n, src.rows, src.cols, ci, oh, ow, co, fh, fw, sh, sw, r0, r1, c0, c1, bp, relu ? 1 : 0)
    return
  }
  const group = groupOf(n * oh * ow, sh * sw * ci, 8192)
  const ind = allocScratch(backend, group) // corners
  k.conv(src.ptr, packed, y, ind, group, n, src.rows, src.cols, ci, oh, ow, co, fh, fw, sh, sw, bp, relu ? 1 : 0, 0)
  freeScratch(backend, ind)
}

/** Pixels per group: about `floats` floats of per-pixel data, a multiple of 4, at least 16. */
function groupOf(pixels: number, perPixel: number, floats: number): number {
  const g = Math.max(16, Math.floor(floats / Math.max(1, perPixel) / 4) * 4)
  return Math.min(g, Math.max(4, Math.ceil(pixels / 4) * 4))
}

/**
 * y = conv2d(x, filter) for x [n,h,w,ci], filter [fh,fw,ci,co]; any stride and padding. With
 * `bias` [co], y = conv2d(x, filter) + bias, and with `relu` then max(0, y), in the kernel's store
 * (the same float32 arithmetic as separate Add and Relu kernels, without their passes over y).
 */
export function simdConv2D(
  backend: BackendWasm,
  x: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  bias?: TensorInfo,
  relu = false,
): TensorInfo | undefined {
  return simdConvPool(backend, x, filter, info, bias, relu, 'none')?.[0]
}

/**
 * simdConv2D, and with `pool` also the 2x2 average pool of its result (window = stride = 2,
 * 'valid'), in the convolution's store with AvgPool's bits (simd/conv.as conv): returns [y, pooled]
 * ('both') or [pooled] ('only'; y is never written). Pooling needs even output sizes (else
 * undefined: the caller pools apart).
 */
export function simdConvPool(
  backend: BackendWasm,
  x: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  bias: TensorInfo | undefined,
  relu: boolean,
  pool: 'none' | 'both' | 'only',
): TensorInfo[] | undefined {
  if (!applies(info, x, filter)) return undefined
  if (bias !== undefined && (bias.dtype !== 'float32' || bias.shape.length !== 1 || bias.shape[0] !== filter.shape[3])) return undefined
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow } = info
  if (pool !== 'none' && (oh % 2 !== 0 || ow % 2 !== 0)) return undefined
  const [n, , , ci] = x.shape as [number, number, number, number]
  const co = filter.shape[3]!
  const out = pool === 'only' ? undefined : backend.makeOutput([n, oh, ow, co], 'float32')
  const pooled = pool === 'none' ? undefined : backend.makeOutput([n, oh / 2, ow / 2, co], 'float32')
  const packed = packedFilter(backend, filter, 'forward')
  const src = paddedInput(backend, x, (oh - 1) * sh + fh, (ow - 1) * sw + fw, info.padInfo.top, info.padInfo.left)
  let bp = 0
  if (bias !== undefined) {
    // The bias padded with zeros to whole panels of 8 (the kernel loads 8 per panel).
    bp = allocScratch(backend, co8(co))
    const heap = heapF32(backend)
    const b = pointerOf(backend, bias.dataId) >> 2
    heap.fill(0, bp >> 2, (bp >> 2) + co8(co))
    heap.copyWithin(bp >> 2, b, b + co)
  }
  if (pooled === undefined) runConv(backend, src, packed, pointerOf(backend, out!.dataId), n, ci, oh, ow, co, fh, fw, sh, sw, bp, relu)
  else {
    const group = groupOf(n * oh * ow, sh * sw * ci, 8192)
    const ind = allocScratch(backend, group + group / 4) // corners, then the pooling windows' offsets in y
    convKernels(backend).conv(
      src.ptr,
      packed,
      out === undefined ? 0 : pointerOf(backend, out.dataId),
      ind,
      group,
      n,
      src.rows,
      src.cols,
      ci,
      oh,
      ow,
      co,
      fh,
      fw,
      sh,
      sw,
      bp,
      relu ? 1 : 0,
      pointerOf(backend, pooled.dataId),
    )
    freeScratch(backend, ind)
  }
  if (bp !== 0) freeScratch(backend, bp)
  if (src.scratch !== 0) freeScratch(backend, src.scratch)
  return [out, pooled].filter((t) => t !== undefined)
}

/**
 * dx for dy [n,oh,ow,co] and filter [fh,fw,ci,co], stride 1 (info from the forward shapes), as a
 * valid convolution of dy padded by k-1-pad on each side; a negative pad (a forward pad past k-1,
 * whose outermost dy rows reach no input) crops instead. Undefined for other strides.
 */
export function simdConvInputGrad(
  backend: BackendWasm,
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo | undefined {
  if (!applies(info, dy, filter) || info.strideHeight !== 1 || info.strideWidth !== 1) return undefined
  const { filterHeight: fh, filterWidth: fw, inHeight: h, inWidth: w } = info
  const { top, left } = info.padInfo
  const pt = fh - 1 - top
  const pl = fw - 1 - left
  const hp = h + fh - 1
  const wp = w + fw - 1
  const [n, , , co] = dy.shape as [number, number, number, number]
  const ci = filter.shape[2]!
  const out = backend.makeOutput([n, h, w, ci], 'float32')
  const packed = packedFilter(backend, filter, 'input-grad')
  const src = paddedInput(backend, dy, hp, wp, pt, pl)
  runConv(backend, src, packed, pointerOf(backend, out.dataId), n, co, h, w, ci, fh, fw, 1, 1, 0, false)
  if (src.scratch !== 0) freeScratch(backend, src.scratch)
  return out
}

/** dW [fh,fw,ci,co] for x [n,h,w,ci] and dy [n,oh,ow,co]; any stride and padding. */
export function simdConvFilterGrad(
  backend: BackendWasm,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo | undefined {
  if (!applies(info, x, dy)) return undefined
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow } = info
  const [n, , , ci] = x.shape as [number, number, number, number]
  const co = dy.shape[3]!
  const out = backend.makeOutput([fh, fw, ci, co], 'float32')
  const src = paddedInput(backend, x, (oh - 1) * sh + fh, (ow - 1) * sw + fw, info.padInfo.top, info.padInfo.left)
  const pixels = n * oh * ow
  const group = groupOf(pixels, co8(co), 32768)
  const work = allocScratch(backend, group * co8(co) + 3 * group) // dy panels, then corners, positions, a pixel list
  // Pixels are listed per tap only where the padding taps are a tenth of the work or more (the lists cost about that).
  const sparse = insideShare(src.inside, oh, ow, fh, fw, sh, sw) < 0.9
  const [r0, r1, c0, c1] = sparse ? src.inside : [0, src.rows, 0, src.cols]
  convKernels(backend).filterGrad(
    src.ptr,
    pointerOf(backend, dy.dataId),
    pointerOf(backend, out.dataId),
    work,
    group,
    n,
    src.rows,
    src.cols,
    ci,
    oh,
    ow,
    co,
    fh,
    fw,
    sh,
    sw,
    r0,
    r1,
    c0,
    c1,
  )
  freeScratch(backend, work)
  if (src.scratch !== 0) freeScratch(backend, src.scratch)
  return out
}
