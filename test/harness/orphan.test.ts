/**
 * Why an orphaned stage process could outlive the sweep of its killed harness's work directory,
 * each case forced deterministically: (1) the harness dies while its stage process is still
 * starting (seconds under load): the orphan must exit before it loads the stage instead of
 * taking the adopting process for its parent and running on; (2) the harness dies before it
 * wrote `stage.pid`: the sweep must still find the orphan (by its command line) and stop it
 * before removing the directory.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pidAlive } from '../../src/harness/owner.ts'
import { localStageCommand } from '../../src/harness/spawn-stage.ts'
import { sweepWorkDirs } from '../../src/harness/workdir.ts'

const tmp = (): string => mkdtempSync(join(tmpdir(), 'cusp-orphan-'))
const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms))

/** A stage that marks that it was loaded and then runs for a long time. */
function writeStage(root: string): string {
  const module = join(root, 'stages', 'slow', 'index.ts')
  mkdirSync(join(root, 'stages', 'slow'), { recursive: true })
  writeFileSync(
    module,
    `import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
writeFileSync(join(${JSON.stringify(root)}, 'loaded'), String(process.pid))
export default {
  [Symbol.for('cusp.stage')]: true,
  async run() {
    await new Promise((res) => setTimeout(res, 600_000))
    return {}
  },
}
`,
  )
  return module
}

function writeJobFile(work: string, module: string): void {
  mkdirSync(join(work, 'out'), { recursive: true })
  writeFileSync(
    join(work, 'job.json'),
    JSON.stringify({ schema: 1, instance: 'slow', module, params: {}, inputs: {}, outDir: join(work, 'out') }),
  )
}

/**
 * A stand-in harness: spawns the stage command (its own pid as the harness pid), records the
 * stage's pid, and kills itself with SIGKILL in the same tick, long before the stage process
 * has started up. Resolves with the stage's pid once the stand-in is gone.
 */
async function harnessDiesAtSpawn(file: string, args: string[], pidFile: string): Promise<number> {
  const script = `const { spawn } = require('node:child_process'); const fs = require('node:fs')
const [file, pidFile, ...args] = process.argv.slice(1)
const child = spawn(file, args.map((a) => (a === 'HARNESS' ? String(process.pid) : a)), { stdio: 'ignore' })
fs.writeFileSync(pidFile, String(child.pid))
process.kill(process.pid, 'SIGKILL')`
  const h = spawn(process.execPath, ['-e', script, file, pidFile, ...args], { stdio: 'ignore' })
  await new Promise((res) => h.once('exit', res))
  return Number(readFileSync(pidFile, 'utf8'))
}

for (const bundled of [true, false]) {
  t.test(
    `harness killed while its stage process starts (${bundled ? 'bundled' : 'tsx'}): the orphan exits without loading the stage`,
    async (t) => {
      const root = tmp()
      t.teardown(() => rmSync(root, { recursive: true, force: true }))
      const work = join(root, 'work', '1-x')
      writeJobFile(work, writeStage(root))
      const env = { ...process.env, CUSP_STAGE_BUNDLE: bundled ? '1' : '0' }
      const cmd = await localStageCommand(work, env, -1)
      t.equal(cmd.bundled, bundled)
      const args = cmd.args.map((a) => (a === '-1' ? 'HARNESS' : a))
      const pid = await harnessDiesAtSpawn(cmd.file, args, join(root, 'stage-pid'))
      // Bounded only so that a regression fails instead of hanging; the orphan exits on its own.
      for (let i = 0; i < 6000 && pidAlive(pid); i++) await sleep(10)
      t.notOk(pidAlive(pid), 'the orphan exited by itself')
      t.notOk(existsSync(join(root, 'loaded')), 'it never loaded the stage module')
    },
  )
}

t.test('sweep: an orphan of a harness that died before writing stage.pid is found by its command line', async (t) => {
  const root = tmp()
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const workRoot = join(root, 'work')
  const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((res) => dead.once('exit', res))
  const dir = join(workRoot, `${dead.pid}-orphan`)
  mkdirSync(join(dir, 'out'), { recursive: true })
  // Keeps re-creating its output directory, as a stage's `mkdir -p` of an output would.
  const script =
    'const fs = require("fs"); const d = process.argv[1]; setInterval(() => { try { fs.mkdirSync(d + "/out/x", { recursive: true }) } catch {} }, 5)'
  const orphan = spawn(process.execPath, ['-e', script, dir], { stdio: 'ignore' })
  await new Promise((r) => orphan.once('spawn', r))
  const exited = new Promise((r) => orphan.once('exit', (_c, sig) => r(sig)))
  t.notOk(existsSync(join(dir, 'stage.pid')), 'no stage.pid')
  t.equal(await sweepWorkDirs(workRoot), 1, 'one directory swept')
  t.equal(await exited, 'SIGKILL', 'the orphan was stopped by the sweep')
  await sleep(50)
  t.notOk(existsSync(dir), 'and its directory is gone for good')
})
