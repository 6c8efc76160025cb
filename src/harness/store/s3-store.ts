/**
 * The shared remote store: an S3 bucket (AWS, or any S3-compatible server: MinIO, Ceph RGW, R2,
 * s3rver) with the local store's layout under a prefix (s3-client.ts). Objects move through
 * s3-transfer.ts (hashed on the way up and down; a corrupt object is deleted only after a second
 * read agrees); listing and cleanup are s3-admin.ts. A run record is untrusted input when read
 * (bounded, checked, and with `RecordTrust` matched against its stage's declared outputs and
 * signature), and is published only after every object it names (every file of a directory
 * output too) is seen on the server, with `If-None-Match: *` where the server honours it (the
 * first complete record wins; a racing writer finds it and stops), and with a check-then-put
 * fallback where it does not (s3rver): either way any visible record is complete.
 */
import { PutObjectCommand, type S3ClientConfig } from '@aws-sdk/client-s3'
import { isSha256Hex } from '../canonical-json.ts'
import type { ArtifactStore, Fingerprint, ObjectDigest, RunRecord } from '../types.ts'
import { parseListing } from './dir-listing.ts'
import { admitRecord, declaredOutputsProblem, sealRecord, type RecordTrust } from './record-trust.ts'
import { mapLimit, restoreDir, restoreFile, storeTree } from './restore.ts'
import { checkRunRecord, RECORD_LIMITS, StoreError } from './run-record-check.ts'
import { abortStaleUploads, checkBucket, listObjects, listRunKeys, refreshKey, type ListedObject } from './s3-admin.ts'
import { S3Bucket } from './s3-client.ts'
import { describeS3, type S3StoreConfig } from './s3-config.ts'
import { nameOf, statusOf } from './s3-errors.ts'
import { fetchTo, hashFile, readVerified, sha256, uploadFile, verifyRemote, type OnBytes } from './s3-transfer.ts'

export type { ListedObject } from './s3-admin.ts'
export type { OnBytes } from './s3-transfer.ts'
export { hashFile } from './s3-transfer.ts'

/** How many requests one store call keeps in flight (HEADs, small uploads, downloads). */
const PARALLEL = 8
/** A dedup hit on an object older than this refreshes its last-modified time (half gc's grace). */
export const REFRESH_AFTER_MS = 30 * 60_000

/** An `ArtifactStore` in an S3 bucket; safe for any number of harnesses sharing the bucket. */
export class S3Store extends S3Bucket implements ArtifactStore {
  /** false once the server answered a conditional write with NotImplemented. */
  private conditionalWrites = true
  private reverify = false

  constructor(
    config: S3StoreConfig,
    env: Record<string, string | undefined> = process.env,
    clientConfig: S3ClientConfig = {},
    readonly trust: RecordTrust = {},
  ) {
    super(config, env, clientConfig)
  }

