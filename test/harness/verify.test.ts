/**
 * `verify`: cache hits are re-executed in scratch directories and their outputs compared byte
 * for byte with the stored ones. Deterministic toy stages (file and directory outputs) verify;
 * a stage writing a random number is flagged; nothing in the store or the lock changes.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Project } from './fixtures/counting-project.ts'

const p = new Project({ noisy: true })
t.teardown(() => p.cleanup())

function storeListing(): string[] {
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]))
  return walk(p.storeRoot)
    .filter((f) => !f.includes('/tmp/'))
    .sort()
}

t.before(async () => {
  const { summary } = await p.run()
  if (!summary.ok) throw new Error('first run failed')
})

t.test('verify re-executes every cache hit: deterministic ones verify, the random one is flagged', async (t) => {
  const lockBefore = readFileSync(p.lockPath, 'utf8')
  const storeBefore = storeListing()
  const { summary, ran, events } = await p.run({ verify: true })
  t.same(ran, ['noisy', 'side', 'source', 'square@k=1', 'square@k=2', 'square@k=3', 'sum'], 'each re-executed once')
  const outcome = Object.fromEntries(Object.entries(summary.outcomes).map(([k, v]) => [k, v.outcome]))
  t.same(outcome, {
    noisy: 'nondeterministic',
    side: 'verified',
    source: 'verified',
    'square@k=1': 'verified',
    'square@k=2': 'verified',
    'square@k=3': 'verified',
    sum: 'verified',
  })
  t.same(summary.outcomes.noisy?.mismatches, ['noise.txt'])
  t.same(
    events.find((e) => e.type === 'verify' && e.instance === 'noisy'),
    {
      type: 'verify',
      instance: 'noisy',
      deterministic: false,
      mismatches: ['noise.txt'],
    },
  )
  t.ok(
    events.some((e) => e.type === 'verify' && e.instance === 'square@k=2' && e.deterministic),
    'dir outputs compared too',
  )
  t.notOk(summary.ok, 'non-determinism makes the run not ok')
  t.equal(readFileSync(p.lockPath, 'utf8'), lockBefore, 'lock unchanged')
  t.same(storeListing(), storeBefore, 'store unchanged')
  t.same(readdirSync(join(p.root, '.cusp', 'work')), [], 'scratch directories removed')
})

t.test('verify with a target re-executes only that target', async (t) => {
  const { summary, ran } = await p.run({ verify: true, targets: ['square@k=2'] })
  t.same(ran, ['square@k=2'])
  t.same(Object.keys(summary.outcomes), ['square@k=2'])
  t.ok(summary.ok)
})

t.test('verify skips instances that are not cache hits and runs nothing else', async (t) => {
  const { summary, ran } = await p.run({ verify: true, targets: ['side', 'source'], overrides: ['side.word=changed'] })
  t.same(ran, ['source'])
  t.equal(summary.outcomes.side?.outcome, 'skipped')
  t.match(summary.outcomes.side?.because, /not a cache hit/)
  t.equal(summary.outcomes.source?.outcome, 'verified')
})
