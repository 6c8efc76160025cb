/**
 * The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian u64 header length N, N bytes of JSON header `{name: {dtype, shape,
 * data_offsets: [begin, end]}, "__metadata__": {string: string}}`, then the raw little-endian
 * tensor bytes, offsets relative to the end of the header. Datasets and models travel between
 * stages (and to PyTorch) in this format because it is simple, safe to parse, and readable by
 * every framework.
 *
 * Writes are deterministic, so the same tensors always give the same file digest (the artifact
 * store addresses files by digest): header keys sorted, no whitespace inside the JSON, tensors
 * laid out by element size descending then by name (as the reference implementation does, so
 * every tensor is aligned to its element size), and the header padded with trailing spaces to a
 * multiple of 8 bytes (also as the reference implementation does). Reads are strict: every way a
 * file can be malformed (header length out of range, bad JSON, unknown dtype, offsets out of
 * range, overlapping, gapped or not matching the shape) is a `DataFormatError` naming the file
 * and what is wrong.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { DataFormatError } from './errors.ts'

/** The element types this reader and writer support. */
export type DType = 'F32' | 'F64' | 'I32' | 'I64' | 'U8'

/** The typed array for each dtype. */
export interface DTypeArrays {
  F32: Float32Array
  F64: Float64Array
  I32: Int32Array
  I64: BigInt64Array
  U8: Uint8Array
}

/** One tensor: row-major `data` of `shape`. */
export type Tensor = { [D in DType]: { dtype: D; shape: number[]; data: DTypeArrays[D] } }[DType]

/** A decoded file: tensors by name, plus the free-form string metadata. */
export interface SafetensorsContents {
  tensors: Record<string, Tensor>
  metadata: Record<string, string>
}

const BYTES: Record<DType, number> = { F32: 4, F64: 8, I32: 4, I64: 8, U8: 1 }
/** The reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000
const METADATA_KEY = '__metadata__'

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** Convenience constructors, so callers need not spell the discriminated union. */
export const tensor = {
  f32: (shape: number[], data: Float32Array): Tensor => ({ dtype: 'F32', shape, data }),
  f64: (shape: number[], data: Float64Array): Tensor => ({ dtype: 'F64', shape, data }),
  i32: (shape: number[], data: Int32Array): Tensor => ({ dtype: 'I32', shape, data }),
  i64: (shape: number[], data: BigInt64Array): Tensor => ({ dtype: 'I64', shape, data }),
  u8: (shape: number[], data: Uint8Array): Tensor => ({ dtype: 'U8', shape, data }),
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

function checkEndianness(): void {
  if (!littleEndianHost) throw new Error('safetensors: big-endian hosts are not supported')
}

/**
 * Encodes tensors (and optional string metadata) as safetensors bytes, deterministically (see the
 * module comment). Throws a plain Error for an invalid name, a shape that does not match the data
 * length, or a non-string metadata value: those are programming errors, not bad files.
 */
export function encodeSafetensors(
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  checkEndianness()
  const names = Object.keys(tensors).sort()
  for (const name of names) {
    if (name === METADATA_KEY || name.length === 0 || reservedName(name)) throw new Error(`safetensors: invalid tensor name ${JSON.stringify(name)}`)
    const t = tensors[name]!
    if (!(t.dtype in BYTES)) throw new Error(`safetensors: tensor ${name}: unsupported dtype ${String(t.dtype)}`)
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`safetensors: tensor ${name}: shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`)
    }
    if (elementCount(t.shape) !== t.data.length) {
      throw new Error(`safetensors: tensor ${name}: shape ${JSON.stringify(t.shape)} holds ${elementCount(t.shape)} elements but data has ${t.data.length}`)
    }
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new Error(`safetensors: metadata ${k} must be a string`)
  }
  // Layout: element size descending, then name (keeps every tensor aligned to its element size).
  const layout = [...names].sort((a, b) => BYTES[tensors[b]!.dtype] - BYTES[tensors[a]!.dtype] || (a < b ? -1 : a > b ? 1 : 0))
  const offsets = new Map<string, [number, number]>()
  let pos = 0
  for (const name of layout) {
    const t = tensors[name]!
    const size = t.data.length * BYTES[t.dtype]
    offsets.set(name, [pos, pos + size])
    pos += size
  }
  // Header: keys sorted ("__metadata__" sorts before letters), no whitespace.
  const header: Record<string, unknown> = {}
  const keys = [...names]
  if (Object.keys(metadata).length > 0) keys.push(METADATA_KEY)
  for (const key of keys.sort()) {
    if (key === METADATA_KEY) {
      const sorted: Record<string, string> = {}
      for (const k of Object.keys(metadata).sort()) sorted[k] = metadata[k]!
      header[key] = sorted
    } else {
      const t = tensors[key]!
      header[key] = { dtype: t.dtype, shape: t.shape, data_offsets: offsets.get(key) }
    }
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8')
  const padded = Math.ceil(json.length / 8) * 8
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)])
  const out = new Uint8Array(8 + json.length + pos)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  const base = 8 + json.length
  for (const name of layout) {
    const t = tensors[name]!
    const [begin] = offsets.get(name)!
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), base + begin)
  }
  return out
}

