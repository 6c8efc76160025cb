// cusp's own wasm SIMD kernels, in AssemblyScript (compiled by build.mjs beside this file into
// kernels-wasm.ts). The module imports tfjs-backend-wasm's own memory, so every pointer here is an
// offset in the tfjs wasm heap and no tensor is copied in or out. It has no data segments, no
// globals it writes and no allocator: it touches only the memory it is given.

// Filter gradient of a 2-D convolution, NHWC, as dW[k, co] = sum_p X[p, k] * dY[p, co] with
// k = (kh, kw, ci) and p = (n, oy, ox), accumulated image by image into dw (which the caller zeroes):
//   xp  [n, hp, wp, ci]  the input, already padded so that every window is in range (no bounds checks)
//   dy  [n, oh, ow, co]  the output gradient, read in place (never repacked)
//   dw  [fh, fw, ci, co] the filter gradient (+=)
// Register blocking: 4 rows of k by 8 columns of co (8 f32x4 accumulators) over every pixel of a
// group of images, so the group's dy stays in cache across the k blocks. co must be a
// multiple of 8 (the caller falls back otherwise). Summation order is fixed: pixels in raster
// order within an image, images in order, groups in order; the same inputs give the same bits.
export function filterGrad(
  xp: usize, dy: usize, dw: usize,
  n: i32, hp: i32, wp: i32, ci: i32, oh: i32, ow: i32, co: i32,
  fh: i32, fw: i32, sh: i32, sw: i32,
): void {
  const K = fh * fw * ci
  const xImage = <usize>(hp * wp * ci) << 2
  const dyImage = <usize>(oh * ow * co) << 2
  const xRow = <usize>(sh * wp * ci) << 2 // one output row down in xp
  const xPix = <usize>(sw * ci) << 2 // one output column right in xp
  const dyPix = <usize>co << 2
  // Images in groups whose dy fits in ~128 KiB, so it stays in cache across the k blocks.
  const group = max(1, min(n, (32768 / max(1, oh * ow * co)) as i32))
  for (let g0 = 0; g0 < n; g0 += group) {
    const g1 = min(n, g0 + group)
    for (let c0 = 0; c0 < co; c0 += 8) {
      let k = 0
      for (; k + 4 <= K; k += 4) {
        const o0 = offsetOf(k, fw, ci, wp)
        const o1 = offsetOf(k + 1, fw, ci, wp)
        const o2 = offsetOf(k + 2, fw, ci, wp)
        const o3 = offsetOf(k + 3, fw, ci, wp)
        const w0 = dw + ((<usize>k * co + c0) << 2)
        const w1 = w0 + dyPix
        const w2 = w1 + dyPix
        const w3 = w2 + dyPix
        let a0 = v128.load(w0), a1 = v128.load(w0, 16)
        let b0 = v128.load(w1), b1 = v128.load(w1, 16)
        let d0 = v128.load(w2), d1 = v128.load(w2, 16)
        let e0 = v128.load(w3), e1 = v128.load(w3, 16)
        for (let b = g0; b < g1; b++) {
        const xb = xp + <usize>b * xImage
        let g = dy + <usize>b * dyImage + (<usize>c0 << 2)
        for (let oy = 0; oy < oh; oy++) {
          let xr = xb + <usize>oy * xRow
          for (let ox = 0; ox < ow; ox++) {
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
            g += dyPix
            xr += xPix
          }
        }
        }
        v128.store(w0, a0); v128.store(w0, a1, 16)
        v128.store(w1, b0); v128.store(w1, b1, 16)
        v128.store(w2, d0); v128.store(w2, d1, 16)
        v128.store(w3, e0); v128.store(w3, e1, 16)
      }
      for (; k < K; k++) {
        const o0 = offsetOf(k, fw, ci, wp)
        const w0 = dw + ((<usize>k * co + c0) << 2)
        let a0 = v128.load(w0), a1 = v128.load(w0, 16)
        for (let b = g0; b < g1; b++) {
        const xb = xp + <usize>b * xImage
        let g = dy + <usize>b * dyImage + (<usize>c0 << 2)
        for (let oy = 0; oy < oh; oy++) {
          let xr = xb + <usize>oy * xRow
          for (let ox = 0; ox < ow; ox++) {
            const s0 = v128.load32_splat(xr + o0)
            a0 = f32x4.add(a0, f32x4.mul(s0, v128.load(g)))
            a1 = f32x4.add(a1, f32x4.mul(s0, v128.load(g, 16)))
            g += dyPix
            xr += xPix
          }
        }
        }
        v128.store(w0, a0); v128.store(w0, a1, 16)
      }
    }
  }
}

