/**
 * The objective's thread pool (thread-pool.ts). Inside a warm stage worker (simulated here by the
 * keeper registry on globalThis) disposed threads are parked and the next objective on the same
 * backend reuses them; loss, gradient and HVP from reused threads are bit-identical to fresh
 * threads, after jobs with another model and other data; a thread that leaked a tensor, switched
 * backend or failed a request is ended, not parked; an objective not yet disposed is reported by the pool's keeper;
 * a parked thread keeps no process alive. Outside a registry dispose ends the threads as before.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { execFile } from 'node:child_process'
import type { Dataset } from '../../src/science/hvp.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { createObjective, pokeThreads, threadsOf, type Objective } from '../../src/science/objective.ts'
import { parkedThreads, setParkedIdleMs } from '../../src/science/thread-pool.ts'

const KEEPERS = Symbol.for('cusp.stage-worker.keepers')
const cnn: ModelSpec = { arch: 'cnn', activation: 'relu', inputShape: [12, 12, 1], classes: 3, pool: 'avg' }
const mlp: ModelSpec = { arch: 'mlp', activation: 'tanh', inputShape: [6, 6, 1], classes: 4, hidden: [8] }

function lcg(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/** A job's inputs: seeded random data for `spec`, θ, v and the chunk size. */
function job(spec: ModelSpec, n: number, seed: number, chunkSize: number) {
  const r = lcg(seed)
  const [h, w, c] = spec.inputShape
  const data: Dataset = {
    x: Float32Array.from({ length: n * h * w * c }, () => r() * 2 - 1),
    y: Int32Array.from({ length: n }, () => Math.floor(r() * spec.classes)),
    n,
    shape: spec.inputShape,
  }
  const model = buildModel(spec)
  return { spec, data, chunkSize, theta: initParams(model, seed), v: Float32Array.from({ length: model.size }, () => r() - 0.5) }
}
type Job = ReturnType<typeof job>

const jobs = { cnn: job(cnn, 50, 42, 16), mlpA: job(mlp, 60, 7, 16), mlpB: job(mlp, 21, 9, 8) }

/** The job's loss, gradient and HVP as bytes, and how many of its threads were reused. */
async function results(j: Job, workers: number): Promise<{ bytes: Buffer; reused: number }> {
  const obj = await createObjective({ spec: j.spec, data: j.data, chunkSize: j.chunkSize, workers, backend: 'wasm' })
  const [loss, g, hv] = await Promise.all([obj.loss(j.theta), obj.gradient(j.theta), obj.hvp(j.theta, j.v)]).finally(() => obj.dispose())
  const f32 = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
  const f64 = (x: number): Buffer => Buffer.from(Float64Array.of(x).buffer)
  return { bytes: Buffer.concat([f64(loss), f64(g.loss), f32(g.grad), f32(hv)]), reused: threadsOf(obj).reused }
}

/** Thread ids of the objective's workers (-1 for one that has exited). */
const ids = (o: Objective): number[] => threadsOf(o).workers.map((w) => w.threadId)

/** Offers the keeper registry, as a warm stage worker does before its first job. */
function warmWorker(): Map<string, unknown> {
  const registry = new Map<string, unknown>()
  Object.defineProperty(globalThis, KEEPERS, { value: registry, configurable: true })
  return registry
}

const fresh = new Map<keyof typeof jobs, Buffer>()

t.test('outside a warm stage worker, dispose ends the threads and nothing is reused', async (t) => {
  t.equal((globalThis as Record<symbol, unknown>)[KEEPERS], undefined, 'no registry')
  for (const name of Object.keys(jobs) as Array<keyof typeof jobs>) {
    const r = await results(jobs[name], 2)
    t.equal(r.reused, 0, `${name}: fresh threads`)
    fresh.set(name, r.bytes)
  }
  const obj = await createObjective({ spec: mlp, data: jobs.mlpA.data, chunkSize: 16, workers: 2 })
  t.ok(ids(obj).length === 2 && ids(obj).every((id) => id > 0), 'two threads running')
  await obj.dispose()
  t.same(ids(obj), [-1, -1], 'both ended by dispose')
  t.equal(parkedThreads(), 0, 'none parked')
})

