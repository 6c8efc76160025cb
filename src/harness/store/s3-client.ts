/**
 * The S3 bucket under a prefix, as the S3 store's parts see it: the SDK client, the key layout
 *
 *   <prefix>/objects/sha256/<2 hex>/<62 hex>   immutable objects, named by the sha256 of their bytes
 *   <prefix>/runs/<2 hex>/<fingerprint>.json   run records, published last
 *
 * and the few primitive requests everything else is built from (HEAD, bounded GET, verified
 * GET, DELETE, LIST, small PUT), each turning SDK errors into a `StoreError` that names the
 * bucket and key, redacted (s3-errors.ts). The SDK retries throttling, 5xx and network errors
 * with exponential backoff (`max_attempts`). Transfers are in s3-transfer.ts, bucket
 * administration (listing, gc, multipart cleanup) in s3-admin.ts, the store in s3-store.ts.
 */
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import type { ObjectDigest } from '../types.ts'
import type { StoreError } from './run-record-check.ts'
import { describeS3, type S3StoreConfig } from './s3-config.ts'
import { isNotFound, s3StoreError } from './s3-errors.ts'

/** The outcome of a verified GET. */
export type DownloadOutcome = { status: 'ok'; size: number } | { status: 'missing' } | { status: 'corrupt'; etag: string | undefined }

/** One key as listed on the server. */
export interface ListedKey {
  key: string
  size: number
  modified: Date
}

/** The bucket and prefix of an S3 store, with its client and primitive requests. */
export class S3Bucket {
  readonly description: string
  readonly client: S3Client
  readonly pfx: string

  /**
   * `env` is only for the redaction of messages (credentials come from the AWS chain inside the
   * SDK); `clientConfig` adds to or overrides the client options (tests pass credentials).
   */
  constructor(
    readonly config: S3StoreConfig,
    protected readonly env: Record<string, string | undefined> = process.env,
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

  /** Turn an SDK error into a `StoreError` naming the bucket, key and what to do; redacted. */
  error(e: unknown, op: string, key: string): StoreError {
    return s3StoreError(e, op, key, this.config, this.env)
  }

  /** HEAD `key`: its size, etag and last-modified time, or undefined when absent. */
  async head(key: string): Promise<{ size: number; etag: string | undefined; modified: Date | undefined } | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: key }))
      return { size: r.ContentLength ?? 0, etag: r.ETag, modified: r.LastModified }
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw this.error(e, 'head object', key)
    }
  }

  /**
   * A small object parsed as JSON (`value` undefined when it is not JSON, or larger than
   * `maxBytes`: then it is not read past that), or undefined when absent.
   */
  async getJson(key: string, maxBytes: number): Promise<{ value: unknown; etag: string | undefined } | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: key }))
      const chunks: Buffer[] = []
      let n = 0
      for await (const c of r.Body as Readable) {
        n += (c as Buffer).length
        if (n > maxBytes) {
          ;(r.Body as Readable).destroy()
          return { value: undefined, etag: r.ETag }
        }
        chunks.push(c as Buffer)
      }
      let value: unknown
      try {
        value = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        value = undefined
      }
      return { value, etag: r.ETag }
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw this.error(e, 'get', key)
    }
  }

  /**
   * GET `key`, passing each chunk to `sink` and hashing it; the outcome says whether it matched
   * `digest`. Errors other than a miss are thrown as they came (callers wrap or retry them).
   */
  async getVerified(
    key: string,
    digest: ObjectDigest,
    sink: ((chunk: Buffer) => void | Promise<void>) | undefined,
  ): Promise<DownloadOutcome> {
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

  /** PUT a small object whose sha256 is `digest`, with the checksum for the server to check. */
  async putSmall(bytes: Buffer, digest: ObjectDigest): Promise<void> {
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

  /** DELETE `key`; missing is fine. */
  async deleteKey(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key: key }))
    } catch (e) {
      if (isNotFound(e)) return
      throw this.error(e, 'delete', key)
    }
  }

  /** Every key under `prefix`, page by page. */
  async *listKeys(prefix: string): AsyncGenerator<ListedKey> {
    let token: string | undefined
    do {
      let res
      try {
        res = await this.client.send(new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: prefix, ContinuationToken: token }))
      } catch (e) {
        throw this.error(e, 'list', prefix)
      }
      for (const o of res.Contents ?? [])
        if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) }
      token = res.IsTruncated === true ? res.NextContinuationToken : undefined
    } while (token !== undefined)
  }
}
