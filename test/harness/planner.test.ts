/**
 * The planner on literal graphs (no fs): one test per rerun reason, plus targets, downstream,
 * force, restore, and the lookup protocol (what the planner asks the store for).
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { fingerprintFunction, resolveInputs } from '../../src/harness/fingerprint.ts'
import { decide, planPipeline, RESULT_OUTPUT, type FingerprintFn, type StoreIndex } from '../../src/harness/planner.ts'
import type {
  EnvRecord,
  Fingerprint,
  JsonObject,
  LockFile,
  ObjectDigest,
  PlanStep,
  RunRecord,
  StageInstance,
  StoredOutput,
  ValidPipeline,
} from '../../src/harness/types.ts'

interface Spec {
  stage: string
  params?: JsonObject
  deps?: string[]
}

/** A pipeline whose instances each have one file output `out`; deps read `out` as `in`. */
function graph(specs: Record<string, Spec>): ValidPipeline {
  const instances = new Map<string, StageInstance>()
  for (const [id, s] of Object.entries(specs)) {
    instances.set(id, {
      id,
      stage: s.stage,
      impl: `stages/${s.stage}`,
      matrix: {},
      params: s.params ?? {},
      deps: (s.deps ?? []).map((d) => ({ as: 'in', instance: d, output: 'out' })),
      outputs: [{ name: 'out', kind: 'file' }],
      resources: { cpu: 1, memory: '1Gi', gpu: 0 },
    })
  }
  return { __valid: true, file: '/p/pipeline.yaml', root: '/p', profile: undefined, instances, order: Object.keys(specs) }
}

/** A toy world: code and env per stage are mutable; a "run" writes outputs derived from the fingerprint. */
class World {
  code: Record<string, string> = {}
  env: EnvRecord = { backend: 'none', versions: {} }
  lock: LockFile = { schema: 1, instances: {} }
  runs = new Map<Fingerprint, RunRecord>()
  objects = new Set<ObjectDigest>()
  /** Output bytes depend only on these (so identical params + inputs -> identical bytes). */
  constructor(public pipeline: ValidPipeline) {}

  /** The production fingerprint function (fingerprint.ts), with this world's code and env. */
  fingerprint: FingerprintFn = (inst, resolved) =>
    fingerprintFunction({ code: () => this.code[inst.stage] ?? 'c0', env: () => this.env })(inst, resolved)

  index(): StoreIndex {
    return { runs: new Map([...this.runs]), objects: new Map([...this.objects].map((d) => [d, true])), complete: true }
  }

  plan(extra: { targets?: string[]; downstream?: boolean; force?: boolean } = {}): PlanStep[] {
    const p = planPipeline({ pipeline: this.pipeline, fingerprint: this.fingerprint, lock: this.lock, index: this.index(), ...extra })
    if (!p.ok) throw new Error(JSON.stringify(p.error))
    return p.value.steps
  }

  /** Execute a plan the way the executor would: run/restore in order, re-deciding as it goes. */
  runAll(): void {
    const known = new Map<string, Record<string, StoredOutput>>()
    for (const id of this.pipeline.order) {
      const inst = this.pipeline.instances.get(id)!
      const resolved = resolveInputs(inst, (d) => {
        const o = known.get(d.instance)?.[d.output]
        const e = this.lock.instances[d.instance]
        return o === undefined || e === undefined ? undefined : { digest: o.digest, fingerprint: e.fingerprint }
      })
      if (!resolved.ok) throw new Error(`unresolved ${resolved.unresolved.join(', ')}`)
      const inputs = resolved.value.inputs
      const fp = this.fingerprint(inst, resolved.value)
      const d = decide(inst, fp, this.lock.instances[id], this.index(), false)
      let outputs = d.outputs
      if (d.action === 'run') {
        outputs = {}
        for (const name of ['out', RESULT_OUTPUT]) {
          const digest = sha(`${JSON.stringify(inst.params)}|${JSON.stringify(inputs)}|${this.code[inst.stage] ?? 'c0'}|${name}`)
          this.objects.add(digest)
          outputs[name] = { digest, size: 1, kind: 'file' }
        }
        this.runs.set(fp.fingerprint, {
          schema: 1,
          fingerprint: fp.fingerprint,
          instance: id,
          stage: inst.stage,
          breakdown: fp.breakdown,
          outputs,
          durationMs: 1,
          finishedAt: 'x',
        })
      }
      this.lock.instances[id] = { stage: inst.stage, fingerprint: fp.fingerprint, breakdown: fp.breakdown, outputs: outputs! }
      known.set(id, outputs!)
    }
  }

  setParams(id: string, params: JsonObject): void {
    const inst = this.pipeline.instances.get(id)!
    ;(this.pipeline.instances as Map<string, StageInstance>).set(id, { ...inst, params })
  }
}

