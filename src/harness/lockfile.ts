/**
 * `pipeline.lock`: what was observed when each instance last ran or was restored (fingerprint,
 * its full breakdown, output digests). Read with validation against `schemas/lock.schema.json`
 * (ajv, compiled once and cached on disk by validator-cache.ts) plus one rule JSON Schema cannot state: each entry's fingerprint must be the hash of its
 * breakdown, so a hand-edited lock cannot pass for an observed one. Bytes that passed both checks
 * before are not checked again (`knownGood`: keyed by their sha256, so any edit means a full
 * check). Written atomically (temp
 * file in the same directory, fsync, rename) with keys sorted recursively and 2-space
 * indentation plus a trailing newline, so the same lock is always the same bytes and diffs in
 * review show only what changed. Synchronous: the lock is small and read once per command.
 */
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { me, ownerAlive, parseOwner, sleepSync } from './owner.ts'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ErrorObject, ValidateFunction } from 'ajv'
import { sha256Hex, sortKeysDeep } from './canonical-json.ts'
import { ioFailure } from './failures.ts'
import { computeFingerprint } from './fingerprint.ts'
import { unsafeNameReason } from './safe-name.ts'
import { RECORD_LIMITS } from './store/run-record-check.ts'
import { fail, ok, type Failure, type LockFile, type Result } from './types.ts'
import { cachedValidator } from './validator-cache.ts'

const SCHEMA_URL = new URL('../../schemas/lock.schema.json', import.meta.url)
let validator: ValidateFunction | undefined
let schemaText: string | undefined

const lockSchemaText = (): string => (schemaText ??= readFileSync(SCHEMA_URL, 'utf8'))

function validate(): ValidateFunction {
  if (validator === undefined) {
    const text = lockSchemaText()
    validator = cachedValidator(text, JSON.parse(text) as object, 'draft-07', { allErrors: true, strict: true })
  }
  return validator
}

/**
 * Which lock text last passed the full check, per lock path: `<repo>/.cusp/verified-locks/<sha256
 * of the path>` holds the sha256 of (check format, lock schema, lock text). A no-op rerun reads
 * an unchanged lock, and re-hashing every entry's breakdown is most of what reading it costs; a
 * lock whose bytes changed in any way (a hand edit, another run) has another digest and gets the
 * full check. Best effort: a marker that cannot be read or written means the full check.
 */
const VERIFIED_DIR = fileURLToPath(new URL('../../.cusp/verified-locks/', import.meta.url))
/** Bump when checkLock's rules change, so that no lock passes on an older check. */
const CHECK_FORMAT = 2

const markerPath = (lockPath: string): string => join(VERIFIED_DIR, sha256Hex(resolve(lockPath)))
const textDigest = (text: string): string => sha256Hex(`${CHECK_FORMAT}\n${lockSchemaText()}\n${text}`)

function knownGood(lockPath: string, text: string): boolean {
  try {
    return readFileSync(markerPath(lockPath), 'utf8') === textDigest(text)
  } catch {
    return false
  }
}

function markGood(lockPath: string, text: string): void {
  const marker = markerPath(lockPath)
  const tmp = `${marker}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`
  try {
    mkdirSync(VERIFIED_DIR, { recursive: true })
    writeFileSync(tmp, textDigest(text))
    renameSync(tmp, marker)
  } catch {
    rmSync(tmp, { force: true })
  }
}

/**
 * Read and validate a lock. A missing file is `ok(undefined)` (nothing has run yet); unreadable
 * or invalid JSON, a schema violation or a fingerprint that does not match its breakdown is a
 * `lock-invalid` failure naming the file and the location (line:column, or the JSON path).
 */
export function readLock(path: string): Result<LockFile | undefined, Failure> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(undefined)
    return fail(invalid(path, `cannot read: ${(e as Error).message}`))
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (e) {
    return fail(invalid(path, `not valid JSON${jsonPosition(text, (e as Error).message)}: ${(e as Error).message}`))
  }
  if (knownGood(path, text)) return ok(data as LockFile)
  const problem = checkLock(data)
  if (problem !== undefined) return fail(invalid(path, problem))
  markGood(path, text)
  return ok(data as LockFile)
}

/**
 * Write `lock` to `path` atomically, in the stable serialisation (`serialiseLock`). An invalid
 * lock is refused (`lock-invalid`) rather than written; an I/O error is `unexpected`.
 */
