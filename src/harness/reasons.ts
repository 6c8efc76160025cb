/**
 * Plan reasons in words, for `status`, `why` and the run header. Each `RerunReason` kind has one
 * phrasing, chosen in an exhaustive switch so a new kind cannot be printed as nothing. Changed
 * values are shown old -> new (digests shortened to 12 hex digits, JSON values compactly), which
 * is what `why` exists to tell the user.
 */
import { stripControl } from './redact.ts'
import { unreachable, type EnvRecord, type JsonValue, type RerunReason } from './types.ts'

/**
 * One line saying what this reason means, with old -> new where something changed. Its values
 * come from the lock (untrusted: a param key or value may hold terminal controls, and
 * JSON.stringify leaves DEL and C1 raw), so the line is stripped of control characters.
 */
export function describeReason(r: RerunReason): string {
  return stripControl(phrase(r), { oneLine: true })
}

function phrase(r: RerunReason): string {
  switch (r.kind) {
    case 'no-lock-entry':
      return 'never run (no lock entry)'
    case 'param-changed':
      return `param ${r.key} changed: ${val(r.old)} -> ${val(r.new)}`
    case 'input-changed':
      return `input ${r.input} changed: ${short(r.old)} -> ${short(r.new)}`
    case 'code-changed':
      return `code changed: ${short(r.old)} -> ${short(r.new)}`
    case 'env-changed':
      return `env changed: ${envDiff(r.old, r.new)}`
    case 'output-missing':
      return `output ${r.output} missing from the store`
    case 'forced':
      return 'forced (--force)'
    case 'upstream-changed':
      return `upstream ${r.upstream} changed`
    default:
      return unreachable(r)
  }
}

/** More upstream changes than this are summarised in one line by `describeReasons`. */
export const UPSTREAMS_LISTED = 3

/**
 * The reasons of one instance as lines: each reason in words (`describeReason`), except that more
 * than UPSTREAMS_LISTED `upstream-changed` reasons become one line, `12 upstreams changed: a, b,
 * c and 9 more`, where the first of them stood. `why` and `--json` keep every upstream.
 */
export function describeReasons(reasons: readonly RerunReason[]): string[] {
  const ups = reasons.flatMap((r) => (r.kind === 'upstream-changed' ? [r.upstream] : []))
  if (ups.length <= UPSTREAMS_LISTED) return reasons.map(describeReason)
  const shown = ups.slice(0, UPSTREAMS_LISTED).join(', ')
  const summary = `${ups.length} upstreams changed: ${shown} and ${ups.length - UPSTREAMS_LISTED} more`
  const lines: string[] = []
  for (const r of reasons) {
    if (r.kind !== 'upstream-changed') lines.push(describeReason(r))
    else if (r.upstream === ups[0]) lines.push(summary)
  }
  return lines
}

/**
 * A reason without its particulars, for counting which reason dominates a stage: `never run`,
 * `param eta changed`, `input data changed`, `code changed`, `env changed`, `output missing`,
 * `forced`, `upstream changed`.
 */
export function reasonGist(r: RerunReason): string {
  return stripControl(gist(r), { oneLine: true })
}

function gist(r: RerunReason): string {
  switch (r.kind) {
    case 'no-lock-entry':
      return 'never run'
    case 'param-changed':
      return `param ${r.key} changed`
    case 'input-changed':
      return `input ${r.input.split('/')[0] ?? r.input} changed`
    case 'code-changed':
      return 'code changed'
    case 'env-changed':
      return 'env changed'
    case 'output-missing':
      return 'output missing'
    case 'forced':
      return 'forced'
    case 'upstream-changed':
      return 'upstream changed'
    default:
      return unreachable(r)
  }
}

function val(v: JsonValue | undefined): string {
  return v === undefined ? '(unset)' : JSON.stringify(v)
}

function short(d: string | undefined): string {
  return d === undefined ? '(none)' : d.length > 12 ? d.slice(0, 12) : d
}

/** Only the env fields that differ, e.g. `backend cpu -> wasm, @tensorflow/tfjs 4.21.0 -> 4.22.0`. */
export function envDiff(a: EnvRecord, b: EnvRecord): string {
  const parts: string[] = []
  if (a.backend !== b.backend) parts.push(`backend ${a.backend} -> ${b.backend}`)
  const keys = [...new Set([...Object.keys(a.versions), ...Object.keys(b.versions)])].sort()
  for (const k of keys) {
    if (a.versions[k] !== b.versions[k]) parts.push(`${k} ${a.versions[k] ?? '(none)'} -> ${b.versions[k] ?? '(none)'}`)
  }
  return parts.join(', ') || 'details identical'
}
