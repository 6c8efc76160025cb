/**
 * The embedded artifact store: a directory on the local filesystem (default `<project>/artifacts`).
 *
 *   <root>/objects/sha256/<2 hex>/<62 hex>   immutable objects, mode 0444, named by the sha256 of their bytes
 *   <root>/runs/<2 hex>/<fingerprint>.json   run records, mode 0444, published last
 *   <root>/tmp/<random>                      writes in progress (same filesystem, so rename is atomic)
 *
 * Every write goes to a fresh temp file, is fsynced, renamed into place and the directory
 * fsynced, so a reader (or a process killed mid-write) sees a complete entry or none: a
 * leftover temp file is invisible and never reused. Objects are hashed while they are copied
 * in, so the name is the hash of exactly the bytes written; storing bytes whose name is already
 * taken by a copy that no longer hashes to it replaces that copy (a rerun repairs bit rot), and
 * a dedup hit refreshes the object's mtime (gc's age signal). Every read re-hashes while copying
 * out; a mismatch deletes the corrupt object and reports a miss, so the caller reruns its
 * producer. Run records are untrusted when read: bounded, checked and matched against the
 * store's `RecordTrust` (declared outputs, signatures; record-trust.ts). Restores go to a temp name beside `dest` and are renamed onto it; restored files
 * get mode 0644 (0755 for executable directory entries) so the workspace stays editable without
 * any risk to the store, which holds its own copies. `hasObject` is one stat and `getRun` one
 * small read plus a hash of the breakdown: the cheap calls a no-op rerun makes.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, utimes } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { isSha256Hex } from '../canonical-json.ts'
import type { ArtifactStore, Fingerprint, ObjectDigest, RunRecord } from '../types.ts'
import { parseListing } from './dir-listing.ts'
import { bytesReader, copyHashing, fileReader, syncDir, writeAll, type ChunkReader } from './hashing-copy.ts'
import { admitRecord, declaredOutputsProblem, sealRecord, type RecordTrust } from './record-trust.ts'
import { restoreDir, restoreFile, storeTree } from './restore.ts'
import { checkRunRecord, RECORD_LIMITS, StoreError } from './run-record-check.ts'

/** An `ArtifactStore` in a local directory; safe for several processes writing at once. */
export class LocalStore implements ArtifactStore {
  readonly description: string
  private readonly madeDirs = new Set<string>()

  /** `root` need not exist yet; it is created on the first write. `trust`: see record-trust.ts. */
  constructor(
    readonly root: string,
    readonly trust: RecordTrust = {},
  ) {
    this.description = `local store ${root}`
  }

  /** Where the object `digest` lives (whether or not it is there). */
  objectPath(digest: ObjectDigest): string {
    return join(this.root, 'objects', 'sha256', digest.slice(0, 2), digest.slice(2))
  }

  /** Where the run record of `fp` lives (whether or not it is there). */
  runPath(fp: string): string {
    return join(this.root, 'runs', fp.slice(0, 2), `${fp}.json`)
  }

