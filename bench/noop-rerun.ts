/**
 * `npm run bench -- noop-rerun [--runs N] [--keep] [--dir D]`: how long a no-op rerun of a 200-instance
 * pipeline takes, ours against Snakemake in the same run. It writes the toy DAG of
 * test/harness/fixtures/toy-dag.ts (prepare, a 9 x 11 matrix of train, one probe per train, one
 * aggregate) to a temp dir, runs it once with the real CLI, then times N no-op reruns: wall and
 * CPU time of the whole `node scripts/pipeline.cjs --file <dir>/pipeline.yaml` process, which is
 * exactly what `npm run pipeline` runs, minus npm's own start-up (the same for every npm script,
 * so left out). The CLI bundle is brought up to date first (`node scripts/cli-bundle.mjs`), as
 * any first run after an edit does, so the timed runs measure a no-op rerun and not a rebuild.
 * It then writes the same 200 jobs as a Snakefile whose shell commands do the same trivial file
 * writes and runs it once. The N timed rounds alternate the sides (one no-op rerun of ours, one of
 * `snakemake -j2 --quiet`), so a neighbour's burst of load falls on both alike. CPU time is user +
 * sys of the process and of every child it waited for, read with bash's `times` (the children's
 * rusage from wait4, printed to the millisecond; bash's own start is not in it): a worker or a
 * shell a side starts counts for that side. GNU time, the fallback without bash, prints only
 * hundredths of a second, too coarse for a replay of ~70 ms. Each round also times a bare
 * `node -e 0` in the same environment (`node_bare_cpu_ms`): node's own start-up, which no change
 * to cusp can remove, and `ours_over_bare_cpu_ms` is what the replay adds to it. Node 20 parses
 * the whole CA bundle at start when NODE_EXTRA_CA_CERTS is set (nodejs/node#40524; ~45 ms of CPU
 * on the machine that set it for its proxy), so when it is set (`extra_ca_certs`) a last phase
 * times ours and bare node without it (`ours_cpu_ms_no_extra_ca`, `node_bare_cpu_ms_no_extra_ca`,
 * `speedup_cpu_no_extra_ca` against the same peer median; Snakemake does not read it). Where
 * util-linux `script` is installed, each round also times ours on an 80 x 24 pseudo-terminal, as a
 * person runs it (`ours_tty_cpu_ms`, replayed from the terminal's own record after the first;
 * `ours_tty_full_cpu_ms` with CUSP_NO_REPLAY=1; `speedup_cpu_tty`). Ends with one
 * JSON line: medians (`ours_ms`, `peer_ms`, `ours_cpu_ms`, `peer_cpu_ms`), `ratio` and `cpu_ratio`
 * (ours/peer), `speedup_cpu` and `speedup_wall` (peer/ours: the issue's "10x faster" reads these),
 * median/min/max of each side, the peer's version and the load average before and after, because
 * on a shared machine wall time mostly measures the neighbours. Our timed no-op is what
 * `npm run pipeline` does by default: the first timed run records itself and the later ones
 * replay the record without loading the CLI bundle (scripts/noop-replay.cjs); `ours_replayed`
 * counts the replays (from `CUSP_DEBUG_REPLAY=1`'s line). Each round also times our full no-op
 * (`CUSP_NO_REPLAY=1`: bundle loaded, plan made), reported as `ours_full_ms`, `ours_full_cpu_ms`
 * and `speedup_cpu_full`. `--keep` keeps the temp dir;
 * `--dir D` reuses a kept one (skipping the slow first runs when D already holds them).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { toyInstanceCount, writeToyDag, type ToyDagShape } from '../test/harness/fixtures/toy-dag.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..')
/** What `npm run pipeline` runs (package.json "scripts"), as argv for node. */
const CLI = [join(REPO, 'scripts/pipeline.cjs')]
const SHAPE: ToyDagShape = { etas: [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1], seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }

