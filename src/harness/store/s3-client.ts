/**
 * The shared remote store: an S3 bucket (AWS, or any S3-compatible server: MinIO, Ceph RGW, R2,
 * s3rver) with the local store's layout under a prefix:
 *
 *   <prefix>/objects/sha256/<2 hex>/<62 hex>   immutable objects, named by the sha256 of their bytes
 *   <prefix>/runs/<2 hex>/<fingerprint>.json   run records, published last
 *
 * S3 PUTs are atomic (a key shows the old bytes or all of the new ones; an uncompleted multipart
 * upload shows nothing), so a killed writer leaves no visible partial object. An object is hashed
 * before upload and again while its bytes are sent; the SHA-256 is sent with the request
 * (`x-amz-checksum-sha256`, or per part for multipart uploads, `ChecksumAlgorithm: SHA256`) so a
 * server that checks it rejects bytes damaged in transit; every download is re-hashed, and a
 * mismatch discards the object and reports a miss. A run record is published only after every
 * object it names (every file of a directory output too) is seen on the server, with
 * `If-None-Match: *` where the server honours it (the first complete record wins; a racing writer
 * finds it and stops), and with a check-then-put fallback where it does not (s3rver): either way
 * any visible record is complete, since records are written whole and only after their objects.
 * The SDK retries throttling, 5xx and network errors with exponential backoff (`max_attempts`);
 * downloads interrupted mid-body are retried here. Access denied / missing bucket become a
 * `StoreError` naming the bucket and key; every message is redacted (s3-config.ts).
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { open, readFile, unlink } from 'node:fs/promises'
import { Transform, type Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { isSha256Hex } from '../canonical-json.ts'
import type { ArtifactStore, Fingerprint, ObjectDigest, RunRecord } from '../types.ts'
import { parseListing } from './dir-listing.ts'
import { writeAll } from './hashing-copy.ts'
import { mapLimit, restoreDir, restoreFile, storeTree } from './restore.ts'
import { checkRunRecord, StoreError } from './run-record-check.ts'
import { describeS3, type S3StoreConfig } from './s3-config.ts'
import { isNotFound, isTransient, nameOf, s3StoreError, statusOf } from './s3-errors.ts'

/** How many requests one store call keeps in flight (HEADs, small uploads, downloads). */
const PARALLEL = 8

/** Called with the bytes moved so far by one transfer (for progress displays). */
export type OnBytes = (bytes: number) => void

/** One object as listed on the server. */
export interface ListedObject {
  digest: ObjectDigest
  size: number
  modified: Date
}

type DownloadOutcome = { status: 'ok'; size: number } | { status: 'missing' } | { status: 'corrupt'; etag: string | undefined }

/** An `ArtifactStore` in an S3 bucket; safe for any number of harnesses sharing the bucket. */
export class S3Store implements ArtifactStore {
  readonly description: string
  readonly client: S3Client
  private readonly pfx: string
  /** false once the server answered a conditional write with NotImplemented. */
  private conditionalWrites = true

  /**
   * `env` is only for the redaction of messages (credentials come from the AWS chain inside the
   * SDK); `clientConfig` adds to or overrides the client options (tests pass credentials).
   */
  constructor(
    readonly config: S3StoreConfig,
    private readonly env: Record<string, string | undefined> = process.env,
    clientConfig: S3ClientConfig = {},
  ) {
    this.description = `S3 store ${describeS3(config)}`
    this.pfx = config.prefix === '' ? '' : `${config.prefix}/`
    // package.json pins an SDK range that supports Node 20; its notice about later releases
    // needing Node 22 would only clutter every command's stderr.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
    this.client = new S3Client({
      ...(config.region !== undefined ? { region: config.region } : {}),
      ...(config.endpoint !== undefined ? { endpoint: config.endpoint } : {}),
      forcePathStyle: config.forcePathStyle,
      maxAttempts: config.maxAttempts,
      // We send SHA-256 ourselves and verify every download by its digest; the SDK's default
      // CRC32 on every request is extra work that some S3-compatible servers reject.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 10_000, requestTimeout: 300_000 },
      ...clientConfig,
    })
  }

