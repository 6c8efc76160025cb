/**
 * `npm run bench -- first-run [--runs N] [--jobs J]`: how long a first run of a 200-instance
 * pipeline takes, ours against Snakemake in the same run. Each round writes the toy DAG of
 * test/harness/fixtures/toy-dag.ts (prepare, a 9 x 11 matrix of train, one probe per train, one
 * aggregate) into a fresh temp dir and runs it once with the real CLI
 * (`node scripts/pipeline.mjs --file <dir>/pipeline.yaml --jobs J`, what `npm run pipeline` runs,
 * minus npm's own start-up), then writes the same 200 jobs as a Snakefile into another fresh dir
 * and runs `snakemake -jJ --quiet` once, then again with `--scheduler greedy` in a third dir. Rounds alternate the sides, so a neighbour's burst of
 * load falls on both alike. Nothing is reused between rounds but the CLI bundle, brought up to
 * date first as any run after an edit does: every per-stage cost (a stage bundle included) is
 * paid in every round. CPU time is user + sys of the process and every child it reaped (GNU
 * time): the stage processes count for us, the shells for Snakemake. Each of our runs must end
 * with "200 ran" and its pipeline.lock must be byte-identical to the other rounds' (the sha256
 * is in the JSON, to compare before and after a change). Ends with one JSON line: medians,
 * `ratio` and `cpu_ratio` (ours/peer: the issue's goal is ratio <= 1.5), median/min/max of each
 * side, the peer's version, `CUSP_STAGE_*` settings and the load average before and after.
 */
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { toyInstanceCount, writeToyDag } from '../test/harness/fixtures/toy-dag.ts'
import { SHAPE, snakefile, spread, timed, type Timing } from './support/toy-bench.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = join(REPO, 'scripts/pipeline.mjs')

const args = process.argv.slice(2)
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : dflt
}
const RUNS = opt('--runs', 3)
const JOBS = opt('--jobs', 2)
const N = toyInstanceCount(SHAPE)
/**
 * A second peer line: the same DAG under `--scheduler greedy` (Snakemake's default solves an ILP
 * whenever more jobs are ready than slots), to tell the scheduler's cost from the rest of
 * Snakemake's. The main ratio is against the default, as users run it.
 */
const GREEDY = ['--scheduler', 'greedy']
const log = (s: string): void => void process.stderr.write(`${s}\n`)

const root = mkdtempSync(join(tmpdir(), 'cusp-bench-first-'))
const loadBefore = loadavg()[0] ?? 0

function oursOnce(i: number): { t: Timing; lock: string } {
  const dir = join(root, `ours-${i}`)
  writeToyDag(dir, SHAPE)
  const env = { ...process.env, CUSP_STORE: '' }
  const t = timed(process.execPath, [CLI, '--file', join(dir, 'pipeline.yaml'), '--jobs', String(JOBS)], REPO, env)
  if (!t.stdout.includes(`${N} ran, 0 restored, 0 fresh`)) throw new Error(`first run did not run all ${N}:\n${t.stdout.slice(-2000)}`)
  const lock = createHash('sha256')
    .update(readFileSync(join(dir, 'pipeline.lock')))
    .digest('hex')
  rmSync(dir, { recursive: true, force: true })
  return { t, lock }
}

function peerOnce(i: number, extra: string[] = []): Timing {
  const dir = join(root, `snakemake-${i}${extra.length > 0 ? '-b' : ''}`)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'Snakefile'), snakefile(SHAPE))
  const t = timed('snakemake', [`-j${JOBS}`, '--quiet', ...extra], dir)
  if (readFileSync(join(dir, 'out/aggregate/summary.txt'), 'utf8').split('\n').length !== (N - 2) / 2 + 1) {
    throw new Error('snakemake: aggregate does not hold one line per probe')
  }
  rmSync(dir, { recursive: true, force: true })
  return t
}

