/**
 * kill -9, of a running stage and of the harness itself (a child process running `execute()`
 * on a large-output toy stage), at several points: before the stage finishes, right after it
 * has written its outputs, and while the harness publishes them. After every kill the store
 * and lock are consistent (every visible object verifies; every run record is complete; a lock
 * entry exists only for a complete run record; before the record is published there is
 * neither), and the next run completes with outputs byte-identical to an uninterrupted run.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT, Project } from './fixtures/counting-project.ts'
import type { StoredOutput } from '../../src/harness/types.ts'

const MB = 16
const CHILD = join(REPO_ROOT, 'test', 'harness', 'fixtures', 'harness-child.ts')

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms))

async function waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await sleep(3)
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function objectFiles(p: Project): string[] {
  const base = join(p.storeRoot, 'objects', 'sha256')
  if (!existsSync(base)) return []
  return readdirSync(base).flatMap((shard) => readdirSync(join(base, shard)).map((f) => join(base, shard, f)))
}

/** What a kill left behind, after checking that all of it is consistent. */
async function checkConsistent(t: Test, p: Project): Promise<string> {
  for (const f of objectFiles(p)) {
    const name = f.split('/').slice(-2).join('')
    t.equal(createHash('sha256').update(readFileSync(f)).digest('hex'), name, `visible object ${name.slice(0, 12)} is complete`)
  }
  const runs = await p.store.listRuns()
  for (const r of runs) {
    for (const [name, o] of Object.entries(r.outputs)) {
      const dest = join(p.root, '.check', `${r.instance}-${name}-${Math.random()}`)
      const got = o.kind === 'dir' ? await p.store.getDir(o.digest, dest) : await p.store.getFile(o.digest, dest)
      t.ok(got, `run record of ${r.instance}: output ${name} is in the store and verifies`)
    }
  }
  const lock = existsSync(p.lockPath) ? p.lock() : undefined
  const entry = lock?.instances.big
  if (entry !== undefined)
    t.ok(
      runs.some((r) => r.fingerprint === entry.fingerprint),
      'a lock entry only for a published run',
    )
  if (!runs.some((r) => r.instance === 'big')) t.notOk(entry, 'no run record, so no lock entry')
  return `${objectFiles(p).length} objects, ${runs.length} run records, lock entry: ${entry !== undefined}`
}

let reference: Record<string, StoredOutput> = {}

/** The next run completes, with outputs identical to the uninterrupted run's. */
async function recovers(t: Test, p: Project): Promise<void> {
  const { summary } = await p.run({ targets: ['big'] })
  t.ok(summary.ok, 'next run succeeds')
  t.match(summary.outcomes.big?.outcome, /^(ran|restored|fresh)$/, 'ran, restored, or fresh when the kill came after the lock write')
  t.same(p.lock().instances.big?.outputs, reference, 'outputs byte-identical to an uninterrupted run')
  for (const o of Object.values(reference)) t.ok(await p.store.hasObject(o.digest))
  t.same(readdirSync(join(p.root, '.cusp', 'work')), [], 'work directories of the killed harness swept')
}

