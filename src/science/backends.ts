/**
 * The engine backends a science stage may ask for (its `backend` param), written out once. The
 * CLI's `--backend` flag, the fingerprint environment (env-record.ts) and the engine (engine.ts)
 * take the list from here; the stages' params schemas list the same names (a test keeps them
 * equal). Adding a backend: add it here, teach engine.ts to initialise it and env-record.ts to
 * predict its record (both are exhaustive switches, so the compiler points at them).
 */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu', 'webgpu'] as const

/** One of BACKEND_CHOICES; 'auto' takes the first that works of tensorflow, wasm, cpu ('webgpu' only when asked for). */
export type BackendChoice = (typeof BACKEND_CHOICES)[number]

/** True when `name` is one of BACKEND_CHOICES. */
export function isBackendChoice(name: unknown): name is BackendChoice {
  return typeof name === 'string' && (BACKEND_CHOICES as readonly string[]).includes(name)
}
