/**
 * The local store in front of the S3 store: what `--store s3://...` opens. Reads go to the local
 * store first and fall back to S3, back-filling the local store with what was fetched (verified
 * on download, then moved into the local layout under its digest, so the next read is local).
 * Writes go to both: the local store ingests (hashing) and the same immutable local object file
 * is uploaded, so the remote copy is exactly what the local digest names. Run records are
 * published locally, then remotely; each store still publishes a record only after its own
 * objects, so neither ever shows an entry whose objects are missing. `push`/`pull` (sync.ts)
 * use the two layers directly to move whole lock entries.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { isSha256Hex } from '../canonical-json.ts'
import type { ArtifactStore, Fingerprint, ObjectDigest, RunRecord } from '../types.ts'
import { parseListing } from './dir-listing.ts'
import type { LocalStore } from './local-store.ts'
import { mapLimit } from './restore.ts'
import type { OnBytes, S3Store } from './s3-store.ts'

/** Local cache + shared S3 store; see the module comment for the read and write rules. */
export class TieredStore implements ArtifactStore {
  readonly description: string

  constructor(
    readonly local: LocalStore,
    readonly remote: S3Store,
  ) {
    this.description = `${remote.description} (local cache ${local.root})`
  }

  async hasObject(digest: ObjectDigest): Promise<boolean> {
    return (await this.local.hasObject(digest)) || (await this.remote.hasObject(digest))
  }

  /** Each object's size in the local store, else on the remote (undefined where neither has it). */
  async statObjects(digests: readonly ObjectDigest[]): Promise<(number | undefined)[]> {
    const local = await this.local.statObjects(digests)
    const gaps = digests.filter((_, i) => local[i] === undefined)
    if (gaps.length === 0) return local
    const remote = await this.remote.statObjects(gaps)
    let j = 0
    return local.map((s) => s ?? remote[j++])
  }

  async hasDir(digest: ObjectDigest): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    const listing = await this.listing(digest)
    if (listing === undefined) return false
    const sizes = await this.statObjects(listing.map((e) => e.digest))
    return listing.every((e, i) => sizes[i] === e.size)
  }

  async putFile(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    const put = await this.local.putFile(path)
    await this.upload(put.digest, put.size)
    return put
  }

  async putDir(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    const put = await this.local.putDir(path)
    const entries = parseListing(await readFile(this.local.objectPath(put.digest))) ?? []
    await mapLimit(entries, 8, (e) => this.upload(e.digest, e.size))
    await this.upload(put.digest, (await readFile(this.local.objectPath(put.digest))).length)
    return put
  }

  async getFile(digest: ObjectDigest, dest: string): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    if (await this.local.getFile(digest, dest)) return true
    return (await this.backfill(digest)) && (await this.local.getFile(digest, dest))
  }

  async getDir(digest: ObjectDigest, dest: string): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    if (await this.local.getDir(digest, dest)) return true
    if (!(await this.local.hasObject(digest)) && !(await this.backfill(digest))) return false
    const entries = parseListing(await readFile(this.local.objectPath(digest)).catch(() => new Uint8Array()))
    if (entries === undefined) return false
    const got = await mapLimit(entries, 8, async (e) => (await this.local.hasObject(e.digest)) || (await this.backfill(e.digest)))
    return got.every(Boolean) && (await this.local.getDir(digest, dest))
  }

  /** Re-hash the local copy if there is one (refetching a corrupt one), else the remote copy. */
  async verifyObject(digest: ObjectDigest): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    if ((await this.local.hasObject(digest)) && (await this.local.verifyObject(digest))) return true
    return await this.backfill(digest)
  }

  /** The local store always re-hashes a copy it dedups against; the remote does from now on. */
  reverifyExisting(): void {
    this.remote.reverifyExisting()
  }

  async deleteObject(digest: ObjectDigest): Promise<void> {
    await this.local.deleteObject(digest)
    await this.remote.deleteObject(digest)
  }

  /** Marks the record used in both layers; true when either has it. */
  async touchRun(fingerprint: Fingerprint): Promise<boolean> {
    const [here, there] = await Promise.all([this.local.touchRun(fingerprint), this.remote.touchRun(fingerprint)])
    return here || there
  }

  async getRun(fingerprint: Fingerprint): Promise<RunRecord | undefined> {
    return (await this.local.getRun(fingerprint)) ?? (await this.remote.getRun(fingerprint))
  }

  /** Publish locally, then remotely (uploading any object the remote lacks from the local copy first). */
  async putRun(record: RunRecord): Promise<void> {
    if (await this.localHasAll(record)) {
      await this.local.putRun(record)
      for (const d of await this.objectsOf(record)) await this.upload(d.digest, d.size)
    }
    await this.remote.putRun(record)
  }

  async listRuns(): Promise<RunRecord[]> {
    const byFp = new Map<string, RunRecord>()
    for (const r of await this.remote.listRuns()) byFp.set(r.fingerprint, r)
    for (const r of await this.local.listRuns()) byFp.set(r.fingerprint, r)
    return [...byFp.values()].sort((a, b) => (a.fingerprint < b.fingerprint ? -1 : 1))
  }

  /**
   * Fetch object `digest` from S3 into the local store (verified while downloading, then renamed
   * into place); false when S3 lacks it or its copy is corrupt (then discarded there).
   */
  async backfill(digest: ObjectDigest, onBytes?: OnBytes): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    const tmpDir = join(this.local.root, 'tmp')
    await mkdir(tmpDir, { recursive: true })
    const tmp = join(tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`)
    if (!(await this.remote.fetchTo(digest, tmp, 0o444, undefined, onBytes))) return false
    const final = this.local.objectPath(digest)
    try {
      await mkdir(dirname(final), { recursive: true })
      await rename(tmp, final)
    } catch (e) {
      await unlink(tmp).catch(() => undefined)
      throw e
    }
    return true
  }

  /** Upload the local object `digest` unless S3 has an object of that name and size already (then refresh its age). */
  async upload(digest: ObjectDigest, size: number, onBytes?: OnBytes): Promise<void> {
    await this.remote.ensure(digest, size, () => this.remote.uploadFile(this.local.objectPath(digest), digest, size, onBytes))
  }

  /** The directory listing `digest`, from whichever layer has it intact. */
  private async listing(digest: ObjectDigest) {
    if (!(await this.local.hasObject(digest)) && !(await this.backfill(digest))) return undefined
    return parseListing(await readFile(this.local.objectPath(digest)).catch(() => new Uint8Array()))
  }

  /** Every object a record names (listings and their files), as far as the local store knows. */
  private async objectsOf(record: RunRecord): Promise<{ digest: ObjectDigest; size: number }[]> {
    const out: { digest: ObjectDigest; size: number }[] = []
    for (const o of Object.values(record.outputs)) {
      if (o.kind === 'dir') {
        const bytes = await readFile(this.local.objectPath(o.digest)).catch(() => undefined)
        for (const e of parseListing(bytes ?? new Uint8Array()) ?? []) out.push({ digest: e.digest, size: e.size })
        out.push({ digest: o.digest, size: bytes?.length ?? 0 })
      } else out.push({ digest: o.digest, size: o.size })
    }
    return out
  }

  private async localHasAll(record: RunRecord): Promise<boolean> {
    for (const d of await this.objectsOf(record)) if (!(await this.local.hasObject(d.digest))) return false
    return true
  }
}
