/**
 * The local store: the shared store contract, its on-disk layout and permissions, damaged run
 * records, `openStore`, and crash safety: a child process publishing a 50 MB object is killed
 * with SIGKILL at several points of the write, after which every visible object still verifies,
 * every visible run record is complete, and the next put succeeds.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, rm, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { openStore } from '../../src/harness/store/open-store.ts'
import type { Fingerprint, ObjectDigest } from '../../src/harness/types.ts'
import { makeRecord, storeContract } from './store-contract.ts'

const here = dirname(fileURLToPath(import.meta.url))
const projectRoot = resolve(here, '../..')
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex') as ObjectDigest

storeContract(t, 'local', async () => {
  const root = await mkdtemp(join(tmpdir(), 'cusp-local-store-'))
  const store = new LocalStore(root)
  return {
    store,
    another: () => new LocalStore(root),
    async corrupt(digest) {
      const path = store.objectPath(digest)
      await chmod(path, 0o644)
      const bytes = await readFile(path)
      const at = Math.floor(bytes.length / 2)
      bytes[at] = bytes[at]! ^ 0x01
      await writeFile(path, bytes)
      await chmod(path, 0o444)
    },
    async interruptWrite(bytes) {
      // what a killed writer leaves: a partial temp file under tmp/, never renamed
      const s = new LocalStore(root)
      await s.putBytes(Buffer.from('warm up: creates tmp/'))
      await writeFile(join(root, 'tmp', `${process.pid}-${randomBytes(8).toString('hex')}`), bytes)
    },
    async cleanup() {
      await rm(root, { recursive: true, force: true })
    },
  }
})

/** Every object file under the store, and whether it hashes to its name. */
async function auditObjects(root: string): Promise<{ count: number; bad: string[] }> {
  const bad: string[] = []
  let count = 0
  const base = join(root, 'objects', 'sha256')
  for (const shard of await readdir(base).catch(() => [] as string[])) {
    for (const rest of await readdir(join(base, shard))) {
      count++
      if (sha(await readFile(join(base, shard, rest))) !== `${shard}${rest}`) bad.push(`${shard}${rest}`)
    }
  }
  return { count, bad }
}

t.test('layout, permissions, no temp files left', async (t) => {
  const dir = t.testdir({ 'src.txt': 'hello', tree: { 'x.txt': 'x' } })
  const root = join(dir, 'store')
  const store = new LocalStore(root)
  const put = await store.putFile(join(dir, 'src.txt'))
  const objPath = join(root, 'objects', 'sha256', put.digest.slice(0, 2), put.digest.slice(2))
  t.equal(store.objectPath(put.digest), objPath)
  t.equal((await stat(objPath)).mode & 0o777, 0o444, 'objects are read-only')
  const rec = makeRecord('s', { out: { ...put, kind: 'file' } })
  await store.putRun(rec)
  const runPath = join(root, 'runs', rec.fingerprint.slice(0, 2), `${rec.fingerprint}.json`)
  t.same(JSON.parse(await readFile(runPath, 'utf8')), rec)
  t.equal((await stat(runPath)).mode & 0o777, 0o444, 'run records are read-only')
  const d = await store.putDir(join(dir, 'tree'))
  const listing = JSON.parse(await readFile(store.objectPath(d.digest), 'utf8')) as unknown
  t.same(listing, { entries: [{ digest: sha(Buffer.from('x')), mode: 0o644, path: 'x.txt', size: 1 }], kind: 'cusp-dir' })
  t.same(await readdir(join(root, 'tmp')), [], 'no temp files left behind')
  t.equal(await store.getFile(put.digest, join(dir, 'restored.txt')), true)
  t.equal((await stat(join(dir, 'restored.txt'))).mode & 0o777, 0o644, 'restored files are 0644 (editable copies)')
  t.same((await readdir(dir)).sort(), ['restored.txt', 'src.txt', 'store', 'tree'], 'no restore temp left beside dest')
})

t.test('damaged or misplaced run records are misses and are replaced by the next putRun', async (t) => {
  const root = join(t.testdir({}), 'store')
  const store = new LocalStore(root)
  const rec = makeRecord('s', {})
  await store.putRun(rec)
  const path = join(root, 'runs', rec.fingerprint.slice(0, 2), `${rec.fingerprint}.json`)
  await chmod(path, 0o644)
  await writeFile(path, '{"schema":1,')
  t.equal(await store.getRun(rec.fingerprint), undefined, 'truncated JSON is a miss')
  await store.putRun(rec)
  t.same(await store.getRun(rec.fingerprint), rec, 'republishing replaces the damaged record')
  const other = makeRecord('s', {}, 7)
  const otherPath = join(root, 'runs', other.fingerprint.slice(0, 2), `${other.fingerprint}.json`)
  await mkdir(dirname(otherPath), { recursive: true })
  await writeFile(otherPath, await readFile(path))
  t.equal(await store.getRun(other.fingerprint), undefined, 'a record filed under the wrong fingerprint is a miss')
  t.same(
    (await store.listRuns()).map((r) => r.fingerprint),
    [rec.fingerprint],
  )
})