  async hasObject(digest: ObjectDigest): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    return (await this.head(this.objectKey(digest))) !== undefined
  }

  /** The size of each object on the server (undefined where missing): one HEAD each. */
  async statObjects(digests: readonly ObjectDigest[]): Promise<(number | undefined)[]> {
    return await mapLimit(digests, PARALLEL * 2, async (d) => (isSha256Hex(d) ? (await this.head(this.objectKey(d)))?.size : undefined))
  }

  async hasDir(digest: ObjectDigest): Promise<boolean> {
    const listing = await readVerified(this, digest, RECORD_LIMITS.listingBytes)
    const entries = listing === undefined ? undefined : parseListing(listing)
    if (entries === undefined) return false
    const sizes = await this.statObjects(entries.map((e) => e.digest))
    return entries.every((e, i) => sizes[i] === e.size)
  }

  async putFile(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    const { digest, size } = await hashFile(path)
    await this.ensure(digest, size, () => this.uploadFile(path, digest, size))
    return { digest, size }
  }

  /**
   * Upload object `digest` (of `size` bytes) with `upload` unless the server has it with that
   * size (and, after `reverifyExisting`, bytes that hash to its name); a dedup hit refreshes its
   * last-modified time (gc's age signal) when it is getting old.
   */
  async ensure(digest: ObjectDigest, size: number, upload: () => Promise<void>): Promise<void> {
    const head = await this.head(this.objectKey(digest))
    if (head?.size !== size || (this.reverify && !(await this.checkObject(digest)))) return await upload()
    await refreshKey(this, this.objectKey(digest), head.modified, REFRESH_AFTER_MS)
  }

  /** Store `bytes` as an object (directory listings; tests). */
  async putBytes(bytes: Uint8Array): Promise<{ digest: ObjectDigest; size: number }> {
    const digest = sha256(bytes)
    await this.ensure(digest, bytes.length, () => this.putSmall(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), digest))
    return { digest, size: bytes.length }
  }

  async putDir(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    return await storeTree(
      path,
      (abs) => this.putFile(abs),
      (bytes) => this.putBytes(bytes),
      PARALLEL,
    )
  }

  /** Upload a file whose digest and size the caller computed (see s3-transfer.ts). */
  async uploadFile(path: string, digest: ObjectDigest, size: number, onBytes?: OnBytes): Promise<void> {
    await uploadFile(this, path, digest, size, onBytes)
  }

  async getFile(digest: ObjectDigest, dest: string): Promise<boolean> {
    return await restoreFile(digest, dest, (d, to, mode, size) => this.fetchTo(d, to, mode, size))
  }

  async getDir(digest: ObjectDigest, dest: string): Promise<boolean> {
    const listing = await readVerified(this, digest, RECORD_LIMITS.listingBytes)
    return await restoreDir(listing, dest, (d, to, mode, size) => this.fetchTo(d, to, mode, size), PARALLEL)
  }

  /** Download one object to `dest`, verified (see s3-transfer.ts). */
  async fetchTo(digest: ObjectDigest, dest: string, mode: number, expectedSize?: number, onBytes?: OnBytes): Promise<boolean> {
    return await fetchTo(this, digest, dest, mode, expectedSize, onBytes)
  }

  /** Re-hash one object on the server; a corrupt one is discarded once a second read agrees. */
  async verifyObject(digest: ObjectDigest): Promise<boolean> {
    return await verifyRemote(this, digest)
  }

  /** See `ArtifactStore.reverifyExisting`: a dedup hit then re-hashes the server's copy (a download). */
  reverifyExisting(): void {
    this.reverify = true
  }

  /** Re-hash one object on the server and report; never deletes (push overwrites a bad copy). */
  async checkObject(digest: ObjectDigest): Promise<boolean> {
    return await verifyRemote(this, digest, false)
  }

  async deleteObject(digest: ObjectDigest): Promise<void> {
    if (!isSha256Hex(digest)) return
    await this.deleteKey(this.objectKey(digest))
  }

  async getRun(fingerprint: Fingerprint): Promise<RunRecord | undefined> {
    if (!isSha256Hex(fingerprint)) return undefined
    const got = await this.getJson(this.runKey(fingerprint), RECORD_LIMITS.recordBytes)
    return got === undefined ? undefined : admitRecord(got.value, fingerprint, this.trust, this.description)
  }

  /**
   * Publish `record` after checking that every object it names (every file of a directory output
   * too) is on the server; throws `StoreError` naming any missing one, or a malformed record.
   * Where a complete record for the fingerprint already exists, it is kept (first writer wins).
   */
  async putRun(record: RunRecord): Promise<void> {
    const problem = checkRunRecord(record) ?? declaredOutputsProblem(record, this.trust)
    if (problem !== undefined) throw new StoreError(`refusing run record for ${record.instance}: ${problem}`)
    const missing: string[] = []
    await mapLimit(Object.entries(record.outputs), PARALLEL, async ([name, o]) => {
      if (o.kind === 'file') {
        if (!(await this.hasObject(o.digest))) missing.push(`${name} (${o.digest})`)
        return
      }
      const listing = await readVerified(this, o.digest, RECORD_LIMITS.listingBytes)
      const entries = listing === undefined ? undefined : parseListing(listing)
      if (listing === undefined) missing.push(`${name} (${o.digest})`)
      else if (entries === undefined) missing.push(`${name} (${o.digest} is not a directory listing)`)
      else {
        const has = await mapLimit(entries, PARALLEL * 2, (e) => this.hasObject(e.digest))
        entries.forEach((e, i) => has[i] || missing.push(`${name}/${e.path} (${e.digest})`))
      }
    })
    if (missing.length > 0) {
      throw new StoreError(
        `refusing run record for ${record.instance} (${record.fingerprint}): objects not in ${describeS3(this.config)}: ${missing.sort().join(', ')}`,
      )
    }
    const key = this.runKey(record.fingerprint)
    const body = Buffer.from(sealRecord(record, this.trust), 'utf8')
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = await this.getJson(key, RECORD_LIMITS.recordBytes)
      if (
        existing !== undefined &&
        admitRecord(existing.value, record.fingerprint, { ...this.trust, warn: () => undefined }, this.description) !== undefined
      )
        return // complete record there: first wins
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
    for await (const r of listRunKeys(this)) fps.push(r.fingerprint)
    const recs = await mapLimit(fps.sort(), PARALLEL * 2, (fp) => this.getRun(fp))
    return recs.filter((r): r is RunRecord => r !== undefined)
  }

  /** Every object under the prefix (for gc and fsck), with its size and last-modified time. */
  listObjects(): AsyncGenerator<ListedObject> {
    return listObjects(this)
  }

  /** Mark a run record as used before a restore (a server-side copy when it is getting old); false when gone. */
  async touchRun(fp: Fingerprint): Promise<boolean> {
    const head = isSha256Hex(fp) ? await this.head(this.runKey(fp)) : undefined
    if (head === undefined) return false
    await refreshKey(this, this.runKey(fp), head.modified, REFRESH_AFTER_MS)
    return true
  }

  /**
   * gc's delete: removes the record (`run`) or object unless it was modified within `graceMs`
   * (re-read now, not when gc listed it); says whether it did. S3 has no atomic rename, so a use
   * between this read and the delete is not seen; the grace period is what covers that window.
   */
  async deleteIfOld(kind: 'run' | 'object', name: string, graceMs: number): Promise<boolean> {
    if (!isSha256Hex(name)) return false
    const key = kind === 'run' ? this.runKey(name) : this.objectKey(name as ObjectDigest)
    const modified = (await this.head(key))?.modified
    if (modified === undefined || Date.now() - modified.getTime() <= graceMs) return false
    await this.deleteKey(key)
    return true
  }

  /** Delete a run record (gc). Missing is fine. */
  async deleteRun(fp: Fingerprint): Promise<void> {
    if (isSha256Hex(fp)) await this.deleteKey(this.runKey(fp))
  }

  /** Abort multipart uploads older than `olderThanMs` (see s3-admin.ts). */
  async abortStaleUploads(olderThanMs = 24 * 3600_000): Promise<number> {
    return await abortStaleUploads(this, olderThanMs)
  }

  /** Throws a `StoreError` unless the bucket exists and may be used (see s3-admin.ts). */
  async checkBucket(): Promise<void> {
    await checkBucket(this)
  }
}
