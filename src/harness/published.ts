/**
 * Published results: after a run (and after `pull`), each `publish:` target (published-decl.ts)
 * holds exactly the stored bytes of its output. The lock is the only source of truth: a target is
 * a read-only copy of the object the lock names, fetched through the store (`getFile`/`getDir`,
 * which re-hash every byte) into a staging directory under `.cusp/` and renamed into place. It is
 * never a hard link into the store (a user who chmods and edits it would corrupt the store) and
 * never read back as an input.
 *
 * `.cusp/published.json` (the manifest) records every file cusp wrote: its sha256, size and
 * mtime. With it:
 * - a published file edited (or deleted) since is reported by `status` (publishedStatus) and
 *   restored by the next publish; the edited bytes are first saved under `.cusp/published-saved/`,
 *   so nothing a person wrote is lost silently. A file at a target that cusp did not write is
 *   saved the same way before it is replaced.
 * - a file cusp published that is no longer wanted (the declaration or the output changed) is
 *   removed when it is exactly as cusp wrote it, and left in place, with a line saying so, when
 *   someone changed it.
 * An instance that failed or was skipped in this run keeps whatever was published before.
 */
import { createHash } from 'node:crypto'
import { chmod, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises'
import { dirname, join, posix, relative, sep } from 'node:path'
import { readLock } from './lockfile.ts'
import type { ArtifactStore, LockFile, ObjectDigest, PublishEntry } from './types.ts'

/** One file cusp wrote into the working tree. */
export interface ManifestFile {
  sha256: string
  size: number
  mtimeMs: number
  /** The target (publish key) it belongs to. */
  target: string
}

export interface Manifest {
  schema: 1
  /** target -> the object digest it was published from (a file's, or a dir listing's). */
  targets: Record<string, string>
  /** project-relative posix path -> what cusp wrote there. */
  files: Record<string, ManifestFile>
}

/** What one publish did, for the run's closing lines. */
export interface PublishReport {
  /** Files written (new or restored). */
  written: string[]
  /** Files already as stored. */
  unchanged: number
  /** Stale files removed (cusp wrote them and nobody changed them). */
  removed: string[]
  /** Stale files left in place because someone changed them. */
  kept: string[]
  /** Files replaced after their bytes were saved: path -> where the old bytes went. */
  saved: Record<string, string>
  /** Targets that could not be published, with why. */
  problems: string[]
}

export const MANIFEST = join('.cusp', 'published.json')
const SAVED = join('.cusp', 'published-saved')

/** The manifest at `root`, or an empty one (a missing or unreadable manifest is an empty one). */
export async function readManifest(root: string): Promise<Manifest> {
  try {
    const m = JSON.parse(await readFile(join(root, MANIFEST), 'utf8')) as Manifest
    if (m.schema === 1 && typeof m.files === 'object' && typeof m.targets === 'object') return m
  } catch {
    // none yet, or damaged: nothing is known to be ours
  }
  return { schema: 1, targets: {}, files: {} }
}

/** Writes the manifest, unless it already holds exactly these bytes (a no-op run writes nothing). */
async function writeManifest(root: string, m: Manifest): Promise<void> {
  const path = join(root, MANIFEST)
  const text = `${JSON.stringify(m, null, 2)}\n`
  if ((await readFile(path, 'utf8').catch(() => undefined)) === text) return
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, text)
  await rename(tmp, path)
}

async function sha256Of(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex')
}

/** Whether the file cusp recorded at `rel` is still exactly what it wrote. */
export async function fileState(root: string, rel: string, m: ManifestFile): Promise<'intact' | 'modified' | 'missing'> {
  const st = await stat(join(root, rel)).catch(() => undefined)
  if (st === undefined || !st.isFile()) return st === undefined ? 'missing' : 'modified'
  if (st.size !== m.size) return 'modified'
  if (st.mtimeMs === m.mtimeMs) return 'intact'
  return (await sha256Of(join(root, rel))) === m.sha256 ? 'intact' : 'modified'
}

/** Every file under `dir`, as posix paths relative to it, sorted. */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
  }
  return out.sort()
}