const args = process.argv.slice(2)
const runsArg = args.indexOf('--runs')
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 7
const dirArg = args.indexOf('--dir')
const REUSE = dirArg >= 0 ? args[dirArg + 1] : undefined
const KEEP = args.includes('--keep') || REUSE !== undefined
/** GNU time, when installed, gives each child's CPU time (user + sys). */
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined
/** bash, when installed, gives it to the millisecond (`times`). */
const BASH = ['/bin/bash', '/usr/bin/bash'].find((p) => existsSync(p))
/** Whether util-linux script is there to give a command a pseudo-terminal. */
const SCRIPT = spawnSync('script', ['--version'], { encoding: 'utf8' }).stdout?.includes('util-linux') === true
/** `s` quoted for sh. */
const shq = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`
/** The clock the CPU figures come from, for the JSON line. */
const CPU_CLOCK = BASH ? 'bash times (1 ms)' : GNU_TIME ? 'GNU time (10 ms)' : null

const log = (s: string): void => void process.stderr.write(`${s}\n`)

interface Timing {
  ms: number
  /** user + sys CPU ms of the child and its reaped children, when bash or GNU time is available. */
  cpuMs: number | undefined
  stdout: string
  stderr: string
}

/** Wall time (and CPU time) in ms of one child process; throws when it fails. */
function timed(cmd: string, argv: string[], cwd: string, env: NodeJS.ProcessEnv = process.env, terminal = false): Timing {
  const cpuFile = join(tmpdir(), `cusp-bench-cpu-${process.pid}`)
  // bash -c: run the command as a child, then `times` (the shell's, then its children's user and sys) into $0.
  let [file, fullArgv] = BASH
    ? [BASH, ['-c', '"$@"; rc=$?; times > "$0"; exit $rc', cpuFile, cmd, ...argv]]
    : GNU_TIME
      ? [GNU_TIME, ['-o', cpuFile, '-f', '%U %S', cmd, ...argv]]
      : [cmd, argv]
  // On an 80 x 24 pseudo-terminal (util-linux script): stdin, stdout and stderr all the terminal;
  // the timing wrapper runs inside it, so script's own relaying is not counted.
  if (terminal)
    [file, fullArgv] = ['script', ['-q', '-e', '-c', `stty cols 80 rows 24 && exec ${[file, ...fullArgv].map(shq).join(' ')}`, '/dev/null']]
  const t0 = process.hrtime.bigint()
  const r = spawnSync(file, fullArgv, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).slice(-2000)}`)
  let cpuMs: number | undefined
  if (BASH || GNU_TIME) {
    // bash: `0m0.052s 0m0.011s` (its children's line is the last); GNU time: `0.05 0.01`.
    const seconds = (x: string): number => {
      const m = /^(\d+)m([\d.]+)s$/.exec(x)
      return m ? Number(m[1]) * 60 + Number(m[2]) : Number(x)
    }
    const [u, s] = readFileSync(cpuFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(seconds)
    cpuMs = ((u ?? 0) + (s ?? 0)) * 1000
    rmSync(cpuFile, { force: true })
  }
  return { ms, cpuMs, stdout: r.stdout, stderr: r.stderr }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** One side's setup done: `once` times one no-op rerun, `check` runs after the last one. */
interface Runner {
  once(): Timing
  check(): void
}

/** Ours also times the full no-op (`CUSP_NO_REPLAY=1`: the CLI bundle loads and plans) beside the default. */
interface OurRunner extends Runner {
  full(): Timing
  /** The default no-op without NODE_EXTRA_CA_CERTS in the environment. */
  noExtraCa(): Timing
  /** The default no-op on a terminal (80 x 24); `full` with CUSP_NO_REPLAY=1. */
  onTerminal(full?: boolean): Timing
}

/** The environment without NODE_EXTRA_CA_CERTS. */
const withoutExtraCa = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'))

/** A bare `node -e 0`: node's own start-up in `env`. */
const bareNode = (env: NodeJS.ProcessEnv = process.env): Timing => timed(process.execPath, ['-e', '0'], REPO, env)

/** Median, min and max of xs (undefined when any is missing), rounded to 0.1 ms. */
function spread(xs: Array<number | undefined>): { median: number; min: number; max: number } | undefined {
  if (xs.length === 0 || xs.some((x) => x === undefined)) return undefined
  const ns = xs as number[]
  const r = (x: number): number => Math.round(x * 10) / 10
  return { median: r(median(ns)), min: r(Math.min(...ns)), max: r(Math.max(...ns)) }
}

function ours(dir: string): OurRunner {
  const file = join(dir, 'pipeline.yaml')
  const base = [...CLI, '--file', file]
  // CUSP_DEBUG_REPLAY=1 says on stderr whether a run was replayed (it is not in the replay's key).
  const env = { ...process.env, CUSP_STORE: '', CUSP_DEBUG_REPLAY: '1' }
  if (!existsSync(join(dir, 'pipeline.lock'))) {
    writeToyDag(dir, SHAPE)
    log(`ours: first run of ${toyInstanceCount(SHAPE)} instances in ${dir} ...`)
    const first = timed(process.execPath, [...base, '--jobs', '2', '--json'], REPO, env)
    log(`ours: first run ${(first.ms / 1000).toFixed(1)} s`)
  }
  const lockBefore = readFileSync(join(dir, 'pipeline.lock'), 'utf8')
  const lockStat = (): string => {
    const st = statSync(join(dir, 'pipeline.lock'), { bigint: true })
    return `${st.ino}:${st.mtimeNs}`
  }
  const lockStatBefore = lockStat()
  const status = JSON.parse(timed(process.execPath, [...CLI, 'status', '--json', '--file', file], REPO, env).stdout) as {
    instances: Array<{ action: string }>
  }
  const notFresh = status.instances.filter((i) => i.action !== 'fresh').length
  if (status.instances.length !== toyInstanceCount(SHAPE) || notFresh > 0) {
    throw new Error(
      `after the first run expected ${toyInstanceCount(SHAPE)} fresh instances, got ${status.instances.length} (${notFresh} not fresh)`,
    )
  }
  const expected = `0 ran, 0 restored, ${toyInstanceCount(SHAPE)} fresh`
  const run = (e: NodeJS.ProcessEnv, terminal = false): Timing => {
    const r = timed(process.execPath, base, REPO, e, terminal)
    if (!r.stdout.includes(expected)) throw new Error(`no-op rerun did work:\n${r.stdout.slice(0, 2000)}`)
    return r
  }
  return {
    once: () => run(env),
    full: () => run({ ...env, CUSP_NO_REPLAY: '1' }),
    noExtraCa: () => run(withoutExtraCa(env)),
    onTerminal: (full = false) => run(full ? { ...env, CUSP_NO_REPLAY: '1' } : env, true),
    check: () => {
      if (readFileSync(join(dir, 'pipeline.lock'), 'utf8') !== lockBefore) throw new Error('a no-op rerun changed pipeline.lock')
      if (lockStat() !== lockStatBefore) throw new Error('a no-op rerun rewrote pipeline.lock (same bytes, new file or mtime)')
    },
  }
}

const fmt = (ts: Timing[]): string =>
  ts.map((t) => `${t.ms.toFixed(0)}${t.cpuMs === undefined ? '' : ` (cpu ${t.cpuMs.toFixed(0)})`}`).join(', ') + ' ms'

/** The same DAG as Snakemake rules; shell commands do the same file writes as the toy stages. */
function snakefile(shape: ToyDagShape): string {
  const py = (xs: number[]): string => `[${xs.map((x) => JSON.stringify(String(x))).join(', ')}]`
  return `ETAS = ${py(shape.etas)}
SEEDS = ${py(shape.seeds)}

rule all:
    input: "out/aggregate/summary.txt"

rule prepare:
    output: "out/prepare/data.txt"
    shell: "for i in 0 1 2 3 4 5 6 7; do echo $((i*i)); done > {output}"

rule train:
    input: "out/prepare/data.txt"
    output: "out/train/{eta}_{seed}/model.txt"
    shell: "awk -v eta={wildcards.eta} -v seed={wildcards.seed} '{{s+=$1; n++}} END {{w=seed; m=s/n; for(i=0;i<3;i++) w=w-eta*(w-m); printf \\"%.6f\\\\n\\", w}}' {input} > {output}"

rule probe:
    input: "out/train/{eta}_{seed}/model.txt"
    output: "out/probe/{eta}_{seed}/probe.txt"
    shell: "awk -v id=probe@eta={wildcards.eta},seed={wildcards.seed} '{{printf \\"%s %.6f\\\\n\\", id, $1*2}}' {input} > {output}"

rule aggregate:
    input: expand("out/probe/{eta}_{seed}/probe.txt", eta=ETAS, seed=SEEDS)
    output: "out/aggregate/summary.txt"
    shell: "cat {input} | sort > {output}"
`
}

function peer(dir: string): Runner & { version: string } {
  const version = execFileSync('snakemake', ['--version'], { encoding: 'utf8' }).trim()
  if (!existsSync(join(dir, 'out/aggregate/summary.txt'))) {
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'Snakefile'), snakefile(SHAPE))
    log(`snakemake ${version}: first run in ${dir} ...`)
    const first = timed('snakemake', ['-j2', '--quiet'], dir)
    log(`snakemake: first run ${(first.ms / 1000).toFixed(1)} s`)
  }
  const dry = timed('snakemake', ['-j2', '-n'], dir).stdout
  if (!/Nothing to be done/i.test(dry)) throw new Error(`snakemake still has work after its first run:\n${dry.slice(0, 2000)}`)
  return { version, once: () => timed('snakemake', ['-j2', '--quiet'], dir), check: () => undefined }
}

