/**
 * Lets a warm stage worker keep this process's tfjs engine between jobs (docs/architecture.md,
 * "Stage processes"). The worker offers a registry of keepers on globalThis under
 * `Symbol.for('cusp.stage-worker.keepers')`; this module registers the engine there once: the
 * globals tfjs installs (`_tfengine`, `_tfGlobals`), the process events the wasm backend listens
 * to, and a description of the engine state one job could leave for the next: the backend in
 * use and the ones registered, the flags set to other than their default, the identity of every
 * registered kernel and gradient, live tensors, data buffers and variables. The first job that
 * loads the engine sets the baseline; a job that leaves any of it different (switches backend,
 * flips a flag, registers a kernel, leaves a tensor alive) costs its worker, and so does any job,
 * the first included, that leaves a tensor, data buffer or variable alive or a flag set. Outside a warm
 * worker there is no registry and this does nothing. The objective's worker threads (thread-pool.ts)
 * check their own engines with the same description between jobs.
 */
import * as tf from '@tensorflow/tfjs'

const KEEPERS = Symbol.for('cusp.stage-worker.keepers')

interface Keeper {
  globals: readonly string[]
  events: readonly string[]
  state(): Record<string, string | number>
  problems(): string[]
}

interface EngineInternals {
  backendName: string | null
  state: { registeredVariables: Record<string, unknown> }
}

interface EnvInternals {
  flags: Record<string, unknown>
  flagRegistry: Record<string, { evaluationFn: () => unknown } | undefined>
}

/** A number per object, for telling a registry entry from its replacement. */
export function identities(): (o: object) => number {
  const ids = new WeakMap<object, number>()
  let next = 0
  return (o) => {
    let id = ids.get(o)
    if (id === undefined) ids.set(o, (id = ++next))
    return id
  }
}

/** `key#id` of each entry of a registry Map of tfjs's globals, in key order. */
function registry(name: string, id: (o: object) => number): string {
  const map = (globalThis as unknown as { _tfGlobals?: Map<string, unknown> })._tfGlobals?.get(name)
  if (!(map instanceof Map)) return 'none'
  return [...(map as Map<string, object>).entries()]
    .map(([k, v]) => `${k}#${id(v)}`)
    .sort()
    .join(',')
}

/**
 * The flags whose value is not what evaluating them afresh gives (a flag read is cached, not set);
 * `set` only those whose evaluation is synchronous (the wasm backend's feature probes are async).
 */
function setFlags(): { all: string; set: string[] } {
  const env = tf.env() as unknown as EnvInternals
  const out: string[] = []
  const set: string[] = []
  for (const [name, value] of Object.entries(env.flags).sort(([a], [b]) => (a < b ? -1 : 1))) {
    let fresh: unknown
    try {
      fresh = env.flagRegistry[name]?.evaluationFn()
    } catch {
      fresh = undefined
    }
    if (fresh instanceof Promise) fresh.catch(() => undefined) // async flags are kept as read
    if (fresh instanceof Promise || !Object.is(fresh, value)) out.push(`${name}=${JSON.stringify(value)}`)
    if (!(fresh instanceof Promise) && !Object.is(fresh, value)) set.push(name)
  }
  return { all: out.join(','), set }
}

/** The engine state one job could leave for the next, as a flat record (`id` from `identities()`, one per keeper). */
export function engineState(id: (o: object) => number): Record<string, string | number> {
  const engine = tf.engine() as unknown as EngineInternals
  const mem = tf.memory()
  return {
    backend: engine.backendName ?? 'none',
    backends: tf.engine().backendNames().sort().join(','),
    flags: setFlags().all,
    kernels: registry('kernelRegistry', id),
    gradients: registry('gradRegistry', id),
    tensors: mem.numTensors,
    dataBuffers: mem.numDataBuffers,
    variables: Object.keys(engine.state.registeredVariables).length,
  }
}

/** What is wrong with the engine after any job, in words: live tensors, data buffers, variables, flags set. */
export function engineProblems(): string[] {
  const engine = tf.engine() as unknown as EngineInternals
  const mem = tf.memory()
  const variables = Object.keys(engine.state.registeredVariables).length
  return [
    ...(mem.numTensors > 0 ? [`${mem.numTensors} tensors left alive`] : []),
    ...(mem.numDataBuffers > 0 ? [`${mem.numDataBuffers} data buffers left`] : []),
    ...(variables > 0 ? [`${variables} variables left`] : []),
    ...setFlags().set.map((f) => `flag ${f} set`),
  ]
}

/** Registers the engine's keeper with a warm stage worker, once per process; a no-op elsewhere. */
export function offerWarmEngine(): void {
  const keepers = (globalThis as Record<symbol, unknown>)[KEEPERS]
  if (!(keepers instanceof Map) || keepers.has('tfjs')) return
  const id = identities()
  const keeper: Keeper = {
    globals: ['_tfengine', '_tfGlobals'],
    events: ['uncaughtException', 'unhandledRejection'],
    state: () => engineState(id),
    problems: engineProblems,
  }
  keepers.set('tfjs', keeper)
}
