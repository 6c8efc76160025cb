// cusp's own wasm SIMD convolution kernels, in AssemblyScript (compiled by build-conv.mjs beside this
// file into conv-wasm.ts). Like kernels.as, the module imports tfjs-backend-wasm's own memory, so
// every pointer is a byte offset in the tfjs wasm heap; it has no data segments, no globals it
// writes and no allocator. Layouts are NHWC; filters [fh, fw, ci, co].
//
// All three kernels see the input already padded (or cropped) so that every window is in range:
// image b's window for output pixel (oy, ox) starts at row oy*sh, column ox*sw of an image of
// hp rows of wp columns. A window row is then fw*ci contiguous floats, which is what the inner
// loops run over. Summation order is fixed by the shapes alone: forward and input gradient sum
// the taps k = (kh, kw, c) in order for every output; the filter gradient sums the pixels
// (b, oy, ox) in raster order for every tap. The same inputs give the same bits. No FMA: mul then
// add, rounded as a scalar reference would.

// dst[b, r, c, :] = src[b, r - pt, c - pl, :] where in range, else 0 (rows r < hp, columns c < wp):
// the padded (or cropped) copy of an input the kernels read.
export function padCopy(src: usize, dst: usize, n: i32, h: i32, w: i32, ci: i32, hp: i32, wp: i32, pt: i32, pl: i32): void {
  memory.fill(dst, 0, <usize>n * hp * wp * ci * 4)
  const c0 = max(0, -pl) // first source column copied
  const c1 = min(w, wp - pl) // one past the last
  if (c1 <= c0) return
  const len = <usize>(c1 - c0) * ci * 4
  const r0 = max(0, pt)
  const r1 = min(hp, h + pt)
  for (let b = 0; b < n; b++) {
    for (let r = r0; r < r1; r++) {
      const s = src + (<usize>((b * h + (r - pt)) * w + c0) * ci << 2)
      memory.copy(dst + (<usize>((b * hp + r) * wp + c0 + pl) * ci << 2), s, len)
    }
  }
}

// Packs a filter into panels of 8 output channels: panel j holds, for every tap k = (t, c) in
// order (t = kh*fw + kw, c < cin), the 8 outputs j*8 .. j*8+7 (zero past cout). Element (t, c, o)
// is read from f + 4 * (st * ci * co + c * sc + o * so) with st = t, or the mirrored tap
// taps - 1 - t when flip != 0 (the filter rotated by 180 degrees, for the input gradient).
//   forward:        cin = ci, cout = co, sc = co, so = 1, flip = 0
//   input gradient: cin = co, cout = ci, sc = 1, so = co, flip = 1 (channel axes swapped)
export function packFilter(f: usize, dst: usize, taps: i32, tapSize: i32, cin: i32, cout: i32, sc: i32, so: i32, flip: i32): void {
  const K = taps * cin
  for (let j0 = 0; j0 < cout; j0 += 8) {
    const w = min(8, cout - j0)
    let d = dst + (<usize>j0 * K << 2)
    for (let t = 0; t < taps; t++) {
      const st = flip != 0 ? taps - 1 - t : t
      const base = f + (<usize>(st * tapSize + j0 * so) << 2)
      for (let c = 0; c < cin; c++) {
        const row = base + (<usize>(c * sc) << 2)
        for (let j = 0; j < 8; j++) store<f32>(d + (<usize>j << 2), j < w ? load<f32>(row + (<usize>(j * so) << 2)) : 0)
        d += 32
      }
    }
  }
}

// Byte offsets (from xp) of the window corners of pixels p0 .. p0+count-1 in raster order, into ind.
function corners(ind: usize, p0: i32, count: i32, hp: i32, wp: i32, ci: i32, oh: i32, ow: i32, sh: i32, sw: i32): void {
  const per = oh * ow
  let b = p0 / per
  let r = p0 % per
  let oy = r / ow
  let ox = r % ow
  for (let i = 0; i < count; i++) {
    store<i32>(ind + (<usize>i << 2), ((b * hp + oy * sh) * wp + ox * sw) * ci << 2)
    if (++ox == ow) {
      ox = 0
      if (++oy == oh) {
        oy = 0
        b++
      }
    }
  }
}