const root = REUSE ?? mkdtempSync(join(tmpdir(), 'cusp-bench-noop-'))
const loadBefore = loadavg()[0] ?? 0
try {
  execFileSync(process.execPath, [join(REPO, 'scripts/cli-bundle.mjs')], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] })
  const o = ours(join(root, 'ours'))
  const p = peer(join(root, 'snakemake'))
  // Rounds alternate the two sides, so a neighbour's burst of load falls on both alike.
  const mine: Timing[] = []
  const mineFull: Timing[] = []
  const theirs: Timing[] = []
  const bare: Timing[] = []
  const tty: Timing[] = []
  const ttyFull: Timing[] = []
  for (let i = 0; i < RUNS; i++) {
    mine.push(o.once())
    mineFull.push(o.full())
    theirs.push(p.once())
    bare.push(bareNode())
    if (SCRIPT) {
      tty.push(o.onTerminal())
      ttyFull.push(o.onTerminal(true))
    }
  }
  // Without NODE_EXTRA_CA_CERTS: its own phase, since another environment is another record (one per argv).
  const extraCa = (process.env['NODE_EXTRA_CA_CERTS'] ?? '') !== ''
  const mineNoCa: Timing[] = []
  const bareNoCa: Timing[] = []
  if (extraCa) {
    o.noExtraCa() // records
    for (let i = 0; i < RUNS; i++) {
      mineNoCa.push(o.noExtraCa())
      bareNoCa.push(bareNode(withoutExtraCa(process.env)))
    }
  }
  o.check()
  const replayed = mine.filter((t) => t.stderr.includes('cusp: replay: hit')).length
  log(`ours: no-op reruns ${fmt(mine)} (${replayed} of ${RUNS} replayed)`)
  log(`ours, full no-op (CUSP_NO_REPLAY=1): ${fmt(mineFull)}`)
  log(`snakemake: no-op reruns ${fmt(theirs)}`)
  log(`bare node -e 0: ${fmt(bare)}`)
  const ttyReplayed = tty.filter((t) => t.stdout.includes('cusp: replay: hit')).length
  if (SCRIPT) log(`ours on a terminal: ${fmt(tty)} (${ttyReplayed} of ${RUNS} replayed); full: ${fmt(ttyFull)}`)
  if (extraCa) {
    const hits = mineNoCa.filter((t) => t.stderr.includes('cusp: replay: hit')).length
    log(`without NODE_EXTRA_CA_CERTS: ours ${fmt(mineNoCa)} (${hits} of ${RUNS} replayed); bare node ${fmt(bareNoCa)}`)
  }
  const [ow, pw] = [spread(mine.map((t) => t.ms))!, spread(theirs.map((t) => t.ms))!]
  const [oc, pc] = [spread(mine.map((t) => t.cpuMs)), spread(theirs.map((t) => t.cpuMs))]
  const [fw, fc] = [spread(mineFull.map((t) => t.ms))!, spread(mineFull.map((t) => t.cpuMs))]
  const bc = spread(bare.map((t) => t.cpuMs))
  const [tc, tfc] = SCRIPT ? [spread(tty.map((t) => t.cpuMs)), spread(ttyFull.map((t) => t.cpuMs))] : [undefined, undefined]
  const [nc, nbc] = extraCa ? [spread(mineNoCa.map((t) => t.cpuMs)), spread(bareNoCa.map((t) => t.cpuMs))] : [undefined, undefined]
  const mean = (ts: Timing[]): number | null =>
    ts.some((t) => t.cpuMs === undefined) ? null : Math.round((ts.reduce((a, t) => a + t.cpuMs!, 0) / ts.length) * 10) / 10
  const ratio = (a: number, b: number): number => Math.round((a / b) * 1000) / 1000
  console.log(
    JSON.stringify({
      bench: 'noop-rerun',
      instances: toyInstanceCount(SHAPE),
      ours_ms: ow.median,
      peer: `snakemake ${p.version}`,
      peer_ms: pw.median,
      ratio: ratio(ow.median, pw.median),
      ours_cpu_ms: oc?.median ?? null,
      peer_cpu_ms: pc?.median ?? null,
      cpu_ratio: oc !== undefined && pc !== undefined ? ratio(oc.median, pc.median) : null,
      speedup_cpu: oc !== undefined && pc !== undefined ? ratio(pc.median, oc.median) : null,
      speedup_wall: ratio(pw.median, ow.median),
      ours_replayed: replayed,
      ours_full_ms: fw.median,
      ours_full_cpu_ms: fc?.median ?? null,
      speedup_cpu_full: fc !== undefined && pc !== undefined ? ratio(pc.median, fc.median) : null,
      ours_cpu_mean_ms: mean(mine),
      peer_cpu_mean_ms: mean(theirs),
      node_bare_cpu_ms: bc?.median ?? null,
      ours_over_bare_cpu_ms: oc !== undefined && bc !== undefined ? Math.round((oc.median - bc.median) * 10) / 10 : null,
      ours_tty_cpu_ms: tc?.median ?? null,
      ours_tty_replayed: SCRIPT ? ttyReplayed : null,
      ours_tty_full_cpu_ms: tfc?.median ?? null,
      speedup_cpu_tty: tc !== undefined && pc !== undefined ? ratio(pc.median, tc.median) : null,
      extra_ca_certs: extraCa,
      ours_cpu_ms_no_extra_ca: nc?.median ?? null,
      node_bare_cpu_ms_no_extra_ca: nbc?.median ?? null,
      speedup_cpu_no_extra_ca: nc !== undefined && pc !== undefined ? ratio(pc.median, nc.median) : null,
      cpu_clock: CPU_CLOCK,
      ours_wall_spread: ow,
      peer_wall_spread: pw,
      ours_cpu_spread: oc ?? null,
      peer_cpu_spread: pc ?? null,
      command: 'node scripts/pipeline.cjs --file <dir>/pipeline.yaml',
      runs: RUNS,
      loadavg_1m_before: Math.round(loadBefore * 100) / 100,
      loadavg_1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
      loadavg_5m: Math.round((loadavg()[1] ?? 0) * 100) / 100,
    }),
  )
} finally {
  if (KEEP) log(`kept ${root}`)
  else rmSync(root, { recursive: true, force: true })
}
