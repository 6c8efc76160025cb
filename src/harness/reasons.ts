/**
 * Plan reasons in words, for `status`, `why` and the run header. Each `RerunReason` kind has one
 * phrasing, chosen in an exhaustive switch so a new kind cannot be printed as nothing. Changed
 * values are shown old -> new (digests shortened to 12 hex digits, JSON values compactly), which
 * is what `why` exists to tell the user.
 */
import { unreachable, type EnvRecord, type JsonValue, type RerunReason } from './types.ts'

/** One line saying what this reason means, with old -> new where something changed. */
export function describeReason(r: RerunReason): string {
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
