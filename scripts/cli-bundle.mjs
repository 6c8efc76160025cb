/**
 * The CLI bundle behind `npm run pipeline`: src/main.ts and everything it imports,
 * bundled by esbuild into one CommonJS file, `.cusp/build/cli.cjs`, run by plain node. Loading one
 * file instead of ~150 modules through tsx's loader hooks is most of a no-op rerun's start-up.
 * `loadBundle` compiles it as a script with V8's code cache (`cli.cjs.v8cache`, written after the
 * first run that lacks one, keyed by the sha256 of the bundle's text and the node version), so
 * later runs neither parse the bundle nor compile the functions that run used (about 20 ms CPU
 * of a 140 ms no-op). CommonJS because Node 20 has no code cache for ES modules.
 * The bundle is rebuilt whenever it is stale, so there is no build step to remember: next to it,
 * `cli.manifest.json` records the mtime (ns) and size of every source file that went into it
 * (as esbuild read them), of this script, and of the package.json of each bundled package
 * (npm rewrites it on install), and `isStale` compares them with a stat each (~60 stats).
 * Each bundled module keeps its own `import.meta.url` (pinned to its source file), so what it
 * resolves against itself (schemas, stage-process.ts for the stage processes, which still run
 * through tsx) stays in the source tree. Writes are atomic (temp file, rename; bundle before
 * manifest), so concurrent rebuilds are harmless. Run directly (`node scripts/cli-bundle.mjs`,
 * npm's `prepare`) it rebuilds when stale and prints where the bundle is.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Script } from 'node:vm'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** The repository root (parent of scripts/). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const SELF = fileURLToPath(import.meta.url)
const ENTRY = join(REPO, 'src/main.ts')
/** Bump when the manifest layout or the bundle's format changes. */
const FORMAT = 3

/** `path` with symlinks resolved, or as given when it does not exist. */
function real(path) {
  try {
    return realpathSync(path)
  } catch {
    return resolve(path)
  }
}

/**
 * What a bundle is keyed by besides its inputs' stamps: the project it was built from (this
 * script's repository) and the directory it was built into, both as real paths. A copied or
 * moved project (`cp -a project copy`, which keeps mtimes) therefore never runs a bundle built
 * from another checkout, whose modules are pinned to that checkout's files.
 */
function owner(root) {
  return { project: real(REPO), root: real(root) }
}

/** Where the bundle and its manifest live for a repository root (default: this one). */
export function bundlePaths(root = REPO) {
  const dir = join(root, '.cusp/build')
  const bundle = join(dir, 'cli.cjs')
  return { dir, bundle, manifest: join(dir, 'cli.manifest.json'), codeCache: bundlePathsOf(bundle).codeCache }
}

/** `mtimeNs:size` of a file, or `missing`: what the manifest records per input. */
function stamp(path) {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false })
  return st === undefined ? 'missing' : `${st.mtimeNs}:${st.size}`
}

/**
 * Whether the bundle under `root` must be rebuilt: no bundle or manifest, another manifest
 * format, built from another project or into another directory (a copy or a move: `owner`),
 * or any recorded input (absolute paths) whose mtime or size differs.
 */
export function isStale(root = REPO) {
  const { bundle, manifest } = bundlePaths(root)
  let m
  try {
    m = JSON.parse(readFileSync(manifest, 'utf8'))
  } catch {
    return true
  }
  if (m?.format !== FORMAT || typeof m.inputs !== 'object' || m.inputs === null) return true
  const o = owner(root)
  if (m.project !== o.project || m.root !== o.root) return true
  if (stamp(bundle) === 'missing') return true
  for (const path in m.inputs) {
    if (stamp(path) !== m.inputs[path]) return true
  }
  return false
}

/**
 * Bundle `entry` (default src/main.ts) into `<root>/.cusp/build/cli.cjs` and write its
 * manifest. Each input is stamped before it is read, so an edit made during the build leaves
 * the bundle stale rather than silently out of date. Resolves to the bundle's path.
 */
