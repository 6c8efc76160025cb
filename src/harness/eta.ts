/**
 * How long a plan will take, estimated from earlier runs: pure functions, no clock and no I/O
 * (eta-history.ts reads the run records; the reporter shows the result).
 *
 * - Each instance that will run gets a duration from the run records of its stage (`estimateMs`),
 *   scaled by its work size where the records show how durations vary with it (sizes come from
 *   the host, e.g. FLOPs, so a cpu-profile train is not estimated as if it were a smoke one).
 * - The plan's duration is a list-scheduling simulation of those durations over the instance
 *   graph, mirroring plan-run.ts: an instance becomes ready when its upstream in the plan has
 *   finished, and takes `weight` of `slots` job slots first come, first served (slots.ts: a waiter
 *   at the head of the queue blocks those behind it). The result is the simulated makespan, which
 *   accounts for the critical path and for the slots alike. Instances without an estimate count
 *   as zero and are reported as not counted (the ETA is then a lower bound, and says so).
 */

/** One instance that will run, for the simulation. */
export interface EtaTask {
  id: string
  /** Upstream instance ids; those not among the tasks are already settled. */
  deps: readonly string[]
  /** Job slots it takes (its CPUs), clamped to 1..slots. */
  weight: number
  /** Estimated duration, or undefined when nothing is known (counted as 0). */
  ms: number | undefined
}

/** One earlier run of a stage, from its run record. */
export interface PastRun {
  stage: string
  ms: number
  /** The work size of that run (same unit as the plan's sizes), when the host can tell. */
  size?: number | undefined
}

/** What the reporter needs to show an estimate and keep it current during a run. */
export interface EtaPlan {
  tasks: EtaTask[]
  slots: number
  /** How many run records of the planned stages the estimates come from. */
  runsUsed: number
  /** Tasks without an estimate (their stage never ran here). */
  untimed: number
}

function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

const positive = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x) && x > 0

/** Sizes within this factor of each other are one size: no scaling between them. */
export const SAME_SIZE = 2

/**
 * The estimated duration of one instance of `stage` with work size `size` from `history`:
 * - no size (or no sized earlier run): the median duration of the stage's earlier runs;
 * - earlier runs at two or more sizes (more than SAME_SIZE apart): the least-squares line
 *   ms = a + b x size through them (a fixed start-up cost plus a rate; a >= 0, b >= 0), so a
 *   smoke run's start-up time is not multiplied by a thousandfold larger size;
 * - earlier runs at one size: their median when `size` is within SAME_SIZE of it, else undefined
 *   (how the duration grows with the size is unknown).
 * Undefined when the stage has no earlier run.
 */
export function estimateMs(stage: string, size: number | undefined, history: readonly PastRun[]): number | undefined {
  const own = history.filter((h) => h.stage === stage && Number.isFinite(h.ms) && h.ms >= 0)
  if (own.length === 0) return undefined
  const sized = own.filter((h): h is PastRun & { size: number } => positive(h.size))
  if (!positive(size) || sized.length === 0) return median(own.map((h) => h.ms))
  const lo = Math.min(...sized.map((h) => h.size))
  const hi = Math.max(...sized.map((h) => h.size))
  if (hi / lo <= SAME_SIZE) return size / hi <= SAME_SIZE && lo / size <= SAME_SIZE ? median(sized.map((h) => h.ms)) : undefined
  const { a, b } = fitLine(sized.map((h) => [h.size, h.ms]))
  return a + b * size
}

/** Least squares ms = a + b x size with a >= 0 and b >= 0 (the constrained optimum on a boundary when the free one breaks them). */
export function fitLine(points: ReadonlyArray<readonly [number, number]>): { a: number; b: number } {
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  const b = sxx > 0 ? sxy / sxx : 0
  if (b <= 0) return { a: Math.max(0, my), b: 0 } // no growth with size: a constant
  const a = my - b * mx
  if (a >= 0) return { a, b }
  // Through the origin: b = sum(xy) / sum(x^2).
  const sx2 = points.reduce((s, [x]) => s + x * x, 0)
  return { a: 0, b: points.reduce((s, [x, y]) => s + x * y, 0) / sx2 }
}

/** One planned run, as eta-history.ts describes it. */
export interface PlannedRun {
  id: string
  stage: string
  deps: readonly string[]
  weight: number
  size?: number | undefined
}

/** The estimate of a plan's runs from the history of their stages. */
export function etaPlan(runs: readonly PlannedRun[], history: readonly PastRun[], slots: number): EtaPlan {
  const tasks = runs.map((r): EtaTask => ({ id: r.id, deps: r.deps, weight: r.weight, ms: estimateMs(r.stage, r.size, history) }))
  const stages = new Set(runs.map((r) => r.stage))
  return {
    tasks,
    slots: Math.max(1, Math.floor(slots)),
    runsUsed: history.filter((h) => stages.has(h.stage)).length,
    untimed: tasks.filter((t) => t.ms === undefined).length,
  }
}

