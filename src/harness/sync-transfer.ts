/**
 * Moving lock entries between the local cache and the shared S3 store: the logic behind `push`
 * and `pull`. An entry is a lock instance's run record plus every object it names (a directory
 * output's listing and each of its files). Objects move first, each verified by its SHA-256 on
 * the way (a local copy is re-hashed before it is uploaded, and hashed again while sent; a
 * download is hashed while it lands, a mismatch reported and never restored). An object counts
 * as "already on the remote" only after the remote copy has been read back and hashed: a corrupt
 * remote copy is overwritten by the good local one. An entry's run record is published on the
 * other side only once all its objects are there, so an interrupted push or pull leaves no
 * visible half entry and simply completes when run again.
 */
import { readFile, stat } from 'node:fs/promises'
import { parseListing, type DirEntry } from './store/dir-listing.ts'
import type { LocalStore } from './store/local-store.ts'
import { mapLimit } from './store/restore.ts'
import type { TieredStore } from './store/tiered-store.ts'
import type { Fingerprint, LockFile, ObjectDigest, RunRecord } from './types.ts'

/** Progress of a push or pull, after each object and as bytes move. */
export interface SyncProgress {
  direction: 'push' | 'pull'
  objectsDone: number
  objectsTotal: number
  bytesDone: number
  bytesTotal: number
}

/** What a push or pull did. `failures` name the instance, output and digest of each problem. */
export interface SyncReport {
  direction: 'push' | 'pull'
  entries: number
  objects: { moved: number; present: number; bytes: number }
  runs: { moved: number; present: number }
  failures: string[]
}

interface Wanted {
  digest: ObjectDigest
  size: number
  /** `instance/output[/path]`, for messages. */
  where: string
}

/**
 * Upload every lock entry's objects the remote lacks (from the local cache), then publish each
 * entry's run record on the remote once all its objects are there. The record is the local one,
 * else one rebuilt from the lock entry.
 */
export async function pushLock(lock: LockFile, store: TieredStore, onProgress?: (p: SyncProgress) => void): Promise<SyncReport> {
  const report = emptyReport('push', lock)
  const plan = await collect(
    lock,
    async (d) => ((await store.local.hasObject(d)) ? await readLocalListing(store.local, d) : undefined),
    report,
  )
  const todo: Wanted[] = []
  const wanted = dedupe(plan.flatMap((p) => p.objects))
  const remoteSizes = await store.remote.statObjects(wanted.map((w) => w.digest))
  await mapLimit(wanted, 4, async (w, i) => {
    const size = await localSize(store.local, w.digest)
    if (size === undefined)
      report.failures.push(`${w.where}: object ${w.digest} is not in the local store (run the pipeline or pull first)`)
    // On the remote only if it is there with the right size AND its bytes hash to its name.
    else if (remoteSizes[i] === size && (await store.remote.checkObject(w.digest))) report.objects.present++
    else if (!(await store.local.verifyObject(w.digest)))
      report.failures.push(`${w.where}: the local copy of object ${w.digest} is corrupt (discarded); rerun its producer, then push again`)
    else todo.push(w)
  })
  todo.sort((a, b) => (a.digest < b.digest ? -1 : 1))
  const failed = await transfer('push', todo, report, onProgress, async (w, onBytes) => {
    const path = store.local.objectPath(w.digest)
    await store.remote.uploadFile(path, w.digest, (await stat(path)).size, onBytes) // sizes of listings are not in the lock
    return true
  })
  for (const p of plan) {
    if (p.bad || p.objects.some((o) => failed.has(o.digest) || report.failures.some((f) => f.includes(o.digest)))) continue
    if ((await store.remote.getRun(p.fingerprint)) !== undefined) {
      report.runs.present++
      continue
    }
    await store.remote.putRun((await store.local.getRun(p.fingerprint)) ?? recordFromLock(lock, p.instance))
    report.runs.moved++
  }
  return report
}

/**
 * Download every lock entry's objects the local cache lacks (verified; a corrupt remote copy is
 * reported and not restored), then publish each complete entry's run record locally.
 */
export async function pullLock(lock: LockFile, store: TieredStore, onProgress?: (p: SyncProgress) => void): Promise<SyncReport> {
  const report = emptyReport('pull', lock)
  const listings = new Set<string>() // fetched while planning: count them as pulled
  const plan = await collect(
    lock,
    async (d) => {
      if (!(await store.local.hasObject(d))) {
        if (!(await store.backfill(d))) return undefined
        listings.add(d)
        report.objects.moved++
        report.objects.bytes += (await stat(store.local.objectPath(d))).size
      }
      return await readLocalListing(store.local, d)
    },
    report,
  )
  const todo: Wanted[] = []
  for (const w of dedupe(plan.flatMap((p) => p.objects))) {
    if (listings.has(w.digest)) continue
    const size = await localSize(store.local, w.digest)
    if (size !== undefined && (w.size === 0 || size === w.size)) report.objects.present++
    else todo.push(w)
  }
  const failed = await transfer('pull', todo, report, onProgress, async (w, onBytes) => {
    const ok = await store.backfill(w.digest, onBytes)
    if (!ok) report.failures.push(`${w.where}: object ${w.digest} is missing on the remote or failed its SHA-256 check; not restored`)
    return ok
  })
  for (const p of plan) {
    if (p.bad || p.objects.some((o) => failed.has(o.digest))) continue
    if ((await store.local.getRun(p.fingerprint)) !== undefined) {
      report.runs.present++
      continue
    }
    await store.local.putRun((await store.remote.getRun(p.fingerprint)) ?? recordFromLock(lock, p.instance))
    report.runs.moved++
  }
  return report
}

