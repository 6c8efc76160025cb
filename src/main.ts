/**
 * The composition root: the one module that imports every layer. It gives the generic harness
 * (src/harness) its science side (numeric environments, backend names: src/science/host.ts) and
 * its report side (the audit summary printed after a run: src/report/print-audit.ts), and is the
 * entry of `npm run pipeline` (scripts/pipeline.mjs runs its bundle, scripts/cli-bundle.mjs builds
 * it). Tests drive `main` in-process with the same wiring. docs/architecture.md draws the layers.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { main as harnessMain, runAsProcess as harnessRunAsProcess, type CliIo } from './harness/cli.ts'
import type { Host } from './harness/host.ts'
import { confirmRun, estimateOutput } from './estimate/cli-estimate.ts'
import { instanceCost } from './estimate/stage-cost.ts'
import { AUDIT_INSTANCE, auditSummaryText } from './report/print-audit.ts'
import { scienceHost } from './science/host.ts'

export type { CliIo } from './harness/cli.ts'

/** The harness as this project runs it: science environments, backends, the audit summary. */
export const host: Host = {
  ...scienceHost,
  costs: { estimateOutput, confirmRun },
  workSize: (inst, lookup) => instanceCost(inst, lookup)?.flops,
  afterRun: (run) =>
    auditSummaryText({ lockPath: run.lockPath, store: run.store, outcome: run.outcomes[AUDIT_INSTANCE]?.outcome, runProfile: run.profile }),
}

/** The CLI on `argv` (without node and the script), wired; resolves to the exit code. */
export function main(argv: readonly string[], io: CliIo): Promise<number> {
  return harnessMain(argv, io, host)
}

/** Run as the process (process.argv, real streams), then exit with the CLI's code. */
export function runAsProcess(): Promise<never> {
  return harnessRunAsProcess(host)
}

function isEntry(): boolean {
  const arg = process.argv[1]
  if (arg === undefined) return false
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

// Not awaited at top level: the CLI bundle is CommonJS (scripts/cli-bundle.mjs); runAsProcess exits.
if (isEntry()) void runAsProcess()
