/**
 * The S3 store and the tiered store (local in front of S3) against the shared store contract,
 * over real HTTP to s3rver on loopback (started here, one per file, a fresh prefix per subtest).
 * Plus what the contract cannot say: the bucket layout mirrors the local store; multipart
 * uploads (objects over the part size) round-trip; racing run-record writers on a server that
 * ignores `If-None-Match` (s3rver does) still leave one complete record; a missing bucket and
 * bad credentials are errors naming the bucket and key without the secret; the tiered store
 * back-fills its local cache from S3.
 */
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { openStore } from '../../src/harness/store/open-store.ts'
import { parseS3Spec } from '../../src/harness/store/s3-config.ts'
import { S3Store } from '../../src/harness/store/s3-store.ts'
import { TieredStore } from '../../src/harness/store/tiered-store.ts'
import type { ObjectDigest, RunRecord } from '../../src/harness/types.ts'
import { s3TestStore, startS3Server, TEST_BUCKET, TEST_CREDENTIALS, TEST_ENV } from './fixtures/s3-server.ts'
import { makeRecord, storeContract, type StoreFixture } from './store-contract.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex') as ObjectDigest
const server = await startS3Server()
t.teardown(() => server.close())
let n = 0
const freshPrefix = () => `t${++n}-${randomBytes(3).toString('hex')}`

/** Hooks acting on the bucket directly, as bit rot or a killed writer would. */
function s3Hooks(store: S3Store) {
  return {
    async corrupt(digest: ObjectDigest) {
      const key = store.objectKey(digest)
      const r = await store.client.send(new GetObjectCommand({ Bucket: TEST_BUCKET, Key: key }))
      const bytes = Buffer.from(await r.Body!.transformToByteArray())
      const at = Math.floor(bytes.length / 2)
      bytes[at] = bytes[at]! ^ 0x01
      await store.client.send(new PutObjectCommand({ Bucket: TEST_BUCKET, Key: key, Body: bytes }))
    },
    async interruptWrite(bytes: Uint8Array) {
      // what a killed writer leaves: a multipart upload with a part sent, never completed
      const key = store.objectKey(sha(bytes))
      const up = await store.client.send(new CreateMultipartUploadCommand({ Bucket: TEST_BUCKET, Key: key }))
      await store.client.send(
        new UploadPartCommand({ Bucket: TEST_BUCKET, Key: key, UploadId: up.UploadId, PartNumber: 1, Body: Buffer.from(bytes) }),
      )
    },
  }
}

storeContract(t, 's3', async (): Promise<StoreFixture> => {
  const prefix = freshPrefix()
  const store = s3TestStore(server.endpoint, prefix)
  return { store, ...s3Hooks(store), another: () => s3TestStore(server.endpoint, prefix), cleanup: async () => undefined }
})

storeContract(t, 'tiered', async (): Promise<StoreFixture> => {
  const prefix = freshPrefix()
  const dir = await mkdtemp(join(tmpdir(), 'cusp-tiered-'))
  const make = () => new TieredStore(new LocalStore(join(dir, 'cache')), s3TestStore(server.endpoint, prefix))
  const store = make()
  const remoteHooks = s3Hooks(store.remote)
  return {
    store,
    another: make,
    async corrupt(digest) {
      // bit rot in both layers: the local copy is refetched, so only a bad remote copy too is a miss
      await store.local.deleteObject(digest)
      await remoteHooks.corrupt(digest)
    },
    interruptWrite: remoteHooks.interruptWrite,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  }
})

