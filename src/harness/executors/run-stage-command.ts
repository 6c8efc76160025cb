/**
 * `cusp run-stage <instance-id> --store <url>`: what a container (or any out-of-process runner)
 * executes. It brings exactly one instance up to date in the shared store with the executor's
 * own code, so there is one implementation of materialise / run / check / publish: `execute`
 * with that instance as the only target and a private, throw-away lock file. Its upstream must
 * already be in the store (the scheduling harness runs instances in DAG order): a restore is
 * fine, an upstream that would have to run is an error, because a container must never
 * recompute its upstream. With `expect`, the instance's fingerprint as computed here must equal
 * the scheduler's, or nothing runs: a different image (code digest) or numeric environment
 * (backend, versions) would otherwise publish under a fingerprint the scheduler never reads.
 * A run that is already a cache hit does nothing and succeeds (safe to retry).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecEvent, ExecSummary, RunOptions } from '../run-types.ts'
import { execute, planDetailed } from '../run-pipeline.ts'
import { fail, type ArtifactStore, type Failure, type Result, type ValidPipeline } from '../types.ts'

export interface RunOneOptions {
  pipeline: ValidPipeline
  store: ArtifactStore
  instance: string
  /** The fingerprint the scheduler planned; refuse to run under another one. */
  expect?: string
  env?: RunOptions['env']
  processEnv?: RunOptions['processEnv']
  onEvent?: (e: ExecEvent) => void
}

/**
 * Runs (or restores) one instance into the store; see the module comment. `ok` with the
 * execution summary whenever execution started (check `summary.ok`); `fail` when the instance
 * cannot be run here (upstream not in the store, fingerprint differs, unknown instance).
 */
export async function runOne(o: RunOneOptions): Promise<Result<ExecSummary, Failure[]>> {
  if (!o.pipeline.instances.has(o.instance)) {
    return fail([{ reason: 'unknown-target', target: o.instance, known: [...o.pipeline.instances.keys()].slice(0, 20) }])
  }
  const dir = await mkdtemp(join(tmpdir(), 'cusp-run-stage-'))
  try {
    const base = {
      pipeline: o.pipeline,
      store: o.store,
      lockPath: join(dir, 'pipeline.lock'),
      targets: [o.instance],
      ...(o.env !== undefined ? { env: o.env } : {}),
      ...(o.processEnv !== undefined ? { processEnv: o.processEnv } : {}),
    }
    const planned = await planDetailed(base)
    if (!planned.ok) return planned
    const ups = planned.value.steps.filter((s) => s.instance !== o.instance && s.action === 'run')
    if (ups.length > 0) {
      return fail([
        {
          reason: 'store-error',
          message: `${o.instance}: upstream ${ups.map((s) => s.instance).join(', ')} has no complete run in ${o.store.description} for its current fingerprint; run-stage runs one instance and never its upstream (run those first)`,
        },
      ])
    }
    const known = planned.value.known.get(o.instance)
    if (o.expect !== undefined && known?.fingerprint.fingerprint !== o.expect) {
      const env = known !== undefined ? JSON.stringify(known.fingerprint.breakdown.env) : '(unknown)'
      return fail([
        {
          reason: 'usage',
          message: `${o.instance}: fingerprint here is ${known?.fingerprint.fingerprint ?? '(unknown)'}, the scheduler expected ${o.expect}; the image's code, params or numeric environment (${env}) differ from the scheduler's checkout, so nothing was run`,
        },
      ])
    }
    // No time limit in here: the runner that started this command stops it at the instance's limit.
    return await execute({ ...base, ...(o.onEvent !== undefined ? { onEvent: o.onEvent } : {}), jobs: 1, jobTimeout: false })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Exit status of a run-stage process for a `runOne` result: 0 done, 1 failed (or upstream missing), 2 usage (unknown instance, fingerprint mismatch). */
export function runOneExitCode(r: Result<ExecSummary, Failure[]>): number {
  if (!r.ok) return r.error.every((f) => f.reason === 'unknown-target' || f.reason === 'usage') ? 2 : 1
  return r.value.ok ? 0 : 1
}
