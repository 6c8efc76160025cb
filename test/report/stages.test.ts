// The audit and figures stages end to end on synthetic stage outputs written as the science stages
// write them (probe.json, telemetry.jsonl, scan.json, manifest): audit.json valid against
// schemas/audit.schema.json with every claim supported, results valid against the stages' result
// schemas, figures/ and report.html written, a probe of a checkpoint never reached counted, not plotted.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import t from 'tap'
import type { StageContext, StageInput } from '../../src/harness/stage-api.ts'
import type { JsonObject } from '../../src/harness/types.ts'
import audit from '../../stages/audit/index.ts'
import figures from '../../stages/figures/index.ts'
import { ROOT, supportedResults } from './fixtures.ts'

const schema = async (rel: string) =>
  new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(await readFile(join(ROOT, rel), 'utf8')) as object)

t.test('audit then figures on synthetic outputs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-report-stages-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const r = supportedResults()
  const inputs: Record<string, StageInput[]> = {}
  let n = 0
  const add = async (dep: string, instance: string, output: string, text: string, params: JsonObject = {}) => {
    const path = join(dir, 'in', String(n++), output)
    await mkdir(join(path, '..'), { recursive: true })
    await writeFile(path, text)
    ;(inputs[dep] ??= []).push({ instance, output, params, path })
  }
  const depOf = { grid: 'probes', classes: 'probes-classes', dense: 'probes-dense' } as const
  for (const p of r.probes) {
    const detail = {
      present: true,
      iteration: p.iteration,
      t: p.t,
      eta: p.eta,
      classes: p.classes,
      rho: p.rho,
      d: p.d,
      eigenvalues: p.rho.map((x) => (2 * x) / p.eta),
      top_norm: p.topNorm,
      bulk_norm: p.bulkNorm,
      loss_change_top: p.lossChangeTop,
      loss_change_bulk: p.lossChangeBulk,
      theta_norm: p.thetaNorm,
    }
    await add(
      depOf[p.role],
      p.instance,
      'probe.json',
      JSON.stringify(detail),
      p.role === 'grid' ? { arch: p.arch, activation: p.activation, eta: p.eta } : {},
    )
  }
  await add(
    'probes',
    'probe@arch=mlp,activation=relu,eta=0.2,checkpoint=99',
    'probe.json',
    JSON.stringify({ present: false, iteration: 99, reason: 'the run stopped at iteration 50' }),
    { arch: 'mlp', activation: 'relu', eta: 0.2 },
  )
  const jsonl = (rows: object[]) => rows.map((x) => JSON.stringify(x)).join('\n') + '\n'
  for (const f of r.flows)
    await add('flow', f.instance, 'telemetry.jsonl', jsonl(f.rows.map((x) => ({ ...x, gradNorm: 1, eta: 0.1 }))), {
      activation: f.activation,
      n_data: f.nData!,
    })
  for (const f of r.runs) await add('runs', f.instance, 'telemetry.jsonl', jsonl(f.rows), { activation: f.activation })
  for (const s of r.scans)
    await add(
      'scans',
      s.instance,
      'scan.json',
      JSON.stringify({
        deltas: s.deltas,
        changes: s.changes,
        n_data: s.nData,
        lambda_1: s.lambda1,
        peak_lambda_1_logged: s.peakLambda1Logged,
        theta_norm_max_rel_change: s.thetaNormMaxRelChange,
      }),
      { activation: s.activation, n_data: s.nData },
    )
  await add(
    'data',
    'data',
    'manifest',
    JSON.stringify({
      schema: 1,
      source: { kind: 'idx', digest: 'ab', split: 'train' },
      shape: [500, 28, 28, 1],
      classes: { names: Array.from({ length: 10 }, (_, i) => String(i)) },
    }),
  )

  const ctx = <P>(name: string, params: P, extra: Record<string, StageInput[]> = {}): StageContext<P> => ({
    instance: name,
    params,
    inputs: { ...inputs, ...extra },
    outDir: join(dir, name),
    progress: () => undefined,
    log: () => undefined,
  })
  await mkdir(join(dir, 'audit'))
  const ares = await audit.run(ctx('audit', { profile: 'synthetic' }))
  t.ok((await schema('schemas/stages/audit.result.schema.json'))(ares), 'audit result valid')
  const auditJson = JSON.parse(await readFile(join(dir, 'audit', 'audit.json'), 'utf8')) as {
    claims: { id: string; verdict: string; dataset: string }[]
    inputs: unknown[]
  }
  const v = await schema('schemas/audit.schema.json')
  t.ok(v(auditJson), JSON.stringify(v.errors))
  t.same(
    auditJson.claims.map((c) => c.verdict),
    ['supported', 'supported', 'supported', 'supported'],
  )
  t.equal(auditJson.claims[0]!.dataset, 'idx/train 500x28x28x1 (10 classes)')
  t.equal(auditJson.inputs.length, n)

  await mkdir(join(dir, 'figures'))
  const fres = (await figures.run(
    ctx(
      'figures',
      { profile: 'synthetic', png_scale: 1 },
      { audit: [{ instance: 'audit', output: 'audit.json', params: {}, path: join(dir, 'audit', 'audit.json') }] },
    ),
  )) as { figures: { id: string; points: number }[] }
  t.ok((await schema('schemas/stages/figures.result.schema.json'))(fres), 'figures result valid')
  t.same((await readdir(join(dir, 'figures'))).sort(), ['figures', 'report.html'])
  const files = await readdir(join(dir, 'figures', 'figures'))
  for (const id of ['figure-1', 'figure-2', 'figure-3', 'figure-4', 'figure-5', 'figure-6', 'figure-peak'])
    for (const ext of ['svg', 'png', 'vl.json']) t.ok(files.includes(`${id}.${ext}`), `${id}.${ext}`)
  t.ok(files.includes('table1.json'))
  const html = await readFile(join(dir, 'figures', 'report.html'), 'utf8')
  t.match(html, /Profile <b>synthetic<\/b>/)
  t.notMatch(html, /checkpoint=99<\/code>: probe.json/, 'the absent probe fed no figure')
})
