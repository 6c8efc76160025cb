/**
 * Keepers: how a shared package that installs globals (an engine such as tfjs) stays warm in a
 * warm stage worker (stage-worker.ts) without weakening its isolation check. The worker puts a
 * registry on globalThis under `Symbol.for('cusp.stage-worker.keepers')` (a Map from a name to a
 * Keeper) before its first job; outside a warm worker there is none. A module that loads such a
 * package registers a keeper there once (a later job's fresh module instance finds the name taken
 * and leaves it). The contract is only this symbol and shape, so stage code needs no import from
 * the harness:
 * - `globals`: the global names the package installs (they join the worker's baseline with the
 *   values they have when the job that registered the keeper ends; later jobs must leave the
 *   same values);
 * - `events`: process events it adds listeners to (their counts join the baseline likewise);
 * - `state()`: a description of everything in the package that one job could leave for the next
 *   (backend, flags, registered kernels, live tensors), as a flat record. After the registering
 *   job its value is the baseline; after every later job it must be equal, else the job costs its
 *   worker and the differing entries are reported;
 * - `problems()` (optional): what is wrong with the package's state after any job, the first
 *   included (live tensors, a flag set), in words; anything costs the worker. This is what keeps
 *   the registering job from making its own leftovers the baseline.
 */

/** The registry's key on globalThis. */
export const KEEPERS = Symbol.for('cusp.stage-worker.keepers')

/** What a package registers to stay warm between jobs (see above). */
export interface Keeper {
  globals: readonly string[]
  events: readonly string[]
  state(): Record<string, string | number>
  problems?(): string[]
}

/** The keepers a worker checks after each job. */
export interface Keepers {
  /** Names of keepers whose baseline is set (registered by an earlier job). */
  readonly settled: ReadonlySet<string>
  /**
   * After a job: sets the baseline of each keeper registered by it (calling `adopt` for each of
   * its globals and `adoptEvent` for each of its events), and returns in words how each earlier
   * keeper's state differs from its baseline (empty when nothing does).
   */
  check(adopt: (global: string) => void, adoptEvent: (event: string) => void): string[]
}

/** Installs the registry on globalThis (a warm worker, before its first job). */
export function installKeepers(): Keepers {
  const registry = new Map<string, Keeper>()
  Object.defineProperty(globalThis, KEEPERS, { value: registry, writable: false, configurable: false, enumerable: false })
  const baselines = new Map<string, { keeper: Keeper; state: Record<string, string | number> }>()
  const settled = new Set<string>()
  return {
    settled,
    check(adopt, adoptEvent) {
      const out: string[] = []
      for (const [name, b] of baselines) if (registry.get(name) !== b.keeper) out.push(`keeper ${name} replaced or removed`)
      for (const [name, keeper] of registry) {
        let state: Record<string, string | number>
        try {
          state = keeper.state()
        } catch (e: unknown) {
          out.push(`${name}: its state cannot be read (${e instanceof Error ? e.message : String(e)})`)
          continue
        }
        try {
          for (const p of keeper.problems?.() ?? []) out.push(`${name}: ${p}`)
        } catch (e: unknown) {
          out.push(`${name}: its state cannot be checked (${e instanceof Error ? e.message : String(e)})`)
        }
        const base = baselines.get(name)?.state
        if (base === undefined) {
          baselines.set(name, { keeper, state })
          settled.add(name)
          for (const g of keeper.globals) adopt(g)
          for (const e of keeper.events) adoptEvent(e)
          continue
        }
        if (baselines.get(name)?.keeper !== keeper) continue // reported above
        for (const k of new Set([...Object.keys(base), ...Object.keys(state)])) {
          if (base[k] !== state[k]) out.push(`${name} ${k} changed (${short(base[k])} -> ${short(state[k])})`)
        }
      }
      return out
    },
  }
}

const short = (v: string | number | undefined): string => {
  const s = String(v)
  return s.length > 60 ? `${s.slice(0, 57)}...` : s
}
