/**
 * Process entry of a warm stage worker (the default for local runs, stage-workers.ts):
 * `node <bundle of this file> <harnessPid>`. It runs stage jobs one after another, each named
 * by one JSON line on stdin, `{"n":1,"workDir":"...","bundle":"..."}`, and answers each with an
 * end line on stdout and on stderr, `\u0000cusp-end {"n":1,"code":0,"dirty":[]}` (both streams,
 * so the harness knows it has every line the job wrote to either).
 *
 * What keeps one job from reaching into the next one's outputs:
 * - each job imports the stage bundle as a fresh module instance (a query on its URL), so the
 *   stage's module-level state and ours (everything bundled) start anew; packages from
 *   node_modules (an engine) are shared, which is what keeps them warm;
 * - after each job the worker compares what a job can leave behind with what it saw before the
 *   first one: properties of globalThis, process.env, the working directory, listeners on
 *   process, and live handles and requests (a timer or a stream still writing). Any difference is
 *   reported as `dirty` and the worker exits, so the harness starts a fresh one; so does any
 *   job that failed (exit status not 0). Node's lazily defined globals (Blob, atob, TextDecoder)
 *   are read once before that first look, so a job that merely uses one does not count;
 * - a shared package that must install globals to work (an engine) may stay warm only through a
 *   keeper (warm-keepers.ts): a module of the stage registers one, naming the globals and the
 *   process events it installs and a function that describes the package's state; the first job
 *   to register it sets that baseline, and every later job must leave exactly that state (same
 *   global identities, same listener counts, same description) or it costs the worker.
 * It exits (137) when its harness dies, like a one-job stage process (stage-job.ts), and records
 * itself (pid and start time) in each job's `stage.pid` for the sweep of a killed harness.
 */
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { consoleToStderr, exitWithHarness, recordSelf, runStageJob } from './stage-job.ts'
import { installKeepers } from './warm-keepers.ts'

interface WorkerJob {
  n: number
  workDir: string
  bundle: string
}

exitWithHarness(process.argv[2])
consoleToStderr()
process.stdout.write('') // the std streams' pipes are opened lazily: open them now, not inside the first job
process.stderr.write('')
for (const k of Reflect.ownKeys(globalThis)) {
  // Node defines some globals as getters that replace themselves with a value when first read.
  if (Reflect.getOwnPropertyDescriptor(globalThis, k)?.get !== undefined) Reflect.get(globalThis, k)
}
const keepers = installKeepers()

/** Counts per kind of the live handles and requests (a diff of two says what a job left running). */
function resources(): Map<string, number> {
  const m = new Map<string, number>()
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1)
  return m
}

const listeners = (): Map<string | symbol, number> => new Map(process.eventNames().map((e) => [e, process.listenerCount(e)]))

/** A global's value or accessors, read from its descriptor (no getter runs). */
const slot = (k: PropertyKey): unknown[] => {
  const d = Reflect.getOwnPropertyDescriptor(globalThis, k)
  return d === undefined ? [] : 'value' in d ? [d.value] : [d.get, d.set]
}
const baseGlobals = new Map(Reflect.ownKeys(globalThis).map((k) => [k, slot(k)]))
const baseEnv = JSON.stringify(process.env)
const baseCwd = process.cwd()
const baseListeners = listeners()

/** What the last job left behind, in words; empty when nothing. */
function leftovers(before: Map<string, number>): string[] {
  // A keeper registered by this job: what it names joins the baseline, as the job leaves it.
  const out: string[] = keepers.check(
    (k) => baseGlobals.set(k, slot(k)),
    (e) => baseListeners.set(e, process.listenerCount(e)),
  )
  for (const k of Reflect.ownKeys(globalThis)) {
    const was = baseGlobals.get(k)
    const now = slot(k)
    if (was === undefined) out.push(`global ${String(k)} added`)
    else if (was.length !== now.length || was.some((v, i) => !Object.is(v, now[i]))) out.push(`global ${String(k)} changed`)
  }
  for (const k of baseGlobals.keys()) if (!Reflect.getOwnPropertyDescriptor(globalThis, k)) out.push(`global ${String(k)} removed`)
  if (JSON.stringify(process.env) !== baseEnv) out.push('process.env changed')
  if (process.cwd() !== baseCwd) out.push('working directory changed')
  const now = listeners()
  for (const e of new Set([...now.keys(), ...baseListeners.keys()])) {
    if ((now.get(e) ?? 0) !== (baseListeners.get(e) ?? 0)) out.push(`process listeners of ${String(e)} changed`)
  }
  for (const [kind, n] of resources()) if (n > (before.get(kind) ?? 0)) out.push(`${n - (before.get(kind) ?? 0)} ${kind} left running`)
  return out
}

const write = (stream: NodeJS.WriteStream, text: string): Promise<void> => new Promise((res) => stream.write(text, () => res()))

const jobs: WorkerJob[] = []
let waiting: ((j: WorkerJob | undefined) => void) | undefined
let closed = false
createInterface({ input: process.stdin, crlfDelay: Infinity })
  .on('line', (line) => {
    const job = JSON.parse(line) as WorkerJob
    if (waiting !== undefined) {
      const w = waiting
      waiting = undefined
      w(job)
    } else jobs.push(job)
  })
  .on('close', () => {
    closed = true
    waiting?.(undefined)
  })

const next = (): Promise<WorkerJob | undefined> =>
  jobs.length > 0 ? Promise.resolve(jobs.shift()) : closed ? Promise.resolve(undefined) : new Promise((res) => (waiting = res))

for (let job = await next(); job !== undefined; job = await next()) {
  const before = resources()
  recordSelf(job.workDir)
  let code: number
  try {
    code = await runStageJob(job.workDir, `${pathToFileURL(job.bundle).href}?job=${job.n}`)
  } catch (e: unknown) {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
    code = 1
  }
  await new Promise((res) => setImmediate(res)) // let closed handles go
  const dirty = leftovers(before)
  const end = `\u0000cusp-end ${JSON.stringify({ n: job.n, code, dirty })}\n`
  await Promise.all([write(process.stdout, end), write(process.stderr, end)])
  if (code !== 0 || dirty.length > 0) process.exit(0)
}
process.exit(0)
