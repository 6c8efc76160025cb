/**
 * A stage run's private work directory: `<workRoot>/<random>/` holding `job.json`, the inputs
 * materialised read-only from the store at `inputs/<as>/<instance>/<output>`, and `out/` where
 * the stage writes its declared outputs and stage-process.ts writes `result.json`. Nothing in a
 * work directory is visible to anyone else: publishing goes through the store, so a killed or
 * failed run leaves at most an orphaned work directory, never a store or lock entry. Also the
 * byte-for-byte comparison `verify` uses.
 */
import { randomUUID } from 'node:crypto'
import { createReadStream, readdirSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { parseOwner, pidAlive } from './owner.ts'
import { chmod, lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join, relative } from 'node:path'
import { inputKey } from './planner.ts'
import type { StageInput, StageJob } from './stage-api.ts'
import type { ArtifactStore, Fingerprint, InstanceDep, JsonObject, OutputDecl, StageInstance, StoredOutput } from './types.ts'

export interface WorkDir {
  dir: string
  inputsDir: string
  outDir: string
}

/** Creates a fresh, empty work directory with an `out/` inside, named `<pid>-<random>`. */
export async function createWorkDir(workRoot: string): Promise<WorkDir> {
  const dir = join(workRoot, `${process.pid}-${randomUUID()}`)
  const outDir = join(dir, 'out')
  await mkdir(outDir, { recursive: true })
  return { dir, inputsDir: join(dir, 'inputs'), outDir }
}

/** Removes a work directory, first making read-only inputs writable again. Never throws. */
export async function removeWorkDir(dir: string): Promise<void> {
  try {
    await chmodTree(dir, 0o755, undefined)
    await rm(dir, { recursive: true, force: true })
  } catch {
    // a leftover work directory is harmless
  }
}

/**
 * Removes work directories left by harness processes that no longer exist (killed mid-run):
 * the pid in the name is not alive on this machine. Directories of live processes are kept.
 * A killed harness can leave its stage process running (a stage notices its parent's death only
 * every 200 ms, and not at all while it is blocked in a long computation), and that orphan may
 * still be writing into the directory (a `mkdir -p` of an output re-creates it): every process
 * started on the directory is stopped first, and the directory is removed only once they are
 * gone, so the removal never races a writer. A stage is found by `stage.pid` (pid and start
 * time, written by the harness right after the spawn and by the stage itself at start-up) and,
 * because a harness killed between the spawn and that write leaves no record, by its command
 * line, which names the work directory (a scan of /proc).
 */
export async function sweepWorkDirs(workRoot: string): Promise<number> {
  let removed = 0
  for (const name of await readdir(workRoot).catch(() => [] as string[])) {
    const pid = Number(name.split('-')[0])
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue
    const dir = join(workRoot, name)
    if (!(await stopOrphans(dir))) continue // still running: leave it to a later sweep
    await removeWorkDir(dir)
    removed++
  }
  return removed
}

/** Stops every process a dead harness left running on `dir`; true once none is. */
async function stopOrphans(dir: string): Promise<boolean> {
  const pids = new Set(processesOn(dir))
  const recorded = parseRecord(await readFile(join(dir, 'stage.pid'), 'utf8').catch(() => ''))
  // A record with a start time names exactly one process (a warm worker's command line does not
  // name the directory); a bare pid is trusted only with the directory on its command line.
  if (recorded !== undefined && pidAlive(recorded.pid, recorded.start) && (recorded.start !== undefined || runsIn(recorded.pid, dir))) {
    pids.add(recorded.pid)
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  // SIGKILL cannot be caught; a process is gone (or a zombie, which counts as gone) as soon as
  // the kernel has torn it down. Bounded, so a sweep can never hang on an unkillable process.
  const running = (): boolean => [...pids].some((p) => pidAlive(p))
  for (let i = 0; i < 1000 && running(); i++) await new Promise((res) => setTimeout(res, 10))
  return !running()
}

/** `stage.pid`: `{pid, host, start}` (owner.ts) or, as older harnesses wrote it, a bare pid. */
function parseRecord(text: string): { pid: number; start?: string } | undefined {
  const owner = parseOwner(text)
  if (owner !== undefined) return owner.host === hostname() ? owner : undefined
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 ? { pid } : undefined
}

/** Pids of the processes whose command line has `dir` as an argument (empty where /proc cannot be read). */
function processesOn(dir: string): number[] {
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return []
  }
  const out: number[] = []
  for (const e of entries) {
    const pid = Number(e)
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue
    if (runsIn(pid, dir, false)) out.push(pid)
  }
  return out
}

/** Whether process `pid` was started on the work directory `dir` (its command line names it); `unknown` where /proc cannot tell. */
function runsIn(pid: number, dir: string, unknown = true): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dir)
  } catch (e) {
    return unknown && (e as NodeJS.ErrnoException).code !== 'ENOENT'
  }
}

