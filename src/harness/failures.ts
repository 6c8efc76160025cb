/**
 * The one place a `Failure` becomes text. Each message says what is wrong, where (for
 * pipeline errors `file:line:column: path:`, so editors can jump there) and what to do.
 * The switch is exhaustive: adding a variant to `Failure` without a case here is a type
 * error, so no failure can ever print as `[object Object]`.
 */
import { printable } from './redact.ts'
import { unsafeNameReason } from './safe-name.ts'
import { didYouMean } from './suggest.ts'
import type { Failure, SourceLocation } from './types.ts'
import { unreachable } from './types.ts'

function at(l: SourceLocation): string {
  return l.path === '(document)' ? `${l.file}:${l.line}:${l.column}:` : `${l.file}:${l.line}:${l.column}: ${l.path}:`
}

function list(items: readonly string[]): string {
  return items.length === 0 ? '(none)' : items.join(', ')
}

/**
 * One failure as a user-facing message (may span lines, e.g. a stage's stderr tail). What came
 * from outside (a stage's output, a record's field, a file's content) is redacted, stripped of
 * terminal control characters and clipped (redact.ts).
 */
export function formatFailure(f: Failure): string {
  return printable(describe(f), [], 8000)
}

function describe(f: Failure): string {
  switch (f.reason) {
    case 'yaml-syntax':
      return `${at(f.location)} invalid YAML: ${f.message}. Fix the syntax at this position.`
    case 'schema-violation':
      return `${at(f.location)} ${f.message}`
    case 'params-invalid':
      return `${at(f.location)} ${f.message}`
    case 'unknown-stage-impl':
      return `${at(f.location)} stage implementation ${JSON.stringify(f.impl)} not found: stages/${f.impl}/index.ts does not exist. Create it, or set impl: to an existing directory under stages/.`
    case 'bad-stage-schema':
      return `${at(f.location)} params schema ${f.file} ${f.message}. Every stage implementation needs a JSON Schema for its params there.`
    case 'dangling-dep':
      return `${at(f.location)} dep of stage ${f.from} on ${JSON.stringify(f.to)}: ${f.message}`
    case 'duplicate-instance-id':
      return `${at(f.location)} duplicate instance ${f.id}: this matrix value repeats another (as rendered in ids). Remove the duplicate.`
    case 'cycle':
      return `${at(f.location)} dependency cycle ${f.trail.join(' -> ')} (each stage depends on the next). Remove one of these deps.`
    case 'bad-matrix':
      return `${at(f.location)} ${f.message}`
    case 'unsafe-path':
      return `${at(f.location)} ${JSON.stringify(f.value)} is not a safe name: it ${unsafeNameReason(f.value) ?? 'is not allowed'}. Names become path components; use letters, digits, '.', '_', '-' (starting with a letter or digit, no '..').`
    case 'unknown-profile':
      return `${at(f.location)} unknown profile ${JSON.stringify(f.profile)}; profiles defined: ${list(f.known)}.${didYouMean(f.profile, f.known)} Use one of those or add it under profiles:.`
    case 'bad-override':
      return `--set ${f.override}: ${f.message}${/[.?!]$/.test(f.message) ? '' : '.'} Write --set stage.param=value.`
    case 'unknown-target':
      return `unknown stage or instance ${JSON.stringify(f.target)}; known: ${list(f.known)}.`
    case 'usage':
      return f.message
    case 'lock-invalid':
      return `${f.file}: invalid lock file: ${f.message}. Restore it from version control or delete it to rebuild it.`
    case 'stage-failed': {
      const how = f.signal !== null ? `was killed by ${f.signal}` : `exited with code ${String(f.exitCode)}`
      const tail = f.stderrTail.trimEnd()
      return `stage instance ${f.instance} ${how}.${tail === '' ? ' It wrote nothing to stderr.' : ` Last lines of its stderr:\n${tail}`}`
    }
    case 'timed-out': {
      const tail = f.stderrTail.trimEnd()
      return `stage instance ${f.instance} ran past its time limit of ${duration(f.limit.seconds)} (${f.limit.from}) and was stopped by the ${f.executor} executor. Raise the stage's timeout: in pipeline.yaml, or pass --job-timeout SECONDS.${tail === '' ? '' : ` Last lines of its output:\n${tail}`}`
    }
    case 'outputs-mismatch': {
      const parts: string[] = []
      if (f.missing.length > 0) parts.push(`did not write declared output(s) ${list(f.missing)}`)
      if (f.unexpected.length > 0) parts.push(`wrote undeclared output(s) ${list(f.unexpected)}`)
      return `stage instance ${f.instance} ${parts.join(' and ')}. Make the stage write exactly the outputs declared in pipeline.yaml.`
    }
    case 'result-invalid':
      return `stage instance ${f.instance} wrote an invalid result: ${f.message}. Fix the stage so its result matches its result schema.`
    case 'digest-mismatch':
      return `stage instance ${f.instance}: ${f.path} has digest ${f.expected.slice(0, 12)}... expected, ${f.actual.slice(0, 12)}... found. The stored copy is corrupt or the output changed; rerun the stage.`
    case 'busy':
      return `${f.message}.`
    case 'store-error':
      return `artifact store error: ${f.message}`
    case 'io-error': {
      const what = f.subject !== undefined ? `${f.subject} ${f.path}` : f.path
      const debug = f.stack !== undefined && process.env.CUSP_DEBUG === '1' ? `\n${f.stack}` : ''
      return `cannot ${f.op} ${what}: ${IO_ERRORS[f.code] ?? f.code} (${f.code}). ${IO_ADVICE[f.code] ?? 'Fix it there, then run again.'}${debug}`
    }
    case 'unexpected':
      // The stack only on request: it is for a bug report, not for the person running the pipeline.
      return `internal error (a bug in cusp, please report it): ${f.message}${f.stack !== undefined && process.env.CUSP_DEBUG === '1' ? `\n${f.stack}` : ''}`
    default:
      return unreachable(f)
  }
}