t.test('a store removed under a live instance is recreated by the next write', async (t) => {
  const dir = t.testdir({ 'src.txt': 'again' })
  const root = join(dir, 'store')
  const store = new LocalStore(root)
  const put = await store.putFile(join(dir, 'src.txt'))
  await store.putRun(makeRecord('s', { out: { ...put, kind: 'file' } }))
  await rm(root, { recursive: true, force: true })
  t.equal(await store.hasObject(put.digest), false)
  t.same(await store.putFile(join(dir, 'src.txt')), put)
  await store.putRun(makeRecord('s', { out: { ...put, kind: 'file' } }))
  t.equal((await store.listRuns()).length, 1)
})

t.test('sweepTemp removes only old temp files', async (t) => {
  const root = join(t.testdir({}), 'store')
  const store = new LocalStore(root)
  await store.putBytes(Buffer.from('x'))
  await writeFile(join(root, 'tmp', 'stale'), 'partial')
  t.equal(await store.sweepTemp(60_000), 0, 'a fresh temp may belong to a live writer')
  t.equal(await store.sweepTemp(-1), 1)
  t.same(await readdir(join(root, 'tmp')), [])
})

t.test('openStore', async (t) => {
  const dir = t.testdir({ 'a-file': 'x' })
  const def = openStore(undefined, dir)
  t.equal(def.ok && def.value instanceof LocalStore && def.value.root, join(dir, 'artifacts'), 'default <project>/artifacts')
  const rel = openStore('cache/store', dir)
  t.equal(rel.ok && (rel.value as LocalStore).root, join(dir, 'cache/store'), 'relative to the project root')
  const abs = openStore('/tmp/x-store', dir)
  t.equal(abs.ok && (abs.value as LocalStore).root, '/tmp/x-store')
  const url = openStore('file:///tmp/y-store', dir)
  t.equal(url.ok && (url.value as LocalStore).root, '/tmp/y-store')
  t.ok(openStore('s3://bucket/prefix', dir, {}).ok, 's3:// opens the S3 store (see s3-store.test.ts)')
  t.match(openStore('gs://bucket', dir), { ok: false, error: { reason: 'store-error', message: /unknown store scheme/ } })
  t.match(openStore('a-file', dir), { ok: false, error: { reason: 'store-error', message: /not a directory/ } })
  t.equal(existsSync(join(dir, 'artifacts')), false, 'opening creates nothing')
})

/** Runs the child publisher; resolves when it is killed (per `when`) or exits. */
async function publishAndKill(
  root: string,
  src: string,
  eta: number,
  when: 'tmp-appears' | 'half-written' | number | 'never',
): Promise<'killed' | 'exited'> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'store-publish-child.ts'), root, src, String(eta)], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise<void>((res) => child.on('exit', () => res()))
  let out = ''
  await new Promise<void>((res) => child.stdout.on('data', (d: Buffer) => ((out += d.toString()), out.includes('ready') && res())))
  const tmpDir = join(root, 'tmp')
  const tmpSize = async () => {
    let max = -1
    for (const n of await readdir(tmpDir).catch(() => [] as string[]))
      max = Math.max(max, (await stat(join(tmpDir, n)).catch(() => ({ size: -1 }))).size)
    return max
  }
  if (when === 'never') {
    await exited
    return 'exited'
  }
  let done = false
  void exited.then(() => (done = true))
  if (typeof when === 'number') await new Promise((r) => setTimeout(r, when))
  else {
    const threshold = when === 'tmp-appears' ? 0 : 25 << 20
    while (!done && (await tmpSize()) < threshold) await new Promise((r) => setImmediate(r))
  }
  if (done) return 'exited'
  child.kill('SIGKILL')
  await exited
  return 'killed'
}

t.test('kill -9 mid-publish leaves no visible partial object or run record', async (t) => {
  const dir = t.testdir({})
  const root = join(dir, 'store')
  const store = new LocalStore(root)
  const body = randomBytes(50 << 20)
  const plans: Array<'tmp-appears' | 'half-written' | number | 'never'> = ['tmp-appears', 'half-written', 50, 150, 400, 'never']
  let killed = 0
  for (const [i, when] of plans.entries()) {
    const bytes = Buffer.concat([Buffer.from(`trial ${i}\n`), body])
    const src = join(dir, `src-${i}`)
    await writeFile(src, bytes)
    const outcome = await publishAndKill(root, src, i, when)
    if (outcome === 'killed') killed++
    const { bad, count } = await auditObjects(root)
    t.same(bad, [], `${String(when)} (${outcome}): every visible object verifies (${count} objects)`)
    const rec = makeRecord('big', { out: { digest: sha(bytes), size: bytes.length, kind: 'file' } }, i)
    const visible = await store.getRun(rec.fingerprint as Fingerprint)
    if (visible !== undefined) {
      t.same(visible, rec, `${String(when)}: a visible run record is complete`)
      t.equal(await store.hasObject(sha(bytes)), true, `${String(when)}: and its object is there`)
    }
    if (when === 'never') t.same(visible, rec, 'an uninterrupted publish is visible')
    t.same(await store.putFile(src), { digest: sha(bytes), size: bytes.length }, `${String(when)}: a later put completes`)
    t.equal(await store.getFile(sha(bytes), join(dir, `restored-${i}`)), true)
  }
  t.ok(killed >= 2, `at least the two mid-write kills happened (${killed} killed)`)
  const left = await readdir(join(root, 'tmp'))
  t.comment(`temp files left by killed writers: ${left.length}`)
})
