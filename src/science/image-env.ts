/**
 * The numeric environment a stage will have INSIDE the stage image, for the scheduler's
 * fingerprints when instances run in containers (`--executor docker|kubernetes`, `export`).
 * The scheduler's own machine usually lacks tfjs-node-gpu, so predicting from what is installed
 * here (env-record.ts `envForInstance`) would plan fingerprints the container never
 * computes. Inside the image, env-record.ts sees exactly one native package (the Dockerfile
 * installs `@tensorflow/tfjs-node-gpu` in the gpu target, `@tensorflow/tfjs-node` in the cpu
 * one, both at TFJS_NODE_VERSION) beside the same lock file's tfjs-core, so its record is
 * known here without the image; `run-stage --expect` catches any remaining difference before
 * anything runs.
 */
import { envRecord, harnessEnv } from '../core/environment.ts'
import type { EnvRecord } from '../core/vocabulary.ts'
import { backendChoice, envForInstance, installedVersion, type InstanceParams } from './env-record.ts'

/** The version the Dockerfile installs (`ARG TFJS_NODE_VERSION`; a test keeps them equal). */
export const TFJS_NODE_VERSION = '4.22.0'

export type ImageVariant = 'gpu' | 'cpu'

/** The variant an image tag implies: `...:cpu` / `...-cpu` is the cpu target, anything else gpu. */
export function variantOf(image: string): ImageVariant {
  return /[:-]cpu$/.test(image) ? 'cpu' : 'gpu'
}

/** The env record `instance` gets inside the `variant` image (see the module comment). */
export function imageEnv(variant: ImageVariant, inst: InstanceParams): EnvRecord {
  const b = backendChoice(inst)
  if (b === undefined) return harnessEnv() // not a science stage
  if (b === 'wasm' || b === 'cpu') return envForInstance(inst) // pure backends: same packages as here
  if (b === 'webgpu') return envForInstance(inst) // same npm packages; the adapter is probed here (run-stage --expect checks it)
  const core = installedVersion('@tensorflow/tfjs-core')
  const native = variant === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node'
  return envRecord('tensorflow', { ...(core !== undefined ? { '@tensorflow/tfjs-core': core } : {}), [native]: TFJS_NODE_VERSION })
}

/** The fingerprint environment of instances run in the stage image `image` (the harness's imageEnv hook). */
export function imageEnvFor(image: string): (inst: InstanceParams) => EnvRecord {
  const variant = variantOf(image)
  return (inst) => imageEnv(variant, inst)
}