// Per pixel p0 .. p0+count-1 in raster order, its window corner's row and column in xp
// ((oy * sh) << 16 | ox * sw), into pos.
function positions(pos: usize, p0: i32, count: i32, oh: i32, ow: i32, sh: i32, sw: i32): void {
  let r = p0 % (oh * ow)
  let oy = r / ow
  let ox = r % ow
  for (let i = 0; i < count; i++) {
    store<i32>(pos + (<usize>i << 2), (oy * sh) << 16 | ox * sw)
    if (++ox == ow) {
      ox = 0
      if (++oy == oh) oy = 0
    }
  }
}

// corners in 2x2-pool order (even oh and ow; p0 and count multiples of 4): pixel p is corner p & 3
// (top left, top right, bottom left, bottom right) of pooling window p >> 2, the windows in raster
// order; and at out, per window, the byte offset of its top left pixel in y (yPix bytes a pixel).
// Counters, not divisions, per window.
function quadCorners(ind: usize, out: usize, p0: i32, count: i32, hp: i32, wp: i32, ci: i32, oh: i32, ow: i32, sh: i32, sw: i32, yPix: i32): void {
  const pw = ow >> 1
  const per = (oh >> 1) * pw
  const q0 = p0 >> 2
  let b = q0 / per
  let qy = (q0 % per) / pw
  let qx = q0 % pw
  const right = sw * ci
  const down = sh * wp * ci
  for (let i = 0; i < count; i += 4) {
    const base = ((b * hp + 2 * qy * sh) * wp + 2 * qx * sw) * ci
    const o = ind + (<usize>i << 2)
    store<i32>(o, base << 2)
    store<i32>(o, (base + right) << 2, 4)
    store<i32>(o, (base + down) << 2, 8)
    store<i32>(o, (base + down + right) << 2, 12)
    store<i32>(out + (<usize>i), ((b * oh + 2 * qy) * ow + 2 * qx) * yPix)
    if (++qx == pw) {
      qx = 0
      if (++qy == oh >> 1) {
        qy = 0
        b++
      }
    }
  }
}