t.test('reused threads give the bits of fresh threads, after another model and other data', async (t) => {
  const keepers = warmWorker()
  const order: Array<[keyof typeof jobs, number, number]> = [
    ['mlpA', 2, 0],
    ['cnn', 2, 2],
    ['mlpB', 2, 2],
    ['mlpA', 1, 1],
    ['cnn', 2, 2],
  ]
  for (const [name, workers, reused] of order) {
    const r = await results(jobs[name], workers)
    t.equal(r.reused, reused, `${name}, ${workers} thread(s): ${reused} reused`)
    t.ok(r.bytes.equals(fresh.get(name)!), `${name}: loss, gradient and HVP bit-identical to fresh threads`)
    t.equal(parkedThreads(), 2, 'both threads parked after dispose')
  }
  const a = await createObjective({ spec: cnn, data: jobs.cnn.data, chunkSize: 16, workers: 2 })
  const kept = ids(a)
  await a.dispose()
  const b = await createObjective({ spec: mlp, data: jobs.mlpB.data, chunkSize: 8, workers: 2 })
  t.same(ids(b).sort(), kept.sort(), 'the same threads serve the next objective')
  t.ok(
    kept.every((id) => id > 0),
    'alive while parked',
  )
  await b.dispose()
  const keeper = keepers.get('objective-threads') as { state(): unknown; problems(): string[] }
  t.same(keeper.state(), {}, "the pool's keeper has a constant state")
  const open = await createObjective({ spec: mlp, data: jobs.mlpB.data, chunkSize: 8, workers: 1 })
  t.match(keeper.problems().join(), /1 objective threads still in use/, 'an open objective is reported')
  await open.dispose()
  t.same(keeper.problems(), [], 'nothing once disposed')
})

t.test('a thread that leaked a tensor, switched backend or failed a request is ended, not parked', async (t) => {
  t.equal(parkedThreads(), 2, 'two parked threads to start with')
  const leaky = await createObjective({ spec: cnn, data: jobs.cnn.data, chunkSize: 16, workers: 2 })
  t.equal(threadsOf(leaky).reused, 2, 'both reused')
  pokeThreads(leaky, 'leak')
  t.ok((await leaky.loss(jobs.cnn.theta)) > 0, 'still computes')
  await leaky.dispose()
  t.equal(parkedThreads(), 0, 'leaky threads not parked')
  t.same(ids(leaky), [-1, -1], 'they were ended')

  const first = await createObjective({ spec: cnn, data: jobs.cnn.data, chunkSize: 16, workers: 2 })
  t.equal(threadsOf(first).reused, 0, 'fresh threads')
  pokeThreads(first, 'leak')
  await first.dispose()
  t.equal(parkedThreads(), 0, 'a leak in the first job is not made the baseline')

  const firstSwitch = await createObjective({ spec: cnn, data: jobs.cnn.data, chunkSize: 16, workers: 2 })
  t.equal(threadsOf(firstSwitch).reused, 0, 'fresh threads')
  pokeThreads(firstSwitch, 'backend')
  await firstSwitch.dispose()
  t.equal(parkedThreads(), 0, 'a backend switch in the first job is not made the baseline')

  const r = await results(jobs.cnn, 2)
  t.equal(parkedThreads(), 2, 'clean threads parked')
  t.ok(r.bytes.equals(fresh.get('cnn')!), 'bits as fresh threads')
  const failing = await createObjective({ spec: cnn, data: jobs.cnn.data, chunkSize: 16, workers: 2 })
  t.equal(threadsOf(failing).reused, 2, 'both reused')
  pokeThreads(failing, 'fail')
  await t.rejects(failing.loss(jobs.cnn.theta), /failed by a test hook/, 'the request fails')
  await failing.dispose()
  t.equal(parkedThreads(), 0, 'threads of a failed request not parked')
  t.same(ids(failing), [-1, -1], 'they were ended')

  await results(jobs.mlpB, 2)
  const switched = await createObjective({ spec: mlp, data: jobs.mlpB.data, chunkSize: 8, workers: 2 })
  t.equal(threadsOf(switched).reused, 2, 'both reused')
  pokeThreads(switched, 'backend')
  await switched.dispose()
  t.equal(parkedThreads(), 0, 'threads whose engine differs from their baseline (backend) not parked')
  t.same(ids(switched), [-1, -1], 'they were ended')
})

