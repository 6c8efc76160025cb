/**
 * `npm run bench -- plan-noop [--runs N] [--keep]`: the executor's share of a no-op rerun. Writes the
 * 200-instance toy DAG (test/harness/fixtures/toy-dag.ts), seeds its store and lock WITHOUT
 * running any stage (fabricated outputs, published as run records under the fingerprints the
 * real planner computes), then times in-process `plan()`, a no-op `execute()`, and the whole CLI
 * (`node --import tsx src/main.ts`, a fresh process) doing the no-op rerun (median of N,
 * after one warm-up). No stage process is spawned in the timed part. Prints one JSON line.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { analyze, nodeReader } from '../src/harness/analyzer.ts'
import { execute, plan, planDetailed } from '../src/harness/run-pipeline.ts'
import { readLock, writeLock } from '../src/harness/lockfile.ts'
import { requiredOutputs } from '../src/harness/planner.ts'
import { LocalStore } from '../src/harness/store/local-store.ts'
import type { LockFile, StoredOutput } from '../src/harness/types.ts'
import { writeToyDag } from '../test/harness/fixtures/toy-dag.ts'

const args = process.argv.slice(2)
const runsAt = args.indexOf('--runs')
const RUNS = runsAt >= 0 ? Number(args[runsAt + 1]) : 9
const dir = mkdtempSync(join(tmpdir(), 'cusp-plan-noop-'))
try {
  const file = writeToyDag(dir, { etas: [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1], seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] })
  const analysed = analyze({ file, reader: nodeReader(dir) })
  if (!analysed.ok) throw new Error(JSON.stringify(analysed.error))
  const pipeline = analysed.value
  const store = new LocalStore(join(dir, 'artifacts'))
  const lockPath = join(dir, 'pipeline.lock')
  const opts = { pipeline, store, lockPath }

  // Seed: publish fabricated outputs level by level until the plan is all fresh.
  for (;;) {
    const p = await planDetailed(opts)
    if (!p.ok) throw new Error(JSON.stringify(p.error))
    const todo = p.value.steps.filter((s) => s.action !== 'fresh' && p.value.known.has(s.instance))
    if (todo.length === 0) break
    const lockRead = readLock(lockPath)
    const lock: LockFile = (lockRead.ok ? lockRead.value : undefined) ?? { schema: 1, instances: {} }
    for (const s of todo) {
      const inst = pipeline.instances.get(s.instance)!
      const fp = p.value.known.get(s.instance)!.fingerprint
      const outputs: Record<string, StoredOutput> = {}
      for (const name of requiredOutputs(inst)) {
        const put = await store.putBytes(Buffer.from(`${s.instance}/${name}\n`))
        outputs[name] = { ...put, kind: 'file' }
      }
      await store.putRun({
        schema: 1,
        fingerprint: fp.fingerprint,
        instance: s.instance,
        stage: inst.stage,
        breakdown: fp.breakdown,
        outputs,
        durationMs: 0,
        finishedAt: new Date().toISOString(),
      })
      lock.instances[s.instance] = { stage: inst.stage, fingerprint: fp.fingerprint, breakdown: fp.breakdown, outputs }
    }
    const w = writeLock(lockPath, lock)
    if (!w.ok) throw new Error(JSON.stringify(w.error))
  }

  const time = async (f: () => Promise<unknown>): Promise<number> => {
    await f()
    const xs: number[] = []
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint()
      await f()
      xs.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
    xs.sort((a, b) => a - b)
    return xs[xs.length >> 1]!
  }
  const planMs = await time(async () => {
    const r = await plan(opts)
    if (!r.ok || r.value.some((s) => s.action !== 'fresh')) throw new Error('not a no-op')
  })
  const executeMs = await time(async () => {
    const r = await execute(opts)
    if (!r.ok || Object.values(r.value.outcomes).some((o) => o.outcome !== 'fresh')) throw new Error('not a no-op')
  })
  const analyzeMs = await time(async () => analyze({ file, reader: nodeReader(dir) }))
  // End to end: the real CLI as a fresh process (node + tsx startup included).
  const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'main.ts')
  const cliMs = await time(async () => {
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), cli, '--file', file], {
      cwd: dir,
      env: { ...process.env, CUSP_STORE: '' },
      encoding: 'utf8',
    })
    if (r.status !== 0) throw new Error(`cli exited ${r.status}: ${r.stderr}`)
  })
  const load = loadavg()[0]?.toFixed(1)
  process.stdout.write(
    `${JSON.stringify({ bench: 'plan-noop', instances: pipeline.order.length, analyze_ms: analyzeMs, plan_ms: planMs, execute_noop_ms: executeMs, cli_noop_ms: cliMs, runs: RUNS, load })}\n`,
  )
} finally {
  if (args.includes('--keep')) process.stderr.write(`kept ${dir}\n`)
  else rmSync(dir, { recursive: true, force: true })
}
