/**
 * Writing the lock while a plan runs: one entry per settled instance, each written at once and
 * atomically (lockfile.ts), so a run killed half-way keeps what it finished. If another process
 * rewrote the lock since this one last read or wrote it (its stat changed), that version's
 * entries are merged in first, so two runs on different targets do not erase each other's
 * entries; the entries this run wrote win over theirs.
 */
import { statSync } from 'node:fs'
import { readLock, withLockHeld, writeLock } from './lockfile.ts'
import type { Failure, FingerprintResult, LockEntry, LockFile, StageInstance, StoredOutput } from './types.ts'

/** Identity of the lock file's current version (inode, size, mtime), or 'none'. */
export function lockStamp(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false, bigint: true })
  return st === undefined ? 'none' : `${st.ino}:${st.size}:${st.mtimeNs}`
}

/** A lock write that failed; its Failure is reported as the instance's (see `unexpected`). */
export class LockWriteError extends Error {
  constructor(readonly failure: Failure) {
    super('lock write failed')
  }
}

export class LockWriter {
  /** Lock entries this run wrote (kept over concurrent writers' entries when merging). */
  private readonly written = new Map<string, LockEntry>()

  /** `lock` as read from `path` when its stat was `stamp`; it is updated in place. */
  constructor(
    private readonly path: string,
    readonly lock: LockFile,
    private stamp: string,
  ) {}

  /** Records one instance in the lock and rewrites the file; throws LockWriteError on failure. */
  write(inst: Pick<StageInstance, 'id' | 'stage'>, fp: FingerprintResult, outputs: Record<string, StoredOutput>): void {
    const entry: LockEntry = { stage: inst.stage, fingerprint: fp.fingerprint, breakdown: fp.breakdown, outputs }
    this.written.set(inst.id, entry)
    // Under the lock's exclusive owner file (lockfile.ts withLockHeld): no concurrent entry is lost.
    withLockHeld(this.path, () => {
      if (lockStamp(this.path) !== this.stamp) {
        const disk = readLock(this.path)
        if (disk.ok && disk.value !== undefined) this.lock.instances = { ...disk.value.instances, ...Object.fromEntries(this.written) }
      }
      this.lock.instances[inst.id] = entry
      const w = writeLock(this.path, this.lock)
      if (!w.ok) throw new LockWriteError(w.error)
      this.stamp = lockStamp(this.path)
    })
  }
}
