/**
 * The hook behind the audit summary at the end of `npm run pipeline`: when the run brought the
 * `audit` instance up to date (it ran, was restored, or was fresh), read its result.json back from
 * the store by the digest in the lock and format it. Anything missing (no audit stage in this
 * pipeline, not selected, a store miss) yields undefined: the summary is a courtesy, never an error.
 * When the audit's recorded profile is `unspecified` (its param unset), the run's profile is shown.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readLock } from '../harness/lockfile.ts'
import type { ArtifactStore } from '../harness/types.ts'
import { formatSummary, isAuditSummary } from './summary.ts'

/** The audit instance's id in pipeline.yaml. */
export const AUDIT_INSTANCE = 'audit'

/** The summary text, or undefined when there is nothing current to print. */
export async function auditSummaryText(a: {
  lockPath: string
  store: ArtifactStore
  outcome: string | undefined
  runProfile?: string | undefined
}): Promise<string | undefined> {
  if (a.outcome !== 'ran' && a.outcome !== 'restored' && a.outcome !== 'fresh') return undefined
  const lock = readLock(a.lockPath)
  const out = lock.ok ? lock.value?.instances[AUDIT_INSTANCE]?.outputs['result.json'] : undefined
  if (out === undefined) return undefined
  const dir = await mkdtemp(join(tmpdir(), 'cusp-audit-'))
  try {
    if (!(await a.store.getFile(out.digest, join(dir, 'result.json')))) return undefined
    const value: unknown = JSON.parse(await readFile(join(dir, 'result.json'), 'utf8'))
    if (!isAuditSummary(value)) return undefined
    // The audit records its `profile` param; when pipeline.yaml does not set it, name the profile this run used.
    return formatSummary(value.profile === 'unspecified' && a.runProfile !== undefined ? { ...value, profile: a.runProfile } : value)
  } catch {
    return undefined
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
