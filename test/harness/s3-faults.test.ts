/**
 * The S3 store under faults, over real HTTP on loopback:
 * - the server (a child process) is SIGKILLed in the middle of a multipart push: no visible
 *   object or run record on the restarted server, the local store intact, and the next push
 *   completes (then a pull into an empty cache is byte-identical);
 * - a proxy answers a third of all requests with 500 InternalError / 503 SlowDown: push and pull
 *   retry and succeed, and every object PUT carried its SHA-256; downloads cut off mid-body are
 *   retried;
 * - a server that enforces `If-None-Match: *` (the proxy): racing run-record writers, exactly
 *   one PUT lands and the others find its record (no overwrite);
 * - an object tampered with on the server is detected on pull and not restored.
 */
import t, { type Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PutObjectCommand } from '@aws-sdk/client-s3'
import { writeLock } from '../../src/harness/lockfile.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { TieredStore } from '../../src/harness/store/tiered-store.ts'
import { pullLock, pushLock, syncCommand } from '../../src/harness/sync.ts'
import type { LockFile, ObjectDigest, RunRecord } from '../../src/harness/types.ts'
import { startFaultProxy } from './fixtures/s3-fault-proxy.ts'
import { s3TestStore, startS3Server, startS3ServerChild, TEST_BUCKET } from './fixtures/s3-server.ts'
import { makeRecord } from './store-contract.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex') as ObjectDigest

/** A local store holding one entry (a big file + a small dir) and the lock naming it. */
async function localEntry(dir: string, bigBytes: number): Promise<{ local: LocalStore; lock: LockFile; rec: RunRecord; big: Buffer }> {
  const local = new LocalStore(join(dir, 'cache'))
  const big = randomBytes(bigBytes)
  await writeFile(join(dir, 'big.bin'), big)
  await mkdir(join(dir, 'tree', 'sub'), { recursive: true })
  await writeFile(join(dir, 'tree', 'a.txt'), 'alpha')
  await writeFile(join(dir, 'tree', 'sub', 'b.txt'), randomBytes(1000))
  const file = await local.putFile(join(dir, 'big.bin'))
  const tree = await local.putDir(join(dir, 'tree'))
  const rec = makeRecord(`train@eta=0.${bigBytes % 7}`, { ckpt: { ...file, kind: 'file' }, parts: { ...tree, kind: 'dir' } })
  await local.putRun(rec)
  const lock: LockFile = {
    schema: 1,
    instances: { [rec.instance]: { stage: rec.stage, fingerprint: rec.fingerprint, breakdown: rec.breakdown, outputs: rec.outputs } },
  }
  return { local, lock, rec, big }
}

/** Every object in a local store re-hashes to its name, and the record is still there. */
async function localIntact(t: Test, local: LocalStore, rec: RunRecord, big: Buffer): Promise<void> {
  t.same(await local.getRun(rec.fingerprint), rec, 'local run record intact')
  t.equal(await local.verifyObject(sha(big)), true, 'local checkpoint object intact')
  t.equal(await local.verifyObject(rec.outputs.parts!.digest), true, 'local listing intact')
}

