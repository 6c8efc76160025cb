// A killed training run resumes from its resume directory and ends bit-identical to a run that
// was never interrupted: the real train stage through the real stage runner, killed with SIGKILL.
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { encodeSafetensors, tensor } from '../../src/data/safetensors.ts'
import { runJob, writeJob, writeToyData } from './fixtures.ts'

const params = {
  arch: 'mlp',
  activation: 'tanh',
  hidden: [32],
  seed: 3,
  mode: 'gd',
  eta: 0.05,
  stop_loss: 0,
  max_t: 40,
  max_iterations: 400,
  checkpoint_every: 40,
  log_every: 10,
  flow_factor: 0.5,
  eig_tol: 1e-3,
  eig_max_matvecs: 60,
  backend: 'wasm',
  chunk_size: 64,
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue
    const p = join(e.parentPath, e.name)
    out[p.slice(dir.length + 1)] = (await readFile(p)).toString('base64')
  }
  return out
}

t.test('kill mid-run, rerun: resumes from the saved state, outputs bit-identical', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-resume-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { dataset, manifest } = await writeToyData(join(dir, 'data'), 256, 4, 10, 10)
  const din = {
    data: [{ instance: 'd', output: 'dataset', params: {}, path: dataset }],
    manifest: [{ instance: 'd', output: 'manifest', params: {}, path: manifest }],
  }

  const outA = await writeJob(join(dir, 'a'), 'train', params, din, join(dir, 'resume-a'))
  const a = await runJob(join(dir, 'a'))
  t.equal(a.code, 0, a.stderr)
  // Without a harness nobody publishes: the stage leaves the resume directory for the harness to
  // remove once it has published (test/stages/resume-publish.test.ts).
  t.ok((await stat(join(dir, 'resume-a', 'state.safetensors'))).isFile(), 'the resume directory is left for the harness')

  const resume = join(dir, 'resume-b')
  await writeJob(join(dir, 'b1'), 'train', params, din, resume)
  const iterationOf = (line: string): number => Number(/"message":"iteration (\d+)/.exec(line)?.[1] ?? -1)
  const killed = await runJob(join(dir, 'b1'), {}, (line) => iterationOf(line) >= 130)
  t.equal(killed.signal, 'SIGKILL', 'the first attempt was killed mid-run')
  const reached = Math.max(...killed.lines.map(iterationOf))
  t.ok(reached >= 130 && reached < 400, `killed at iteration ~${reached}`)
  t.ok((await stat(join(resume, 'state.safetensors'))).isFile(), 'a resume state survived the kill')

  const outB = await writeJob(join(dir, 'b2'), 'train', params, din, resume)
  const b = await runJob(join(dir, 'b2'))
  t.equal(b.code, 0, b.stderr)
  const from = Number(/resuming from iteration (\d+)/.exec(b.lines.join('\n'))?.[1] ?? -1)
  t.ok(from > 0 && from <= reached, `resumed from iteration ${from}, not from scratch`)

  const ta = await tree(outA)
  const tb = await tree(outB)
  t.ok(Object.keys(ta).length >= 13, `${Object.keys(ta).length} files: 11 checkpoints, index, telemetry, result`)
  t.same(Object.keys(tb).sort(), Object.keys(ta).sort(), 'same files')
  for (const k of Object.keys(ta)) t.ok(ta[k] === tb[k], `${k} bit-identical`)
})

// A damaged resume state (a kill mid-write truncates it; a foreign or hand-edited file) must be
// discarded with its reason and the run started over, never wedge the stage: before, a state cut
// to 100 bytes made every rerun (--force included) fail with a DataFormatError and a stack.
const damaged: [string, (dir: string) => Promise<void>, RegExp][] = [
  [
    'cut to 100 bytes',
    async (dir) => {
      const full = encodeSafetensors({ theta: tensor.f32([600], new Float32Array(600).fill(0.5)) }, { key: 'k', iteration: '80' })
      await writeFile(join(dir, 'state.safetensors'), full.subarray(0, 100))
    },
    /it does not decode/,
  ],
  [
    'of another run (params or data)',
    async (dir) => {
      const other = encodeSafetensors({ theta: tensor.f32([4], new Float32Array(4)) }, { key: 'another-run', iteration: '80', t: '4' })
      await writeFile(join(dir, 'state.safetensors'), other)
    },
    /belongs to other params or data/,
  ],
  ['random bytes', async (dir) => writeFile(join(dir, 'state.safetensors'), randomBytes(4096)), /it does not decode/],
]
for (const [name, damage, reason] of damaged) {
  t.test(`a resume state ${name} is discarded with its reason; the run starts over and matches an uninterrupted one`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'cusp-resume-bad-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const { dataset, manifest } = await writeToyData(join(dir, 'data'), 256, 4, 10, 10)
    const din = {
      data: [{ instance: 'd', output: 'dataset', params: {}, path: dataset }],
      manifest: [{ instance: 'd', output: 'manifest', params: {}, path: manifest }],
    }
    const outA = await writeJob(join(dir, 'a'), 'train', params, din)
    const a = await runJob(join(dir, 'a'))
    t.equal(a.code, 0, a.stderr)

    const resume = join(dir, 'resume')
    await mkdir(join(resume, 'checkpoints'), { recursive: true })
    await damage(resume)
    // What a killed run leaves beside its state: telemetry rows and a checkpoint of its own.
    await writeFile(join(resume, 'telemetry.jsonl'), '{"iteration":0,"loss":123}\n'.repeat(5))
    await writeFile(join(resume, 'checkpoints', 'iter-000040.safetensors'), 'not a checkpoint')
    const outB = await writeJob(join(dir, 'b'), 'train', params, din, resume)
    const b = await runJob(join(dir, 'b'))
    t.equal(b.code, 0, `exit 0: ${b.stderr}`)
    const said = b.lines.join('\n')
    t.match(said, /discarding the resume state in /, 'says it discards the state')
    t.match(said, reason, 'with the reason')
    t.notMatch(said, /resuming from iteration/, 'and does not resume from it')
    t.notMatch(b.stderr, /^\s+at .+:\d+:\d+\)?$/m, 'no stack')
    const ta = await tree(outA)
    const tb = await tree(outB)
    t.same(Object.keys(tb).sort(), Object.keys(ta).sort(), 'same files')
    for (const k of Object.keys(ta)) t.ok(ta[k] === tb[k], `${k} bit-identical`)
  })
}