/** What each expected file-system error code means, for `ioFailure`. */
const IO_ERRORS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted (an immutable or protected file?)',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a file is where a directory should be',
  EISDIR: 'a directory is where a file should be',
  EEXIST: 'something else is already there',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'path too long',
}

/** What to do about each expected file-system error. */
const IO_ADVICE: Record<string, string> = {
  EACCES: 'Make it writable for this user (or give --store / the project another place), then run again.',
  EPERM: 'Make it writable for this user (or give --store / the project another place), then run again.',
  EROFS: 'Give --store / the project a writable place, then run again.',
  ENOSPC: 'Free space on that file system, then run again.',
  EDQUOT: 'Free space or raise the quota, then run again.',
  ENOTDIR: 'Move the file that is in the way, or choose another path, then run again.',
  EISDIR: 'Move the directory that is in the way, or choose another path, then run again.',
  EEXIST: 'Move what is in the way (a file where a directory should be?), or choose another path, then run again.',
  EMFILE: 'Raise the open-file limit (ulimit -n) or pass a lower --jobs, then run again.',
  ENAMETOOLONG: 'Choose a shorter path, then run again.',
}

/**
 * An expected file-system error (permission, space, a file in place of a directory) as a
 * one-line `io-error` naming the operation and the path (`o` overrides what the error says:
 * the path a user knows, e.g. the lock file rather than its temporary file); undefined for
 * anything else (a bug). `stack: false` leaves the stack out (the caller prints it itself).
 */
export function ioFailure(e: unknown, o: { op?: string; path?: string; subject?: string; stack?: false } = {}): Failure | undefined {
  const err = e as NodeJS.ErrnoException
  const code = typeof err?.code === 'string' ? err.code : undefined
  if (code === undefined || IO_ERRORS[code] === undefined) return undefined
  const path = o.path ?? (typeof err.path === 'string' && err.path !== '' ? err.path : '(a path)')
  return {
    reason: 'io-error',
    op: o.op ?? err.syscall ?? 'write',
    path,
    code,
    ...(o.subject !== undefined ? { subject: o.subject } : {}),
    ...(o.stack !== false && typeof err.stack === 'string' ? { stack: err.stack } : {}),
  }
}

/** Several failures, one message per line group, in the given order. */
export function formatFailures(failures: readonly Failure[]): string {
  return failures.map(formatFailure).join('\n')
}

/** Seconds as the shortest exact reading: 90 s, 45 min, 6 h. */
function duration(s: number): string {
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`
  return `${s} s`
}
