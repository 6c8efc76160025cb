/**
 * `npm run pipeline -- fsck [--repair]` through the CLI's `main`: a clean store exits 0, a
 * flipped byte exits 1 and names the object, `--repair` quarantines it (exit 0) after which the
 * next run reruns its producer and the store is clean; a bad signing key is one line, exit 2;
 * `--repair` on another command is a usage error. With records signed by key A, `fsck --repair`
 * under another key B quarantines no record (one line naming the likely cause, exit 1) while a
 * corrupt object is still quarantined; `--quarantine-unsigned` moves them.
 */
import t from 'tap'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { runMain } from './fixtures/run-main.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const run = runMain

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

t.test('fsck --repair with another record key quarantines no record; a corrupt object still is', async (t) => {
  const KEY_A = { CUSP_RECORD_KEY: 'key-a-0123456789abcdef' }
  const KEY_B = { CUSP_RECORD_KEY: 'key-b-fedcba9876543210' }
  const signed = mkdtempSync(join(tmpdir(), 'cusp-fsck-key-'))
  t.teardown(() => rmSync(signed, { recursive: true, force: true }))
  writeToyDag(signed, { etas: [0.1], seeds: [0] })
  t.equal((await run(signed, [], KEY_A)).code, 0, 'every record signed with key A')
  const store = join(signed, 'artifacts')
  const records = () => readdirSync(join(store, 'runs'), { recursive: true }).filter((f) => String(f).endsWith('.json')).length
  t.equal(records(), 4)

  const wrong = await run(signed, ['fsck', '--repair'], KEY_B)
  t.equal(wrong.code, 1, 'records left in place: not clean')
  t.equal(wrong.stderr.trim().split('\n').length, 1, 'one line')
  t.match(
    wrong.stderr,
    /^fsck: 4 run records fail only their signature and none verify with the configured key: likely a wrong CUSP_RECORD_KEY/,
  )
  t.match(wrong.stderr, /records written before signing was configured; left them in place\. .*--quarantine-unsigned/)
  t.match(wrong.stdout, /\(kept: signature only\)/)
  t.notMatch(wrong.stdout, /moved into quarantine/)
  t.equal(existsSync(join(store, 'quarantine')), false, 'nothing quarantined')
  t.equal(records(), 4, 'every record still in runs/')
  const plain = await run(signed, ['fsck'], KEY_B)
  t.equal(plain.code, 1)
  t.match(plain.stderr, /--repair will leave them in place/, 'said before a repair too')

  const lock = JSON.parse(readFileSync(join(signed, 'pipeline.lock'), 'utf8')) as {
    instances: Record<string, { outputs: Record<string, { digest: string }> }>
  }
  const digest = lock.instances.prepare!.outputs['data.txt']!.digest
  const path = new LocalStore(store).objectPath(digest as never)
  chmodSync(path, 0o644)
  writeFileSync(path, 'rot')
  const mixed = await run(signed, ['fsck', '--repair'], KEY_B)
  t.equal(mixed.code, 1)
  t.match(mixed.stdout, new RegExp(`corrupt object  ${digest}  \\(quarantined\\)`), 'a wrong key does not spare a corrupt object')
  t.equal(existsSync(path), false)
  t.equal(records(), 4, 'the records are still kept')

  writeFileSync(path, 'rot again')
  const right = await run(signed, ['fsck', '--repair'], KEY_A)
  t.equal(right.code, 0, right.stderr)
  t.equal(right.stderr, '', 'no key warning with the right key')
  t.match(right.stdout, new RegExp(`corrupt object  ${digest}  \\(quarantined\\)`), 'with key A the corrupt object is quarantined')
  t.match(right.stdout, /4 run records checked, 0 refused/)
  t.equal(records(), 4)

  const forced = await run(signed, ['fsck', '--repair', '--quarantine-unsigned'], KEY_B)
  t.equal(forced.code, 0, forced.stderr)
  t.equal(forced.stderr, '')
  t.match(forced.stdout, /4 problems moved into quarantine/)
  t.equal(records(), 0, '--quarantine-unsigned moves them')
  t.equal(readdirSync(join(store, 'quarantine', 'runs')).length, 4, 'into quarantine/, not deleted')
})
