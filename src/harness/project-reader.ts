/**
 * The analyzer's only window on the file system: read a file or ask whether one exists,
 * by a path relative to the project root (or absolute). Injected so the analyzer stays
 * pure and tests can hand it a literal map of files.
 */
import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'

/** Read-only access to a project's files; paths are relative to the project root or absolute. */
export interface ProjectReader {
  /** The file's text, or undefined when it is missing or unreadable. */
  readFile(relOrAbsPath: string): string | undefined
  exists(relOrAbsPath: string): boolean
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
