/**
 * The science side of the harness's `Host` (src/harness/host.ts), as plain values: how a stage
 * instance's numeric environment is found (here, and inside the stage image), and the backend
 * names `--backend` accepts. src/main.ts hands these to the harness; nothing here imports it.
 */
import { BACKEND_CHOICES } from './backends.ts'
import { envForInstance } from './env-record.ts'
import { imageEnvFor } from './image-env.ts'

export const scienceHost = {
  env: envForInstance,
  imageEnv: imageEnvFor,
  backend: { param: 'backend', names: BACKEND_CHOICES },
} as const
