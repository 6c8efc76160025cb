/**
 * Every profile that pipeline.yaml declares validates and plans: the analyzer accepts it (every dep
 * resolves to an instance), no stage crosses a checkpoint axis with an iteration axis (a profile's
 * matrix axis replaces only the axis of the same name, so naming the other one multiplies the
 * instances), and the cost estimate counts finite arithmetic for what it would run. Only the
 * default profile used to be checked (by `--dry-run`); the gpu profile had stopped validating.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import type { PlanStep } from '../../src/harness/types.ts'
import { estimate } from '../../src/estimate/estimate.ts'

const ROOT = join(import.meta.dirname, '../..')
const doc = parse(readFileSync(join(ROOT, 'pipeline.yaml'), 'utf8')) as { profiles?: Record<string, unknown> }
const profiles = Object.keys(doc.profiles ?? {})

t.test('pipeline.yaml declares the profiles the README describes', async (t) => {
  for (const p of ['cpu', 'paper', 'gpu', 'smoke']) t.ok(profiles.includes(p), p)
})

for (const profile of profiles) {
  t.test(`profile ${profile}: validates, plans, and crosses no checkpoint axis with an iteration axis`, async (t) => {
    const a = analyze({ file: join(ROOT, 'pipeline.yaml'), profile, overrides: [], reader: nodeReader(ROOT) })
    if (!a.ok) {
      t.fail(a.error.map(formatFailure).join('\n'))
      return
    }
    const ids = [...a.value.instances.keys()]
    t.ok(ids.length > 10, `${ids.length} instances`)
    t.ok(
      ids.some((id) => id.startsWith('audit')),
      'the audit is planned',
    )
    const crossed = ids.filter((id) => /[@,]checkpoint=/.test(id) && /[@,]iteration=/.test(id))
    t.same(crossed, [], 'no instance is keyed by both a checkpoint index and an iteration')
    const steps: PlanStep[] = ids.map((instance) => ({ instance, action: 'run', reasons: [] }))
    const e = estimate(a.value, steps)
    t.ok(Number.isFinite(e.total.flops) && e.total.flops > 0, `estimate: ${e.total.flops.toExponential(2)} FLOP`)
  })
}
