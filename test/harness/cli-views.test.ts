/**
 * What the CLI prints, as pure functions of literal plans and events: the `status` JSON shape and
 * table, `why` naming old -> new values and following upstream changes to their root, the
 * registry inverting run records into artifacts, and the reporter's plain and live (TTY) views.
 */
import t from 'tap'
import { statusJson, statusText, whyText } from '../../src/harness/plan-views.ts'
import { artifactEntries, fmtBytes } from '../../src/harness/registry.ts'
import { createReporter } from '../../src/harness/reporter.ts'
import type {
  Fingerprint,
  FingerprintBreakdown,
  LockFile,
  ObjectDigest,
  PlanStep,
  RunRecord,
  StageInstance,
  ValidPipeline,
} from '../../src/harness/types.ts'

function pipeline(): ValidPipeline {
  const inst = (id: string): StageInstance => ({
    id,
    stage: id.split('@')[0] ?? id,
    impl: 'stages/x',
    matrix: {},
    params: {},
    deps: [],
    outputs: [],
    resources: { cpu: 1, memory: '1Gi', gpu: 0 },
  })
  const ids = ['prepare', 'train@eta=0.1', 'probe@eta=0.1']
  return {
    __valid: true,
    file: '/p/pipeline.yaml',
    root: '/p',
    profile: undefined,
    instances: new Map(ids.map((i) => [i, inst(i)])),
    order: ids,
  }
}

const steps: PlanStep[] = [
  { instance: 'probe@eta=0.1', action: 'run', reasons: [{ kind: 'upstream-changed', upstream: 'train@eta=0.1' }] },
  { instance: 'prepare', action: 'run', reasons: [{ kind: 'param-changed', key: 'seed', old: 1, new: 2 }] },
  {
    instance: 'train@eta=0.1',
    action: 'run',
    reasons: [
      { kind: 'upstream-changed', upstream: 'prepare' },
      { kind: 'code-changed', old: 'a'.repeat(64), new: 'b'.repeat(64) },
    ],
  },
]

