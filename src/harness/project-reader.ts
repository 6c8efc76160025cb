/**
 * The analyzer's only window on the file system: read a file or ask whether one exists,
 * by a path relative to the project root (or absolute). Injected so the analyzer stays
 * pure and tests can hand it a literal map of files.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs'
import { constants } from 'node:fs'
import { isAbsolute, join } from 'node:path'

/** Read-only access to a project's files; paths are relative to the project root or absolute. */
export interface ProjectReader {
  /** The file's text, or undefined when it is missing or unreadable. */
  readFile(relOrAbsPath: string): string | undefined
  exists(relOrAbsPath: string): boolean
  /**
   * The text of a file the caller bounds in size: `{ text }`, or `{ problem }` saying why it was
   * not read (missing, not a regular file such as /dev/zero or a FIFO, larger than `maxBytes`).
   * Optional; readers without it fall back to `readFile`.
   */
  readBounded?(relOrAbsPath: string, maxBytes: number): { text: string } | { problem: string }
}

/** Reads `path` only when it is a regular file of at most `maxBytes` (checked on the open descriptor). */
export function readBoundedFile(path: string, maxBytes: number): { text: string } | { problem: string } {
  let fd: number
  try {
    // O_NONBLOCK: opening a FIFO with no writer must not hang before the type check below.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return { problem: code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})` }
  }
  try {
    const st = fstatSync(fd)
    if (st.isDirectory()) return { problem: 'is a directory, not a file' }
    if (!st.isFile()) return { problem: 'is not a regular file (a device, FIFO or socket); pass a pipeline file' }
    if (st.size > maxBytes) return { problem: `is ${st.size} bytes, more than the ${maxBytes} a pipeline file may have` }
    // Read at most maxBytes + 1 even if the file grows meanwhile.
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1)
    let n = 0
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, n)
    if (n > maxBytes) return { problem: `grew past the ${maxBytes} bytes a pipeline file may have while it was read` }
    return { text: buf.subarray(0, n).toString('utf8') }
  } catch (e) {
    return { problem: `cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})` }
  } finally {
    closeSync(fd)
  }
}

/** The real file system, rooted at `root` (the directory holding pipeline.yaml). */
export function nodeReader(root: string): ProjectReader {
  const resolve = (p: string): string => (isAbsolute(p) ? p : join(root, p))
  return {
    readFile(p) {
      try {
        return readFileSync(resolve(p), 'utf8')
      } catch {
        return undefined
      }
    },
    exists: (p) => existsSync(resolve(p)),
    readBounded: (p, max) => readBoundedFile(resolve(p), max),
  }
}

/**
 * An in-memory project for tests: `files` maps paths relative to `root` to contents.
 * Absolute paths under `root` are accepted too.
 */
export function memoryReader(root: string, files: Readonly<Record<string, string>>): ProjectReader {
  const rel = (p: string): string => (isAbsolute(p) && p.startsWith(`${root}/`) ? p.slice(root.length + 1) : p)
  return {
    readFile: (p) => files[rel(p)],
    exists: (p) => {
      const r = rel(p)
      return r in files || Object.keys(files).some((f) => f.startsWith(`${r}/`))
    },
  }
}
