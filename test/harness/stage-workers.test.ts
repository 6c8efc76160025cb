/**
 * Warm stage workers (`CUSP_STAGE_WORKERS=warm`, stage-workers.ts): a clean stage's jobs share a
 * worker; a stage that leaks state (a module-level counter, a counter on globalThis) cannot
 * change another job's output, because each job gets fresh module instances and a job that
 * leaves globals behind costs its worker; a failed job's worker is gone before the run goes
 * on; kill -9 of the worker fails the job like kill -9 of a stage process; and the outputs are
 * byte-identical to a run with a process per job.
 */
import t from 'tap'
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { pidAlive } from '../../src/harness/owner.ts'
import { closeStageWorkers } from '../../src/harness/stage-workers.ts'
import { Project, pipelineYaml } from './fixtures/counting-project.ts'

const KS = [1, 2, 3, 4, 5]

/** The toy project plus `clean` and `leak` stages over k = 1..5 that record their pid outside the store. */
function project(): Project {
  const p = new Project()
  const stage = (leaky: boolean): string => `import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { defineStage } from 'cusp/src/harness/stage-api.ts'
let calls = 0
export default defineStage<{ k: number }>(async (ctx) => {
  calls++
  const g = globalThis as unknown as { leakCount?: number }
  ${leaky ? 'g.leakCount = (g.leakCount ?? 0) + 1' : ''}
  writeFileSync(join(process.env.TOY_COUNTER_DIR as string, 'pid-' + ctx.instance), String(process.pid))
  if (process.env.TOY_FAIL === ctx.instance) throw new Error('asked to fail')
  writeFileSync(join(ctx.outDir, 'out.txt'), 'k=' + ctx.params.k + ' calls=' + calls + ' global=' + (g.leakCount ?? 0) + '\\n')
  return { calls }
})
`
  for (const name of ['clean', 'leak']) {
    mkdirSync(join(p.root, 'stages', name), { recursive: true })
    writeFileSync(join(p.root, 'stages', name, 'index.ts'), stage(name === 'leak'))
    writeFileSync(
      join(p.root, 'schemas', 'stages', `${name}.params.schema.json`),
      JSON.stringify({ type: 'object', additionalProperties: false, properties: { k: { type: 'integer' } } }),
    )
  }
  writeFileSync(
    join(p.root, 'pipeline.yaml'),
    `${pipelineYaml()}  clean:
    params: { k: 1 }
    matrix: { k: [${KS.join(', ')}] }
    outputs: { out.txt: file }
  leak:
    params: { k: 1 }
    matrix: { k: [${KS.join(', ')}] }
    outputs: { out.txt: file }
`,
  )
  return p
}

const env = (p: Project, mode: string, extra: Record<string, string> = {}): Record<string, string | undefined> => ({
  ...process.env,
  TOY_COUNTER_DIR: p.counterDir,
  CUSP_STAGE_ENV: 'TOY_COUNTER_DIR,TOY_FAIL',
  CUSP_STAGE_WORKERS: mode,
  ...extra,
})

const pids = (p: Project, stage: string): number[] =>
  readdirSync(p.counterDir)
    .filter((f) => f.startsWith(`pid-${stage}@`))
    .map((f) => Number(readFileSync(join(p.counterDir, f), 'utf8')))

const outputsOf = (p: Project): Record<string, unknown> =>
  Object.fromEntries(Object.entries(p.lock().instances).map(([id, e]) => [id, e.outputs]))

t.test('warm workers: reuse, no leaked state, outputs identical to a process per job', async (t) => {
  const fresh = project()
  const warm = project()
  t.teardown(() => {
    fresh.cleanup()
    warm.cleanup()
  })
  const a = await fresh.run({ jobs: 1, processEnv: env(fresh, 'fresh') })
  t.ok(a.summary.ok, 'process per job: ok')
  const b = await warm.run({ jobs: 1, processEnv: env(warm, 'warm') })
  t.ok(b.summary.ok, 'warm workers: ok')
  t.same(outputsOf(warm), outputsOf(fresh), 'every output byte-identical')
  for (const k of KS) {
    const out = (id: string): string => {
      const digest = (warm.lock().instances[id]!.outputs['out.txt'] as { digest: string }).digest
      return readFileSync(join(warm.storeRoot, 'objects', 'sha256', digest.slice(0, 2), digest.slice(2)), 'utf8')
    }
    t.equal(out(`leak@k=${k}`), `k=${k} calls=1 global=1\n`, `leak@k=${k}: a fresh module and no global from another job`)
    t.equal(out(`clean@k=${k}`), `k=${k} calls=1 global=0\n`, `clean@k=${k}: a fresh module instance`)
  }
  t.equal(new Set(pids(warm, 'clean')).size < KS.length, true, 'clean jobs shared a worker')
  t.equal(new Set(pids(warm, 'leak')).size, KS.length, 'each leaking job cost its worker: every one ran in a new one')
  t.equal(new Set(pids(fresh, 'clean')).size, KS.length, 'a process per job without warm workers')
  await closeStageWorkers()
})

t.test('a failed job kills its worker; the run reports it like a failed stage process', async (t) => {
  const p = project()
  t.teardown(() => p.cleanup())
  const { summary } = await p.run({ jobs: 1, targets: ['clean'], processEnv: env(p, 'warm', { TOY_FAIL: 'clean@k=3' }) })
  t.match(summary.failures, [{ reason: 'stage-failed', instance: 'clean@k=3', exitCode: 1 }])
  t.match(summary.failures[0], { stderrTail: /asked to fail/ })
  const failed = Number(readFileSync(join(p.counterDir, 'pid-clean@k=3'), 'utf8'))
  t.notOk(pidAlive(failed), 'the failed worker is gone')
  const again = await p.run({ jobs: 1, targets: ['clean'], processEnv: env(p, 'warm') })
  t.ok(again.summary.ok, 'the rerun succeeds')
  t.not(Number(readFileSync(join(p.counterDir, 'pid-clean@k=3'), 'utf8')), failed, 'in a new worker')
  await closeStageWorkers()
})

t.test('kill -9 of a warm worker fails its job with SIGKILL; the next run completes', async (t) => {
  const p = new Project({ big: { mb: 2 } })
  t.teardown(() => p.cleanup())
  p.control('hold', 'big')
  const e = env(p, 'warm')
  const running = p.run({ targets: ['big'], processEnv: e })
  while (!readdirSync(p.counterDir).includes('held-big')) await new Promise((res) => setTimeout(res, 5))
  process.kill(Number(readFileSync(join(p.counterDir, 'held-big'), 'utf8')), 'SIGKILL')
  const { summary } = await running
  t.match(summary.failures, [{ reason: 'stage-failed', instance: 'big', signal: 'SIGKILL' }])
  p.control('hold', 'big', false)
  const again = await p.run({ targets: ['big'], processEnv: e })
  t.ok(again.summary.ok, 'rerun ok')
  t.same(readdirSync(join(p.root, '.cusp', 'work')), [], 'no work directory left')
  await closeStageWorkers()
})
