/**
 * Process entry for one stage job: `node <bundle of this file> <workDir> <harnessPid> <stage bundle>`
 * (stage-bundle.ts, spawn-stage.ts), or through tsx from the sources,
 * `node --import tsx src/harness/stage-process.ts <workDir> [<harnessPid>]` (`stageCommand` in
 * stage-api.ts: the fallback, and what a container runs). Runs the job (stage-job.ts). Exit 0 on
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
import { pathToFileURL } from 'node:url'
import { consoleToStderr, exitWithHarness, recordSelf, runStageJob } from './stage-job.ts'

export { runStageJob } from './stage-job.ts'

const [workDir, harnessArg, bundle] = process.argv.slice(2)
if (workDir === undefined) {
  process.stderr.write('usage: stage-process.ts <workDir> [<harnessPid> [<stage bundle>]]\n')
  process.exit(2)
}
exitWithHarness(harnessArg)
recordSelf(workDir)
consoleToStderr()
try {
  const code = await runStageJob(workDir, bundle === undefined ? undefined : pathToFileURL(bundle).href)
  process.stdout.write('', () => process.exit(code))
} catch (e: unknown) {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exit(1)
}
