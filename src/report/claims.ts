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
    for (const f of TEXT_FIELDS) if (typeof c[f] !== 'string' || (c[f] as string).trim() === '') errors.push(`${where}: ${f} must be a non-empty string`)
    const params = c.params ?? {}
    if (typeof params !== 'object' || params === null || Array.isArray(params)) errors.push(`${where}: params must be a mapping`)
    claims.push({ ...(c as unknown as Claim), params: params as JsonObject })
  })
  for (const id of CLAIM_IDS) if (!seen.has(id)) errors.push(`claims.yaml: claim ${id} is missing`)
  return errors.length > 0 ? fail(errors) : ok(claims)
}

/** A numeric param of a claim, or `dflt` when absent; throws when present but not a number. */
export function numParam(claim: Pick<Claim, 'id' | 'params'>, name: string, dflt: number): number {
  const v = claim.params[name]
  if (v === undefined) return dflt
  if (typeof v !== 'number') throw new Error(`claims.yaml ${claim.id}: params.${name} must be a number, got ${JSON.stringify(v)}`)
  return v
}
