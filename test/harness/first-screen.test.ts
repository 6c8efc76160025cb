/**
 * The first screen of a run: on a terminal one line per stage (counts and the dominant reason),
 * each instance's reasons under --dry-run, -v and off a terminal, "never run" for an instance
 * the lock has never seen (not "upstream X changed"), many changed upstreams in one line, and the
 * ETA line from the store's run records (eta-history.ts rebuilding an earlier run's upstream to
 * size it). Pure views on literal plans, then the real CLI in-process on the toy project.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { main } from '../../src/main.ts'
import { parseCli } from '../../src/harness/cli-args.ts'
import { loadEtaPlan, recordSizer } from '../../src/harness/eta-history.ts'
import { dominantReason, stageLines } from '../../src/harness/plan-summary.ts'
import { describeReasons } from '../../src/harness/reasons.ts'
import { createReporter } from '../../src/harness/reporter.ts'
import type {
  ArtifactStore,
  Fingerprint,
  ObjectDigest,
  PlanStep,
  RunRecord,
  StageInstance,
  ValidPipeline,
} from '../../src/harness/types.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const ups = (n: number) => Array.from({ length: n }, (_, i) => ({ kind: 'upstream-changed' as const, upstream: `u${i}` }))

t.test('many changed upstreams are one line; three or fewer are listed', async (t) => {
  t.same(describeReasons([{ kind: 'code-changed', old: 'a'.repeat(64), new: 'b'.repeat(64) }, ...ups(12)]), [
    'code changed: aaaaaaaaaaaa -> bbbbbbbbbbbb',
    '12 upstreams changed: u0, u1, u2 and 9 more',
  ])
  t.same(describeReasons(ups(3)), ['upstream u0 changed', 'upstream u1 changed', 'upstream u2 changed'])
  t.same(describeReasons([]), [])
})

const step = (instance: string, action: PlanStep['action'], reasons: PlanStep['reasons'] = []): PlanStep => ({ instance, action, reasons })
const stageOf = (id: string): string => id.split('@')[0] ?? id

t.test('one line per stage: counts, the dominant reason, and the fresh stages folded into one line', async (t) => {
  const steps = [
    step('data', 'fresh'),
    step('other', 'fresh'),
    step('train@a=1', 'run', [{ kind: 'no-lock-entry' }]),
    step('train@a=2', 'run', [{ kind: 'no-lock-entry' }]),
    step('train@a=3', 'restore'),
    step('probe@a=1', 'run', [{ kind: 'param-changed', key: 'k', old: 1, new: 2 }, ...ups(1)]),
    step('probe@a=2', 'run', ups(1)),
    step('probe@a=3', 'fresh'),
  ]
  t.same(stageLines(steps, stageOf), [
    '  train  2 run (never run)         1 restore  0 fresh',
    '  probe  2 run (upstream changed)  0 restore  1 fresh',
    '  2 more stages fresh (2 instances)',
  ])
  // A tie goes to the root cause, not to "upstream changed".
  t.equal(dominantReason([step('p', 'run', [{ kind: 'code-changed', old: 'a', new: 'b' }, ...ups(1)])]), 'code changed')
  t.equal(
    dominantReason([
      step('p', 'run', [{ kind: 'forced' }]),
      step('q', 'run', [{ kind: 'no-lock-entry' }]),
      step('r', 'run', [{ kind: 'forced' }]),
    ]),
    'forced: 2 of 3',
  )
  t.equal(dominantReason([step('p', 'run')]), 'selected')
  t.same(stageLines([step('data', 'fresh')], stageOf), [], 'nothing to do: no table, the header says it')
  const many = [
    ...Array.from({ length: 12 }, (_, i) => step(`train@i=${i}`, 'run', [{ kind: 'no-lock-entry' }])),
    step('audit', 'run', ups(12)),
  ]
  t.same(stageLines(many, stageOf), [
    '  train  12 run (never run)         0 restore  0 fresh',
    '  audit   1 run (upstream changed)  0 restore  0 fresh',
  ])
})

function sink(isTTY: boolean) {
  let text = ''
  return { out: { write: (s: string) => (text += s), isTTY, columns: 200 }, text: () => text }
}

t.test('the reporter: stage lines without instance lines on a terminal, the ETA once, nothing after close', async (t) => {
  const s = sink(true)
  const r = createReporter({ out: s.out, live: true, color: false, now: () => 0, instanceReasons: false, stageOf })
  r.onEvent({ type: 'plan', steps: [step('train@a=1', 'run', [{ kind: 'no-lock-entry' }]), step('data', 'fresh')] })
  r.setEta({ tasks: [{ id: 'train@a=1', deps: [], weight: 1, ms: 90_000 }], slots: 2, runsUsed: 4, untimed: 0 })
  r.onEvent({ type: 'start', instance: 'train@a=1', action: 'run' })
  r.close()
  r.setEta({ tasks: [{ id: 'x', deps: [], weight: 1, ms: 1 }], slots: 1, runsUsed: 1, untimed: 0 })
  const text = s.text()
  t.match(text, /plan: 2 instances: 1 to run, 0 to restore, 1 fresh\n {2}train {2}1 run \(never run\) {2}0 restore {2}0 fresh\n/)
  t.notMatch(text, /run train@a=1:/, 'no per-instance line')
  t.match(text, /eta: ~2 min \(an estimate from 4 earlier runs of these stages, on 2 job slots\)\n/)
  t.match(text, /\[0\/2\] 1 running {2}~2 min left \(estimate\)/, 'the live footer counts down from the estimate')
  t.equal(text.match(/eta:/g)?.length, 1, 'an ETA arriving after close is not printed')
  t.same(parseCli(['-v']), { ok: true, value: { ...(parseCli([]) as { value: object }).value, verbose: true } })
})

const digest = (c: string) => c.repeat(64) as ObjectDigest
const instance = (id: string, stage: string, deps: StageInstance['deps'] = []): StageInstance => ({
  id,
  stage,
  impl: `stages/${stage}`,
  matrix: {},
  params: {},
  deps,
  outputs: [],
  resources: { cpu: 1, memory: '1Gi', gpu: 0 },
})
const record = (
  inst: string,
  stage: string,
  params: Record<string, number>,
  inputs: Record<string, ObjectDigest>,
  out: ObjectDigest,
  ms: number,
): RunRecord => ({
  schema: 1,
  fingerprint: `fp-${inst}-${JSON.stringify(params)}` as Fingerprint,
  instance: inst,
  stage,
  breakdown: { stage, code: 'c', params, inputs, upstream: {}, env: { backend: 'none', versions: {} } },
  outputs: { 'out.bin': { digest: out, size: 1, kind: 'file' } },
  durationMs: ms,
  finishedAt: '2026-01-01T00:00:00Z',
})

t.test('history: an earlier run is sized with its own upstream, rebuilt from the record of the input it read', async (t) => {
  const pipeline: ValidPipeline = {
    __valid: true,
    file: '/p/pipeline.yaml',
    root: '/p',
    profile: undefined,
    instances: new Map<string, StageInstance>([
      ['data', { ...instance('data', 'data'), params: { n: 1000 } }],
      ['train', { ...instance('train', 'train', [{ as: 'd', instance: 'data', output: 'out.bin' }]), params: { it: 10 } }],
    ]),
    order: ['data', 'train'],
  }
  // Work = it x the dataset's n: 10 x 1000 now; earlier 2 x 5 (took 1 s) and 4 x 10 (took 3 s).
  const workSize = (i: StageInstance, lookup: (id: string) => StageInstance | undefined) => {
    if (i.stage !== 'train') return undefined
    const data = lookup(i.deps[0]?.instance ?? '')
    return data === undefined ? undefined : Number(i.params.it) * Number(data.params.n)
  }
  const records = [
    record('data', 'data', { n: 5 }, {}, digest('a'), 100),
    record('data', 'data', { n: 10 }, {}, digest('b'), 100),
    record('train', 'train', { it: 2 }, { 'd/data/out.bin': digest('a') }, digest('c'), 1000),
    record('train', 'train', { it: 4 }, { 'd/data/out.bin': digest('b') }, digest('d'), 3000),
  ]
  const size = recordSizer(pipeline, records, workSize)
  t.same(records.map(size), [undefined, undefined, 10, 40])
  let listed = 0
  const store = { listRuns: async () => (listed++, records) } as unknown as ArtifactStore
  const steps = [step('data', 'fresh'), step('train', 'run', [{ kind: 'param-changed', key: 'it', old: 4, new: 10 }])]
  const plan = await loadEtaPlan({ store, pipeline, steps, slots: 2, remote: false, workSize })
  // The line through (10, 1000 ms) and (40, 3000 ms): 1000/3 + 200/3 x size; at 10,000: 667,000 ms.
  t.equal(Math.round(plan?.tasks[0]?.ms ?? 0), 667_000)
  t.equal(plan?.runsUsed, 2, 'only the records of the planned stages count')
  t.equal(await loadEtaPlan({ store, pipeline, steps: [step('train', 'fresh')], slots: 2, remote: false }), undefined)
  t.equal(listed, 1, 'nothing to run: the store is not listed')
  const broken = { listRuns: async () => Promise.reject(new Error('no listing')) } as unknown as ArtifactStore
  t.equal(
    (await loadEtaPlan({ store: broken, pipeline, steps, slots: 2, remote: false }))?.runsUsed,
    0,
    'an unlistable store is no history',
  )
})

const dir = mkdtempSync(join(tmpdir(), 'cusp-first-screen-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
writeToyDag(dir, { etas: [0.1], seeds: [0, 1] })

async function cli(args: string[], isTTY: boolean) {
  const out = sink(isTTY)
  const err = sink(false)
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1' }
  const code = await main(args, { stdout: out.out, stderr: err.out, cwd: dir, env })
  return { code, stdout: out.text(), stderr: err.text() }
}

t.test('the CLI on the toy project: first screen, never run, per-instance reasons where asked, ETA from earlier runs', async (t) => {
  const first = await cli(['--dry-run'], true)
  t.equal(first.code, 0)
  t.match(first.stdout, /^ {2}train +2 run \(never run\) {2}0 restore {2}0 fresh$/m)
  t.match(first.stdout, /run probe@eta=0\.1,seed=0: never run \(no lock entry\)/, '--dry-run lists each instance on a terminal too')
  t.notMatch(first.stdout, /upstream \S+ changed/, 'never run, not upstream changed')
  t.match(first.stdout, /^eta: unknown, no earlier runs to estimate from$/m)

  t.equal((await cli([], false)).code, 0)

  const piped = await cli(['--dry-run', '--set', 'prepare.n=9'], false)
  t.notMatch(piped.stdout, /^ {2}train {2}/m, 'off a terminal: no stage table, every instance instead')
  t.match(piped.stdout, /run prepare: param n changed: 8 -> 9/)
  t.match(piped.stdout, /run aggregate: upstream probe@eta=0\.1,seed=0 changed; upstream probe@eta=0\.1,seed=1 changed\n/)
  t.match(piped.stdout, /^eta: ~\d+ (s|min) \(an estimate from 6 earlier runs of these stages, on \d+ job slots?\)$/m)
  const status = JSON.parse((await cli(['status', '--json', '--set', 'prepare.n=9'], false)).stdout) as {
    instances: Array<{ id: string; reasons: Array<{ kind: string }> }>
  }
  t.equal(status.instances.find((i) => i.id === 'aggregate')?.reasons.length, 2, '--json keeps every upstream')
  const table = await cli(['--dry-run', '--set', 'prepare.n=9'], true)
  t.match(table.stdout, /^ {2}prepare +1 run \(param n changed\) +0 restore {2}0 fresh$/m)
  t.match(table.stdout, /^ {2}train +2 run \(upstream changed\) +0 restore {2}0 fresh$/m)

  const tty = await cli(['--set', 'prepare.n=9', '--stage', 'prepare'], true)
  t.equal(tty.code, 0)
  t.match(tty.stdout, /^ {2}prepare {2}1 run \(param n changed\) {2}0 restore {2}0 fresh$/m)
  t.notMatch(tty.stdout, /run prepare:/, 'a run on a terminal: one line per stage only')
  t.match(tty.stdout, /^eta: ~\d+ (s|min) \(an estimate from 1 earlier run of these stages/m)

  const verbose = await cli(['-v', '--force', '--stage', 'prepare'], true)
  t.match(verbose.stdout, /run prepare: forced \(--force\)/, '-v lists each instance on a terminal')
})