/** The input that could not be materialised (missing from the store, or failed its digest check). */
export interface MissingInput {
  dep: InstanceDep
}

/**
 * Materialises every dep of `instance` from the store, read-only, and returns the inputs for
 * the job, or the first dep whose object the store does not have intact (the store discards a
 * corrupt object on read, so its producer must run again).
 */
export async function materialiseInputs(
  store: ArtifactStore,
  wd: WorkDir,
  instance: StageInstance,
  outputsOf: (instance: string) => Record<string, StoredOutput> | undefined,
  paramsOf: (instance: string) => JsonObject,
  fingerprintOf?: (instance: string) => Fingerprint | undefined,
): Promise<{ ok: true; inputs: Record<string, StageInput[]> } | { ok: false; missing: MissingInput }> {
  const inputs: Record<string, StageInput[]> = {}
  for (const dep of instance.deps) {
    const out = outputsOf(dep.instance)?.[dep.output]
    const path = join(wd.inputsDir, inputKey(dep))
    await mkdir(join(wd.inputsDir, dep.as, dep.instance), { recursive: true })
    const got =
      out === undefined ? false : out.kind === 'dir' ? await store.getDir(out.digest, path) : await store.getFile(out.digest, path)
    if (!got) return { ok: false, missing: { dep } }
    const fingerprint = instance.provenance ? fingerprintOf?.(dep.instance) : undefined
    ;(inputs[dep.as] ??= []).push({
      instance: dep.instance,
      output: dep.output,
      params: paramsOf(dep.instance),
      path,
      ...(fingerprint !== undefined ? { fingerprint } : {}),
    })
  }
  await chmodTree(wd.inputsDir, 0o555, 0o444).catch(() => undefined)
  return { ok: true, inputs }
}

/** Writes `job.json` for stage-process.ts. */
export async function writeJob(wd: WorkDir, job: StageJob): Promise<void> {
  await writeFile(join(wd.dir, 'job.json'), JSON.stringify(job, null, 2))
}

/**
 * Compares what the stage left in `out/` with what it declared: each declared output present
 * with its declared kind, plus `result.json`, and nothing else.
 */
export async function checkOutputs(
  outDir: string,
  declared: readonly OutputDecl[],
  resultName: string,
): Promise<{ missing: string[]; unexpected: string[] }> {
  const want = new Map<string, 'file' | 'dir'>(declared.map((o) => [o.name, o.kind]))
  want.set(resultName, 'file')
  const missing: string[] = []
  const unexpected: string[] = []
  const present = new Set(await readdir(outDir))
  for (const [name, kind] of want) {
    if (!present.has(name)) {
      missing.push(name)
      continue
    }
    const st = await lstat(join(outDir, name))
    const isKind = kind === 'dir' ? st.isDirectory() : st.isFile()
    if (!isKind) missing.push(`${name} (a ${kind})`)
  }
  for (const name of present) if (!want.has(name)) unexpected.push(name)
  return { missing: missing.sort(), unexpected: unexpected.sort() }
}

/** Lowercase hex sha256 of a file's bytes, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** Relative paths of every file under `dir`, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else out.push(relative(dir, p))
    }
  }
  await walk(dir)
  return out.sort()
}

/** Paths (relative, under `label`) where two directory trees differ in listing or bytes. */
export async function diffTrees(a: string, b: string, label: string): Promise<string[]> {
  const [fa, fb] = await Promise.all([listFiles(a), listFiles(b)])
  const diffs: string[] = []
  const all = [...new Set([...fa, ...fb])].sort()
  const inA = new Set(fa)
  const inB = new Set(fb)
  for (const f of all) {
    if (!inA.has(f) || !inB.has(f)) diffs.push(`${label}/${f}`)
    else if (!(await readFile(join(a, f))).equals(await readFile(join(b, f)))) diffs.push(`${label}/${f}`)
  }
  return diffs
}

/** Sets modes under `path`; files are left alone when `fileMode` is undefined (they may be links into the store). */
async function chmodTree(path: string, dirMode: number, fileMode: number | undefined): Promise<void> {
  const st = await lstat(path).catch(() => undefined)
  if (st === undefined || st.isSymbolicLink()) return
  if (st.isDirectory()) {
    await chmod(path, 0o755)
    for (const e of await readdir(path)) await chmodTree(join(path, e), dirMode, fileMode)
    await chmod(path, dirMode)
  } else if (fileMode !== undefined) {
    await chmod(path, fileMode)
  }
}
