/**
 * Files outside the store that a stage reads because a param names them (a local dataset
 * directory, say). A params schema marks such a param with `"x-cusp-path": "file"` or `"dir"`;
 * its content digest then joins the instance's inputs in the fingerprint, under the key
 * `local:<dotted param path>`, so editing, replacing or removing the files reruns the instance
 * (and `why` says `input-changed local:idx.dir`). A relative path is taken from the project
 * root (the stage process's working directory). Digest of a file: sha256 of its bytes; of a
 * directory: sha256 of the canonical JSON of `{relative path: sha256}` over its regular files
 * (recursively, symlinks followed); of a missing path: sha256 of `absent:<path>`.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { canonicalJson, sha256Hex } from './canonical-json.ts'
import type { JsonValue, ObjectDigest, StageInstance } from './types.ts'

type PathKind = 'file' | 'dir'

/** Dotted param paths marked `x-cusp-path` in a params schema (object `properties`, recursively). */
export function markedPaths(schema: unknown, prefix = ''): { path: string; kind: PathKind }[] {
  if (typeof schema !== 'object' || schema === null) return []
  const props = (schema as { properties?: unknown }).properties
  if (typeof props !== 'object' || props === null) return []
  const out: { path: string; kind: PathKind }[] = []
  for (const [key, sub] of Object.entries(props as Record<string, unknown>)) {
    const path = prefix === '' ? key : `${prefix}.${key}`
    const mark = typeof sub === 'object' && sub !== null ? (sub as Record<string, unknown>)['x-cusp-path'] : undefined
    if (mark === 'file' || mark === 'dir') out.push({ path, kind: mark })
    out.push(...markedPaths(sub, path))
  }
  return out
}

function paramAt(params: JsonValue, path: string): JsonValue | undefined {
  let v: JsonValue | undefined = params
  for (const k of path.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined
    v = v[k]
  }
  return v
}

function fileDigest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

function dirListing(dir: string, prefix: string, out: Record<string, string>): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const abs = join(dir, e.name)
    const rel = prefix === '' ? e.name : `${prefix}/${e.name}`
    const st = statSync(abs, { throwIfNoEntry: false })
    if (st?.isDirectory()) dirListing(abs, rel, out)
    else if (st?.isFile()) out[rel] = fileDigest(abs)
  }
}

/** The content digest of a local path (see the module comment). */
export function localDigest(path: string, kind: PathKind): ObjectDigest {
  try {
    const st = statSync(path, { throwIfNoEntry: false })
    if (st === undefined) return sha256Hex(`absent:${path}`) as ObjectDigest
    if (kind === 'file' || st.isFile()) return fileDigest(path) as ObjectDigest
    const listing: Record<string, string> = {}
    dirListing(path, '', listing)
    return sha256Hex(canonicalJson(listing)) as ObjectDigest
  } catch (e: unknown) {
    // Unreadable: a distinct digest, so the stage runs and reports the real error itself.
    return sha256Hex(`unreadable:${path}:${e instanceof Error ? e.message : String(e)}`) as ObjectDigest
  }
}

/**
 * The `local:` inputs of instances of a project at `root`: reads each implementation's params
 * schema once (`schemas/stages/<impl>.params.schema.json`) and hashes what marked params name.
 */
export function localInputs(root: string): (inst: StageInstance) => Record<string, ObjectDigest> {
  const marks = new Map<string, { path: string; kind: PathKind }[]>()
  const marksOf = (impl: string): { path: string; kind: PathKind }[] => {
    let m = marks.get(impl)
    if (m === undefined) {
      let schema: unknown
      try {
        schema = JSON.parse(readFileSync(join(root, 'schemas', 'stages', `${basename(impl)}.params.schema.json`), 'utf8'))
      } catch {
        schema = undefined // no schema (or an invalid one, which the analyzer has already reported)
      }
      marks.set(impl, (m = markedPaths(schema)))
    }
    return m
  }
  return (inst) => {
    const out: Record<string, ObjectDigest> = {}
    for (const { path, kind } of marksOf(inst.impl)) {
      const value = paramAt(inst.params, path)
      if (typeof value === 'string' && value !== '') out[`local:${path}`] = localDigest(resolve(root, value), kind)
    }
    return out
  }
}
