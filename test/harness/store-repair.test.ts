/**
 * Corruption in a stored object is found and repaired end to end through `execute()`: a byte
 * flipped in a stored output object makes `--force --stage <it>` (and `--verify`) store good
 * bytes under the name again, where before ingest saw the name and kept the corrupt copy.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { Project } from './fixtures/counting-project.ts'

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

function flipOneByte(path: string): void {
  chmodSync(path, 0o644)
  const bytes = readFileSync(path)
  bytes[0] = bytes[0]! ^ 0x01
  writeFileSync(path, bytes)
  chmodSync(path, 0o444)
}

t.test('--force --stage repairs a corrupt stored output object', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run()
  const digest = p.lock().instances.source!.outputs['data.txt']!.digest
  const path = p.store.objectPath(digest)
  flipOneByte(path)
  t.not(sha(readFileSync(path)), digest, 'the stored object is corrupt')
  const { summary, ran } = await p.run({ targets: ['source'], force: true })
  t.ok(summary.ok)
  t.same(ran, ['source'])
  t.equal(sha(readFileSync(path)), digest, 'after --force the object hashes to its name')
})

t.test('--verify repairs a corrupt stored output object of a deterministic stage', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run()
  const digest = p.lock().instances.side!.outputs['side.txt']!.digest
  const path = p.store.objectPath(digest)
  flipOneByte(path)
  const { summary, events } = await p.run({ targets: ['side'], verify: true })
  t.ok(
    events.some((e) => e.type === 'verify' && e.instance === 'side' && e.deterministic),
    'side verified deterministic',
  )
  t.ok(summary.ok)
  t.equal(sha(readFileSync(path)), digest, 'after --verify the object hashes to its name')
})

t.test('a truncated stored object makes the instance rerun instead of counting as fresh', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run()
  const digest = p.lock().instances.side!.outputs['side.txt']!.digest
  const path = p.store.objectPath(digest)
  chmodSync(path, 0o644)
  writeFileSync(path, 'h')
  const { ran } = await p.run()
  t.same(ran, ['side'], 'the size check found it: side ran again')
  t.equal(sha(readFileSync(path)), digest, 'and its object is whole again')
})