/**
 * The simulated makespan (ms) of `tasks` (in topological order) on `slots` job slots. `running`
 * maps tasks already started to their remaining ms: they hold their slots from time 0. Ties are
 * broken by task order, so the result is a function of the arguments alone.
 */
export function schedule(tasks: readonly EtaTask[], slots: number, running: ReadonlyMap<string, number> = new Map()): number {
  const cap = Math.max(1, Math.floor(slots))
  const weight = (t: EtaTask): number => Math.min(cap, Math.max(1, Math.ceil(t.weight)))
  const index = new Map(tasks.map((t, i) => [t.id, i]))
  const waitingOn = new Map<string, number>()
  const dependents = new Map<string, string[]>()
  for (const t of tasks) {
    const ups = [...new Set(t.deps)].filter((d) => d !== t.id && index.has(d))
    waitingOn.set(t.id, ups.length)
    for (const u of ups) dependents.set(u, [...(dependents.get(u) ?? []), t.id])
  }
  let now = 0
  let free = cap
  const active: Array<{ i: number; end: number; w: number }> = []
  for (const [i, t] of tasks.entries()) {
    const left = running.get(t.id)
    if (left === undefined) continue
    free -= weight(t)
    active.push({ i, end: Math.max(0, left), w: weight(t) })
  }
  const queue = tasks.filter((t) => !running.has(t.id) && waitingOn.get(t.id) === 0)
  for (;;) {
    for (let head = queue[0]; head !== undefined && free >= weight(head); head = queue[0]) {
      queue.shift()
      free -= weight(head)
      active.push({ i: index.get(head.id) as number, end: now + Math.max(0, head.ms ?? 0), w: weight(head) })
    }
    if (active.length === 0) return now
    now = Math.min(...active.map((a) => a.end))
    const done = active.filter((a) => a.end === now).sort((a, b) => a.i - b.i)
    for (const d of done) {
      active.splice(active.indexOf(d), 1)
      free += d.w
      for (const id of dependents.get((tasks[d.i] as EtaTask).id) ?? []) {
        const n = (waitingOn.get(id) ?? 0) - 1
        waitingOn.set(id, n)
        if (n === 0 && !running.has(id)) queue.push(tasks[index.get(id) as number] as EtaTask)
      }
    }
  }
}

/** `~45 s`, `~12 min`, `~2 h 05 min`. */
export function fmtEta(ms: number): string {
  const s = Math.max(1, Math.round(ms / 1000))
  if (s < 60) return `~${s} s`
  const min = Math.round(s / 60)
  if (min < 60) return `~${min} min`
  return `~${Math.floor(min / 60)} h ${String(min % 60).padStart(2, '0')} min`
}

/** The line the plan prints, or undefined when nothing will run. */
export function etaLine(plan: EtaPlan): string | undefined {
  if (plan.tasks.length === 0) return undefined
  const counted = plan.tasks.length - plan.untimed
  if (plan.runsUsed === 0 || counted === 0) {
    return plan.runsUsed === 0
      ? 'eta: unknown, no earlier runs to estimate from'
      : `eta: unknown, no earlier run of these stages at a comparable size (${plan.runsUsed} earlier run${plural(plan.runsUsed)})`
  }
  const runs = `${plan.runsUsed} earlier run${plural(plan.runsUsed)} of these stages`
  const slots = `${plan.slots} job slot${plural(plan.slots)}`
  const untimed = plan.untimed > 0 ? `; ${plan.untimed} instance${plural(plan.untimed)} without a comparable earlier run not counted` : ''
  return `eta: ${plan.untimed > 0 ? 'at least ' : ''}${fmtEta(schedule(plan.tasks, plan.slots))} (an estimate from ${runs}, on ${slots}${untimed})`
}

const plural = (n: number): string => (n === 1 ? '' : 's')

/** The live footer's part: time left for the tasks not finished, given those running and their elapsed ms. */
export function remainingText(plan: EtaPlan, finished: ReadonlySet<string>, elapsed: ReadonlyMap<string, number>): string | undefined {
  if (plan.tasks.length === plan.untimed) return undefined
  const left = plan.tasks.filter((t) => !finished.has(t.id))
  const running = new Map<string, number>()
  for (const t of left) {
    const e = elapsed.get(t.id)
    if (e !== undefined) running.set(t.id, Math.max(0, (t.ms ?? 0) - e))
  }
  return `${plan.untimed > 0 ? '>' : ''}${fmtEta(schedule(left, plan.slots, running))} left (estimate)`
}
