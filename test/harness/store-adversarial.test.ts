/**
 * The store's trust boundary, adversarially: run records and directory listings as a malicious
 * or broken writer of a shared store could leave them, signed records, and store faults. Each
 * case is one table row, run as its own test, asserting the outcome: refused (a miss, or a
 * one-line StoreError), nothing written outside the restore's scratch directory, nothing already
 * stored lost.
 */
import t from 'tap'
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { computeFingerprint } from '../../src/harness/fingerprint.ts'
import { encodeListing, parseListing } from '../../src/harness/store/dir-listing.ts'
import { fsck } from '../../src/harness/store/fsck.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { admitRecord, signingFromEnv, type RecordTrust } from '../../src/harness/store/record-trust.ts'
import { checkRunRecord, RECORD_LIMITS } from '../../src/harness/store/run-record-check.ts'
import { StoreLookups } from '../../src/harness/store-lookups.ts'
import type { ObjectDigest, RunRecord } from '../../src/harness/types.ts'
import { makeRecord } from './store-contract.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex') as ObjectDigest
const D = 'ab'.repeat(32) as ObjectDigest
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

/** A record with the given outputs whose fingerprint hashes its breakdown (as a forger can make). */
function forged(outputs: Record<string, unknown>, patch: (r: Record<string, unknown>) => void = () => undefined): Record<string, unknown> {
  const r = clone(makeRecord('s', {})) as unknown as Record<string, unknown>
  r.outputs = outputs
  patch(r)
  return r
}

// ---------------------------------------------------------------------------------------------
// Run records: every row is refused by the check, is a miss when read from a store, and is
// refused by putRun; the control row is accepted.

const file = { digest: D, size: 3, kind: 'file' }
const recordCases: [string, Record<string, unknown> | unknown, boolean][] = [
  ['climbing output name ../x', forged({ '../x': file }), false],
  ['the reported attack ../../../../stages/prepare-data', forged({ '../../../../stages/prepare-data': { ...file, kind: 'dir' } }), false],
  ['absolute output name', forged({ '/etc/passwd': file }), false],
  ['output name with a separator', forged({ 'a/b': file }), false],
  ['empty output name', forged({ '': file }), false],
  ['output name ..', forged({ '..': file }), false],
  ['output name with a backslash', forged({ 'a\\..\\b': file }), false],
  ['output name with NUL', forged({ 'x\u0000y': file }), false],
  ['output name with a newline', forged({ 'x\ny': file }), false],
  ['output name of 200 characters', forged({ ['a'.repeat(200)]: file }), false],
  [
    `more than ${RECORD_LIMITS.outputs} outputs`,
    forged(Object.fromEntries(Array.from({ length: RECORD_LIMITS.outputs + 1 }, (_, i) => [`o${i}`, file]))),
    false,
  ],
  ['negative size', forged({ f: { ...file, size: -1 } }), false],
  ['fractional size', forged({ f: { ...file, size: 1.5 } }), false],
  ['size over the limit', forged({ f: { ...file, size: 2 ** 41 } }), false],
  ['size as a string', forged({ f: { ...file, size: '3' } }), false],
  ['kind symlink', forged({ f: { ...file, kind: 'symlink' } }), false],
  ['uppercase digest', forged({ f: { ...file, digest: D.toUpperCase() } }), false],
  ['short digest', forged({ f: { ...file, digest: 'abc' } }), false],
  ['digest that climbs', forged({ f: { ...file, digest: '../../etc/passwd' } }), false],
  ['outputs is an array', forged([file] as unknown as Record<string, unknown>), false],
  ['outputs is null', forged(null as unknown as Record<string, unknown>), false],
  ['an output is null', forged({ f: null }), false],
  ['an output is an array', forged({ f: [D, 3, 'file'] }), false],
  ['schema 2', forged({}, (r) => (r.schema = 2)), false],
  ['breakdown altered after hashing', forged({}, (r) => ((r.breakdown as { params: unknown }).params = { eta: 9 })), false],
  ['breakdown names another stage', forged({}, (r) => (r.stage = 'other')), false],
  ['instance of 10000 characters', forged({}, (r) => (r.instance = 'i'.repeat(10_000))), false],
  ['durationMs negative', forged({}, (r) => (r.durationMs = -5)), false],
  ['durationMs a string', forged({}, (r) => (r.durationMs = '5')), false],
  ['not an object', [1, 2, 3], false],
  ['control: a well-formed record', forged({ f: file }), true],
]