export function writeLock(path: string, lock: LockFile): Result<void, Failure> {
  const problem = checkLock(lock)
  if (problem !== undefined) return fail(invalid(path, `refusing to write an invalid lock: ${problem}`))
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`)
  try {
    const fd = openSync(tmp, 'w', 0o644)
    try {
      writeSync(fd, serialiseLock(lock))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
    syncDir(dirname(path))
    return ok(undefined)
  } catch (e) {
    try {
      unlinkSync(tmp)
    } catch {
      // already gone or never created
    }
    // A full disk or a read-only directory is expected: one line naming the lock (the old one is kept, the rename never happened).
    return fail(
      ioFailure(e, { op: 'write', path, subject: 'the lock file' }) ?? {
        reason: 'unexpected',
        message: `cannot write lock file ${path}: ${(e as Error).message}`,
      },
    )
  }
}

/** The lock's owner file stayed held by a live process: a one-line `busy` failure. */
export class LockBusyError extends Error {
  constructor(readonly failure: Failure) {
    super('message' in failure ? failure.message : failure.reason)
  }
}

/** How long `withLockHeld` waits for a live holder before giving up (ms). */
const HOLD_WAIT_MS = 120_000

/**
 * Runs `fn` (a read-merge-write of the lock) while holding `<path>.owner` exclusively, so two
 * runs writing one lock never lose each other's entries. The owner file is created atomically
 * (written under a temporary name, then hard-linked into place); one left by a dead process, or
 * unreadable, is taken over. Throws after waiting HOLD_WAIT_MS for a live holder.
 */
export function withLockHeld<T>(path: string, fn: () => T): T {
  const ownerPath = `${path}.owner`
  const text = `${JSON.stringify(me())}\n`
  const tmp = join(dirname(path), `.${basename(ownerPath)}.${process.pid}-${randomBytes(6).toString('hex')}`)
  writeFileSync(tmp, text)
  const until = Date.now() + HOLD_WAIT_MS
  try {
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      try {
        linkSync(tmp, ownerPath)
        break
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      }
      let held: string | undefined
      try {
        held = readFileSync(ownerPath, 'utf8')
      } catch {
        continue // released meanwhile
      }
      const owner = parseOwner(held)
      if (owner === undefined || !ownerAlive(owner)) {
        const aside = `${ownerPath}.stale-${process.pid}-${randomBytes(6).toString('hex')}`
        try {
          renameSync(ownerPath, aside)
          if (readFileSync(aside, 'utf8') !== held) linkSync(aside, ownerPath) // a live one after all: put it back
          unlinkSync(aside)
        } catch {
          // another run moved it first
        }
        continue
      }
      if (Date.now() > until) {
        throw new LockBusyError({
          reason: 'busy',
          instance: basename(path),
          message: `${ownerPath} has been held by process ${owner.pid} on ${owner.host} for over ${HOLD_WAIT_MS / 1000} s; if no cusp run is active there, delete it`,
        })
      }
      sleepSync(wait)
    }
  } finally {
    try {
      unlinkSync(tmp)
    } catch {
      // gone
    }
  }
  try {
    return fn()
  } finally {
    try {
      if (readFileSync(ownerPath, 'utf8') === text) unlinkSync(ownerPath)
    } catch {
      // already gone
    }
  }
}

/** The lock's bytes: keys sorted recursively, 2-space indentation, trailing newline. */
export function serialiseLock(lock: LockFile): string {
  return `${JSON.stringify(sortKeysDeep(lock), null, 2)}\n`
}

/** The first problem with `data` as a lock (schema, then fingerprint consistency), or undefined. */
function checkLock(data: unknown): string | undefined {
  const v = validate()
  if (!v(data)) return (v.errors ?? []).slice(0, 5).map(describeError).join('; ')
  const lock = data as LockFile
  for (const [id, entry] of Object.entries(lock.instances)) {
    const where = `at ${pathOf(['instances', id])}`
    if (entry.breakdown.stage !== entry.stage) {
      return `${where}: breakdown.stage '${entry.breakdown.stage}' differs from stage '${entry.stage}'`
    }
    // The lock comes from a repository like any source file, and its output names become paths
    // (restore, publish): the same rule as a stored run record's names.
    const names = Object.keys(entry.outputs)
    if (names.length > RECORD_LIMITS.outputs) return `${where}.outputs: ${names.length} outputs (at most ${RECORD_LIMITS.outputs})`
    for (const name of names) {
      const why = unsafeNameReason(name)
      if (why !== undefined) return `${where}.outputs: output name ${JSON.stringify(name.slice(0, 80))} ${why}`
    }
    const actual = fingerprintOf(entry.breakdown)
    if (actual !== entry.fingerprint) {
      return `${where}.fingerprint: ${entry.fingerprint} is not the hash of its breakdown (${actual}); was the lock edited by hand?`
    }
  }
  return undefined
}

/**
 * Fingerprints already computed, by breakdown object: the executor rewrites the lock after every
 * instance, and re-hashing every unchanged entry each time would make a run quadratic. Entries
 * are replaced, never mutated in place (a mutated breakdown would be re-checked only on read).
 */
const verified = new WeakMap<object, string>()

function fingerprintOf(breakdown: LockFile['instances'][string]['breakdown']): string {
  let fp = verified.get(breakdown)
  if (fp === undefined) verified.set(breakdown, (fp = computeFingerprint(breakdown).fingerprint))
  return fp
}

function invalid(file: string, message: string): Failure {
  return { reason: 'lock-invalid', file, message: `${message} (fix it, or delete the lock file: the next run rebuilds it)` }
}

function describeError(e: ErrorObject): string {
  const segments = e.instancePath === '' ? [] : e.instancePath.slice(1).split('/').map(unescapePointer)
  const params = e.params as { additionalProperty?: string; missingProperty?: string }
  let what = e.message ?? 'is invalid'
  if (params.additionalProperty !== undefined) what = `has unknown property '${params.additionalProperty}'`
  if (params.missingProperty !== undefined) what = `is missing required property '${params.missingProperty}'`
  return `at ${segments.length === 0 ? '(top level)' : pathOf(segments)}: ${what}`
}

function unescapePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~')
}

/** `instances["train@eta=0.1"].outputs.model`: dotted where a key is an identifier, bracketed otherwise. */
export function pathOf(segments: string[]): string {
  return segments.map((s, i) => (/^[A-Za-z_$][\w$-]*$/.test(s) ? (i === 0 ? s : `.${s}`) : `[${JSON.stringify(s)}]`)).join('')
}

/** ` at line L column C` from a JSON.parse message's "position N", when it has one. */
function jsonPosition(text: string, message: string): string {
  const m = /position (\d+)/.exec(message)
  if (m === null) return ''
  const pos = Number(m[1])
  const before = text.slice(0, pos).split('\n')
  return ` at line ${before.length} column ${(before.at(-1)?.length ?? 0) + 1}`
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic.
  }
}
