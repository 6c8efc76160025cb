/**
 * Process entry for one stage job: `node <bundle of this file> <workDir> <harnessPid> <stage bundle>`
 * (stage-bundle.ts, spawn-stage.ts), or through tsx from the sources,
 * `node --import tsx src/harness/stage-process.ts <workDir> [<harnessPid>]` (`stageCommand` in
 * stage-api.ts: the fallback, and what a container runs). Reads `<workDir>/job.json`, imports
 * the stage module (its bundle when given one, which must have been built from the module the
 * job names), calls its `defineStage` function with a `StageContext`, and writes the returned
 * object as `<outDir>/result.json` (sorted keys, so equal results are equal bytes). Exit 0 on
 * success; on any error the stack goes to stderr and the exit status is 1. Stdout carries only
 * protocol lines (see stage-api.ts): console.log/info/debug are redirected to stderr first.
 *
 * Kill -9 safety: before it loads anything, the process records itself in `<workDir>/stage.pid`
 * (pid and /proc start time, owner.ts), so the sweep of a killed harness's work directory
 * (workdir.ts) finds it even when the harness died before writing that file. It exits (137) as
 * soon as its parent is not the harness that started it: at start-up (the harness may have been
 * killed while this process was still starting, when `process.ppid` already names the adopting
 * process) and every 200 ms after.
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

/** Runs the job in `workDir` (the stage from `bundle` when given); resolves to the exit status. */
export async function runStageJob(workDir: string, bundle?: string): Promise<number> {
  const job = JSON.parse(await readFile(join(workDir, 'job.json'), 'utf8')) as StageJob
  const mod = (await import(pathToFileURL(bundle ?? job.module).href)) as Record<string, unknown>
  if (bundle !== undefined && mod[SOURCE_EXPORT] !== job.module) {
    process.stderr.write(`${bundle}: a bundle of ${String(mod[SOURCE_EXPORT])}, but the job's stage is ${job.module}\n`)
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

/** Records this process in `<workDir>/stage.pid` (atomically); a failure leaves the harness's record. */
function recordSelf(workDir: string): void {
  const path = join(workDir, 'stage.pid')
  const tmp = `${path}.${process.pid}`
  try {
    writeFileSync(tmp, `${JSON.stringify(me())}\n`)
    renameSync(tmp, path)
  } catch {
    // the work directory is gone (swept) or read-only: the job will fail on job.json anyway
  }
}

const [workDir, harnessArg, bundle] = process.argv.slice(2)
if (workDir === undefined) {
  process.stderr.write('usage: stage-process.ts <workDir> [<harnessPid> [<stage bundle>]]\n')
  process.exit(2)
}
const parent = harnessArg !== undefined && harnessArg !== '' ? Number(harnessArg) : process.ppid
if (process.ppid !== parent) process.exit(137) // the harness died before this process started
recordSelf(workDir)
const toStderr = (...args: unknown[]): void => console.error(...args)
console.log = toStderr
console.info = toStderr
console.debug = toStderr
setInterval(() => {
  if (process.ppid !== parent) process.exit(137)
}, 200).unref()
try {
  const code = await runStageJob(workDir, bundle)
  process.stdout.write('', () => process.exit(code))
} catch (e: unknown) {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exit(1)
}
