/**
 * The paper's smoke profile against an S3 store (s3rver on loopback): the first run computes
 * every instance into an empty local cache and the bucket; with the local cache and the lock
 * deleted, a rerun restores every instance from S3 and computes none, and rebuilds a
 * byte-identical lock (the lock holds every output's sha256, and every restore verifies it).
 */
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { captureMain, summaryOutcomes } from '../harness/fixtures/run-main.ts'
import { startS3Server, TEST_BUCKET, TEST_ENV } from '../harness/fixtures/s3-server.ts'
import { ROOT } from './fixtures.ts'

Object.assign(process.env, TEST_ENV) // the SDK's default credential chain reads this process's env
const server = await startS3Server()
t.teardown(() => server.close())

const dir = await mkdtemp(join(tmpdir(), 'cusp-smoke-s3-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
for (const f of ['src', 'stages', 'schemas', 'data', 'scripts', 'node_modules', 'package.json', 'package-lock.json', 'claims.yaml'])
  await symlink(join(ROOT, f), join(dir, f))
await writeFile(join(dir, 'pipeline.yaml'), await readFile(join(ROOT, 'pipeline.yaml'), 'utf8'))
const spec = `s3://${TEST_BUCKET}/smoke?endpoint=${encodeURIComponent(server.endpoint)}`

async function run(): Promise<{ code: number; outcomes: Record<string, string>; stderr: string }> {
  const r = await captureMain(dir, ['--profile', 'smoke', '--json', '--store', spec], { ...process.env, NO_COLOR: '1', CUSP_STORE: '' })
  return { code: r.code, stderr: r.stderr, outcomes: summaryOutcomes(r.stdout) }
}

t.test('smoke on S3; drop the local cache and the lock; rerun restores everything, computes nothing', async (t) => {
  const first = await run()
  t.equal(first.code, 0, first.stderr.slice(-2000))
  const ids = Object.keys(first.outcomes)
  t.ok(ids.length >= 14, `${ids.length} instances`)
  t.ok(
    Object.values(first.outcomes).every((o) => o === 'ran'),
    'the first run computes every instance',
  )
  const lock = await readFile(join(dir, 'pipeline.lock'), 'utf8')

  await rm(join(dir, 'artifacts'), { recursive: true, force: true })
  await rm(join(dir, 'pipeline.lock'))
  const second = await run()
  t.equal(second.code, 0, second.stderr.slice(-2000))
  t.same(Object.keys(second.outcomes).sort(), [...ids].sort())
  t.ok(
    Object.values(second.outcomes).every((o) => o === 'restored'),
    'every instance restored from S3, none recomputed',
  )
  t.equal(await readFile(join(dir, 'pipeline.lock'), 'utf8'), lock, 'the rebuilt lock (every output digest) is byte-identical')
})
