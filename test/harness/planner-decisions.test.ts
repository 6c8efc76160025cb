/**
 * The decisions a running plan asks the planner for (planner.ts), as pure functions on literal
 * graphs: what to do after an upstream ran, after a restore found corrupt objects, after an input
 * could not be read (repair, then give up at the limit), which instances --force reruns, and when
 * a planned `fresh` may be acted on as planned.
 */
import t from 'tap'
import { fingerprintFunction, resolveInputs } from '../../src/harness/fingerprint.ts'
import {
  actsAsPlanned,
  forcedInstances,
  nextAction,
  REPAIR_ATTEMPTS,
  SETTLE_ATTEMPTS,
  RESULT_OUTPUT,
  type KnownInstance,
  type StoreIndex,
} from '../../src/harness/planner.ts'
import type { Fingerprint, LockEntry, ObjectDigest, RunRecord, StageInstance, StoredOutput } from '../../src/harness/types.ts'

const d = (c: string): ObjectDigest => c.repeat(64).slice(0, 64) as ObjectDigest
const inst = (id: string, deps: string[] = [], provenance = false): StageInstance => ({
  id,
  stage: id.split('@')[0] ?? id,
  impl: `stages/${id}`,
  matrix: {},
  params: { n: 1 },
  deps: deps.map((u) => ({ as: 'in', instance: u, output: 'out' })),
  outputs: [{ name: 'out', kind: 'file' }],
  resources: { cpu: 1, memory: '1Gi', gpu: 0 },
  ...(provenance ? { provenance: true as const } : {}),
})
const outs = (c: string): Record<string, StoredOutput> => ({
  out: { digest: d(c), size: 1, kind: 'file' },
  [RESULT_OUTPUT]: { digest: d(c === 'f' ? 'e' : 'f'), size: 1, kind: 'file' },
})
const fpFn = fingerprintFunction({ code: () => 'code', env: () => ({ backend: 'none', versions: {} }) })
const fpOf = (i: StageInstance, inputs: Record<string, string>) => {
  const r = resolveInputs(i, (dep) =>
    inputs[dep.instance] === undefined ? undefined : { digest: d(inputs[dep.instance]!), fingerprint: d('9') as string as Fingerprint },
  )
  if (!r.ok) throw new Error('unresolved')
  return fpFn(i, r.value)
}
const index = (runs: RunRecord[] = [], objects: string[] = []): StoreIndex => ({
  runs: new Map(runs.map((r) => [r.fingerprint, r])),
  objects: new Map(objects.map((c) => [d(c), true])),
  complete: true,
})

t.test('re-decide after an upstream ran: same bytes -> fresh, new bytes -> run, a stored run -> restore', async (t) => {
  const b = inst('b', ['a'])
  const before = fpOf(b, { a: '1' })
  const entry: LockEntry = { stage: 'b', fingerprint: before.fingerprint, breakdown: before.breakdown, outputs: outs('2') }
  const all = index([], ['2', 'f'])
  const same = nextAction({
    instance: b,
    fingerprint: fpOf(b, { a: '1' }),
    entry,
    index: all,
    forced: false,
    mode: 'settle',
    missingSoFar: 0,
  })
  t.same(same, { kind: 'fresh', outputs: entry.outputs }, 'the upstream reproduced its bytes: early cutoff')
  const changed = fpOf(b, { a: '3' })
  const run = nextAction({ instance: b, fingerprint: changed, entry, index: all, forced: false, mode: 'settle', missingSoFar: 0 })
  t.equal(run.kind, 'run')
  if (run.kind === 'run') t.match(run.reasons, [{ kind: 'input-changed', input: 'in/a/out' }])
  const record: RunRecord = {
    schema: 1,
    fingerprint: changed.fingerprint,
    instance: 'b',
    stage: 'b',
    breakdown: changed.breakdown,
    outputs: outs('4'),
    durationMs: 1,
    finishedAt: 'x',
  }
  const restore = nextAction({
    instance: b,
    fingerprint: changed,
    entry,
    index: index([record], ['2', '4', 'f', 'e']),
    forced: false,
    mode: 'settle',
    missingSoFar: 0,
  })
  t.same(restore, { kind: 'restore', record })
  const forced = nextAction({
    instance: b,
    fingerprint: fpOf(b, { a: '1' }),
    entry,
    index: all,
    forced: true,
    mode: 'settle',
    missingSoFar: 0,
  })
  t.same(forced, { kind: 'run', reasons: [{ kind: 'forced' }] }, 'forced runs even when fresh')
})

t.test('a corrupt restore falls back to a run, without asking the store again', async (t) => {
  const a = inst('a')
  const r = nextAction({
    instance: a,
    fingerprint: fpOf(a, {}),
    entry: undefined,
    index: index(),
    forced: false,
    mode: 'settle',
    missingSoFar: 0,
    previous: { kind: 'restore-corrupt', outputs: ['out'] },
  })
  t.same(r, { kind: 'run', reasons: [{ kind: 'output-missing', output: 'out' }] })
})