/**
 * Publish every entry from the lock at `lockPath` (see the module comment). `skip`: instances whose
 * outputs must not be published now (failed or skipped in this run). Never throws for a target
 * that cannot be published: it becomes a line in `problems`.
 */
export async function publishFromLock(o: {
  root: string
  entries: readonly PublishEntry[]
  lockPath: string
  store: ArtifactStore
  skip?: ReadonlySet<string>
}): Promise<PublishReport> {
  const report: PublishReport = { written: [], unchanged: 0, removed: [], kept: [], saved: {}, problems: [] }
  const before = await readManifest(o.root)
  // Nothing declared, nothing published before: no need to read (and re-verify) the lock.
  if (o.entries.length === 0 && Object.keys(before.files).length === 0) return report
  const lock = readLock(o.lockPath)
  if (!lock.ok) {
    report.problems.push(`cannot read ${o.lockPath}: nothing published`)
    return report
  }
  return await publish(o, lock.value ?? { schema: 1, instances: {} }, before, report)
}

async function publish(
  o: { root: string; entries: readonly PublishEntry[]; store: ArtifactStore; skip?: ReadonlySet<string> },
  lock: LockFile,
  before: Manifest,
  report: PublishReport,
): Promise<PublishReport> {
  const after: Manifest = { schema: 1, targets: {}, files: {} }
  const keep = (target: string) => {
    for (const [rel, f] of Object.entries(before.files)) if (f.target === target) after.files[rel] = f
    const src = before.targets[target]
    if (src !== undefined) after.targets[target] = src
  }
  const stagingRoot = join(o.root, '.cusp', `publish-tmp-${process.pid}`)
  try {
    for (const [n, e] of o.entries.entries()) {
      const stored = lock.instances[e.instance]?.outputs[e.output]
      if (stored === undefined || o.skip?.has(e.instance)) {
        keep(e.target)
        if (stored === undefined && !o.skip?.has(e.instance)) report.problems.push(`${e.target}: ${e.instance} has not run yet`)
        continue
      }
      const owned = Object.entries(before.files).filter(([, f]) => f.target === e.target)
      if (before.targets[e.target] === stored.digest && owned.length > 0) {
        const states = await Promise.all(owned.map(([rel, f]) => fileState(o.root, rel, f)))
        if (states.every((s) => s === 'intact')) {
          keep(e.target)
          report.unchanged += owned.length
          continue
        }
      }
      const staged = join(stagingRoot, String(n))
      await rm(staged, { recursive: true, force: true })
      await mkdir(dirname(staged), { recursive: true })
      const got = e.kind === 'dir' ? await o.store.getDir(stored.digest, staged) : await o.store.getFile(stored.digest, staged)
      if (!got) {
        keep(e.target)
        report.problems.push(
          `${e.target}: object ${stored.digest.slice(0, 12)} of ${e.instance}/${e.output} is not in the store (pull or rerun)`,
        )
        continue
      }
      const files =
        e.kind === 'dir'
          ? (await walk(staged)).map((r) => ({ rel: `${e.target}/${r}`, from: join(staged, ...r.split('/')) }))
          : [{ rel: e.target, from: staged }]
      for (const { rel, from } of files) {
        const sha = e.kind === 'file' ? (stored.digest as string) : await sha256Of(from)
        const prior = before.files[rel]
        const dest = join(o.root, ...rel.split('/'))
        const state = prior !== undefined ? await fileState(o.root, rel, prior) : 'missing'
        if (prior !== undefined && state === 'intact' && prior.sha256 === sha) {
          after.files[rel] = { ...prior, target: e.target }
          report.unchanged++
          continue
        }
        const there = await stat(dest).catch(() => undefined)
        if (there?.isDirectory()) {
          report.problems.push(`${rel}: a directory is in the way; move it and run again`)
          continue
        }
        if (there !== undefined && (prior === undefined || state !== 'intact')) report.saved[rel] = await saveAside(o.root, rel)
        await chmod(from, 0o444)
        await mkdir(dirname(dest), { recursive: true })
        await rename(from, dest)
        const st = await stat(dest)
        after.files[rel] = { sha256: sha, size: st.size, mtimeMs: st.mtimeMs, target: e.target }
        report.written.push(rel)
      }
      after.targets[e.target] = stored.digest as ObjectDigest
    }
    // Files cusp wrote before that no target wants now.
    for (const [rel, f] of Object.entries(before.files)) {
      if (after.files[rel] !== undefined) continue
      if ((await fileState(o.root, rel, f)) === 'modified') report.kept.push(rel)
      else {
        await rm(join(o.root, ...rel.split('/')), { force: true })
        report.removed.push(rel)
        await pruneEmptyDirs(o.root, rel)
      }
    }
    await writeManifest(o.root, after)
  } finally {
    await rm(stagingRoot, { recursive: true, force: true })
  }
  return report
}