for (const [name, value, accepted] of recordCases) {
  t.test(`record: ${name}`, async (t) => {
    const fp = (value as { fingerprint?: string }).fingerprint ?? makeRecord('s', {}).fingerprint
    t.equal(checkRunRecord(value, fp) === undefined, accepted, accepted ? 'accepted' : `refused: ${checkRunRecord(value, fp)}`)
    const root = t.testdir({})
    const store = new LocalStore(join(root, 'store'))
    const path = store.runPath(fp)
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, JSON.stringify(value))
    const got = await store.getRun(fp as RunRecord['fingerprint'])
    t.equal(got !== undefined, accepted, accepted ? 'read back' : 'a miss when read from the store')
    if (!accepted) await t.rejects(store.putRun(value as RunRecord), { name: 'StoreError' }, 'putRun refuses it')
  })
}

t.test('record: an oversized record file is a miss without being parsed', async (t) => {
  const store = new LocalStore(join(t.testdir({}), 'store'))
  const rec = makeRecord('s', {})
  const path = store.runPath(rec.fingerprint)
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, JSON.stringify({ ...rec, pad: 'x'.repeat(RECORD_LIMITS.recordBytes) }))
  t.equal(await store.getRun(rec.fingerprint), undefined)
})

// ---------------------------------------------------------------------------------------------
// Declared outputs: with the pipeline's stages known, only exactly the declared set is trusted.