t.test('bucket layout mirrors the local store; large objects go up in parts', async (t) => {
  const prefix = freshPrefix()
  const store = s3TestStore(server.endpoint, `${prefix}/nested`, { part_size_mb: '5' })
  const dir = t.testdir({ 'small.txt': 'hello', tree: { 'x.txt': 'x' } })
  const big = randomBytes(12 << 20)
  await writeFile(join(dir, 'big.bin'), big)
  const small = await store.putFile(join(dir, 'small.txt'))
  const large = await store.putFile(join(dir, 'big.bin'))
  t.same(large, { digest: sha(big), size: big.length })
  const tree = await store.putDir(join(dir, 'tree'))
  const rec = makeRecord('s', { out: { ...small, kind: 'file' }, big: { ...large, kind: 'file' }, tree: { ...tree, kind: 'dir' } })
  await store.putRun(rec)
  const listed = await store.client.send(new ListObjectsV2Command({ Bucket: TEST_BUCKET, Prefix: `${prefix}/` }))
  const keys = (listed.Contents ?? []).map((o) => o.Key).sort()
  const obj = (d: string) => `${prefix}/nested/objects/sha256/${d.slice(0, 2)}/${d.slice(2)}`
  t.same(
    keys,
    [
      obj(small.digest),
      obj(large.digest),
      obj(tree.digest),
      obj(sha(Buffer.from('x'))),
      `${prefix}/nested/runs/${rec.fingerprint.slice(0, 2)}/${rec.fingerprint}.json`,
    ].sort(),
  )
  const body = await store.client.send(new GetObjectCommand({ Bucket: TEST_BUCKET, Key: store.runKey(rec.fingerprint) }))
  t.same(JSON.parse(await body.Body!.transformToString()), rec, 'the run record is plain JSON')
  t.equal(await store.getFile(large.digest, join(dir, 'big.out')), true)
  t.equal(sha(await readFile(join(dir, 'big.out'))), sha(big), 'a multipart object downloads byte-identical')
  t.equal(await store.hasDir(tree.digest), true)
  await store.deleteObject(sha(Buffer.from('x')))
  t.equal(await store.hasDir(tree.digest), false, 'hasDir sees a missing member')
})

t.test('racing run-record writers on a server that ignores If-None-Match leave one complete record', async (t) => {
  const prefix = freshPrefix()
  const a = s3TestStore(server.endpoint, prefix)
  const b = s3TestStore(server.endpoint, prefix)
  const dir = t.testdir({ f: 'same bytes' })
  const put = await a.putFile(join(dir, 'f'))
  const base = makeRecord('train', { model: { ...put, kind: 'file' } })
  const variants: RunRecord[] = Array.from({ length: 6 }, (_, i) => ({ ...base, durationMs: 100 + i }))
  await Promise.all(variants.map((r, i) => (i % 2 === 0 ? a : b).putRun(r)))
  const seen = await a.getRun(base.fingerprint)
  t.ok(seen !== undefined && variants.some((v) => JSON.stringify(v) === JSON.stringify(seen)), 'exactly one of the written records, whole')
  await b.putRun({ ...base, durationMs: 999 })
  t.same(await a.getRun(base.fingerprint), seen, 'a complete record is kept (first writer wins)')
  // A damaged record is replaced by the next putRun.
  await a.client.send(new PutObjectCommand({ Bucket: TEST_BUCKET, Key: a.runKey(base.fingerprint), Body: '{"schema":1,' }))
  t.equal(await a.getRun(base.fingerprint), undefined, 'truncated JSON is a miss')
  await b.putRun(base)
  t.same(await a.getRun(base.fingerprint), base)
})

