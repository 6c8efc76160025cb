/**
 * Garbage collection against a lock, on the S3 store (s3rver on loopback) and the local store:
 * the plan lists exactly the run records and objects the lock does not reference (a directory
 * output's files count as referenced); applying it deletes records before objects, keeps every
 * referenced entry complete, spares objects younger than the grace period, and a referenced
 * listing that cannot be read stops gc before anything is deleted.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3'
import { parseListing } from '../../src/harness/store/dir-listing.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import type { S3Store } from '../../src/harness/store/s3-store.ts'
import { gcApply, gcLayers, gcPlan } from '../../src/harness/sync.ts'
import type { ArtifactStore, LockFile, ObjectDigest, RunRecord } from '../../src/harness/types.ts'
import { s3TestStore, startS3Server, TEST_BUCKET } from './fixtures/s3-server.ts'
import { makeRecord } from './store-contract.ts'

const server = await startS3Server()
t.teardown(() => server.close())

const lockOf = (...recs: RunRecord[]): LockFile => ({
  schema: 1,
  instances: Object.fromEntries(
    recs.map((r) => [r.instance, { stage: r.stage, fingerprint: r.fingerprint, breakdown: r.breakdown, outputs: r.outputs }]),
  ),
})

/** Two entries in `store`: `keep` (a file + a dir) and `drop` (a file of its own + the shared file). */
async function twoEntries(store: ArtifactStore, dir: string) {
  await mkdir(join(dir, 'tree'), { recursive: true })
  await writeFile(join(dir, 'shared'), 'shared bytes')
  await writeFile(join(dir, 'own'), randomBytes(5000))
  await writeFile(join(dir, 'tree', 'member.txt'), 'member')
  const shared = await store.putFile(join(dir, 'shared'))
  const own = await store.putFile(join(dir, 'own'))
  const tree = await store.putDir(join(dir, 'tree'))
  const keep = makeRecord('keep', { f: { ...shared, kind: 'file' }, d: { ...tree, kind: 'dir' } })
  const drop = makeRecord('drop', { f: { ...shared, kind: 'file' }, g: { ...own, kind: 'file' } })
  await store.putRun(keep)
  await store.putRun(drop)
  return { keep, drop, own: own.digest, shared: shared.digest, tree: tree.digest }
}

for (const kind of ['s3', 'local'] as const) {
  t.test(`${kind}: plan lists what the lock does not reference; apply deletes it and nothing else`, async (t) => {
    const dir = t.testdir({})
    const store: ArtifactStore =
      kind === 's3' ? s3TestStore(server.endpoint, `gc-${randomBytes(3).toString('hex')}`) : new LocalStore(join(dir, 'store'))
    const e = await twoEntries(store, join(dir, 'src'))
    const [layer] = gcLayers(store)
    if (layer === undefined) throw new Error('no layer')
    const listing = async (d: ObjectDigest) => {
      const out = join(dir, `listing-${d}`)
      return (await store.getFile(d, out)) ? parseListing(await import('node:fs/promises').then((fs) => fs.readFile(out))) : undefined
    }
    const plan = await gcPlan(lockOf(e.keep), layer, listing)
    t.same(
      plan.runs.map(({ fingerprint, instance }) => ({ fingerprint, instance })),
      [{ fingerprint: e.drop.fingerprint, instance: 'drop' }],
      'only the unreferenced record',
    )
    t.same(
      plan.objects.map((o) => o.digest),
      [e.own],
      'only the object no referenced entry names (shared and dir members kept)',
    )
    t.equal(plan.bytes, 5000)

    const young = await gcApply(plan, layer) // default grace: an hour
    t.match(young, { runs: 0, objects: 0 }, 'a young record and a young object are spared (a live run may still be publishing them)')
    t.same(await store.getRun(e.drop.fingerprint), e.drop, 'the young record is kept')
    t.equal(await store.hasObject(e.own), true)
    const done = await gcApply(await gcPlan(lockOf(e.keep), layer, listing), layer, -1)
    t.match(done, { runs: 1, objects: 1, bytes: 5000 })
    t.equal(await store.getRun(e.drop.fingerprint), undefined, 'past the grace period the record goes')
    t.equal(await store.hasObject(e.own), false)
    t.same(await store.getRun(e.keep.fingerprint), e.keep, 'the referenced entry is intact')
    t.equal(await store.getDir(e.tree, join(dir, 'restored')), true)
    t.equal(await store.hasObject(e.shared), true)

    await store.deleteObject(e.tree)
    await t.rejects(gcPlan(lockOf(e.keep), layer, listing), /cannot read the directory listing .* nothing was deleted/)
  })
}

t.test('s3: the upload sweep is a no-op, not an error, on a server that cannot list multipart uploads (s3rver)', async (t) => {
  const store: S3Store = s3TestStore(server.endpoint, `gc-up-${randomBytes(3).toString('hex')}`)
  await store.client.send(new CreateMultipartUploadCommand({ Bucket: TEST_BUCKET, Key: store.objectKey('ab'.repeat(32) as ObjectDigest) }))
  t.equal(await store.abortStaleUploads(-1), 0, 's3rver answers ListMultipartUploads with NotImplemented')
})