t.test('a lost input: repair its producer until the attempt limit, then give up', async (t) => {
  const b = inst('b', ['a'])
  const fp = fpOf(b, { a: '1' })
  const previous = { kind: 'input-missing' as const, producer: 'a', output: 'out' }
  for (let n = 1; n < SETTLE_ATTEMPTS; n++) {
    t.same(
      nextAction({
        instance: b,
        fingerprint: fp,
        entry: undefined,
        index: index(),
        forced: false,
        mode: 'settle',
        missingSoFar: n,
        previous,
      }),
      { kind: 'repair', producer: 'a', output: 'out' },
      `settle, lost ${n} time(s)`,
    )
  }
  t.match(
    nextAction({
      instance: b,
      fingerprint: fp,
      entry: undefined,
      index: index(),
      forced: false,
      mode: 'settle',
      missingSoFar: SETTLE_ATTEMPTS,
      previous,
    }),
    { kind: 'give-up', message: /b: its inputs kept disappearing/ },
  )
  t.equal(REPAIR_ATTEMPTS < SETTLE_ATTEMPTS, true, 'a repair gives up sooner than the instance that asked for it')
  t.equal(
    nextAction({
      instance: b,
      fingerprint: fp,
      entry: undefined,
      index: index(),
      forced: true,
      mode: 'repair',
      missingSoFar: REPAIR_ATTEMPTS - 1,
      previous,
    }).kind,
    'repair',
  )
  t.equal(
    nextAction({
      instance: b,
      fingerprint: fp,
      entry: undefined,
      index: index(),
      forced: true,
      mode: 'repair',
      missingSoFar: REPAIR_ATTEMPTS,
      previous,
    }).kind,
    'give-up',
  )
  t.same(
    nextAction({ instance: b, fingerprint: fp, entry: undefined, index: index(), forced: true, mode: 'repair', missingSoFar: 0 }),
    { kind: 'run', reasons: [] },
    'a repair always runs',
  )
})

t.test('forcedInstances: the targets, else everything, and nothing without --force', async (t) => {
  const p = { order: ['a', 'b', 'c'] }
  t.same([...forcedInstances(p, ['b'], true)], ['b'])
  t.same([...forcedInstances(p, [], true)], ['a', 'b', 'c'])
  t.same([...forcedInstances(p, undefined, true)], ['a', 'b', 'c'])
  t.same([...forcedInstances(p, ['b'], false)], [])
})

t.test('actsAsPlanned: a planned fresh stands only while its inputs are what the plan assumed', async (t) => {
  const b = inst('b', ['a'])
  const planned = new Map<string, KnownInstance>([
    ['a', { fingerprint: fpOf(inst('a'), {}), outputs: outs('1') }],
    ['b', { fingerprint: fpOf(b, { a: '1' }), outputs: outs('2') }],
  ])
  const step = { instance: 'b', action: 'fresh' as const, reasons: [] }
  t.equal(
    actsAsPlanned(b, step, planned, (i) => (i === 'a' ? outs('1') : undefined)),
    true,
  )
  t.equal(
    actsAsPlanned(b, step, planned, (i) => (i === 'a' ? outs('3') : undefined)),
    false,
    'the upstream had to run and wrote other bytes',
  )
  t.equal(
    actsAsPlanned(b, { ...step, action: 'run' }, planned, () => outs('1')),
    false,
    'only a fresh step is acted on as planned',
  )
  t.equal(
    actsAsPlanned(b, step, planned, () => undefined),
    false,
    'an unknown input is not as planned',
  )
})

t.test('the fingerprint breakdown: sorted inputs, upstream only for provenance stages', async (t) => {
  const c = inst('c', ['z', 'a'])
  const fp = fpOf(c, { z: '1', a: '2' })
  t.same(Object.keys(fp.breakdown.inputs), ['in/a/out', 'in/z/out'])
  t.same(fp.breakdown.upstream, {}, 'no provenance: keyed on bytes only (early cutoff)')
  const p = fpOf(inst('c', ['z', 'a'], true), { z: '1', a: '2' })
  t.same(Object.keys(p.breakdown.upstream), ['a', 'z'])
  t.not(p.fingerprint, fp.fingerprint)
  const r = resolveInputs(c, (dep) => (dep.instance === 'a' ? { digest: d('1'), fingerprint: d('2') as string as Fingerprint } : undefined))
  t.same(r, { ok: false, unresolved: ['z'] })
})

t.test('a stored record with other output names than the declared ones is never restored, whatever the store checked', async (t) => {
  const b = inst('b')
  const fp = fpOf(b, {})
  const record = (outputs: Record<string, StoredOutput>): RunRecord => ({
    schema: 1,
    fingerprint: fp.fingerprint,
    instance: 'b',
    stage: 'b',
    breakdown: fp.breakdown,
    outputs,
    durationMs: 1,
    finishedAt: 'x',
  })
  const decideWith = (r: RunRecord) =>
    nextAction({
      instance: b,
      fingerprint: fp,
      entry: undefined,
      index: index([r], ['1', '2', 'f']),
      forced: false,
      mode: 'settle',
      missingSoFar: 0,
    })
  t.equal(decideWith(record(outs('1'))).kind, 'restore', 'control: exactly the declared outputs restore')
  const extra = { ...outs('1'), 'extra.bin': { digest: d('2'), size: 1, kind: 'file' as const } }
  t.equal(decideWith(record(extra)).kind, 'run', 'an extra output: run')
  const { out: _out, ...missing } = outs('1')
  t.equal(decideWith(record(missing)).kind, 'run', 'a missing output: run')
  const { [RESULT_OUTPUT]: _r, ...renamed } = outs('1')
  t.equal(
    decideWith(record({ ...renamed, 'result.jsonl': { digest: d('f'), size: 1, kind: 'file' } })).kind,
    'run',
    'a renamed output: run',
  )
})
