/**
 * Published results end to end through the real CLI (`main`, in-process) on the toy DAG with a
 * `publish:` block: after `pull` from an S3 store (s3rver on loopback) into a project with no
 * local cache and no results/, the published file is there, read-only and byte-identical to the
 * stored object; `open` starts $BROWSER with the path of the published file, and without any
 * browser prints the path and exits 0; an edited published file is reported by `status` and
 * restored by the next run.
 */
import t from 'tap'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { captureMain } from './fixtures/run-main.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import type { LockFile } from '../../src/harness/types.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'
import { startS3Server, TEST_BUCKET, TEST_ENV } from './fixtures/s3-server.ts'

Object.assign(process.env, TEST_ENV)
const server = await startS3Server()
t.teardown(() => server.close())
const dir = await mkdtemp(join(tmpdir(), 'cusp-published-e2e-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const yaml = writeToyDag(dir, { etas: [0.1], seeds: [0, 1] })
await writeFile(yaml, `${await readFile(yaml, 'utf8')}publish:\n  results/report.html: { stage: aggregate, output: summary.txt }\n`)
const spec = `s3://${TEST_BUCKET}/published/cache?endpoint=${encodeURIComponent(server.endpoint)}`
const published = join(dir, 'results', 'report.html')

function cli(args: string[], env: Record<string, string | undefined> = {}) {
  const base: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1', CUSP_STORE: '' }
  for (const k of ['BROWSER', 'DISPLAY', 'WAYLAND_DISPLAY']) delete base[k]
  return captureMain(dir, args, { ...base, ...env })
}

/** The bytes the lock says aggregate's summary.txt has, read from the local store. */
async function storedReport(): Promise<Buffer> {
  const lock = JSON.parse(await readFile(join(dir, 'pipeline.lock'), 'utf8')) as LockFile
  const out = lock.instances['aggregate']?.outputs['summary.txt']
  if (out === undefined) throw new Error('aggregate has no summary.txt in the lock')
  return readFile(new LocalStore(join(dir, 'artifacts')).objectPath(out.digest))
}

t.test('after pull into an empty cache, results/ holds the stored bytes, read-only', async (t) => {
  const first = await cli(['--store', spec])
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, /open results\/report\.html\n$/, 'the run ends with the file to open')
  await rm(join(dir, 'artifacts'), { recursive: true, force: true })
  await rm(join(dir, 'results'), { recursive: true, force: true })
  const pull = await cli(['pull', '--store', spec])
  t.equal(pull.code, 0, `pull exits 0: ${pull.stderr.slice(-300)}`)
  t.ok(existsSync(published), 'pull published results/report.html')
  t.same(await readFile(published), await storedReport(), 'byte-identical to the stored object')
  t.equal((await stat(published)).mode & 0o222, 0, 'read-only')
  t.match(pull.stdout, /open results\/report\.html/)
})

t.test('open: $BROWSER gets the path of the published file; no browser: the path, exit 0', async (t) => {
  const seen = join(dir, '.browser-argv')
  const fake = join(dir, '.fake-browser.sh')
  await writeFile(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > "${seen}.tmp" && mv "${seen}.tmp" "${seen}"\n`)
  await chmod(fake, 0o755)
  const opened = await cli(['open'], { BROWSER: fake })
  t.equal(opened.code, 0, opened.stderr)
  t.equal(opened.stdout, 'opened results/report.html\n')
  // The browser is started detached; wait for it to have written its argv (tap's timeout bounds this).
  while (!existsSync(seen)) await new Promise((r) => setTimeout(r, 20))
  t.equal(await readFile(seen, 'utf8'), `${published}\n`, 'the browser was given the published file')

  const none = await cli(['open'], { PATH: '/nonexistent' })
  t.equal(none.code, 0, none.stderr)
  t.equal(none.stdout, `no browser here (no $BROWSER, no display); open it yourself: ${published}\n`)
  t.equal(none.stderr, '')

  const broken = await cli(['open'], { BROWSER: join(dir, 'no-such-browser') })
  t.equal(broken.code, 1, 'an opener that cannot start: exit 1')
  t.match(broken.stderr, /^open: .*no-such-browser failed \(.*\); the file is .*report\.html\n$/)
})

t.test('an edited published file: status reports it, the next run restores it', async (t) => {
  const stored = await storedReport()
  await chmod(published, 0o644)
  await writeFile(published, 'edited by hand\n')
  const status = await cli(['status', '--store', spec])
  t.equal(status.code, 0, status.stderr)
  t.match(status.stdout, /results\/report\.html/, 'status names the edited file')
  t.match(status.stdout, /modified|edited|changed/i)
  const json = await cli(['status', '--json', '--store', spec])
  t.same((JSON.parse(json.stdout) as { published: unknown }).published, [{ path: 'results/report.html', state: 'modified' }])

  const rerun = await cli(['--store', spec])
  t.equal(rerun.code, 0, rerun.stderr)
  t.same(await readFile(published), stored, 'restored to the stored bytes')
  const after = await cli(['status', '--json', '--store', spec])
  t.same((JSON.parse(after.stdout) as { published: unknown }).published, [], 'nothing drifted any more')
})
