/**
 * Terminal control characters in fields cusp prints from a lock or a store, through the CLI's
 * `main`: a param key and value holding ESC sequences, DEL and C1 controls (U+009B is a CSI
 * introducer on many terminals; JSON.stringify escapes C0 but leaves DEL and C1 raw) must not
 * reach the output of `why`, `status`, `show`, `artifacts` or `fsck`, in text or `--json`, and
 * the JSON must still parse to the same values.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { computeFingerprint } from '../../src/harness/fingerprint.ts'
import { stripControl, terminalJson } from '../../src/harness/redact.ts'
import type { FingerprintBreakdown } from '../../src/harness/types.ts'
import { runMain } from './fixtures/run-main.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

/** Every character a terminal may act on, but newline (output is made of lines). */
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/

const HOSTILE_VALUE = 'a\u009b2J\u009b31mred\u001b[2J\u001b]0;title\u0007\u007f\u0085z'
const HOSTILE_KEY = 'k\u009b1m\u001b[7m'

const run = runMain

const dir = mkdtempSync(join(tmpdir(), 'cusp-controls-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
writeToyDag(dir, { etas: [0.1], seeds: [0] })

type LockEntry = { fingerprint: string; breakdown: FingerprintBreakdown }

/** `breakdown` with the hostile key and value among its params, and the fingerprint that goes with it. */
function hostile(breakdown: FingerprintBreakdown): { fingerprint: string; breakdown: FingerprintBreakdown } {
  const b = { ...breakdown, params: { ...breakdown.params, n: HOSTILE_VALUE, [HOSTILE_KEY]: HOSTILE_VALUE } }
  return { fingerprint: computeFingerprint(b).fingerprint, breakdown: b }
}

t.test('control: stripControl and terminalJson remove C0, DEL and C1 and keep the JSON value', async (t) => {
  t.equal(stripControl(`x${HOSTILE_VALUE}\ty\n`), 'xa2J31mredz\ty\n')
  t.equal(stripControl('a\tb\nc\u009bd', { oneLine: true, mark: '?' }), 'a?b?c?d')
  const json = terminalJson({ [HOSTILE_KEY]: HOSTILE_VALUE })
  t.notMatch(json, CONTROLS)
  t.same(JSON.parse(json), { [HOSTILE_KEY]: HOSTILE_VALUE }, 'the same value after parsing')
})

t.test('pipeline.lock with C1 and ESC in a param key and value: why, status and show print neither', async (t) => {
  t.equal((await run(dir, ['--stage', 'prepare'])).code, 0)
  const lockPath = join(dir, 'pipeline.lock')
  const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as { instances: Record<string, LockEntry> }
  Object.assign(lock.instances.prepare!, hostile(lock.instances.prepare!.breakdown))
  writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`)

  const why = await run(dir, ['why', 'prepare'])
  t.equal(why.code, 0, why.stderr)
  t.match(why.stdout, /param n changed: "a2J31mred.*z" -> 8/, 'the change is still shown')
  t.match(why.stdout, /param k1m changed/)
  t.notMatch(why.stdout, CONTROLS, 'why: no control character')
  const whyJson = await run(dir, ['why', 'prepare', '--json'])
  t.equal(whyJson.code, 0, whyJson.stderr)
  t.notMatch(whyJson.stdout, CONTROLS, 'why --json: no control character')
  const parsed = JSON.parse(whyJson.stdout) as { reasons: { key?: string; old?: unknown }[] }
  t.ok(
    parsed.reasons.some((r) => r.key === 'n' && r.old === HOSTILE_VALUE),
    'the JSON still carries the lock value exactly',
  )
  for (const args of [['status'], ['status', '--json'], ['show', 'prepare'], ['show', 'prepare', '--json'], ['--dry-run', '--json']]) {
    const out = await run(dir, args)
    t.notMatch(out.stdout + out.stderr, CONTROLS, `${args.join(' ')}: no control character`)
  }
})

t.test('a run record with C1 and ESC in its params: artifacts prints neither', async (t) => {
  const runs = join(dir, 'artifacts', 'runs')
  const lock = JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as { instances: Record<string, LockEntry> }
  t.equal((await run(dir, ['--stage', 'prepare', '--force'])).code, 0, 'a good record to copy')
  const fresh = JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as { instances: Record<string, LockEntry> }
  const fp = fresh.instances.prepare!.fingerprint
  t.not(fp, lock.instances.prepare!.fingerprint)
  const record = JSON.parse(readFileSync(join(runs, fp.slice(0, 2), `${fp}.json`), 'utf8')) as LockEntry
  const forged = { ...record, ...hostile(record.breakdown) }
  mkdirSync(join(runs, forged.fingerprint.slice(0, 2)), { recursive: true })
  writeFileSync(join(runs, forged.fingerprint.slice(0, 2), `${forged.fingerprint}.json`), JSON.stringify(forged))
  for (const args of [['artifacts'], ['artifacts', '--json']]) {
    const out = await run(dir, args)
    t.equal(out.code, 0, out.stderr)
    t.match(out.stdout, forged.fingerprint.slice(0, 16), `${args.join(' ')}: the record is listed`)
    t.notMatch(out.stdout + out.stderr, CONTROLS, `${args.join(' ')}: no control character`)
  }
})

t.test('a run record file named with C1 and ESC: fsck prints neither', async (t) => {
  const shard = join(dir, 'artifacts', 'runs', 'ab')
  mkdirSync(shard, { recursive: true })
  writeFileSync(join(shard, `ab\u009b2J\u001b[31m.json`), '{}')
  for (const args of [['fsck'], ['fsck', '--json']]) {
    const out = await run(dir, args)
    t.equal(out.code, 1, 'the bad record is reported')
    t.match(out.stdout, /refused|badRuns/)
    t.notMatch(out.stdout + out.stderr, CONTROLS, `${args.join(' ')}: no control character`)
  }
})
