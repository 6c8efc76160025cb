/**
 * Maps a path into a parsed YAML document (`['stages', 'train', 'params', 'eta']`) back to
 * the line and column where it was written, so every analyzer error can point at the exact
 * spot in pipeline.yaml. When the path does not exist in the file (a missing key, a default)
 * the location falls back to the deepest ancestor that does, while the reported path stays
 * the full one the user needs to read.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter } from 'yaml'
import type { Document, Node as YamlNode } from 'yaml'
import type { SourceLocation } from './types.ts'

/** One step of a path: a map key or a sequence index. */
export type PathSegment = string | number

/**
 * Render a path for humans: `stages.train.matrix.arch[1]`; the empty path is `(document)`.
 * Keys that are not plain identifiers are quoted so the path stays unambiguous.
 */
export function formatPath(path: readonly PathSegment[]): string {
  if (path.length === 0) return '(document)'
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out === '' ? seg : `.${seg}`
    else out += `[${JSON.stringify(seg)}]`
  }
  return out
}

/** Parse a JSON pointer (`/stages/train/params/eta`, as ajv reports it) into segments. */
export function pointerToPath(pointer: string): string[] {
  if (pointer === '') return []
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

/**
 * Locates paths in one parsed document. `file` is the name shown to the user (relative to
 * the project root); `lines` must be the LineCounter the document was parsed with.
 */
export class SourceMap {
  constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /**
   * Where `path` was written. `at: 'key'` points at a map key (for "unknown key" errors and
   * whole-entry problems), `at: 'value'` at the value. Missing tails fall back to the
   * deepest existing ancestor; the returned `path` is always the full requested one.
   */
  locate(path: readonly PathSegment[], at: 'key' | 'value' = 'value'): SourceLocation {
    let node: unknown = this.doc.contents
    let valueStart = rangeStart(node) ?? 0
    let keyStart: number | undefined
    let complete = true
    for (const seg of path) {
      node = this.deref(node)
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && keyText(p.key) === String(seg))
        if (pair === undefined) {
          complete = false
          break
        }
        keyStart = rangeStart(pair.key)
        valueStart = rangeStart(pair.value) ?? keyStart ?? valueStart
        node = pair.value
      } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
        node = node.items[seg]
        keyStart = rangeStart(node) ?? valueStart
        valueStart = keyStart
      } else {
        complete = false
        break
      }
    }
    // A missing tail points at the key of its deepest written ancestor ("train:").
    const offset = complete && at === 'value' ? valueStart : (keyStart ?? valueStart)
    const { line, col } = this.lines.linePos(offset)
    return { file: this.file, line, column: col, path: formatPath(path) }
  }

  /** True when `path` is literally written in the document (not merely defaulted). */
  has(path: readonly PathSegment[]): boolean {
    let node: unknown = this.doc.contents
    for (const seg of path) {
      node = this.deref(node)
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && keyText(p.key) === String(seg))
        if (pair === undefined) return false
        node = pair.value
      } else if (isSeq(node) && typeof seg === 'number') {
        if (node.items[seg] === undefined) return false
        node = node.items[seg]
      } else {
        return false
      }
    }
    return true
  }

  /**
   * Location of a raw character offset (for YAML syntax errors), with the path of the
   * innermost node that was parsed around it, so even a syntax error names where it is.
   */
  at(offset: number): SourceLocation {
    const { line, col } = this.lines.linePos(offset)
    return { file: this.file, line, column: col, path: formatPath(this.pathAt(offset)) }
  }

  private pathAt(offset: number): PathSegment[] {
    const path: PathSegment[] = []
    let node: unknown = this.doc.contents
    const within = (n: unknown): boolean => {
      const r = (n as YamlNode | null | undefined)?.range
      return r != null && r[0] <= offset && offset <= r[2]
    }
    for (let depth = 0; depth < 64; depth++) {
      if (isMap(node)) {
        const pair = node.items.find((p) => {
          const start = rangeStart(p.key)
          const end = (p.value as YamlNode | null)?.range?.[2] ?? (p.key as YamlNode | null)?.range?.[2]
          return start !== undefined && end !== undefined && start <= offset && offset <= end
        })
        const key = pair === undefined ? undefined : keyText(pair.key)
        if (pair === undefined || key === undefined) break
        path.push(key)
        node = pair.value
      } else if (isSeq(node)) {
        const i = node.items.findIndex(within)
        if (i < 0) break
        path.push(i)
        node = node.items[i]
      } else {
        break
      }
    }
    return path
  }

  private deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node
  }
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value)
  return typeof key === 'string' ? key : undefined
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as YamlNode | null | undefined)?.range
  return range ? range[0] : undefined
}
