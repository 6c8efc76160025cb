/**
 * The CLI face of `push`, `pull` and `gc [--dry-run]`: reads the lock, checks that the store
 * can be used, runs sync-transfer.ts (push/pull) or sync-gc.ts (gc), and reports: progress on
 * stderr, a summary with byte counts on stdout (or one JSON line with `--json`). Every expected
 * failure (no lock, an unusable store or bucket, a store or filesystem error such as EACCES or
 * ENOSPC) is one line on stderr and an exit code, never an exception.
 */
import { readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { readLock } from './lockfile.ts'
import { stripControl, terminalJson } from './redact.ts'
import type { OutputSink } from './reporter.ts'
import { parseListing } from './store/dir-listing.ts'
import { LocalStore } from './store/local-store.ts'
import { StoreError } from './store/run-record-check.ts'
import { S3Store } from './store/s3-store.ts'
import { TieredStore } from './store/tiered-store.ts'
import { gcApply, gcLayers, gcPlan } from './sync-gc.ts'
import { pullLock, pushLock, readLocalListing, type SyncProgress, type SyncReport } from './sync-transfer.ts'
import type { ArtifactStore, LockFile, ObjectDigest } from './types.ts'

export { gcApply, gcLayers, gcPlan, type GcLayer, type GcPlan } from './sync-gc.ts'
export { pullLock, pushLock, type SyncProgress, type SyncReport } from './sync-transfer.ts'

/** Options of `syncCommand`, from the CLI. */
export interface SyncCommandOptions {
  store: ArtifactStore
  lockPath: string
  dryRun: boolean
  json: boolean
  stdout: OutputSink
  stderr: OutputSink
  /** After a pull: publish the lock's outputs into the working tree (published.ts); returns lines to print. */
  afterPull?: () => Promise<string[]>
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
  if (kind === 'gc') {
    try {
      return await gcCommand(lock.value, o)
    } catch (e) {
      const message = expectedFailure(e)
      if (message === undefined) throw e
      o.stderr.write(`gc: ${message}\n`)
      return 1
    }
  }
  if (!(o.store instanceof TieredStore)) {
    o.stderr.write(
      `${kind} moves entries between the local cache and an S3 store: give --store s3://bucket/prefix (or set CUSP_STORE); the store is ${o.store.description}\n`,
    )
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
    const message = expectedFailure(e)
    if (message === undefined) throw e
    o.stderr.write(`${kind}: ${message}\n`)
    return 1
  }
  if (o.json) o.stdout.write(`${terminalJson({ type: 'summary', ok: report.failures.length === 0, ...report })}\n`)
  else o.stdout.write(`${formatReport(report, o.store)}\n`)
  for (const f of report.failures) o.stderr.write(`${kind}: ${f}\n`)
  if (kind === 'pull' && o.afterPull !== undefined) for (const line of await o.afterPull()) o.stdout.write(`${line}\n`)
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
      o.stdout.write(
        `${terminalJson({ type: 'gc', layer: plan.layer, dryRun: o.dryRun, runs: plan.runs.map(({ fingerprint, instance }) => ({ fingerprint, instance })), objects: plan.objects.map(({ digest, size }) => ({ digest, size })), bytes: plan.bytes, ...(deleted ? { deleted } : {}) })}\n`,
      )
      continue
    }
    o.stdout.write(
      `${plan.layer}: ${plan.runs.length} run records and ${plan.objects.length} objects (${mb(plan.bytes)}) not referenced by ${o.lockPath}\n`,
    )
    for (const r of plan.runs) o.stdout.write(`  run     ${r.fingerprint}  ${stripControl(r.instance, { mark: '?', oneLine: true })}\n`)
    for (const x of plan.objects) o.stdout.write(`  object  ${x.digest}  ${mb(x.size)}\n`)
    if (deleted !== undefined) {
      const kept = deleted.kept
      o.stdout.write(
        `  deleted ${deleted.runs} run records and ${deleted.objects} objects (${mb(deleted.bytes)})${kept > 0 ? `; kept ${kept} records and objects younger than an hour (a writer may still be publishing them)` : ''}${deleted.swept > 0 ? `; cleaned up ${deleted.swept} interrupted writes` : ''}\n`,
      )
    }
  }
  if (o.dryRun && !o.json) o.stdout.write('dry run: nothing deleted\n')
  if (layers.length === 0) o.stderr.write(`gc: cannot collect garbage in ${o.store.description}\n`)
  return layers.length === 0 ? 2 : 0
}

/** An expected failure (a store refusal, a filesystem error) as one line; anything else is a bug and rethrown. */
function expectedFailure(e: unknown): string | undefined {
  if (e instanceof StoreError) return e.message
  const err = e as NodeJS.ErrnoException
  if (e instanceof Error && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) {
    return `${err.code === 'ENOSPC' ? 'no space left on the device' : err.code === 'EACCES' || err.code === 'EPERM' ? 'permission denied' : err.code}: ${err.message.split('\n')[0]}`
  }
  return undefined
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
