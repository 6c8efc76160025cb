/**
 * The numeric environment of a stage: the part of a fingerprint that says *which arithmetic*
 * produced the numbers. Contract: an `EnvRecord` holds everything that can change an output's
 * bits for the same code, params and inputs, and nothing else, so that a change of it is a
 * real reason to rerun (shown as `env-changed`) and a rerun never happens for a cosmetic reason.
 *
 * What belongs: the tensor backend actually selected (`cpu`, `wasm`, `tensorflow`, `webgl`), the
 * versions of the engine packages doing the arithmetic (`@tensorflow/tfjs-core`, the backend
 * package), native library versions when a native backend is used (libtensorflow, CUDA, cuDNN,
 * the GPU model if kernels differ by it), wasm feature flags (SIMD, threads), and, for the pure-JS
 * `cpu` backend only, the Node major version (its `Math.exp` etc. come from V8). What does not
 * belong: host names, core counts, paths, time, the harness's own version, and package versions
 * that do no arithmetic (the code digest already pins the versions of every package a stage
 * imports). Stages that run no numeric engine use `harnessEnv()`, a stable placeholder, so a Node
 * or OS upgrade does not rerun them. The science engine supplies its record via `envRecord`.
 */
import type { EnvRecord } from './vocabulary.ts'

/**
 * A normalised `EnvRecord`: `versions` copied with keys sorted, so records built in any order
 * print and compare identically. Throws `TypeError` on an empty backend or a non-string /
 * empty version (an engine that cannot say what it is must not be cached as if it could).
 */
export function envRecord(backend: string, versions: Record<string, string>): EnvRecord {
  if (typeof backend !== 'string' || backend.trim() === '') throw new TypeError('envRecord: backend must be a non-empty string')
  const sorted: Record<string, string> = {}
  for (const key of Object.keys(versions).sort()) {
    const v: unknown = versions[key]
    if (typeof v !== 'string' || v.trim() === '') throw new TypeError(`envRecord: version of '${key}' must be a non-empty string`)
    Object.defineProperty(sorted, key, { value: v.trim(), enumerable: true, writable: true, configurable: true })
  }
  return { backend: backend.trim(), versions: sorted }
}

/**
 * The environment of a stage that does no numeric work through an engine (data preparation,
 * figures, audit, test fixtures): `{ backend: 'none', versions: {} }`. Deliberately constant.
 */
export function harnessEnv(): EnvRecord {
  return envRecord('none', {})
}
