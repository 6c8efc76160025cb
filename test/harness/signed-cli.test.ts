/**
 * Signed run records through the CLI's `main`, with the key only in the environment: once
 * `CUSP_RECORD_KEY` is set, a record in the store that is unsigned (published before, or planted
 * by a writer without the key) is never restored: `status` says the instance would run, with one
 * warning line on the CLI's own error stream, and a run recomputes it and publishes a signed record in its place, which the next
 * reader with the key restores. Without the key the same store restores as before.
 */
import t, { type Test } from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runMain } from './fixtures/run-main.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const run = runMain

const KEY = { CUSP_RECORD_KEY: 'a-long-shared-record-key-0123456789' }
const dir = mkdtempSync(join(tmpdir(), 'cusp-signed-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
writeToyDag(dir, { etas: [0.1], seeds: [0] })

/**
 * `status --json`'s action per instance, and what the CLI wrote to its own error stream
 * (io.stderr). The store's warning must go there too, not to the process's stderr, so an
 * in-process caller captures it: anything written to process.stderr fails the test.
 */
async function actions(t: Test, env: Record<string, string>): Promise<{ actions: Record<string, string>; stderr: string }> {
  let warned = ''
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((s: string | Uint8Array) => ((warned += String(s)), true)) as typeof process.stderr.write
  let r: Awaited<ReturnType<typeof run>>
  try {
    r = await run(dir, ['status', '--json', '--stage', 'prepare'], env)
  } finally {
    process.stderr.write = write
  }
  t.equal(r.code, 0, r.stderr)
  t.equal(warned, '', 'nothing bypasses the CLI stream to the process stderr')
  const parsed = JSON.parse(r.stdout) as { instances: { id: string; action: string }[] }
  return { actions: Object.fromEntries(parsed.instances.map((i) => [i.id, i.action])), stderr: r.stderr }
}

t.test('with a record key set, an unsigned stored record is a miss; the run replaces it with a signed one', async (t) => {
  t.equal((await run(dir, ['--stage', 'prepare'])).code, 0, 'an unsigned record is published')
  rmSync(join(dir, 'pipeline.lock'))
  t.same((await actions(t, {})).actions, { prepare: 'restore' }, 'without a key it would be restored')

  const keyed = await actions(t, KEY)
  t.same(keyed.actions, { prepare: 'run' }, 'with the key the unsigned record is not trusted')
  const warnings = keyed.stderr.trim().split('\n')
  t.equal(warnings.length, 1, 'one warning line, on the CLI stream')
  t.match(warnings[0], /^warning: ignoring run record [0-9a-f]{16} of prepare .*unsigned, and signed records are required/)

  const ran = await run(dir, ['--stage', 'prepare', '--json'], KEY)
  t.equal(ran.code, 0, ran.stderr)
  t.match(ran.stdout, /"type":"done","instance":"prepare","action":"run"/, 'recomputed, not restored')
  const lock = JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as { instances: Record<string, { fingerprint: string }> }
  const fp = lock.instances.prepare!.fingerprint
  const stored = JSON.parse(readFileSync(join(dir, 'artifacts', 'runs', fp.slice(0, 2), `${fp}.json`), 'utf8')) as { signature?: string }
  t.match(stored.signature, /^hmac-sha256:[0-9a-f]{12}:[0-9a-f]{64}$/, 'the record in the store is now signed')

  rmSync(join(dir, 'pipeline.lock'))
  const again = await actions(t, KEY)
  t.same(again.actions, { prepare: 'restore' }, 'and a reader with the key restores it')
  t.equal(again.stderr, '', 'without a warning')
  const otherKey = await actions(t, { CUSP_RECORD_KEY: 'another-key-of-enough-length-42' })
  t.same(otherKey.actions, { prepare: 'run' }, 'a reader with another key does not')
  t.match(otherKey.stderr, /^warning: ignoring run record [0-9a-f]{16} of prepare .*bad signature/, 'and says why, on one line')
  t.equal(otherKey.stderr.trim().split('\n').length, 1)
})
