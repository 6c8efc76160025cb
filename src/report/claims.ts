/**
 * The claims file (`claims.yaml` at the project root): the paper's claims, each with its sentence,
 * the measured quantity, the deciding test (in words and as `params` thresholds), and the paper's
 * reported value. Parsed from text here (pure) and checked field by field, so a malformed file is a
 * message naming the claim and field, not a crash inside the verdict logic.
 */
import { parse } from 'yaml'
import type { JsonObject, Result } from '../harness/types.ts'
import { fail, ok } from '../harness/types.ts'

/** The claim ids the verdict logic knows (src/report/verdicts.ts). */
export const CLAIM_IDS = ['C1', 'C2', 'C3', 'C4'] as const
export type ClaimId = (typeof CLAIM_IDS)[number]

/** One claim as written in claims.yaml. */
export interface Claim {
  id: ClaimId
  title: string
  section: string
  sentence: string
  quantity: string
  test: string
  paper_value: string
  /** Thresholds of the test (numbers, or strings such as an activation name). */
  params: JsonObject
}

/**
 * The one rule, shared by every claim and Table 1, for what is NOT the edge of stability: the
 * untrained network and the initial transient (claims.yaml `transient:`). A probe is transient when
 * t = n eta < t_min, or when its run began above the edge (rho_1 >= catapult_rho at the run's first
 * probe) and rho_1 has not yet fallen below catapult_rho (the catapult at initialisation).
 */
export interface TransientRule {
  t_min: number
  catapult_rho: number
}

/** claims.yaml as a whole: the shared rules and the claims. */
export interface ClaimsFile {
  transient: TransientRule
  /** Confidence level of every interval, and the significance / power of every power statement. */
  level: number
  power: number
  claims: Claim[]
}

const TEXT_FIELDS = ['title', 'section', 'sentence', 'quantity', 'test', 'paper_value'] as const

/** Parses claims.yaml's text; every problem found is listed. */
export function parseClaims(text: string): Result<Claim[], string[]> {
  let doc: unknown
  try {
    doc = parse(text)
  } catch (e: unknown) {
    return fail([`claims.yaml is not valid YAML: ${e instanceof Error ? e.message : String(e)}`])
  }
  const list = (doc as { claims?: unknown } | null)?.claims
  if (!Array.isArray(list)) return fail(['claims.yaml: expected a top-level `claims:` list'])
  const errors: string[] = []
  const claims: Claim[] = []
  const seen = new Set<string>()
  list.forEach((raw: unknown, i) => {
    const c = raw as Record<string, unknown>
    const where = `claims[${i}]${typeof c?.id === 'string' ? ` (${c.id})` : ''}`
    if (typeof c !== 'object' || c === null) return void errors.push(`${where}: not a mapping`)
    if (!(CLAIM_IDS as readonly unknown[]).includes(c.id)) return void errors.push(`${where}: id must be one of ${CLAIM_IDS.join(', ')}`)
    if (seen.has(c.id as string)) errors.push(`${where}: duplicate id`)
    seen.add(c.id as string)
    for (const f of TEXT_FIELDS)
      if (typeof c[f] !== 'string' || (c[f] as string).trim() === '') errors.push(`${where}: ${f} must be a non-empty string`)
    const params = c.params ?? {}
    if (typeof params !== 'object' || params === null || Array.isArray(params)) errors.push(`${where}: params must be a mapping`)
    claims.push({ ...(c as unknown as Claim), params: params as JsonObject })
  })
  for (const id of CLAIM_IDS) if (!seen.has(id)) errors.push(`claims.yaml: claim ${id} is missing`)
  return errors.length > 0 ? fail(errors) : ok(claims)
}

/** Parses claims.yaml with its shared rules (transient exclusion, interval level, power). */
export function parseClaimsFile(text: string): Result<ClaimsFile, string[]> {
  const claims = parseClaims(text)
  if (!claims.ok) return claims
  const doc = parse(text) as { transient?: Record<string, unknown>; level?: unknown; power?: unknown }
  const errors: string[] = []
  const t = doc.transient
  const tMin = t?.t_min
  const cat = t?.catapult_rho
  if (typeof tMin !== 'number' || !(tMin >= 0))
    errors.push('claims.yaml: transient.t_min must be a number >= 0 (probes at t = n eta below it are the initial transient)')
  if (typeof cat !== 'number' || !(cat > 0))
    errors.push(
      'claims.yaml: transient.catapult_rho must be a number > 0 (a run whose first probe has rho_1 at or above it started above the edge)',
    )
  const unit = (v: unknown, name: string): number => {
    if (typeof v !== 'number' || !(v > 0 && v < 1)) errors.push(`claims.yaml: ${name} must be a number in (0, 1)`)
    return v as number
  }
  const level = unit(doc.level, 'level')
  const power = unit(doc.power, 'power')
  if (errors.length > 0) return fail(errors)
  return ok({ transient: { t_min: tMin as number, catapult_rho: cat as number }, level, power, claims: claims.value })
}

/** A numeric param of a claim; throws, naming the claim and param, when absent or not a number (thresholds live in claims.yaml only). */
export function numParam(claim: Pick<Claim, 'id' | 'params'>, name: string): number {
  const v = claim.params[name]
  if (typeof v !== 'number')
    throw new Error(`claims.yaml ${claim.id}: params.${name} must be a number, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`)
  return v
}
