/**
 * The registry views: `artifacts [<instance>]` and `show <instance>`. The store's run records are
 * the registry: each record says which instance, with which params and fingerprint, produced
 * which output digests and when. `artifacts` inverts that into one entry per stored output
 * (digest, size, kind, the names it was published under, and every run/fingerprint that produced
 * it, marking the one the lock currently points at). `show` prints one instance's current lock
 * entry, where its outputs live in the store, and its result JSON (every `.json` output, read
 * back through the store so the digest is verified). Both return text (or JSON with `--json`);
 * reading the store is the only effect.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readLock } from './lockfile.ts'
import { stripControl, terminalJson } from './redact.ts'
import { fmtMs } from './reporter.ts'
import { fail, ok } from './types.ts'
import type {
  ArtifactStore,
  Failure,
  JsonObject,
  JsonValue,
  LockFile,
  ObjectDigest,
  Result,
  RunRecord,
  StoredOutput,
  ValidPipeline,
} from './types.ts'

export interface RegistryQuery {
  pipeline: ValidPipeline
  store: ArtifactStore
  lockPath: string
  /** Restrict to this instance id (already resolved). */
  instance: string | undefined
  json: boolean
}

/** One stored output and everything known about who produced it. */
export interface ArtifactEntry {
  digest: ObjectDigest
  size: number
  kind: StoredOutput['kind']
  /** `instance/output` names it was published under. */
  names: string[]
  producedBy: Array<{
    instance: string
    stage: string
    output: string
    fingerprint: string
    params: JsonObject
    finishedAt: string
    durationMs: number
    current: boolean
  }>
}

/** Group run records by output digest, newest producer first; entries sorted by name. */
export function artifactEntries(runs: readonly RunRecord[], lock: LockFile | undefined, instance?: string): ArtifactEntry[] {
  const byDigest = new Map<string, ArtifactEntry>()
  for (const run of runs) {
    if (instance !== undefined && run.instance !== instance) continue
    const current = lock?.instances[run.instance]?.fingerprint === run.fingerprint
    for (const [output, o] of Object.entries(run.outputs)) {
      let e = byDigest.get(o.digest)
      if (e === undefined) {
        e = { digest: o.digest, size: o.size, kind: o.kind, names: [], producedBy: [] }
        byDigest.set(o.digest, e)
      }
      const name = `${run.instance}/${output}`
      if (!e.names.includes(name)) e.names.push(name)
      e.producedBy.push({
        instance: run.instance,
        stage: run.stage,
        output,
        fingerprint: run.fingerprint,
        params: run.breakdown.params,
        finishedAt: run.finishedAt,
        durationMs: run.durationMs,
        current,
      })
    }
  }
  const entries = [...byDigest.values()]
  for (const e of entries) {
    e.names.sort()
    e.producedBy.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt) || a.fingerprint.localeCompare(b.fingerprint))
  }
  return entries.sort((a, b) => (a.names[0] ?? '').localeCompare(b.names[0] ?? '') || a.digest.localeCompare(b.digest))
}

/** `artifacts [<instance>]`: every stored output with digest, size, producer, params, time, fingerprints. */
export async function artifactsView(q: RegistryQuery): Promise<Result<string, Failure>> {
  const lock = loadLock(q.lockPath)
  if (!lock.ok) return lock
  const entries = artifactEntries(await q.store.listRuns(), lock.value, q.instance)
  if (q.json) return ok(`${terminalJson({ store: q.store.description, artifacts: entries })}\n`)
  if (entries.length === 0) {
    const what = q.instance === undefined ? 'no runs recorded' : `no runs of ${q.instance} recorded`
    return ok(`${q.store.description}: ${what} yet (run the pipeline first)\n`)
  }
  const lines = [`store: ${q.store.description}`]
  for (const e of entries) {
    lines.push(`${e.digest.slice(0, 16)}  ${fmtBytes(e.size).padStart(9)}  ${e.kind.padEnd(4)}  ${e.names.join(', ')}`)
    for (const p of e.producedBy) {
      const mark = p.current ? ' (current)' : ''
      lines.push(
        `    ${p.instance}/${p.output}  fingerprint ${p.fingerprint.slice(0, 16)}${mark}  ${p.finishedAt}  ${fmtMs(p.durationMs)}  params ${terminalJson(p.params)}`,
      )
    }
  }
  lines.push(`${entries.length} outputs`)
  return ok(`${lines.map(printable).join('\n')}\n`)
}

