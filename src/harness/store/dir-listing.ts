/**
 * The directory listing object: how every store represents a directory output. A directory is
 * stored as one object per file plus one listing object, the canonical JSON
 * `{"entries":[{"digest","mode","path","size"}...],"kind":"cusp-dir"}` with entries sorted by
 * path; the listing's own sha256 is the directory's digest, so two trees with the same files,
 * bytes and executable bits have the same digest wherever they were stored. Only regular files
 * are represented (empty directories vanish); `mode` is 0o755 for a file with any execute bit,
 * otherwise 0o644, so umask and checkout permissions do not leak into digests.
 */
import { canonicalJson, isSha256Hex } from '../canonical-json.ts'
import type { ObjectDigest } from '../types.ts'
import { RECORD_LIMITS } from './run-record-check.ts'

/** One file of a stored directory. `path` is relative, `/`-separated, with no `.`/`..` segments. */
export interface DirEntry {
  path: string
  digest: ObjectDigest
  size: number
  mode: 0o644 | 0o755
}

/** The listing object's bytes for `entries` (sorted here; callers need not sort). */
export function encodeListing(entries: readonly DirEntry[]): Buffer {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.path === sorted[i - 1]!.path) throw new Error(`dir listing: duplicate path ${sorted[i]!.path}`)
  }
  return Buffer.from(canonicalJson({ kind: 'cusp-dir', entries: sorted }), 'utf8')
}

/** The normalised mode of a file with permission bits `mode`. */
export function normaliseMode(mode: number): 0o644 | 0o755 {
  return (mode & 0o111) !== 0 ? 0o755 : 0o644
}

/**
 * The entries of a listing object, or undefined if `bytes` is not a well-formed listing (wrong
 * kind, bad digest, unsafe or duplicate path, a file that is also another entry's directory,
 * more entries, longer paths or larger sizes than RECORD_LIMITS allow). A listing comes from
 * a store and is untrusted: the caller has verified its hash, not who wrote it.
 */
export function parseListing(bytes: Uint8Array): DirEntry[] | undefined {
  if (bytes.byteLength > RECORD_LIMITS.listingBytes) return undefined
  let data: unknown
  try {
    data = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof data !== 'object' || data === null) return undefined
  const { kind, entries } = data as { kind?: unknown; entries?: unknown }
  if (kind !== 'cusp-dir' || !Array.isArray(entries) || entries.length > RECORD_LIMITS.listingEntries) return undefined
  const seen = new Set<string>()
  const out: DirEntry[] = []
  for (const e of entries as unknown[]) {
    if (typeof e !== 'object' || e === null) return undefined
    const { path, digest, size, mode } = e as Record<string, unknown>
    if (typeof path !== 'string' || !isSafeRelativePath(path) || seen.has(path)) return undefined
    if (!isSha256Hex(digest) || !Number.isSafeInteger(size) || (size as number) < 0 || (size as number) > RECORD_LIMITS.objectBytes)
      return undefined
    if (mode !== 0o644 && mode !== 0o755) return undefined
    seen.add(path)
    out.push({ path, digest: digest as ObjectDigest, size: size as number, mode })
  }
  // A path that is also a directory of another entry ("a" and "a/b") cannot be restored.
  for (const p of seen) {
    for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) if (seen.has(p.slice(0, i))) return undefined
  }
  return out
}

/** A relative `/`-separated path with no empty, `.` or `..` segments and no NUL: cannot escape its root. */
export function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.length > RECORD_LIMITS.pathChars || p.startsWith('/') || p.includes('\\') || p.includes('\0')) return false
  return p.split('/').every((s) => s !== '' && s !== '.' && s !== '..' && Buffer.byteLength(s) <= RECORD_LIMITS.segmentChars)
}
