/**
 * Collecting garbage in a store, per layer (local; S3; both for a tiered store): the run records
 * and objects a lock does not reference. Run records get the same grace period as objects (a
 * concurrent run publishes its record before it writes its lock entry), and the objects of a
 * record gc spares are spared too, so a live run's entry is never left pointing at nothing.
 * Records go before objects (a concurrent writer's objects precede its record). An entry's age is
 * its mtime, which a dedup hit refreshes on an object and a restore on its record (touchRun), and
 * it is read again at the moment of deleting (`deleteIfOld`), not taken from gc's listing: a run
 * that restored an old record or re-stored old bytes after gc listed the store keeps them.
 */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { type DirEntry } from './store/dir-listing.ts'
import { LocalStore } from './store/local-store.ts'
import { mapLimit } from './store/restore.ts'
import { StoreError } from './store/run-record-check.ts'
import { S3Store, type ListedObject } from './store/s3-store.ts'
import { listRunKeys } from './store/s3-admin.ts'
import { TieredStore } from './store/tiered-store.ts'
import type { ArtifactStore, Fingerprint, LockFile, ObjectDigest, RunRecord } from './types.ts'

/** How long an unreferenced record or object is kept: a writer may still be publishing it. */
export const GC_GRACE_MS = 3600_000

/** One layer of a store as gc sees it. */
export interface GcLayer {
  name: string
  listRuns(): Promise<RunRecord[]>
  /** When the record of `fp` was written (undefined: unknown, treated as new). */
  runModified(fp: Fingerprint): Promise<Date | undefined>
  listObjects(): AsyncIterable<ListedObject>
  /** Delete a record or object unless it was used within `graceMs` (age read now); whether it did. */
  deleteIfOld(kind: 'run' | 'object', name: string, graceMs: number): Promise<boolean>
  /** Clean up what killed writers left (S3: multipart uploads older than a day); returns how many. */
  sweep?(): Promise<number>
}

/** What a lock does not reference in one layer. */
export interface GcPlan {
  layer: string
  runs: { fingerprint: Fingerprint; instance: string; modified: Date | undefined; objects: ObjectDigest[] }[]
  objects: { digest: ObjectDigest; size: number; modified: Date }[]
  bytes: number
}

/** The layers of `store` gc can work on (local; S3; both for a tiered store). */
export function gcLayers(store: ArtifactStore): GcLayer[] {
  if (store instanceof TieredStore) return [localLayer(store.local), s3Layer(store.remote)]
  if (store instanceof LocalStore) return [localLayer(store)]
  if (store instanceof S3Store) return [s3Layer(store)]
  return []
}

/**
 * The run records and objects in `layer` that `lock` does not reference. Directory listings are
 * read through `listing` (from any layer); a referenced listing nobody can read is an error,
 * since its files could not be told apart from garbage.
 */
export async function gcPlan(
  lock: LockFile,
  layer: GcLayer,
  listing: (d: ObjectDigest) => Promise<DirEntry[] | undefined>,
): Promise<GcPlan> {
  const keepRuns = new Set(Object.values(lock.instances).map((e) => e.fingerprint as string))
  const keep = new Set<string>()
  for (const [id, e] of Object.entries(lock.instances)) {
    for (const [name, o] of Object.entries(e.outputs)) {
      keep.add(o.digest)
      if (o.kind !== 'dir') continue
      const entries = await listing(o.digest)
      if (entries === undefined)
        throw new StoreError(`cannot read the directory listing ${o.digest} of ${id}/${name}; nothing was deleted (pull it first)`)
      for (const m of entries) keep.add(m.digest)
    }
  }
  const runs: GcPlan['runs'] = []
  for (const r of await layer.listRuns()) {
    if (keepRuns.has(r.fingerprint)) continue
    const objects: ObjectDigest[] = []
    for (const o of Object.values(r.outputs)) {
      objects.push(o.digest)
      if (o.kind === 'dir') for (const m of (await listing(o.digest)) ?? []) objects.push(m.digest)
    }
    runs.push({ fingerprint: r.fingerprint, instance: r.instance, modified: await layer.runModified(r.fingerprint), objects })
  }
  const objects: GcPlan['objects'] = []
  for await (const o of layer.listObjects()) if (!keep.has(o.digest)) objects.push(o)
  objects.sort((a, b) => (a.digest < b.digest ? -1 : 1))
  return { layer: layer.name, runs, objects, bytes: objects.reduce((n, o) => n + o.size, 0) }
}

/**
 * Delete a plan's records older than `graceMs`, then its objects older than `graceMs` that no
 * spared record names, then sweep what killed writers left (stale temp files / multipart
 * uploads); returns what was deleted.
 */
export async function gcApply(
  plan: GcPlan,
  layer: GcLayer,
  graceMs = GC_GRACE_MS,
): Promise<{ runs: number; objects: number; bytes: number; swept: number; kept: number }> {
  // Young when listed is young now (a use only makes an entry younger); old when listed is checked again.
  const old = (d: Date | undefined) => d !== undefined && Date.now() - d.getTime() > graceMs
  const spared = new Set<string>()
  let runs = 0
  for (const r of plan.runs) {
    if (old(r.modified) && (await layer.deleteIfOld('run', r.fingerprint, graceMs))) runs++
    else for (const d of r.objects) spared.add(d)
  }
  const candidates = plan.objects.filter((o) => old(o.modified) && !spared.has(o.digest))
  const deleted = await mapLimit(candidates, 8, (o) => layer.deleteIfOld('object', o.digest, graceMs))
  const doomed = candidates.filter((_, i) => deleted[i] === true)
  const swept = (await layer.sweep?.()) ?? 0
  const kept = plan.runs.length - runs + plan.objects.length - doomed.length
  return { runs, objects: doomed.length, bytes: doomed.reduce((n, o) => n + o.size, 0), swept, kept }
}

function localLayer(store: LocalStore): GcLayer {
  return {
    name: store.description,
    listRuns: () => store.listRuns(),
    runModified: async (fp) => (await stat(store.runPath(fp)).catch(() => undefined))?.mtime,
    async *listObjects() {
      const base = join(store.root, 'objects', 'sha256')
      for (const shard of (await readdir(base).catch(() => [] as string[])).sort()) {
        for (const rest of (await readdir(join(base, shard)).catch(() => [] as string[])).sort()) {
          const st = await stat(join(base, shard, rest)).catch(() => undefined)
          if (st?.isFile() === true && /^[0-9a-f]{2}$/.test(shard) && /^[0-9a-f]{62}$/.test(rest))
            yield { digest: `${shard}${rest}` as ObjectDigest, size: st.size, modified: st.mtime }
        }
      }
    },
    deleteIfOld: (kind, name, graceMs) => store.deleteIfOld(kind, name, graceMs),
    sweep: () => store.sweepTemp(),
  }
}

function s3Layer(store: S3Store): GcLayer {
  let modified: Map<string, Date> | undefined
  return {
    name: store.description,
    listRuns: () => store.listRuns(),
    async runModified(fp) {
      if (modified === undefined) {
        modified = new Map()
        for await (const r of listRunKeys(store)) modified.set(r.fingerprint, r.modified)
      }
      return modified.get(fp)
    },
    listObjects: () => store.listObjects(),
    deleteIfOld: (kind, name, graceMs) => store.deleteIfOld(kind, name, graceMs),
    sweep: () => store.abortStaleUploads(),
  }
}
