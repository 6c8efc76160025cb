// The one transient rule (claims.yaml `transient:`): probes at t < t_min and the catapult of a run
// that started above the edge are excluded, once, for C1, C2, C3 and Table 1.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parseClaimsFile } from '../../src/report/claims.ts'
import { judgeAll } from '../../src/report/verdicts.ts'
import { buildAudit } from '../../src/report/audit.ts'
import type { StageResults } from '../../src/report/records.ts'
import { describeRule, splitTransient } from '../../src/report/transient.ts'
import { denseRun, judge, probe, repoClaimsFile, ROOT, supportedResults } from './fixtures.ts'

const rule = { t_min: 1, catapult_rho: 1 }

t.test('splitTransient: t < t_min, and the catapult until rho_1 first falls below catapult_rho', async (t) => {
  const below = [0, 1, 2].map((n) => probe({ eta: 0.1, iteration: n * 10, rhoTop: 0.5, rhoBulk: 0.1 }))
  const s1 = splitTransient(below, rule)
  t.same(
    s1.kept.map((p) => p.t),
    [1, 2],
  )
  t.same(
    s1.excluded.map((e) => e.why),
    ['t < t_min'],
  )
  // Starts above the edge: t = 1, 2 still catapult; t = 3 below 1; t = 4 back at the edge (kept: a real entry).
  const rho1 = [5, 3, 1.2, 0.6, 1.05]
  const above = rho1.map((r, n) => ({ ...probe({ eta: 0.1, iteration: n * 10, rhoTop: 0.5, rhoBulk: 0.1 }), rho: [r, 0.5, 0.1] }))
  const s2 = splitTransient(above, rule)
  t.same(
    s2.kept.map((p) => p.t),
    [3, 4],
  )
  t.same(
    s2.excluded.map((e) => [e.t, e.why]),
    [
      [0, 't < t_min'],
      [1, 'catapult'],
      [2, 'catapult'],
    ],
  )
  // Never leaves the catapult: nothing kept.
  t.same(splitTransient(above.slice(0, 3), rule).kept, [])
  t.match(describeRule(rule), /t = n·eta < 1.*rho_1 >= 1/)
})

t.test('Table 1 and C3 do not count transient probes; C2 does not see an entry at t = 0', async (t) => {
  const r = supportedResults()
  // One combination at the edge only before t = 1 (8 probes at t < 1, eta 0.01): its row is omitted.
  const early = Array.from({ length: 8 }, (_, n) =>
    probe({ arch: 'cnn', eta: 0.01, iteration: n * 10, rhoTop: 0.95, rhoBulk: 0.1, top: 0.01, bulk: -0.01 }),
  )
  const late = Array.from({ length: 3 }, (_, n) => probe({ arch: 'cnn', eta: 0.01, iteration: 100 + n * 10, rhoTop: 0.2, rhoBulk: 0.1 }))
  const res: StageResults = { ...r, probes: [...r.probes, ...early, ...late] }
  const audit = buildAudit(repoClaimsFile(), res, [], { profile: 'x', engine: { backend: 'wasm', versions: {} } })
  const row = audit.table1.find((x) => x.arch === 'cnn')!
  t.same([row.included, row.atEdge, row.probes], [false, 0, 3])
  t.match(row.omitted!, /0 probe\(s\) with rho_\(n_c-1\) > 0.7 after the transient; a row needs 5/)
  t.ok(audit.excluded.some((e) => e.instance === early[0]!.instance))
  t.match(judge('C3', res).measured.omitted, [{ row: /^cnn-relu eta=0.01/, why: /after the transient/ }])
  // The dense run's untrained network at the edge (t = 0) is no entry: the entry at probe 10 is.
  const dense = denseRun().map((p, j) => (j === 0 ? { ...p, rho: p.rho.map((x) => x * 5) } : p))
  const v = judge('C2', { ...r, probes: [...r.probes.filter((p) => p.role !== 'dense'), ...dense] })
  t.equal(v.verdict, 'supported')
  t.same(
    (v.measured.events as { edge_iteration: number }[]).map((e) => e.edge_iteration),
    [100, 100],
  )
})

t.test(
  'claims.yaml without the shared rules is an error naming the field; a threshold missing from a claim throws, naming it',
  async (t) => {
    const text = readFileSync(join(ROOT, 'claims.yaml'), 'utf8')
    const noRule = parseClaimsFile(text.replace(/^transient:.*$/m, ''))
    t.notOk(noRule.ok)
    if (!noRule.ok) t.match(noRule.error.join('\n'), /transient\.t_min must be a number/)
    const badLevel = parseClaimsFile(text.replace(/^level: .*$/m, 'level: 95'))
    t.notOk(badLevel.ok)
    const file = repoClaimsFile()
    const noParam = {
      ...file,
      claims: file.claims.map((c) => (c.id === 'C2' ? { ...c, params: { ...c.params, alpha: undefined as unknown as number } } : c)),
    }
    t.throws(() => judgeAll(noParam, supportedResults()), /claims\.yaml C2: params\.alpha must be a number, got nothing/)
  },
)