const sha = (s: string): ObjectDigest => createHash('sha256').update(s).digest('hex') as ObjectDigest

/** a -> b@k=1, b@k=2 (a matrix stage) -> c (fan-in); d independent. */
function diamond(): World {
  return new World(
    graph({
      a: { stage: 'a', params: { n: 1 } },
      'b@k=1': { stage: 'b', params: { k: 1 }, deps: ['a'] },
      'b@k=2': { stage: 'b', params: { k: 2 }, deps: ['a'] },
      c: { stage: 'c', deps: ['b@k=1', 'b@k=2'] },
      d: { stage: 'd' },
    }),
  )
}

const actions = (steps: PlanStep[]): Record<string, string> => Object.fromEntries(steps.map((s) => [s.instance, s.action]))
const step = (steps: PlanStep[], id: string): PlanStep => steps.find((s) => s.instance === id)!

t.test('no lock entry: everything runs, and says never run even below a run (not upstream-changed)', async (t) => {
  const w = diamond()
  const steps = w.plan()
  t.same(actions(steps), { a: 'run', 'b@k=1': 'run', 'b@k=2': 'run', c: 'run', d: 'run' })
  t.same(step(steps, 'a').reasons, [{ kind: 'no-lock-entry' }])
  t.same(step(steps, 'b@k=1').reasons, [{ kind: 'no-lock-entry' }])
  t.same(step(steps, 'c').reasons, [{ kind: 'no-lock-entry' }])
  t.same(
    steps.map((s) => s.instance),
    ['a', 'b@k=1', 'b@k=2', 'c', 'd'],
    'topological order',
  )
})

t.test('after a run everything is fresh, with no reasons', async (t) => {
  const w = diamond()
  w.runAll()
  const steps = w.plan()
  t.ok(steps.every((s) => s.action === 'fresh' && s.reasons.length === 0))
})

t.test('param-changed on one matrix instance: it runs, its dependent is tentative, siblings fresh', async (t) => {
  const w = diamond()
  w.runAll()
  w.setParams('b@k=2', { k: 2, lr: 0.5 })
  const steps = w.plan()
  t.same(actions(steps), { a: 'fresh', 'b@k=1': 'fresh', 'b@k=2': 'run', c: 'run', d: 'fresh' })
  t.same(step(steps, 'b@k=2').reasons, [{ kind: 'param-changed', key: 'lr', old: undefined, new: 0.5 }])
  t.same(step(steps, 'c').reasons, [{ kind: 'upstream-changed', upstream: 'b@k=2' }])
})

t.test('restore after switching a param back, and input-changed below it', async (t) => {
  const w = diamond()
  w.runAll() // a: n=1
  w.setParams('a', { n: 2 })
  w.runAll() // a: n=2, lock points at n=2, store holds both
  w.setParams('a', { n: 1 })
  let steps = w.plan()
  t.equal(step(steps, 'a').action, 'restore')
  t.same(step(steps, 'a').reasons, [{ kind: 'param-changed', key: 'n', old: 2, new: 1 }])
  t.equal(step(steps, 'b@k=1').action, 'restore', 'its run record for the old input is in the store')
  t.equal(step(steps, 'b@k=1').reasons.length, 1)
  t.match(step(steps, 'b@k=1').reasons[0], { kind: 'input-changed', input: 'in/a/out' })
  t.equal(step(steps, 'd').action, 'fresh')

  // Without b@k=1's old run record it must run, still for input-changed.
  const rec = [...w.runs.values()].find((r) => r.instance === 'b@k=1' && r.fingerprint !== w.lock.instances['b@k=1']!.fingerprint)!
  w.runs.delete(rec.fingerprint)
  steps = w.plan()
  t.equal(step(steps, 'b@k=1').action, 'run')
  t.match(step(steps, 'b@k=1').reasons, [{ kind: 'input-changed', input: 'in/a/out' }])
  t.equal(step(steps, 'b@k=2').action, 'restore')
})

t.test('code-changed', async (t) => {
  const w = diamond()
  w.runAll()
  w.code.c = 'c1'
  const steps = w.plan()
  t.same(actions(steps), { a: 'fresh', 'b@k=1': 'fresh', 'b@k=2': 'fresh', c: 'run', d: 'fresh' })
  t.same(step(steps, 'c').reasons, [{ kind: 'code-changed', old: 'c0', new: 'c1' }])
})

t.test('env-changed reruns every instance whose env changed', async (t) => {
  const w = diamond()
  w.runAll()
  const old = w.env
  w.env = { backend: 'wasm', versions: { '@tensorflow/tfjs-core': '4.22.0' } }
  const steps = w.plan()
  t.same(step(steps, 'a'), { instance: 'a', action: 'run', reasons: [{ kind: 'env-changed', old, new: w.env }] })
  t.same(step(steps, 'd').reasons, [{ kind: 'env-changed', old, new: w.env }])
})

