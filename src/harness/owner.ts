/**
 * Who owns a directory or a file on this machine: a pid plus, on Linux, the process's start
 * time (field 22 of /proc/<pid>/stat), so a pid reused by an unrelated process after the owner
 * died is not mistaken for the owner. Used by the resume-directory lock (resume-dir.ts) and
 * the sweep of killed harnesses' work directories (workdir.ts).
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'

/** A process on a host, as recorded in an ownership file. */
export interface Owner {
  pid: number
  host: string
  /** /proc start time in clock ticks since boot; absent where /proc is not available. */
  start?: string
}

/** The start time of `pid` from /proc, or undefined (no /proc, or no such process). */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19]
  } catch {
    return undefined
  }
}

/** The state letter of `pid` from /proc (R, S, D, Z, ...), or undefined. */
function stateOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]
  } catch {
    return undefined
  }
}

/** This process as an owner. */
export function me(): Owner {
  const start = startTimeOf(process.pid)
  return { pid: process.pid, host: hostname(), ...(start !== undefined ? { start } : {}) }
}

/**
 * Whether `pid` runs (a zombie, dead but not yet reaped by its parent, does not), and, when
 * `start` is given and /proc can tell, is the same process that recorded it.
 */
export function pidAlive(pid: number, start?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const state = stateOf(pid)
  if (state === 'Z' || state === 'X') return false
  if (start !== undefined) {
    const now = startTimeOf(pid)
    if (now !== undefined && now !== start) return false
  }
  return true
}

/** Whether `o` is alive; an owner on another host cannot be checked and counts as alive. */
export function ownerAlive(o: Owner): boolean {
  if (o.host !== hostname()) return true
  return pidAlive(o.pid, o.start)
}

/** Parses an ownership file's text; undefined when it is not one (corrupt, truncated, wrong types). */
export function parseOwner(text: string): Owner | undefined {
  if (text.length > 4096) return undefined
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof v !== 'object' || v === null) return undefined
  const { pid, host, start } = v as Record<string, unknown>
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0 || typeof host !== 'string' || host.length > 255) return undefined
  if (start !== undefined && typeof start !== 'string') return undefined
  return { pid, host, ...(start !== undefined ? { start } : {}) }
}

/** Blocks the thread for `ms` (for short lock retries in synchronous code). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}
