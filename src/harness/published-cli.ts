/**
 * The CLI's seams to published results (published.ts): publish after a run or a pull, the lines
 * that close a run (ending with the file to open), and what `status` adds about published files.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import {
  openTarget,
  publishedStatus,
  publishedStatusText,
  publishFromLock,
  publishLines,
  type PublishedDrift,
  type PublishReport,
} from './published.ts'
import type { InstanceOutcome } from './run-types.ts'
import type { ArtifactStore, ValidPipeline } from './types.ts'

/** Outcomes whose instance keeps what was published before (its lock entry is not this run's). */
const KEEP_PREVIOUS = new Set<InstanceOutcome['outcome']>(['failed', 'skipped', 'nondeterministic'])

/**
 * Publish the lock's outputs for `pipeline.publish`, except instances that failed or were skipped
 * in `outcomes`. Undefined when the pipeline publishes nothing and nothing was published before.
 */
export async function publishAfter(
  base: { pipeline: ValidPipeline; store: ArtifactStore; lockPath: string },
  outcomes: Readonly<Record<string, InstanceOutcome>> = {},
): Promise<PublishReport | undefined> {
  const entries = base.pipeline.publish ?? []
  const skip = new Set(Object.entries(outcomes).flatMap(([id, o]) => (KEEP_PREVIOUS.has(o.outcome) ? [id] : [])))
  const r = await publishFromLock({ root: base.pipeline.root, entries, lockPath: base.lockPath, store: base.store, skip })
  const nothing = r.written.length + r.unchanged + r.removed.length + r.kept.length + r.problems.length === 0
  return nothing && entries.length === 0 ? undefined : r
}

/** What to print after publishing: what changed, then, last, the file to open (when it is there). */
export function closingLines(r: PublishReport | undefined, pipeline: ValidPipeline): string[] {
  if (r === undefined) return []
  const lines = publishLines(r)
  const target = openTarget(pipeline.publish ?? [])
  if (target !== undefined && existsSync(join(pipeline.root, ...target.target.split('/')))) {
    lines.push(`results: ${(pipeline.publish ?? []).map((e) => e.target).join(', ')} (npm run pipeline -- open)`)
    lines.push(`open ${target.target}`)
  }
  return lines
}

/** `status`'s part about published files: text for a terminal, the drift list for --json. */
export async function publishedStatusLines(pipeline: ValidPipeline): Promise<{ text: string; json: PublishedDrift[] }> {
  const drift = await publishedStatus(pipeline.root, pipeline.publish ?? [])
  return { text: publishedStatusText(drift), json: drift }
}
