/**
 * kill -9 chaos: a small real pipeline (synthetic data -> train -> spectrum probe) run through
 * the real CLI (`scripts/pipeline.mjs --json`), interrupted by SIGKILL of the harness at seeded
 * random points, each interrupt followed by a rerun. Kill points are chosen by events, not by
 * time: the harness is killed on its Nth JSON event line (N drawn from a seeded generator over
 * the event count of an uninterrupted run), so the test means the same on a loaded machine.
 * Before each interrupted run, the run records of train and probe and the lock are removed
 * (the data instance stays stored and is restored), so every interrupt lands in real work:
 * training (with its resume state), the probe, or publishing. After every rerun: exit 0, the
 * outputs byte-identical to the uninterrupted run's (same digests), no work or resume directory
 * or owner file left behind, and every object in the store hashes to its name.
 * CUSP_CHAOS_INTERRUPTS sets the number of interrupts (default 20).
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { REPO_ROOT } from './fixtures/counting-project.ts'

const INTERRUPTS = Number(process.env.CUSP_CHAOS_INTERRUPTS ?? 20)

const PIPELINE = `schema: 1
stages:
  data:
    impl: prepare-data
    params: { source: synthetic, n_data: 24, classes: 3, synthetic: { classes: 3, per_class: 8, height: 6, width: 6 } }
    outputs: { dataset: file, manifest: file }
  train:
    params: { arch: mlp, activation: tanh, hidden: [8], eta: 0.5, seed: 1, stop_loss: 0, max_iterations: 40, checkpoint_every: 10, log_every: 1, chunk_size: 64, backend: wasm }
    deps:
      data: { stage: data, output: dataset }
      manifest: { stage: data, output: manifest }
    outputs: { checkpoints: dir, telemetry.jsonl: file }
  probe:
    impl: spectrum-probe
    params: { checkpoint: 2, k: 2, max_matvecs: 30, chunk_size: 64 }
    deps:
      checkpoints: { stage: train, output: checkpoints }
      data: { stage: data, output: dataset }
      manifest: { stage: data, output: manifest }
    outputs: { probe.json: file }
`

/** A project using this repository's stages and CLI through symlinks. */
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-chaos-'))
  for (const f of ['src', 'stages', 'schemas', 'data', 'scripts', 'node_modules', 'package.json'])
    symlinkSync(join(REPO_ROOT, f), join(dir, f))
  writeFileSync(join(dir, 'pipeline.yaml'), PIPELINE)
  return dir
}

/** xorshift32, seeded: the kill points. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 2 ** 32
  }
}

/** Runs the CLI; `killAt` kills it (SIGKILL) on that event line. Resolves with the exit and the lines seen. */
function cli(
  cwd: string,
  args: string[],
  killAt?: number,
): Promise<{ code: number | null; signal: string | null; lines: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(cwd, 'scripts', 'pipeline.mjs'), '--json', ...args], {
      cwd,
      env: { ...process.env, NO_COLOR: '1', CUSP_STORE: '', CUSP_THREADS: '1', CUSP_DEBUG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let lines = 0
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr = `${stderr}${d.toString()}`.slice(-4000)))
    createInterface({ input: child.stdout }).on('line', () => {
      lines++
      if (killAt !== undefined && lines === killAt) child.kill('SIGKILL')
    })
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, lines, stderr }))
  })
}

type Outputs = Record<string, Record<string, string>>

function lockOutputs(dir: string): Outputs {
  const lock = JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as {
    instances: Record<string, { outputs: Record<string, { digest: string }> }>
  }
  return Object.fromEntries(
    Object.entries(lock.instances).map(([id, e]) => [id, Object.fromEntries(Object.entries(e.outputs).map(([k, v]) => [k, v.digest]))]),
  )
}

/** Object files in the store whose bytes do not hash to their name. */
function corruptObjects(dir: string): string[] {
  const base = join(dir, 'artifacts', 'objects', 'sha256')
  if (!existsSync(base)) return []
  const bad: string[] = []
  for (const shard of readdirSync(base)) {
    for (const f of readdirSync(join(base, shard))) {
      if (f.startsWith('.')) continue
      const name = `${shard}${f}`
      if (
        createHash('sha256')
          .update(readFileSync(join(base, shard, f)))
          .digest('hex') !== name
      )
        bad.push(name)
    }
  }
  return bad
}

/** Forget train and probe (lock and run records), keeping data stored: the next run redoes them. */
function forgetWork(dir: string): void {
  rmSync(join(dir, 'pipeline.lock'), { force: true })
  const runs = join(dir, 'artifacts', 'runs')
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.json') && !/"instance":\s*"data"/.test(readFileSync(p, 'utf8'))) rmSync(p)
    }
  }
  if (existsSync(runs)) walk(runs)
}

const leftovers = (dir: string, sub: string): string[] => (existsSync(join(dir, '.cusp', sub)) ? readdirSync(join(dir, '.cusp', sub)) : [])

// 2 x (INTERRUPTS + 1) CLI runs with real training: minutes on a loaded machine, hence its own timeout.
t.test(`${INTERRUPTS} kill -9 interrupts at seeded event points, each followed by a rerun`, { timeout: 3_600_000 }, async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await cli(dir, [])
  t.equal(first.code, 0, `the uninterrupted run succeeds ${first.stderr}`)
  const reference = lockOutputs(dir)
  forgetWork(dir)
  const clean = await cli(dir, [])
  t.equal(clean.code, 0, clean.stderr)
  t.same(lockOutputs(dir), reference, 'a second uninterrupted run gives the same digests')
  const events = clean.lines
  t.ok(events > 10, `${events} events in a run of train and probe`)

  const next = rng(20261204)
  let killed = 0
  let identical = 0
  let left = 0
  for (let i = 0; i < INTERRUPTS; i++) {
    forgetWork(dir)
    const at = 1 + Math.floor(next() * (events - 1))
    const k = await cli(dir, [], at)
    if (k.signal === 'SIGKILL') killed++
    const r = await cli(dir, [])
    t.equal(
      r.code,
      0,
      `interrupt ${i + 1} (event ${at}${k.signal === 'SIGKILL' ? '' : ', finished first'}): the rerun succeeds ${r.stderr}`,
    )
    const same = JSON.stringify(lockOutputs(dir)) === JSON.stringify(reference)
    if (same) identical++
    t.ok(same, `interrupt ${i + 1}: outputs byte-identical to the uninterrupted run`)
    const rest = [...leftovers(dir, 'work'), ...leftovers(dir, 'resume')]
    left += rest.length
    t.same(rest, [], `interrupt ${i + 1}: no work or resume directory left`)
    t.same(corruptObjects(dir), [], `interrupt ${i + 1}: every stored object verifies`)
  }
  t.comment(`chaos: ${INTERRUPTS} interrupts, ${killed} killed mid-run, ${identical} identical outputs, ${left} leftovers`)
  t.ok(killed >= INTERRUPTS / 2, `most interrupts hit a running harness (${killed})`)
})
