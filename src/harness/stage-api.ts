/**
 * The contract between the harness and a stage's code. A stage is a module at
 * `stages/<impl>/index.ts` whose default export is `defineStage(async (ctx) => result)`. The
 * executor prepares a work directory holding `job.json` (this instance's validated params and
 * materialised, read-only input paths) and an empty `out/`, then spawns the command from
 * `stageCommand` in a fresh Node process (stage-process.ts), which loads the module, calls it with a
 * `StageContext`, and writes the returned object as `out/result.json`. The stage writes each
 * declared output, by name, into `ctx.outDir` and nothing else there.
 *
 * Protocol back to the parent: JSON lines on stdout, each `{"cusp":1,"type":"progress",
 * "fraction":0.5,"message":"..."}` or `{"cusp":1,"type":"log","message":"..."}`. The runner
 * sends `console.log/info/debug` to stderr so stdout carries only the protocol; any other
 * stdout line is treated as a log line. stdout/stderr are the only channels, so the same
 * command works unchanged inside a container. The exit status says success (0) or failure.
 */
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { EnvRecord, JsonObject, JsonValue } from './types.ts'

/** One materialised input: output `output` of upstream `instance` (with its params) at `path`. */
export interface StageInput {
  instance: string
  output: string
  params: JsonObject
  /** Absolute, read-only path of the file or directory. */
  path: string
  /** The producer's fingerprint; given only to stages with `provenance: true` (it is then in theirs). */
  fingerprint?: string
  /** The producer's numeric environment (from its fingerprint); given only to `provenance: true` stages. */
  env?: EnvRecord
}

/** What a stage's function receives. */
export interface StageContext<P = JsonObject> {
  /** The instance id, e.g. `train@eta=0.1`. */
  instance: string
  /** Validated params, defaults filled (the analyzer validated them against the params schema). */
  params: P
  /** Inputs by local name (`deps:` key in pipeline.yaml), one entry per upstream instance. */
  inputs: Record<string, StageInput[]>
  /** Directory to write the declared outputs into, each by its declared name. */
  outDir: string
  /** Report progress in [0, 1] with an optional short message (shown live by the CLI). */
  progress(fraction: number, message?: string): void
  /** A line for the run's log. */
  log(message: string): void
  /**
   * A directory private to this instance's fingerprint, outside the store, that survives a
   * killed run (absent when the harness offers none, e.g. under --verify). A long stage may keep
   * partial state there and resume from it when rerun; its outputs must be bit-identical to an
   * uninterrupted run's. The harness removes it once it has published the outputs (never
   * before: a kill between the stage's end and the publish resumes from it); a stage need not.
   */
  resumeDir?: string
  /**
   * The numeric environment in this instance's fingerprint (the engine backend and versions the
   * harness keyed the outputs on). A stage that starts an engine checks that it got this one, and
   * a stage that writes an environment into its outputs writes this one, never the host's.
   * `{ backend: 'none', versions: {} }` for stages that run no engine. Always set when the
   * harness runs the stage; absent only in contexts built by hand (tests).
   */
  env?: EnvRecord
}

const STAGE = Symbol.for('cusp.stage')

/** A stage definition: what a stage module exports as default. */
export interface StageDefinition<P = JsonObject, R = JsonObject> {
  readonly [STAGE]: true
  run(ctx: StageContext<P>): Promise<R>
}

/**
 * Declare a stage. `run` returns the stage's result: a JSON object, written as `result.json`,
 * validated by the executor against `schemas/stages/<impl>.result.schema.json` when that exists.
 */
export function defineStage<P = JsonObject, R = JsonObject>(run: (ctx: StageContext<P>) => Promise<R>): StageDefinition<P, R> {
  return { [STAGE]: true, run }
}

/** True for a value made by `defineStage` (checked by a global symbol, so copies of this module agree). */
export function isStageDefinition(x: unknown): x is StageDefinition<JsonObject, unknown> {
  return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[STAGE] === true
}

/** The job the executor writes to `<workDir>/job.json` for stage-process.ts. */
export interface StageJob {
  schema: 1
  instance: string
  /** Absolute path of the stage module (`<root>/stages/<impl>/index.ts`). */
  module: string
  params: JsonObject
  inputs: Record<string, StageInput[]>
  /** Absolute path of the output directory. */
  outDir: string
  /** See StageContext.resumeDir. */
  resumeDir?: string
  /** See StageContext.env (absent in jobs written before it existed: then `none`). */
  env?: EnvRecord
}

/** A message from the stage process to the executor. */
export type StageMessage = { type: 'progress'; fraction: number; message?: string } | { type: 'log'; message: string }

/** One protocol line for `msg` (newline included). */
export function encodeMessage(msg: StageMessage): string {
  return `${JSON.stringify({ cusp: 1, ...msg })}\n`
}

/** Parses one stdout line; a line that is not a protocol message becomes a log message. */
export function parseMessage(line: string): StageMessage {
  if (line.startsWith('{"cusp":1')) {
    try {
      const v = JSON.parse(line) as Record<string, JsonValue>
      if (v.type === 'progress' && typeof v.fraction === 'number') {
        return typeof v.message === 'string'
          ? { type: 'progress', fraction: v.fraction, message: v.message }
          : { type: 'progress', fraction: v.fraction }
      }
      if (v.type === 'log' && typeof v.message === 'string') return { type: 'log', message: v.message }
    } catch {
      // fall through: not a protocol line after all
    }
  }
  return { type: 'log', message: line }
}

const HERE = dirname(fileURLToPath(import.meta.url))

/** Where the stage command runs when it is not this process's machine (a container image). */
export interface CommandTarget {
  /** The node binary there; default `node`. */
  node?: string
  /** The cusp checkout there (holding src/harness/stage-process.ts and node_modules/tsx). */
  cuspRoot: string
}

/**
 * The command that runs one stage job: `node --import tsx src/harness/stage-process.ts <workDir>`.
 * Locally (no `target`) tsx and stage-process.ts are absolute paths of this installation, so it
 * works from any working directory (a temp project included). For a container, pass where
 * cusp lives in the image; the work directory must be mounted at the same path. The one place
 * the command line is built, so every executor (local, docker, kubernetes) runs the same thing.
 */
export function stageCommand(workDir: string, target?: CommandTarget): { file: string; args: string[] } {
  if (target !== undefined) {
    const tsx = `file://${target.cuspRoot}/node_modules/tsx/dist/loader.mjs`
    return { file: target.node ?? 'node', args: ['--import', tsx, `${target.cuspRoot}/src/harness/stage-process.ts`, workDir] }
  }
  return { file: process.execPath, args: ['--import', import.meta.resolve('tsx'), join(HERE, 'stage-process.ts'), workDir] }
}
