/**
 * Concurrency, adversarial suite category 6: two runs of one instance in two processes, a run
 * while another process holds the resume directory of its fingerprint, two runs writing one lock,
 * and a run while `gc` collects garbage. Every case orders the two sides with files and events
 * (a stage held by a control file, a child's JSON events), never with sleeps, so it passes under
 * any load; where the race lies between two steps of gc (it reads the lock and lists the store,
 * then deletes), the test runs gc's two phases around the run (`gcPlan`, then `gcApply`), which
 * is the worst interleaving a real gc process can meet. Each case asserts the outcome: exit code
 * or failure, a one-line message, every lock entry present, nothing already stored lost.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { main } from '../../src/harness/cli.ts'
import { captureMain, type MainRun } from './fixtures/run-main.ts'
import { parseListing } from '../../src/harness/store/dir-listing.ts'
import { gcApply, gcLayers, gcPlan } from '../../src/harness/sync.ts'
import type { ObjectDigest } from '../../src/harness/types.ts'
import { Project, REPO_ROOT } from './fixtures/counting-project.ts'

const CHILD = join(REPO_ROOT, 'test', 'harness', 'fixtures', 'harness-child.ts')
const HOUR = 3600_000

/** Polls `cond` (file state written by the other side); generous, since only the order matters. */
async function waitFor(cond: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** `execute()` on `p` in a child process (harness-child.ts), its events collected as they come. */
function child(p: Project, targets: string[]): { proc: ChildProcess; events: Record<string, unknown>[]; done: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, p.root, targets.join(',')], {
    cwd: REPO_ROOT,
    env: { ...process.env, TOY_COUNTER_DIR: p.counterDir, CUSP_STAGE_ENV: 'TOY_COUNTER_DIR' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const events: Record<string, unknown>[] = []
  let buf = ''
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (line.startsWith('{')) events.push(JSON.parse(line) as Record<string, unknown>)
    }
  })
  const done = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)))
  return { proc, events, done }
}

