/**
 * `--verify`: every target that is a cache hit is executed again in a fresh work directory and
 * its outputs are compared byte for byte with the stored ones (file digests; for directory
 * outputs, path by path). Nothing is published and the lock is not written. A target that would
 * run anyway is skipped (verify checks cached results only).
 */
import { join } from 'node:path'
import type { KnownInstance, PlanOutput } from './planner.ts'
import { publishedOutputs } from './publish.ts'
import type { ArtifactStore, Failure, FingerprintResult, StageInstance, StoredOutput } from './types.ts'
import { diffTrees, sha256File, type WorkDir } from './workdir.ts'

/** Output names (or `dir/path` inside dir outputs) whose new bytes in `wd` differ from the stored ones. */
export async function compareOutputs(
  store: ArtifactStore,
  inst: StageInstance,
  wd: WorkDir,
  stored: Record<string, StoredOutput>,
): Promise<string[]> {
  const mismatches: string[] = []
  for (const o of publishedOutputs(inst)) {
    const old = stored[o.name]
    const path = join(wd.outDir, o.name)
    if (old === undefined) mismatches.push(o.name)
    else if (o.kind === 'file') {
      if ((await sha256File(path)) !== old.digest) mismatches.push(o.name)
      else await store.putFile(path) // same bytes: re-storing repairs a corrupt stored copy (ingest re-hashes it)
    } else {
      const expected = join(wd.dir, 'expected', o.name)
      if (!(await store.getDir(old.digest, expected))) mismatches.push(`${o.name} (stored copy unreadable)`)
      else mismatches.push(...(await diffTrees(expected, path, o.name)))
    }
  }
  return mismatches
}

/** What a verify pass needs from the run of a plan. */
export interface VerifyRun {
  plan: PlanOutput
  /** Instance ids to verify (the targets, or every instance). */
  wanted: ReadonlySet<string>
  instance(id: string): StageInstance
  /** Makes `known`'s outputs the current outputs (inputs of the re-executions). */
  setCurrent(id: string, k: Required<Pick<KnownInstance, 'fingerprint' | 'outputs'>>): void
  /** Re-executes one instance in verify mode. */
  reexecute(
    inst: StageInstance,
    fp: FingerprintResult,
    stored: Record<string, StoredOutput>,
  ): Promise<
    | { kind: 'verified'; mismatches: string[] }
    | { kind: 'failed'; failure: Failure }
    | { kind: 'input-missing'; producer: string; output: string }
    | { kind: 'other' }
  >
  skip(id: string, because: string): void
  fail(id: string, failure: Failure): void
  verified(id: string, mismatches: string[]): void
}

/** Re-executes every wanted cache hit and records verified / nondeterministic / skipped / failed. */
export async function verifyAll(v: VerifyRun, unexpected: (e: unknown) => Failure): Promise<void> {
  const { plan } = v
  for (const [id, k] of plan.known) if (k.outputs !== undefined) v.setCurrent(id, { fingerprint: k.fingerprint, outputs: k.outputs })
  await Promise.all(
    plan.steps.map(async (step) => {
      const id = step.instance
      if (!v.wanted.has(id)) return
      const k = plan.known.get(id)
      if (step.action === 'run' || k?.outputs === undefined) {
        v.skip(id, 'not a cache hit (it would run); verify checks cached results only')
        return
      }
      try {
        const r = await v.reexecute(v.instance(id), k.fingerprint, k.outputs)
        if (r.kind === 'failed') v.fail(id, r.failure)
        else if (r.kind === 'input-missing') v.skip(id, `input ${r.output} of ${r.producer} is missing or corrupt in the store`)
        else if (r.kind === 'verified') v.verified(id, r.mismatches)
      } catch (e: unknown) {
        v.fail(id, unexpected(e))
      }
    }),
  )
}
