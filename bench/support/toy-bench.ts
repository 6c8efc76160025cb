/**
 * What the toy-DAG benchmarks against Snakemake share: the 200-instance shape, a timed child
 * process (wall time, and CPU time from GNU time, which reports wait4's rusage and so includes
 * every child the process reaped: stage processes, worker processes, shells), median/min/max,
 * and the same DAG written as a Snakefile whose shell commands do the same trivial file writes
 * as the toy stages of test/harness/fixtures/toy-dag.ts.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
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
  stdout: string
}

/** Wall time (and CPU time) in ms of one child process; throws when it fails. */
export function timed(cmd: string, argv: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Timing {
  const cpuFile = join(tmpdir(), `cusp-bench-cpu-${process.pid}`)
  const [file, fullArgv] = GNU_TIME ? [GNU_TIME, ['-o', cpuFile, '-f', '%U %S', cmd, ...argv]] : [cmd, argv]
  const t0 = process.hrtime.bigint()
  const r = spawnSync(file, fullArgv, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).slice(-2000)}`)
  let cpuMs: number | undefined
  if (GNU_TIME) {
    const [u, s] = readFileSync(cpuFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number)
    cpuMs = ((u ?? 0) + (s ?? 0)) * 1000
    rmSync(cpuFile, { force: true })
  }
  return { ms, cpuMs, stdout: r.stdout }
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