export async function build(root = REPO, entry = ENTRY) {
  const esbuild = await import('esbuild')
  const { dir, bundle, manifest } = bundlePaths(root)
  const inputs = { [SELF]: stamp(SELF) }
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: bundle,
    write: false,
    sourcemap: 'external',
    logLevel: 'warning',
    // Only our sources and `yaml` (always needed) are bundled. Every other package stays
    // external and loads from node_modules exactly as it would unbundled, so the packages
    // imported lazily (ajv on a validator-cache miss, execa when a stage runs, the Kubernetes
    // client) add nothing to the bundle's parse time. The AWS SDK (~250 ms CPU to load) is
    // imported statically by the S3 store but needed only for an s3:// store: it becomes lazy
    // stand-ins (lazyPackage) that load it on first use.
    // (Strict mode first: the banner comes before esbuild's own "use strict".)
    // A script compiled by `loadBundle` (node:vm) cannot call `import()` or use `import.meta`, so
    // both go through the host it installs (BUNDLE_HOST); `import.meta.url` is pinned per
    // source file below. Loaded some other way (require, import), the bundle uses node's own.
    banner: {
      js: `"use strict"; const __cuspHost = globalThis[Symbol.for(${JSON.stringify(BUNDLE_HOST)})] ?? { import: (s) => import(s), resolve: (s) => { throw new Error(\`import.meta.resolve(\${s}): load the CLI bundle with loadBundle (scripts/cli-bundle.mjs)\`) } };`,
    },
    define: { 'import.meta.resolve': '__cuspHost.resolve' },
    plugins: [
      {
        name: 'cusp-packages',
        setup(b) {
          b.onResolve({ filter: /^[^./]/ }, (args) => {
            if (args.namespace === 'cusp-lazy' || args.path.startsWith('node:')) return undefined
            if (LAZY.test(args.path)) return { path: args.path, namespace: 'cusp-lazy' }
            if (BUNDLED.test(args.path) || /[\\/]node_modules[\\/]/.test(args.importer)) return undefined
            return { path: args.path, external: true }
          })
          b.onLoad({ filter: /.*/, namespace: 'cusp-lazy' }, (args) => {
            const pkg = packageJsonOf(require.resolve(args.path))
            if (pkg !== undefined) inputs[pkg] = stamp(pkg)
            return { contents: lazyPackage(args.path, require(args.path)), loader: 'js' }
          })
        },
      },
      {
        name: 'cusp-stamp-and-pin',
        setup(b) {
          b.onLoad({ filter: /\.(ts|mts|js|mjs|cjs|json)$/ }, (args) => {
            const pkg = packageJsonOf(args.path)
            inputs[pkg ?? args.path] = stamp(pkg ?? args.path)
            const text = readFileSync(args.path, 'utf8')
            if (/\.m?ts$/.test(args.path)) {
              const url = JSON.stringify(pathToFileURL(args.path).href)
              return { contents: text.replace(/\bimport\.meta\.url\b/g, url), loader: 'ts' }
            }
            return { contents: text, loader: args.path.endsWith('.json') ? 'json' : 'js' }
          })
        },
      },
    ],
  })
  mkdirSync(dir, { recursive: true })
  const tag = `${process.pid}-${Date.now()}`
  for (const out of result.outputFiles) {
    const tmp = `${out.path}.tmp-${tag}`
    writeFileSync(tmp, out.path === bundle ? hostImports(out.text) : out.contents)
    renameSync(tmp, out.path)
  }
  writeFileSync(
    `${manifest}.tmp-${tag}`,
    `${JSON.stringify({ format: FORMAT, ...owner(root), entry: relative(root, entry), inputs }, null, 1)}\n`,
  )
  renameSync(`${manifest}.tmp-${tag}`, manifest)
  return bundle
}

/** The global through which a bundle loaded by `loadBundle` imports packages (see the banner). */
const BUNDLE_HOST = 'cusp.cli-bundle.host'

/**
 * The bundle's text with each `import("<package>")` (the packages loaded on first use: execa,
 * esbuild, the cloud SDKs, elkjs) calling `__cuspHost.import` instead. Only a call on a bare
 * package name is rewritten (a relative or computed specifier would resolve differently), and a
 * bundle that still has another `import(` outside string literals is refused.
 */
