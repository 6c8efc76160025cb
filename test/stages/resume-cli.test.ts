// Resume through the real CLI: kill `npm run pipeline` (SIGKILL) while train runs, run it again,
// and the train outputs published to the store are byte-identical to a never-interrupted run's.
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { linkedProject } from './fixtures.ts'

const PIPELINE = `schema: 1
stages:
  data:
    impl: prepare-data
    params: { source: synthetic, n_data: 200, classes: 4, synthetic: { classes: 4, per_class: 50, height: 10, width: 10 } }
    outputs: { dataset: file, manifest: file }
  train:
    params: { arch: mlp, activation: tanh, hidden: [32], eta: 0.05, stop_loss: 0, max_iterations: 600, checkpoint_every: 50, log_every: 10, backend: wasm }
    deps:
      data: { stage: data, output: dataset }
      manifest: { stage: data, output: manifest }
    outputs: { checkpoints: dir, telemetry.jsonl: file }
`

const project = (): Promise<string> => linkedProject('cusp-resume-cli-', PIPELINE)

/** Runs the CLI in `cwd`, output to a file; `killAt` kills it when the output matches. */
async function cli(cwd: string, killAt?: RegExp): Promise<{ code: number | null; signal: string | null; out: string }> {
  const file = join(cwd, `cli-${Date.now()}.txt`)
  const fd = openSync(file, 'w')
  try {
    const r = await new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
      const child = spawn(process.execPath, [join(cwd, 'scripts', 'pipeline.mjs'), '--json'], {
        cwd,
        env: { ...process.env, NO_COLOR: '1', CUSP_STORE: '', CUSP_THREADS: '1' },
        stdio: ['ignore', fd, fd],
      })
      const timer =
        killAt === undefined
          ? undefined
          : setInterval(() => {
              void readFile(file, 'utf8').then((s) => {
                if (killAt.test(s)) child.kill('SIGKILL')
              })
            }, 100)
      child.on('error', reject)
      child.on('close', (code, signal) => {
        if (timer) clearInterval(timer)
        resolve({ code, signal })
      })
    })
    return { ...r, out: await readFile(file, 'utf8') }
  } finally {
    closeSync(fd)
  }
}

/** The train instance's outputs (name -> digest) from the lock file. */
async function trainOutputs(dir: string): Promise<Record<string, string>> {
  const lock = JSON.parse(await readFile(join(dir, 'pipeline.lock'), 'utf8')) as {
    instances: Record<string, { outputs: Record<string, { digest: string }> }>
  }
  return Object.fromEntries(Object.entries(lock.instances.train!.outputs).map(([k, v]) => [k, v.digest]))
}

t.test('kill the CLI mid-training; the rerun resumes and publishes the same bytes', async (t) => {
  const clean = await project()
  const killed = await project()
  t.teardown(async () => {
    await rm(clean, { recursive: true, force: true })
    await rm(killed, { recursive: true, force: true })
  })
  const a = await cli(clean)
  if (a.code !== 0) t.comment(a.out.slice(-2000))
  t.equal(a.code, 0, 'exit 0')

  const k = await cli(killed, /iteration (1[5-9]\d|[2-5]\d\d)\b/)
  t.equal(k.signal, 'SIGKILL', 'the first CLI run was killed while training')
  t.notMatch(k.out, /"instance":"train"[^\n]*"type":"done"/, 'train had not finished')
  const b = await cli(killed)
  if (b.code !== 0) t.comment(b.out.slice(-2000))
  t.equal(b.code, 0, 'exit 0')
  t.match(b.out, /resuming from iteration [1-9]\d*/, 'the rerun resumed from the killed run state')
  t.same(await trainOutputs(killed), await trainOutputs(clean), 'checkpoints, telemetry and result digests equal the clean run')
})
