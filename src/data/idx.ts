/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a 4-byte
 * big-endian magic `00 00 <type> <ndims>`, then ndims big-endian u32 sizes, then the data in
 * row-major order. Only unsigned bytes (type 0x08) are supported, which is what both datasets
 * use: images have magic 0x00000803 ([n, rows, cols]) and labels 0x00000801 ([n]). Files may be
 * gzip-compressed (detected by the gzip magic 1f 8b, not by the file name), so the bundled subset
 * and Debian's full set at /usr/share/datasets/fashion-mnist/ read through the same code. Every
 * malformation (wrong magic, truncated or over-long data, a broken gzip stream, image and label
 * counts that differ) is a `DataFormatError` naming the file.
 */
import { readFile } from 'node:fs/promises'
import { gunzipSync, gzipSync } from 'node:zlib'
import { DataFormatError } from './errors.ts'

/** Magic number of an IDX file of u8 images [n, rows, cols]. */
export const IDX_IMAGES_MAGIC = 0x00000803
/** Magic number of an IDX file of u8 labels [n]. */
export const IDX_LABELS_MAGIC = 0x00000801

/** A decoded u8 IDX array. */
export interface IdxArray {
  /** Sizes from the header, e.g. [n, rows, cols]. */
  dims: number[]
  /** Row-major bytes, length = product of dims. */
  data: Uint8Array
}

/** Images and labels of one split, read from an IDX pair. */
export interface IdxDataset {
  n: number
  rows: number
  cols: number
  /** [n, rows, cols] u8 pixels. */
  images: Uint8Array
  /** [n] u8 labels. */
  labels: Uint8Array
}

const GZIP_MAGIC = [0x1f, 0x8b]

/** True when `bytes` start with the gzip magic. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1]
}

/**
 * The most bytes one gzipped IDX file may decompress to (full Fashion-MNIST training images are
 * 47 MB): decompression stops there, so a gzip bomb costs bounded memory, not all of it.
 */
export const MAX_IDX_BYTES = 256 << 20

/** Decompresses `bytes` when gzip (at most `maxBytes` out), else returns them; a broken or oversized stream names the file. */
export function maybeGunzip(bytes: Uint8Array, file: string, maxBytes = MAX_IDX_BYTES): Uint8Array {
  if (!isGzip(bytes)) return bytes
  try {
    return gunzipSync(bytes, { maxOutputLength: maxBytes })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new DataFormatError(file, `gzip data expands to more than ${maxBytes} bytes (a gzip bomb, or not an IDX file); refused`)
    }
    throw new DataFormatError(file, `gzip data is corrupt or truncated (${e instanceof Error ? e.message : String(e)})`)
  }
}

/**
 * Decodes (possibly gzipped) IDX bytes whose magic must be `expectedMagic` (images or labels).
 * The data must be exactly as long as the header says.
 */
export function decodeIdx(bytes: Uint8Array, file: string, expectedMagic: number, maxBytes = MAX_IDX_BYTES): IdxArray {
  const raw = maybeGunzip(bytes, file, maxBytes)
  const bad = (what: string): DataFormatError => new DataFormatError(file, `not a valid IDX file: ${what}`)
  if (raw.length < 4) throw bad(`${raw.length} bytes is too short for the magic number`)
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  const magic = view.getUint32(0, false)
  if (magic !== expectedMagic) {
    const hex = (m: number): string => `0x${m.toString(16).padStart(8, '0')}`
    const what = expectedMagic === IDX_IMAGES_MAGIC ? 'u8 images' : expectedMagic === IDX_LABELS_MAGIC ? 'u8 labels' : 'this array'
    throw bad(`magic number ${hex(magic)}, expected ${hex(expectedMagic)} for ${what}`)
  }
  const ndims = magic & 0xff
  const headerBytes = 4 + 4 * ndims
  if (raw.length < headerBytes) throw bad(`${raw.length} bytes is too short for a header of ${ndims} dimensions (truncated?)`)
  const dims: number[] = []
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false))
  const count = dims.reduce((a, b) => a * b, 1)
  const have = raw.length - headerBytes
  if (have < count) throw bad(`header says [${dims.join(', ')}] = ${count} bytes of data but only ${have} follow (truncated?)`)
  if (have > count) throw bad(`header says [${dims.join(', ')}] = ${count} bytes of data but ${have} follow`)
  return { dims, data: raw.slice(headerBytes) }
}

/** Encodes a u8 array as IDX bytes (gzip-compressed when `gzip`); used to build the bundled subset. */
export function encodeIdx(magic: number, dims: number[], data: Uint8Array, gzip = true): Uint8Array {
  if ((magic & 0xff) !== dims.length) throw new Error(`idx: magic ${magic} says ${magic & 0xff} dims, got ${dims.length}`)
  const count = dims.reduce((a, b) => a * b, 1)
  if (count !== data.length) throw new Error(`idx: dims [${dims.join(', ')}] hold ${count} bytes, data has ${data.length}`)
  const out = new Uint8Array(4 + 4 * dims.length + data.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, magic, false)
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false))
  out.set(data, 4 + 4 * dims.length)
  // level 9 and the default header (no name, mtime 0): the same data give the same bytes.
  return gzip ? gzipSync(out, { level: 9 }) : out
}

/** Pairs decoded images and labels, checking that their counts agree. */
export function idxDataset(images: IdxArray, labels: IdxArray, imagesFile: string, labelsFile: string): IdxDataset {
  const [n, rows, cols] = images.dims as [number, number, number]
  const m = labels.dims[0]!
  if (n !== m) throw new DataFormatError(imagesFile, `${n} images but ${labelsFile} has ${m} labels`)
  return { n, rows, cols, images: images.data, labels: labels.data }
}

/** Reads an IDX images file and its labels file (each gzip or plain) as one split. */
export async function readIdxDataset(imagesFile: string, labelsFile: string): Promise<IdxDataset> {
  const [ib, lb] = await Promise.all([readFile(imagesFile), readFile(labelsFile)])
  return idxDataset(decodeIdx(ib, imagesFile, IDX_IMAGES_MAGIC), decodeIdx(lb, labelsFile, IDX_LABELS_MAGIC), imagesFile, labelsFile)
}