  /** The key of object `digest` (whether or not it is there). */
  objectKey(digest: ObjectDigest): string {
    return `${this.pfx}objects/sha256/${digest.slice(0, 2)}/${digest.slice(2)}`
  }

  /** The key of the run record of `fp`. */
  runKey(fp: string): string {
    return `${this.pfx}runs/${fp.slice(0, 2)}/${fp}.json`
  }

  async hasObject(digest: ObjectDigest): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    return (await this.head(this.objectKey(digest))) !== undefined
  }

  async hasDir(digest: ObjectDigest): Promise<boolean> {
    const listing = await this.readVerified(digest)
    const entries = listing === undefined ? undefined : parseListing(listing)
    if (entries === undefined) return false
    const present = await mapLimit(entries, PARALLEL * 2, (e) => this.hasObject(e.digest))
    return present.every(Boolean)
  }

  async putFile(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    const { digest, size } = await hashFile(path)
    if (!(await this.hasObject(digest))) await this.uploadFile(path, digest, size)
    return { digest, size }
  }

  /** Store `bytes` as an object (directory listings; tests). */
  async putBytes(bytes: Uint8Array): Promise<{ digest: ObjectDigest; size: number }> {
    const digest = sha256(bytes)
    if (!(await this.hasObject(digest))) await this.putSmall(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), digest)
    return { digest, size: bytes.length }
  }

  async putDir(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    return await storeTree(path, (abs) => this.putFile(abs), (bytes) => this.putBytes(bytes), PARALLEL)
  }

  /**
   * Upload the file at `path`, whose sha256 and size the caller has computed, as object
   * `digest`; the bytes are hashed again as they are sent and a file that changed meanwhile is
   * removed from the server and refused. Used by putFile, the tiered store and `push`.
   */
  async uploadFile(path: string, digest: ObjectDigest, size: number, onBytes?: OnBytes): Promise<void> {
    if (size <= this.config.partSizeBytes) {
      const bytes = await readFile(path)
      if (bytes.length !== size || sha256(bytes) !== digest) throw new StoreError(`${path} does not hash to ${digest} (changed while being stored, or corrupt); not uploaded`)
      await this.putSmall(bytes, digest)
      onBytes?.(size)
      return
    }
    const key = this.objectKey(digest)
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
      client: this.client,
      params: { Bucket: this.config.bucket, Key: key, Body: body, ChecksumAlgorithm: 'SHA256', ContentType: 'application/octet-stream' },
      partSize: this.config.partSizeBytes,
      queueSize: 4,
      leavePartsOnError: false,
    })
    if (onBytes !== undefined) upload.on('httpUploadProgress', (p) => onBytes(p.loaded ?? 0))
    try {
      await upload.done()
    } catch (e) {
      throw this.error(e, 'multipart upload', key)
    }
    if (seen !== size || hash.digest('hex') !== digest) {
      await this.deleteKey(key)
      throw new StoreError(`${path} does not hash to ${digest} (changed while being stored, or corrupt); upload of ${key} removed`)
    }
  }

  async getFile(digest: ObjectDigest, dest: string): Promise<boolean> {
    return await restoreFile(digest, dest, (d, to, mode, size) => this.fetchTo(d, to, mode, size))
  }

  async getDir(digest: ObjectDigest, dest: string): Promise<boolean> {
    return await restoreDir(await this.readVerified(digest), dest, (d, to, mode, size) => this.fetchTo(d, to, mode, size), PARALLEL)
  }

  /**
   * Download object `digest` to `dest` (created with `mode`), hashing as it goes: true only when
   * the bytes (and `expectedSize`, when given) match. A corrupt object is deleted from the server
   * (only if unchanged since it was read) and `dest` removed; a miss leaves nothing either.
   */
  async fetchTo(digest: ObjectDigest, dest: string, mode: number, expectedSize?: number, onBytes?: OnBytes): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    const outcome = await this.download(digest, dest, mode, onBytes)
    const good = outcome.status === 'ok' && (expectedSize === undefined || outcome.size === expectedSize)
    if (!good) await unlink(dest).catch(() => undefined)
    if (outcome.status === 'corrupt') await this.discard(digest, outcome.etag)
    return good
  }

  /** Re-hash one object on the server (downloading it, storing nothing); a corrupt one is discarded. */
  async verifyObject(digest: ObjectDigest): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    const got = await this.getVerified(this.objectKey(digest), digest, undefined).catch((e: unknown) => {
      throw this.error(e, 'get object', this.objectKey(digest))
    })
    if (got.status === 'corrupt') await this.discard(digest, got.etag)
    return got.status === 'ok'
  }

  async deleteObject(digest: ObjectDigest): Promise<void> {
    if (!isSha256Hex(digest)) return
    await this.deleteKey(this.objectKey(digest))
  }

  async getRun(fingerprint: Fingerprint): Promise<RunRecord | undefined> {
    if (!isSha256Hex(fingerprint)) return undefined
    const got = await this.getRaw(this.runKey(fingerprint))
    return got?.record !== undefined && checkRunRecord(got.record, fingerprint) === undefined ? (got.record as RunRecord) : undefined
  }

  /**
   * Publish `record` after checking that every object it names (every file of a directory output
   * too) is on the server; throws `StoreError` naming any missing one, or a malformed record.
   * Where a complete record for the fingerprint already exists, it is kept (first writer wins).
   */
  async putRun(record: RunRecord): Promise<void> {
    const problem = checkRunRecord(record)
    if (problem !== undefined) throw new StoreError(`refusing run record for ${record.instance}: ${problem}`)
    const missing: string[] = []
    await mapLimit(Object.entries(record.outputs), PARALLEL, async ([name, o]) => {
      if (o.kind === 'file') {
        if (!(await this.hasObject(o.digest))) missing.push(`${name} (${o.digest})`)
        return
      }
      const listing = await this.readVerified(o.digest)
      const entries = listing === undefined ? undefined : parseListing(listing)
      if (listing === undefined) missing.push(`${name} (${o.digest})`)
      else if (entries === undefined) missing.push(`${name} (${o.digest} is not a directory listing)`)
      else {
        const has = await mapLimit(entries, PARALLEL * 2, (e) => this.hasObject(e.digest))
        entries.forEach((e, i) => has[i] || missing.push(`${name}/${e.path} (${e.digest})`))
      }
    })
    if (missing.length > 0) {
      throw new StoreError(`refusing run record for ${record.instance} (${record.fingerprint}): objects not in ${describeS3(this.config)}: ${missing.sort().join(', ')}`)
    }
    const key = this.runKey(record.fingerprint)
    const body = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8')
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.getRaw(key)
      if (existing !== undefined && checkRunRecord(existing.record, record.fingerprint) === undefined) return // complete record there: first wins
      // Create-only when nothing is there; replace-only-that-version when a damaged one is.
      const cond = existing === undefined ? { IfNoneMatch: '*' } : existing.etag !== undefined ? { IfMatch: existing.etag } : {}
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.config.bucket,
            Key: key,
            Body: body,
            ContentType: 'application/json',
            ChecksumSHA256: Buffer.from(sha256(body), 'hex').toString('base64'),
            ...(this.conditionalWrites ? cond : {}),
          }),
        )
        return
      } catch (e) {
        const status = statusOf(e)
        if (status === 412 || status === 409 || nameOf(e) === 'PreconditionFailed' || nameOf(e) === 'ConditionalRequestConflict') continue // lost a race: look again
        if (status === 501 || nameOf(e) === 'NotImplemented') {
          this.conditionalWrites = false // the server cannot do conditional writes: check-then-put
          continue
        }
        throw this.error(e, 'put run record', key)
      }
    }
    throw new StoreError(`could not publish run record ${key} in ${describeS3(this.config)}: it kept changing under concurrent writers`)
  }

  async listRuns(): Promise<RunRecord[]> {
    const fps: Fingerprint[] = []
    for await (const o of this.listKeys(`${this.pfx}runs/`)) {
      const m = /([0-9a-f]{64})\.json$/.exec(o.key)
      if (m !== null && o.key === this.runKey(m[1]!)) fps.push(m[1] as Fingerprint)
    }
    const recs = await mapLimit(fps.sort(), PARALLEL * 2, (fp) => this.getRun(fp))
    return recs.filter((r): r is RunRecord => r !== undefined)
  }

  /** Every object under the prefix (for gc), with its size and last-modified time. */
  async *listObjects(): AsyncGenerator<ListedObject> {
    const base = `${this.pfx}objects/sha256/`
    for await (const o of this.listKeys(base)) {
      const rest = o.key.slice(base.length)
      const digest = rest.replace('/', '')
      if (isSha256Hex(digest) && o.key === this.objectKey(digest as ObjectDigest)) yield { digest: digest as ObjectDigest, size: o.size, modified: o.modified }
    }
  }

  /** Delete a run record (gc). Missing is fine. */
  async deleteRun(fp: Fingerprint): Promise<void> {
    if (isSha256Hex(fp)) await this.deleteKey(this.runKey(fp))
  }

  /**
   * Abort multipart uploads under the prefix started more than `olderThanMs` ago (what killed
   * writers leave: invisible, but billed). Returns how many; 0 where the server cannot list them.
   */
  async abortStaleUploads(olderThanMs = 24 * 3600_000): Promise<number> {
    let aborted = 0
    try {
      const res = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.config.bucket, Prefix: this.pfx }))
      for (const u of res.Uploads ?? []) {
        if (u.Key === undefined || u.UploadId === undefined || u.Initiated === undefined) continue
        if (Date.now() - u.Initiated.getTime() <= olderThanMs) continue
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.config.bucket, Key: u.Key, UploadId: u.UploadId }))
        aborted++
      }
    } catch (e) {
      if (statusOf(e) === 501 || statusOf(e) === 404 || statusOf(e) === 405) return aborted
      throw this.error(e, 'list multipart uploads', this.pfx)
    }
    return aborted
  }

  /**
   * Throws a `StoreError` unless the bucket exists and these credentials may use it (one HEAD
   * Bucket): so `push`/`pull` fail up front, naming the bucket, rather than after planning.
   */
  async checkBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.config.bucket }))
    } catch (e) {
      const status = statusOf(e)
      if (status === 404 || nameOf(e) === 'NotFound' || nameOf(e) === 'NoSuchBucket') {
        throw new StoreError(`S3 bucket '${this.config.bucket}' does not exist (${describeS3(this.config)}): create it, or fix --store / CUSP_STORE`)
      }
      throw this.error(e, 'head bucket', '')
    }
  }

  /** Turn an SDK error into a `StoreError` naming the bucket, key and what to do; redacted. */
  error(e: unknown, op: string, key: string): StoreError {
    return s3StoreError(e, op, key, this.config, this.env)
  }

  // -------------------------------------------------------------------------------------------

  private async putSmall(bytes: Buffer, digest: ObjectDigest): Promise<void> {
    const key = this.objectKey(digest)
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.config.bucket,
          Key: key,
          Body: bytes,
          ContentLength: bytes.length,
          ContentType: 'application/octet-stream',
          ChecksumSHA256: Buffer.from(digest, 'hex').toString('base64'),
        }),
      )
    } catch (e) {
      throw this.error(e, 'put object', key)
    }
  }

  /** HEAD `key`: its size and etag, or undefined when absent. */
  private async head(key: string): Promise<{ size: number; etag: string | undefined } | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }))
      return { size: r.ContentLength ?? 0, etag: r.ETag }
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw this.error(e, 'head object', key)
    }
  }

  /** A small object's bytes parsed as JSON (record undefined when not JSON), or undefined when absent. */
  private async getRaw(key: string): Promise<{ record: unknown; etag: string | undefined } | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }))
      const text = await r.Body!.transformToString('utf8')
      let record: unknown
      try {
        record = JSON.parse(text)
      } catch {
        record = undefined
      }
      return { record, etag: r.ETag }
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw this.error(e, 'get', key)
    }
  }

  /** A small object's bytes if present and intact (a corrupt one is discarded). */
  private async readVerified(digest: ObjectDigest): Promise<Buffer | undefined> {
    if (!isSha256Hex(digest)) return undefined
    const chunks: Buffer[] = []
    const got = await this.getVerified(this.objectKey(digest), digest, (c) => void chunks.push(c)).catch((e: unknown) => {
      throw this.error(e, 'get object', this.objectKey(digest))
    })
    if (got.status === 'corrupt') await this.discard(digest, got.etag)
    return got.status === 'ok' ? Buffer.concat(chunks) : undefined
  }

  private async download(digest: ObjectDigest, dest: string, mode: number, onBytes?: OnBytes): Promise<DownloadOutcome> {
    for (let attempt = 0; ; attempt++) {
      let out: FileHandle | undefined
      try {
        await unlink(dest).catch(() => undefined)
        out = await open(dest, 'wx', mode)
        const sink = out
        let n = 0
        return await this.getVerified(this.objectKey(digest), digest, async (c) => {
          await writeAll(sink, c, c.length)
          onBytes?.((n += c.length))
        })
      } catch (e) {
        if (attempt >= 3 || !isTransient(e)) throw e instanceof StoreError ? e : this.error(e, 'get object', this.objectKey(digest))
        await sleep(200 * 2 ** attempt)
      } finally {
        await out?.close()
      }
    }
  }

  /**
   * GET `key`, passing each chunk to `sink` and hashing it; the outcome says whether it matched
   * `digest`. Errors other than a miss are thrown as they came (callers wrap or retry them).
   */
  private async getVerified(key: string, digest: ObjectDigest, sink: ((chunk: Buffer) => void | Promise<void>) | undefined): Promise<DownloadOutcome> {
    let res
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }))
    } catch (e) {
      if (isNotFound(e)) return { status: 'missing' }
      throw e
    }
    const hash = createHash('sha256')
    let size = 0
    for await (const chunk of res.Body as Readable) {
      const c = chunk as Buffer
      hash.update(c)
      size += c.length
      if (sink !== undefined) await sink(c)
    }
    if (res.ContentLength !== undefined && size !== res.ContentLength) {
      // A short read is the network's fault, not the object's: retry, never discard a good object.
      throw Object.assign(new Error(`short read of ${key}: ${size} of ${res.ContentLength} bytes`), { code: 'ERR_STREAM_PREMATURE_CLOSE' })
    }
    return hash.digest('hex') === digest ? { status: 'ok', size } : { status: 'corrupt', etag: res.ETag }
  }

  /** Delete a corrupt object, but only the version we read (a good re-upload meanwhile survives where the server supports If-Match). */
  private async discard(digest: ObjectDigest, etag: string | undefined): Promise<void> {
    const key = this.objectKey(digest)
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: key, ...(etag !== undefined ? { IfMatch: etag } : {}) }))
    } catch (e) {
      if (statusOf(e) === 412 || isNotFound(e)) return
      if (statusOf(e) === 501) return await this.deleteKey(key)
      throw this.error(e, 'delete corrupt object', key)
    }
  }

  private async deleteKey(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: key }))
    } catch (e) {
      if (isNotFound(e)) return
      throw this.error(e, 'delete', key)
    }
  }

  private async *listKeys(prefix: string): AsyncGenerator<{ key: string; size: number; modified: Date }> {
    let token: string | undefined
    do {
      let res
      try {
        res = await this.client.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken: token }))
      } catch (e) {
        throw this.error(e, 'list', prefix)
      }
      for (const o of res.Contents ?? []) if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) }
      token = res.IsTruncated === true ? res.NextContinuationToken : undefined
    } while (token !== undefined)
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

function sha256(bytes: Uint8Array): ObjectDigest {
  return createHash('sha256').update(bytes).digest('hex') as ObjectDigest
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
