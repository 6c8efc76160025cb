/**
 * The `code` field of a fingerprint: one sha256 over a stage's code closure. The closure is
 * every file under the stage's directory (`stages/<impl>/`), plus the project files they reach
 * through relative module specifiers (`import ... from './x.ts'`, `export ... from`, side-effect
 * `import './x.ts'`, dynamic `import('./x.ts')`, `require('./x')`, and asset references
 * `new URL('./x.json', import.meta.url)`), found by a static scan and followed transitively,
 * plus the versions that package-lock.json resolves for the packages they import by bare
 * specifier and, transitively, those packages' own dependencies. Editing a file the stage can
 * reach, or bumping a dependency it uses, changes the digest; editing anything else does not.
 *
 * The scan is deliberately conservative (a specifier inside a comment is followed too: an extra
 * file can only cause a spurious rerun, a missed one a wrong cache hit). Specifiers built at run
 * time are not seen. Results are memoised per (reader, root) for the life of the process, so a
 * plan over hundreds of instances hashes each file once; `clearCodeDigestCache()` forgets.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { isBuiltin } from 'node:module'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { canonicalJson, sha256Hex } from './canonical-json.ts'

/** Synchronous file access, injectable for tests. Paths are absolute. */
export interface CodeReader {
  /** The file's bytes, or undefined when it is missing or not a regular file. */
  readFile(absPath: string): Uint8Array | undefined
  /** Regular files under `absDir`, recursively, relative to it with `/`; undefined if not a dir. */
  listFiles(absDir: string): string[] | undefined
}

export interface CodeDigest {
  /** sha256 of canonical JSON `{ files: {path: sha256}, packages: {name: version} }`. */
  digest: string
  /** Project-relative paths (with `/`) of every file in the closure, sorted. */
  files: string[]
  /** Package (lock path below node_modules/, e.g. `yaml` or `a/node_modules/b`) -> version. */
  packages: Record<string, string>
}

/** Reads the real filesystem; skips node_modules and dot-directories when listing. */
export const fsCodeReader: CodeReader = {
  readFile(absPath) {
    try {
      return readFileSync(absPath)
    } catch {
      return undefined
    }
  },
  listFiles(absDir) {
    const out: string[] = []
    const walk = (dir: string, prefix: string): boolean => {
      let entries
      try {
        entries = readdirSync(dir, { withFileTypes: true })
      } catch {
        return false
      }
      for (const e of entries) {
        const abs = join(dir, e.name)
        const rel = prefix === '' ? e.name : `${prefix}/${e.name}`
        let isDir = e.isDirectory()
        let isFile = e.isFile()
        if (e.isSymbolicLink()) {
          const st = statSync(abs, { throwIfNoEntry: false })
          isDir = st?.isDirectory() ?? false
          isFile = st?.isFile() ?? false
        }
        if (isDir && e.name !== 'node_modules' && !e.name.startsWith('.')) walk(abs, rel)
        else if (isFile) out.push(rel)
      }
      return true
    }
    return walk(absDir, '') ? out : undefined
  },
}

interface FileInfo {
  hash: string
  /** Specifiers found in it (empty for non-code files). */
  specifiers: string[]
}

interface RootState {
  files: Map<string, FileInfo | null>
  lockPackages:
    Record<string, { version?: string; dependencies?: object; optionalDependencies?: object; peerDependencies?: object }> | undefined
  results: Map<string, CodeDigest>
}

let memo = new WeakMap<CodeReader, Map<string, RootState>>()

/** Forget every memoised file hash and digest (for long-lived processes and tests that edit files). */
export function clearCodeDigestCache(): void {
  memo = new WeakMap()
}

/**
 * The code digest of the stage implemented in `impl` under project `root`. `impl` is either a
 * bare implementation name (`train`, meaning `stages/train`) or a root-relative directory
 * (`stages/train`, as in `StageInstance.impl`). A missing directory gives the digest of an
 * empty closure (the analyzer reports unknown implementations, not this function).
 */
export function codeDigest(root: string, impl: string, reader: CodeReader = fsCodeReader): CodeDigest {
  const absRoot = resolve(root)
  let byRoot = memo.get(reader)
  if (byRoot === undefined) memo.set(reader, (byRoot = new Map()))
  let state = byRoot.get(absRoot)
  if (state === undefined) byRoot.set(absRoot, (state = { files: new Map(), lockPackages: undefined, results: new Map() }))
  const implDir = impl.includes('/') ? impl.replace(/\/+$/, '') : `stages/${impl}`
  const cached = state.results.get(implDir)
  if (cached !== undefined) return cached
  const result = compute(absRoot, implDir, reader, state)
  state.results.set(implDir, result)
  return result
}

