/**
 * Stage `audit`: verdicts on the paper's claims. Reads the claims file (`claims.yaml` at the project
 * root, in this stage's code closure through the `new URL` below, so editing it reruns the audit)
 * and the science stages' results (probes, train telemetry, cusp scans, dataset manifests), judges
 * each claim with src/report/verdicts.ts, and writes `audit.json` (schemas/audit.schema.json,
 * validated here before it is written). The result (result.json) is the short summary that
 * `npm run pipeline` prints at its end.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { defineStage, type StageContext } from '../../src/harness/stage-api.ts'
import { buildAudit, summarise } from '../../src/report/audit.ts'
import { parseClaimsFile } from '../../src/report/claims.ts'
import { gatherResults } from '../../src/report/gather.ts'
import { producersEnv } from '../shared/producers-env.ts'

const CLAIMS = new URL('../../claims.yaml', import.meta.url)
const SCHEMA = new URL('../../schemas/audit.schema.json', import.meta.url)

/** Params (schemas/stages/audit.params.schema.json). */
export interface AuditParams {
  profile: string
}

export default defineStage(async (ctx: StageContext<AuditParams>) => {
  const claims = parseClaimsFile(await readFile(CLAIMS, 'utf8'))
  if (!claims.ok) throw new Error(`claims.yaml:\n  ${claims.error.join('\n  ')}`)
  const { results, provenance } = await gatherResults(ctx.inputs)
  ctx.log(
    `${results.probes.length} probes (${results.absentProbes.length} of checkpoints never reached), ${results.flows.length} gradient-flow runs, ${results.scans.length} cusp scans`,
  )
  // The engine the inputs were computed with (from the producers' fingerprints), not this host's.
  const engine = producersEnv(ctx.inputs)
  const audit = buildAudit(claims.value, results, provenance, { profile: ctx.params.profile, engine })
  const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(await readFile(SCHEMA, 'utf8')) as object)
  if (!validate(audit)) throw new Error(`audit.json does not match schemas/audit.schema.json: ${JSON.stringify(validate.errors)}`)
  await writeFile(join(ctx.outDir, 'audit.json'), `${JSON.stringify(audit, null, 2)}\n`)
  ctx.log(`${audit.excluded.length} probes excluded as the initial transient (${audit.rules.transient_text})`)
  for (const c of audit.claims) ctx.log(`${c.id} ${c.verdict}: ${c.reason}`)
  return summarise(audit)
})