interface EntryPlan {
  instance: string
  fingerprint: Fingerprint
  objects: Wanted[]
  bad: boolean
}

/** Each lock entry's objects (dir members via `listing`); an unreadable listing is a failure. */
async function collect(
  lock: LockFile,
  listing: (d: ObjectDigest) => Promise<DirEntry[] | undefined>,
  report: SyncReport,
): Promise<EntryPlan[]> {
  const plans: EntryPlan[] = []
  for (const [id, e] of Object.entries(lock.instances).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const p: EntryPlan = { instance: id, fingerprint: e.fingerprint, objects: [], bad: false }
    for (const [name, o] of Object.entries(e.outputs)) {
      if (o.kind === 'dir') {
        const entries = await listing(o.digest)
        if (entries === undefined) {
          report.failures.push(`${id}/${name}: directory listing ${o.digest} is missing or corrupt`)
          p.bad = true
          continue
        }
        for (const m of entries) p.objects.push({ digest: m.digest, size: m.size, where: `${id}/${name}/${m.path}` })
        p.objects.push({ digest: o.digest, size: 0, where: `${id}/${name}` })
      } else p.objects.push({ digest: o.digest, size: o.size, where: `${id}/${name}` })
    }
    plans.push(p)
  }
  return plans
}

/** Move `todo` with a few transfers at once; returns the digests that failed (reported in `report`). */
async function transfer(
  direction: 'push' | 'pull',
  todo: Wanted[],
  report: SyncReport,
  onProgress: ((p: SyncProgress) => void) | undefined,
  move: (w: Wanted, onBytes: (n: number) => void) => Promise<boolean>,
): Promise<Set<ObjectDigest>> {
  const failed = new Set<ObjectDigest>()
  const bytesTotal = todo.reduce((n, w) => n + w.size, 0)
  let done = 0
  let finished = 0
  const partial = new Map<ObjectDigest, number>()
  const tell = () =>
    onProgress?.({
      direction,
      objectsDone: done,
      objectsTotal: todo.length,
      bytesDone: finished + [...partial.values()].reduce((a, b) => a + b, 0),
      bytesTotal,
    })
  tell()
  await mapLimit(todo, 4, async (w) => {
    let ok = false
    try {
      ok = await move(w, (n) => {
        partial.set(w.digest, n)
        tell()
      })
    } catch (e) {
      report.failures.push(`${w.where}: ${e instanceof Error ? e.message : String(e)}`)
    }
    partial.delete(w.digest)
    done++
    if (ok) {
      const size = w.size > 0 ? w.size : 0
      finished += size
      report.objects.moved++
      report.objects.bytes += size
    } else failed.add(w.digest)
    tell()
  })
  return failed
}

function dedupe(ws: Wanted[]): Wanted[] {
  const seen = new Map<string, Wanted>()
  for (const w of ws) if (!seen.has(w.digest)) seen.set(w.digest, w)
  return [...seen.values()]
}

function emptyReport(direction: 'push' | 'pull', lock: LockFile): SyncReport {
  return {
    direction,
    entries: Object.keys(lock.instances).length,
    objects: { moved: 0, present: 0, bytes: 0 },
    runs: { moved: 0, present: 0 },
    failures: [],
  }
}

/** A run record for a lock entry whose own record is nowhere (its duration and time unknown). */
function recordFromLock(lock: LockFile, instance: string): RunRecord {
  const e = lock.instances[instance]!
  return {
    schema: 1,
    fingerprint: e.fingerprint,
    instance,
    stage: e.stage,
    breakdown: e.breakdown,
    outputs: e.outputs,
    durationMs: 0,
    finishedAt: new Date(0).toISOString(),
  }
}

async function localSize(local: LocalStore, d: ObjectDigest): Promise<number | undefined> {
  return (await local.statObjects([d]))[0]
}

/** A directory listing from the local store, verified (a corrupt one is discarded). */
export async function readLocalListing(local: LocalStore, d: ObjectDigest): Promise<DirEntry[] | undefined> {
  if (!(await local.verifyObject(d))) return undefined
  return parseListing(await readFile(local.objectPath(d)))
}