// Convolution y[n, oh, ow, cout] = sum over taps of xp windows times a packed filter (packFilter),
// valid windows only (pad first with padCopy). Both the forward pass (xp = padded x) and the stride-1
// input gradient (xp = dy padded by k-1-pad, filter packed flipped) run here. ind: scratch for
// `group` i32s. Register blocking: 4 pixels by 8 outputs (8 f32x4 accumulators, pixels4); pixels
// in groups so the group's input stays in cache across the panels. Optional epilogue (the fused
// forward of a conv layer): bias != 0 points at cout rounded up to 8 floats added to every pixel
// after its sum (the same float32 add as a separate bias add), and relu != 0 then takes max(0, .).
// pooled != 0 (even oh and ow, group a multiple of 4): also the 2x2 average pool of the result,
// [n, oh/2, ow/2, cout] at pooled, computed as tfjs-backend-wasm's AvgPool (XNNPACK) does, with its
// bits: the window's columns summed first, ((tr + br) + (tl + bl)) * 0.25; pixels then run in
// pool order (quadCorners; ind then holds group + group / 4 i32s) and y is written only where y != 0.
export function conv(
  xp: usize, wpk: usize, y: usize, ind: usize, group: i32,
  n: i32, hp: i32, wp: i32, ci: i32, oh: i32, ow: i32, cout: i32,
  fh: i32, fw: i32, sh: i32, sw: i32, bias: usize, relu: i32, pooled: usize,
): void {
  const P = n * oh * ow
  const L = fw * ci // one window row, contiguous
  const K = fh * L
  const rowBytes = <usize>(wp * ci) << 2
  const yPix = <usize>cout << 2
  const quads = pooled != 0 ? 1 : 0
  for (let g0 = 0; g0 < P; g0 += group) {
    const gn = min(group, P - g0)
    const tops = ind + (<usize>group << 2) // quads: per window, its top left pixel's offset in y
    if (quads != 0) quadCorners(ind, tops, g0, gn, hp, wp, ci, oh, ow, sh, sw, <i32>yPix)
    else corners(ind, g0, gn, hp, wp, ci, oh, ow, sh, sw)
    for (let j0 = 0; j0 < cout; j0 += 8) {
      const w = min(8, cout - j0)
      const panel = wpk + (<usize>j0 * K << 2)
      const bp = bias == 0 ? 0 : bias + (<usize>j0 << 2)
      for (let i = 0; i < gn; i += 4) {
        const last = gn - 1
        const q0 = xp + <usize>load<i32>(ind + (<usize>i << 2))
        const q1 = xp + <usize>load<i32>(ind + (<usize>min(i + 1, last) << 2))
        const q2 = xp + <usize>load<i32>(ind + (<usize>min(i + 2, last) << 2))
        const q3 = xp + <usize>load<i32>(ind + (<usize>min(i + 3, last) << 2))
        if (quads == 0) {
          pixels4(q0, q1, q2, q3, panel, fh, L, rowBytes, y + <usize>(g0 + i) * yPix + (<usize>j0 << 2), yPix, 2 * yPix, w, gn - i, bp, relu, 0, 0)
          continue
        }
        // Pooling window q: its four pixels, their top left one at offset tops[i / 4] in y.
        const q = (g0 + i) >> 2
        const top = y == 0 ? 0 : y + <usize>load<i32>(tops + <usize>i) + (<usize>j0 << 2)
        const po = pooled + <usize>q * yPix + (<usize>j0 << 2)
        pixels4(q0, q1, q2, q3, panel, fh, L, rowBytes, top, yPix, <usize>ow * yPix, w, 4, bp, relu, po, 0)
      }
    }
  }
}

// conv without its padding taps and without pooling, pixels in position-major order: for each
// output position (oy, ox) the window's taps that fall inside the unpadded input (rows [r0, r1) and
// columns [c0, c1) of xp) form one rectangle, the same for every image, so blocks of 4 images at
// one position share it and the taps outside (products 0 * w of the zero padding) are never
// computed. Each output still sums its taps k = (kh, kw, c) in order, less the skipped zero
// products: for finite weights x + (+-0) = x (the sums start at +0 and never become -0), so the
// bits are conv's. Images in groups of `group` (their windows stay in cache across the panels).
export function convPos(
  xp: usize, wpk: usize, y: usize, group: i32,
  n: i32, hp: i32, wp: i32, ci: i32, oh: i32, ow: i32, cout: i32,
  fh: i32, fw: i32, sh: i32, sw: i32, r0: i32, r1: i32, c0: i32, c1: i32, bias: usize, relu: i32,
): void {
  const K = fh * fw * ci
  const rowBytes = <usize>(wp * ci) << 2
  const img = <usize>hp * rowBytes
  const yPix = <usize>cout << 2
  const yImg = <usize>(oh * ow) * yPix
  const last = n - 1
  for (let oy = 0; oy < oh; oy++) {
    const ry = oy * sh
    const kh0 = max(0, r0 - ry)
    const kh1 = min(fh, r1 - ry)
    for (let ox = 0; ox < ow; ox++) {
      const rx = ox * sw
      const kw0 = max(0, c0 - rx)
      const kw1 = min(fw, c1 - rx)
      const cols = max(0, kw1 - kw0)
      const rows = cols > 0 ? max(0, kh1 - kh0) : 0
      const corner = xp + (<usize>((ry + kh0) * wp + rx + kw0) * ci << 2)
      const skip = <usize>((fw - cols) * ci) << 5
      const pOff = <usize>((kh0 * fw + kw0) * ci) << 5
      const yPos = y + <usize>(oy * ow + ox) * yPix
      for (let b0 = 0; b0 < n; b0 += group) {
        const bn = min(group, n - b0)
        for (let j0 = 0; j0 < cout; j0 += 8) {
          const w = min(8, cout - j0)
          const panel = wpk + (<usize>j0 * K << 2) + pOff
          const bp = bias == 0 ? 0 : bias + (<usize>j0 << 2)
          for (let i = 0; i < bn; i += 4) {
            const b = b0 + i
            const q0 = corner + <usize>b * img
            const q1 = corner + <usize>min(b + 1, last) * img
            const q2 = corner + <usize>min(b + 2, last) * img
            const q3 = corner + <usize>min(b + 3, last) * img
            pixels4(q0, q1, q2, q3, panel, rows, cols * ci, rowBytes, yPos + <usize>b * yImg + (<usize>j0 << 2), yImg, 2 * yImg, w, bn - i, bp, relu, 0, skip)
          }
        }
      }
    }
  }
}

