/**
 * Producing one instance's outputs, without publishing them: a fresh work directory, the
 * inputs materialised read-only from the store, `job.json`, the stage process (spawn-stage.ts)
 * with its progress and log streamed as events, then the output contract: exactly the declared
 * outputs plus `result.json`, and a result valid against `schemas/stages/<impl>.result.schema.json`
 * when that file exists. The caller decides what to do with the produced directory (publish it,
 * or compare it for verify) and removes it; on any other outcome it is already removed.
 */
import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { ExecEvent } from './run-types.ts'
import { RESULT_OUTPUT } from './planner.ts'
import { spawnStage } from './spawn-stage.ts'
import { compileParamsSchema } from './stage-schemas.ts'
import type { StageInput } from './stage-api.ts'
import type { ArtifactStore, EnvRecord, Failure, Fingerprint, JobTimeout, JsonObject, StageInstance, StoredOutput } from './types.ts'
import { checkOutputs, createWorkDir, materialiseInputs, removeWorkDir, writeJob, type WorkDir } from './workdir.ts'

export interface ProduceArgs {
  store: ArtifactStore
  /** Project root: the stage process's cwd, and where stages/ and schemas/ are. */
  root: string
  workRoot: string
  instance: StageInstance
  /** Current outputs of an upstream instance. */
  outputsOf: (instance: string) => Record<string, StoredOutput> | undefined
  /** The producer's fingerprint, handed to stages with `provenance: true`. */
  fingerprintOf?: (instance: string) => Fingerprint | undefined
  /** The producer's fingerprint environment, handed to stages with `provenance: true`. */
  envOf?: (instance: string) => EnvRecord | undefined
  /** This instance's fingerprint environment (StageContext.env). */
  env?: EnvRecord
  paramsOf: (instance: string) => JsonObject
  processEnv: Record<string, string | undefined>
  emit: (e: ExecEvent) => void
  /** A per-fingerprint directory the stage may create and resume from (StageContext.resumeDir). */
  resumeDir?: string
  /** The most the stage process may take; past it, it is killed and the run fails as timed out. */
  timeout?: JobTimeout
}

export type Produced =
  { kind: 'produced'; wd: WorkDir } | { kind: 'input-missing'; producer: string; output: string } | { kind: 'failed'; failure: Failure }

/** Runs the stage once in a fresh work directory; see the module comment. */
export async function produce(a: ProduceArgs): Promise<Produced> {
  const inst = a.instance
  const wd = await createWorkDir(a.workRoot)
  let keep = false
  try {
    const mat = await materialiseInputs(a.store, wd, inst, a.outputsOf, a.paramsOf, a.fingerprintOf)
    if (!mat.ok) return { kind: 'input-missing', producer: mat.missing.dep.instance, output: mat.missing.dep.output }
    await writeJob(wd, {
      schema: 1,
      instance: inst.id,
      module: join(a.root, implDir(inst.impl), 'index.ts'),
      params: inst.params,
      inputs: inst.provenance ? withProducerEnv(mat.inputs, a.envOf) : mat.inputs,
      outDir: wd.outDir,
      ...(a.resumeDir !== undefined ? { resumeDir: a.resumeDir } : {}),
      ...(a.env !== undefined ? { env: a.env } : {}),
    })
    a.emit({ type: 'start', instance: inst.id, action: 'run' })
    const exit = await spawnStage(
      wd.dir,
      a.root,
      a.processEnv,
      {
        progress: (fraction, message) =>
          a.emit(
            message === undefined
              ? { type: 'progress', instance: inst.id, fraction }
              : { type: 'progress', instance: inst.id, fraction, message },
          ),
        log: (message) => a.emit({ type: 'log', instance: inst.id, message }),
      },
      a.timeout !== undefined ? a.timeout.seconds * 1000 : undefined,
    )
    if (exit.timedOut === true && a.timeout !== undefined) {
      return {
        kind: 'failed',
        failure: { reason: 'timed-out', instance: inst.id, limit: a.timeout, executor: 'local', stderrTail: exit.stderrTail },
      }
    }
    if (exit.exitCode !== 0) {
      return {
        kind: 'failed',
        failure: { reason: 'stage-failed', instance: inst.id, exitCode: exit.exitCode, signal: exit.signal, stderrTail: exit.stderrTail },
      }
    }
    const check = await checkOutputs(wd.outDir, inst.outputs, RESULT_OUTPUT)
    if (check.missing.length > 0 || check.unexpected.length > 0) {
      return { kind: 'failed', failure: { reason: 'outputs-mismatch', instance: inst.id, ...check } }
    }
    const invalid = await checkResult(a.root, inst, join(wd.outDir, RESULT_OUTPUT))
    if (invalid !== undefined) return { kind: 'failed', failure: { reason: 'result-invalid', instance: inst.id, message: invalid } }
    keep = true
    return { kind: 'produced', wd }
  } finally {
    if (!keep) await removeWorkDir(wd.dir)
  }
}

/** The inputs with each producer's environment added (a provenance stage is keyed by its producers' fingerprints, which hold it). */
function withProducerEnv(inputs: Record<string, StageInput[]>, envOf: ProduceArgs['envOf']): Record<string, StageInput[]> {
  if (envOf === undefined) return inputs
  const out: Record<string, StageInput[]> = {}
  for (const [name, list] of Object.entries(inputs)) {
    out[name] = list.map((i) => {
      const env = envOf(i.instance)
      return env !== undefined ? { ...i, env } : i
    })
  }
  return out
}

/** `stages/<impl>` for a bare implementation name, the path itself otherwise. */
export function implDir(impl: string): string {
  return impl.includes('/') ? impl : `stages/${impl}`
}

/** Validates result.json against the stage's result schema when it exists; a message when invalid. */
async function checkResult(root: string, inst: StageInstance, path: string): Promise<string | undefined> {
  let data: unknown
  try {
    data = JSON.parse(await readFile(path, 'utf8'))
  } catch (e: unknown) {
    return `result.json is not valid JSON: ${e instanceof Error ? e.message : String(e)}`
  }
  const schemaFile = join(root, 'schemas', 'stages', `${basename(implDir(inst.impl))}.result.schema.json`)
  const schema = await readFile(schemaFile, 'utf8').catch(() => undefined)
  if (schema === undefined) return undefined
  const v = compileParamsSchema(schema) // compiled once per schema text
  if (!v.ok) return `${schemaFile} ${v.error}`
  if (v.value(data)) return undefined
  return (v.value.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}`).join('; ')
}
