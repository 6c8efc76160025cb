/**
 * Publishing a run, in this order: the output objects, then the run record (the commit point:
 * a record names only objects already stored), then the lock entry. The same code serves every
 * path: an in-process run calls `publishRun`; a remote run (executors/) executes `publishRun` in
 * its own process through the same `execute` (executors/run-stage-command.ts), and the scheduling
 * harness then reads that record with `adoptRemoteRun` and writes the same lock entry.
 */
import { join } from 'node:path'
import type { LockWriter } from './lock-writer.ts'
import { RESULT_OUTPUT } from './planner.ts'
import type { ArtifactStore, Failure, FingerprintResult, StageInstance, StoredOutput } from './types.ts'

/** The names (and kinds) every completed run stores: the declared outputs plus result.json. */
export function publishedOutputs(inst: Pick<StageInstance, 'outputs'>): { name: string; kind: 'file' | 'dir' }[] {
  return [...inst.outputs, { name: RESULT_OUTPUT, kind: 'file' as const }]
}

/** Stores each output of a produced work directory (`outDir`); returns them by name. */
export async function storeOutputs(
  store: ArtifactStore,
  inst: Pick<StageInstance, 'outputs'>,
  outDir: string,
): Promise<Record<string, StoredOutput>> {
  const outputs: Record<string, StoredOutput> = {}
  for (const o of publishedOutputs(inst)) {
    const path = join(outDir, o.name)
    const put = o.kind === 'dir' ? await store.putDir(path) : await store.putFile(path)
    outputs[o.name] = { digest: put.digest, size: put.size, kind: o.kind }
  }
  return outputs
}

/** Stores the outputs, then the run record, then the lock entry. */
export async function publishRun(
  store: ArtifactStore,
  lock: LockWriter,
  inst: StageInstance,
  fp: FingerprintResult,
  outDir: string,
  started: number,
): Promise<{ outputs: Record<string, StoredOutput>; durationMs: number }> {
  const outputs = await storeOutputs(store, inst, outDir)
  const durationMs = Date.now() - started
  await store.putRun({
    schema: 1,
    fingerprint: fp.fingerprint,
    instance: inst.id,
    stage: inst.stage,
    breakdown: fp.breakdown,
    outputs,
    durationMs,
    finishedAt: new Date().toISOString(),
  })
  lock.write(inst, fp, outputs)
  return { outputs, durationMs }
}

/** After a remote run published `fp`: reads its run record and writes the lock entry. */
export async function adoptRemoteRun(
  store: ArtifactStore,
  lock: LockWriter,
  runnerName: string,
  inst: StageInstance,
  fp: FingerprintResult,
): Promise<{ ok: true; outputs: Record<string, StoredOutput> } | { ok: false; failure: Failure }> {
  const record = await store.getRun(fp.fingerprint)
  if (record === undefined) {
    const message = `${inst.id}: the ${runnerName} run succeeded but ${store.description} has no run record for fingerprint ${fp.fingerprint}`
    return { ok: false, failure: { reason: 'store-error', message } }
  }
  lock.write(inst, fp, record.outputs)
  return { ok: true, outputs: record.outputs }
}