const fmt = (ts: Timing[]): string =>
  ts.map((t) => `${t.ms.toFixed(0)}${t.cpuMs === undefined ? '' : ` (cpu ${t.cpuMs.toFixed(0)})`}`).join(', ') + ' ms'

try {
  execFileSync(process.execPath, [join(REPO, 'scripts/cli-bundle.mjs')], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] })
  const version = execFileSync('snakemake', ['--version'], { encoding: 'utf8' }).trim()
  const mine: Timing[] = []
  const theirs: Timing[] = []
  const greedy: Timing[] = []
  const locks = new Set<string>()
  for (let i = 0; i < RUNS; i++) {
    const o = oursOnce(i)
    mine.push(o.t)
    locks.add(o.lock)
    log(`round ${i + 1}/${RUNS}: ours ${(o.t.ms / 1000).toFixed(1)} s (cpu ${((o.t.cpuMs ?? NaN) / 1000).toFixed(1)} s)`)
    theirs.push(peerOnce(i))
    log(`round ${i + 1}/${RUNS}: snakemake ${(theirs[i]!.ms / 1000).toFixed(1)} s (cpu ${((theirs[i]!.cpuMs ?? NaN) / 1000).toFixed(1)} s)`)
    greedy.push(peerOnce(i, GREEDY))
    log(
      `round ${i + 1}/${RUNS}: snakemake --scheduler greedy ${(greedy[i]!.ms / 1000).toFixed(1)} s (cpu ${((greedy[i]!.cpuMs ?? NaN) / 1000).toFixed(1)} s)`,
    )
  }
  if (locks.size !== 1) throw new Error(`the rounds' pipeline.lock files differ (${locks.size} distinct)`)
  log(`ours: first runs ${fmt(mine)}`)
  log(`snakemake: first runs ${fmt(theirs)}`)
  const [ow, pw] = [spread(mine.map((t) => t.ms))!, spread(theirs.map((t) => t.ms))!]
  const [oc, pc] = [spread(mine.map((t) => t.cpuMs)), spread(theirs.map((t) => t.cpuMs))]
  const [gw, gc] = [spread(greedy.map((t) => t.ms))!, spread(greedy.map((t) => t.cpuMs))]
  const ratio = (a: number, b: number): number => Math.round((a / b) * 1000) / 1000
  const settings = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CUSP_STAGE_')))
  console.log(
    JSON.stringify({
      bench: 'first-run',
      instances: N,
      jobs: JOBS,
      ours_ms: ow.median,
      peer: `snakemake ${version}`,
      peer_ms: pw.median,
      ratio: ratio(ow.median, pw.median),
      ours_cpu_ms: oc?.median ?? null,
      peer_cpu_ms: pc?.median ?? null,
      cpu_ratio: oc !== undefined && pc !== undefined ? ratio(oc.median, pc.median) : null,
      ours_cpu_per_instance_ms: oc !== undefined ? Math.round(oc.median / N) : null,
      peer_greedy_ms: gw.median,
      ratio_vs_greedy: ratio(ow.median, gw.median),
      peer_greedy_cpu_ms: gc?.median ?? null,
      cpu_ratio_vs_greedy: oc !== undefined && gc !== undefined ? ratio(oc.median, gc.median) : null,
      ours_wall_spread: ow,
      peer_wall_spread: pw,
      ours_cpu_spread: oc ?? null,
      peer_cpu_spread: pc ?? null,
      peer_greedy_wall_spread: gw,
      peer_greedy_cpu_spread: gc ?? null,
      lock_sha256: [...locks][0],
      settings,
      command: `node scripts/pipeline.mjs --file <fresh dir>/pipeline.yaml --jobs ${JOBS}`,
      runs: RUNS,
      loadavg_1m_before: Math.round(loadBefore * 100) / 100,
      loadavg_1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
      loadavg_5m: Math.round((loadavg()[1] ?? 0) * 100) / 100,
    }),
  )
} finally {
  rmSync(root, { recursive: true, force: true })
}
