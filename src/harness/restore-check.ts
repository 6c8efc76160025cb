/**
 * The check before a restore: names of a run record's outputs whose objects fail their digest
 * check (the store discards those). A restore checks bytes, not only existence: it is rare (a
 * switched-back param), and it is the moment a flipped byte would otherwise become the
 * workspace's truth. Uses the store's `verifyObject` for files when it has one, else reads the
 * object into a scratch work directory that is removed afterwards.
 */
import { join } from 'node:path'
import type { ArtifactStore, Fingerprint, StoredOutput } from './types.ts'
import { createWorkDir, removeWorkDir, type WorkDir } from './workdir.ts'

export async function corruptOutputs(
  store: ArtifactStore,
  workRoot: string,
  outputs: Record<string, StoredOutput>,
  fingerprint?: Fingerprint,
): Promise<string[]> {
  // First mark the record used, so a concurrent gc spares it and its objects (sync-gc.ts); a
  // record gc took meanwhile is a miss, and its objects may follow it at any moment.
  if (fingerprint !== undefined && store.touchRun !== undefined && !(await store.touchRun(fingerprint))) return Object.keys(outputs)
  const bad: string[] = []
  let scratch: WorkDir | undefined
  try {
    for (const [name, o] of Object.entries(outputs)) {
      let good: boolean
      if (o.kind === 'file' && store.verifyObject !== undefined) good = await store.verifyObject(o.digest)
      else {
        scratch ??= await createWorkDir(workRoot)
        const dest = join(scratch.dir, 'check', name)
        good = o.kind === 'dir' ? await store.getDir(o.digest, dest) : await store.getFile(o.digest, dest)
      }
      if (!good) bad.push(name)
    }
  } finally {
    if (scratch !== undefined) await removeWorkDir(scratch.dir)
  }
  return bad
}
