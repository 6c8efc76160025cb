/**
 * The numeric environment behind a report stage's inputs: the env of every producer that ran an
 * engine (StageInput.env, which the harness hands to `provenance: true` stages; their fingerprint
 * holds their producers' fingerprints, hence these envs). Reports embed this, never the host's
 * environment, so the same fingerprint always gives the same bytes.
 */
import type { EnvRecord } from '../../src/core/vocabulary.ts'
import { sortedRecord } from '../../src/core/vocabulary.ts'

/**
 * One record: the producers' env when they agree; when they differ, the backends joined by `+`
 * and each package's versions joined by ` | ` (sorted); `none` when no producer ran an engine.
 */
export function producersEnv(inputs: Readonly<Record<string, readonly { env?: EnvRecord }[]>>): EnvRecord {
  const envs = Object.values(inputs)
    .flat()
    .map((i) => i.env)
    .filter((e): e is EnvRecord => e !== undefined && e.backend !== 'none')
  const backends = [...new Set(envs.map((e) => e.backend))].sort()
  const versions = new Map<string, Set<string>>()
  for (const e of envs) for (const [k, v] of Object.entries(e.versions)) (versions.get(k) ?? versions.set(k, new Set()).get(k))?.add(v)
  const merged: Record<string, string> = {}
  for (const [k, vs] of versions) merged[k] = [...vs].sort().join(' | ')
  return { backend: backends.length === 0 ? 'none' : backends.join('+'), versions: sortedRecord(merged) }
}
