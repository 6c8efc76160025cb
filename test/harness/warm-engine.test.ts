/**
 * The tfjs keeper (src/science/warm-engine.ts) in warm stage workers: a toy stage that computes
 * with tfjs keeps its worker, and so its engine, from job to job, with outputs byte-identical to
 * a process per job; a job that leaves a tensor alive, switches backend, registers a kernel or
 * sets a flag costs its worker (the rule can fail), and the worker says what was left.
 */
import t from 'tap'
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { closeStageWorkers } from '../../src/harness/stage-workers.ts'
import { Project, pipelineYaml } from './fixtures/counting-project.ts'

const KS = [1, 2, 3, 4, 5, 6, 7]
/** What job k does wrong (in run order: each after a clean job of its worker, but the flag, which comes first in one). */
const MISCHIEF: Record<number, { kind: string; left: RegExp }> = {
  2: { kind: 'tensor', left: /tfjs: 1 tensors left alive.*tfjs tensors changed \(0 -> 1\)/ },
  4: { kind: 'backend', left: /tfjs backend changed \(cpu -> toy\)/ },
  6: { kind: 'kernel', left: /tfjs kernels changed/ },
  7: { kind: 'flag', left: /tfjs: flag KEEP_INTERMEDIATE_TENSORS set/ },
}

const STAGE = `import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { defineStage } from 'cusp/src/harness/stage-api.ts'
import { offerWarmEngine, tf } from 'cusp/test/harness/fixtures/tf-stage-kit.ts'

offerWarmEngine()
const kept: unknown[] = []

export default defineStage<{ k: number }>(async (ctx) => {
  if (tf.findBackendFactory('toy') === null) tf.registerBackend('toy', tf.findBackendFactory('cpu')!, 0)
  await tf.setBackend('cpu')
  writeFileSync(join(process.env.TOY_COUNTER_DIR as string, 'pid-' + ctx.instance), String(process.pid))
  const total = tf.tidy(() => tf.tensor1d([1.5, 2.25, 3.125]).mul(tf.scalar(ctx.params.k)).square().sum())
  const s = await total.data()
  total.dispose()
  writeFileSync(join(ctx.outDir, 'out.txt'), 'k=' + ctx.params.k + ' sum=' + s[0] + ' tensors=' + tf.memory().numTensors + '\\n')
  const mischief = (process.env.TOY_MISCHIEF ?? '').split(',').find((m) => m.startsWith(ctx.instance + ':'))?.split(':')[1]
  if (mischief === 'tensor') kept.push(tf.tensor1d([1]))
  if (mischief === 'backend') await tf.setBackend('toy')
  if (mischief === 'kernel') tf.registerKernel({ kernelName: 'ToyKernel', backendName: 'cpu', kernelFunc: () => ({ dataId: {}, shape: [], dtype: 'float32' }) })
  if (mischief === 'flag') tf.env().set('KEEP_INTERMEDIATE_TENSORS', true)
  return { k: ctx.params.k }
})
`

function project(): Project {
  const p = new Project()
  mkdirSync(join(p.root, 'stages', 'tfjob'), { recursive: true })
  writeFileSync(join(p.root, 'stages', 'tfjob', 'index.ts'), STAGE)
  writeFileSync(
    join(p.root, 'schemas', 'stages', 'tfjob.params.schema.json'),
    JSON.stringify({ type: 'object', additionalProperties: false, properties: { k: { type: 'integer' } } }),
  )
  writeFileSync(
    join(p.root, 'pipeline.yaml'),
    `${pipelineYaml()}  tfjob:
    params: { k: 1 }
    matrix: { k: [${KS.join(', ')}] }
    outputs: { out.txt: file }
`,
  )
  return p
}

interface LogRecord {
  pid: number
  reused: boolean
  code: number | null
  dirty: string[]
}

const env = (p: Project, mode: string, mischief: string, log: string): Record<string, string | undefined> => ({
  ...process.env,
  TOY_COUNTER_DIR: p.counterDir,
  TOY_MISCHIEF: mischief,
  CUSP_STAGE_ENV: 'TOY_COUNTER_DIR,TOY_MISCHIEF',
  CUSP_STAGE_WORKERS: mode,
  CUSP_STAGE_WORKER_LOG: log,
})

const pidOf = (p: Project, k: number): number => Number(readFileSync(join(p.counterDir, `pid-tfjob@k=${k}`), 'utf8'))
const outputsOf = (p: Project): Record<string, unknown> =>
  Object.fromEntries(Object.entries(p.lock().instances).map(([id, e]) => [id, e.outputs]))

t.test('a clean tfjs stage keeps its worker and engine; outputs equal a process per job', async (t) => {
  const fresh = project()
  const warm = project()
  t.teardown(() => {
    fresh.cleanup()
    warm.cleanup()
  })
  const log = join(warm.counterDir, 'workers.jsonl')
  const a = await fresh.run({ jobs: 1, targets: ['tfjob'], processEnv: env(fresh, 'fresh', '', join(fresh.counterDir, 'none.jsonl')) })
  t.ok(a.summary.ok, 'process per job: ok')
  const b = await warm.run({ jobs: 1, targets: ['tfjob'], processEnv: env(warm, 'warm', '', log) })
  t.ok(b.summary.ok, 'warm workers: ok')
  await closeStageWorkers()
  t.same(outputsOf(warm), outputsOf(fresh), 'every output byte-identical')
  t.notOk(readdirSync(fresh.counterDir).includes('none.jsonl'), 'no worker log without warm workers')
  const recs = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LogRecord)
  t.equal(recs.length, KS.length, 'a log record per job')
  t.same(
    recs.filter((r) => r.dirty.length > 0),
    [],
    'no job left anything behind',
  )
  t.equal(recs.filter((r) => r.reused).length, KS.length - 1, 'every job after the first reused the worker')
  t.equal(new Set(KS.map((k) => pidOf(warm, k))).size, 1, 'one worker ran them all')
})

t.test('a job that leaves a tensor, switches backend, registers a kernel or sets a flag costs its worker', async (t) => {
  const p = project()
  t.teardown(() => p.cleanup())
  const log = join(p.counterDir, 'workers.jsonl')
  const mischief = Object.entries(MISCHIEF)
    .map(([k, m]) => `tfjob@k=${k}:${m.kind}`)
    .join(',')
  const { summary } = await p.run({ jobs: 1, targets: ['tfjob'], processEnv: env(p, 'warm', mischief, log) })
  await closeStageWorkers()
  t.ok(summary.ok, 'the run succeeds: leftovers cost workers, not jobs')
  const recs = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LogRecord)
  t.equal(recs.length, KS.length, 'a log record per job')
  for (const [k, m] of Object.entries(MISCHIEF)) {
    const pid = pidOf(p, Number(k))
    const mine = recs.filter((r) => r.pid === pid)
    const last = mine[mine.length - 1]!
    t.match(last.dirty.join(', '), m.left, `k=${k} (${m.kind}): reported`)
    const next = Number(k) + 1
    if (next <= KS.length) t.not(pidOf(p, next), pid, `k=${k} (${m.kind}): the next job ran in a new worker`)
  }
  t.equal(recs.filter((r) => r.dirty.length > 0).length, Object.keys(MISCHIEF).length, 'only those jobs cost their worker')
  t.equal(pidOf(p, 2), pidOf(p, 1), 'k=2 ran after k=1 in the same worker (its leftover is a change, not a baseline)')
})