function hostImports(text) {
  const bannerEnd = text.indexOf('\n') + 1
  const out =
    text.slice(0, bannerEnd) +
    text.slice(bannerEnd).replace(/\bimport\((["'])([^"'./][^"']*)\1\)/g, (_, q, name) => `__cuspHost.import(${q}${name}${q})`)
  const left = [...out.slice(bannerEnd).matchAll(/(?<![\w$.])import\(/g)].filter((m) => !insideTemplate(out, bannerEnd + m.index))
  if (left.length > 0) {
    const at = bannerEnd + left[0].index
    throw new Error(`the CLI bundle has a dynamic import it cannot route: ${out.slice(at, at + 60)}`)
  }
  return out
}

/** Whether position `i` of `text` is inside a template literal on its line (a cheap check for generated code). */
function insideTemplate(text, i) {
  const start = text.lastIndexOf('\n', i) + 1
  return (text.slice(start, i).match(/`/g)?.length ?? 0) % 2 === 1
}

/** Packages loaded only on first use of one of their exports (see `lazyPackage`). */
const LAZY = /^@aws-sdk\/(client-s3|lib-storage)$/
/** The only packages bundled (imported from our sources); the rest stay external. */
const BUNDLED = /^yaml(\/|$)/
const require = createRequire(join(REPO, 'package.json'))

/**
 * An ES module standing in for CommonJS package `name` (whose exports, read at build time, are
 * `exports`): each export is a Proxy that requires the real package on first use (call, `new`,
 * `extends`, property read, `instanceof`) and forwards to the real export. Primitive exports
 * are copied. Unused stand-ins are dropped by tree shaking.
 */
function lazyPackage(name, exports) {
  const lines = [
    "import { createRequire } from 'node:module'",
    `const load = () => (pkg ??= createRequire(${JSON.stringify(pathToFileURL(join(REPO, 'package.json')).href)})(${JSON.stringify(name)}))`,
    'let pkg',
    'const lazy = (key, callable) => {',
    '  const real = () => load()[key]',
    '  const proxyTarget = callable ? function () {} : {}',
    '  const proxy = new Proxy(proxyTarget, {',
    '    apply: (_, self, args) => Reflect.apply(real(), self, args),',
    '    construct: (_, args, newTarget) => Reflect.construct(real(), args, newTarget === proxy ? real() : newTarget),',
    '    get: (_, p) => (p === "prototype" && callable ? real().prototype : Reflect.get(real(), p)),',
    '    has: (_, p) => Reflect.has(real(), p),',
    '    ownKeys: () => [...new Set([...Reflect.ownKeys(real()), ...Reflect.ownKeys(proxyTarget)])],',
    '    getOwnPropertyDescriptor: (_, p) => {',
    '      const d = Reflect.getOwnPropertyDescriptor(real(), p)',
    '      if (callable && p === "prototype") return { value: real().prototype, writable: true, enumerable: false, configurable: false }',
    '      return d === undefined ? Reflect.getOwnPropertyDescriptor(proxyTarget, p) : { ...d, configurable: true }',
    '    },',
    '    getPrototypeOf: () => Reflect.getPrototypeOf(real()),',
    '  })',
    '  return proxy',
    '}',
  ]
  for (const [key, value] of Object.entries(exports)) {
    if (!/^[A-Za-z_$][\w$]*$/.test(key) || key === 'default') continue
    const v =
      typeof value === 'function' || (typeof value === 'object' && value !== null)
        ? `/* @__PURE__ */ lazy(${JSON.stringify(key)}, ${typeof value === 'function'})`
        : (JSON.stringify(value) ?? 'undefined')
    lines.push(`export const ${key} = ${v}`)
  }
  return `${lines.join('\n')}\n`
}

/** For a file inside node_modules, its package's package.json; else undefined. */
function packageJsonOf(path) {
  const m = /^(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/.exec(path)
  return m === null ? undefined : join(m[1], 'package.json')
}

/**
 * The exports of the bundle at `path` (what `ensureBundle` returns), run as a CommonJS module
 * compiled through node:vm with V8's code cache: `<path>.v8cache` holds the key it was made for
 * (the sha256 of the node version, the architecture and the bundle's text, so any change of the
 * bundle's bytes makes it unusable) and the data. A missing, mismatched or rejected cache is
 * written anew when the process exits, holding every function this run compiled (atomically;
 * best effort: a read-only checkout simply runs uncached). `codeCache: false` loads the bundle
 * with node's own require instead (what `CUSP_DEBUG=1` uses: node maps stack traces only there).
 */
export function loadBundle(path, { codeCache = true } = {}) {
  globalThis[Symbol.for(BUNDLE_HOST)] ??= { import: (s) => import(s), resolve: (s) => import.meta.resolve(s) }
  const req = createRequire(path)
  if (!codeCache) return req(path)
  const text = readFileSync(path, 'utf8')
  const key = createHash('sha256').update(`${process.version}\n${process.arch}\n`).update(text).digest('hex')
  const cacheFile = bundlePathsOf(path).codeCache
  let cachedData
  try {
    const buf = readFileSync(cacheFile)
    if (buf.length > key.length + 1 && buf.toString('latin1', 0, key.length + 1) === `${key}\n`) cachedData = buf.subarray(key.length + 1)
  } catch {
    // no cache yet
  }
  // The wrapper keeps the bundle's line numbers (it adds nothing before the first line's text).
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${text}\n})`, { filename: path, cachedData })
  if (cachedData === undefined || script.cachedDataRejected === true) process.once('exit', () => writeCodeCache(cacheFile, key, script))
  const module = { exports: {} }
  script.runInThisContext()(module.exports, req, module, path, dirname(path))
  return module.exports
}

/** The code cache's path for a bundle path. */
function bundlePathsOf(bundle) {
  return { codeCache: `${bundle}.v8cache` }
}

function writeCodeCache(file, key, script) {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`
  try {
    writeFileSync(tmp, Buffer.concat([Buffer.from(`${key}\n`, 'latin1'), script.createCachedData()]))
    renameSync(tmp, file)
  } catch {
    rmSync(tmp, { force: true })
  }
}

/** The bundle's path, rebuilt first when stale. */
export async function ensureBundle(root = REPO) {
  return isStale(root) ? await build(root) : bundlePaths(root).bundle
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === SELF) {
  const stale = isStale()
  const bundle = await ensureBundle()
  process.stdout.write(`${stale ? 'built' : 'up to date:'} ${relative(process.cwd(), bundle)}\n`)
}
