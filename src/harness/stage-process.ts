/**
 * Process entry for one stage job: `node --import tsx src/harness/stage-process.ts <workDir>`
 * (built by `stageCommand` in stage-api.ts). Reads `<workDir>/job.json`, imports the stage
 * module, calls its `defineStage` function with a `StageContext`, and writes the returned object
 * as `<outDir>/result.json` (sorted keys, so equal results are equal bytes). Exit 0 on success;
 * on any error the stack goes to stderr and the exit status is 1. Stdout carries only protocol
 * lines (see stage-api.ts): console.log/info/debug are redirected to stderr first. If the
 * parent harness dies, this process exits too rather than run on as an orphan.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { encodeMessage, isStageDefinition, type StageContext, type StageJob, type StageMessage } from './stage-api.ts'
import { sortKeysDeep } from '../core/vocabulary.ts'
import type { JsonValue } from './types.ts'

function send(msg: StageMessage): void {
  process.stdout.write(encodeMessage(msg))
}

/** JSON text with object keys sorted recursively (arrays keep their order). */
function sortedJson(value: unknown): string {
  return `${JSON.stringify(sortKeysDeep(value), null, 2)}\n`
}

/** Runs the job in `workDir`; resolves to the exit status. */
export async function runStageJob(workDir: string): Promise<number> {
  const job = JSON.parse(await readFile(join(workDir, 'job.json'), 'utf8')) as StageJob
  const mod = (await import(pathToFileURL(job.module).href)) as { default?: unknown }
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

const workDir = process.argv[2]
if (workDir === undefined) {
  process.stderr.write('usage: stage-process.ts <workDir>\n')
  process.exit(2)
}
const toStderr = (...args: unknown[]): void => console.error(...args)
console.log = toStderr
console.info = toStderr
console.debug = toStderr
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) process.exit(137)
}, 500).unref()
try {
  const code = await runStageJob(workDir)
  process.stdout.write('', () => process.exit(code))
} catch (e: unknown) {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exit(1)
}
