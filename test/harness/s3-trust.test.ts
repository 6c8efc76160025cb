/**
 * The S3 store's trust boundary, against s3rver on loopback: records planted in the bucket are
 * refused as they are by the local store, push re-hashes a remote copy before calling it present
 * (and overwrites a damaged one), one bad read never deletes a shared object, records can be
 * signed, and fsck finds and quarantines a tampered object.
 */
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { fsck } from '../../src/harness/store/fsck.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { signingFromEnv } from '../../src/harness/store/record-trust.ts'
import { S3Store } from '../../src/harness/store/s3-store.ts'
import { discard } from '../../src/harness/store/s3-transfer.ts'
import { TieredStore } from '../../src/harness/store/tiered-store.ts'
import { pushLock } from '../../src/harness/sync.ts'
import { execute, type RunOptions } from '../../src/harness/run-pipeline.ts'
import { Project } from './fixtures/counting-project.ts'
import type { LockFile, ObjectDigest } from '../../src/harness/types.ts'
import { s3TestStore, startS3Server, TEST_BUCKET } from './fixtures/s3-server.ts'
import { makeRecord } from './store-contract.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex') as ObjectDigest
const server = await startS3Server()
t.teardown(() => server.close())
let n = 0
const prefix = () => `trust${++n}-${randomBytes(3).toString('hex')}`

async function putRaw(store: S3Store, key: string, body: string | Buffer): Promise<void> {
  await store.client.send(new PutObjectCommand({ Bucket: TEST_BUCKET, Key: key, Body: body }))
}

async function getRaw(store: S3Store, key: string): Promise<Buffer> {
  const r = await store.client.send(new GetObjectCommand({ Bucket: TEST_BUCKET, Key: key }))
  return Buffer.from(await r.Body!.transformToByteArray())
}

t.test('a record planted in the bucket with a climbing output name is a miss (S3 and tiered)', async (t) => {
  const p = prefix()
  const remote = s3TestStore(server.endpoint, p)
  const rec = makeRecord('s', { '../../../../stages/source': { digest: 'ab'.repeat(32) as ObjectDigest, size: 1, kind: 'dir' } })
  await putRaw(remote, remote.runKey(rec.fingerprint), JSON.stringify(rec))
  t.equal(await remote.getRun(rec.fingerprint), undefined)
  const tiered = new TieredStore(new LocalStore(join(t.testdir({}), 'cache')), remote)
  t.equal(await tiered.getRun(rec.fingerprint), undefined)
})

t.test('an oversized record in the bucket is a miss, not read whole', async (t) => {
  const remote = s3TestStore(server.endpoint, prefix())
  const rec = makeRecord('s', {})
  await putRaw(remote, remote.runKey(rec.fingerprint), JSON.stringify({ ...rec, pad: 'x'.repeat(2 << 20) }))
  t.equal(await remote.getRun(rec.fingerprint), undefined)
})

t.test('push re-hashes the remote copy: a damaged copy of the right size is overwritten, not "already there"', async (t) => {
  const dir = t.testdir({ src: {} })
  const local = new LocalStore(join(dir, 'cache'))
  const bytes = randomBytes(50_000)
  await writeFile(join(dir, 'src', 'f'), bytes)
  const put = await local.putFile(join(dir, 'src', 'f'))
  const rec = makeRecord('s', { f: { ...put, kind: 'file' } })
  await local.putRun(rec)
  const lock: LockFile = {
    schema: 1,
    instances: { s: { stage: 's', fingerprint: rec.fingerprint, breakdown: rec.breakdown, outputs: rec.outputs } },
  }
  const remote = s3TestStore(server.endpoint, prefix())
  const evil = Buffer.from(bytes)
  evil[100] = evil[100]! ^ 1
  await putRaw(remote, remote.objectKey(put.digest), evil)
  const report = await pushLock(lock, new TieredStore(local, remote))
  t.same(report.failures, [])
  t.equal(report.objects.present, 0, 'the damaged copy was not counted as present')
  t.equal(report.objects.moved, 1, 'the good copy was uploaded over it')
  t.equal(sha(await getRaw(remote, remote.objectKey(put.digest))), put.digest, 'the remote copy now hashes to its name')
  const again = await pushLock(lock, new TieredStore(local, remote))
  t.match(again, { objects: { present: 1, moved: 0 } }, 'and a second push finds it present')
})