// The convolution's micro-kernel: 4 pixels (window corners q0..q3) by the w (1..8) outputs of one
// filter panel, summed over the fh window rows of L floats (the panel advanced by `skip` bytes more
// after each row: the taps of the row that convPos skips), stored (unless o is 0) to the first
// `left` (1..4 or more) of the pixel rows at o, o + s1, o + s2, o + s2 + s1, after the epilogue
// (bias at bp unless 0, then relu unless 0); with po != 0 the four pixels are a 2x2 pooling window
// (top left, top right, bottom left, bottom right) and their average is stored at po. A function
// of its own, not inlined into the loops above, like taps4 below.
function pixels4(
  q0: usize, q1: usize, q2: usize, q3: usize, panel: usize, fh: i32, L: i32, rowBytes: usize, o: usize, s1: usize, s2: usize, w: i32,
  left: i32, bp: usize, relu: i32, po: usize, skip: usize,
): void {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0)
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0)
  let d0 = f32x4.splat(0), d1 = f32x4.splat(0)
  let e0 = f32x4.splat(0), e1 = f32x4.splat(0)
  let q = panel
  for (let kh = 0; kh < fh; kh++) {
    const ro = <usize>kh * rowBytes
    let r0 = q0 + ro
    let r1 = q1 + ro
    let r2 = q2 + ro
    let r3 = q3 + ro
    for (let t = 0; t < L; t++) {
      const w0 = v128.load(q)
      const w1 = v128.load(q, 16)
      const s0 = v128.load32_splat(r0)
      a0 = f32x4.add(a0, f32x4.mul(s0, w0))
      a1 = f32x4.add(a1, f32x4.mul(s0, w1))
      const s1 = v128.load32_splat(r1)
      b0 = f32x4.add(b0, f32x4.mul(s1, w0))
      b1 = f32x4.add(b1, f32x4.mul(s1, w1))
      const s2 = v128.load32_splat(r2)
      d0 = f32x4.add(d0, f32x4.mul(s2, w0))
      d1 = f32x4.add(d1, f32x4.mul(s2, w1))
      const s3 = v128.load32_splat(r3)
      e0 = f32x4.add(e0, f32x4.mul(s3, w0))
      e1 = f32x4.add(e1, f32x4.mul(s3, w1))
      q += 32
      r0 += 4
      r1 += 4
      r2 += 4
      r3 += 4
    }
    q += skip
  }
  if (bp != 0) {
    const c0 = v128.load(bp)
    const c1 = v128.load(bp, 16)
    a0 = f32x4.add(a0, c0)
    a1 = f32x4.add(a1, c1)
    b0 = f32x4.add(b0, c0)
    b1 = f32x4.add(b1, c1)
    d0 = f32x4.add(d0, c0)
    d1 = f32x4.add(d1, c1)
    e0 = f32x4.add(e0, c0)
    e1 = f32x4.add(e1, c1)
  }
  if (relu != 0) {
    const z = f32x4.splat(0)
    a0 = f32x4.max(a0, z)
    a1 = f32x4.max(a1, z)
    b0 = f32x4.max(b0, z)
    b1 = f32x4.max(b1, z)
    d0 = f32x4.max(d0, z)
    d1 = f32x4.max(d1, z)
    e0 = f32x4.max(e0, z)
    e1 = f32x4.max(e1, z)
  }
  if (po != 0) {
    // XNNPACK's order: the right column's pair, plus the left column's pair, times the scale.
    const quarter = f32x4.splat(0.25)
    const m0 = f32x4.mul(f32x4.add(f32x4.add(b0, e0), f32x4.add(a0, d0)), quarter)
    const m1 = f32x4.mul(f32x4.add(f32x4.add(b1, e1), f32x4.add(a1, d1)), quarter)
    storeRow(po, m0, m1, w)
  }
  if (o == 0) return
  storeRow(o, a0, a1, w)
  if (left > 1) storeRow(o + s1, b0, b1, w)
  if (left > 2) storeRow(o + s2, d0, d1, w)
  if (left > 3) storeRow(o + s2 + s1, e0, e1, w)
}