/** Names a decoded header may not use: they would collide with Object.prototype on the result. */
function reservedName(name: string): boolean {
  return name in Object.prototype || name === 'prototype'
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x)
}

/**
 * Decodes and strictly validates safetensors bytes; `file` names the source in errors. Tensor
 * data is copied into fresh, aligned typed arrays (so the result does not alias `bytes`).
 */
export function decodeSafetensors(bytes: Uint8Array, file = '<buffer>'): SafetensorsContents {
  checkEndianness()
  const bad = (what: string): DataFormatError => new DataFormatError(file, `not a valid safetensors file: ${what}`)
  if (bytes.length < 8) throw bad(`${bytes.length} bytes is shorter than the 8-byte header length`)
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true)
  if (n64 > BigInt(MAX_HEADER_BYTES)) throw bad(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`)
  const n = Number(n64)
  if (n < 2) throw bad(`header length ${n} is too small for a JSON object`)
  if (8 + n > bytes.length) throw bad(`header length ${n} runs past the end of the ${bytes.length}-byte file (truncated?)`)
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + 8, n).toString('utf8')
  if (!text.startsWith('{')) throw bad('header does not start with "{"')
  let header: unknown
  try {
    header = JSON.parse(text)
  } catch (e) {
    throw bad(`header is not JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (!isObject(header)) throw bad('header is not a JSON object')
  const dataLength = bytes.length - 8 - n
  const metadata: Record<string, string> = {}
  const entries: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = []
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isObject(value)) throw bad('__metadata__ is not an object')
      for (const [k, v] of Object.entries(value)) {
        if (reservedName(k)) throw bad(`__metadata__ key ${JSON.stringify(k)} is reserved`)
        if (typeof v !== 'string') throw bad(`__metadata__.${k} is not a string`)
        metadata[k] = v
      }
      continue
    }
    if (name === '' || name.length > 1024 || reservedName(name)) throw bad(`tensor name ${JSON.stringify(name.slice(0, 80))} is empty, too long or reserved (${name === '' ? 'empty' : 'e.g. __proto__, constructor'})`)
    if (!isObject(value)) throw bad(`tensor ${name}: entry is not an object`)
    const { dtype, shape, data_offsets: offs } = value
    if (typeof dtype !== 'string' || !(dtype in BYTES)) throw bad(`tensor ${name}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(BYTES).join(', ')})`)
    if (!Array.isArray(shape) || shape.length > 64 || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw bad(`tensor ${name}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`)
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      throw bad(`tensor ${name}: data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`)
    }
    const [begin, end] = offs as [number, number]
    if (end < begin) throw bad(`tensor ${name}: data_offsets [${begin}, ${end}] end before they begin`)
    if (end > dataLength) throw bad(`tensor ${name}: data_offsets [${begin}, ${end}] run past the ${dataLength} data bytes (truncated?)`)
    const expected = elementCount(shape as number[]) * BYTES[dtype as DType]
    if (end - begin !== expected) {
      throw bad(`tensor ${name}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`)
    }
    entries.push({ name, dtype: dtype as DType, shape: shape as number[], begin, end })
  }
  // Contiguous cover of the data section: no gaps, no overlaps, nothing left over.
  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let pos = 0
  for (const e of byOffset) {
    if (e.begin < pos) throw bad(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (which ends at ${pos})`)
    if (e.begin > pos) throw bad(`tensor ${e.name}: data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${pos}`)
    pos = e.end
  }
  if (pos !== dataLength) throw bad(`tensors cover ${pos} data bytes but the file has ${dataLength} (trailing bytes)`)
  const tensors: Record<string, Tensor> = {}
  const base = bytes.byteOffset + 8 + n
  for (const e of entries) {
    const raw = new Uint8Array(bytes.buffer, base + e.begin, e.end - e.begin).slice().buffer // a fresh, aligned copy
    tensors[e.name] = makeTensor(e.dtype, e.shape, raw)
  }
  return { tensors, metadata }
}

function makeTensor(dtype: DType, shape: number[], raw: ArrayBuffer): Tensor {
  switch (dtype) {
    case 'F32': return { dtype, shape, data: new Float32Array(raw) }
    case 'F64': return { dtype, shape, data: new Float64Array(raw) }
    case 'I32': return { dtype, shape, data: new Int32Array(raw) }
    case 'I64': return { dtype, shape, data: new BigInt64Array(raw) }
    case 'U8': return { dtype, shape, data: new Uint8Array(raw) }
  }
}

/** Writes `tensors` to `path` as a deterministic safetensors file (see `encodeSafetensors`). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFile(path, encodeSafetensors(tensors, metadata))
}

/** Reads and strictly validates the safetensors file at `path` (errors name the file). */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  const bytes = await readFile(path)
  return decodeSafetensors(bytes, path)
}