function spawnHarness(p: Project): ReturnType<typeof spawn> {
  return spawn(process.execPath, ['--import', 'tsx', CHILD, p.root, 'big'], {
    cwd: REPO_ROOT,
    env: { ...process.env, TOY_COUNTER_DIR: p.counterDir, CUSP_STAGE_ENV: 'TOY_COUNTER_DIR' },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}

async function killHarness(child: ReturnType<typeof spawn>): Promise<void> {
  const exited = new Promise<void>((res) => child.once('exit', () => res()))
  child.kill('SIGKILL')
  await exited
}

/** The pids of stage processes the killed harness started (they may still run: an orphan). */
function stagePids(p: Project): number[] {
  const pids: number[] = []
  for (const f of ['big-started', 'held-big']) {
    const path = join(p.counterDir, f)
    if (existsSync(path)) pids.push(Number(readFileSync(path, 'utf8')))
  }
  return pids.filter((pid) => pid > 0)
}

/**
 * After the next run, no stage process of the killed harness is left: the sweep stops an orphan
 * before it removes the work directory the orphan writes into (no waiting for it to notice).
 */
function noOrphans(t: Test, pids: number[]): void {
  for (const pid of pids) t.notOk(aliveNotZombie(pid), `stage process ${pid} of the killed harness is gone`)
}

function aliveNotZombie(pid: number): boolean {
  if (!alive(pid)) return false
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
  } catch {
    return false
  }
}

t.before(async () => {
  const p = new Project({ big: { mb: MB } })
  const { summary } = await p.run({ targets: ['big'] })
  if (!summary.ok) throw new Error('reference run failed')
  reference = p.lock().instances.big!.outputs
  p.cleanup()
})

t.test('kill -9 of the running stage: nothing published, the next run completes', async (t) => {
  const p = new Project({ big: { mb: MB } })
  t.teardown(() => p.cleanup())
  p.control('hold', 'big')
  const running = p.run({ targets: ['big'] })
  await waitFor(() => existsSync(join(p.counterDir, 'held-big')), 'the stage to start')
  process.kill(Number(readFileSync(join(p.counterDir, 'held-big'), 'utf8')), 'SIGKILL')
  const { summary } = await running
  t.match(summary.failures, [{ reason: 'stage-failed', instance: 'big', signal: 'SIGKILL' }])
  t.equal(objectFiles(p).length, 0, 'no object stored')
  t.same(await p.store.listRuns(), [], 'no run record')
  t.notOk(existsSync(p.lockPath), 'no lock')
  p.control('hold', 'big', false)
  await recovers(t, p)
  const [attempt, resumeDir] = readFileSync(join(p.counterDir, 'big-attempt'), 'utf8').split(' ')
  t.equal(attempt, '2', "the rerun saw the killed attempt's state in its resume dir")
  t.notOk(existsSync(resumeDir!), 'the resume dir is removed once the outputs are published')
})

t.test('kill -9 of the harness while its stage runs: the orphan exits, nothing published', async (t) => {
  const p = new Project({ big: { mb: MB } })
  t.teardown(() => p.cleanup())
  p.control('hold', 'big')
  const child = spawnHarness(p)
  await waitFor(() => existsSync(join(p.counterDir, 'held-big')), 'the stage to start')
  await killHarness(child)
  const pids = stagePids(p)
  t.ok(pids.length > 0, 'the stage had started')
  t.comment(await checkConsistent(t, p))
  t.same(await p.store.listRuns(), [])
  p.control('hold', 'big', false)
  await recovers(t, p)
  noOrphans(t, pids)
})

const points: { name: string; when: (p: Project) => () => boolean; delayMs: number }[] = [
  { name: 'right after the stage wrote its outputs', when: (p) => () => existsSync(join(p.counterDir, 'big-written')), delayMs: 0 },
  { name: 'when the first object appears in the store', when: (p) => () => objectFiles(p).length > 0, delayMs: 0 },
  { name: '40 ms after the first object appears', when: (p) => () => objectFiles(p).length > 0, delayMs: 40 },
  { name: 'when the run record appears in the store', when: (p) => () => existsSync(join(p.storeRoot, 'runs')), delayMs: 0 },
]

for (const point of points) {
  t.test(`kill -9 of the harness ${point.name}`, async (t) => {
    const p = new Project({ big: { mb: MB } })
    t.teardown(() => p.cleanup())
    const child = spawnHarness(p)
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)))
    let finished = false
    void exited.then(() => (finished = true))
    await waitFor(() => point.when(p)() || finished, point.name, 45_000)
    if (point.delayMs > 0) await sleep(point.delayMs)
    const killed = !finished
    if (killed) await killHarness(child)
    const pids = stagePids(p)
    t.comment(`${killed ? 'killed' : 'too late: the harness had finished'} -> ${await checkConsistent(t, p)}`)
    await recovers(t, p)
    noOrphans(t, pids)
  })
}