// The gradient through a relu of its output y: dz[i] = dy[i] * (y[i] > 0 ? 1 : 0), for `count`
// floats; the same product by the 0/1 step a separate relu gradient computes (y > 0 exactly when
// the relu's input is).
export function reluMask(dy: usize, y: usize, dz: usize, count: i32): void {
  const one = f32x4.splat(1)
  const zero = f32x4.splat(0)
  let i = 0
  for (; i + 4 <= count; i += 4) {
    const o = <usize>i << 2
    v128.store(dz + o, f32x4.mul(v128.load(dy + o), v128.and(f32x4.gt(v128.load(y + o), zero), one)))
  }
  for (; i < count; i++) {
    const o = <usize>i << 2
    store<f32>(dz + o, load<f32>(dy + o) * (load<f32>(y + o) > 0 ? <f32>1 : <f32>0))
  }
}

// The gradient through a relu and then an average pool of window = stride = s ('valid'): dz[b, r,
// col, :] = (dy[b, r / s, col / s, :] * mult) * (y[b, r, col, :] > 0 ? 1 : 0) for rows r < oh*s and
// columns col < ow*s, 0 elsewhere (cells no window covers); dy [n, oh, ow, c], y and dz [n, h, w, c],
// mult = 1 / (s*s) as float32. The same two float32 products, in the same order, as the pool's
// gradient (dy times mult) followed by reluMask, without the pass in between.
export function avgPoolReluMask(dy: usize, y: usize, dz: usize, n: i32, h: i32, w: i32, c: i32, s: i32, oh: i32, ow: i32, mult: f32): void {
  const m = f32x4.splat(mult)
  const one = f32x4.splat(1)
  const zero = f32x4.splat(0)
  const pix = <usize>c << 2
  const covered = <usize>(ow * s) * pix
  const rowBytes = <usize>w * pix
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < h; r++) {
      const o = (<usize>(b * h + r) * w) * pix
      if (r >= oh * s) {
        memory.fill(dz + o, 0, rowBytes)
        continue
      }
      const gRow = dy + (<usize>(b * oh + r / s) * ow) * pix
      for (let col = 0; col < ow * s; col++) {
        const g = gRow + <usize>(col / s) * pix
        const q = o + <usize>col * pix
        let k = 0
        for (; k + 4 <= c; k += 4) {
          const kb = <usize>k << 2
          const spread = f32x4.mul(v128.load(g + kb), m)
          v128.store(dz + q + kb, f32x4.mul(spread, v128.and(f32x4.gt(v128.load(y + q + kb), zero), one)))
        }
        for (; k < c; k++) {
          const kb = <usize>k << 2
          store<f32>(dz + q + kb, load<f32>(g + kb) * mult * (load<f32>(y + q + kb) > 0 ? <f32>1 : <f32>0))
        }
      }
      if (covered < rowBytes) memory.fill(dz + o + covered, 0, rowBytes - covered)
    }
  }
}

