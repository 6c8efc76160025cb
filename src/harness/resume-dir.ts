/**
 * The resume directory of a fingerprint (`.cusp/resume/<fingerprint>/`), where a long stage keeps
 * state to continue after a kill, is owned by one process at a time. Ownership is an advisory
 * lock file beside it, `<fingerprint>.owner`, holding the owner's pid, host and process start
 * time (owner.ts), created atomically (written under a temporary name, then hard-linked into
 * place, which fails when the name exists), so a reader never sees a half-written owner. A
 * second run of the same instance finds a live owner and fails with one line naming it; a lock
 * left by a killed run (its owner dead, or the file corrupt) is taken over. The directory is
 * removed only once the harness has published the instance's outputs (`release({ removeDir })`);
 * after a failure or a kill it stays for the next run to resume from.
 */
import { randomUUID } from 'node:crypto'
import { link, mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { me, ownerAlive, parseOwner, type Owner } from './owner.ts'

/** A claimed resume directory. */
export interface ResumeClaim {
  /** The directory the stage may create and resume from. */
  dir: string
  /** Gives the claim up; `removeDir` also deletes the directory (after a publish). Never throws. */
  release(o: { removeDir: boolean }): Promise<void>
}

/** Why a resume directory could not be claimed: a live owner, described in one line. */
export interface ResumeBusy {
  owner: Owner
  message: string
}

/** Claims `<root>/<fingerprint>` for this process; `instance` names it in the busy message. */
export async function claimResumeDir(
  root: string,
  fingerprint: string,
  instance: string,
): Promise<{ ok: true; value: ResumeClaim } | { ok: false; error: ResumeBusy }> {
  await mkdir(root, { recursive: true })
  const dir = join(root, fingerprint)
  const lockPath = join(root, `${fingerprint}.owner`)
  const mine = me()
  const text = `${JSON.stringify(mine)}\n`
  for (let attempt = 0; attempt < 8; attempt++) {
    const tmp = join(root, `.${fingerprint}.owner.${process.pid}.${randomUUID()}`)
    await writeFile(tmp, text)
    try {
      await link(tmp, lockPath)
      return { ok: true, value: claim(dir, lockPath, text) }
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    } finally {
      await unlink(tmp).catch(() => undefined)
    }
    const held = await readFile(lockPath, 'utf8').catch(() => undefined)
    if (held === undefined) continue // released meanwhile: try again
    const owner = parseOwner(held)
    if (owner !== undefined && ownerAlive(owner)) {
      const where = owner.pid === process.pid ? 'another run in this process' : `process ${owner.pid} on ${owner.host}`
      return {
        ok: false,
        error: {
          owner,
          message: `${instance} is already being run by ${where} (it owns ${dir}); wait for that run to finish, or stop it and run again`,
        },
      }
    }
    await takeOver(lockPath, held)
  }
  throw new Error(`could not claim ${lockPath}: it kept changing under concurrent runs`)
}

/**
 * Moves a stale lock (dead owner, or unreadable) aside. If what was moved is not the stale text
 * read before (a concurrent run took over first and wrote its own), it is put back.
 */
async function takeOver(lockPath: string, staleText: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${randomUUID()}`
  try {
    await rename(lockPath, aside)
  } catch {
    return // someone else moved it first
  }
  const moved = await readFile(aside, 'utf8').catch(() => '')
  if (moved !== staleText) await link(aside, lockPath).catch(() => undefined)
  await unlink(aside).catch(() => undefined)
}

function claim(dir: string, lockPath: string, text: string): ResumeClaim {
  let released = false
  return {
    dir,
    async release({ removeDir }) {
      if (released) return
      released = true
      if (removeDir) await rm(dir, { recursive: true, force: true }).catch(() => undefined)
      // Only our own lock: never remove one a later owner wrote after ours was taken over.
      const now = await readFile(lockPath, 'utf8').catch(() => undefined)
      if (now === text) await unlink(lockPath).catch(() => undefined)
    },
  }
}

/**
 * Removes resume directories that are of no further use: no live owner, and their fingerprint
 * already published (`published(fp)`, e.g. the store has its run record). A run killed after
 * publishing but before removing its resume directory leaves one, and the next run of that
 * instance finds it fresh and never claims it. Unpublished ones are kept for a resume.
 */
export async function sweepResumeDirs(root: string, published: (fingerprint: string) => Promise<boolean>): Promise<number> {
  let removed = 0
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue
    const claimed = await claimResumeDir(root, name, name).catch(() => undefined)
    if (claimed === undefined || !claimed.ok) continue
    const done = await published(name).catch(() => false)
    await claimed.value.release({ removeDir: done })
    if (done) removed++
  }
  // Owner files whose directory is gone and whose owner is dead (a kill between the two removals).
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const m = /^([0-9a-f]{64})\.owner$/.exec(name)
    if (m === null || (await stat(join(root, m[1]!)).catch(() => undefined)) !== undefined) continue
    const claimed = await claimResumeDir(root, m[1]!, m[1]!).catch(() => undefined)
    if (claimed?.ok === true) await claimed.value.release({ removeDir: false })
  }
  return removed
}
