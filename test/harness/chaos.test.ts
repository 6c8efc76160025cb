/**
 * kill -9 chaos: a small real pipeline (synthetic data -> train -> spectrum probe) run through
 * the real CLI (`scripts/pipeline.mjs --json`), interrupted by SIGKILL of the harness at seeded
 * random points, each interrupt followed by a rerun. Kill points are chosen by events, not by
 * time: the harness is killed on its Nth JSON event line (N drawn from a seeded generator over
 * the event count of an uninterrupted run), so the test means the same on a loaded machine.
 *
 * Interrupts come in chains, which is what keeps the test cheap: a chain starts by forgetting
 * train and probe (their run records and the lock; the data instance stays stored and is
 * restored), so its first interrupt lands in real work (training with its resume state, the
 * probe, or publishing); each rerun is itself interrupted at a fresh random point, up to `CHAIN`
 * interrupts, and the chain ends with a rerun that finishes (one whose kill point came after its
 * last event, or the closing rerun). After every interrupt: every stored object hashes to its
 * name and the lock, if any, parses. At the end of every chain: exit 0, the outputs
 * byte-identical to the uninterrupted run's (same digests), no work or resume directory or owner
 * file left behind, and every stored object verifies.
 *
 * CUSP_CHAOS_INTERRUPTS sets the number of interrupts (default 20), CUSP_CHAOS_SEED the seed
 * (printed as a test comment, so a failing sequence can be replayed).
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
const SEED = Number(process.env.CUSP_CHAOS_SEED ?? 20261204)
/** Most interrupts in one chain before its rerun is let finish. */
const CHAIN = 4

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

/** The lock, when there is one, is whole JSON (a kill never leaves a torn lock). */
function lockParses(dir: string): boolean {
  const file = join(dir, 'pipeline.lock')
  if (!existsSync(file)) return true
  try {
    JSON.parse(readFileSync(file, 'utf8'))
    return true
  } catch {
    return false
  }
}

// About INTERRUPTS + INTERRUPTS / 2 CLI runs with real training: a few minutes on a loaded machine, hence its own timeout.
t.test(`${INTERRUPTS} kill -9 interrupts at seeded event points, each followed by a rerun`, { timeout: 1_800_000 }, async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const first = await cli(dir, [])
  t.equal(first.code, 0, `the uninterrupted run succeeds ${first.stderr}`)
  const reference = lockOutputs(dir)
  const events = first.lines
  t.ok(events > 10, `${events} events in a run of data, train and probe`)
  t.comment(`chaos seed ${SEED} (CUSP_CHAOS_SEED replays it), ${events} events in the uninterrupted run`)

  const next = rng(SEED)
  let killed = 0
  let chains = 0
  let runs = 0
  let identical = 0
  let left = 0
  while (killed < INTERRUPTS) {
    forgetWork(dir)
    chains++
    const points: number[] = []
    for (;;) {
      const closing = points.length === CHAIN || killed === INTERRUPTS
      const at = closing ? undefined : 1 + Math.floor(next() * (events - 1))
      const r = await cli(dir, [], at)
      runs++
      if (r.signal === 'SIGKILL') {
        killed++
        points.push(at!)
        t.same(corruptObjects(dir), [], `interrupt ${killed} (chain ${chains}, event ${at}): every stored object verifies`)
        t.ok(lockParses(dir), `interrupt ${killed}: the lock is whole`)
        continue
      }
      const chain = `chain ${chains} (interrupted at events ${points.join(', ') || 'none'})`
      t.equal(r.code, 0, `${chain}: the rerun succeeds ${r.stderr}`)
      const same = JSON.stringify(lockOutputs(dir)) === JSON.stringify(reference)
      if (same) identical++
      t.ok(same, `${chain}: outputs byte-identical to the uninterrupted run`)
      const rest = [...leftovers(dir, 'work'), ...leftovers(dir, 'resume')]
      left += rest.length
      t.same(rest, [], `${chain}: no work or resume directory left`)
      t.same(corruptObjects(dir), [], `${chain}: every stored object verifies`)
      break
    }
  }
  t.comment(
    `chaos: ${killed} interrupts in ${chains} chains, ${runs} interrupted or rerun CLI runs, ${identical}/${chains} chains identical, ${left} leftovers`,
  )
  t.equal(identical, chains, 'every chain ends with the uninterrupted outputs')
})
