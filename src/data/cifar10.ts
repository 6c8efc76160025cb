/**
 * CIFAR-10 (Krizhevsky 2009; the paper's dataset, §4: "the CIFAR-10 training dataset, a set of
 * 50,000 32 x 32 images in 10 classes") from its official binary archive
 * `cifar-10-binary.tar.gz`: a gzipped tar holding `cifar-10-batches-bin/data_batch_1..5.bin`
 * (training), `test_batch.bin` and `batches.meta.txt` (class names, one a line). Each batch is
 * 10,000 records of 1 label byte then 3,072 pixel bytes: the 32x32 red plane, then green, then
 * blue, each row-major. The reader transposes them to NHWC u8. `downloadCifar10` fetches the
 * archive over HTTP(S), streaming to a temporary file beside the destination while computing its
 * MD5, and renames it into place only when the length and the published MD5 match, so an
 * interrupted or corrupted download never leaves a file that looks complete.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { readFile, rename, rm } from 'node:fs/promises'
import http from 'node:http'
import https from 'node:https'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { DataFormatError } from './errors.ts'
import type { ImageSet } from './image-set.ts'
import { readTar } from './tar.ts'

/** The official address of the binary archive (https://www.cs.toronto.edu/~kriz/cifar.html). */
export const CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
/** The MD5 of the archive as published on that page. */
export const CIFAR10_MD5 = 'c32a1d4ab5d03f1284b67883e8d87530'

/** Which records: the 50,000 training images (data_batch_1..5) or the 10,000 test images. */
export type Cifar10Split = 'train' | 'test'

const SIDE = 32
const PLANE = SIDE * SIDE // 1024
const RECORD = 1 + 3 * PLANE // 3073
const BATCHES: Record<Cifar10Split, string[]> = {
  train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
  test: ['test_batch.bin'],
}

/**
 * Decodes one batch file's records into NHWC u8 images and labels. The length must be a
 * whole number of 3,073-byte records and every label < `numClasses`.
 */
export function decodeCifar10Batch(bytes: Uint8Array, file: string, numClasses = 10): { images: Uint8Array; labels: Uint8Array } {
  if (bytes.length === 0 || bytes.length % RECORD !== 0) {
    throw new DataFormatError(file, `not a CIFAR-10 batch: ${bytes.length} bytes is not a whole number of ${RECORD}-byte records (truncated?)`)
  }
  const n = bytes.length / RECORD
  const images = new Uint8Array(n * 3 * PLANE) // [n, 32, 32, 3]
  const labels = new Uint8Array(n) // [n]
  for (let r = 0; r < n; r++) {
    const rec = r * RECORD
    const label = bytes[rec]!
    if (label >= numClasses) throw new DataFormatError(file, `record ${r} has label ${label}, but there are ${numClasses} classes`)
    labels[r] = label
    const out = r * 3 * PLANE
    for (let c = 0; c < 3; c++) {
      const plane = rec + 1 + c * PLANE // [32, 32] plane of channel c
      for (let p = 0; p < PLANE; p++) images[out + p * 3 + c] = bytes[plane + p]!
    }
  }
  return { images, labels }
}

function member(files: Map<string, Uint8Array>, base: string, file: string): Uint8Array {
  for (const [path, data] of files) if (path === base || path.endsWith(`/${base}`)) return data
  throw new DataFormatError(file, `not a CIFAR-10 binary archive: it has no ${base} (members: ${[...files.keys()].slice(0, 8).join(', ')})`)
}

/**
 * The most bytes the archive may decompress to (the official tar is about 171 MB): decompression
 * stops there, so a gzip bomb in place of the archive costs bounded memory.
 */
export const MAX_CIFAR10_TAR_BYTES = 256 << 20

/** Decodes the `.tar.gz` archive bytes into one split (see the module comment for the layout). */
export async function decodeCifar10Archive(gz: Uint8Array, file: string, split: Cifar10Split, maxTarBytes = MAX_CIFAR10_TAR_BYTES): Promise<ImageSet> {
  let tar: Uint8Array
  try {
    tar = await promisify(gunzip)(gz, { maxOutputLength: maxTarBytes })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new DataFormatError(file, `gzip data expands to more than ${maxTarBytes} bytes (a gzip bomb, or not the CIFAR-10 archive); refused`)
    }
    throw new DataFormatError(file, `gzip data is corrupt or truncated (${e instanceof Error ? e.message : String(e)})`)
  }
  const files = readTar(tar, file)
  const classNames = Buffer.from(member(files, 'batches.meta.txt', file)).toString('utf8')
    .split('\n').map((s) => s.trim()).filter((s) => s.length > 0)
  if (classNames.length !== 10) throw new DataFormatError(file, `batches.meta.txt names ${classNames.length} classes, expected 10`)
  const parts = BATCHES[split].map((b) => decodeCifar10Batch(member(files, b, file), `${file}:${b}`, classNames.length))
  const n = parts.reduce((a, p) => a + p.labels.length, 0)
  const images = new Uint8Array(n * 3 * PLANE)
  const labels = new Uint8Array(n)
  let at = 0
  for (const p of parts) {
    images.set(p.images, at * 3 * PLANE)
    labels.set(p.labels, at)
    at += p.labels.length
  }
  return { n, height: SIDE, width: SIDE, channels: 3, images, labels, classNames }
}