const declared: RecordTrust = {
  outputsOf: (s) =>
    s === 's'
      ? [
          { name: 'model.bin', kind: 'file' },
          { name: 'ckpt', kind: 'dir' },
        ]
      : undefined,
  warn: () => undefined,
}
const ok3 = { 'model.bin': file, ckpt: { ...file, kind: 'dir' }, 'result.json': file }
const declaredCases: [string, Record<string, unknown>, boolean][] = [
  ['an extra (safe) output', { ...ok3, extra: file }, false],
  ['a missing output', { 'model.bin': file, 'result.json': file }, false],
  ['a dir output recorded as a file', { ...ok3, ckpt: file }, false],
  ['no result.json', { 'model.bin': file, ckpt: { ...file, kind: 'dir' } }, false],
  ['control: exactly the declared outputs', ok3, true],
]
for (const [name, outputs, accepted] of declaredCases) {
  t.test(`declared outputs: ${name}`, async (t) => {
    const rec = forged(outputs)
    t.equal(admitRecord(rec, rec.fingerprint as string, declared, 'test') !== undefined, accepted)
    const store = new LocalStore(join(t.testdir({}), 'store'), declared)
    if (!accepted) await t.rejects(store.putRun(rec as unknown as RunRecord), /not stage s's declared outputs/, 'putRun refuses it too')
  })
}

t.test('declared outputs: a record of a stage the pipeline does not declare is judged on structure', async (t) => {
  const rec = forged({ anything: file }, (r) => {
    r.stage = 'retired'
    ;(r.breakdown as { stage: string }).stage = 'retired'
    r.fingerprint = computeFingerprint(r.breakdown as RunRecord['breakdown']).fingerprint
  })
  t.not(admitRecord(rec, rec.fingerprint as string, declared, 'test'), undefined)
})

// ---------------------------------------------------------------------------------------------
// Signed records.

const hmacEnv = { CUSP_RECORD_KEY: 'k'.repeat(32) }
const { privateKey, publicKey } = generateKeyPairSync('ed25519')
const edEnv = { CUSP_RECORD_SIGNING_KEY: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
const edVerifyOnly = { CUSP_RECORD_VERIFY_KEY: publicKey.export({ type: 'spki', format: 'pem' }).toString() }

async function signedStore(root: string, env: Record<string, string>, warnings: string[]): Promise<LocalStore> {
  const s = signingFromEnv(env)
  if (!s.ok) throw new Error(s.message)
  return new LocalStore(root, { ...s.trust, warn: (m) => void warnings.push(m) })
}

async function publish(store: LocalStore, dir: string): Promise<RunRecord> {
  await writeFile(join(dir, 'f'), 'abc')
  const put = await store.putFile(join(dir, 'f'))
  const rec = makeRecord('s', { f: { ...put, kind: 'file' } })
  await store.putRun(rec)
  return rec
}

const signingCases: [string, (root: string, dir: string, warnings: string[]) => Promise<boolean>, boolean][] = [
  [
    'HMAC: a signed record reads back',
    async (root, dir, w) => {
      const s = await signedStore(root, hmacEnv, w)
      const rec = await publish(s, dir)
      return (await s.getRun(rec.fingerprint)) !== undefined
    },
    true,
  ],
  [
    'HMAC: an unsigned record is refused when signing is configured',
    async (root, dir, w) => {
      const rec = await publish(new LocalStore(root), dir)
      return (await (await signedStore(root, hmacEnv, w)).getRun(rec.fingerprint)) !== undefined
    },
    false,
  ],
  [
    'HMAC: a record signed with another key is refused',
    async (root, dir, w) => {
      const rec = await publish(await signedStore(root, { CUSP_RECORD_KEY: 'z'.repeat(32) }, []), dir)
      return (await (await signedStore(root, hmacEnv, w)).getRun(rec.fingerprint)) !== undefined
    },
    false,
  ],
  [
    'HMAC: a signed record altered after signing (an output swapped) is refused',
    async (root, dir, w) => {
      const s = await signedStore(root, hmacEnv, w)
      const rec = await publish(s, dir)
      const path = s.runPath(rec.fingerprint)
      const stored = JSON.parse(await readFile(path, 'utf8')) as RunRecord & { signature: string }
      stored.durationMs = 99
      await chmod(path, 0o644)
      await writeFile(path, JSON.stringify(stored))
      return (await s.getRun(rec.fingerprint)) !== undefined
    },
    false,
  ],
  [
    'ed25519: a signed record reads back with only the public key',
    async (root, dir, w) => {
      const rec = await publish(await signedStore(root, edEnv, w), dir)
      return (await (await signedStore(root, edVerifyOnly, w)).getRun(rec.fingerprint)) !== undefined
    },
    true,
  ],
  [
    'ed25519: an HMAC-signed record is refused by an ed25519 verifier',
    async (root, dir, w) => {
      const rec = await publish(await signedStore(root, hmacEnv, []), dir)
      return (await (await signedStore(root, edVerifyOnly, w)).getRun(rec.fingerprint)) !== undefined
    },
    false,
  ],
]
for (const [name, run, accepted] of signingCases) {
  t.test(`signed records: ${name}`, async (t) => {
    const root = t.testdir({ src: {} })
    const warnings: string[] = []
    t.equal(await run(join(root, 'store'), join(root, 'src'), warnings), accepted)
    if (!accepted) {
      t.equal(warnings.length, 1, 'one warning')
      t.notMatch(warnings[0] ?? '', /\n/, 'on one line')
    }
  })
}

t.test('signed records: a short HMAC key and a non-ed25519 PEM are one-line configuration errors', async (t) => {
  const short = signingFromEnv({ CUSP_RECORD_KEY: 'short' })
  t.equal(short.ok, false)
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const bad = signingFromEnv({ CUSP_RECORD_VERIFY_KEY: rsa })
  t.equal(bad.ok, false)
  if (!bad.ok) t.notMatch(bad.message, /\n/)
})

// ---------------------------------------------------------------------------------------------
// Directory listings: a hostile listing is refused, and a restore writes nothing outside `dest`.

const entry = (path: string, extra: Record<string, unknown> = {}) => ({ path, digest: D, size: 1, mode: 0o644, ...extra })
const listing = (entries: unknown[], kind = 'cusp-dir') => Buffer.from(JSON.stringify({ kind, entries }))
const listingCases: [string, Buffer, boolean][] = [
  ['climbing path ../x', listing([entry('../x')]), false],
  ['deep climb a/../../x', listing([entry('a/../../x')]), false],
  ['absolute path', listing([entry('/etc/cron.d/x')]), false],
  ['empty segment a//b', listing([entry('a//b')]), false],
  ['dot segment ./a', listing([entry('./a')]), false],
  ['backslash a\\..\\b', listing([entry('a\\..\\b')]), false],
  ['NUL in a path', listing([entry('a\u0000b')]), false],
  ['duplicate path', listing([entry('a'), entry('a')]), false],
  ['a file that is also a directory (a, a/b)', listing([entry('a'), entry('a/b')]), false],
  ['a segment over 255 bytes', listing([entry('x'.repeat(256))]), false],
  ['a path over 1024 characters', listing([entry(Array.from({ length: 120 }, () => 'abcdefghi').join('/'))]), false],
  ['mode 0o4755 (setuid)', listing([entry('a', { mode: 0o4755 })]), false],
  ['negative size', listing([entry('a', { size: -1 })]), false],
  ['size over the limit', listing([entry('a', { size: 2 ** 41 })]), false],
  ['bad digest', listing([entry('a', { digest: 'nope' })]), false],
  ['wrong kind', listing([entry('a')], 'tar'), false],
  ['entries not an array', Buffer.from(JSON.stringify({ kind: 'cusp-dir', entries: { a: 1 } })), false],
  ['not JSON', Buffer.from('{"kind":"cusp-dir","entries":['), false],
  ['control: a nested, well-formed listing', listing([entry('a/b'), entry('c')]), true],
]
for (const [name, bytes, accepted] of listingCases) {
  t.test(`listing: ${name}`, async (t) => {
    t.equal(parseListing(bytes) !== undefined, accepted)
    // Stored as a real object (so its hash verifies), then restored: refused, nothing outside.
    const root = t.testdir({ scratch: {} })
    const store = new LocalStore(join(root, 'store'))
    const obj = await store.putBytes(Buffer.from('x'))
    const fixed = Buffer.from(bytes.toString().replaceAll(D, obj.digest))
    const l = await store.putBytes(fixed)
    const dest = join(root, 'scratch', 'check', 'out')
    const restored = await store.getDir(l.digest, dest)
    if (!accepted) {
      t.equal(restored, false, 'restore refused')
      t.same(await readdir(join(root, 'scratch')).catch(() => []), [], 'nothing written in or beside the scratch directory')
    }
    t.same((await readdir(root)).sort(), ['scratch', 'store'], 'nothing written outside')
    t.equal(await store.verifyObject(obj.digest), true, 'the stored object is intact')
  })
}

// ---------------------------------------------------------------------------------------------
// Store faults.

t.test('fault: a corrupt object is a miss on restore, leaves no partial dest, and putFile repairs it', async (t) => {
  const root = t.testdir({ src: { f: 'abcdef' } })
  const store = new LocalStore(join(root, 'store'))
  const put = await store.putFile(join(root, 'src', 'f'))
  const path = store.objectPath(put.digest)
  await chmod(path, 0o644)
  await writeFile(path, 'abcdeX')
  t.equal(await store.getFile(put.digest, join(root, 'out')), false)
  t.notOk(existsSync(join(root, 'out')), 'no partial output')
  await writeFile(path, 'abcdeX') // bit rot again, then the producer reruns
  await store.putFile(join(root, 'src', 'f'))
  t.equal(sha(await readFile(path)), put.digest, 'ingest replaced the corrupt copy with good bytes')
})

t.test('fault: a truncated object is absent for the planner (size check), before any restore', async (t) => {
  const root = t.testdir({ src: { f: 'abcdef' } })
  const store = new LocalStore(join(root, 'store'))
  const put = await store.putFile(join(root, 'src', 'f'))
  await chmod(store.objectPath(put.digest), 0o644)
  await writeFile(store.objectPath(put.digest), 'abc')
  const look = new StoreLookups(store)
  look.note([{ ...put, kind: 'file' }])
  await look.fetch([], [put.digest])
  t.equal(look.objects.get(put.digest), false)
  t.same(await store.statObjects([put.digest, D]), [3, undefined])
})

t.test('fault: a directory output with one member truncated is absent (hasDir checks sizes)', async (t) => {
  const root = t.testdir({ tree: { a: 'aaaa', b: 'bbbb' } })
  const store = new LocalStore(join(root, 'store'))
  const dir = await store.putDir(join(root, 'tree'))
  const a = sha(Buffer.from('aaaa'))
  await chmod(store.objectPath(a), 0o644)
  await writeFile(store.objectPath(a), 'aa')
  t.equal(await store.hasDir(dir.digest), false)
})

t.test('fault: a missing member fails a restore and leaves an existing dest as it was', async (t) => {
  const root = t.testdir({ tree: { a: 'aaaa', b: 'bbbb' }, dest: { keep: 'mine' } })
  const store = new LocalStore(join(root, 'store'))
  const dir = await store.putDir(join(root, 'tree'))
  await store.deleteObject(sha(Buffer.from('bbbb')))
  t.equal(await store.getDir(dir.digest, join(root, 'dest')), false)
  t.equal(await readFile(join(root, 'dest', 'keep'), 'utf8'), 'mine', 'what was there is not lost')
  t.same((await readdir(root)).sort(), ['dest', 'store', 'tree'], 'no temp tree left beside dest')
})

t.test('fault: a file where the store expects a directory is an error, and stored objects survive', async (t) => {
  const root = t.testdir({ src: { f: 'one', g: 'two' } })
  const store = new LocalStore(join(root, 'store'))
  const first = await store.putFile(join(root, 'src', 'f'))
  const shard = dirname(store.objectPath(sha(Buffer.from('two'))))
  await rm(shard, { recursive: true, force: true })
  await writeFile(shard, 'not a directory')
  await t.rejects(new LocalStore(join(root, 'store')).putFile(join(root, 'src', 'g')), { code: /ENOTDIR|EEXIST/ })
  t.equal(await store.verifyObject(first.digest), true, 'the object already stored is intact')
  t.same(await readdir(join(root, 'store', 'tmp')), [], 'no temp file left behind')
})

for (const code of ['ENOSPC', 'EACCES'] as const) {
  t.test(`fault: ${code} while writing an object (injected) leaves no partial object and loses nothing`, async (t) => {
    const fsp = await import('node:fs/promises')
    const { LocalStore: Injected } = await t.mockImport<typeof import('../../src/harness/store/local-store.ts')>(
      '../../src/harness/store/local-store.ts',
      {
        'node:fs/promises': {
          ...fsp,
          open: async (path: string, flags?: string, mode?: number) => {
            const fh = await fsp.open(path, flags, mode)
            if (flags !== 'wx' || !String(path).includes('/tmp/')) return fh
            return new Proxy(fh, {
              get(target, prop) {
                if (prop === 'write')
                  return async () => Promise.reject(Object.assign(new Error(`${code}: injected fault, write`), { code }))
                const v = Reflect.get(target, prop) as unknown
                return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
              },
            })
          },
        },
      },
    )
    const root = t.testdir({ src: { old: 'stored before', f: randomBytes(1000).toString('hex') } })
    const before = await new LocalStore(join(root, 'store')).putFile(join(root, 'src', 'old'))
    const store = new Injected(join(root, 'store'))
    await t.rejects(store.putFile(join(root, 'src', 'f')), { code })
    t.same(await readdir(join(root, 'store', 'tmp')), [], 'the temp file is removed')
    t.equal(await store.hasObject(sha(await readFile(join(root, 'src', 'f')))), false, 'no partial object visible')
    t.equal(await new LocalStore(join(root, 'store')).verifyObject(before.digest), true, 'the object already stored is intact')
  })
}

t.test('fsck finds a flipped byte and a planted record; --repair quarantines both, keeps the good', async (t) => {
  const root = t.testdir({ src: { good: 'good bytes', bad: 'bad bytes' } })
  const store = new LocalStore(join(root, 'store'))
  const good = await store.putFile(join(root, 'src', 'good'))
  const bad = await store.putFile(join(root, 'src', 'bad'))
  await chmod(store.objectPath(bad.digest), 0o644)
  await writeFile(store.objectPath(bad.digest), 'bad byteZ')
  const planted = forged({ '../up': file })
  const rp = store.runPath(planted.fingerprint as string)
  await mkdir(dirname(rp), { recursive: true })
  await writeFile(rp, JSON.stringify(planted))
  const [report] = await fsck(store, false)
  t.same(report?.corrupt, [bad.digest])
  t.equal(report?.badRuns.length, 1)
  t.ok(existsSync(store.objectPath(bad.digest)), 'without --repair nothing moves')
  const [repaired] = await fsck(store, true)
  t.equal(repaired?.quarantined.length, 2)
  t.notOk(existsSync(store.objectPath(bad.digest)), 'the corrupt object is out of the store')
  t.notOk(existsSync(rp), 'the planted record is out of the store')
  t.equal(await store.verifyObject(good.digest), true, 'the good object is untouched')
  const [again] = await fsck(store, false)
  t.same([again?.corrupt.length, again?.badRuns.length], [0, 0], 'clean afterwards')
})

t.test("listing parser keeps the encoder's own output (round trip)", async (t) => {
  const entries = [
    { path: 'a/b', digest: D, size: 1, mode: 0o644 as const },
    { path: 'c', digest: D, size: 2, mode: 0o755 as const },
  ]
  t.same(parseListing(encodeListing(entries)), entries)
})

t.test('registry: control characters in a stored record never reach the terminal', async (t) => {
  const { artifactsView, printable } = await import('../../src/harness/registry.ts')
  t.equal(printable('ok \u001b]0;pwned\u0007 \u009b31m'), 'ok ?]0;pwned? ?31m')
  const root = t.testdir({})
  const store = new LocalStore(join(root, 'store'))
  const obj = await store.putBytes(Buffer.from('x'))
  const rec = forged({ f: { ...obj, kind: 'file' } }, (r) => (r.instance = 'evil\u001b[2J\u001b]0;title\u0007'))
  const p = store.runPath(rec.fingerprint as string)
  await mkdir(dirname(p), { recursive: true })
  await writeFile(p, JSON.stringify(rec))
  const view = await artifactsView({
    pipeline: undefined as never,
    store,
    lockPath: join(root, 'none.lock'),
    instance: undefined,
    json: false,
  })
  t.ok(view.ok)
  if (view.ok) {
    t.match(view.value, /evil\?\[2J/)
    t.notMatch(view.value, /\u001b/)
  }
})

t.test('gc: a referenced listing nobody can read is one line, exit 1, and nothing is deleted', async (t) => {
  const { syncCommand } = await import('../../src/harness/sync.ts')
  const { writeLock } = await import('../../src/harness/lockfile.ts')
  const root = t.testdir({ tree: { a: 'a' }, other: 'unreferenced' })
  const store = new LocalStore(join(root, 'store'))
  const dir = await store.putDir(join(root, 'tree'))
  const other = await store.putFile(join(root, 'other'))
  const rec = makeRecord('s', { d: { ...dir, kind: 'dir' } })
  await store.deleteObject(dir.digest)
  writeLock(join(root, 'pipeline.lock'), {
    schema: 1,
    instances: { s: { stage: 's', fingerprint: rec.fingerprint, breakdown: rec.breakdown, outputs: rec.outputs } },
  })
  let err = ''
  const code = await syncCommand('gc', {
    store,
    lockPath: join(root, 'pipeline.lock'),
    dryRun: false,
    json: false,
    stdout: { write: () => true },
    stderr: { write: (s: string) => ((err += s), true) },
  })
  t.equal(code, 1)
  t.match(err, /^gc: cannot read the directory listing .* nothing was deleted/)
  t.equal(err.trim().split('\n').length, 1, 'one line')
  t.equal(await store.hasObject(other.digest), true, 'nothing deleted')
})