t.test('server killed mid multipart push: nothing visible, local intact, next push completes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-s3-kill-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { local, lock, rec, big } = await localEntry(dir, 24 << 20)
  let srv = await startS3ServerChild(join(dir, 'server'))
  t.teardown(() => srv.kill())
  const remote = () => s3TestStore(srv.endpoint, 'team', { part_size_mb: '5', max_attempts: '2' })
  let killed = false
  const first = await pushLock(lock, new TieredStore(local, remote()), (p) => {
    // lib-storage reports progress after each part lands: kill once two parts (10 MB) are in
    if (!killed && p.bytesDone >= 10 << 20 && p.bytesDone < p.bytesTotal) {
      killed = true
      void srv.kill()
    }
  })
  t.ok(killed, 'the server was killed mid-upload')
  t.ok(first.failures.length > 0, `the push reported the failure: ${first.failures[0]?.slice(0, 120)}`)
  t.equal(first.runs.moved, 0, 'no run record published')

  srv = await startS3ServerChild(join(dir, 'server'), srv.port)
  const after = remote()
  t.equal(await after.getRun(rec.fingerprint), undefined, 'no visible run record on the restarted server')
  t.equal(await after.hasObject(sha(big)), false, 'no visible partial checkpoint object')
  t.same(await after.listRuns(), [])
  await localIntact(t, local, rec, big)

  const second = await pushLock(lock, new TieredStore(local, after))
  t.same(second.failures, [], 'the next push completes')
  t.equal(second.runs.moved, 1)
  t.same(await after.getRun(rec.fingerprint), rec, 'the entry is now visible, complete')

  const fresh = new TieredStore(new LocalStore(join(dir, 'cache2')), remote())
  const pulled = await pullLock(lock, fresh)
  t.same(pulled.failures, [])
  t.equal(await fresh.getFile(sha(big), join(dir, 'restored.bin')), true)
  t.equal(sha(await readFile(join(dir, 'restored.bin'))), sha(big), 'pulled checkpoint byte-identical')
})

t.test('injected 500/503 responses are retried with backoff; push and pull succeed', async (t) => {
  const server = await startS3Server()
  t.teardown(() => server.close())
  const proxy = await startFaultProxy(server.endpoint, { fail: (k) => k % 3 === 0 })
  t.teardown(() => proxy.close())
  const dir = t.testdir({})
  const { local, lock, rec, big } = await localEntry(dir, 12 << 20)
  const viaProxy = () => s3TestStore(proxy.endpoint, 'flaky', { part_size_mb: '5' })
  const pushed = await pushLock(lock, new TieredStore(local, viaProxy()))
  t.same(pushed.failures, [], 'push succeeded')
  t.equal(pushed.runs.moved, 1)
  t.equal(pushed.objects.moved, 4, 'checkpoint, listing and two files')
  const fresh = new TieredStore(new LocalStore(join(dir, 'cache2')), viaProxy())
  const pulled = await pullLock(lock, fresh)
  t.same(pulled.failures, [], 'pull succeeded')
  t.equal(pulled.runs.moved, 1)
  t.same(await fresh.local.getRun(rec.fingerprint), rec)
  t.equal(await fresh.local.verifyObject(sha(big)), true, 'pulled checkpoint verifies')
  t.ok(
    proxy.injected[500] > 0 && proxy.injected[503] > 0,
    `faults were injected (500: ${proxy.injected[500]}, 503: ${proxy.injected[503]})`,
  )
  const objectPuts = proxy.seen.filter(
    (r) => r.method === 'PUT' && r.path.includes('/objects/sha256/') && !/uploads=|uploadId=/.test(r.path) && r.status === 200,
  )
  const partPuts = proxy.seen.filter((r) => r.method === 'PUT' && /partNumber=/.test(r.path) && r.status === 200)
  t.ok(objectPuts.length >= 3 && partPuts.length >= 3, `single and multipart uploads seen (${objectPuts.length}, ${partPuts.length} parts)`)
  t.ok(
    [...objectPuts, ...partPuts].every((r) => r.checksum !== undefined),
    'every object and part PUT carried a SHA-256 checksum',
  )
})