function compute(root: string, implDir: string, reader: CodeReader, state: RootState): CodeDigest {
  const closure = new Map<string, string>() // root-relative path -> sha256
  const bare = new Set<string>()
  const queue: string[] = (reader.listFiles(join(root, implDir)) ?? []).map((f) => join(root, implDir, f))
  while (queue.length > 0) {
    const abs = queue.pop()!
    const rel = relative(root, abs).split(sep).join('/')
    if (closure.has(rel)) continue
    const info = load(abs, reader, state)
    if (info === null) continue
    closure.set(rel, info.hash)
    for (const spec of info.specifiers) {
      if (spec.startsWith('./') || spec.startsWith('../')) {
        const target = resolveRelative(root, dirname(abs), spec, reader, state)
        if (target !== undefined) queue.push(target)
      } else if (isPackageSpecifier(spec)) {
        bare.add(packageName(spec))
      }
    }
  }
  const packages = resolvePackages(root, [...bare], reader, state)
  const files = [...closure.keys()].sort()
  const fileHashes: Record<string, string> = {}
  for (const f of files) fileHashes[f] = closure.get(f)!
  return { digest: sha256Hex(canonicalJson({ files: fileHashes, packages })), files, packages }
}

const CODE_FILE = /\.(?:[cm]?[jt]s|[jt]sx)$/
const SPECIFIER_PATTERNS = [
  /^\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"\n]+)['"]/gm,
  /^\s*import\s*['"]([^'"\n]+)['"]/gm,
  /\bimport\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g,
  /\brequire\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g,
  /\bnew\s+URL\s*\(\s*['"]([^'"\n]+)['"]\s*,\s*import\.meta\.url\s*\)/g,
]

function load(abs: string, reader: CodeReader, state: RootState): FileInfo | null {
  const known = state.files.get(abs)
  if (known !== undefined) return known
  const bytes = reader.readFile(abs)
  let info: FileInfo | null = null
  if (bytes !== undefined) {
    const specifiers: string[] = []
    if (CODE_FILE.test(abs)) {
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
      for (const re of SPECIFIER_PATTERNS) {
        // a real specifier has no spaces or commas; this drops matches inside string literals
        for (const m of text.matchAll(re)) if (!/[\s,]/.test(m[1]!)) specifiers.push(m[1]!)
      }
    }
    info = { hash: sha256Hex(bytes), specifiers }
  }
  state.files.set(abs, info)
  return info
}

/** TS NodeNext conventions: exact file, `.js` written for a `.ts` source, extensionless, index. */
function resolveRelative(root: string, fromDir: string, spec: string, reader: CodeReader, state: RootState): string | undefined {
  const base = resolve(fromDir, spec.split(/[?#]/)[0]!)
  const inside = relative(root, base)
  if (inside.startsWith('..') || inside.split(sep).includes('node_modules')) return undefined
  const candidates = [base]
  const m = /\.([cm]?)js$/.exec(base)
  if (m !== null) candidates.push(`${base.slice(0, -m[0].length)}.${m[1]}ts`, `${base.slice(0, -m[0].length)}.tsx`)
  for (const ext of ['.ts', '.tsx', '.mts', '.js', '.mjs', '.cjs', '.json']) candidates.push(base + ext)
  candidates.push(join(base, 'index.ts'), join(base, 'index.js'))
  return candidates.find((c) => load(c, reader, state) !== null)
}

function isPackageSpecifier(spec: string): boolean {
  return !spec.startsWith('/') && !spec.startsWith('#') && !spec.startsWith('.') && !spec.includes(':') && !isBuiltin(spec)
}

/** `@scope/name/sub` -> `@scope/name`; `name/sub` -> `name`. */
export function packageName(spec: string): string {
  const parts = spec.split('/')
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
}

/**
 * Versions of `names` and of their dependencies, transitively, as npm resolves them in
 * package-lock.json (nested node_modules first, then upward). A package the lock does not know
 * is recorded as `(not in package-lock)` so that adding it later still changes the digest.
 */
function resolvePackages(root: string, names: string[], reader: CodeReader, state: RootState): Record<string, string> {
  if (state.lockPackages === undefined) {
    const bytes = reader.readFile(join(root, 'package-lock.json'))
    let parsed: { packages?: RootState['lockPackages'] } = {}
    try {
      if (bytes !== undefined) parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as typeof parsed
    } catch {
      parsed = {}
    }
    state.lockPackages = parsed.packages ?? {}
  }
  const lock = state.lockPackages
  const found: Record<string, string> = {}
  const seen = new Set<string>()
  const visit = (key: string): void => {
    if (seen.has(key)) return
    seen.add(key)
    const entry = lock[key]
    found[key.slice('node_modules/'.length)] = entry?.version ?? '(not in package-lock)'
    if (entry === undefined) return
    const deps = { ...entry.peerDependencies, ...entry.optionalDependencies, ...entry.dependencies }
    for (const dep of Object.keys(deps)) {
      const at = locate(key, dep, lock)
      if (at !== undefined) visit(at)
    }
  }
  for (const name of names) visit(`node_modules/${name}`)
  const sorted: Record<string, string> = {}
  for (const k of Object.keys(found).sort()) sorted[k] = found[k]!
  return sorted
}

/** npm's lookup of `dep` required from the package at lock key `from`. */
function locate(from: string, dep: string, lock: NonNullable<RootState['lockPackages']>): string | undefined {
  let dir = from
  for (;;) {
    const key = `${dir}/node_modules/${dep}`
    if (lock[key] !== undefined) return key
    const i = dir.lastIndexOf('/node_modules/')
    if (i < 0) break
    dir = dir.slice(0, i)
  }
  return lock[`node_modules/${dep}`] !== undefined ? `node_modules/${dep}` : undefined
}
