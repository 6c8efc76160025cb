/**
 * Ownership under concurrency and crashes: the resume-directory claim (resume-dir.ts: one live
 * owner, a dead or garbled owner taken over, removal only on request), the lock's exclusive
 * owner file (lockfile.ts withLockHeld: concurrent writer processes lose no entry), and the sweep
 * of a killed harness's work directory (workdir.ts: an orphaned stage still writing into it is
 * stopped before the directory is removed).
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { claimResumeDir, sweepResumeDirs } from '../../src/harness/resume-dir.ts'
import { sweepWorkDirs } from '../../src/harness/workdir.ts'
import { REPO_ROOT } from './fixtures/counting-project.ts'

const FP = 'ab'.repeat(32)
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'cusp-own-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}
/** A pid that is certainly dead: a child that has exited and been reaped. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '0']).pid!

t.test('resume dir: one owner; a second claim is refused with one line naming the owner', async (t) => {
  const root = tmp()
  const a = await claimResumeDir(root, FP, 'train')
  t.ok(a.ok)
  const b = await claimResumeDir(root, FP, 'train')
  t.notOk(b.ok)
  if (!b.ok) {
    t.match(b.error.message, /^train is already being run by another run in this process \(it owns .*\); wait/)
    t.notMatch(b.error.message, /\n/)
  }
  if (a.ok) {
    mkdirSync(a.value.dir)
    writeFileSync(join(a.value.dir, 'state'), 'x')
    await a.value.release({ removeDir: false })
    t.ok(existsSync(join(a.value.dir, 'state')), 'kept after a failure, for the next run to resume')
  }
  const c = await claimResumeDir(root, FP, 'train')
  t.ok(c.ok, 'claimable again once released')
  if (c.ok) await c.value.release({ removeDir: true })
  t.same(readdirSync(root), [], 'directory and owner file gone after a publish')
})

for (const [name, text] of [
  ['a dead owner', () => JSON.stringify({ pid: deadPid(), host: hostname() })],
  ['a corrupt owner file', () => '{"pid": 12'],
  ['wrong types', () => JSON.stringify({ pid: 'x', host: [] })],
  ['a huge owner file', () => 'x'.repeat(1 << 20)],
] as const) {
  t.test(`resume dir owned by ${name}: taken over`, async (t) => {
    const root = tmp()
    writeFileSync(join(root, `${FP}.owner`), text())
    const c = await claimResumeDir(root, FP, 'train')
    t.ok(c.ok, 'claimed')
    if (c.ok) await c.value.release({ removeDir: false })
    t.notOk(existsSync(join(root, `${FP}.owner`)))
  })
}

t.test('resume dir owned by a live process: refused, naming its pid', async (t) => {
  const root = tmp()
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'])
  t.teardown(() => child.kill('SIGKILL'))
  await new Promise((r) => child.once('spawn', r))
  const start = readFileSync(`/proc/${child.pid}/stat`, 'utf8')
  const fields = start.slice(start.lastIndexOf(')') + 2).split(' ')
  writeFileSync(join(root, `${FP}.owner`), JSON.stringify({ pid: child.pid, host: hostname(), start: fields[19] }))
  const c = await claimResumeDir(root, FP, 'train')
  t.notOk(c.ok)
  if (!c.ok) t.match(c.error.message, new RegExp(`process ${child.pid} on `))
  writeFileSync(join(root, `${FP}.owner`), JSON.stringify({ pid: child.pid, host: hostname(), start: '1' }))
  t.ok((await claimResumeDir(root, FP, 'train')).ok, 'a reused pid (another start time) is not the owner')
})

t.test('sweep of resume dirs: published ones removed, unpublished kept for a resume', async (t) => {
  const root = tmp()
  const other = 'cd'.repeat(32)
  mkdirSync(join(root, FP))
  mkdirSync(join(root, other))
  writeFileSync(join(root, `${other}.owner`), JSON.stringify({ pid: deadPid(), host: hostname() }))
  t.equal(await sweepResumeDirs(root, async (fp) => fp === other), 1)
  t.same(readdirSync(root).sort(), [FP])
})

t.test('two processes writing one lock: no entry lost', async (t) => {
  const file = join(tmp(), 'pipeline.lock')
  const child = join(REPO_ROOT, 'test', 'harness', 'fixtures', 'lock-writer.ts')
  const n = 25
  await Promise.all(
    ['a', 'b', 'c'].map(
      (id) =>
        new Promise<void>((res, rej) => {
          const p = spawn(process.execPath, ['--import', 'tsx', child, file, id, String(n)], { cwd: REPO_ROOT, stdio: 'inherit' })
          p.once('error', rej)
          p.once('exit', (code) => (code === 0 ? res() : rej(new Error(`writer ${id} exited ${code}`))))
        }),
    ),
  )
  const keys = Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object)
  t.equal(keys.length, 3 * n, `${keys.length} of ${3 * n} entries`)
  t.notOk(existsSync(`${file}.owner`), 'owner file released')
})

t.test("sweep: an orphaned stage still writing into a dead harness's work dir is stopped, then the dir removed", async (t) => {
  const work = tmp()
  const dir = join(work, `${deadPid()}-orphan`)
  mkdirSync(join(dir, 'out'), { recursive: true })
  // The orphan: its command line names the work dir (as run-stage.ts's does); it keeps (re)creating files there.
  const script =
    'const fs = require("fs"); const d = process.argv[1]; for (;;) { try { fs.mkdirSync(d + "/out", { recursive: true }); fs.writeFileSync(d + "/out/f" + (Date.now() % 100), "x") } catch {} }'
  const orphan = spawn(process.execPath, ['-e', script, dir], { stdio: 'ignore' })
  await new Promise((r) => orphan.once('spawn', r))
  writeFileSync(join(dir, 'stage.pid'), String(orphan.pid))
  const exited = new Promise((r) => orphan.once('exit', (_c, sig) => r(sig)))
  t.equal(await sweepWorkDirs(work), 1, 'one directory swept')
  t.equal(await exited, 'SIGKILL', 'the orphan was stopped by the sweep')
  t.notOk(existsSync(dir), 'and its directory is gone for good')
})