t.test('downloads cut off mid-body are retried and still verified', async (t) => {
  const server = await startS3Server()
  t.teardown(() => server.close())
  const once = new Set<string>()
  const proxy = await startFaultProxy(server.endpoint, {
    cut: (_k, req) => req.method === 'GET' && !once.has(req.url!) && once.add(req.url!) !== undefined,
  })
  t.teardown(() => proxy.close())
  const dir = t.testdir({})
  const { local, lock, big } = await localEntry(dir, 3 << 20)
  t.same((await pushLock(lock, new TieredStore(local, s3TestStore(server.endpoint, 'cut')))).failures, [])
  const fresh = new TieredStore(new LocalStore(join(dir, 'cache2')), s3TestStore(proxy.endpoint, 'cut'))
  const pulled = await pullLock(lock, fresh)
  t.same(pulled.failures, [], 'pull succeeded')
  t.ok(proxy.cuts >= 1, `the checkpoint download was cut off (${proxy.cuts})`)
  t.equal(await fresh.local.verifyObject(sha(big)), true, 'the checkpoint arrived whole')
})

t.test('where the server enforces If-None-Match, racing record writers: one PUT lands, none overwrites', async (t) => {
  const server = await startS3Server()
  t.teardown(() => server.close())
  const proxy = await startFaultProxy(server.endpoint, { enforceIfNoneMatch: true })
  t.teardown(() => proxy.close())
  const dir = t.testdir({ f: 'weights' })
  const writers = [0, 1, 2, 3].map(() => s3TestStore(proxy.endpoint, 'race'))
  const put = await writers[0]!.putFile(join(dir, 'f'))
  const base = makeRecord('train', { model: { ...put, kind: 'file' } })
  const variants = writers.map((_, i) => ({ ...base, durationMs: 10 + i }))
  await Promise.all(writers.map((w, i) => w.putRun(variants[i]!)))
  const landed = proxy.seen.filter((r) => r.method === 'PUT' && r.path.includes('/runs/') && r.status === 200)
  t.equal(landed.length, 1, 'exactly one record PUT reached the store')
  t.ok(proxy.preconditionFailed >= 1, `the others were refused with 412 (${proxy.preconditionFailed})`)
  const winner = JSON.parse(landed[0]!.body!.toString('utf8')) as RunRecord
  t.same(await writers[3]!.getRun(base.fingerprint), winner, 'the stored record is the one that landed first')
})

t.test('a tampered object on the server is detected on pull and not restored', async (t) => {
  const server = await startS3Server()
  t.teardown(() => server.close())
  const dir = t.testdir({})
  const { local, lock, rec, big } = await localEntry(dir, 3 << 20)
  const remote = s3TestStore(server.endpoint, 'tamper')
  t.same((await pushLock(lock, new TieredStore(local, remote))).failures, [])
  const evil = Buffer.from(big)
  evil[12345] = evil[12345]! ^ 0xff
  await remote.client.send(new PutObjectCommand({ Bucket: TEST_BUCKET, Key: remote.objectKey(sha(big)), Body: evil }))

  const fresh = new TieredStore(new LocalStore(join(dir, 'cache2')), s3TestStore(server.endpoint, 'tamper'))
  const lockPath = join(dir, 'pipeline.lock')
  const w = writeLock(lockPath, lock)
  t.ok(w.ok)
  let out = ''
  let err = ''
  const code = await syncCommand('pull', {
    store: fresh,
    lockPath,
    dryRun: false,
    json: false,
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  })
  t.equal(code, 1, 'pull exits 1')
  t.match(err, new RegExp(`${rec.instance}/ckpt: object ${sha(big)} is missing on the remote or failed its SHA-256 check; not restored`))
  t.match(out, /pulled 3 objects/, 'the intact objects were pulled')
  t.equal(await fresh.local.hasObject(sha(big)), false, 'the tampered object is not in the local store')
  t.equal(await fresh.local.getRun(rec.fingerprint), undefined, 'no run record for the incomplete entry')
  t.equal(await fresh.getFile(sha(big), join(dir, 'x')), false, 'and it cannot be restored')
  t.notOk(existsSync(join(dir, 'x')))
  t.same((await pushLock(lock, new TieredStore(local, remote))).failures, [], 'a push from a good copy repairs the remote')
  t.same((await pullLock(lock, fresh)).failures, [], 'then the pull completes')
})