t.test('--force and --verify re-hash the bucket copy of what they re-store: a damaged copy of the right size is replaced', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  const at = prefix()
  // A new store per run, as per CLI invocation: --force / --verify switch re-hashing on for theirs.
  const run = async (extra: Partial<RunOptions> = {}) => {
    const r = await execute({
      pipeline: p.pipeline(),
      store: new TieredStore(new LocalStore(p.storeRoot), s3TestStore(server.endpoint, at)),
      lockPath: p.lockPath,
      jobs: 2,
      processEnv: { ...process.env, TOY_COUNTER_DIR: p.counterDir, CUSP_STAGE_ENV: 'TOY_COUNTER_DIR' },
      ...extra,
    })
    if (!r.ok) throw new Error(JSON.stringify(r.error))
    t.ok(r.value.ok, 'the run succeeds')
  }
  const remote = s3TestStore(server.endpoint, at)
  const damage = async (instance: string, output: string): Promise<string> => {
    const digest = p.lock().instances[instance]!.outputs[output]!.digest
    const bad = await getRaw(remote, remote.objectKey(digest as ObjectDigest))
    bad[0] = bad[0]! ^ 1
    await putRaw(remote, remote.objectKey(digest as ObjectDigest), bad)
    return digest
  }
  const remoteSha = async (digest: string) => sha(await getRaw(remote, remote.objectKey(digest as ObjectDigest)))
  await run()

  const source = await damage('source', 'data.txt')
  await run({ targets: ['source'] })
  t.not(await remoteSha(source), source, 'a plain rerun (fresh) does not download anything')
  await run({ targets: ['source'], force: true })
  t.equal(await remoteSha(source), source, '--force: the bucket copy hashes to its name again')

  const side = await damage('side', 'side.txt')
  await run({ targets: ['side'], verify: true })
  t.equal(await remoteSha(side), side, '--verify: the bucket copy hashes to its name again')
})

t.test('one mismatching read never deletes a shared object: discard re-reads it first', async (t) => {
  const remote = s3TestStore(server.endpoint, prefix())
  const good = await remote.putBytes(Buffer.from('a perfectly good shared object'))
  t.equal(await discard(remote, good.digest, undefined), false, 'the second read verifies: not deleted')
  t.equal(await remote.verifyObject(good.digest), true, 'still there and intact')
  await putRaw(remote, remote.objectKey(good.digest), 'rotten')
  t.equal(await remote.verifyObject(good.digest), false, 'a copy corrupt on every read is refused')
  t.equal(await remote.hasObject(good.digest), false, 'and discarded after the second read agreed')
})

t.test('signed records over S3: a record from another key is a miss with one warning', async (t) => {
  const p = prefix()
  const mk = (key: string, warn: (m: string) => void) => {
    const s = signingFromEnv({ CUSP_RECORD_KEY: key })
    if (!s.ok) throw new Error(s.message)
    const plain = s3TestStore(server.endpoint, p)
    return new S3Store(plain.config, {}, { credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }, { ...s.trust, warn })
  }
  const writer = mk('team-key-0123456789', () => undefined)
  const obj = await writer.putBytes(Buffer.from('output'))
  const rec = makeRecord('s', { f: { ...obj, kind: 'file' } })
  await writer.putRun(rec)
  t.same(await writer.getRun(rec.fingerprint), rec, 'the signer reads its record back')
  const warnings: string[] = []
  t.equal(await mk('another-key-9876543210', (m) => void warnings.push(m)).getRun(rec.fingerprint), undefined)
  t.equal(warnings.length, 1)
  const unsignedReader = s3TestStore(server.endpoint, p)
  t.same(await unsignedReader.getRun(rec.fingerprint), rec, 'a reader without keys still reads it (signatures are opt-in)')
})