// Filter gradient dw[k, co] = sum over pixels p of X[p, k] * dy[p, co], k = (kh, kw, c), X the
// windows of xp (padded input) and p = (b, oy, ox) in raster order; dw is overwritten. Pixels go in
// groups of `group` (whole images or not: every channel count, 1 and 3 included, gets long inner
// loops): the group's dy is first copied into panels of 8 channels (work, group * co8 floats,
// co8 = co rounded up to 8; then the corners, the corners' positions and a pixel list, group i32s
// each), so the inner loop reads dy contiguously; for each block of 4 taps and each panel the 8
// accumulators are loaded from dw, run over the group's pixels and stored back (taps4), so each
// element sums pixels strictly in order whatever the grouping. Taps in a block need not share a
// window row (offsets are per tap). The unpadded input is rows [r0, r1) and columns [c0, c1) of
// xp: with ci a multiple of 4 a block's pixels whose tap lies outside it (a product 0 * dy) are
// skipped (taps4L), which leaves the sums' bits as they are (for finite dy: x + (+-0) = x, and a
// sum that starts at +0 never becomes -0).
export function filterGrad(
  xp: usize, dy: usize, dw: usize, work: usize, group: i32,
  n: i32, hp: i32, wp: i32, ci: i32, oh: i32, ow: i32, co: i32,
  fh: i32, fw: i32, sh: i32, sw: i32, r0: i32, r1: i32, c0: i32, c1: i32,
): void {
  const P = n * oh * ow
  const K = fh * fw * ci
  const co8 = (co + 7) & ~7
  const ind = work + (<usize>group * co8 << 2)
  const pos = ind + (<usize>group << 2)
  const list = pos + (<usize>group << 2)
  const dwRow = <usize>co << 2
  // Padding taps are skipped where a block of 4 taps always shares one window cell (ci a multiple of 4).
  const sparse = (ci & 3) == 0 && (r0 > 0 || c0 > 0 || r1 < hp || c1 < wp)
  memory.fill(dw, 0, <usize>K * co * 4)
  for (let g0 = 0; g0 < P; g0 += group) {
    const gn = min(group, P - g0)
    corners(ind, g0, gn, hp, wp, ci, oh, ow, sh, sw)
    if (sparse) positions(pos, g0, gn, oh, ow, sh, sw)
    let cell = -1
    let cnt = gn
    // dy rows g0 .. g0+gn-1 into panels [co8 / 8][gn][8], zero past co.
    for (let j0 = 0; j0 < co8; j0 += 8) {
      const w = min(8, co - j0)
      let d = work + (<usize>j0 * gn << 2)
      let s = dy + (<usize>(g0 * co + j0) << 2)
      for (let i = 0; i < gn; i++) {
        if (w == 8) {
          v128.store(d, v128.load(s))
          v128.store(d, v128.load(s, 16), 16)
        } else {
          for (let j = 0; j < 8; j++) store<f32>(d + (<usize>j << 2), j < w ? load<f32>(s + (<usize>j << 2)) : 0)
        }
        d += 32
        s += dwRow
      }
    }
    let k = 0
    for (; k + 4 <= K; k += 4) {
      const o0 = tapOffset(k, fw, ci, wp)
      const o1 = tapOffset(k + 1, fw, ci, wp)
      const o2 = tapOffset(k + 2, fw, ci, wp)
      const o3 = tapOffset(k + 3, fw, ci, wp)
      if (sparse && k / ci != cell) {
        // The group's pixels whose window cell (kh, kw) of these taps lies inside the input, in order.
        cell = k / ci
        const kh = cell / fw
        const kw = cell % fw
        cnt = 0
        for (let i = 0; i < gn; i++) {
          const q = load<i32>(pos + (<usize>i << 2))
          const ry = (q >> 16) + kh
          const rx = (q & 0xffff) + kw
          if (ry >= r0 && ry < r1 && rx >= c0 && rx < c1) {
            store<i32>(list + (<usize>cnt << 2), i)
            cnt++
          }
        }
      }
      if (cnt == gn) {
        for (let j0 = 0; j0 < co8; j0 += 8) {
          taps4(xp, ind, work + (<usize>j0 * gn << 2), gn, dw + ((<usize>k * co + j0) << 2), dwRow, min(8, co - j0), o0, o1, o2, o3)
        }
      } else if (cnt > 0) {
        for (let j0 = 0; j0 < co8; j0 += 8) {
          taps4L(xp, ind, list, cnt, work + (<usize>j0 * gn << 2), dw + ((<usize>k * co + j0) << 2), dwRow, min(8, co - j0), o0, o1, o2, o3)
        }
      }
    }
    for (; k < K; k++) {
      const o0 = tapOffset(k, fw, ci, wp)
      for (let j0 = 0; j0 < co8; j0 += 8) {
        taps1(xp, ind, work + (<usize>j0 * gn << 2), gn, dw + ((<usize>k * co + j0) << 2), min(8, co - j0), o0)
      }
    }
  }
}

