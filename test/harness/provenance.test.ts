/**
 * `provenance: true`: the stage's inputs carry their producers' fingerprints, and those
 * fingerprints are part of its own, so an upstream that reran (new code) but reproduced its
 * bytes still reruns a provenance stage (its recorded fingerprints would be stale), while a plain
 * stage stays fresh (early cutoff on input digests).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { captureMain, summaryOutcomes } from './fixtures/run-main.ts'
import { clearCodeDigestCache } from '../../src/harness/code-digest.ts'
import type { LockFile } from '../../src/harness/types.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const dir = mkdtempSync(join(tmpdir(), 'cusp-provenance-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
writeToyDag(dir, { etas: [0.1], seeds: [0] })
const file = join(dir, 'pipeline.yaml')
// A second aggregate that records where its inputs came from.
writeFileSync(
  file,
  `${readFileSync(file, 'utf8')}  ledger:
    impl: ledger
    provenance: true
    deps:
      probes: { stage: probe, output: probe.txt, all: true }
    outputs: { ledger.txt: file }
`,
)
writeFileSync(
  join(dir, 'schemas/stages/ledger.params.schema.json'),
  JSON.stringify({ type: 'object', additionalProperties: false, properties: {} }),
)
mkdirSync(join(dir, 'stages/ledger'), { recursive: true })
writeFileSync(
  join(dir, 'stages/ledger/index.ts'),
  `import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
export default {
  [Symbol.for('cusp.stage')]: true,
  async run(ctx) {
    writeFileSync(join(ctx.outDir, 'ledger.txt'), ctx.inputs.probes.map((p) => p.instance + ' ' + p.fingerprint).join('\\n') + '\\n')
    return {}
  },
}
`,
)

async function run(): Promise<Record<string, string>> {
  const r = await captureMain(dir, ['--json'], { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1' })
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`)
  return summaryOutcomes(r.stdout)
}
const lock = (): LockFile => JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as LockFile

t.test('a provenance stage sees and is keyed by its producers fingerprints; a plain one is not', async (t) => {
  await run()
  const probe = 'probe@eta=0.1,seed=0'
  const probeFp = lock().instances[probe]!.fingerprint
  const ledgerEntry = lock().instances.ledger!
  t.same(ledgerEntry.breakdown.upstream, { [probe]: probeFp }, 'the ledger fingerprint lists its producer')
  t.same(lock().instances.aggregate!.breakdown.upstream, {}, 'a plain stage is keyed on input digests only')

  // The ledger's output (read back from the store) names the producer's fingerprint.
  const digest = ledgerEntry.outputs['ledger.txt']!.digest
  const object = join(dir, 'artifacts/objects/sha256', digest.slice(0, 2), digest.slice(2))
  t.equal(readFileSync(object, 'utf8'), `${probe} ${probeFp}\n`)

  // New probe code that writes the same bytes: the probe reruns; aggregate stays fresh (same
  // input digests); the ledger reruns, since the fingerprint it records changed.
  const code = join(dir, 'stages/probe/index.ts')
  writeFileSync(code, `${readFileSync(code, 'utf8')}// a comment: new code, same output\n`)
  clearCodeDigestCache() // code digests are memoised for a process's life; each CLI run is a new process
  const outcomes = await run()
  t.equal(outcomes[probe], 'ran')
  t.equal(outcomes.aggregate, 'fresh', 'early cutoff for the plain stage')
  t.equal(outcomes.ledger, 'ran', 'the provenance stage reruns with the new fingerprint')
  t.not(lock().instances[probe]!.fingerprint, probeFp)
  t.same(lock().instances.ledger!.breakdown.upstream, { [probe]: lock().instances[probe]!.fingerprint })
  t.same(await run(), Object.fromEntries(Object.keys(outcomes).map((k) => [k, 'fresh'])), 'then everything is fresh')
})