// Byte offset in one padded image of filter tap k = (kh, kw, ci) relative to the window's corner.
@inline function offsetOf(k: i32, fw: i32, ci: i32, wp: i32): usize {
  const c = k % ci
  const t = k / ci
  const kw = t % fw
  const kh = t / fw
  return <usize>((kh * wp + kw) * ci + c) << 2
}

// Matrix product C[m, n] = A[m, k] * B[k, n] for one batch item, in two steps.
// packB copies B into panels of 8 columns, panel by panel, each panel k rows of 8 floats (the last
// panel zero-padded), so the micro-kernel reads B contiguously; a transposed B is handled by its
// strides: element (p, j) of B is at b + 4 * (p * sbk + j * sbn). Full panels of a row-major B
// (sbn = 1) move as two v128 per row; others element by element, unrolled.
export function packB(b: usize, bp: usize, k: i32, n: i32, sbk: i32, sbn: i32): void {
  const full = n & ~7
  const rowStep = <usize>sbk << 2
  if (sbn == 1) {
    for (let j0 = 0; j0 < full; j0 += 8) {
      let dst = bp + (<usize>j0 * k << 2)
      let row = b + (<usize>j0 << 2)
      for (let p = 0; p < k; p++) {
        v128.store(dst, v128.load(row))
        v128.store(dst, v128.load(row, 16), 16)
        dst += 32
        row += rowStep
      }
    }
  } else {
    const cs = <usize>sbn << 2
    for (let j0 = 0; j0 < full; j0 += 8) {
      let dst = bp + (<usize>j0 * k << 2)
      let row = b + (<usize>(j0 * sbn) << 2)
      for (let p = 0; p < k; p++) {
        let s = row
        store<f32>(dst, load<f32>(s)); s += cs
        store<f32>(dst, load<f32>(s), 4); s += cs
        store<f32>(dst, load<f32>(s), 8); s += cs
        store<f32>(dst, load<f32>(s), 12); s += cs
        store<f32>(dst, load<f32>(s), 16); s += cs
        store<f32>(dst, load<f32>(s), 20); s += cs
        store<f32>(dst, load<f32>(s), 24); s += cs
        store<f32>(dst, load<f32>(s), 28)
        dst += 32
        row += rowStep
      }
    }
  }
  if (full < n) {
    // The last, partial panel: zero-padded to 8 columns.
    const w = n - full
    let dst = bp + (<usize>full * k << 2)
    for (let p = 0; p < k; p++) {
      const row = b + (<usize>(p * sbk + full * sbn) << 2)
      for (let j = 0; j < 8; j++) {
        store<f32>(dst + (<usize>j << 2), j < w ? load<f32>(row + (<usize>(j * sbn) << 2)) : 0)
      }
      dst += 32
    }
  }
}

