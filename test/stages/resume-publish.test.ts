// The resume directory outlives the stage until the harness has published: a train run that
// finishes but whose publish fails (the store's disk full, injected in this process, where the
// harness writes the store; the stage process is untouched) keeps its resume state, the rerun
// resumes from it instead of starting over, publishes the bytes of a never-interrupted run, and
// only then is the resume directory gone. Before, the stage deleted it as it returned, so any
// failure or kill between the stage's end and the publish cost the whole training run.
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { injectFsFault } from '../harness/fixtures/fs-faults.ts'
import { captureMain } from '../harness/fixtures/run-main.ts'
import { linkedProject } from './fixtures.ts'

const PIPELINE = `schema: 1
stages:
  data:
    impl: prepare-data
    params: { source: synthetic, n_data: 120, classes: 3, synthetic: { classes: 3, per_class: 40, height: 6, width: 6 } }
    outputs: { dataset: file, manifest: file }
  train:
    params: { arch: mlp, activation: tanh, hidden: [16], eta: 0.05, stop_loss: 0, max_iterations: 300, checkpoint_every: 50, log_every: 10, backend: wasm }
    deps:
      data: { stage: data, output: dataset }
      manifest: { stage: data, output: manifest }
    outputs: { checkpoints: dir, telemetry.jsonl: file }
`

const project = (): Promise<string> => linkedProject('cusp-resume-publish-', PIPELINE)

const cli = (cwd: string, args: string[]) => captureMain(cwd, args, { ...process.env, NO_COLOR: '1', CUSP_STORE: '', CUSP_THREADS: '1' })

async function trainOutputs(dir: string): Promise<Record<string, string>> {
  const lock = JSON.parse(await readFile(join(dir, 'pipeline.lock'), 'utf8')) as {
    instances: Record<string, { outputs: Record<string, { digest: string }> }>
  }
  return Object.fromEntries(Object.entries(lock.instances.train!.outputs).map(([k, v]) => [k, v.digest]))
}

/** The resume directories (fingerprint-named) under `.cusp/resume`. */
async function resumeDirs(dir: string): Promise<string[]> {
  const names = await readdir(join(dir, '.cusp', 'resume')).catch(() => [] as string[])
  return names.filter((n) => /^[0-9a-f]{64}$/.test(n))
}

t.test('a publish that fails after train finished keeps the resume state; the rerun resumes and publishes the same bytes', async (t) => {
  const clean = await project()
  const faulty = await project()
  t.teardown(async () => {
    await rm(clean, { recursive: true, force: true })
    await rm(faulty, { recursive: true, force: true })
  })
  const a = await cli(clean, ['run', '--json'])
  t.equal(a.code, 0, a.stderr)
  const reference = await trainOutputs(clean)
  t.same(await resumeDirs(clean), [], 'a published run leaves no resume directory')

  t.equal((await cli(faulty, ['run', '--stage', 'data'])).code, 0, 'data first, without a fault')
  const fault = injectFsFault({ under: [join(faulty, 'artifacts')], code: 'ENOSPC', ops: ['write', 'writeFile', 'copyFile'] })
  let failed: Awaited<ReturnType<typeof cli>>
  try {
    failed = await cli(faulty, ['run', '--json'])
  } finally {
    fault.undo()
  }
  t.ok(fault.failed() > 0, 'the fault was hit')
  t.equal(failed.code, 1, 'the publish failed')
  t.match(failed.stdout, /"instance":"train"[^\n]*done: /, 'the train stage itself finished')
  const kept = await resumeDirs(faulty)
  t.equal(kept.length, 1, 'the unpublished run kept its resume directory')
  t.ok((await stat(join(faulty, '.cusp', 'resume', kept[0]!, 'state.safetensors'))).isFile(), 'with its resume state')

  const b = await cli(faulty, ['run', '--json'])
  t.equal(b.code, 0, b.stderr)
  const from = Number(/resuming from iteration (\d+)/.exec(b.stdout)?.[1] ?? -1)
  t.ok(from > 0, `the rerun resumed from iteration ${from}, not from scratch`)
  t.same(await trainOutputs(faulty), reference, 'outputs byte-identical to an uninterrupted run')
  t.same(await resumeDirs(faulty), [], 'the resume directory is removed once published')
})