  // hasObject and getRun use synchronous fs calls on purpose: they are on the hot path of a
  // no-op rerun, and for one stat or one small read the sync call is 10-40x faster than the
  // promise API's thread-pool round trips (measured: 200 run records, 2-4 ms vs 30-170 ms).
  async hasObject(digest: ObjectDigest): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    return statSync(this.objectPath(digest), { throwIfNoEntry: false })?.isFile() ?? false
  }

  /**
   * A directory output is present when its listing object is intact and every file it names is
   * stored: the planner asks this so a deleted file inside a directory output reruns its producer.
   * Files are only stat'ed: each must have the size the listing gives (bytes are verified when restored).
   */
  async hasDir(digest: ObjectDigest): Promise<boolean> {
    const listing = await this.readVerified(digest)
    const entries = listing === undefined ? undefined : parseListing(listing)
    if (entries === undefined) return false
    const sizes = await this.statObjects(entries.map((e) => e.digest))
    return entries.every((e, i) => sizes[i] === e.size)
  }

  /**
   * The size of each object (undefined where it is missing): one stat each, no hashing. The
   * planner compares these with the sizes a record or lock entry gives, so a truncated or
   * grown object is found before a fresh/restore decision relies on it.
   */
  async statObjects(digests: readonly ObjectDigest[]): Promise<(number | undefined)[]> {
    return digests.map((d) => {
      if (!isSha256Hex(d)) return undefined
      const st = statSync(this.objectPath(d), { throwIfNoEntry: false })
      return st?.isFile() === true ? st.size : undefined
    })
  }

  async putFile(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    const src = await open(path, 'r')
    try {
      return await this.ingest(fileReader(src))
    } finally {
      await src.close()
    }
  }

  /** Store `bytes` as an object (used for directory listings; handy for tests and other stores). */
  async putBytes(bytes: Uint8Array): Promise<{ digest: ObjectDigest; size: number }> {
    return await this.ingest(bytesReader(bytes))
  }

  async putDir(path: string): Promise<{ digest: ObjectDigest; size: number }> {
    return await storeTree(
      path,
      (abs) => this.putFile(abs),
      (bytes) => this.putBytes(bytes),
    )
  }

  async getFile(digest: ObjectDigest, dest: string): Promise<boolean> {
    return await restoreFile(digest, dest, (d, to, mode, size) => this.copyOut(d, to, mode, size))
  }

  async getDir(digest: ObjectDigest, dest: string): Promise<boolean> {
    return await restoreDir(await this.readVerified(digest), dest, (d, to, mode, size) => this.copyOut(d, to, mode, size))
  }

  async deleteObject(digest: ObjectDigest): Promise<void> {
    if (!isSha256Hex(digest)) return
    await unlink(this.objectPath(digest)).catch(() => undefined)
  }

  async touchRun(fingerprint: Fingerprint): Promise<boolean> {
    if (!isSha256Hex(fingerprint)) return false
    const now = new Date()
    return await utimes(this.runPath(fingerprint), now, now).then(
      () => true,
      (e: NodeJS.ErrnoException) => e.code !== 'ENOENT', // not ours to touch (a shared dir): still there
    )
  }

  /**
   * gc's delete: removes the record (`run`) or object unless it was used within `graceMs`, and
   * says whether it did. Atomic against a concurrent use: the entry is first renamed aside, and
   * its age read there; a use (a touch) that came before the rename shows in that age and the
   * entry is put back, a use after it finds no entry and counts as a miss.
   */
  async deleteIfOld(kind: 'run' | 'object', name: string, graceMs: number): Promise<boolean> {
    if (!isSha256Hex(name)) return false
    const path = kind === 'run' ? this.runPath(name) : this.objectPath(name as ObjectDigest)
    await this.ensureDir(join(this.root, 'tmp'))
    const aside = join(this.root, 'tmp', `${process.pid}-${randomBytes(8).toString('hex')}.gc`)
    try {
      await rename(path, aside)
    } catch {
      return false // gone already
    }
    const young = Date.now() - (await stat(aside)).mtimeMs <= graceMs
    // A young entry goes back (over a copy published meanwhile: the same bytes, or a record of the same fingerprint).
    if (young) await rename(aside, path)
    else await unlink(aside)
    return !young
  }

  async getRun(fingerprint: Fingerprint): Promise<RunRecord | undefined> {
    if (!isSha256Hex(fingerprint)) return undefined
    const path = this.runPath(fingerprint)
    let data: unknown
    try {
      const st = statSync(path, { throwIfNoEntry: false })
      if (st === undefined) return undefined
      // Never read an oversized (or non-file) record whole: it is damaged or hostile.
      data = st.isFile() && st.size <= RECORD_LIMITS.recordBytes ? JSON.parse(readFileSync(path, 'utf8')) : undefined
    } catch {
      data = undefined // unreadable or not JSON: treated as damaged below
    }
    // A damaged record is a miss; it is left in place (it may be a newer harness's format in a
    // shared store) and the next putRun of this fingerprint renames a good one over it.
    return admitRecord(data, fingerprint, this.trust, this.description)
  }

  /**
   * Publish `record` (atomically, after its objects). Throws `StoreError` if the record is
   * malformed (its fingerprint must hash its breakdown) or any output object, or any file of
   * a directory output, is missing: a record must never point at nothing.
   */
  async putRun(record: RunRecord): Promise<void> {
    const problem = checkRunRecord(record) ?? declaredOutputsProblem(record, this.trust)
    if (problem !== undefined) throw new StoreError(`refusing run record for ${record.instance}: ${problem}`)
    const missing: string[] = []
    for (const [name, o] of Object.entries(record.outputs)) {
      if (!(await this.hasObject(o.digest))) missing.push(`${name} (${o.digest})`)
      else if (o.kind === 'dir') {
        const entries = parseListing((await readFile(this.objectPath(o.digest)).catch(() => undefined)) ?? new Uint8Array())
        if (entries === undefined) missing.push(`${name} (${o.digest} is not a directory listing)`)
        else for (const e of entries) if (!(await this.hasObject(e.digest))) missing.push(`${name}/${e.path} (${e.digest})`)
      }
    }
    if (missing.length > 0) {
      throw new StoreError(
        `refusing run record for ${record.instance} (${record.fingerprint}): objects not in the store: ${missing.join(', ')}`,
      )
    }
    const path = this.runPath(record.fingerprint)
    const { path: tmp, out } = await this.openTemp()
    try {
      const bytes = Buffer.from(sealRecord(record, this.trust), 'utf8')
      await writeAll(out, bytes, bytes.length)
      await out.sync()
    } catch (e) {
      await out.close()
      await unlink(tmp).catch(() => undefined)
      throw e
    }
    await out.close()
    await this.publish(tmp, path)
  }

  async listRuns(): Promise<RunRecord[]> {
    const out: RunRecord[] = []
    const shards = (await readdir(join(this.root, 'runs')).catch(() => [] as string[])).sort()
    for (const shard of shards) {
      const names = (await readdir(join(this.root, 'runs', shard)).catch(() => [] as string[])).sort()
      for (const name of names) {
        if (!name.endsWith('.json')) continue
        const r = await this.getRun(name.slice(0, -'.json'.length) as Fingerprint)
        if (r !== undefined) out.push(r)
      }
    }
    return out
  }

  /** Re-hash a stored object; a corrupt one is deleted. For fsck-style checks and tests. */
  async verifyObject(digest: ObjectDigest): Promise<boolean> {
    if (!isSha256Hex(digest)) return false
    const st = statSync(this.objectPath(digest), { throwIfNoEntry: false })
    if (st === undefined) return false
    if (await this.intact(digest, st.size)) return true
    await this.deleteObject(digest)
    return false
  }

  /** Remove temp files older than `olderThanMs` (left by killed writers); returns how many. */
  async sweepTemp(olderThanMs = 24 * 3600_000): Promise<number> {
    const dir = join(this.root, 'tmp')
    let removed = 0
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const st = await stat(join(dir, name)).catch(() => undefined)
      if (st !== undefined && Date.now() - st.mtimeMs > olderThanMs) {
        await rm(join(dir, name), { force: true })
        removed++
      }
    }
    return removed
  }

  // -------------------------------------------------------------------------------------------

  /** Copy bytes from `read` into a temp file while hashing them, then publish under the hash. */
  private async ingest(read: ChunkReader): Promise<{ digest: ObjectDigest; size: number }> {
    const { path: tmp, out } = await this.openTemp()
    let digest: ObjectDigest
    let size: number
    let exists: boolean
    try {
      const copied = await copyHashing(read, out)
      digest = copied.digest as ObjectDigest
      size = copied.size
      // A stored copy counts only if it is intact: a corrupt one is replaced by ours (that is
      // how a rerun, `--force` or `--verify` repairs a damaged object).
      exists = (await this.hasObject(digest)) && (await this.intact(digest, size))
      if (!exists) await out.sync()
    } catch (e) {
      await out.close()
      await unlink(tmp).catch(() => undefined)
      throw e
    }
    await out.close()
    // Already stored (objects are immutable): drop our copy, and mark the object as just used
    // so gc's grace period protects it like a new one. Otherwise publish it; a concurrent
    // writer of the same bytes may rename over us, which is harmless (same content).
    // A touch that finds no object (gc took it since the check) publishes ours after all.
    const now = new Date()
    const touched =
      exists &&
      (await utimes(this.objectPath(digest), now, now).then(
        () => true,
        (e: NodeJS.ErrnoException) => e.code !== 'ENOENT', // not ours to touch (a shared dir): fine
      ))
    if (touched) await unlink(tmp).catch(() => undefined)
    else {
      if (exists) await syncFile(tmp) // not synced above: it was to be dropped
      await this.publish(tmp, this.objectPath(digest))
    }
    return { digest, size }
  }

  /** Whether the stored object `digest` has `size` bytes that hash to its name (streamed). */
  private async intact(digest: ObjectDigest, size: number): Promise<boolean> {
    const path = this.objectPath(digest)
    if (statSync(path, { throwIfNoEntry: false })?.size !== size) return false
    const hash = createHash('sha256')
    let src: FileHandle
    try {
      src = await open(path, 'r')
    } catch {
      return false
    }
    try {
      const buf = Buffer.allocUnsafe(1 << 20)
      for (let n = await fileReader(src)(buf); n > 0; n = await fileReader(src)(buf)) hash.update(buf.subarray(0, n))
    } finally {
      await src.close()
    }
    return hash.digest('hex') === digest
  }

  /** A fresh read-only temp file under `<root>/tmp`, open for writing (the fd may write; others may not). */
  private async openTemp(): Promise<{ path: string; out: FileHandle }> {
    const dir = join(this.root, 'tmp')
    for (let attempt = 0; ; attempt++) {
      await this.ensureDir(dir)
      const path = join(dir, `${process.pid}-${randomBytes(8).toString('hex')}`)
      try {
        return { path, out: await open(path, 'wx', 0o444) }
      } catch (e) {
        if (attempt > 0 || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
        this.madeDirs.clear() // the store was removed under us: recreate it
      }
    }
  }

  /** Atomically move a synced temp file to `final`, then fsync the directory so the name is durable. */
  private async publish(tmp: string, final: string): Promise<void> {
    await this.ensureDir(dirname(final))
    try {
      await rename(tmp, final)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      this.madeDirs.clear() // the shard directory was removed under us: recreate it once
      await this.ensureDir(dirname(final))
      await rename(tmp, final)
    }
    await syncDir(dirname(final))
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return
    const created = await mkdir(dir, { recursive: true })
    if (created !== undefined) await syncDir(dirname(created))
    this.madeDirs.add(dir)
  }

  /**
   * Copy object `digest` to `dest` (created with `mode`), hashing as it goes; false on a miss,
   * a size other than `expectedSize`, or a hash mismatch (then the corrupt object is deleted).
   */
  private async copyOut(digest: ObjectDigest, dest: string, mode: number, expectedSize?: number): Promise<boolean> {
    let src: FileHandle
    try {
      src = await open(this.objectPath(digest), 'r')
    } catch {
      return false
    }
    let good = false
    try {
      const out = await open(dest, 'wx', mode)
      let copied: { digest: string; size: number }
      try {
        copied = await copyHashing(fileReader(src), out)
      } finally {
        await out.close()
      }
      good = copied.digest === digest && (expectedSize === undefined || copied.size === expectedSize)
    } finally {
      await src.close()
      if (!good) await unlink(dest).catch(() => undefined)
    }
    if (!good) await this.deleteObject(digest)
    return good
  }

  /** The object's bytes if present and intact (a corrupt one is deleted). For small objects. */
  private async readVerified(digest: ObjectDigest): Promise<Buffer | undefined> {
    if (!isSha256Hex(digest)) return undefined
    const st = statSync(this.objectPath(digest), { throwIfNoEntry: false })
    if (st === undefined || !st.isFile() || st.size > RECORD_LIMITS.listingBytes) return undefined // too big for a listing
    const bytes = await readFile(this.objectPath(digest)).catch(() => undefined)
    if (bytes === undefined) return undefined
    if (createHash('sha256').update(bytes).digest('hex') === digest) return bytes
    await this.deleteObject(digest)
    return undefined
  }
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}