/** `show <instance>`: its current outputs, where they are in the store, and its result JSON. */
export async function showView(q: RegistryQuery): Promise<Result<string, Failure>> {
  const id = q.instance
  if (id === undefined) return fail({ reason: 'usage', message: "'show' needs an instance id" })
  const lock = loadLock(q.lockPath)
  if (!lock.ok) return lock
  const entry = lock.value?.instances[id]
  if (entry === undefined) {
    const msg = `${id} has no lock entry yet: run it first (npm run pipeline -- --stage ${id})`
    return q.json ? ok(`${terminalJson({ id, fingerprint: null, outputs: {}, results: {} })}\n`) : ok(`${msg}\n`)
  }
  const results: Record<string, JsonValue> = {}
  for (const [name, o] of Object.entries(entry.outputs)) {
    if (o.kind === 'file' && name.endsWith('.json')) results[name] = (await readJsonObject(q.store, o.digest)) ?? null
  }
  if (q.json) {
    const outputs = Object.fromEntries(
      Object.entries(entry.outputs).map(([n, o]) => [n, { ...o, path: locate(q.store, o.digest) ?? null }]),
    )
    return ok(`${terminalJson({ id, stage: entry.stage, fingerprint: entry.fingerprint, store: q.store.description, outputs, results })}\n`)
  }
  const lines = [
    `${id}  (stage ${entry.stage})`,
    `fingerprint ${entry.fingerprint}`,
    `params ${terminalJson(entry.breakdown.params)}`,
    `outputs in ${q.store.description}:`,
  ]
  for (const [name, o] of Object.entries(entry.outputs).sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`  ${name.padEnd(20)} ${o.kind.padEnd(4)} ${fmtBytes(o.size).padStart(9)}  sha256:${o.digest}`)
    const where = locate(q.store, o.digest)
    if (where !== undefined) lines.push(`  ${''.padEnd(20)} ${o.kind === 'dir' ? 'listing at' : 'at'} ${where}`)
  }
  for (const [name, value] of Object.entries(results)) {
    lines.push(`${name}:`, value === null ? '  (missing from the store or not valid JSON)' : terminalJson(value, 2))
  }
  return ok(`${lines.map(printable).join('\n')}\n`)
}

function loadLock(path: string): Result<LockFile | undefined, Failure> {
  return readLock(path)
}

/** The object's location, for stores that can say (the local store's `objectPath`). */
function locate(store: ArtifactStore, digest: ObjectDigest): string | undefined {
  const withPath = store as ArtifactStore & { objectPath?: (d: ObjectDigest) => string }
  return typeof withPath.objectPath === 'function' ? withPath.objectPath(digest) : undefined
}

/** Read a JSON object back from the store (digest-verified); undefined on a miss or bad JSON. */
async function readJsonObject(store: ArtifactStore, digest: ObjectDigest): Promise<JsonValue | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-show-'))
  try {
    const dest = join(dir, 'obj.json')
    if (!(await store.getFile(digest, dest))) return undefined
    return JSON.parse(await readFile(dest, 'utf8')) as JsonValue
  } catch {
    return undefined
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * A line safe for a terminal: record fields come from a store (untrusted), so control characters
 * (escape sequences that could rewrite the screen or the title; C0, DEL, C1) are shown as `?`.
 */
export function printable(line: string): string {
  return stripControl(line, { mark: '?' })
}

/** `512 B`, `12.3 kB`, `4.0 MB` (decimal units). */
export function fmtBytes(n: number): string {
  if (n < 1000) return `${n} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let v = n / 1000
  let i = 0
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}
