/**
 * What `status` and `why` print, computed from the planner's steps. `status` lists every instance
 * with its action (fresh / would restore / would run) and the reasons (many changed upstreams in
 * one line, reasons.ts `describeReasons`); `--json` gives one object
 * `{"instances": [{id, stage, action, reasons}]}` where each reason is the planner's reason object
 * plus a `text` field in words. `why <instance>` explains one instance: what changed against the
 * lock, old -> new, and for an upstream change it follows the chain to the root cause. Lock values
 * reach the text through `describeReason` and the JSON through `terminalJson` (redact.ts), so
 * neither carries terminal controls. Pure functions of (pipeline, steps): no I/O.
 */
import { describeReason, describeReasons } from './reasons.ts'
import { terminalJson } from './redact.ts'
import { painter } from './reporter.ts'
import type { PlanStep, RerunReason, ValidPipeline } from './types.ts'

/** One instance in `status --json`. */
export interface StatusEntry {
  id: string
  stage: string
  action: PlanStep['action']
  reasons: Array<RerunReason & { text: string }>
}

/** The single object `status --json` prints, instances in topological order. */
export function statusJson(pipeline: ValidPipeline, steps: readonly PlanStep[]): { instances: StatusEntry[] } {
  const byId = new Map(steps.map((s) => [s.instance, s]))
  const instances: StatusEntry[] = []
  for (const id of pipeline.order) {
    const step = byId.get(id)
    if (step === undefined) continue
    instances.push({
      id,
      stage: pipeline.instances.get(id)?.stage ?? id,
      action: step.action,
      reasons: step.reasons.map((r) => ({ ...r, text: describeReason(r) })),
    })
  }
  return { instances }
}

const LABEL: Record<PlanStep['action'], string> = { fresh: 'fresh', restore: 'would restore', run: 'would run' }

/** The human `status` table: one line per instance, then its reasons indented. */
export function statusText(pipeline: ValidPipeline, steps: readonly PlanStep[], color: boolean): string {
  const paint = painter(color)
  const { instances } = statusJson(pipeline, steps)
  const width = Math.max(0, ...instances.map((i) => i.id.length))
  const lines: string[] = []
  for (const i of instances) {
    const tint = i.action === 'fresh' ? paint.green : i.action === 'restore' ? paint.cyan : paint.yellow
    lines.push(`${i.id.padEnd(width)}  ${tint(LABEL[i.action])}`)
    for (const text of describeReasons(i.reasons)) lines.push(paint.dim(`${' '.repeat(width)}    ${text}`))
  }
  const count = (a: PlanStep['action']): number => instances.filter((i) => i.action === a).length
  lines.push(`${instances.length} instances: ${count('fresh')} fresh, ${count('restore')} would restore, ${count('run')} would run`)
  return `${lines.join('\n')}\n`
}

/**
 * Why `id` would run (or why it is fresh). An `upstream-changed` reason is expanded into the
 * upstream instance's own reasons, recursively, so the user sees the root change (e.g. the
 * prepare stage's seed) rather than a chain of "upstream changed".
 */
export function whyText(pipeline: ValidPipeline, steps: readonly PlanStep[], id: string, json: boolean): string {
  const byId = new Map(steps.map((s) => [s.instance, s]))
  const step = byId.get(id)
  if (json) {
    const entry = statusJson(pipeline, step ? [step] : []).instances[0]
    return `${terminalJson(entry ?? { id, action: 'unknown', reasons: [] })}\n`
  }
  if (step === undefined) return `${id}: not planned\n`
  const lines = [`${id}: ${LABEL[step.action]}`]
  if (step.action === 'fresh') lines.push('  nothing changed: its fingerprint matches the lock')
  if (step.action === 'restore') lines.push('  its fingerprint matches a run in the store; outputs would be restored, not recomputed')
  const seen = new Set<string>([id])
  const walk = (reasons: readonly RerunReason[], depth: number): void => {
    for (const r of reasons) {
      lines.push(`${'  '.repeat(depth)}${describeReason(r)}`)
      if (r.kind !== 'upstream-changed' || seen.has(r.upstream)) continue
      seen.add(r.upstream)
      const up = byId.get(r.upstream)
      if (up !== undefined && up.reasons.length > 0) walk(up.reasons, depth + 1)
    }
  }
  walk(step.reasons, 1)
  return `${lines.join('\n')}\n`
}
