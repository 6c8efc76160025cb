/**
 * The one place an exception becomes a Failure value: the run's own expected errors (a failed or
 * busy lock write, a store error, a file-system error such as EACCES or ENOSPC) pass through as the
 * one-line failures they carry; anything else is `unexpected` (a bug), with its stack kept for
 * `CUSP_DEBUG=1`.
 */
import { ioFailure } from './failures.ts'
import { LockWriteError } from './lock-writer.ts'
import { LockBusyError } from './lockfile.ts'
import { StoreError } from './store/run-record-check.ts'
import type { Failure } from './types.ts'

/** An exception as a Failure value (a lock write's own Failure passes through). */
export function unexpected(e: unknown): Failure {
  if (e instanceof LockWriteError || e instanceof LockBusyError) return e.failure
  // A store's own errors (unreachable endpoint, denied access) are user-facing, not bugs.
  if (e instanceof StoreError) return e.failure
  const io = ioFailure(e) // EACCES, ENOSPC, a file in place of a directory: expected, one line
  if (io !== undefined) return io
  if (e instanceof Error)
    return e.stack !== undefined
      ? { reason: 'unexpected', message: e.message, stack: e.stack }
      : { reason: 'unexpected', message: e.message }
  return { reason: 'unexpected', message: String(e) }
}
