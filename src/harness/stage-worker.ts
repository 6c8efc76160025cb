/**
 * Process entry of a warm stage worker (`CUSP_STAGE_WORKERS=warm`, stage-workers.ts):
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
 *   job that failed (exit status not 0).
 * It exits (137) when its harness dies, like a one-job stage process (stage-job.ts), and records
 * itself (pid and start time) in each job's `stage.pid` for the sweep of a killed harness.
 */
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { consoleToStderr, exitWithHarness, recordSelf, runStageJob } from './stage-job.ts'

interface WorkerJob {
  n: number
  workDir: string
  bundle: string
}

exitWithHarness(process.argv[2])
consoleToStderr()
process.stdout.write('') // stdout's pipe is opened lazily: open it now, not inside the first job

/** Counts per kind of the live handles and requests (a diff of two says what a job left running). */
function resources(): Map<string, number> {
  const m = new Map<string, number>()
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1)
  return m
}

const listeners = (): string =>
  process
    .eventNames()
    .map((e) => `${String(e)}:${process.listenerCount(e)}`)
    .sort()
    .join(',')

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
  const out: string[] = []
  for (const k of Reflect.ownKeys(globalThis)) {
    const was = baseGlobals.get(k)
    const now = slot(k)
    if (was === undefined) out.push(`global ${String(k)} added`)
    else if (was.length !== now.length || was.some((v, i) => !Object.is(v, now[i]))) out.push(`global ${String(k)} changed`)
  }
  for (const k of baseGlobals.keys()) if (!Reflect.getOwnPropertyDescriptor(globalThis, k)) out.push(`global ${String(k)} removed`)
  if (JSON.stringify(process.env) !== baseEnv) out.push('process.env changed')
  if (process.cwd() !== baseCwd) out.push('working directory changed')
  if (listeners() !== baseListeners) out.push('process listeners changed')
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
