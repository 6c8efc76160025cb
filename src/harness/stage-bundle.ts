/**
 * Stage processes without tsx: most of a stage process's start-up was tsx compiling TypeScript
 * (~0.3-0.8 s of CPU per instance, paid again by every instance). Instead esbuild bundles, once
 * per source version, the stage process itself (stage-process.ts; stage-worker.ts for warm
 * workers) and each stage module
 * (`stages/<impl>/index.ts` with everything of ours it imports) into plain ES modules under
 * `<cusp>/.cusp/build/stages/`, which `node` runs directly (spawn-stage.ts). Packages from
 * node_modules are not bundled: they load from node_modules exactly as they would unbundled.
 *
 * - **Keyed by content.** A bundle's file name is the sha256 of its own text, which holds every
 *   source it was built from and their absolute paths, so a changed source gives a new bundle
 *   (a process already running the old one is undisturbed) and a copied or moved project, whose
 *   paths differ, never runs another checkout's bundle.
 * - **Found with a stat per input.** Next to the bundles, `<id>.json` (id: the sha256 of the entry's
 *   path, as the job names it, and the build directory's real path) records the bundle's name and the mtime and size of
 *   every file esbuild read, of this module and of the package.json of esbuild and of every
 *   package left external; any difference rebuilds. Writes are atomic (temp file, rename; bundle
 *   before manifest), so concurrent builders are harmless. Within one harness process each entry
 *   is checked once.
 * - **Paths stay in the source tree.** `import.meta.url`, `.dirname` and `.filename` of each
 *   bundled module are pinned to its source file, and `import.meta.resolve(x)` resolves a
 *   relative `x` against it; a bare `x` resolves from the bundle, which is safe only where the
 *   module sees the same node_modules as the bundle directory (checked: otherwise no bundle).
 *   An external package import must resolve to the same file from the bundle as from its
 *   importer (checked with esbuild's resolver: otherwise no bundle).
 * - **Pruned.** After each build, manifests whose entry is gone (a deleted temp project) go, and
 *   so do bundles no manifest names once they are an hour old (a process may still be starting
 *   a bundle its harness chose just before a rebuild).
 * - **Never a hard dependency.** When a bundle cannot be built (esbuild missing, a read-only
 *   checkout, a check above, a syntax esbuild refuses) the stage runs through tsx as before;
 *   `CUSP_STAGE_BUNDLE=0` forces that.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
/** The cusp installation (its node_modules and its .cusp/build). */
export const CUSP_ROOT = resolve(HERE, '../..')
/** The stage process's entry, bundled like a stage. */
export const STAGE_PROCESS_ENTRY = join(HERE, 'stage-process.ts')
/** The warm worker's entry (stage-workers.ts), bundled like a stage. */
export const STAGE_WORKER_ENTRY = join(HERE, 'stage-worker.ts')
const SELF = join(HERE, 'stage-bundle.ts')
/** Bump when the bundle or manifest layout changes. */
const FORMAT = 1

/** The name a bundled stage module exports its source path under (checked by stage-process.ts). */
export const SOURCE_EXPORT = '__cuspStageSource'

/** Where stage bundles and their manifests live. */
export function stageBuildDir(cuspRoot: string = CUSP_ROOT): string {
  return join(cuspRoot, '.cusp', 'build', 'stages')
}

/** Whether stage processes run from bundles (`CUSP_STAGE_BUNDLE=0` turns it off). */
export function bundlingEnabled(env: Record<string, string | undefined>): boolean {
  return env.CUSP_STAGE_BUNDLE !== '0'
}

const memo = new Map<string, Promise<BundleResult>>()

export type BundleResult = { ok: true; path: string } | { ok: false; reason: string }

/**
 * The bundle of `entry` (a stage module, or STAGE_PROCESS_ENTRY), built when missing or stale;
 * `{ ok: false, reason }` when it cannot be built. Checked once per process per entry.
 */
export function stageBundle(entry: string, buildDir: string = stageBuildDir()): Promise<BundleResult> {
  const key = `${entry}\0${buildDir}`
  let p = memo.get(key)
  if (p === undefined) {
    p = ensure(entry, buildDir).catch((e: unknown) => ({ ok: false as const, reason: e instanceof Error ? e.message : String(e) }))
    memo.set(key, p)
  }
  return p
}

