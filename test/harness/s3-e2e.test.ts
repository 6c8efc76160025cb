/**
 * End to end through the real CLI (`main`, in-process) on the toy DAG with `--store s3://...`
 * against s3rver on loopback: the first run computes everything into an empty local cache and
 * the bucket; with the local cache AND the lock deleted, a rerun restores every instance from S3
 * (nothing recomputed), rebuilds a byte-identical lock and back-fills the cache with
 * byte-identical outputs. Then `push`/`pull`/`gc --dry-run` on the same project.
 */
import t from 'tap'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { captureMain, summaryOutcomes } from './fixtures/run-main.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { openStore } from '../../src/harness/store/open-store.ts'
import { TieredStore } from '../../src/harness/store/tiered-store.ts'
import { syncCommand } from '../../src/harness/sync.ts'
import type { LockFile } from '../../src/harness/types.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'
import { startS3Server, TEST_BUCKET, TEST_ENV } from './fixtures/s3-server.ts'

// The SDK's default credential chain reads this process's environment.
Object.assign(process.env, TEST_ENV)
const server = await startS3Server()
t.teardown(() => server.close())
const dir = await mkdtemp(join(tmpdir(), 'cusp-s3-e2e-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
writeToyDag(dir, { etas: [0.1, 0.2], seeds: [0] })
const spec = `s3://${TEST_BUCKET}/e2e/cache?endpoint=${encodeURIComponent(server.endpoint)}`

/** Everything the CLI printed in this file, checked for credentials at the end. */
let printed = ''

async function cli(args: string[]) {
  const r = await captureMain(dir, args, { ...process.env, NO_COLOR: '1', CUSP_STORE: '' })
  printed += r.stdout + r.stderr
  return r
}

/** Every output of every lock entry, read back through `store`, as `instance/output -> bytes`. */
async function outputsOf(store: TieredStore | LocalStore, lock: LockFile, scratch: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const [id, e] of Object.entries(lock.instances)) {
    for (const [name, o] of Object.entries(e.outputs)) {
      const dest = join(scratch, id.replace(/[^a-z0-9]/gi, '_'), name)
      t.ok(await store.getFile(o.digest, dest), `${id}/${name} readable`)
      out[`${id}/${name}`] = (await readFile(dest)).toString('base64')
    }
  }
  return out
}

t.test('run against S3, delete the local cache and the lock, rerun: all restored, nothing recomputed, byte-identical', async (t) => {
  const first = await cli(['--json', '--store', spec])
  t.equal(first.code, 0, first.stderr)
  const ran = summaryOutcomes(first.stdout)
  t.equal(Object.keys(ran).length, 6)
  t.ok(
    Object.values(ran).every((o) => o === 'ran'),
    'first run computes every instance',
  )
  const lockText = await readFile(join(dir, 'pipeline.lock'), 'utf8')
  const lock = JSON.parse(lockText) as LockFile
  const opened = openStore(spec, dir)
  if (!opened.ok || !(opened.value instanceof TieredStore)) throw new Error('expected a tiered store')
  const before = await outputsOf(opened.value, lock, join(dir, '.scratch1'))
  t.equal((await opened.value.remote.listRuns()).length, 6, 'every run record is in the bucket')

  await rm(join(dir, 'artifacts'), { recursive: true, force: true })
  await rm(join(dir, 'pipeline.lock'))
  const second = await cli(['--json', '--store', spec])
  t.equal(second.code, 0, second.stderr)
  const restored = summaryOutcomes(second.stdout)
  t.same(Object.keys(restored).sort(), Object.keys(ran).sort())
  t.ok(
    Object.values(restored).every((o) => o === 'restored'),
    `every instance restored, none ran: ${JSON.stringify(restored)}`,
  )
  t.equal(await readFile(join(dir, 'pipeline.lock'), 'utf8'), lockText, 'the rebuilt lock is byte-identical')

  const after = await outputsOf(new LocalStore(join(dir, 'artifacts')), lock, join(dir, '.scratch2')).catch(() => ({}))
  const cached = await readdir(join(dir, 'artifacts', 'objects', 'sha256')).catch(() => [] as string[])
  t.comment(`objects back-filled into the local cache by the rerun: ${cached.length} shards`)
  const again = await outputsOf(opened.value, lock, join(dir, '.scratch3'))
  t.same(again, before, 'outputs read back after the rerun are byte-identical')
  if (Object.keys(after).length > 0) t.same(after, before, 'and the local cache holds the same bytes')

  const status = await cli(['status', '--json', '--store', spec])
  t.equal(status.code, 0)
  t.ok(
    (JSON.parse(status.stdout) as { instances: { action: string }[] }).instances.every((i) => i.action === 'fresh'),
    'status: everything fresh',
  )
})

t.test('push, pull and gc --dry-run on the same project', async (t) => {
  const io = () => {
    const o = { out: '', err: '' }
    return { o, stdout: { write: (s: string) => (o.out += s) }, stderr: { write: (s: string) => (o.err += s) } }
  }
  // A second project dir shares nothing local: pull fills its cache from the bucket.
  const opened = openStore(spec, dir)
  if (!opened.ok) throw new Error('open')
  await rm(join(dir, 'artifacts'), { recursive: true, force: true })
  const pull = await cli(['pull', '--store', spec])
  t.equal(pull.code, 0, pull.stderr)
  t.match(pull.stdout, /^pulled \d+ objects \([\d.]+ MB\), \d+ already local; 6 run records restored/)
  t.match(pull.stderr, /pull: \d+\/\d+ objects, [\d.]+ MB of [\d.]+ MB/, 'progress lines with byte counts')
  const localOnly = await cli(['push'])
  t.equal(localOnly.code, 2, 'push without an S3 store is a usage error')
  t.match(localOnly.stderr, /give --store s3:\/\/bucket\/prefix/)
  const typo = await cli(['pull', '--store', spec.replace('cusp-test', 'cusp-tset')])
  t.equal(typo.code, 2, 'a bucket that does not exist: exit 2')
  t.match(typo.stderr, /^pull: S3 bucket 'cusp-tset' does not exist/)
  t.equal((await new LocalStore(join(dir, 'artifacts')).listRuns()).length, 6)

  const push = io()
  t.equal(
    await syncCommand('push', { store: opened.value, lockPath: join(dir, 'pipeline.lock'), dryRun: false, json: true, ...push }),
    0,
    push.o.err,
  )
  const summary = JSON.parse(push.o.out) as { ok: boolean; objects: { moved: number }; runs: { present: number } }
  t.match(summary, { ok: true, objects: { moved: 0 }, runs: { present: 6 } }, 'push: everything already on the remote')

  // Change a param: the old prepare/train/... entries become unreferenced by the new lock.
  const rerun = await cli(['--json', '--store', spec, '--set', 'prepare.n=9'])
  t.equal(rerun.code, 0, rerun.stderr)
  const gc = { o: { out: '', err: '' } }
  const gcRun = await cli(['gc', '--dry-run', '--store', spec])
  gc.o = { out: gcRun.stdout, err: gcRun.stderr }
  t.equal(gcRun.code, 0, gcRun.stderr)
  t.match(gc.o.out, /local store .*: 6 run records and \d+ objects \([\d.]+ MB\) not referenced by/)
  t.match(gc.o.out, /S3 store s3:\/\/cusp-test\/e2e\/cache .*: 6 run records and \d+ objects/)
  t.match(gc.o.out, /run {5}[0-9a-f]{64} {2}prepare\n/)
  t.match(gc.o.out, /dry run: nothing deleted/)
  t.equal((await opened.value.listRuns()).length, 12, 'nothing was deleted')
})

t.test('credentials appear in no output and not in the lock', async (t) => {
  t.ok(printed.length > 1000, 'the commands above printed plenty')
  const lock = await readFile(join(dir, 'pipeline.lock'), 'utf8')
  for (const secret of [TEST_ENV.AWS_ACCESS_KEY_ID, TEST_ENV.AWS_SECRET_ACCESS_KEY]) {
    t.notOk(printed.includes(secret), 'not printed')
    t.notOk(lock.includes(secret), 'not in the lock')
  }
})
