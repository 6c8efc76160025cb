/**
 * A malicious writer of the store (anyone who can write a shared bucket) plants a run record for
 * a real fingerprint with an extra output named `../../../../stages/source`, a directory whose
 * listing holds one `index.ts`. Before records were treated as untrusted input, a plain rerun
 * without a lock "restored" it: the restore's scratch path climbed out of `.cusp/work` and
 * replaced the project's `stages/source/` with the planted file. Now the record is refused (a
 * miss), the stage runs, the source tree is untouched and the lock names only declared outputs.
 */
import t from 'tap'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { encodeListing } from '../../src/harness/store/dir-listing.ts'
import type { RunRecord } from '../../src/harness/types.ts'
import { Project } from './fixtures/counting-project.ts'

t.test('a planted record with a climbing output name cannot replace a source directory', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run()
  const entry = p.lock().instances.source!
  const original = readFileSync(join(p.root, 'stages/source/index.ts'), 'utf8')

  const evil = await p.store.putBytes(Buffer.from('export default "planted"\n'))
  const listing = await p.store.putBytes(encodeListing([{ path: 'index.ts', digest: evil.digest, size: evil.size, mode: 0o644 }]))
  const record: RunRecord = {
    schema: 1,
    fingerprint: entry.fingerprint,
    instance: 'source',
    stage: 'source',
    breakdown: entry.breakdown,
    outputs: { ...entry.outputs, '../../../../stages/source': { digest: listing.digest, size: evil.size, kind: 'dir' } },
    durationMs: 1,
    finishedAt: new Date().toISOString(),
  }
  const fp = entry.fingerprint
  const runFile = join(p.storeRoot, 'runs', fp.slice(0, 2), `${fp}.json`)
  rmSync(runFile, { force: true })
  mkdirSync(dirname(runFile), { recursive: true })
  writeFileSync(runFile, `${JSON.stringify(record)}\n`)
  rmSync(p.lockPath)

  const { summary, ran } = await p.run()
  t.ok(summary.ok, 'the run succeeds')
  t.equal(readFileSync(join(p.root, 'stages/source/index.ts'), 'utf8'), original, 'stages/source/index.ts untouched')
  t.ok(ran.includes('source'), 'the planted record is a miss: source ran')
  t.same(Object.keys(p.lock().instances.source!.outputs).sort(), ['data.txt', 'result.json'], 'the lock names only declared outputs')
  t.notOk(readFileSync(p.lockPath, 'utf8').includes('..'), 'no climbing name in the lock')
})
