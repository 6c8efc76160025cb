/**
 * Byte-moving primitives for file-backed stores: copy a stream of chunks into a file while
 * hashing exactly the bytes written (so an object's name is the hash of what landed on disk,
 * and a restore is verified as it is written), fsync a directory so a rename is durable, and
 * swap a finished tree onto a destination. No policy here: what to do on a mismatch is the store's.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import { lstat, open, rename, rm } from 'node:fs/promises'

const CHUNK = 1 << 20

/** Fills `buf` from the source and returns how many bytes it put there; 0 means the end. */
export type ChunkReader = (buf: Buffer) => Promise<number>

/** A reader over an open file handle (from its current position). */
export function fileReader(src: FileHandle): ChunkReader {
  return async (buf) => (await src.read(buf, 0, buf.length, null)).bytesRead
}

/** A reader over bytes in memory. */
export function bytesReader(bytes: Uint8Array): ChunkReader {
  let at = 0
  return async (buf) => {
    const n = Math.min(buf.length, bytes.length - at)
    buf.set(bytes.subarray(at, at + n))
    at += n
    return n
  }
}

/** Copy everything `read` yields into `out`, returning the sha256 (hex) and size of those bytes. */
export async function copyHashing(read: ChunkReader, out: FileHandle): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256')
  const buf = Buffer.allocUnsafe(CHUNK)
  let size = 0
  for (let n = await read(buf); n > 0; n = await read(buf)) {
    hash.update(buf.subarray(0, n))
    await writeAll(out, buf, n)
    size += n
  }
  return { digest: hash.digest('hex'), size }
}

/** Write the first `n` bytes of `buf`, however many calls that takes. */
export async function writeAll(out: FileHandle, buf: Buffer, n: number): Promise<void> {
  for (let off = 0; off < n;) off += (await out.write(buf, off, n - off)).bytesWritten
}

/** fsync a directory so renames into it survive a crash; a no-op where the filesystem cannot. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const fd = await open(dir, 'r')
    try {
      await fd.sync()
    } finally {
      await fd.close()
    }
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic.
  }
}

/** Move the finished tree `tmp` onto `dest`, replacing whatever was there. */
export async function replaceTree(tmp: string, dest: string): Promise<void> {
  const old = await lstat(dest).catch(() => undefined)
  if (old === undefined) return await rename(tmp, dest)
  const trash = `${dest}.cusp-${randomBytes(6).toString('hex')}.old`
  await rename(dest, trash)
  await rename(tmp, dest)
  await rm(trash, { recursive: true, force: true })
}
