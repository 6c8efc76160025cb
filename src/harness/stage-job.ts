/**
 * Running one stage job inside a stage process, shared by the one-job process (stage-process.ts)
 * and the warm worker (stage-worker.ts): read `<workDir>/job.json`, import the stage module (its
 * bundle when given one, which must have been built from the module the job names), call its
 * `defineStage` function with a `StageContext`, and write the returned object as
 * `<outDir>/result.json` (sorted keys, so equal results are equal bytes). Also how such a
 * process records itself in a work directory and keeps stdout for protocol lines.
 */
import { renameSync, writeFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { me } from './owner.ts'
import { encodeMessage, isStageDefinition, type StageContext, type StageJob, type StageMessage } from './stage-api.ts'
import { sortKeysDeep } from '../core/vocabulary.ts'
import type { JsonValue } from './types.ts'

/** The export a stage bundle carries its source path under (stage-bundle.ts SOURCE_EXPORT). */
const SOURCE_EXPORT = '__cuspStageSource'

function send(msg: StageMessage): void {
  process.stdout.write(encodeMessage(msg))
}

/** JSON text with object keys sorted recursively (arrays keep their order). */
function sortedJson(value: unknown): string {
  return `${JSON.stringify(sortKeysDeep(value), null, 2)}\n`
}

/**
 * Runs the job in `workDir`; resolves to the exit status. The stage comes from `bundleUrl` when
 * given (a bundle's file URL, perhaps with a query that makes it a fresh module instance), else
 * from the job's module.
 */
export async function runStageJob(workDir: string, bundleUrl?: string): Promise<number> {
  const job = JSON.parse(await readFile(join(workDir, 'job.json'), 'utf8')) as StageJob
  const mod = (await import(bundleUrl ?? pathToFileURL(job.module).href)) as Record<string, unknown>
  if (bundleUrl !== undefined && mod[SOURCE_EXPORT] !== job.module) {
    process.stderr.write(`${bundleUrl}: a bundle of ${String(mod[SOURCE_EXPORT])}, but the job's stage is ${job.module}\n`)
    return 1
  }
  if (!isStageDefinition(mod.default)) {
    process.stderr.write(`${job.module}: the default export must be defineStage(...) from src/harness/stage-api.ts\n`)
    return 1
  }
  const ctx: StageContext = {
    instance: job.instance,
    params: job.params,
    inputs: job.inputs,
    outDir: job.outDir,
    progress: (fraction, message) => send(message === undefined ? { type: 'progress', fraction } : { type: 'progress', fraction, message }),
    log: (message) => send({ type: 'log', message }),
    ...(job.resumeDir !== undefined ? { resumeDir: job.resumeDir } : {}),
    env: job.env ?? { backend: 'none', versions: {} },
  }
  const result: unknown = await mod.default.run(ctx)
  if (typeof result !== 'object' || result === null || Array.isArray(result)) {
    process.stderr.write(`${job.instance}: the stage must return a JSON object (got ${JSON.stringify(result) ?? typeof result})\n`)
    return 1
  }
  await writeFile(join(job.outDir, 'result.json'), sortedJson(result as JsonValue))
  return 0
}

/** Records this process in `<workDir>/stage.pid` (pid, host, start time; atomically). */
export function recordSelf(workDir: string): void {
  const path = join(workDir, 'stage.pid')
  const tmp = `${path}.${process.pid}`
  try {
    writeFileSync(tmp, `${JSON.stringify(me())}\n`)
    renameSync(tmp, path)
  } catch {
    // the work directory is gone (swept) or read-only: the job will fail on job.json anyway
  }
}

/** Sends console.log/info/debug to stderr, so stdout carries only protocol lines. */
export function consoleToStderr(): void {
  const toStderr = (...args: unknown[]): void => console.error(...args)
  console.log = toStderr
  console.info = toStderr
  console.debug = toStderr
}

/**
 * The harness this process belongs to: `harnessArg` (its pid, from the command line) or, when
 * absent, the parent at start-up. Exits (137) at once when the parent is not it (the harness
 * died while this process was starting) and, checked every 200 ms, as soon as it dies.
 */
export function exitWithHarness(harnessArg: string | undefined): void {
  const parent = harnessArg !== undefined && harnessArg !== '' ? Number(harnessArg) : process.ppid
  if (process.ppid !== parent) process.exit(137)
  setInterval(() => {
    if (process.ppid !== parent) process.exit(137)
  }, 200).unref()
}
