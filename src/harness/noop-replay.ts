/**
 * When a `run` is one that scripts/noop-replay.cjs may record and later replay without loading
 * the CLI (docs/architecture.md, "No-op replay"): a plain run (no --force, --dry-run, --verify,
 * --estimate, remote executor), on a local store, where every selected instance was fresh and
 * publishing wrote, removed, kept back or failed nothing. The CLI then offers the run to the
 * recorder through a global the script installs; in-process callers (tests) have none, so this
 * does nothing there. The recorder still refuses a run that wrote anything, checked a process,
 * imported a package or exited non-zero.
 */
import type { PublishReport } from './published.ts'
import type { ExecSummary } from './run-types.ts'
import { LocalStore } from './store/local-store.ts'
import type { ArtifactStore } from './types.ts'

/** The global scripts/noop-record.mjs installs while it records. */
const HOOK = Symbol.for('cusp.noop-replay')

export interface ReplayCandidate {
  cmd: { force: boolean; dryRun: boolean; verify: boolean; estimate: boolean; executor: string }
  remote: boolean
  store: ArtifactStore
  summary: ExecSummary
  published: PublishReport | undefined
  root: string
}

/** Whether this finished run is a no-op a replay may stand for. */
export function replayable(c: ReplayCandidate): boolean {
  const { cmd, summary, published } = c
  if (cmd.force || cmd.dryRun || cmd.verify || cmd.estimate || cmd.executor !== 'local' || c.remote) return false
  if (!(c.store instanceof LocalStore)) return false
  if (!summary.ok || summary.failures.length > 0) return false
  if (!Object.values(summary.outcomes).every((o) => o.outcome === 'fresh')) return false
  if (published !== undefined) {
    const p = published
    if (p.written.length + p.removed.length + p.kept.length + p.problems.length + Object.keys(p.saved).length > 0) return false
  }
  return true
}

/** Offers the run to the recorder when it is replayable (see the module comment). */
export function offerReplay(c: ReplayCandidate): void {
  const hook = (globalThis as Record<symbol, { offer?: (root: string) => void } | undefined>)[HOOK]
  if (hook?.offer !== undefined && replayable(c)) hook.offer(c.root)
}
