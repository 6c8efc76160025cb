/**
 * Moving trees between the filesystem and a store, shared by every store: a directory output is
 * stored as its files plus a canonical listing, and a file or a directory tree is restored
 * beside its destination and renamed into place only when every object came
 * back intact, so a failed or interrupted restore leaves no partial output. Each store supplies
 * `fetch`, which writes one object's bytes to a path and verifies their sha256 as it goes.
 */
import { randomBytes } from 'node:crypto'
import { lstat, mkdir, readdir, rename, rm, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { isSha256Hex } from '../canonical-json.ts'
import type { ObjectDigest } from '../types.ts'
import { encodeListing, normaliseMode, parseListing, type DirEntry } from './dir-listing.ts'
import { StoreError } from './run-record-check.ts'
import { replaceTree } from './hashing-copy.ts'

/** Write object `digest` to `dest` with `mode`; true only if it exists and its bytes (and size) verify. */
export type FetchObject = (digest: ObjectDigest, dest: string, mode: number, expectedSize?: number) => Promise<boolean>

const tempBeside = (dest: string): string => `${dest}.cusp-${randomBytes(6).toString('hex')}.tmp`

/** Restore one file object to `dest` (mode 0644) via a temp file and rename; false on a miss or mismatch. */
export async function restoreFile(digest: ObjectDigest, dest: string, fetch: FetchObject): Promise<boolean> {
  if (!isSha256Hex(digest)) return false
  await mkdir(dirname(dest), { recursive: true })
  const tmp = tempBeside(dest)
  if (!(await fetch(digest, tmp, 0o644))) return false
  try {
    await rename(tmp, dest)
  } catch (e) {
    await unlink(tmp).catch(() => undefined)
    throw e
  }
  return true
}

/**
 * Recreate a directory output at `dest` (replacing what is there) from its verified listing
 * object's bytes (undefined: missing or corrupt), fetching at most `parallel` objects at once;
 * false, with nothing left behind, if the listing or any object is missing or corrupt.
 */
export async function restoreDir(listing: Uint8Array | undefined, dest: string, fetch: FetchObject, parallel = 1): Promise<boolean> {
  const entries = listing === undefined ? undefined : parseListing(listing)
  if (entries === undefined) return false
  return await restoreTree(entries, dest, fetch, parallel)
}

async function restoreTree(entries: readonly DirEntry[], dest: string, fetch: FetchObject, parallel: number): Promise<boolean> {
  const tmp = tempBeside(dest)
  await mkdir(tmp, { recursive: true })
  try {
    const got = await mapLimit(entries, parallel, async (e) => {
      const target = join(tmp, e.path)
      await mkdir(dirname(target), { recursive: true })
      return await fetch(e.digest, target, e.mode, e.size)
    })
    if (!got.every(Boolean)) {
      await rm(tmp, { recursive: true, force: true })
      return false
    }
    await replaceTree(tmp, dest)
    return true
  } catch (e) {
    await rm(tmp, { recursive: true, force: true })
    throw e
  }
}

/**
 * Store a directory output: every regular file under `root` (sorted, so the listing is
 * canonical) through `put`, at most `parallel` at once, then the listing object through
 * `putListing`; the listing's digest is the directory's, its size the files' total. Anything
 * but regular files and directories (a symlink, a socket) is refused.
 */
export async function storeTree(
  root: string,
  put: (abs: string) => Promise<{ digest: ObjectDigest; size: number }>,
  putListing: (bytes: Uint8Array) => Promise<{ digest: ObjectDigest; size: number }>,
  parallel = 1,
): Promise<{ digest: ObjectDigest; size: number }> {
  const files: { abs: string; rel: string; mode: 0o644 | 0o755 }[] = []
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name)
      const rel = prefix === '' ? name : `${prefix}/${name}`
      const st = await lstat(abs)
      if (st.isDirectory()) await walk(abs, rel)
      else if (st.isFile()) files.push({ abs, rel, mode: normaliseMode(st.mode) })
      else throw new StoreError(`cannot store ${abs}: directory outputs may hold only regular files and directories`)
    }
  }
  await walk(root, '')
  const puts = await mapLimit(files, parallel, (f) => put(f.abs))
  const entries: DirEntry[] = files.map((f, i) => ({ path: f.rel, mode: f.mode, ...puts[i]! }))
  const listing = await putListing(encodeListing(entries))
  return { digest: listing.digest, size: entries.reduce((n, e) => n + e.size, 0) }
}

/** `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}