t.test('output-missing: deleting an object reruns exactly its producer (dependents tentative)', async (t) => {
  const w = diamond()
  w.runAll()
  w.objects.delete(w.lock.instances['b@k=1']!.outputs.out!.digest)
  const steps = w.plan()
  t.same(actions(steps), { a: 'fresh', 'b@k=1': 'run', 'b@k=2': 'fresh', c: 'run', d: 'fresh' })
  t.same(step(steps, 'b@k=1').reasons, [{ kind: 'output-missing', output: 'out' }])
  t.same(step(steps, 'c').reasons, [{ kind: 'upstream-changed', upstream: 'b@k=1' }])
  // Once b@k=1 reran deterministically, c re-decides to fresh (early cutoff).
  w.runAll()
  t.ok(w.plan().every((s) => s.action === 'fresh'))
})

t.test('output-missing for the result object too', async (t) => {
  const w = diamond()
  w.runAll()
  w.objects.delete(w.lock.instances.d!.outputs[RESULT_OUTPUT]!.digest)
  t.same(step(w.plan(), 'd').reasons, [{ kind: 'output-missing', output: RESULT_OUTPUT }])
})

t.test('targets: only the target and its stale ancestry', async (t) => {
  const w = diamond()
  w.runAll()
  w.setParams('a', { n: 5 })
  w.setParams('d', { z: 1 })
  const steps = w.plan({ targets: ['b@k=1'] })
  t.same(actions(steps), { a: 'run', 'b@k=1': 'run' }, 'b@k=2, c and d (stale) are not touched')
  const fresh = w.plan({ targets: ['d'] })
  t.same(actions(fresh), { d: 'run' })
})

t.test('downstream adds dependents and their other ancestors', async (t) => {
  const w = diamond()
  w.runAll()
  const steps = w.plan({ targets: ['b@k=1'], downstream: true })
  t.same(actions(steps), { a: 'fresh', 'b@k=1': 'fresh', 'b@k=2': 'fresh', c: 'fresh' })
  t.notOk(steps.some((s) => s.instance === 'd'))
})

t.test('force reruns the targets only (or everything without targets)', async (t) => {
  const w = diamond()
  w.runAll()
  const steps = w.plan({ targets: ['b@k=2'], force: true })
  t.same(actions(steps), { a: 'fresh', 'b@k=2': 'run' })
  t.same(step(steps, 'b@k=2').reasons, [{ kind: 'forced' }])
  const all = w.plan({ force: true })
  t.equal(step(all, 'a').reasons[0]?.kind, 'forced')
  t.same(step(all, 'c').reasons, [
    { kind: 'forced' },
    { kind: 'upstream-changed', upstream: 'b@k=1' },
    { kind: 'upstream-changed', upstream: 'b@k=2' },
  ])
})

t.test('unknown target is a failure', async (t) => {
  const w = diamond()
  const p = planPipeline({ pipeline: w.pipeline, fingerprint: w.fingerprint, lock: undefined, index: w.index(), targets: ['nope'] })
  t.notOk(p.ok)
  if (!p.ok) t.match(p.error, [{ reason: 'unknown-target', target: 'nope' }])
})

t.test('lookups the index lacks are reported, and the plan converges once they are answered', async (t) => {
  const w = diamond()
  w.runAll()
  w.setParams('a', { n: 3 })
  w.runAll()
  w.setParams('a', { n: 1 }) // a restores; b's fingerprints then need run-record lookups
  // Answer the way the executor's driver does: lock objects up front, and a run record's
  // objects together with the record.
  const runs = new Map<Fingerprint, RunRecord | null>()
  const objects = new Map<ObjectDigest, boolean>()
  for (const e of Object.values(w.lock.instances)) for (const o of Object.values(e.outputs)) objects.set(o.digest, w.objects.has(o.digest))
  let rounds = 0
  for (;;) {
    rounds++
    const p = planPipeline({ pipeline: w.pipeline, fingerprint: w.fingerprint, lock: w.lock, index: { runs, objects } })
    if (!p.ok) throw new Error('plan failed')
    const { missing } = p.value
    if (missing.runs.length === 0 && missing.objects.length === 0) {
      t.same(actions(p.value.steps), actions(w.plan()), 'same plan as with a complete index')
      break
    }
    for (const fp of missing.runs) {
      const rec = w.runs.get(fp)
      runs.set(fp, rec ?? null)
      for (const o of Object.values(rec?.outputs ?? {})) objects.set(o.digest, w.objects.has(o.digest))
    }
    for (const d of missing.objects) objects.set(d, w.objects.has(d))
    if (rounds > 10) throw new Error('no convergence')
  }
  t.ok(rounds >= 2 && rounds <= 4, `converged in ${rounds} rounds (one per level of the DAG + 1)`)
})
