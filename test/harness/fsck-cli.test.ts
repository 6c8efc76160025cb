/**
 * `npm run pipeline -- fsck [--repair]` through the CLI's `main`: a clean store exits 0, a
 * flipped byte exits 1 and names the object, `--repair` quarantines it (exit 0) after which the
 * next run reruns its producer and the store is clean; a bad signing key is one line, exit 2;
 * `--repair` on another command is a usage error.
 */
import t from 'tap'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../../src/main.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

async function run(cwd: string, args: string[], env: Record<string, string> = {}) {
  let stdout = ''
  let stderr = ''
  const code = await main(args, {
    stdout: { write: (s: string) => (stdout += s), isTTY: false },
    stderr: { write: (s: string) => (stderr += s), isTTY: false },
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env },
  })
  return { code, stdout, stderr }
}

const dir = mkdtempSync(join(tmpdir(), 'cusp-fsck-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
writeToyDag(dir, { etas: [0.1], seeds: [0] })

t.test('fsck: clean, then a flipped byte found, repaired, and reproduced', async (t) => {
  t.equal((await run(dir, ['--stage', 'prepare'])).code, 0)
  const clean = await run(dir, ['fsck'])
  t.equal(clean.code, 0, clean.stderr)
  t.match(clean.stdout, /objects re-hashed, 0 corrupt; \d+ run records checked, 0 refused/)

  const lock = JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as {
    instances: Record<string, { outputs: Record<string, { digest: string }> }>
  }
  const digest = lock.instances.prepare!.outputs['data.txt']!.digest
  const path = new LocalStore(join(dir, 'artifacts')).objectPath(digest as never)
  chmodSync(path, 0o644)
  const bytes = readFileSync(path)
  bytes[0] = bytes[0]! ^ 1
  writeFileSync(path, bytes)

  const found = await run(dir, ['fsck'])
  t.equal(found.code, 1)
  t.match(found.stdout, new RegExp(`corrupt object  ${digest}`))
  const repaired = await run(dir, ['fsck', '--repair'])
  t.equal(repaired.code, 0)
  t.match(repaired.stdout, /moved into quarantine/)
  const rerun = await run(dir, ['--stage', 'prepare'])
  t.equal(rerun.code, 0, rerun.stderr)
  t.equal((await run(dir, ['fsck'])).code, 0, 'clean after the producer reran')
})

t.test('fsck: a bad record key is one line, exit 2; --repair elsewhere is a usage error', async (t) => {
  const bad = await run(dir, ['fsck'], { CUSP_RECORD_KEY: 'short' })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /CUSP_RECORD_KEY is shorter than 16 characters/)
  t.notMatch(bad.stderr.trim(), /\n/)
  const usage = await run(dir, ['status', '--repair'])
  t.equal(usage.code, 2)
})