/** Forgets what this process knows about bundles (tests that edit a stage in place). */
export function forgetStageBundles(): void {
  memo.clear()
}

function real(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return resolve(path)
  }
}

/** `mtimeNs:size` of a file, or `missing`. */
function stamp(path: string): string {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false })
  return st === undefined ? 'missing' : `${st.mtimeNs}:${st.size}`
}

interface Manifest {
  format: number
  entry: string
  dir: string
  bundle: string
  inputs: Record<string, string>
}

/** Keyed by the entry's path as given (a symlinked path is another entry: the job names it so). */
function manifestPath(entry: string, dir: string): string {
  const id = createHash('sha256')
    .update(`${resolve(entry)}\0${real(dir)}`)
    .digest('hex')
    .slice(0, 32)
  return join(dir, `${id}.json`)
}

/** The bundle recorded for `entry` in `dir` when it is current, else undefined. */
export function currentBundle(entry: string, dir: string): string | undefined {
  let m: Manifest
  try {
    m = JSON.parse(readFileSync(manifestPath(entry, dir), 'utf8')) as Manifest
  } catch {
    return undefined
  }
  if (m.format !== FORMAT || m.entry !== resolve(entry) || m.dir !== real(dir) || typeof m.inputs !== 'object' || m.inputs === null) {
    return undefined
  }
  if (!/^[\w.-]+\.mjs$/.test(m.bundle) || !existsSync(join(dir, m.bundle))) return undefined
  for (const path in m.inputs) if (stamp(path) !== m.inputs[path]) return undefined
  return join(dir, m.bundle)
}

async function ensure(entry: string, dir: string): Promise<BundleResult> {
  const current = currentBundle(entry, dir)
  if (current !== undefined) return { ok: true, path: current }
  return build(entry, dir)
}

/** The node_modules directories a bare import from `dir` searches, in order, and the nearest package.json. */
function scope(dir: string): string {
  const seen: string[] = []
  let pkg: string | undefined
  for (let d = real(dir); ; d = dirname(d)) {
    if (existsSync(join(d, 'node_modules'))) seen.push(real(join(d, 'node_modules')))
    if (pkg === undefined && existsSync(join(d, 'package.json'))) pkg = join(d, 'package.json')
    if (dirname(d) === d) break
  }
  return `${seen.join(':')}|${pkg ?? ''}`
}