t.test('a missing bucket and bad credentials: errors name bucket and key, never the secret', async (t) => {
  const dir = t.testdir({ f: 'x' })
  const cfg = parseS3Spec(`s3://no-such-bucket/p?endpoint=${server.endpoint}`, TEST_ENV)
  if (!cfg.ok) throw new Error('config')
  const missing = new S3Store(cfg.value, TEST_ENV, { credentials: TEST_CREDENTIALS })
  await t.rejects(missing.putFile(join(dir, 'f')), {
    name: 'StoreError',
    message: /S3 bucket 'no-such-bucket' does not exist .*s3:\/\/no-such-bucket\/p\/objects\/sha256\//,
  })
  await t.rejects(missing.getRun(makeRecord('s', {}).fingerprint), { message: /no-such-bucket/ })
  await t.rejects(missing.checkBucket(), { name: 'StoreError', message: /S3 bucket 'no-such-bucket' does not exist/ })
  await s3TestStore(server.endpoint).checkBucket()

  const secret = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY'
  const env = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEKEYID0001', AWS_SECRET_ACCESS_KEY: secret }
  const good = parseS3Spec(`s3://${TEST_BUCKET}/p?endpoint=${server.endpoint}`, env)
  if (!good.ok) throw new Error('config')
  const denied = new S3Store(good.value, env, { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: secret } })
  const err = await denied.putFile(join(dir, 'f')).then(
    () => undefined,
    (e: unknown) => e as Error,
  )
  t.match(err, { name: 'StoreError', message: new RegExp(`access denied to s3://${TEST_BUCKET}/p/objects/sha256/`) })
  t.notMatch(err?.message ?? '', /wJalr|AKIAEXAMPLE/, 'neither key appears in the message')
})

t.test('openStore: s3:// opens a tiered store (embedded cache in front); bad specs are store errors', async (t) => {
  const dir = t.testdir({})
  const r = openStore(`s3://${TEST_BUCKET}/team/cache?endpoint=${server.endpoint}`, dir, TEST_ENV)
  t.ok(r.ok && r.value instanceof TieredStore)
  if (r.ok && r.value instanceof TieredStore) {
    t.equal(r.value.local.root, join(dir, 'artifacts'))
    t.same(
      [r.value.remote.config.bucket, r.value.remote.config.prefix, r.value.remote.config.forcePathStyle],
      [TEST_BUCKET, 'team/cache', true],
    )
    t.match(r.value.description, `s3://${TEST_BUCKET}/team/cache at ${server.endpoint}`)
  }
  t.equal(existsSync(join(dir, 'artifacts')), false, 'opening creates nothing')
  t.match(openStore('s3://Bad_Bucket/x', dir, {}), { ok: false, error: { reason: 'store-error', message: /bucket name/ } })
  t.match(openStore('s3://bucket/x?colour=red', dir, {}), {
    ok: false,
    error: { reason: 'store-error', message: /unknown S3 store option 'colour'/ },
  })
})

t.test('tiered: a read falls back to S3 and back-fills the local cache', async (t) => {
  const prefix = freshPrefix()
  const dir = t.testdir({ f: 'cached bytes', tree: { 'a.txt': 'a', sub: { 'b.txt': 'b' } } })
  const writer = new TieredStore(new LocalStore(join(dir, 'cache-a')), s3TestStore(server.endpoint, prefix))
  const f = await writer.putFile(join(dir, 'f'))
  const d = await writer.putDir(join(dir, 'tree'))
  const rec = makeRecord('s', { f: { ...f, kind: 'file' }, d: { ...d, kind: 'dir' } })
  await writer.putRun(rec)
  t.same(await writer.remote.getRun(rec.fingerprint), rec, 'written to S3 too')

  const reader = new TieredStore(new LocalStore(join(dir, 'cache-b')), s3TestStore(server.endpoint, prefix))
  t.equal(await reader.local.hasObject(f.digest), false)
  t.same(await reader.getRun(rec.fingerprint), rec, 'the record is found remotely')
  t.equal(await reader.hasDir(d.digest), true)
  t.equal(await reader.getFile(f.digest, join(dir, 'out', 'f')), true)
  t.equal(await readFile(join(dir, 'out', 'f'), 'utf8'), 'cached bytes')
  t.equal(await reader.local.hasObject(f.digest), true, 'back-filled locally')
  t.equal(await reader.getDir(d.digest, join(dir, 'out', 'tree')), true)
  t.equal(await readFile(join(dir, 'out', 'tree', 'sub', 'b.txt'), 'utf8'), 'b')
  t.equal(await reader.local.hasObject(sha(Buffer.from('b'))), true, 'dir members back-filled too')
  await reader.remote.deleteObject(f.digest)
  t.equal(await reader.getFile(f.digest, join(dir, 'out', 'f2')), true, 'served locally once back-filled')
})
