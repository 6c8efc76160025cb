/**
 * `npm run bench -- objective-reuse [--rounds R] [--n N] [--workers W]`: what a job pays to open
 * its objective (objective.ts) with fresh worker threads (each boots tsx, imports tfjs, compiles
 * the wasm backend) against threads parked by the previous job in a warm stage worker
 * (thread-pool.ts; the worker's keeper registry is simulated on globalThis). Each round, in both
 * modes alternately: createObjective for the reference CNN on N = 500 seeded-random 28x28x1 images
 * (W = 1 thread, as stages run by default), one gradient, dispose; the wall and process CPU time
 * (every thread) of create + dispose and of the gradient, min/median/max over the rounds, the
 * ratios pooled/fresh of the medians, the gradient bits of both modes compared, and the load
 * average. Ends with one JSON line.
 */
import { loadavg } from 'node:os'
import type { Dataset } from '../src/science/hvp.ts'
import { buildModel, initParams, type ModelSpec } from '../src/science/models.ts'
import { createObjective, threadsOf } from '../src/science/objective.ts'
import { createRng } from '../src/science/rng.ts'

const args = process.argv.slice(2)
const opt = (name: string, dflt: string): number => {
  const i = args.indexOf(`--${name}`)
  return Number(i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt)
}
const rounds = opt('rounds', '5')
const n = opt('n', '500')
const workers = opt('workers', '1')

const spec: ModelSpec = { arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10, pool: 'avg' }
const rng = createRng(1)
const data: Dataset = {
  x: Float32Array.from({ length: n * 784 }, () => rng.uniform()),
  y: Int32Array.from({ length: n }, () => Math.floor(rng.uniform() * 10)),
  n,
  shape: [28, 28, 1],
}
const theta = initParams(buildModel(spec), 3)

const KEEPERS = Symbol.for('cusp.stage-worker.keepers')
const registry = new Map<string, unknown>()
/** Offers (pooled) or withdraws (fresh) the keeper registry of a warm stage worker. */
function warm(on: boolean): void {
  if (on) Object.defineProperty(globalThis, KEEPERS, { value: registry, configurable: true })
  else Reflect.deleteProperty(globalThis, KEEPERS)
}

/** Wall and process CPU milliseconds of `f`. */
async function timed<T>(f: () => Promise<T>): Promise<{ value: T; wall: number; cpu: number }> {
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const value = await f()
  const c = process.cpuUsage(c0)
  return { value, wall: performance.now() - t0, cpu: (c.user + c.system) / 1000 }
}

interface Round {
  openWall: number
  openCpu: number
  gradWall: number
  gradCpu: number
  reused: number
  bits: Buffer
}

/** One job's objective: open, one gradient, close. */
async function round(pooled: boolean): Promise<Round> {
  warm(pooled)
  const open = await timed(() => createObjective({ spec, data, workers, backend: 'wasm' }))
  const obj = open.value
  const grad = await timed(() => obj.gradient(theta))
  const close = await timed(() => obj.dispose())
  warm(false)
  const g = grad.value.grad
  return {
    openWall: open.wall + close.wall,
    openCpu: open.cpu + close.cpu,
    gradWall: grad.wall,
    gradCpu: grad.cpu,
    reused: threadsOf(obj).reused,
    bits: Buffer.from(g.buffer, g.byteOffset, g.byteLength),
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const spread = (xs: number[]): number[] => [Math.round(Math.min(...xs)), Math.round(median(xs)), Math.round(Math.max(...xs))]

const load = [loadavg()[0]!]
await round(true) // parks the first threads: every pooled round below reuses
const fresh: Round[] = []
const pooled: Round[] = []
for (let r = 0; r < rounds; r++) {
  fresh.push(await round(false))
  pooled.push(await round(true))
  console.error(
    `round ${r + 1}/${rounds}: fresh open ${Math.round(fresh[r]!.openCpu)} ms CPU, pooled ${Math.round(pooled[r]!.openCpu)} ms CPU`,
  )
}
load.push(loadavg()[0]!)
const sum = (rs: Round[], k: 'openWall' | 'openCpu' | 'gradWall' | 'gradCpu'): number[] => spread(rs.map((r) => r[k]))
const figures = {
  bench: 'objective-reuse',
  n,
  workers,
  rounds,
  load,
  fresh: {
    openWall: sum(fresh, 'openWall'),
    openCpu: sum(fresh, 'openCpu'),
    gradWall: sum(fresh, 'gradWall'),
    gradCpu: sum(fresh, 'gradCpu'),
  },
  pooled: {
    openWall: sum(pooled, 'openWall'),
    openCpu: sum(pooled, 'openCpu'),
    gradWall: sum(pooled, 'gradWall'),
    gradCpu: sum(pooled, 'gradCpu'),
  },
  ratio: {
    openWall: median(pooled.map((r) => r.openWall)) / median(fresh.map((r) => r.openWall)),
    openCpu: median(pooled.map((r) => r.openCpu)) / median(fresh.map((r) => r.openCpu)),
    gradCpu: median(pooled.map((r) => r.gradCpu)) / median(fresh.map((r) => r.gradCpu)),
  },
  reusedEveryPooledRound: pooled.every((r) => r.reused === workers),
  sameBits: [...fresh, ...pooled].every((r) => r.bits.equals(fresh[0]!.bits)),
}
console.log(JSON.stringify(figures))
process.exit(figures.sameBits && figures.reusedEveryPooledRound ? 0 : 1)