t.test('fsck over S3 finds a tampered object and --repair quarantines it', async (t) => {
  const remote = s3TestStore(server.endpoint, prefix())
  const good = await remote.putBytes(Buffer.from('good'))
  const bad = await remote.putBytes(Buffer.from('will rot'))
  await putRaw(remote, remote.objectKey(bad.digest), 'has rot')
  const [report] = await fsck(remote, false)
  t.same(report?.corrupt, [bad.digest])
  t.equal(await remote.hasObject(bad.digest), true, 'without --repair nothing moves')
  const [repaired] = await fsck(remote, true)
  t.equal(repaired?.quarantined.length, 1)
  t.equal(await remote.hasObject(bad.digest), false, 'moved out of objects/')
  t.equal((await getRaw(remote, repaired!.quarantined[0]!)).toString(), 'has rot', 'kept in quarantine/')
  t.equal(await remote.verifyObject(good.digest), true, 'the good object is untouched')
})

t.test('fsck --repair over S3 with another record key quarantines no record; a corrupt object still is', async (t) => {
  const p = prefix()
  const mk = (key: string) => {
    const s = signingFromEnv({ CUSP_RECORD_KEY: key })
    if (!s.ok) throw new Error(s.message)
    const plain = s3TestStore(server.endpoint, p)
    const creds = { credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }
    return new S3Store(plain.config, {}, creds, { ...s.trust, warn: () => undefined })
  }
  const writer = mk('key-a-0123456789abcdef')
  const recs = []
  for (const eta of [0.1, 0.2, 0.3]) {
    const obj = await writer.putBytes(Buffer.from(`output ${eta}`))
    const rec = makeRecord('s', { f: { ...obj, kind: 'file' } }, eta)
    await writer.putRun(rec)
    recs.push(rec)
  }
  const rot = recs[0]!.outputs.f!.digest
  await putRaw(writer, writer.objectKey(rot), 'has rot')
  const wrong = mk('key-b-fedcba9876543210')
  const [report] = await fsck(wrong, true)
  t.equal(report?.badRuns.filter((b) => b.signature === true).length, 3, 'every record fails only its signature')
  t.equal(report?.verified, 0)
  t.same(report?.kept, recs.map((r) => r.fingerprint).sort(), 'all left in place')
  t.equal(report?.quarantined.length, 1, 'only the corrupt object moved')
  for (const r of recs) t.same(await writer.getRun(r.fingerprint), r, 'the key holder still reads every record')
  t.equal(await writer.hasObject(rot), false, 'the corrupt object is quarantined')

  const [right] = await fsck(writer, true)
  t.equal(right?.badRuns.length, 0)
  t.equal(right?.verified, 3)
  const [forced] = await fsck(wrong, true, { quarantineUnsigned: true })
  t.equal(forced?.quarantined.length, 3, '--quarantine-unsigned moves them')
  t.equal(await writer.getRun(recs[1]!.fingerprint), undefined)
})

t.test('a dedup hit on an old object refreshes its age with a server-side copy; a recent one is left alone', async (t) => {
  const { refreshKey } = await import('../../src/harness/store/s3-admin.ts')
  const remote = s3TestStore(server.endpoint, prefix())
  const put = await remote.putBytes(Buffer.from('shared output'))
  const key = remote.objectKey(put.digest)
  const refreshed = await refreshKey(remote, key, new Date(0), 60_000) // as a dedup hit does for an object older than the threshold
  t.ok(refreshed instanceof Date, 'the server made the copy and reported a new last-modified time')
  t.equal(await remote.verifyObject(put.digest), true, 'the bytes are unchanged')
  t.equal(await refreshKey(remote, key, new Date(), 60_000), undefined, 'a recently used object is not copied again')
})