// gemm: C = A * packed B. Element (i, p) of A is at a + 4 * (i * sam + p * sak), so a transposed A
// needs no copy. Register blocking: 4 rows by 8 columns (8 f32x4 accumulators), then single rows.
// Summation order is fixed: p = 0, 1, ..., k - 1 for every element, whatever the blocking, so the
// same inputs give the same bits (no FMA: mul then add, rounded as the scalar reference would).
export function gemm(a: usize, bp: usize, c: usize, m: i32, n: i32, k: i32, sam: i32, sak: i32): void {
  const ak = <usize>sak << 2
  for (let j0 = 0; j0 < n; j0 += 8) {
    const w = min(8, n - j0)
    const panel = bp + (<usize>j0 * k << 2)
    let i = 0
    for (; i + 4 <= m; i += 4) {
      let r0 = a + (<usize>(i * sam) << 2)
      let r1 = r0 + (<usize>sam << 2)
      let r2 = r1 + (<usize>sam << 2)
      let r3 = r2 + (<usize>sam << 2)
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0)
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0)
      let d0 = f32x4.splat(0), d1 = f32x4.splat(0)
      let e0 = f32x4.splat(0), e1 = f32x4.splat(0)
      let q = panel
      for (let p = 0; p < k; p++) {
        const y0 = v128.load(q)
        const y1 = v128.load(q, 16)
        const s0 = v128.load32_splat(r0)
        a0 = f32x4.add(a0, f32x4.mul(s0, y0))
        a1 = f32x4.add(a1, f32x4.mul(s0, y1))
        const s1 = v128.load32_splat(r1)
        b0 = f32x4.add(b0, f32x4.mul(s1, y0))
        b1 = f32x4.add(b1, f32x4.mul(s1, y1))
        const s2 = v128.load32_splat(r2)
        d0 = f32x4.add(d0, f32x4.mul(s2, y0))
        d1 = f32x4.add(d1, f32x4.mul(s2, y1))
        const s3 = v128.load32_splat(r3)
        e0 = f32x4.add(e0, f32x4.mul(s3, y0))
        e1 = f32x4.add(e1, f32x4.mul(s3, y1))
        q += 32
        r0 += ak
        r1 += ak
        r2 += ak
        r3 += ak
      }
      const o = c + (<usize>(i * n + j0) << 2)
      const on = <usize>n << 2
      storeRow(o, a0, a1, w)
      storeRow(o + on, b0, b1, w)
      storeRow(o + 2 * on, d0, d1, w)
      storeRow(o + 3 * on, e0, e1, w)
    }
    for (; i < m; i++) {
      let r0 = a + (<usize>(i * sam) << 2)
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0)
      let q = panel
      for (let p = 0; p < k; p++) {
        const s0 = v128.load32_splat(r0)
        a0 = f32x4.add(a0, f32x4.mul(s0, v128.load(q)))
        a1 = f32x4.add(a1, f32x4.mul(s0, v128.load(q, 16)))
        q += 32
        r0 += ak
      }
      storeRow(c + (<usize>(i * n + j0) << 2), a0, a1, w)
    }
  }
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

// The elementwise tail of a dense layer, in place on c [m, n], each step only where its pointer is
// nonzero (0 is never a tensor's address): c = ((c + bias[j]) + t[i, j]) * mask[i, j]. Each step
// is one IEEE float32 add or multiply, so this gives the bits of the separate Add / Multiply
// kernels it replaces (both commute exactly).
export function epilogue(c: usize, bias: usize, t: usize, mask: usize, m: i32, n: i32): void {
  const n4 = n & ~3
  for (let i = 0; i < m; i++) {
    const row = <usize>(i * n) << 2
    let j = 0
    for (; j < n4; j += 4) {
      const o = row + (<usize>j << 2)
      let v = v128.load(c + o)
      if (bias != 0) v = f32x4.add(v, v128.load(bias + (<usize>j << 2)))
      if (t != 0) v = f32x4.add(v, v128.load(t + o))
      if (mask != 0) v = f32x4.mul(v, v128.load(mask + o))
      v128.store(c + o, v)
    }
    for (; j < n; j++) {
      const o = row + (<usize>j << 2)
      let v = load<f32>(c + o)
      if (bias != 0) v = v + load<f32>(bias + (<usize>j << 2))
      if (t != 0) v = v + load<f32>(t + o)
      if (mask != 0) v = v * load<f32>(mask + o)
      store<f32>(c + o, v)
    }
  }
}

// Column sums of x [m, n] into out [n]: out[j] = 0 + x[0, j] + x[1, j] + ... + x[m-1, j], rows in
// order (the sum a product ones[1, m] * x makes in gemm, bit for bit, since 1 * x = x).
export function colSum(x: usize, out: usize, m: i32, n: i32): void {
  const n4 = n & ~3
  const rs = <usize>n << 2
  let j = 0
  for (; j < n4; j += 4) {
    let acc = f32x4.splat(0)
    let p = x + (<usize>j << 2)
    for (let i = 0; i < m; i++) {
      acc = f32x4.add(acc, v128.load(p))
      p += rs
    }
    v128.store(out + (<usize>j << 2), acc)
  }
  for (; j < n; j++) {
    let acc: f32 = 0
    let p = x + (<usize>j << 2)
    for (let i = 0; i < m; i++) {
      acc = acc + load<f32>(p)
      p += rs
    }
    store<f32>(out + (<usize>j << 2), acc)
  }
}