t.test('status --json is one object with instances in topological order', async (t) => {
  const j = statusJson(pipeline(), steps)
  t.same(
    j.instances.map((i) => i.id),
    ['prepare', 'train@eta=0.1', 'probe@eta=0.1'],
  )
  const first = j.instances[0]
  t.equal(first?.stage, 'prepare')
  t.equal(first?.action, 'run')
  t.same(first?.reasons, [{ kind: 'param-changed', key: 'seed', old: 1, new: 2, text: 'param seed changed: 1 -> 2' }])
  t.same(Object.keys(first ?? {}).sort(), ['action', 'id', 'reasons', 'stage'])
  const text = statusText(pipeline(), steps, false)
  t.match(text, /prepare\s+would run/)
  t.match(text, /3 instances: 0 fresh, 0 would restore, 3 would run/)
  t.notMatch(text, /\x1b\[/, 'no colour codes when colour is off')
  t.match(statusText(pipeline(), steps, true), /\x1b\[/)
})

t.test('why follows an upstream change to the changed param, old -> new', async (t) => {
  const text = whyText(pipeline(), steps, 'probe@eta=0.1', false)
  t.match(text, /probe@eta=0\.1: would run/)
  t.match(text, /upstream train@eta=0\.1 changed/)
  t.match(text, /upstream prepare changed/)
  t.match(text, /param seed changed: 1 -> 2/)
  t.match(text, /code changed: aaaaaaaaaaaa -> bbbbbbbbbbbb/)
  const fresh = whyText(pipeline(), [{ instance: 'prepare', action: 'fresh', reasons: [] }], 'prepare', false)
  t.match(fresh, /fresh/)
  t.match(fresh, /matches the lock/)
  const j = JSON.parse(whyText(pipeline(), steps, 'prepare', true)) as { id: string; reasons: unknown[] }
  t.equal(j.id, 'prepare')
  t.equal(j.reasons.length, 1)
})

const bd = (params: Record<string, number>): FingerprintBreakdown => ({
  stage: 'train',
  code: 'c',
  params,
  inputs: {},
  upstream: {},
  env: { backend: 'cpu', versions: {} },
})
const run = (fp: string, digest: string, when: string, params: Record<string, number>): RunRecord => ({
  schema: 1,
  fingerprint: fp as Fingerprint,
  instance: 'train@eta=0.1',
  stage: 'train',
  breakdown: bd(params),
  outputs: { 'model.bin': { digest: digest as ObjectDigest, size: 2048, kind: 'file' } },
  durationMs: 1500,
  finishedAt: when,
})

t.test('artifacts: one entry per digest with every fingerprint that produced it', async (t) => {
  const runs = [
    run('f1', 'd1', '2026-01-01T00:00:00Z', { eta: 0.1, seed: 1 }),
    run('f2', 'd1', '2026-01-02T00:00:00Z', { eta: 0.1, seed: 2 }),
    run('f3', 'd2', '2026-01-03T00:00:00Z', { eta: 0.1, seed: 3 }),
  ]
  const lock: LockFile = {
    schema: 1,
    instances: { 'train@eta=0.1': { stage: 'train', fingerprint: 'f3' as Fingerprint, breakdown: bd({}), outputs: {} } },
  }
  const entries = artifactEntries(runs, lock)
  t.equal(entries.length, 2)
  const d1 = entries.find((e) => e.digest === 'd1')
  t.same(
    d1?.producedBy.map((p) => p.fingerprint),
    ['f2', 'f1'],
    'newest first',
  )
  t.same(d1?.names, ['train@eta=0.1/model.bin'])
  t.same(d1?.producedBy[0]?.params, { eta: 0.1, seed: 2 })
  t.equal(entries.find((e) => e.digest === 'd2')?.producedBy[0]?.current, true)
  t.equal(d1?.producedBy[0]?.current, false)
  t.same(artifactEntries(runs, lock, 'other'), [])
  t.equal(fmtBytes(512), '512 B')
  t.equal(fmtBytes(2048), '2.0 kB')
  t.equal(fmtBytes(3_500_000), '3.5 MB')
})

function sink(isTTY: boolean) {
  const chunks: string[] = []
  return { chunks, out: { write: (s: string) => chunks.push(s), isTTY, columns: 80 }, text: () => chunks.join('') }
}

t.test('plain reporter: one line per event, throttled progress, fresh instances only counted', async (t) => {
  let clock = 0
  const s = sink(false)
  const r = createReporter({ out: s.out, live: false, color: false, now: () => clock, plainProgressEveryMs: 1000 })
  r.onEvent({ type: 'plan', steps })
  r.onEvent({ type: 'done', instance: 'other', action: 'fresh', durationMs: 0 })
  r.onEvent({ type: 'start', instance: 'prepare', action: 'run' })
  clock = 100
  r.onEvent({ type: 'progress', instance: 'prepare', fraction: 0.1, message: 'too soon' })
  clock = 1500
  r.onEvent({ type: 'progress', instance: 'prepare', fraction: 0.3, message: 'step 3/10' })
  r.onEvent({ type: 'log', instance: 'prepare', message: 'hello\nworld' })
  clock = 2000
  r.onEvent({ type: 'done', instance: 'prepare', action: 'run', durationMs: 2000 })
  r.onEvent({ type: 'done', instance: 'restored-one', action: 'restore', durationMs: 30 })
  r.onEvent({
    type: 'failed',
    instance: 'train@eta=0.1',
    failure: { reason: 'stage-failed', instance: 'train@eta=0.1', exitCode: 3, signal: null, stderrTail: 'boom' },
  })
  r.onEvent({ type: 'skipped', instance: 'probe@eta=0.1', because: 'upstream train@eta=0.1 failed' })
  r.onEvent({ type: 'verify', instance: 'prepare', deterministic: false, mismatches: ['model.bin'] })
  r.onEvent({ type: 'verify', instance: 'aggregate', deterministic: true, mismatches: [] })
  r.close()
  const text = s.text()
  t.match(text, /plan: 3 instances: 3 to run/)
  t.match(text, /param seed changed: 1 -> 2/)
  t.notMatch(text, /other/, 'a fresh instance prints no line of its own')
  t.notMatch(text, /too soon/)
  t.match(text, /prepare: 30% step 3\/10/)
  t.match(text, /\[prepare\] hello world/)
  t.match(text, /done\s+prepare \(2\.0s\)/)
  t.match(text, /restored\s+restored-one \(30ms\)/)
  t.match(text, /failed\s+train@eta=0\.1: .*train@eta=0\.1/)
  t.match(text, /skipped\s+probe@eta=0\.1: upstream train@eta=0\.1 failed/)
  t.match(text, /NOT deterministic, differs in model\.bin/)
  t.match(text, /verified aggregate/)
  t.notMatch(text, /\x1b/)
  t.equal(r.summary(), '1 ran, 1 restored, 1 fresh, 1 failed, 1 skipped')
})

t.test('live reporter: running instances redrawn in place with elapsed time and progress', async (t) => {
  let clock = 0
  const s = sink(true)
  const r = createReporter({ out: s.out, live: true, color: false, now: () => clock })
  r.onEvent({ type: 'start', instance: 'a', action: 'run' })
  r.onEvent({ type: 'start', instance: 'b', action: 'run' })
  clock = 1200
  r.onEvent({ type: 'progress', instance: 'a', fraction: 0.4, message: 'epoch 2/5' })
  const last = s.chunks.slice(-2).join('')
  t.match(last, /\x1b\[3F\x1b\[J/, 'the two live lines and the footer are erased before the redraw')
  t.match(last, /a\s+1\.2s\s+40% epoch 2\/5\n\s+⠿ b\s+1\.2s\n\s+\[0\/\?\] 2 running\n$/)
  const before = s.chunks.length
  clock = 1250
  r.onEvent({ type: 'progress', instance: 'a', fraction: 0.5 })
  t.equal(s.chunks.length, before, 'progress within 100 ms of the last draw waits for the timer')
  r.onEvent({ type: 'done', instance: 'a', action: 'run', durationMs: 1200 })
  const after = s.chunks.slice(-3).join('')
  t.match(after, /done\s+a \(1\.2s\)\n/)
  t.match(after, /⠿ b/)
  t.notMatch(s.chunks.at(-1) ?? '', /⠿ a/, 'a finished: no longer in the live block')
  r.close()
  t.match(s.chunks.at(-1) ?? '', /\x1b\[2F\x1b\[J/, 'close clears the live block (b and the footer)')
})