/** Every object and run record of the store, by relative path (for "nothing stored lost"). */
function storeFiles(p: Project): string[] {
  const out: string[] = []
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`)
      else if (!rel.startsWith('tmp/')) out.push(`${rel}${e.name}`)
    }
  }
  if (existsSync(p.storeRoot)) walk(p.storeRoot, '')
  return out.sort()
}

/** Makes every object and record in the store look `ms` old: time passing, without waiting for it. */
function age(p: Project, ms: number): void {
  const then = new Date(Date.now() - ms)
  for (const f of storeFiles(p)) utimesSync(join(p.storeRoot, f), then, then)
}

/** Every lock entry's run record and output objects are in the store and verify. */
async function lockIntact(t: Test, p: Project, what: string): Promise<void> {
  for (const [id, e] of Object.entries(p.lock().instances)) {
    t.ok(await p.store.getRun(e.fingerprint), `${what}: the run record of ${id} is in the store`)
    for (const [name, o] of Object.entries(e.outputs)) {
      const dest = join(p.root, '.check', `${id}-${name}-${Math.random()}`)
      const ok = o.kind === 'dir' ? await p.store.getDir(o.digest, dest) : await p.store.getFile(o.digest, dest)
      t.ok(ok, `${what}: ${id}/${name} is in the store and verifies`)
    }
  }
}

/** gc's listing reader for the local store (as `npm run pipeline -- gc` reads it). */
const listingOf = (p: Project) => async (d: ObjectDigest) => {
  const dest = join(p.root, '.listings', `${d}-${Math.random()}`)
  return (await p.store.getFile(d, dest)) ? parseListing(await readFile(dest)) : undefined
}

const cli = (p: Project, args: string[]): Promise<MainRun> =>
  captureMain(
    p.root,
    args,
    { PATH: process.env.PATH, HOME: p.root, NO_COLOR: '1', TOY_COUNTER_DIR: p.counterDir, CUSP_STAGE_ENV: 'TOY_COUNTER_DIR' },
    main,
  )

t.test('two runs of one instance in two processes: the second fails with one line naming the first; nothing lost', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run({ targets: ['source'] })
  const before = storeFiles(p)
  p.control('hold', 'side')
  // Both runs must execute `side` (never run before), so both need its resume directory.
  const first = child(p, ['side'])
  t.teardown(() => first.proc.kill('SIGKILL'))
  await waitFor(() => existsSync(join(p.counterDir, 'held-side')), 'the first run to be inside side')
  const second = await p.run({ targets: ['side'] })
  t.equal(second.summary.ok, false, 'the second run fails')
  const failed = second.events.find((e) => e.type === 'failed' && e.instance === 'side') as { failure?: { message?: string } } | undefined
  const message = failed?.failure?.message ?? JSON.stringify(second.summary)
  t.match(message, new RegExp(`^side is already being run by process ${first.proc.pid} on ${hostname()} \\(it owns .*\\); wait`))
  t.notMatch(message, /\n/, 'one line')
  t.same(second.ran, [], 'the second run never started the stage')
  p.control('hold', 'side', false)
  t.equal(await first.done, 0, 'the first run completes')
  t.match(first.events.at(-1), { type: 'exit', ok: true })
  t.same(Object.keys(p.lock().instances).sort(), ['side', 'source'], 'both entries in the lock')
  t.same(
    before.filter((f) => !storeFiles(p).includes(f)),
    [],
    'nothing already stored lost',
  )
  t.same(readdirSync(join(p.root, '.cusp', 'resume')), [], 'no resume directory or owner file left')
  await lockIntact(t, p, 'after both')
})

t.test(
  'a run while another live process owns the resume directory: one line naming it; the state kept; taken over once it is gone',
  async (t) => {
    const p = new Project()
    t.teardown(() => p.cleanup())
    await p.run({ targets: ['side'] })
    const fp = p.lock().instances.side!.fingerprint
    const resume = join(p.root, '.cusp', 'resume')
    mkdirSync(join(resume, fp), { recursive: true })
    writeFileSync(join(resume, fp, 'state'), 'partial state of a long run')
    // A live process that is not a cusp run, recorded as the owner (pid, host, start time) as a killed-later run would.
    const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
    t.teardown(() => holder.kill('SIGKILL'))
    await new Promise((r) => holder.once('spawn', r))
    const stat = readFileSync(`/proc/${holder.pid}/stat`, 'utf8')
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    writeFileSync(join(resume, `${fp}.owner`), JSON.stringify({ pid: holder.pid, host: hostname(), start }))
    const lockBefore = readFileSync(p.lockPath, 'utf8')

    const busy = await cli(p, ['run', '--stage', 'side', '--force'])
    t.equal(busy.code, 1, 'exit 1')
    t.match(busy.stderr, new RegExp(`side is already being run by process ${holder.pid} on ${hostname()}`))
    t.equal(busy.stderr.trimEnd().split('\n').length, 1, 'one line')
    t.notMatch(busy.stderr, /internal error|^\s+at /m, 'no stack')
    t.equal(readFileSync(join(resume, fp, 'state'), 'utf8'), 'partial state of a long run', 'the owner’s state is untouched')
    t.equal(readFileSync(p.lockPath, 'utf8'), lockBefore, 'the lock is unchanged')

    holder.kill('SIGKILL')
    await new Promise((r) => holder.once('exit', r))
    const after = await cli(p, ['run', '--stage', 'side', '--force'])
    t.equal(after.code, 0, `the owner gone, its claim is taken over: ${after.stderr}`)
    t.same(readdirSync(resume), [], 'published: the resume directory and the owner file are gone')
  },
)

t.test('two runs writing one lock: the entries of both are kept, whichever writes last', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  p.control('hold', 'side')
  // A reads the (missing) lock at its start and is held inside `side`; B then runs `source` and
  // writes the lock; A's lock write comes last, from a lock it read before B's entry existed.
  const a = child(p, ['side'])
  t.teardown(() => a.proc.kill('SIGKILL'))
  await waitFor(() => existsSync(join(p.counterDir, 'held-side')), 'run A to be inside side')
  const b = await p.run({ targets: ['source'] })
  t.equal(b.summary.ok, true)
  t.same(Object.keys(p.lock().instances), ['source'], "B's entry is written while A is running")
  p.control('hold', 'side', false)
  t.equal(await a.done, 0)
  t.same(Object.keys(p.lock().instances).sort(), ['side', 'source'], 'both entries present after A wrote last')
  t.notOk(existsSync(`${p.lockPath}.owner`), 'the lock owner file is released')
  // The other order: A' writes first while B' is held, B' last.
  p.control('hold', 'square@k=1')
  const b2 = child(p, ['square@k=1'])
  t.teardown(() => b2.proc.kill('SIGKILL'))
  await waitFor(() => existsSync(join(p.counterDir, 'held-square@k=1')), "run B' to be inside square@k=1")
  t.equal((await p.run({ targets: ['square@k=2'] })).summary.ok, true)
  p.control('hold', 'square@k=1', false)
  t.equal(await b2.done, 0)
  t.same(Object.keys(p.lock().instances).sort(), ['side', 'source', 'square@k=1', 'square@k=2'], 'no entry lost either way')
  await lockIntact(t, p, 'after both orders')
})

t.test('gc while a run is inside a stage: the live run loses nothing, old garbage goes', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run({ overrides: ['source.n=5'] })
  const garbage = (await p.store.listRuns()).map((r) => r.fingerprint)
  age(p, 2 * HOUR)
  // The live run: n=4 everywhere (new records and objects), held inside sum after everything upstream published.
  p.control('hold', 'sum')
  const run = child(p, [])
  t.teardown(() => run.proc.kill('SIGKILL'))
  await waitFor(() => existsSync(join(p.counterDir, 'held-sum')), 'the run to be inside sum')
  const live = (await p.store.listRuns()).filter((r) => !garbage.includes(r.fingerprint))
  t.equal(live.length, 4, 'source and the three squares published by the live run')
  const gc = await cli(p, ['gc'])
  t.equal(gc.code, 0, gc.stderr)
  t.match(gc.stdout, /deleted \d+ run records/)
  for (const r of live) t.ok(await p.store.getRun(r.fingerprint), `the live run's record of ${r.instance} is kept`)
  p.control('hold', 'sum', false)
  t.equal(await run.done, 0, 'the run completes')
  await lockIntact(t, p, 'after gc and the run')
  const again = await p.run()
  t.same(again.ran, [], 'a rerun finds everything fresh')
})

