/**
 * `fsck [--repair]`: re-hash every object of a store (each layer: local; S3; both for a tiered
 * store) and re-check every run record as untrusted input (structure, declared outputs and
 * signature, as on any read). Without `--repair` it only reports. With it, an object that does
 * not hash to its name and a record that fails its check are moved aside into the layer's
 * `quarantine/` (never deleted: they are evidence, and a wrong verdict must be undoable); S3
 * objects are re-read once more before they are moved, so one bad read cannot quarantine a good
 * shared object. A quarantined object is then simply missing: the next run reruns its producer
 * and stores good bytes under the name. Records naming objects that are missing are reported
 * (the planner already treats them as misses).
 *
 * A wrong key must not empty a shared bucket: when records fail only their signature and none
 * (or fewer than those that fail) verifies with the configured key, the key is the likely culprit
 * (a wrong CUSP_RECORD_KEY, or records written before signing was configured), so `--repair`
 * leaves those records in place, says so in one line and exits 1; `--quarantine-unsigned` moves
 * them anyway. Corrupt objects and malformed records are quarantined as always.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readdir, readFile, rename, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { ArtifactStore, Fingerprint, ObjectDigest, RunRecord } from '../types.ts'
import { stripControl, terminalJson } from '../redact.ts'
import { parseListing } from './dir-listing.ts'
import { LocalStore } from './local-store.ts'
import { declaredOutputsProblem, signatureProblem, type RecordTrust } from './record-trust.ts'
import { mapLimit } from './restore.ts'
import { checkRunRecord, RECORD_LIMITS, StoreError } from './run-record-check.ts'
import { listRunKeys, quarantineKey } from './s3-admin.ts'
import { S3Store } from './s3-store.ts'
import { TieredStore } from './tiered-store.ts'

/** What fsck found (and, with repair, moved aside) in one layer. */
export interface FsckLayerReport {
  layer: string
  objects: number
  corrupt: ObjectDigest[]
  runs: number
  /** Records that fail their check: fingerprint, why, and whether only their signature failed. */
  badRuns: { fingerprint: Fingerprint; problem: string; signature?: true }[]
  /** Records whose signature verified with the configured key (0 when none is configured). */
  verified: number
  /** Good records naming objects this layer lacks (`fingerprint: digest, ...`). */
  incomplete: { fingerprint: Fingerprint; missing: ObjectDigest[] }[]
  quarantined: string[]
  /** Records that failed only their signature and were left in place (see `signatureSuspect`). */
  kept: Fingerprint[]
}

/** A signature failure found with `repair`: moved once every layer is checked, unless the key is suspect. */
type Held = { report: FsckLayerReport; fingerprint: Fingerprint; move: () => Promise<string> }

/**
 * Check every layer of `store`; with `repair`, quarantine what fails, except records that fail
 * only their signature while the key is suspect (`signatureSuspect`), unless `quarantineUnsigned`.
 */
export async function fsck(store: ArtifactStore, repair: boolean, opts: { quarantineUnsigned?: boolean } = {}): Promise<FsckLayerReport[]> {
  const held: Held[] = []
  let reports: FsckLayerReport[] = []
  if (store instanceof TieredStore) reports = [await fsckLocal(store.local, repair, held), await fsckS3(store.remote, repair, held)]
  else if (store instanceof LocalStore) reports = [await fsckLocal(store, repair, held)]
  else if (store instanceof S3Store) reports = [await fsckS3(store, repair, held)]
  const keep = signatureSuspect(reports) !== undefined && opts.quarantineUnsigned !== true
  for (const h of held) {
    if (keep) h.report.kept.push(h.fingerprint)
    else h.report.quarantined.push(await h.move())
  }
  return reports.map(finish)
}

/**
 * Records that fail only their signature, across every layer, when that looks like the key's
 * fault rather than the records': some fail and none verifies, or more fail than verify.
 */
export function signatureSuspect(reports: readonly FsckLayerReport[]): { failed: number; verified: number } | undefined {
  const failed = reports.reduce((n, r) => n + r.badRuns.filter((b) => b.signature === true).length, 0)
  const verified = reports.reduce((n, r) => n + r.verified, 0)
  return failed > 0 && failed > verified ? { failed, verified } : undefined
}

