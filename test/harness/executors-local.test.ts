/**
 * `run --executor local-process` through the real CLI: every instance runs as the image's
 * entrypoint command in a child process (`run-stage`, publishing into the store itself) and the
 * scheduler only reads run records back. The lock it writes is identical to the in-process
 * executor's on the same project (same fingerprints, same output digests): one publish path.
 * A second run is all fresh (nothing spawned), and a failing stage fails the run with the
 * child's stderr in the failure.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { captureMain } from './fixtures/run-main.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const cli = (cwd: string, args: string[]) => captureMain(cwd, args, { ...process.env, CUSP_STORE: '', NO_COLOR: '1' })

t.test('local-process executor: same lock as in-process, then fresh; failures surface', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'cusp-localproc-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const a = join(base, 'a')
  const b = join(base, 'b')
  writeToyDag(a, { etas: [0.1], seeds: [0, 1] })
  cpSync(a, b, { recursive: true })

  const remote = await cli(a, ['run', '--executor', 'local-process', '--json'])
  t.equal(remote.code, 0, remote.stderr)
  const outcomes = (JSON.parse(remote.stdout.trim().split('\n').at(-1) ?? '{}') as { outcomes: Record<string, { outcome: string }> })
    .outcomes
  t.same(
    Object.values(outcomes).map((o) => o.outcome),
    Array(6).fill('ran'),
  )
  const local = await cli(b, ['run', '--json'])
  t.equal(local.code, 0, local.stderr)
  t.equal(readFileSync(join(a, 'pipeline.lock'), 'utf8'), readFileSync(join(b, 'pipeline.lock'), 'utf8'), 'identical locks')

  const again = await cli(a, ['run', '--executor', 'local-process', '--json'])
  t.equal(again.code, 0)
  t.match(again.stdout, /"ok":true/)
  t.notMatch(again.stdout, /"action":"run"/, 'nothing ran the second time')

  writeFileSync(join(a, 'pipeline.yaml'), readFileSync(join(a, 'pipeline.yaml'), 'utf8').replace('fail: false', 'fail: true'))
  const failing = await cli(a, ['run', '--executor', 'local-process'])
  t.equal(failing.code, 1)
  t.match(failing.stderr, /prepare was asked to fail/)
})
