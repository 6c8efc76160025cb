/**
 * The contract every `ArtifactStore` must meet, as one suite each implementation runs
 * (`storeContract(t, 'local', make)`; the S3 store will run the same). It checks behaviour only
 * through the interface, plus three hooks the fixture supplies: `corrupt` (flip one stored byte,
 * as bit rot would), `interruptWrite` (leave what a writer killed mid-upload leaves) and
 * `another` (a second, independent client of the same storage, i.e. another writer).
 *
 * Decided here for every store: a miss is `false`/`undefined`, never a throw (also for a
 * malformed digest); `putRun` of a record whose objects are missing *rejects* (throws a
 * `StoreError` naming them) and publishes nothing; a corrupt object is reported as a miss by
 * `getFile`/`getDir` and is gone afterwards; a failed restore leaves `dest` absent.
 */
import type { Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { computeFingerprint } from '../../src/harness/fingerprint.ts'
import type { ArtifactStore, FingerprintBreakdown, ObjectDigest, RunRecord, StoredOutput } from '../../src/harness/types.ts'

export interface StoreFixture {
  store: ArtifactStore
  /** Flip one byte of the stored object `digest` in place. */
  corrupt(digest: ObjectDigest): Promise<void>
  /** Leave a partial write of `bytes` (e.g. the first half) as a writer killed mid-write would. */
  interruptWrite(bytes: Uint8Array): Promise<void>
  /** A second client of the same storage, as another process would open it. */
  another(): ArtifactStore
  cleanup(): Promise<void>
}

type TapTest = Test

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex') as ObjectDigest

/** A run record whose fingerprint really is the hash of its breakdown. */
export function makeRecord(instance: string, outputs: Record<string, StoredOutput>, eta = 0.1): RunRecord {
  const breakdown: FingerprintBreakdown = {
    stage: instance.split('@')[0]!,
    code: '0'.repeat(64),
    params: { eta },
    inputs: {},
    upstream: {},
    env: { backend: 'none', versions: {} },
  }
  const { fingerprint } = computeFingerprint(breakdown)
  return {
    schema: 1,
    fingerprint,
    instance,
    stage: breakdown.stage,
    breakdown,
    outputs,
    durationMs: 12,
    finishedAt: '2026-11-28T18:00:00.000Z',
  }
}

/** Every file under `dir` as `relative path -> [bytes hex sha, executable]`. */
async function snapshot(dir: string, prefix = ''): Promise<Record<string, [string, boolean]>> {
  const out: Record<string, [string, boolean]> = {}
  for (const name of (await readdir(dir)).sort()) {
    const abs = join(dir, name)
    const rel = prefix === '' ? name : `${prefix}/${name}`
    const st = await stat(abs)
    if (st.isDirectory()) Object.assign(out, await snapshot(abs, rel))
    else out[rel] = [sha(await readFile(abs)), (st.mode & 0o100) !== 0]
  }
  return out
}

async function makeTree(root: string): Promise<number> {
  const files: Record<string, Uint8Array> = {
    'a.txt': Buffer.from('alpha\n'),
    empty: new Uint8Array(),
    'sub/deeper/blob.bin': randomBytes(300_000),
    'sub/b.txt': Buffer.from('beta\n'),
    'sub/same-as-a.txt': Buffer.from('alpha\n'),
  }
  for (const [rel, bytes] of Object.entries(files)) {
    await mkdir(join(root, rel, '..'), { recursive: true })
    await writeFile(join(root, rel), bytes)
  }
  await writeFile(join(root, 'run.sh'), '#!/bin/sh\necho hi\n')
  await chmod(join(root, 'run.sh'), 0o755)
  await mkdir(join(root, 'empty-dir'))
  return Object.values(files).reduce((n, b) => n + b.length, 0) + '#!/bin/sh\necho hi\n'.length
}

/** Run the shared contract against the store `make` builds (a fresh, empty store per subtest). */
export function storeContract(t: TapTest, name: string, make: () => Promise<StoreFixture>): void {
  const withStore = (title: string, body: (t: TapTest, f: StoreFixture, scratch: string) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const f = await make()
      t.teardown(() => f.cleanup())
      await body(t, f, t.testdir({}))
    })

  withStore('file round trip is byte-identical; put is idempotent', async (t, { store }, scratch) => {
    for (const bytes of [randomBytes(2_500_000), Buffer.from('small'), new Uint8Array()]) {
      const src = join(scratch, `src-${bytes.length}`)
      await writeFile(src, bytes)
      const put = await store.putFile(src)
      t.same(put, { digest: sha(bytes), size: bytes.length }, 'digest is the sha256 of the bytes')
      t.same(await store.putFile(src), put, 'second put: same answer')
      t.equal(await store.hasObject(put.digest), true)
      const dest = join(scratch, 'out', 'nested', `copy-${bytes.length}`)
      t.equal(await store.getFile(put.digest, dest), true)
      t.equal(sha(await readFile(dest)), put.digest, 'restored bytes identical')
      t.equal(await store.getFile(put.digest, dest), true, 'restoring over an existing file replaces it')
    }
  })

  withStore('dir round trip: same tree, same digest, executable bit kept', async (t, { store }, scratch) => {
    const total = await makeTree(join(scratch, 'tree'))
    const put = await store.putDir(join(scratch, 'tree'))
    t.match(put.digest, /^[0-9a-f]{64}$/)
    t.equal(put.size, total, 'size is the total of the files')
    await makeTree(join(scratch, 'tree2'))
    await writeFile(join(scratch, 'tree2/sub/deeper/blob.bin'), await readFile(join(scratch, 'tree/sub/deeper/blob.bin')))
    t.same(await store.putDir(join(scratch, 'tree2')), put, 'an identical tree elsewhere has the same digest')
    t.equal(await store.getDir(put.digest, join(scratch, 'restored')), true)
    const want = await snapshot(join(scratch, 'tree'))
    t.same(await snapshot(join(scratch, 'restored')), want, 'every file, byte and executable bit restored')
    t.equal(want['run.sh']![1], true)
    t.equal(await store.getDir(put.digest, join(scratch, 'restored')), true, 'restoring over an existing tree replaces it')
    t.same(await snapshot(join(scratch, 'restored')), want)
    const other = await store.putFile(join(scratch, 'tree/a.txt'))
    t.equal(await store.getDir(other.digest, join(scratch, 'not-a-dir')), false, 'a file object is not a directory')
    t.equal(existsSync(join(scratch, 'not-a-dir')), false)
  })

  withStore('a miss is false/undefined, never a throw', async (t, { store }, scratch) => {
    const absent = sha(Buffer.from('never stored'))
    t.equal(await store.hasObject(absent), false)
    t.equal(await store.getFile(absent, join(scratch, 'x')), false)
    t.equal(await store.getDir(absent, join(scratch, 'y')), false)
    t.equal(existsSync(join(scratch, 'x')) || existsSync(join(scratch, 'y')), false, 'nothing created on a miss')
    t.equal(await store.getRun(makeRecord('s', {}).fingerprint), undefined)
    for (const bad of ['xyz', 'A'.repeat(64), '../../etc/passwd', '']) {
      t.equal(await store.hasObject(bad as ObjectDigest), false, `malformed digest '${bad}'`)
      t.equal(await store.getFile(bad as ObjectDigest, join(scratch, 'z')), false)
      t.equal(await store.getRun(bad as RunRecord['fingerprint']), undefined)
    }
    await store.deleteObject(absent)
    t.same(await store.listRuns(), [])
  })

  withStore('a corrupt object is detected on get, discarded, and can be put again', async (t, f, scratch) => {
    const { store } = f
    const bytes = randomBytes(200_000)
    await writeFile(join(scratch, 'src'), bytes)
    const put = await store.putFile(join(scratch, 'src'))
    await f.corrupt(put.digest)
    t.equal(await store.getFile(put.digest, join(scratch, 'out')), false, 'mismatch reported as a miss')
    t.equal(existsSync(join(scratch, 'out')), false, 'no partial or corrupt restore left')
    t.equal(await store.hasObject(put.digest), false, 'the corrupt object is gone')
    t.same(await store.putFile(join(scratch, 'src')), put)
    t.equal(await store.getFile(put.digest, join(scratch, 'out')), true)
    t.equal(sha(await readFile(join(scratch, 'out'))), put.digest)

    await makeTree(join(scratch, 'tree'))
    const dir = await store.putDir(join(scratch, 'tree'))
    await f.corrupt(sha(await readFile(join(scratch, 'tree/sub/b.txt'))))
    t.equal(await store.getDir(dir.digest, join(scratch, 'restored')), false, 'a corrupt member fails the dir')
    t.equal(existsSync(join(scratch, 'restored')), false, 'and leaves no partial tree')
    await f.corrupt(dir.digest)
    t.equal(await store.getDir(dir.digest, join(scratch, 'restored')), false, 'a corrupt listing fails the dir')
    t.equal(await store.hasObject(dir.digest), false)
  })

  withStore('a run record is visible only after putRun, and listed', async (t, f, scratch) => {
    const { store } = f
    await writeFile(join(scratch, 'model'), 'weights')
    await makeTree(join(scratch, 'ckpt'))
    const file = await store.putFile(join(scratch, 'model'))
    const dir = await store.putDir(join(scratch, 'ckpt'))
    const rec = makeRecord('train@eta=0.1', { model: { ...file, kind: 'file' }, ckpt: { ...dir, kind: 'dir' } })
    t.equal(await store.getRun(rec.fingerprint), undefined)
    await store.putRun(rec)
    t.same(await store.getRun(rec.fingerprint), rec)
    const rec2 = makeRecord('train@eta=0.2', { model: { ...file, kind: 'file' } }, 0.2)
    await store.putRun(rec2)
    await store.putRun(rec2)
    const listed = await store.listRuns()
    t.same(listed.map((r) => r.fingerprint).sort(), [rec.fingerprint, rec2.fingerprint].sort())
    t.same(await f.another().getRun(rec.fingerprint), rec, 'visible to another client')
  })

  withStore('putRun with missing objects rejects and publishes nothing', async (t, { store }, scratch) => {
    const absent = sha(Buffer.from('not stored'))
    const rec = makeRecord('s', { out: { digest: absent, size: 10, kind: 'file' } })
    await t.rejects(store.putRun(rec), { name: 'StoreError', message: new RegExp(absent) })
    t.equal(await store.getRun(rec.fingerprint), undefined)
    await makeTree(join(scratch, 'tree'))
    const dir = await store.putDir(join(scratch, 'tree'))
    const member = sha(Buffer.from('beta\n'))
    await store.deleteObject(member)
    const rec2 = makeRecord('s', { out: { ...dir, kind: 'dir' } }, 2)
    await t.rejects(store.putRun(rec2), { message: /sub\/b\.txt/ }, 'a missing file of a dir output is named')
    t.equal(await store.getRun(rec2.fingerprint), undefined)
    const forged = { ...makeRecord('s', {}), fingerprint: 'f'.repeat(64) } as RunRecord
    await t.rejects(store.putRun(forged), { message: /not the hash of its breakdown/ }, 'a forged fingerprint is refused')
    t.same(await store.listRuns(), [])
  })

  withStore('concurrent puts of the same object by two writers both succeed', async (t, f, scratch) => {
    const bytes = randomBytes(3_000_000)
    await writeFile(join(scratch, 'a'), bytes)
    await writeFile(join(scratch, 'b'), bytes)
    const other = f.another()
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all([
        f.store.putFile(join(scratch, 'a')),
        other.putFile(join(scratch, 'b')),
        f.store.putFile(join(scratch, 'b')),
      ])
      for (const r of results) t.same(r, { digest: sha(bytes), size: bytes.length })
    }
    t.equal(await other.getFile(sha(bytes), join(scratch, 'c')), true, 'the object is intact')
    t.equal(sha(await readFile(join(scratch, 'c'))), sha(bytes))
    await makeTree(join(scratch, 'tree'))
    const [d1, d2] = await Promise.all([f.store.putDir(join(scratch, 'tree')), other.putDir(join(scratch, 'tree'))])
    t.same(d1, d2)
    t.equal(await f.store.getDir(d1.digest, join(scratch, 'tree-out')), true)
  })

  withStore('an interrupted write is invisible and does not break later puts', async (t, f, scratch) => {
    const bytes = randomBytes(1_000_000)
    await f.interruptWrite(bytes.subarray(0, 400_000))
    await f.interruptWrite(bytes)
    t.equal(await f.store.hasObject(sha(bytes)), false, 'not visible')
    t.equal(await f.store.hasObject(sha(bytes.subarray(0, 400_000))), false, 'the partial prefix is not visible either')
    t.equal(await f.store.getFile(sha(bytes), join(scratch, 'x')), false)
    await writeFile(join(scratch, 'src'), bytes)
    t.same(await f.store.putFile(join(scratch, 'src')), { digest: sha(bytes), size: bytes.length })
    t.equal(await f.store.getFile(sha(bytes), join(scratch, 'x')), true)
    t.equal(sha(await readFile(join(scratch, 'x'))), sha(bytes))
    t.same(await f.store.listRuns(), [])
  })

  withStore('deleteObject removes; missing is fine', async (t, { store }, scratch) => {
    await writeFile(join(scratch, 'src'), 'to delete')
    const put = await store.putFile(join(scratch, 'src'))
    await store.deleteObject(put.digest)
    t.equal(await store.hasObject(put.digest), false)
    await store.deleteObject(put.digest)
    t.same(await store.putFile(join(scratch, 'src')), put, 'can be stored again')
  })
}
