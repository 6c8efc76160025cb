/**
 * The plan in one line per stage, for the first screen of a run on a terminal: how many of the
 * stage's instances run, restore or are fresh, and the reason most of its runs share, e.g.
 * `train  12 run (never run)  0 restore  0 fresh`. Stages with nothing to run or restore are
 * counted in one closing line. The per-instance reasons stay available (`--dry-run`, `-v`,
 * `status`, and every output that is not a terminal). Pure.
 */
import { reasonGist } from './reasons.ts'
import type { PlanStep } from './types.ts'

export interface StageCount {
  stage: string
  run: number
  restore: number
  fresh: number
  /** The reason most of the stage's runs share, with `k of n` when not all do. */
  reason: string | undefined
}

/** Per stage, in the order the plan first reaches it. */
export function stageCounts(steps: readonly PlanStep[], stageOf: (id: string) => string): StageCount[] {
  const by = new Map<string, PlanStep[]>()
  for (const s of steps) {
    const stage = stageOf(s.instance)
    by.set(stage, [...(by.get(stage) ?? []), s])
  }
  return [...by].map(([stage, ss]) => {
    const runs = ss.filter((s) => s.action === 'run')
    return {
      stage,
      run: runs.length,
      restore: ss.filter((s) => s.action === 'restore').length,
      fresh: ss.filter((s) => s.action === 'fresh').length,
      reason: dominantReason(runs),
    }
  })
}

/**
 * The reason shared by most of `runs` (each instance counted once per kind of reason): ties go to
 * a root cause over `upstream changed`, then to the first seen. `param eta changed: 3 of 12`
 * when not every run has it; `selected` when the runs give no reason.
 */
export function dominantReason(runs: readonly PlanStep[]): string | undefined {
  if (runs.length === 0) return undefined
  const counts = new Map<string, number>()
  for (const s of runs) for (const g of new Set(s.reasons.map(reasonGist))) counts.set(g, (counts.get(g) ?? 0) + 1)
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || Number(a[0] === 'upstream changed') - Number(b[0] === 'upstream changed'))
  const top = ranked[0]
  if (top === undefined) return 'selected'
  return top[1] === runs.length ? top[0] : `${top[0]}: ${top[1]} of ${runs.length}`
}

/** The table's lines (without the plan's header line). */
export function stageLines(steps: readonly PlanStep[], stageOf: (id: string) => string): string[] {
  const all = stageCounts(steps, stageOf)
  const busy = all.filter((c) => c.run + c.restore > 0)
  const idle = all.filter((c) => c.run + c.restore === 0)
  if (busy.length === 0) return []
  const wn = Math.max(...busy.map((c) => String(c.run).length))
  const runText = (c: StageCount): string => `${String(c.run).padStart(wn)} run${c.reason !== undefined ? ` (${c.reason})` : ''}`
  const w1 = Math.max(...busy.map((c) => c.stage.length))
  const w2 = Math.max(...busy.map((c) => runText(c).length))
  const lines = busy.map((c) => `  ${c.stage.padEnd(w1)}  ${runText(c).padEnd(w2)}  ${c.restore} restore  ${c.fresh} fresh`)
  if (idle.length > 0) {
    const n = idle.reduce((a, c) => a + c.fresh, 0)
    lines.push(`  ${idle.length} more stage${idle.length === 1 ? '' : 's'} fresh (${n} instance${n === 1 ? '' : 's'})`)
  }
  return lines
}