// The filter gradient's micro-kernel: 4 taps (byte offsets o0..o3 from each window corner) by the
// w (1..8) channels of one dy panel g, over the gn pixels whose corners are in ind, added to the
// rows of dw at w0 (row stride dwRow bytes). A function of its own (not inlined into the loops
// above): inlined there, the same loop ran 3x slower on V8 (9 against 30 GFLOP/s).
function taps4(xp: usize, ind: usize, g: usize, gn: i32, w0: usize, dwRow: usize, w: i32, o0: usize, o1: usize, o2: usize, o3: usize): void {
  let a0 = loadRow(w0, w), a1 = loadRowHi(w0, w)
  let b0 = loadRow(w0 + dwRow, w), b1 = loadRowHi(w0 + dwRow, w)
  let d0 = loadRow(w0 + 2 * dwRow, w), d1 = loadRowHi(w0 + 2 * dwRow, w)
  let e0 = loadRow(w0 + 3 * dwRow, w), e1 = loadRowHi(w0 + 3 * dwRow, w)
  for (let i = 0; i < gn; i++) {
    const xr = xp + <usize>load<i32>(ind + (<usize>i << 2))
    const y0 = v128.load(g)
    const y1 = v128.load(g, 16)
    const s0 = v128.load32_splat(xr + o0)
    a0 = f32x4.add(a0, f32x4.mul(s0, y0))
    a1 = f32x4.add(a1, f32x4.mul(s0, y1))
    const s1 = v128.load32_splat(xr + o1)
    b0 = f32x4.add(b0, f32x4.mul(s1, y0))
    b1 = f32x4.add(b1, f32x4.mul(s1, y1))
    const s2 = v128.load32_splat(xr + o2)
    d0 = f32x4.add(d0, f32x4.mul(s2, y0))
    d1 = f32x4.add(d1, f32x4.mul(s2, y1))
    const s3 = v128.load32_splat(xr + o3)
    e0 = f32x4.add(e0, f32x4.mul(s3, y0))
    e1 = f32x4.add(e1, f32x4.mul(s3, y1))
    g += 32
  }
  storeRow(w0, a0, a1, w)
  storeRow(w0 + dwRow, b0, b1, w)
  storeRow(w0 + 2 * dwRow, d0, d1, w)
  storeRow(w0 + 3 * dwRow, e0, e1, w)
}