t.test('a test hook armed but never fired does not follow a thread into the next objective', async (t) => {
  await results(jobs.mlpB, 2)
  const armed = await createObjective({ spec: mlp, data: jobs.mlpB.data, chunkSize: 8, workers: 2 })
  pokeThreads(armed, 'fail')
  await armed.dispose()
  t.equal(parkedThreads(), 2, 'parked: no request failed')
  const r = await results(jobs.mlpA, 2)
  t.equal(r.reused, 2, 'both reused')
  t.ok(r.bytes.equals(fresh.get('mlpA')!), 'the next objective computes, with the bits of fresh threads')
})

t.test('a parked thread that died before its end was reported is replaced, not a failure', async (t) => {
  const a = await createObjective({ spec: mlp, data: jobs.mlpA.data, chunkSize: 16, workers: 2 })
  const workers = threadsOf(a).workers
  await a.dispose()
  t.equal(parkedThreads(), 2, 'both parked')
  // Ending a parked thread behind the pool's back and taking it in the same tick: node reports a
  // thread's exit only asynchronously, so the pool hands out a thread that is already dying.
  void workers[0]!.terminate()
  const b = await createObjective({ spec: mlp, data: jobs.mlpA.data, chunkSize: 16, workers: 2 })
  t.equal(threadsOf(b).reused, 1, 'one reused thread, one started in place of the dead one')
  t.equal(workers[0]!.threadId, -1, 'the dead thread is not among them')
  const [loss, g, hv] = await Promise.all([b.loss(jobs.mlpA.theta), b.gradient(jobs.mlpA.theta), b.hvp(jobs.mlpA.theta, jobs.mlpA.v)])
  await b.dispose()
  const f32 = (x: Float32Array): Buffer => Buffer.from(x.buffer, x.byteOffset, x.byteLength)
  const f64 = (x: number): Buffer => Buffer.from(Float64Array.of(x).buffer)
  t.ok(Buffer.concat([f64(loss), f64(g.loss), f32(g.grad), f32(hv)]).equals(fresh.get('mlpA')!), 'bit-identical to fresh threads')
  t.equal(parkedThreads(), 2, 'both parked after dispose')
})

t.test('a parked thread that no objective takes is ended after the idle time', async (t) => {
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
  const obj = await createObjective({ spec: mlp, data: jobs.mlpB.data, chunkSize: 8, workers: 2 })
  const workers = threadsOf(obj).workers
  setParkedIdleMs(1)
  await obj.dispose()
  // The timers are unref'd and ~1 ms long: wait (bounded by tap's timeout) until both threads have exited.
  while (parkedThreads() > 0 || workers.some((w) => w.threadId >= 0)) await sleep(20)
  t.equal(parkedThreads(), 0, 'none parked')
  t.same(
    workers.map((w) => w.threadId),
    [-1, -1],
    'both ended',
  )
  setParkedIdleMs(60_000)
})

t.test('a parked thread keeps no process alive', async (t) => {
  const child = fileURLToPath(new URL('./fixtures/parked-child.ts', import.meta.url))
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', child], { timeout: 120_000 })
  t.equal(stdout.trim(), 'parked=1', 'the child parked its thread and exited by itself')
})