/** Reads one split from the archive at `path`. */
export async function readCifar10Archive(path: string, split: Cifar10Split): Promise<ImageSet> {
  return decodeCifar10Archive(await readFile(path), path, split)
}

/** Hex MD5 of a file's bytes (to check a cached or local archive against `CIFAR10_MD5`). */
export async function md5File(path: string): Promise<string> {
  return createHash('md5').update(await readFile(path)).digest('hex')
}

/** Options of `downloadCifar10`. */
export interface DownloadOptions {
  /** Expected hex MD5; default the published one. */
  md5?: string
  /** Called as bytes arrive; `total` is the Content-Length when the server sent one. */
  onProgress?: (received: number, total: number | undefined) => void
  /** Give up when the connection is idle this long (ms); default 60,000. */
  idleTimeoutMs?: number
  /** Redirects to follow; default 5. */
  maxRedirects?: number
}

function get(url: string, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  const mod = url.startsWith('https:') ? https : url.startsWith('http:') ? http : undefined
  if (mod === undefined) return Promise.reject(new DataFormatError(url, 'only http: and https: URLs can be downloaded'))
  return new Promise((resolve, reject) => {
    const req = mod.get(url, (res) => resolve(res))
    req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`no data for ${idleTimeoutMs} ms`)))
    req.on('error', reject)
  })
}

/**
 * Downloads `url` to `dest`, verifying the MD5 (default the published CIFAR-10 one). Streams to
 * a temporary file beside `dest` and renames it into place only after the byte count matches
 * the Content-Length and the MD5 matches; otherwise removes it and throws a `DataFormatError`
 * naming the URL (HTTP error, truncated body, MD5 mismatch). Returns the bytes and the MD5.
 */
export async function downloadCifar10(
  url: string,
  dest: string,
  options: DownloadOptions = {},
): Promise<{ path: string; md5: string; bytes: number }> {
  const expected = (options.md5 ?? CIFAR10_MD5).toLowerCase()
  const idle = options.idleTimeoutMs ?? 60_000
  let location = url
  let res: http.IncomingMessage
  for (let redirects = 0; ; redirects++) {
    try {
      res = await get(location, idle)
    } catch (e) {
      throw e instanceof DataFormatError ? e : new DataFormatError(location, `download failed (${e instanceof Error ? e.message : String(e)})`)
    }
    const status = res.statusCode ?? 0
    if (status >= 300 && status < 400 && res.headers.location !== undefined) {
      res.resume()
      if (redirects >= (options.maxRedirects ?? 5)) throw new DataFormatError(url, 'download failed: too many redirects')
      location = new URL(res.headers.location, location).toString()
      continue
    }
    if (status !== 200) {
      res.resume()
      throw new DataFormatError(location, `download failed: HTTP ${status} ${res.statusMessage ?? ''}`.trimEnd())
    }
    break
  }
  const lengthHeader = res.headers['content-length']
  const total = lengthHeader === undefined ? undefined : Number(lengthHeader)
  const hash = createHash('md5')
  let received = 0
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk)
      received += chunk.length
      options.onProgress?.(received, total)
      done(null, chunk)
    },
  })
  const tmp = `${dest}.part-${process.pid}-${randomBytes(4).toString('hex')}`
  try {
    try {
      await pipeline(res, meter, createWriteStream(tmp))
    } catch (e) {
      const local = typeof e === 'object' && e !== null && 'path' in e // a local file error (no directory, no space), not the network
      if (local) throw e
      throw new DataFormatError(location, `download truncated after ${received} bytes${total === undefined ? '' : ` of ${total}`} (${e instanceof Error ? e.message : String(e)})`)
    }
    if (total !== undefined && received !== total) {
      throw new DataFormatError(location, `download truncated: received ${received} of ${total} bytes`)
    }
    const md5 = hash.digest('hex')
    if (md5 !== expected) {
      throw new DataFormatError(location, `MD5 mismatch: the downloaded ${received} bytes have MD5 ${md5}, expected ${expected} (corrupt or not the official archive)`)
    }
    await rename(tmp, dest)
    return { path: dest, md5, bytes: received }
  } finally {
    await rm(tmp, { force: true })
  }
}