// taps4 over the cnt pixels listed (as indices into the group) at list only: the others' products
// are 0 * dy (the taps lie in the padding), whose skipping leaves the sums' bits as they are.
function taps4L(xp: usize, ind: usize, list: usize, cnt: i32, g: usize, w0: usize, dwRow: usize, w: i32, o0: usize, o1: usize, o2: usize, o3: usize): void {
  let a0 = loadRow(w0, w), a1 = loadRowHi(w0, w)
  let b0 = loadRow(w0 + dwRow, w), b1 = loadRowHi(w0 + dwRow, w)
  let d0 = loadRow(w0 + 2 * dwRow, w), d1 = loadRowHi(w0 + 2 * dwRow, w)
  let e0 = loadRow(w0 + 3 * dwRow, w), e1 = loadRowHi(w0 + 3 * dwRow, w)
  for (let e = 0; e < cnt; e++) {
    const i = <usize>load<i32>(list + (<usize>e << 2))
    const xr = xp + <usize>load<i32>(ind + (i << 2))
    const gy = g + (i << 5)
    const y0 = v128.load(gy)
    const y1 = v128.load(gy, 16)
    const s0 = v128.load32_splat(xr + o0)
    a0 = f32x4.add(a0, f32x4.mul(s0, y0))
    a1 = f32x4.add(a1, f32x4.mul(s0, y1))
    const s1 = v128.load32_splat(xr + o1)
    b0 = f32x4.add(b0, f32x4.mul(s1, y0))
    b1 = f32x4.add(b1, f32x4.mul(s1, y1))
    const s2 = v128.load32_splat(xr + o2)
    d0 = f32x4.add(d0, f32x4.mul(s2, y0))
    d1 = f32x4.add(d1, f32x4.mul(s2, y1))
    const s3 = v128.load32_splat(xr + o3)
    e0 = f32x4.add(e0, f32x4.mul(s3, y0))
    e1 = f32x4.add(e1, f32x4.mul(s3, y1))
  }
  storeRow(w0, a0, a1, w)
  storeRow(w0 + dwRow, b0, b1, w)
  storeRow(w0 + 2 * dwRow, d0, d1, w)
  storeRow(w0 + 3 * dwRow, e0, e1, w)
}

// One tap: the remainder when K is not a multiple of 4.
function taps1(xp: usize, ind: usize, g: usize, gn: i32, w0: usize, w: i32, o0: usize): void {
  let a0 = loadRow(w0, w), a1 = loadRowHi(w0, w)
  for (let i = 0; i < gn; i++) {
    const s0 = v128.load32_splat(xp + <usize>load<i32>(ind + (<usize>i << 2)) + o0)
    a0 = f32x4.add(a0, f32x4.mul(s0, v128.load(g)))
    a1 = f32x4.add(a1, f32x4.mul(s0, v128.load(g, 16)))
    g += 32
  }
  storeRow(w0, a0, a1, w)
}

// Byte offset in one padded image of tap k = (kh, kw, c) relative to the window's corner.
@inline function tapOffset(k: i32, fw: i32, ci: i32, wp: i32): usize {
  const c = k % ci
  const t = k / ci
  const kw = t % fw
  const kh = t / fw
  return <usize>((kh * wp + kw) * ci + c) << 2
}

// Lanes 0..3 / 4..7 of the w (1..8) floats at o, zero past w.
@inline function loadRow(o: usize, w: i32): v128 {
  if (w >= 4) return v128.load(o)
  let v = f32x4.splat(0)
  if (w > 0) v = f32x4.replace_lane(v, 0, load<f32>(o))
  if (w > 1) v = f32x4.replace_lane(v, 1, load<f32>(o, 4))
  if (w > 2) v = f32x4.replace_lane(v, 2, load<f32>(o, 8))
  return v
}

@inline function loadRowHi(o: usize, w: i32): v128 {
  if (w == 8) return v128.load(o, 16)
  return w > 4 ? loadRow(o + 16, w - 4) : f32x4.splat(0)
}

// Stores the first w (1..8) lanes of [lo, hi] at o.
@inline function storeRow(o: usize, lo: v128, hi: v128, w: i32): void {
  if (w == 8) {
    v128.store(o, lo)
    v128.store(o, hi, 16)
    return
  }
  for (let j = 0; j < w; j++) {
    store<f32>(o + (<usize>j << 2), j < 4 ? laneOf(lo, j) : laneOf(hi, j - 4))
  }
}

@inline function laneOf(v: v128, j: i32): f32 {
  // extract_lane needs a constant lane index.
  if (j == 0) return f32x4.extract_lane(v, 0)
  if (j == 1) return f32x4.extract_lane(v, 1)
  if (j == 2) return f32x4.extract_lane(v, 2)
  return f32x4.extract_lane(v, 3)
}