t.test('gc planned before a run restores old records and applied after: the restored entries survive', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run() // n=4
  await p.run({ overrides: ['source.n=5'] }) // the lock moves to n=5; the n=4 records are garbage
  age(p, 2 * HOUR)
  const [layer] = gcLayers(p.store)
  const plan = await gcPlan(p.lock(), layer!, listingOf(p)) // gc has read the lock and listed the store
  t.ok(plan.runs.length >= 5, `gc would collect the ${plan.runs.length} n=4 records`)
  const back = await p.run() // switched back to n=4: restored from those records
  t.same(back.ran, [], 'everything restored, nothing ran')
  await gcApply(plan, layer!) // gc deletes what it planned
  await lockIntact(t, p, 'after gc')
  const again = await p.run()
  t.same(again.ran, [], 'a rerun finds everything fresh, nothing recomputed')
})

t.test('gc planned before a run re-stores identical bytes and applied after: the new entries survive', async (t) => {
  const p = new Project()
  t.teardown(() => p.cleanup())
  await p.run({ targets: ['side'] })
  const old = p.lock().instances.side!
  rmLock(p)
  age(p, 2 * HOUR)
  const [layer] = gcLayers(p.store)
  const plan = await gcPlan({ schema: 1, instances: {} }, layer!, listingOf(p)) // no lock: everything is garbage
  t.equal(plan.runs.length, 1)
  const rerun = await p.run({ targets: ['side'], force: true }) // same bytes: dedup hits on the old objects
  t.same(rerun.ran, ['side'])
  t.equal(p.lock().instances.side!.outputs['side.txt']!.digest, old.outputs['side.txt']!.digest, 'the same object')
  await gcApply(plan, layer!)
  await lockIntact(t, p, 'after gc')
  t.same((await p.run({ targets: ['side'] })).ran, [], 'a rerun finds it fresh')
})

function rmLock(p: Project): void {
  writeFileSync(p.lockPath, JSON.stringify({ schema: 1, instances: {} }))
}

t.test(
  "gc's delete against a use, in the local store: a used entry stays, an unused one goes, a use after the delete is a miss",
  async (t) => {
    const p = new Project()
    t.teardown(() => p.cleanup())
    await p.run({ targets: ['side'] })
    const entry = p.lock().instances.side!
    const digest = entry.outputs['side.txt']!.digest
    age(p, 2 * HOUR)
    writeFileSync(join(p.root, 'same.txt'), 'hello\n')
    t.equal((await p.store.putFile(join(p.root, 'same.txt'))).digest, digest, 'a dedup write of the same bytes')
    t.equal(await p.store.deleteIfOld('object', digest, HOUR), false, 'the object it touched is kept')
    t.equal(await p.store.touchRun(entry.fingerprint), true, 'a restore marks the record used')
    t.equal(await p.store.deleteIfOld('run', entry.fingerprint, HOUR), false, 'the record is kept')
    t.ok(await p.store.getRun(entry.fingerprint), 'and still readable')
    age(p, 2 * HOUR)
    t.equal(await p.store.deleteIfOld('run', entry.fingerprint, HOUR), true, 'unused for two hours: deleted')
    t.equal(await p.store.touchRun(entry.fingerprint), false, 'a restore after that finds no record (a miss)')
    t.equal(await p.store.deleteIfOld('object', digest, HOUR), true)
    t.equal(await p.store.hasObject(digest), false)
    t.equal((await p.store.putFile(join(p.root, 'same.txt'))).digest, digest)
    t.equal(await p.store.hasObject(digest), true, 'the next write of those bytes stores them again')
    t.same(readdirSync(join(p.storeRoot, 'tmp')), [], 'nothing left aside')
  },
)
