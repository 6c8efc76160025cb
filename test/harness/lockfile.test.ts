/**
 * The lock file: round trip, byte-stable sorted output whatever the insertion order, atomic
 * replacement, and invalid locks rejected with a message that says which file and where.
 */
import t from 'tap'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { computeFingerprint } from '../../src/harness/fingerprint.ts'
import { sha256Hex } from '../../src/harness/canonical-json.ts'
import { readLock, serialiseLock, writeLock } from '../../src/harness/lockfile.ts'
import type { FingerprintBreakdown, LockEntry, LockFile, ObjectDigest } from '../../src/harness/types.ts'

function entry(stage: string, eta: number): LockEntry {
  const breakdown: FingerprintBreakdown = {
    stage,
    code: '1'.repeat(64),
    params: { eta, arch: { width: 8, act: 'relu' } },
    inputs: { 'data/prepare/dataset': '2'.repeat(64) as ObjectDigest },
    upstream: {},
    env: { backend: 'none', versions: {} },
  }
  return {
    stage,
    fingerprint: computeFingerprint(breakdown).fingerprint,
    breakdown,
    outputs: { model: { digest: '3'.repeat(64) as ObjectDigest, size: 10, kind: 'file' } },
  }
}

function lock(): LockFile {
  return { schema: 1, instances: { 'train@eta=0.1': entry('train', 0.1), prepare: entry('prepare', 1) } }
}

/** The same lock built with every object's keys inserted in reverse order. */
function reversed<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x: unknown) => reversed(x)) as T
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v).reverse()) out[k] = reversed((v as Record<string, unknown>)[k])
    return out as T
  }
  return v
}

t.test('missing lock is ok(undefined)', async (t) => {
  const dir = t.testdir({})
  t.same(readLock(join(dir, 'pipeline.lock')), { ok: true, value: undefined })
})

t.test('round trip, stable sorted bytes, no temp left', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'pipeline.lock')
  t.same(writeLock(path, lock()), { ok: true, value: undefined })
  const first = readFileSync(path, 'utf8')
  t.same(readLock(path), { ok: true, value: lock() })
  t.ok(first.endsWith('}\n') && !first.endsWith('\n\n'), 'one trailing newline')
  t.match(first, /^\{\n {2}"instances": \{\n {4}"prepare": \{/, '2-space indentation, keys sorted')
  t.ok(first.indexOf('"prepare"') < first.indexOf('"train@eta=0.1"'))
  t.ok(first.indexOf('"act"') < first.indexOf('"width"'), 'nested keys sorted')
  t.not(JSON.stringify(reversed(lock())), JSON.stringify(lock()))
  t.same(writeLock(path, reversed(lock())), { ok: true, value: undefined })
  t.equal(readFileSync(path, 'utf8'), first, 'same bytes regardless of insertion order')
  t.equal(serialiseLock(reversed(lock())), first)
  t.same(readdirSync(dir), ['pipeline.lock'], 'temp file renamed away')
})

t.test('invalid locks are rejected with a located message', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'pipeline.lock')
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{\n  "schema": 1,\n  "instances": {,}\n}\n', /not valid JSON at line 3 column 17/],
    ['wrong schema version', JSON.stringify({ ...lock(), schema: 2 }), /at schema: must be equal to constant/],
    ['missing instances', JSON.stringify({ schema: 1 }), /at \(top level\): is missing required property 'instances'/],
    ['unknown top-level key', JSON.stringify({ ...lock(), extra: 1 }), /has unknown property 'extra'/],
  ]
  const badDigest = lock()
  badDigest.instances['train@eta=0.1']!.outputs['model']!.digest = 'XYZ' as ObjectDigest
  cases.push(['bad digest', JSON.stringify(badDigest), /at instances\["train@eta=0\.1"\]\.outputs\.model\.digest: must match pattern/])
  const badSize = lock()
  ;(badSize.instances['prepare']!.outputs['model'] as { size: unknown }).size = -1
  cases.push(['negative size', JSON.stringify(badSize), /at instances\.prepare\.outputs\.model\.size: must be >= 0/])
  const edited = lock()
  edited.instances['prepare']!.breakdown.params['eta'] = 2
  cases.push(['hand-edited breakdown', JSON.stringify(edited), /at instances\.prepare\.fingerprint: .* is not the hash of its breakdown/])
  const mixed = lock()
  mixed.instances['prepare']!.stage = 'other'
  cases.push(['stage mismatch', JSON.stringify(mixed), /at instances\.prepare: breakdown\.stage 'prepare' differs from stage 'other'/])
  for (const [what, bad, why] of [
    ['climbing', '../../stages/side', /climbs out of its directory/],
    ['absolute', '/etc/passwd', /is an absolute path/],
    ['empty', '', /is empty/],
  ] as const) {
    const named = lock()
    const e = named.instances['prepare']!
    e.outputs = { [bad]: e.outputs['model']! }
    cases.push([`${what} output name`, JSON.stringify(named), new RegExp(`at instances\\.prepare\\.outputs: output name .* ${why.source}`)])
  }
  for (const [name, text, message] of cases) {
    writeFileSync(path, text)
    const r = readLock(path)
    t.equal(r.ok, false, name)
    if (!r.ok) {
      t.equal(r.error.reason, 'lock-invalid', name)
      if (r.error.reason === 'lock-invalid') {
        t.equal(r.error.file, path, `${name}: names the file`)
        t.match(r.error.message, message, `${name}: located message`)
      }
    }
  }
})

t.test('writeLock refuses an invalid lock and leaves the old one', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'pipeline.lock')
  t.equal(writeLock(path, lock()).ok, true)
  const before = readFileSync(path, 'utf8')
  const bad = lock()
  bad.instances['prepare']!.fingerprint = '0'.repeat(64) as LockEntry['fingerprint']
  const r = writeLock(path, bad)
  t.equal(r.ok, false)
  t.equal(readFileSync(path, 'utf8'), before)
  const r2 = writeLock(join(dir, 'no-such-dir', 'pipeline.lock'), lock())
  t.match(r2, { ok: false, error: { reason: 'unexpected', message: /cannot write lock file/ } })
})

t.test('a lock that passed the check is not re-hashed, but any edit of its bytes is checked in full', async (t) => {
  const dir = t.testdir({})
  const path = join(dir, 'pipeline.lock')
  t.same(writeLock(path, lock()), { ok: true, value: undefined })
  const good = readFileSync(path, 'utf8')
  t.same(readLock(path), { ok: true, value: lock() })
  const marker = join(import.meta.dirname, '../../.cusp/verified-locks', sha256Hex(path))
  t.match(readFileSync(marker, 'utf8'), /^[0-9a-f]{64}$/, 'the verified bytes are remembered by digest')
  t.same(readLock(path), { ok: true, value: lock() }, 'the same bytes read again')

  const edited = good.replace('"eta": 0.1', '"eta": 0.3')
  t.not(edited, good)
  writeFileSync(path, edited)
  const r = readLock(path)
  t.equal(r.ok, false, 'a hand edit after a good read is still caught')
  if (!r.ok && r.error.reason === 'lock-invalid') t.match(r.error.message, /is not the hash of its breakdown/)
  writeFileSync(marker, 'f'.repeat(64))
  writeFileSync(path, good)
  t.same(readLock(path), { ok: true, value: lock() }, 'a stale marker only costs the full check')
})
