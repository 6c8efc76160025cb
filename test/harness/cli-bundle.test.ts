/**
 * The bundled CLI behind `npm run pipeline` (scripts/cli-bundle.mjs, scripts/pipeline.cjs and .mjs):
 * a bundle is stale until built, fresh after, and stale again when any source file that went
 * into it changes (content, or only its mtime) or the bundle disappears; rebuilding picks up
 * the change; each module keeps its own `import.meta.url`. Built in a temp root from a
 * two-file entry, so the repository's own bundle is not touched, except by the last test,
 * which runs the real `node scripts/pipeline.cjs --help` end to end.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { build, bundlePaths, isStale, loadBundle, REPO } from '../../scripts/cli-bundle.mjs'
import { USAGE } from '../../src/harness/cli-args.ts'

interface Entry {
  value: string
  where: string
}

t.test('the bundle is rebuilt when a source file changes', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-bundle-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'src/sub'), { recursive: true })
  const entry = join(root, 'src/entry.ts')
  const dep = join(root, 'src/sub/dep.ts')
  writeFileSync(entry, `export { value, where } from './sub/dep.ts'\n`)
  writeFileSync(dep, `export const value: string = 'one'\nexport const where = import.meta.url\n`)
  // Compiled afresh on every call (node:vm), so each load sees the bundle as it is now.
  const load = async (): Promise<Entry> => Promise.resolve(loadBundle(bundlePaths(root).bundle) as Entry)

  t.ok(isStale(root), 'stale before the first build')
  await build(root, entry)
  t.notOk(isStale(root), 'fresh right after a build')
  let m = await load()
  t.equal(m.value, 'one')
  t.equal(m.where, pathToFileURL(dep).href, "a bundled module's import.meta.url is still its source file")

  writeFileSync(dep, `export const value: string = 'two!'\nexport const where = import.meta.url\n`)
  t.ok(isStale(root), 'stale after an imported file changed')
  await build(root, entry)
  t.notOk(isStale(root))
  m = await load()
  t.equal(m.value, 'two!', 'the rebuilt bundle has the change')

  const later = new Date(Date.now() + 5000)
  utimesSync(entry, later, later)
  t.ok(isStale(root), 'stale after only the mtime of the entry changed')
  await build(root, entry)
  t.notOk(isStale(root))

  rmSync(bundlePaths(root).bundle)
  t.ok(isStale(root), 'stale when the bundle is gone')
  writeFileSync(bundlePaths(root).manifest, '{"format": 1, "inputs": ')
  t.ok(isStale(root), 'stale when the manifest is unreadable')
})

t.test('the code cache is written once, used after, and never runs code the bundle no longer has', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-bundle-cache-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const entry = join(root, 'entry.ts')
  const source = (v: string) =>
    `export function value(): string {\n  return ${JSON.stringify(v)}\n}\nexport const loaded = import('execa').then((m) => typeof m.execa)\n`
  writeFileSync(entry, source('one'))
  await build(root, entry)
  const { bundle, codeCache } = bundlePaths(root)
  // Each load in a child process, as the CLI does: the cache is written when the process exits.
  const run = () => {
    const script = `import(${JSON.stringify(pathToFileURL(join(REPO, 'scripts/cli-bundle.mjs')).href)}).then(async ({ loadBundle }) => { const m = loadBundle(${JSON.stringify(bundle)}); console.log(m.value(), await m.loaded) })`
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
    t.equal(r.stderr, '', 'nothing on stderr (no experimental-feature warning either)')
    return r.stdout.trim()
  }
  t.notOk(existsSync(codeCache), 'no cache before the first run')
  t.equal(run(), 'one function', 'runs, and imports a package on use through the host')
  t.ok(existsSync(codeCache), 'the first run wrote the cache')
  const written = readFileSync(codeCache)
  t.equal(run(), 'one function')
  t.same(readFileSync(codeCache), written, 'a run that found a usable cache leaves it as it was')

  // The same length, other bytes: V8 itself would accept the old cache (it checks the length).
  const text = readFileSync(bundle, 'utf8')
  t.ok(text.includes('"one"'))
  writeFileSync(bundle, text.replace('"one"', '"two"'))
  t.equal(run(), 'two function', 'an edited bundle runs its own code, not the cached one')
  t.notSame(readFileSync(codeCache), written, 'and the cache is made anew for it')

  writeFileSync(codeCache, 'garbage')
  t.equal(run(), 'two function', 'an unreadable cache is ignored')
})

t.test('node scripts/pipeline.cjs --help (what npm run pipeline runs) and scripts/pipeline.mjs run the CLI', async (t) => {
  for (const entry of ['scripts/pipeline.cjs', 'scripts/pipeline.mjs']) {
    const r = spawnSync(process.execPath, [join(REPO, entry), '--help'], { cwd: REPO, encoding: 'utf8' })
    t.equal(r.status, 0, r.stderr)
    t.equal(r.stdout, `${USAGE}\n`, entry)
    t.equal(r.stderr, '', 'no fallback to tsx')
  }
  const bad = spawnSync(process.execPath, [join(REPO, 'scripts/pipeline.cjs'), '--no-such-flag'], { cwd: REPO, encoding: 'utf8' })
  t.equal(bad.status, 2, 'the CLI exit code comes through the CommonJS entry')
})

t.test('the AWS SDK is bundled as lazy stand-ins: not loaded until used, then the real thing', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-bundle-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const entry = join(root, 'entry.ts')
  writeFileSync(
    entry,
    `import { createRequire } from 'node:module'
import { PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
const loaded = () => Object.keys(createRequire(${JSON.stringify(join(REPO, 'package.json'))}).cache).some((k) => k.includes('client-s3'))
export function check() {
  const before = loaded()
  const cmd = new PutObjectCommand({ Bucket: 'b', Key: 'k' })
  class Sub extends S3Client {}
  const sub = new Sub({ region: 'us-east-1' })
  return {
    before,
    after: loaded(),
    key: cmd.input.Key,
    isCommand: cmd instanceof PutObjectCommand,
    isSub: sub instanceof Sub && sub instanceof S3Client,
    notException: new Error('x') instanceof S3ServiceException,
    upload: typeof Upload,
    uploadProto: typeof Upload.prototype.done,
  }
}
`,
  )
  await build(root, entry) // (loads the SDK in this process to list its exports: check in a child)
  const script = `import(${JSON.stringify(pathToFileURL(join(REPO, 'scripts/cli-bundle.mjs')).href)}).then(({ loadBundle }) => console.log(JSON.stringify(loadBundle(${JSON.stringify(bundlePaths(root).bundle)}).check())))`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' })
  t.equal(r.status, 0, r.status === 0 ? 'the child ran' : r.stderr)
  t.same(JSON.parse(r.stdout) as unknown, {
    before: false,
    after: true,
    key: 'k',
    isCommand: true,
    isSub: true,
    notException: false,
    upload: 'function',
    uploadProto: 'function',
  })
})

t.test('a copied project (cp -a) rebuilds its own bundle and never runs the original checkout code', async (t) => {
  // A minimal project: the CLI sources, its scripts and schemas, the installed packages linked.
  const base = mkdtempSync(join(tmpdir(), 'cusp-bundle-copy-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const orig = join(base, 'orig')
  mkdirSync(orig)
  for (const d of ['src', 'scripts', 'schemas']) spawnSync('cp', ['-a', join(REPO, d), join(orig, d)])
  writeFileSync(join(orig, 'package.json'), readFileSync(join(REPO, 'package.json')))
  symlinkSync(join(REPO, 'node_modules'), join(orig, 'node_modules'))
  const help = (root: string) =>
    spawnSync(process.execPath, [join(root, 'scripts', 'pipeline.mjs'), '--help'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, CUSP_DEBUG: '' },
    })
  const first = help(orig)
  t.equal(first.status, 0, first.stderr)
  t.ok(existsSync(join(orig, '.cusp', 'build', 'cli.cjs')), 'the original built its bundle')

  const copy = join(base, 'copy')
  t.equal(spawnSync('cp', ['-a', orig, copy]).status, 0, 'cp -a (mtimes kept, the bundle copied too)')
  const args = join(copy, 'src', 'harness', 'cli-args.ts')
  writeFileSync(args, readFileSync(args, 'utf8').replace('usage: npm run pipeline', 'usage (the copy): npm run pipeline'))
  const inCopy = help(copy)
  t.equal(inCopy.status, 0, inCopy.stderr)
  t.match(inCopy.stdout, /usage \(the copy\): npm run pipeline/, 'the copy runs its own edited source')
  const manifest = JSON.parse(readFileSync(join(copy, '.cusp', 'build', 'cli.manifest.json'), 'utf8')) as {
    inputs: Record<string, string>
    project: string
  }
  t.equal(manifest.project, realpathSync(copy), 'the copy bundle is keyed by the copy location')
  t.notOk(
    Object.keys(manifest.inputs).some((p) => p.startsWith(`${realpathSync(orig)}/`)),
    'no input of the copy bundle is in the original',
  )
  t.notOk(
    readFileSync(join(copy, '.cusp', 'build', 'cli.cjs'), 'utf8').includes(pathToFileURL(realpathSync(orig)).href),
    'the copy bundle pins no module to the original',
  )
  t.notMatch(help(orig).stdout, /the copy/, 'the original still runs its own code')
})