/** Copy the bytes at `rel` under .cusp/published-saved/ (replacing an older save); returns where. */
async function saveAside(root: string, rel: string): Promise<string> {
  const to = posix.join(SAVED.split(sep).join('/'), rel)
  const dest = join(root, ...to.split('/'))
  await mkdir(dirname(dest), { recursive: true })
  await rm(dest, { force: true })
  await rename(join(root, ...rel.split('/')), dest)
  return to
}

/** Remove the now-empty directories above a removed file, up to (not including) the project root. */
async function pruneEmptyDirs(root: string, rel: string): Promise<void> {
  let dir = posix.dirname(rel)
  while (dir !== '.' && dir !== '') {
    const ok = await rmdir(join(root, ...dir.split('/'))).then(
      () => true,
      () => false,
    )
    if (!ok) return
    dir = posix.dirname(dir)
  }
}

/** The lines a run or pull prints about what it published (empty when nothing is worth saying). */
export function publishLines(r: PublishReport): string[] {
  const lines: string[] = []
  const n = r.written.length
  if (n > 0) lines.push(`published ${n} file${n === 1 ? '' : 's'} (${r.unchanged} already as stored)`)
  for (const [rel, to] of Object.entries(r.saved)) lines.push(`${rel} differed from the stored bytes: restored, your copy is in ${to}`)
  if (r.removed.length > 0) lines.push(`removed ${r.removed.length} stale published file(s): ${r.removed.slice(0, 5).join(', ')}`)
  for (const rel of r.kept) lines.push(`${rel}: no longer published, but changed since cusp wrote it, so left in place`)
  for (const p of r.problems) lines.push(`not published: ${p}`)
  return lines
}

/** The target a person opens: the first published .html file, else the first file target. */
export function openTarget(entries: readonly PublishEntry[]): PublishEntry | undefined {
  return entries.find((e) => e.kind === 'file' && e.target.endsWith('.html')) ?? entries.find((e) => e.kind === 'file')
}

/** One published path that is not as stored: edited or deleted since, or declared but never published. */
export interface PublishedDrift {
  path: string
  state: 'modified' | 'missing' | 'unpublished'
}

/** What `status` says about published files: each one that differs from what cusp published. */
export async function publishedStatus(root: string, entries: readonly PublishEntry[]): Promise<PublishedDrift[]> {
  const m = await readManifest(root)
  const out: PublishedDrift[] = []
  for (const [rel, f] of Object.entries(m.files).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const state = await fileState(root, rel, f)
    if (state !== 'intact') out.push({ path: rel, state })
  }
  for (const e of entries) if (m.targets[e.target] === undefined) out.push({ path: e.target, state: 'unpublished' })
  return out
}

/** `status` lines for `drift` (empty string when every published file is as stored). */
export function publishedStatusText(drift: readonly PublishedDrift[]): string {
  if (drift.length === 0) return ''
  const what = { modified: 'modified since published', missing: 'deleted since published', unpublished: 'not published yet' }
  const lines = drift.map((d) => `  ${d.path}: ${what[d.state]}`)
  return `\npublished results differ from the store (the next run restores them; an edited file is saved under .cusp/published-saved/ first):\n${lines.join('\n')}\n`
}