async function fsckLocal(store: LocalStore, repair: boolean, held: Held[]): Promise<FsckLayerReport> {
  const r = emptyReport(store.description)
  const moveAside = async (path: string, rel: string) => {
    const dest = join(store.root, 'quarantine', `${rel}.${Date.now()}`)
    await mkdir(dirname(dest), { recursive: true })
    await rename(path, dest)
    return dest
  }
  const quarantine = async (path: string, rel: string) => void r.quarantined.push(await moveAside(path, rel))
  const base = join(store.root, 'objects', 'sha256')
  const present = new Set<string>()
  const files: { digest: string; path: string }[] = []
  for (const shard of (await readdir(base).catch(() => [] as string[])).sort()) {
    for (const rest of (await readdir(join(base, shard)).catch(() => [] as string[])).sort())
      files.push({ digest: `${shard}${rest}`, path: join(base, shard, rest) })
  }
  await mapLimit(files, 4, async (f) => {
    r.objects++
    if ((await hashPath(f.path)) === f.digest) return void present.add(f.digest)
    r.corrupt.push(f.digest as ObjectDigest)
    if (repair) await quarantine(f.path, `objects/${f.digest}`)
  })
  const runsDir = join(store.root, 'runs')
  for (const shard of (await readdir(runsDir).catch(() => [] as string[])).sort()) {
    for (const name of (await readdir(join(runsDir, shard)).catch(() => [] as string[])).sort()) {
      if (!name.endsWith('.json')) continue
      r.runs++
      const fp = name.slice(0, -'.json'.length) as Fingerprint
      const path = join(runsDir, shard, name)
      const st = await stat(path).catch(() => undefined)
      const value =
        st !== undefined && st.size <= RECORD_LIMITS.recordBytes ? parseJson(await readFile(path, 'utf8').catch(() => '')) : undefined
      const bad = recordProblem(value, fp, store.trust, r)
      if (bad !== undefined) {
        if (repair && bad.signature === true) held.push({ report: r, fingerprint: fp, move: () => moveAside(path, `runs/${name}`) })
        else if (repair) await quarantine(path, `runs/${name}`)
        continue
      }
      const missing = await missingObjects(
        value as RunRecord,
        (d) => present.has(d),
        async (d) => await readFile(store.objectPath(d)).catch(() => undefined),
      )
      if (missing.length > 0) r.incomplete.push({ fingerprint: fp, missing })
    }
  }
  return r
}

async function fsckS3(store: S3Store, repair: boolean, held: Held[]): Promise<FsckLayerReport> {
  const r = emptyReport(store.description)
  const present = new Set<string>()
  const listed: ObjectDigest[] = []
  for await (const o of store.listObjects()) listed.push(o.digest)
  await mapLimit(listed, 4, async (d) => {
    r.objects++
    const key = store.objectKey(d)
    const first = await store.getVerified(key, d, undefined).catch((e: unknown) => {
      throw store.error(e, 'get object', key)
    })
    if (first.status !== 'corrupt') return void (first.status === 'ok' && present.add(d))
    const again = await store.getVerified(key, d, undefined).catch(() => undefined) // one bad read is not enough
    if (again?.status !== 'corrupt') return void present.add(d)
    r.corrupt.push(d)
    if (repair) r.quarantined.push(await quarantineKey(store, key, again.etag))
  })
  for await (const k of listRunKeys(store)) {
    r.runs++
    const key = store.runKey(k.fingerprint)
    const got = await store.getJson(key, RECORD_LIMITS.recordBytes)
    if (got === undefined) continue
    const bad = recordProblem(got.value, k.fingerprint, store.trust, r)
    if (bad !== undefined) {
      const move = () => quarantineKey(store, key, got.etag)
      if (repair && bad.signature === true) held.push({ report: r, fingerprint: k.fingerprint, move })
      else if (repair) r.quarantined.push(await move())
      continue
    }
    const listing = async (d: ObjectDigest) => {
      const chunks: Buffer[] = []
      const out = await store.getVerified(store.objectKey(d), d, (c) => void chunks.push(c)).catch(() => undefined)
      return out?.status === 'ok' ? Buffer.concat(chunks) : undefined
    }
    const missing = await missingObjects(got.value as RunRecord, (d) => present.has(d), listing)
    if (missing.length > 0) r.incomplete.push({ fingerprint: k.fingerprint, missing })
  }
  return r
}

/**
 * Why a stored record would be refused on read (the same checks, in the same order, as
 * record-trust.ts `admitRecord`), added to `r.badRuns`; or undefined, counting a verified signature.
 */
function recordProblem(
  value: unknown,
  fp: Fingerprint,
  trust: RecordTrust,
  r: FsckLayerReport,
): FsckLayerReport['badRuns'][number] | undefined {
  const shape = checkRunRecord(value, fp)
  const problem = shape ?? declaredOutputsProblem(value as RunRecord, trust)
  const signature = problem === undefined ? signatureProblem(value as RunRecord, trust) : undefined
  if (problem === undefined && signature === undefined) {
    if (trust.verifier !== undefined) r.verified++
    return undefined
  }
  const bad =
    signature !== undefined ? { fingerprint: fp, problem: signature, signature: true as const } : { fingerprint: fp, problem: problem! }
  r.badRuns.push(bad)
  return bad
}

