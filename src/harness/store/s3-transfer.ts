/**
 * Moving object bytes to and from the bucket. An object is hashed before upload and again while
 * its bytes are sent; the SHA-256 is sent with the request (`x-amz-checksum-sha256`, or per
 * part for multipart uploads, `ChecksumAlgorithm: SHA256`) so a server that checks it rejects
 * bytes damaged in transit. Every download is re-hashed. A mismatch is never enough to delete a
 * shared object: the object is read again, and removed only if that second read is corrupt too
 * and the object is still the version first read (If-Match), so a client with a bad network
 * card or a flaky proxy cannot destroy everyone's good copy. Downloads interrupted mid-body are
 * retried here; S3 PUTs are atomic, so a killed writer leaves no visible partial object.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { open, readFile, unlink } from 'node:fs/promises'
import { Transform } from 'node:stream'
import { DeleteObjectCommand } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { isSha256Hex } from '../canonical-json.ts'
import type { ObjectDigest } from '../types.ts'
import { writeAll } from './hashing-copy.ts'
import { StoreError } from './run-record-check.ts'
import type { DownloadOutcome, S3Bucket } from './s3-client.ts'
import { isNotFound, isTransient, statusOf } from './s3-errors.ts'

/** Called with the bytes moved so far by one transfer (for progress displays). */
export type OnBytes = (bytes: number) => void

/**
 * Upload the file at `path`, whose sha256 and size the caller has computed, as object
 * `digest`; the bytes are hashed again as they are sent and a file that changed meanwhile is
 * removed from the server and refused.
 */
export async function uploadFile(b: S3Bucket, path: string, digest: ObjectDigest, size: number, onBytes?: OnBytes): Promise<void> {
  if (size <= b.config.partSizeBytes) {
    const bytes = await readFile(path)
    if (bytes.length !== size || sha256(bytes) !== digest)
      throw new StoreError(`${path} does not hash to ${digest} (changed while being stored, or corrupt); not uploaded`)
    await b.putSmall(bytes, digest)
    onBytes?.(size)
    return
  }
  const key = b.objectKey(digest)
  const hash = createHash('sha256')
  let seen = 0
  const body = createReadStream(path).pipe(
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk)
        seen += chunk.length
        cb(null, chunk)
      },
    }),
  )
  const upload = new Upload({
    client: b.client,
    params: { Bucket: b.config.bucket, Key: key, Body: body, ChecksumAlgorithm: 'SHA256', ContentType: 'application/octet-stream' },
    partSize: b.config.partSizeBytes,
    queueSize: 4,
    leavePartsOnError: false,
  })
  if (onBytes !== undefined) upload.on('httpUploadProgress', (p) => onBytes(p.loaded ?? 0))
  try {
    await upload.done()
  } catch (e) {
    throw b.error(e, 'multipart upload', key)
  }
  if (seen !== size || hash.digest('hex') !== digest) {
    await b.deleteKey(key)
    throw new StoreError(`${path} does not hash to ${digest} (changed while being stored, or corrupt); upload of ${key} removed`)
  }
}

/**
 * Download object `digest` to `dest` (created with `mode`), hashing as it goes: true only when
 * the bytes (and `expectedSize`, when given) match. A corrupt object is discarded from the
 * server after a second read agrees (see `discard`), and `dest` removed; a miss leaves nothing.
 */
export async function fetchTo(
  b: S3Bucket,
  digest: ObjectDigest,
  dest: string,
  mode: number,
  expectedSize?: number,
  onBytes?: OnBytes,
): Promise<boolean> {
  if (!isSha256Hex(digest)) return false
  const outcome = await download(b, digest, dest, mode, onBytes)
  const good = outcome.status === 'ok' && (expectedSize === undefined || outcome.size === expectedSize)
  if (!good) await unlink(dest).catch(() => undefined)
  if (outcome.status === 'corrupt') await discard(b, digest, outcome.etag)
  return good
}

/** A small object's bytes if present and intact (a corrupt one is discarded as in `discard`). */
export async function readVerified(b: S3Bucket, digest: ObjectDigest, maxBytes: number): Promise<Buffer | undefined> {
  if (!isSha256Hex(digest)) return undefined
  const head = await b.head(b.objectKey(digest))
  if (head === undefined || head.size > maxBytes) return undefined
  const chunks: Buffer[] = []
  const got = await b
    .getVerified(b.objectKey(digest), digest, (c) => void chunks.push(c))
    .catch((e: unknown) => {
      throw b.error(e, 'get object', b.objectKey(digest))
    })
  if (got.status === 'corrupt') await discard(b, digest, got.etag)
  return got.status === 'ok' ? Buffer.concat(chunks) : undefined
}

/**
 * Re-hash one object on the server (downloading it, storing nothing). With `discardCorrupt`
 * a corrupt one is discarded as in `discard`; without, it is only reported (push overwrites it).
 */
export async function verifyRemote(b: S3Bucket, digest: ObjectDigest, discardCorrupt = true): Promise<boolean> {
  if (!isSha256Hex(digest)) return false
  const got = await b.getVerified(b.objectKey(digest), digest, undefined).catch((e: unknown) => {
    throw b.error(e, 'get object', b.objectKey(digest))
  })
  if (got.status === 'corrupt' && discardCorrupt) await discard(b, digest, got.etag)
  return got.status === 'ok'
}

/**
 * Delete object `digest` after a mismatch, but only when a second, independent read is corrupt
 * too (one bad read is as likely this client's fault as the object's) and only the version read
 * (If-Match: a good re-upload meanwhile survives where the server supports it). Returns whether
 * it deleted.
 */
export async function discard(b: S3Bucket, digest: ObjectDigest, etag: string | undefined): Promise<boolean> {
  const key = b.objectKey(digest)
  let again: DownloadOutcome
  try {
    again = await b.getVerified(key, digest, undefined)
  } catch {
    return false // cannot re-read it now: leave it for the next reader (or fsck)
  }
  if (again.status !== 'corrupt' || (etag !== undefined && again.etag !== undefined && again.etag !== etag)) return false
  try {
    await b.client.send(new DeleteObjectCommand({ Bucket: b.config.bucket, Key: key, ...(etag !== undefined ? { IfMatch: etag } : {}) }))
  } catch (e) {
    if (statusOf(e) === 412 || isNotFound(e)) return false
    if (statusOf(e) === 501) {
      await b.deleteKey(key)
      return true
    }
    throw b.error(e, 'delete corrupt object', key)
  }
  return true
}

async function download(b: S3Bucket, digest: ObjectDigest, dest: string, mode: number, onBytes?: OnBytes): Promise<DownloadOutcome> {
  for (let attempt = 0; ; attempt++) {
    let out: FileHandle | undefined
    try {
      await unlink(dest).catch(() => undefined)
      out = await open(dest, 'wx', mode)
      const sink = out
      let n = 0
      return await b.getVerified(b.objectKey(digest), digest, async (c) => {
        await writeAll(sink, c, c.length)
        onBytes?.((n += c.length))
      })
    } catch (e) {
      if (attempt >= 3 || !isTransient(e)) throw e instanceof StoreError ? e : b.error(e, 'get object', b.objectKey(digest))
      await sleep(200 * 2 ** attempt)
    } finally {
      await out?.close()
    }
  }
}

/** sha256 (hex) and size of a file, streamed. */
export async function hashFile(path: string): Promise<{ digest: ObjectDigest; size: number }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return { digest: hash.digest('hex') as ObjectDigest, size }
}

export function sha256(bytes: Uint8Array): ObjectDigest {
  return createHash('sha256').update(bytes).digest('hex') as ObjectDigest
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
