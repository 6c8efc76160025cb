/**
 * Resolving what the user named on the command line to instance ids of a validated pipeline.
 * `--stage NAME` selects every instance of stage NAME; `NAME@k=v,...` (or any exact id) selects
 * one instance. A name that matches nothing is an `unknown-target` Failure whose `known` list
 * holds the closest ids and stage names first (by edit distance), so the message can say
 * "did you mean ...". Pure: no I/O.
 */
import { fail, ok, type Failure, type Result, type ValidPipeline } from './types.ts'

/**
 * Instance ids selected by `selectors`, deduplicated, in the pipeline's topological order.
 * An empty selector list selects nothing (the caller treats that as "everything").
 */
export function resolveSelectors(pipeline: ValidPipeline, selectors: readonly string[]): Result<string[], Failure[]> {
  const chosen = new Set<string>()
  const failures: Failure[] = []
  for (const sel of selectors) {
    const ids = matchSelector(pipeline, sel)
    if (ids.length === 0) failures.push(unknownTarget(pipeline, sel))
    for (const id of ids) chosen.add(id)
  }
  if (failures.length > 0) return fail(failures)
  return ok(pipeline.order.filter((id) => chosen.has(id)))
}

/** The one instance `id` names exactly, or an `unknown-target` Failure listing close matches. */
export function resolveInstance(pipeline: ValidPipeline, id: string): Result<string, Failure> {
  if (pipeline.instances.has(id)) return ok(id)
  const ofStage = pipeline.order.filter((i) => pipeline.instances.get(i)?.stage === id)
  if (ofStage.length === 1 && ofStage[0] !== undefined) return ok(ofStage[0])
  return fail(unknownTarget(pipeline, id))
}

function matchSelector(pipeline: ValidPipeline, sel: string): string[] {
  if (pipeline.instances.has(sel)) return [sel]
  if (sel.includes('@')) return []
  return pipeline.order.filter((id) => pipeline.instances.get(id)?.stage === sel)
}

function unknownTarget(pipeline: ValidPipeline, target: string): Failure {
  return { reason: 'unknown-target', target, known: closeMatches(target, candidates(pipeline)) }
}

function candidates(pipeline: ValidPipeline): string[] {
  const stages = new Set<string>()
  for (const inst of pipeline.instances.values()) stages.add(inst.stage)
  return [...stages, ...pipeline.order.filter((id) => id.includes('@'))]
}

/**
 * Up to `max` candidates ordered by closeness to `target`: those within a third of the target's
 * length in edit distance (or sharing its stage prefix), nearest first. Falls back to the first
 * `max` candidates so the user always sees what exists.
 */
export function closeMatches(target: string, pool: readonly string[], max = 5): string[] {
  const stagePart = target.split('@')[0] ?? target
  const scored = pool
    .map((c) => ({ c, d: editDistance(target, c) }))
    .filter(({ c, d }) => d <= Math.max(2, Math.ceil(target.length / 3)) || (stagePart !== '' && c.startsWith(`${stagePart}@`)))
    .sort((a, b) => a.d - b.d || a.c.localeCompare(b.c))
    .map(({ c }) => c)
  return (scored.length > 0 ? scored : [...pool]).slice(0, max)
}

/** Levenshtein distance (insert, delete, substitute each cost 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      const sub = (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, sub))
    }
    prev = cur
  }
  return prev[b.length] ?? 0
}
