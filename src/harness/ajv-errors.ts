/**
 * Turns ajv's validation errors into what a user needs: the path of the offending node (as
 * segments, so the analyzer can find it in the YAML), whether to point at its key or its
 * value, and one sentence saying what is wrong and what to do. Used for the pipeline schema
 * and for every stage's params schema. Requires ajv's `verbose: true` (for `data` and
 * `parentSchema`).
 */
import type { ErrorObject } from 'ajv'
import type { PathSegment } from './source-location.ts'
import { pointerToPath } from './source-location.ts'
import { didYouMean } from './suggest.ts'

/** One ajv error, located and worded for a user: what is wrong, and what to do about it. */
export interface DescribedError {
  path: PathSegment[]
  at: 'key' | 'value'
  problem: string
  hint: string
}

/** Short rendering of a value for "(got ...)": JSON, truncated. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (Array.isArray(v)) return v.length === 0 ? 'an empty list' : 'a list'
  if (typeof v === 'object' && v !== null) return Object.keys(v).length === 0 ? 'an empty mapping' : 'a mapping'
  const s = JSON.stringify(v)
  return s.length > 40 ? `${s.slice(0, 37)}...` : s
}

/** A schema's own `description`, used to word rules that a bare pattern would not explain. */
function describedBy(schema: unknown): string | undefined {
  const d = (schema as { description?: unknown } | undefined)?.description
  return typeof d === 'string' ? d : undefined
}

function keysOf(schema: unknown): string[] {
  const props = (schema as { properties?: Record<string, unknown> } | undefined)?.properties
  return props ? Object.keys(props) : []
}

/**
 * Describe every error, dropping ajv's wrapper errors that only repeat an inner one
 * (`propertyNames`, `if`) and exact duplicates. Order follows ajv's.
 */
export function describeAjvErrors(errors: readonly ErrorObject[]): DescribedError[] {
  const out: DescribedError[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    const d = describeOne(e)
    if (d === undefined) continue
    const key = `${d.path.join('\u0000')}\u0001${d.problem}`
    if (seen.has(key)) continue
    seen.add(key)
    out.push(d)
  }
  return out
}

function describeOne(e: ErrorObject): DescribedError | undefined {
  // Digit-only segments are list indices (a map key "0" is still found: lookups compare text).
  const path: PathSegment[] = pointerToPath(e.instancePath).map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s))
  const got = `(got ${describeValue(e.data)})`
  const p = e.params as Record<string, unknown>
  const propertyName = (e as { propertyName?: string }).propertyName
  if (propertyName !== undefined) {
    // An error inside `propertyNames`: about the key itself.
    return {
      path: [...path, propertyName],
      at: 'key',
      problem: `name ${JSON.stringify(propertyName)} is not allowed: ${describedBy(e.parentSchema) ?? `it ${e.message ?? 'is invalid'}`}`,
      hint: 'Rename it.',
    }
  }
  switch (e.keyword) {
    case 'propertyNames':
    case 'if':
      return undefined
    case 'additionalProperties': {
      const name = String(p['additionalProperty'])
      const allowed = keysOf(e.parentSchema)
      const hint = allowed.length > 0 ? ` Allowed keys here: ${allowed.join(', ')}.` : ''
      return {
        path: [...path, name],
        at: 'key',
        problem: `unknown key ${JSON.stringify(name)}`,
        hint: `Remove it or fix its spelling.${didYouMean(name, allowed)}${hint}`,
      }
    }
    case 'required': {
      const name = String(p['missingProperty'])
      return { path: [...path, name], at: 'key', problem: `missing required key ${JSON.stringify(name)}`, hint: 'Add it.' }
    }
    case 'type':
      return { path, at: 'value', problem: `must be ${aOrAn(String(p['type']))} ${got}`, hint: `Write ${aOrAn(String(p['type']))} here.` }
    case 'const':
      return {
        path,
        at: 'value',
        problem: `must be ${JSON.stringify(p['allowedValue'])} ${got}`,
        hint: `Change it to ${JSON.stringify(p['allowedValue'])}.`,
      }
    case 'enum': {
      const allowed = (p['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')
      return { path, at: 'value', problem: `must be one of ${allowed} ${got}`, hint: 'Use one of those.' }
    }
    case 'minProperties':
      return {
        path,
        at: 'value',
        problem: `must not be empty ${got}`,
        hint: `Add at least ${String(p['limit'])} entr${p['limit'] === 1 ? 'y' : 'ies'} or remove it.`,
      }
    case 'minItems':
      return { path, at: 'value', problem: `needs at least ${String(p['limit'])} item(s) ${got}`, hint: 'Add items or remove it.' }
    case 'uniqueItems':
      return {
        path,
        at: 'value',
        problem: `has duplicate items (positions ${String(p['j'])} and ${String(p['i'])})`,
        hint: 'Remove the duplicate.',
      }
    default:
      return { path, at: 'value', problem: `${e.message ?? 'is invalid'} ${got}`, hint: 'Fix the value.' }
  }
}

function aOrAn(type: string): string {
  const words = type.split(',').map((t) => (t === 'object' ? 'mapping' : t === 'array' ? 'list' : t))
  const phrase = words.join(' or ')
  return /^[aeiou]/.test(phrase) ? `an ${phrase}` : `a ${phrase}`
}
