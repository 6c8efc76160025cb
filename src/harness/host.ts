/**
 * What the generic harness is given from outside (the composition root, src/main.ts, wires the
 * science and report sides in): the numeric environment of an instance, here and inside a stage
 * image; the names `--backend` accepts and the param it sets; and an optional text to print after
 * a run. The harness imports nothing from src/science or src/report and knows no stage by name;
 * `bareHost` is what it uses when nothing is wired (every instance gets the constant `none` env).
 */
import { harnessEnv } from '../core/environment.ts'
import type { InstanceOutcome } from './run-types.ts'
import type { ArtifactStore, EnvRecord, PlanStep, StageInstance, ValidPipeline } from './types.ts'

/** The numeric environment (part of the fingerprint) of one instance. */
export type EnvFn = (instance: StageInstance) => EnvRecord

/**
 * The work size of an instance (e.g. its FLOPs) from its params and its upstream instances
 * (`lookup`), or undefined when the stage does no work worth counting. Recorded durations are
 * scaled by it for the plan's ETA (eta.ts).
 */
export type WorkSizeFn = (instance: StageInstance, lookup: (id: string) => StageInstance | undefined) => number | undefined

/** What a finished human-readable run hands to `Host.afterRun`. */
export interface AfterRun {
  lockPath: string
  store: ArtifactStore
  /** Per instance id, what happened in this run. */
  outcomes: Readonly<Record<string, InstanceOutcome>>
  /** The profile the pipeline was analysed with. */
  profile: string | undefined
}

export interface Host {
  /** The environment of an instance whose stage runs on this machine (in-process or local-process). */
  env: EnvFn
  /** The environment of instances run inside the stage image `image` (docker, kubernetes, export). */
  imageEnv: (image: string) => EnvFn
  /** `--backend B` means `--set S.<param>=B` for every stage S whose params have <param>; B must be one of `names`. */
  backend: { param: string; names: readonly string[] }
  /** `--estimate` and the cost confirmation before a paid (aws-batch) run; absent: those flags are refused. */
  costs?: CostHooks
  /** Work size of an instance, to scale recorded durations in the plan's ETA; absent: unscaled medians. */
  workSize?: WorkSizeFn
  /** Text printed after a human-readable run (e.g. a closing summary), or undefined for none. */
  afterRun?: (run: AfterRun) => Promise<string | undefined>
}

/** Flags the cost hooks read (a subset of the run/status command). */
export interface CostFlags {
  device: string | undefined
  price: number | undefined
  json: boolean
}

/** The cost side of the host (src/estimate, wired in src/main.ts). */
export interface CostHooks {
  /** The estimate of the instances `steps` would run, as text (or one JSON line), or a usage message. */
  estimateOutput(
    pipeline: ValidPipeline,
    steps: readonly PlanStep[],
    f: CostFlags,
  ): { ok: true; text: string } | { ok: false; message: string }
  /** Before a paid run: undefined to go on, or the one-line refusal (asked on a terminal, refused elsewhere unless --yes). */
  confirmRun(
    pipeline: ValidPipeline,
    steps: readonly PlanStep[],
    f: Omit<CostFlags, 'json'> & { yes: boolean; confirmAbove: number },
    io: { interactive: boolean; write: (s: string) => void },
  ): Promise<string | undefined>
}

/** The host of a harness with nothing wired: no backends, the constant `none` environment. */
export const bareHost: Host = {
  env: () => harnessEnv(),
  imageEnv: () => () => harnessEnv(),
  backend: { param: 'backend', names: [] },
}
