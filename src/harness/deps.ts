/**
 * The graph half of the analyzer: resolves each declared dep to upstream instances
 * (`all`, `where`, `match`, or the single instance of a plain stage), finds cycles between
 * stages and reports each as its trail (`a -> b -> a`), and orders instances topologically
 * (deps first, ties broken by id) so every caller sees the same order.
 */
import { jsonEqual, matchesAll } from './matrix.ts'
import type { Ctx, DepDecl, StageDecl } from './stage-decl.ts'
import { didYouMean } from './suggest.ts'
import type { InstanceDep, StageInstance } from './types.ts'

/**
 * Fill every instance's `deps`. `declared` is every stage name written in the file, valid
 * or not: a dep onto a stage that exists but failed its own checks is not reported again.
 */
export function resolveDeps(
  ctx: Ctx,
  decls: ReadonlyMap<string, StageDecl>,
  declared: ReadonlySet<string>,
  disabled: ReadonlySet<string> = new Set(),
  profile?: string,
): void {
  for (const decl of decls.values()) {
    for (const dep of decl.deps) {
      if (disabled.has(dep.stage)) {
        const where = profile === undefined ? 'this pipeline' : `profile ${profile}`
        ctx.failures.push({
          reason: 'dangling-dep',
          location: ctx.src.locate([...dep.at, 'stage']),
          from: decl.name,
          to: dep.stage,
          message: `stage ${dep.stage} is not enabled in ${where} (enabled: false). Enable it there, or remove this dep (a profile can replace deps by name).`,
        })
        continue
      }
      resolveDep(ctx, decl, dep, decls, declared)
    }
    for (const inst of decl.instances) {
      inst.deps.sort((a, b) => (a.as !== b.as ? (a.as < b.as ? -1 : 1) : a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0))
    }
  }
}

function resolveDep(ctx: Ctx, decl: StageDecl, dep: DepDecl, decls: ReadonlyMap<string, StageDecl>, declared: ReadonlySet<string>): void {
  const at = dep.at
  const dangling = (path: (string | number)[], message: string, key = false): void => {
    ctx.failures.push({
      reason: 'dangling-dep',
      location: ctx.src.locate(path, key ? 'key' : 'value'),
      from: decl.name,
      to: dep.stage,
      message,
    })
  }
  const target = decls.get(dep.stage)
  if (target === undefined) {
    if (!declared.has(dep.stage)) {
      dangling(
        [...at, 'stage'],
        `there is no stage named ${JSON.stringify(dep.stage)}.${didYouMean(dep.stage, declared)} Stages: ${[...declared].sort().join(', ')}.`,
      )
    }
    return
  }
  if (!target.outputs.has(dep.output)) {
    dangling(
      [...at, 'output'],
      `stage ${target.name} has no output ${JSON.stringify(dep.output)}.${didYouMean(dep.output, target.outputs)} Its outputs: ${[...target.outputs].join(', ')}.`,
    )
    return
  }
  if (target.hasMatrix && !dep.all && dep.where === undefined && dep.match === undefined) {
    dangling(
      at,
      `stage ${target.name} has a matrix, so say which of its instances: add all: true, where: {param: value} or match: [param].`,
      true,
    )
    return
  }
  if (target.instances.length === 0 || decl.instances.length === 0) return // already reported

  let good = true
  for (const key of Object.keys(dep.where ?? {})) {
    if (!target.instances.some((u) => Object.hasOwn(u.params, key))) {
      good = false
      dangling(
        [...at, 'where', key],
        `stage ${target.name} has no param ${JSON.stringify(key)}.${didYouMean(key, paramNames(target))} Filter on one of its params: ${paramNames(target).join(', ')}.`,
        true,
      )
    }
  }
  ;(dep.match ?? []).forEach((key, i) => {
    for (const side of [decl, target]) {
      if (!side.instances.every((u) => Object.hasOwn(u.params, key))) {
        good = false
        dangling(
          [...at, 'match', i],
          `match key ${JSON.stringify(key)} is not a param of stage ${side.name}. match needs a matrix or param key of both stages.`,
        )
        break
      }
    }
  })
  if (!good) return

  const candidates = dep.where === undefined ? target.instances : target.instances.filter((u) => matchesAll(u.params, dep.where!))
  const empty: string[] = []
  for (const inst of decl.instances) {
    const chosen = candidates.filter((u) => (dep.match ?? []).every((k) => jsonEqual(u.params[k]!, inst.params[k]!)))
    if (chosen.length === 0) empty.push(inst.id)
    for (const u of chosen) inst.deps.push({ as: dep.as, instance: u.id, output: dep.output } satisfies InstanceDep)
  }
  if (empty.length > 0) {
    const who = decl.hasMatrix ? ` for ${empty[0]}${empty.length > 1 ? ` and ${empty.length - 1} more` : ''}` : ''
    dangling(
      at,
      `resolves to no instance of ${target.name}${who}. Check the where/match values against ${target.name}'s instances (${target.instances.map((u) => u.id).join(', ')}).`,
      true,
    )
  }
}