async function missingObjects(
  rec: RunRecord,
  has: (d: string) => boolean,
  read: (d: ObjectDigest) => Promise<Buffer | undefined>,
): Promise<ObjectDigest[]> {
  const missing: ObjectDigest[] = []
  for (const o of Object.values(rec.outputs)) {
    if (!has(o.digest)) {
      missing.push(o.digest)
      continue
    }
    if (o.kind !== 'dir') continue
    const bytes = await read(o.digest)
    for (const e of bytes === undefined ? [] : (parseListing(bytes) ?? [])) if (!has(e.digest)) missing.push(e.digest)
  }
  return missing
}

async function hashPath(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function emptyReport(layer: string): FsckLayerReport {
  return { layer, objects: 0, corrupt: [], runs: 0, badRuns: [], verified: 0, incomplete: [], quarantined: [], kept: [] }
}

function finish(r: FsckLayerReport): FsckLayerReport {
  r.corrupt.sort()
  r.quarantined.sort()
  r.kept.sort()
  return r
}

/** The text `fsck` prints for its reports. */
export function fsckText(reports: readonly FsckLayerReport[], repair: boolean): string {
  const lines: string[] = []
  for (const r of reports) {
    lines.push(
      `${r.layer}: ${r.objects} objects re-hashed, ${r.corrupt.length} corrupt; ${r.runs} run records checked, ${r.badRuns.length} refused, ${r.incomplete.length} naming missing objects`,
    )
    const kept = new Set<string>(r.kept)
    const done = (fp?: string) => (!repair ? '' : fp !== undefined && kept.has(fp) ? '  (kept: signature only)' : '  (quarantined)')
    for (const d of r.corrupt) lines.push(`  corrupt object  ${d}${done()}`)
    for (const b of r.badRuns) lines.push(`  refused record  ${b.fingerprint}  ${b.problem}${done(b.fingerprint)}`)
    for (const i of r.incomplete) lines.push(`  incomplete      ${i.fingerprint}  missing ${i.missing.join(', ')}`)
  }
  const problems = reports.reduce((n, r) => n + r.corrupt.length + r.badRuns.length - r.kept.length, 0)
  if (problems > 0 && !repair)
    lines.push(`${problems} problems: run fsck --repair to move them into quarantine/ (the next run then reproduces what is missing)`)
  else if (problems > 0) lines.push(`${problems} problems moved into quarantine/; the next run reproduces what is missing`)
  // Fingerprints come from entry names in the store and problems from records: no terminal controls.
  return `${lines.map((l) => stripControl(l, { mark: '?' })).join('\n')}\n`
}

/** Exit code of `fsck`: 0 clean (or repaired), 1 problems left in place. */
export function fsckExitCode(reports: readonly FsckLayerReport[], repair: boolean): number {
  if (repair) return reports.some((r) => r.kept.length > 0) ? 1 : 0
  return reports.some((r) => r.corrupt.length + r.badRuns.length > 0) ? 1 : 0
}

/** The one line `fsck` prints when records fail only their signature and the key is the likely cause. */
export function signatureSuspectLine(
  reports: readonly FsckLayerReport[],
  repair: boolean,
  quarantineUnsigned: boolean,
): string | undefined {
  const s = signatureSuspect(reports)
  if (s === undefined || quarantineUnsigned) return undefined
  const left = repair ? 'left them in place' : '--repair will leave them in place'
  return (
    `fsck: ${s.failed} run records fail only their signature and ${s.verified === 0 ? 'none' : `only ${s.verified}`} verify with the configured key: ` +
    `likely a wrong CUSP_RECORD_KEY (or CUSP_RECORD_VERIFY_KEY), or records written before signing was configured; ${left}. ` +
    'Check the key, or pass --quarantine-unsigned to move them into quarantine/ (rerunning with the key recomputes and re-signs them)'
  )
}

/**
 * The `fsck [--repair]` command: the report on stdout (one JSON line with `json`), its exit
 * code; a store that cannot be read (denied, missing bucket, EACCES) is one line on stderr, exit 1.
 */
export async function fsckCommand(
  store: ArtifactStore,
  o: {
    repair: boolean
    quarantineUnsigned?: boolean
    json: boolean
    stdout: { write(s: string): unknown }
    stderr: { write(s: string): unknown }
  },
): Promise<number> {
  let reports: FsckLayerReport[]
  try {
    reports = await fsck(store, o.repair, { quarantineUnsigned: o.quarantineUnsigned === true })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (!(e instanceof StoreError) && !(e instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code))) throw e
    o.stderr.write(`fsck: ${(e as Error).message.split('\n')[0]}\n`)
    return 1
  }
  if (reports.length === 0) {
    o.stderr.write(`fsck: cannot check ${store.description}\n`)
    return 2
  }
  o.stdout.write(o.json ? `${terminalJson({ type: 'fsck', repair: o.repair, layers: reports })}\n` : fsckText(reports, o.repair))
  const suspect = signatureSuspectLine(reports, o.repair, o.quarantineUnsigned === true)
  if (suspect !== undefined) o.stderr.write(`${suspect}\n`)
  return fsckExitCode(reports, o.repair)
}
