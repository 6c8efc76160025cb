/**
 * Administering the bucket rather than moving entries: listing objects and run records (gc,
 * fsck, `listRuns`), deleting records, quarantining corrupt objects, aborting multipart uploads
 * that killed writers left behind, and checking up front that the bucket can be used.
 */
import { AbortMultipartUploadCommand, CopyObjectCommand, HeadBucketCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3'
import { isSha256Hex } from '../canonical-json.ts'
import type { Fingerprint, ObjectDigest } from '../types.ts'
import { StoreError } from './run-record-check.ts'
import type { S3Bucket } from './s3-client.ts'
import { describeS3 } from './s3-config.ts'
import { nameOf, statusOf } from './s3-errors.ts'

/** One object as listed on the server. */
export interface ListedObject {
  digest: ObjectDigest
  size: number
  modified: Date
}

/** Every object under the prefix, with its size and last-modified time. */
export async function* listObjects(b: S3Bucket): AsyncGenerator<ListedObject> {
  const base = `${b.pfx}objects/sha256/`
  for await (const o of b.listKeys(base)) {
    const digest = o.key.slice(base.length).replace('/', '')
    if (isSha256Hex(digest) && o.key === b.objectKey(digest as ObjectDigest))
      yield { digest: digest as ObjectDigest, size: o.size, modified: o.modified }
  }
}

/** Every run record key under the prefix, as fingerprint and last-modified time. */
export async function* listRunKeys(b: S3Bucket): AsyncGenerator<{ fingerprint: Fingerprint; modified: Date; size: number }> {
  for await (const o of b.listKeys(`${b.pfx}runs/`)) {
    const m = /([0-9a-f]{64})\.json$/.exec(o.key)
    if (m !== null && o.key === b.runKey(m[1]!)) yield { fingerprint: m[1] as Fingerprint, modified: o.modified, size: o.size }
  }
}

/**
 * Move `key` aside to `<prefix>quarantine/<key without prefix>` (copy, then delete only the
 * version copied): what fsck does with an object that does not hash to its name.
 */
export async function quarantineKey(b: S3Bucket, key: string, etag: string | undefined): Promise<string> {
  const dest = `${b.pfx}quarantine/${key.slice(b.pfx.length)}`
  try {
    await b.client.send(
      new CopyObjectCommand({
        Bucket: b.config.bucket,
        Key: dest,
        CopySource: `${b.config.bucket}/${key}`,
        ...(etag !== undefined ? { CopySourceIfMatch: etag } : {}),
      }),
    )
  } catch (e) {
    throw b.error(e, 'quarantine (copy)', key)
  }
  await b.deleteKey(key)
  return dest
}

/**
 * Mark `key` as just used, so gc's grace period (by last-modified time) protects it like a new
 * upload: a server-side copy onto itself (no bytes move through this client). Only done when the
 * object is older than `olderThanMs`, so a busy object costs one copy per period, not per use.
 * Best effort: a server that refuses the copy leaves the object as it was. Returns the new
 * last-modified time the server reported, or undefined when no copy was made.
 */
export async function refreshKey(b: S3Bucket, key: string, modified: Date | undefined, olderThanMs: number): Promise<Date | undefined> {
  if (modified !== undefined && Date.now() - modified.getTime() <= olderThanMs) return undefined
  try {
    const r = await b.client.send(
      new CopyObjectCommand({
        Bucket: b.config.bucket,
        Key: key,
        CopySource: `${b.config.bucket}/${key}`,
        MetadataDirective: 'REPLACE',
        ContentType: 'application/octet-stream',
      }),
    )
    return r.CopyObjectResult?.LastModified ?? new Date()
  } catch {
    return undefined // an older age only makes gc collect it sooner; the object itself is untouched
  }
}

/**
 * Abort multipart uploads under the prefix started more than `olderThanMs` ago (what killed
 * writers leave: invisible, but billed). Returns how many; 0 where the server cannot list them.
 */
export async function abortStaleUploads(b: S3Bucket, olderThanMs = 24 * 3600_000): Promise<number> {
  let aborted = 0
  try {
    const res = await b.client.send(new ListMultipartUploadsCommand({ Bucket: b.config.bucket, Prefix: b.pfx }))
    for (const u of res.Uploads ?? []) {
      if (u.Key === undefined || u.UploadId === undefined || u.Initiated === undefined) continue
      if (Date.now() - u.Initiated.getTime() <= olderThanMs) continue
      await b.client.send(new AbortMultipartUploadCommand({ Bucket: b.config.bucket, Key: u.Key, UploadId: u.UploadId }))
      aborted++
    }
  } catch (e) {
    if (statusOf(e) === 501 || statusOf(e) === 404 || statusOf(e) === 405) return aborted
    throw b.error(e, 'list multipart uploads', b.pfx)
  }
  return aborted
}

/**
 * Throws a `StoreError` unless the bucket exists and these credentials may use it (one HEAD
 * Bucket): so `push`/`pull` fail up front, naming the bucket, rather than after planning.
 */
export async function checkBucket(b: S3Bucket): Promise<void> {
  try {
    await b.client.send(new HeadBucketCommand({ Bucket: b.config.bucket }))
  } catch (e) {
    const status = statusOf(e)
    if (status === 404 || nameOf(e) === 'NotFound' || nameOf(e) === 'NoSuchBucket') {
      throw new StoreError(
        `S3 bucket '${b.config.bucket}' does not exist (${describeS3(b.config)}): create it, or fix --store / CUSP_STORE`,
      )
    }
    throw b.error(e, 'head bucket', '')
  }
}