function paramNames(decl: StageDecl): string[] {
  return [...new Set(decl.instances.flatMap((u) => Object.keys(u.params)))].sort()
}

/**
 * Report each cycle between stages once, as the shortest trail from its alphabetically
 * first stage back to itself, located at the dep that starts the trail. Returns whether
 * any was found.
 */
export function reportCycles(ctx: Ctx, decls: ReadonlyMap<string, StageDecl>): boolean {
  const edges = new Map<string, string[]>()
  for (const d of decls.values()) {
    edges.set(d.name, [...new Set(d.deps.map((x) => x.stage).filter((s) => decls.has(s)))].sort())
  }
  let found = false
  for (const component of stronglyConnected(edges)) {
    const start = [...component].sort()[0]!
    const selfLoop = edges.get(start)!.includes(start)
    if (component.size === 1 && !selfLoop) continue
    const trail = selfLoop ? [start, start] : shortestCycle(start, edges, component)
    const dep = decls.get(start)!.deps.find((x) => x.stage === trail[1])!
    ctx.failures.push({ reason: 'cycle', location: ctx.src.locate([...dep.at, 'stage']), trail })
    found = true
  }
  return found
}

/** Tarjan's algorithm; components in a deterministic order. */
function stronglyConnected(edges: ReadonlyMap<string, string[]>): Set<string>[] {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const out: Set<string>[] = []
  const visit = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter++)
    stack.push(v)
    onStack.add(v)
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component = new Set<string>()
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.add(w)
      } while (w !== v)
      out.push(component)
    }
  }
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v)
  return out
}

/** Breadth-first: the shortest path start -> ... -> start inside one component. */
function shortestCycle(start: string, edges: ReadonlyMap<string, string[]>, component: ReadonlySet<string>): string[] {
  const parent = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const v = queue.shift()!
    for (const w of edges.get(v) ?? []) {
      if (!component.has(w)) continue
      if (w === start) {
        const trail = [start]
        for (let u: string | undefined = v; u !== undefined && u !== start; u = parent.get(u)) trail.splice(1, 0, u)
        trail.push(start)
        return trail
      }
      if (!parent.has(w)) {
        parent.set(w, v)
        queue.push(w)
      }
    }
  }
  return [start, start]
}

/** Kahn's algorithm over instances; among ready instances the smallest id goes first. */
export function topologicalOrder(instances: readonly StageInstance[]): string[] {
  const remaining = new Map<string, number>()
  const dependents = new Map<string, string[]>()
  for (const inst of instances) {
    const ups = new Set(inst.deps.map((d) => d.instance))
    remaining.set(inst.id, ups.size)
    for (const u of ups) {
      const list = dependents.get(u)
      if (list) list.push(inst.id)
      else dependents.set(u, [inst.id])
    }
  }
  const ready = instances
    .filter((i) => remaining.get(i.id) === 0)
    .map((i) => i.id)
    .sort()
  const order: string[] = []
  while (ready.length > 0) {
    const id = ready.shift()!
    order.push(id)
    for (const d of dependents.get(id) ?? []) {
      const n = remaining.get(d)! - 1
      remaining.set(d, n)
      if (n === 0) {
        let i = 0
        while (i < ready.length && ready[i]! < d) i++
        ready.splice(i, 0, d)
      }
    }
  }
  return order
}