/** For a file inside node_modules, its package's package.json; else undefined. */
function packageJsonOf(path: string): string | undefined {
  const m = /^(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(path)
  return m === null ? undefined : join(m[1]!, 'package.json')
}

const PRELUDE = [
  "import { createRequire as __cuspRequire } from 'node:module';",
  'const require = __cuspRequire(import.meta.url);',
  'const __cuspResolve = (base, spec) => /^(\\.{1,2}\\/|\\/|file:)/.test(spec) ? new URL(spec, base).href : import.meta.resolve(spec);',
].join(' ')

/** Builds the bundle of `entry` into `dir` and records its manifest. */
async function build(entry: string, dir: string): Promise<BundleResult> {
  const esbuild = await import('esbuild')
  const inputs: Record<string, string> = { [SELF]: stamp(SELF) }
  const esbuildPkg = packageJsonOf(createRequire(SELF).resolve('esbuild'))
  if (esbuildPkg !== undefined) inputs[esbuildPkg] = stamp(esbuildPkg)
  const dirScope = scope(dir)
  const refusals: string[] = []
  const isStage = ![STAGE_PROCESS_ENTRY, STAGE_WORKER_ENTRY].some((e) => real(e) === real(entry))
  mkdirSync(dir, { recursive: true })
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    outdir: dir,
    logLevel: 'silent',
    banner: { js: PRELUDE },
    ...(isStage ? { footer: { js: `export const ${SOURCE_EXPORT} = ${JSON.stringify(entry)};` } } : {}),
    plugins: [
      {
        name: 'cusp-stage-externals',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, async (args) => {
            if (args.pluginData === 'inner' || args.path.startsWith('node:')) return undefined
            const here = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: 'inner' })
            if (here.errors.length > 0) return { errors: here.errors }
            if (here.external || here.path === '') return { path: args.path, external: true }
            const pkg = packageJsonOf(here.path)
            if (pkg === undefined) return { path: here.path } // one of our sources reached by a package name: bundled
            inputs[pkg] = stamp(pkg)
            const there = await b.resolve(args.path, { kind: args.kind, resolveDir: dir, pluginData: 'inner' })
            if (there.path !== here.path) refusals.push(`${args.path} (from ${args.importer}) resolves elsewhere from ${dir}`)
            return { path: args.path, external: true }
          })
          b.onLoad({ filter: /\.(ts|mts|js|mjs|json)$/ }, (args) => {
            inputs[args.path] = stamp(args.path)
            const text = readFileSync(args.path, 'utf8')
            if (args.path.endsWith('.json')) return { contents: text, loader: 'json' }
            // Node gives a module the URL of its real path (symlinks resolved): so does the bundle.
            const url = JSON.stringify(pathToFileURL(real(args.path)).href)
            if (/\bimport\.meta\.resolve\b/.test(text) && scope(dirname(args.path)) !== dirScope) {
              refusals.push(`${args.path} calls import.meta.resolve and sees other node_modules than ${dir}`)
            }
            const pinned = text
              .replace(/\bimport\.meta\.url\b/g, url)
              .replace(/\bimport\.meta\.dirname\b/g, JSON.stringify(dirname(real(args.path))))
              .replace(/\bimport\.meta\.filename\b/g, JSON.stringify(real(args.path)))
              .replace(/\bimport\.meta\.resolve\(/g, `__cuspResolve(${url}, `)
            return { contents: pinned, loader: /\.m?ts$/.test(args.path) ? 'ts' : 'js' }
          })
        },
      },
    ],
  })
  if (refusals.length > 0) return { ok: false, reason: refusals.join('; ') }
  const out = result.outputFiles.find((f) => f.path.endsWith('.js') || f.path.endsWith('.mjs'))
  if (out === undefined) return { ok: false, reason: 'esbuild wrote no bundle' }
  const name = `${isStage ? 'stage' : 'process'}-${createHash('sha256').update(out.contents).digest('hex').slice(0, 24)}.mjs`
  const tag = `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`
  const bundle = join(dir, name)
  if (!existsSync(bundle)) {
    writeFileSync(`${bundle}.tmp-${tag}`, out.contents)
    renameSync(`${bundle}.tmp-${tag}`, bundle)
  }
  const manifest: Manifest = { format: FORMAT, entry: resolve(entry), dir: real(dir), bundle: name, inputs }
  const mpath = manifestPath(entry, dir)
  writeFileSync(`${mpath}.tmp-${tag}`, `${JSON.stringify(manifest, null, 1)}\n`)
  renameSync(`${mpath}.tmp-${tag}`, mpath)
  pruneStageBuilds(dir)
  return { ok: true, path: bundle }
}

/** How old an unreferenced bundle (or temp file) must be before pruning removes it. */
const PRUNE_AGE_MS = 3_600_000

/** Removes what no current entry needs from `dir` (see the module comment); never throws. */
export function pruneStageBuilds(dir: string, now: number = Date.now()): void {
  try {
    const names = readdirSync(dir)
    const keep = new Set<string>()
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      try {
        const m = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Partial<Manifest>
        if (typeof m.entry === 'string' && existsSync(m.entry)) {
          if (typeof m.bundle === 'string') keep.add(m.bundle)
          continue
        }
      } catch {
        // unreadable: a manifest being replaced, or garbage; removed below only when old
        if (now - statSync(join(dir, name)).mtimeMs < PRUNE_AGE_MS) continue
      }
      rmSync(join(dir, name), { force: true })
    }
    for (const name of names.filter((n) => !n.endsWith('.json') && !keep.has(n))) {
      const st = statSync(join(dir, name), { throwIfNoEntry: false })
      if (st !== undefined && now - st.mtimeMs >= PRUNE_AGE_MS) rmSync(join(dir, name), { force: true })
    }
  } catch {
    // pruning is housekeeping: a failure leaves files behind, nothing else
  }
}
