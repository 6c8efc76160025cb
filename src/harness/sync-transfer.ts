/**
 * Moving lock entries between the local cache and the shared S3 store, and collecting garbage:
 * the logic behind `push`, `pull` and `gc [--dry-run]`. An entry is a lock instance's run record
 * plus every object it names (a directory output's listing and each of its files). Objects move
 * first, each verified by its SHA-256 on the way (hashed while uploaded; hashed while downloaded,
 * a mismatch discarded and reported, never restored); an entry's run record is published on the
 * other side only once all its objects are there, so an interrupted push or pull leaves no
 * visible half entry and simply completes when run again. `gc` lists the run records and objects
 * a lock does not reference, per layer, and with `dryRun` stops there; otherwise it deletes
 * records first and then objects older than a grace period (a concurrent writer's objects
 * precede its record). `syncCommand` is the CLI face: progress on stderr, a summary with byte
 * counts on stdout (or one JSON line with `--json`).
 */
import { readdir, readFile, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { readLock } from './lockfile.ts'
import { parseListing, type DirEntry } from './store/dir-listing.ts'
import { StoreError } from './store/run-record-check.ts'
import { LocalStore } from './store/local-store.ts'
import { mapLimit } from './store/restore.ts'
import { S3Store, type ListedObject } from './store/s3-store.ts'
import { TieredStore } from './store/tiered-store.ts'
import type { OutputSink } from './reporter.ts'
import type { ArtifactStore, Fingerprint, LockFile, ObjectDigest, RunRecord } from './types.ts'

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
  const plan = await collect(lock, async (d) => ((await store.local.hasObject(d)) ? await readLocalListing(store.local, d) : undefined), report)
  const todo: Wanted[] = []
  for (const w of dedupe(plan.flatMap((p) => p.objects))) {
    if (!(await store.local.hasObject(w.digest))) report.failures.push(`${w.where}: object ${w.digest} is not in the local store (run the pipeline or pull first)`)
    else if (await store.remote.hasObject(w.digest)) report.objects.present++
    else todo.push(w)
  }
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
    if (await store.local.hasObject(w.digest)) report.objects.present++
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

/** One layer of a store as gc sees it. */
export interface GcLayer {
  name: string
  listRuns(): Promise<RunRecord[]>
  listObjects(): AsyncIterable<ListedObject>
  deleteRun(fp: Fingerprint): Promise<void>
  deleteObject(digest: ObjectDigest): Promise<void>
  /** Clean up what killed writers left (S3: multipart uploads older than a day); returns how many. */
  sweep?(): Promise<number>
}

/** What a lock does not reference in one layer. */
export interface GcPlan {
  layer: string
  runs: { fingerprint: Fingerprint; instance: string }[]
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
export async function gcPlan(lock: LockFile, layer: GcLayer, listing: (d: ObjectDigest) => Promise<DirEntry[] | undefined>): Promise<GcPlan> {
  const keepRuns = new Set(Object.values(lock.instances).map((e) => e.fingerprint as string))
  const keep = new Set<string>()
  for (const [id, e] of Object.entries(lock.instances)) {
    for (const [name, o] of Object.entries(e.outputs)) {
      keep.add(o.digest)
      if (o.kind !== 'dir') continue
      const entries = await listing(o.digest)
      if (entries === undefined) throw new Error(`gc: cannot read the directory listing ${o.digest} of ${id}/${name}; nothing was deleted (pull it first)`)
      for (const m of entries) keep.add(m.digest)
    }
  }
  const runs = (await layer.listRuns()).filter((r) => !keepRuns.has(r.fingerprint)).map((r) => ({ fingerprint: r.fingerprint, instance: r.instance }))
  const objects: GcPlan['objects'] = []
  for await (const o of layer.listObjects()) if (!keep.has(o.digest)) objects.push(o)
  objects.sort((a, b) => (a.digest < b.digest ? -1 : 1))
  return { layer: layer.name, runs, objects, bytes: objects.reduce((n, o) => n + o.size, 0) }
}

/**
 * Delete a plan's records, then its objects older than `graceMs`, then sweep what killed writers
 * left (stale temp files / multipart uploads); returns what was deleted.
 */
export async function gcApply(plan: GcPlan, layer: GcLayer, graceMs = 3600_000): Promise<{ runs: number; objects: number; bytes: number; swept: number }> {
  for (const r of plan.runs) await layer.deleteRun(r.fingerprint)
  const old = plan.objects.filter((o) => Date.now() - o.modified.getTime() > graceMs)
  await mapLimit(old, 8, (o) => layer.deleteObject(o.digest))
  const swept = (await layer.sweep?.()) ?? 0
  return { runs: plan.runs.length, objects: old.length, bytes: old.reduce((n, o) => n + o.size, 0), swept }
}

/** Options of `syncCommand`, from the CLI. */
export interface SyncCommandOptions {
  store: ArtifactStore
  lockPath: string
  dryRun: boolean
  json: boolean
  stdout: OutputSink
  stderr: OutputSink
}

/**
 * `push` / `pull` / `gc [--dry-run]` for the lock at `lockPath`; returns the exit code (0 done,
 * 1 something failed or was not restored, 2 no lock / a store or bucket these commands cannot use).
 */
export async function syncCommand(kind: 'push' | 'pull' | 'gc', o: SyncCommandOptions): Promise<number> {
  const lock = readLock(o.lockPath)
  if (!lock.ok) {
    o.stderr.write(`${lock.error.reason === 'lock-invalid' ? `${lock.error.file}: ${lock.error.message}` : 'cannot read the lock'}\n`)
    return 2
  }
  if (lock.value === undefined) {
    o.stderr.write(`${kind}: no lock file at ${o.lockPath}: run the pipeline first\n`)
    return 2
  }
  if (kind === 'gc') return await gcCommand(lock.value, o)
  if (!(o.store instanceof TieredStore)) {
    o.stderr.write(`${kind} moves entries between the local cache and an S3 store: give --store s3://bucket/prefix (or set CUSP_STORE); the store is ${o.store.description}\n`)
    return 2
  }
  try {
    await o.store.remote.checkBucket()
  } catch (e) {
    o.stderr.write(`${kind}: ${e instanceof Error ? e.message : String(e)}\n`)
    return 2 // the bucket named by --store cannot be used: a usage problem, as for any unusable store
  }
  const progress = progressPrinter(o.stderr, kind)
  let report: SyncReport
  try {
    report = kind === 'push' ? await pushLock(lock.value, o.store, progress) : await pullLock(lock.value, o.store, progress)
  } catch (e) {
    if (!(e instanceof StoreError)) throw e
    o.stderr.write(`${kind}: ${e.message}\n`)
    return 1
  }
  if (o.json) o.stdout.write(`${JSON.stringify({ type: 'summary', ok: report.failures.length === 0, ...report })}\n`)
  else o.stdout.write(`${formatReport(report, o.store)}\n`)
  for (const f of report.failures) o.stderr.write(`${kind}: ${f}\n`)
  return report.failures.length === 0 ? 0 : 1
}

/** One summary line: entries, objects moved (bytes), already there, records published. */
export function formatReport(r: SyncReport, store: TieredStore): string {
  const verb = r.direction === 'push' ? 'pushed' : 'pulled'
  const there = r.direction === 'push' ? 'already on the remote' : 'already local'
  return (
    `${verb} ${r.objects.moved} objects (${mb(r.objects.bytes)}), ${r.objects.present} ${there}; ` +
    `${r.runs.moved} run records ${r.direction === 'push' ? 'published' : 'restored'}, ${r.runs.present} ${there}; ` +
    `${r.entries} lock entries, ${r.direction === 'push' ? `to ${store.remote.description}` : `from ${store.remote.description}`}` +
    (r.failures.length > 0 ? `; ${r.failures.length} problems (below)` : '')
  )
}

// ---------------------------------------------------------------------------------------------

async function gcCommand(lock: LockFile, o: SyncCommandOptions): Promise<number> {
  const layers = gcLayers(o.store)
  const listing = async (d: ObjectDigest) => {
    if (o.store instanceof TieredStore) return (await o.store.hasDir(d)) ? await readLocalListing(o.store.local, d) : undefined
    if (o.store instanceof LocalStore) return await readLocalListing(o.store, d)
    if (o.store instanceof S3Store) {
      const tmp = join(process.env.TMPDIR ?? '/tmp', `cusp-gc-${process.pid}-${d}`)
      try {
        return (await o.store.getFile(d, tmp)) ? parseListing(await readFile(tmp)) : undefined
      } finally {
        await unlink(tmp).catch(() => undefined)
      }
    }
    return undefined
  }
  for (const layer of layers) {
    const plan = await gcPlan(lock, layer, listing)
    const deleted = o.dryRun ? undefined : await gcApply(plan, layer)
    if (o.json) {
      o.stdout.write(`${JSON.stringify({ type: 'gc', layer: plan.layer, dryRun: o.dryRun, runs: plan.runs, objects: plan.objects.map(({ digest, size }) => ({ digest, size })), bytes: plan.bytes, ...(deleted ? { deleted } : {}) })}\n`)
      continue
    }
    o.stdout.write(`${plan.layer}: ${plan.runs.length} run records and ${plan.objects.length} objects (${mb(plan.bytes)}) not referenced by ${o.lockPath}\n`)
    for (const r of plan.runs) o.stdout.write(`  run     ${r.fingerprint}  ${r.instance}\n`)
    for (const x of plan.objects) o.stdout.write(`  object  ${x.digest}  ${mb(x.size)}\n`)
    if (deleted !== undefined) {
      const kept = plan.objects.length - deleted.objects
      o.stdout.write(`  deleted ${deleted.runs} run records and ${deleted.objects} objects (${mb(deleted.bytes)})${kept > 0 ? `; kept ${kept} objects younger than an hour (a writer may still be publishing them)` : ''}${deleted.swept > 0 ? `; cleaned up ${deleted.swept} interrupted writes` : ''}\n`)
    }
  }
  if (o.dryRun && !o.json) o.stdout.write('dry run: nothing deleted\n')
  if (layers.length === 0) o.stderr.write(`gc: cannot collect garbage in ${o.store.description}\n`)
  return layers.length === 0 ? 2 : 0
}

interface EntryPlan {
  instance: string
  fingerprint: Fingerprint
  objects: Wanted[]
  bad: boolean
}

/** Each lock entry's objects (dir members via `listing`); an unreadable listing is a failure. */
async function collect(lock: LockFile, listing: (d: ObjectDigest) => Promise<DirEntry[] | undefined>, report: SyncReport): Promise<EntryPlan[]> {
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
  const tell = () => onProgress?.({ direction, objectsDone: done, objectsTotal: todo.length, bytesDone: finished + [...partial.values()].reduce((a, b) => a + b, 0), bytesTotal })
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
  return { direction, entries: Object.keys(lock.instances).length, objects: { moved: 0, present: 0, bytes: 0 }, runs: { moved: 0, present: 0 }, failures: [] }
}

/** A run record for a lock entry whose own record is nowhere (its duration and time unknown). */
function recordFromLock(lock: LockFile, instance: string): RunRecord {
  const e = lock.instances[instance]!
  return { schema: 1, fingerprint: e.fingerprint, instance, stage: e.stage, breakdown: e.breakdown, outputs: e.outputs, durationMs: 0, finishedAt: new Date(0).toISOString() }
}

async function readLocalListing(local: LocalStore, d: ObjectDigest): Promise<DirEntry[] | undefined> {
  if (!(await local.verifyObject(d))) return undefined
  return parseListing(await readFile(local.objectPath(d)))
}

function localLayer(store: LocalStore): GcLayer {
  const runPath = (fp: string) => join(store.root, 'runs', fp.slice(0, 2), `${fp}.json`)
  return {
    name: store.description,
    listRuns: () => store.listRuns(),
    async *listObjects() {
      const base = join(store.root, 'objects', 'sha256')
      for (const shard of (await readdir(base).catch(() => [] as string[])).sort()) {
        for (const rest of (await readdir(join(base, shard)).catch(() => [] as string[])).sort()) {
          const st = await stat(join(base, shard, rest)).catch(() => undefined)
          if (st?.isFile() === true && /^[0-9a-f]{2}$/.test(shard) && /^[0-9a-f]{62}$/.test(rest)) yield { digest: `${shard}${rest}` as ObjectDigest, size: st.size, modified: st.mtime }
        }
      }
    },
    deleteRun: (fp) => unlink(runPath(fp)).catch(() => undefined),
    deleteObject: (d) => store.deleteObject(d),
    sweep: () => store.sweepTemp(),
  }
}

function s3Layer(store: S3Store): GcLayer {
  return {
    name: store.description,
    listRuns: () => store.listRuns(),
    listObjects: () => store.listObjects(),
    deleteRun: (fp) => store.deleteRun(fp),
    deleteObject: (d) => store.deleteObject(d),
    sweep: () => store.abortStaleUploads(),
  }
}

/** Progress on stderr: redrawn in place on a terminal, else a line per 10% of the bytes. */
function progressPrinter(err: OutputSink, kind: string): (p: SyncProgress) => void {
  let lastDecile = -1
  let lastDraw = 0
  return (p) => {
    const line = `${kind}: ${p.objectsDone}/${p.objectsTotal} objects, ${mb(p.bytesDone)} of ${mb(p.bytesTotal)}`
    const complete = p.objectsDone === p.objectsTotal
    if (err.isTTY === true) {
      const now = Date.now()
      if (!complete && now - lastDraw < 100) return
      lastDraw = now
      err.write(`\r\x1b[2K${line}${complete ? '\n' : ''}`)
      return
    }
    if (p.objectsTotal === 0) return
    const decile = complete ? 10 : Math.floor((10 * p.bytesDone) / Math.max(1, p.bytesTotal))
    if (decile > lastDecile) {
      lastDecile = decile
      err.write(`${line}\n`)
    }
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`
}
