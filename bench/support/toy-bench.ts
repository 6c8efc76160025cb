/**
 * What the toy-DAG benchmarks against Snakemake share: the 200-instance shape, a timed child
 * process (wall time, and CPU time from GNU time, which reports wait4's rusage and so includes
 * every child the process reaped: stage processes, worker processes, shells), median/min/max,
 * and the same DAG written as a Snakefile whose shell commands do the same trivial file writes
 * as the toy stages of test/harness/fixtures/toy-dag.ts.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ToyDagShape } from '../../test/harness/fixtures/toy-dag.ts'

/** 2 + 2 x 9 x 11 = 200 instances. */
export const SHAPE: ToyDagShape = { etas: [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1], seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }

/** GNU time, when installed, gives each child's CPU time (user + sys, reaped children included). */
const GNU_TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined

export interface Timing {
  ms: number
  /** user + sys CPU ms of the child and its reaped children, when GNU time is available. */
  cpuMs: number | undefined
  /** The two halves of cpuMs. */
  userMs: number | undefined
  sysMs: number | undefined
  /** What the child printed on stdout ('' when it printed to a log file). */
  stdout: string
}

export interface TimedOptions {
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv
  /**
   * Send stdout and stderr to this file and give the child /dev/null as stdin, as a shell user
   * who redirects to a log does; without it both are pipes read back by this process.
   */
  log?: string
}

/** Wall time (and CPU time) in ms of one child process; throws when it fails. */
export function timed(cmd: string, argv: string[], cwd: string, o: TimedOptions = {}): Timing {
  const cpuFile = join(tmpdir(), `cusp-bench-cpu-${process.pid}`)
  const [file, fullArgv] = GNU_TIME ? [GNU_TIME, ['-o', cpuFile, '-f', '%U %S', cmd, ...argv]] : [cmd, argv]
  const env = o.env ?? process.env
  const logFd = o.log === undefined ? undefined : openSync(o.log, 'w')
  const t0 = process.hrtime.bigint()
  const r =
    logFd === undefined
      ? spawnSync(file, fullArgv, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 })
      : spawnSync(file, fullArgv, { cwd, env, encoding: 'utf8', stdio: ['ignore', logFd, logFd] })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (logFd !== undefined) closeSync(logFd)
  if (r.status !== 0) {
    const said = o.log === undefined ? r.stderr || r.stdout : readFileSync(o.log, 'utf8')
    throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${said.slice(-2000)}`)
  }
  let userMs: number | undefined
  let sysMs: number | undefined
  if (GNU_TIME) {
    const [u, s] = readFileSync(cpuFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number)
    userMs = (u ?? 0) * 1000
    sysMs = (s ?? 0) * 1000
    rmSync(cpuFile, { force: true })
  }
  const cpuMs = userMs === undefined || sysMs === undefined ? undefined : userMs + sysMs
  return { ms, cpuMs, userMs, sysMs, stdout: r.stdout ?? '' }
}

/**
 * The environment a user's shell gives a command, from this process's: without what `npm run`
 * adds (npm_* and the other variables it sets, node_modules/.bin directories at the front of
 * PATH). Snakemake copies its whole environment into every job's shell, so its cost per job
 * grows with the number of variables (see bench/first-run.ts); the bench records the size.
 */
export function shellUserEnv(env: NodeJS.ProcessEnv = process.env): { env: NodeJS.ProcessEnv; dropped: string[] } {
  const out: NodeJS.ProcessEnv = {}
  const dropped: string[] = []
  const npmSet = env.npm_lifecycle_event !== undefined ? new Set(['INIT_CWD', 'NODE', 'COLOR']) : new Set<string>()
  let npmVars = 0
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith('npm_')) npmVars++
    else if (npmSet.has(k)) dropped.push(k)
    else out[k] = v
  }
  if (npmVars > 0) dropped.push(`npm_* (${npmVars})`)
  if (env.PATH !== undefined) {
    const kept = env.PATH.split(':').filter((d) => !/\/node_modules\//.test(`${d}/`))
    if (kept.length !== env.PATH.split(':').length) dropped.push('PATH entries under node_modules')
    out.PATH = kept.join(':')
  }
  return { env: out, dropped: dropped.sort() }
}

/** Number of variables and bytes (NAME=value plus NUL, as execve copies them) of env. */
export function envSize(env: NodeJS.ProcessEnv): { vars: number; bytes: number } {
  const entries = Object.entries(env).filter(([, v]) => v !== undefined)
  return { vars: entries.length, bytes: entries.reduce((n, [k, v]) => n + Buffer.byteLength(`${k}=${v}`) + 1, 0) }
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** Median, min and max of xs (undefined when any is missing), rounded to 0.1 ms. */
export function spread(xs: Array<number | undefined>): { median: number; min: number; max: number } | undefined {
  if (xs.length === 0 || xs.some((x) => x === undefined)) return undefined
  const ns = xs as number[]
  const r = (x: number): number => Math.round(x * 10) / 10
  return { median: r(median(ns)), min: r(Math.min(...ns)), max: r(Math.max(...ns)) }
}

/** The same DAG as Snakemake rules; shell commands do the same file writes as the toy stages. */
export function snakefile(shape: ToyDagShape): string {
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
