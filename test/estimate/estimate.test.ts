/**
 * The cost estimate: forward-pass FLOP counts against hand-computed sums of the published
 * architectures (an independent oracle: no layer interpreter involved), the paper profile's
 * per-stage and total bounds against the README's hand-made table, device/price rules, and the
 * confirmation rule (ask on a terminal, refuse in one line elsewhere, --yes skips).
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import type { PlanStep } from '../../src/harness/types.ts'
import { deviceById, DEVICES } from '../../src/estimate/devices.ts'
import { estimateOutput } from '../../src/estimate/cli-estimate.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import { checkEstimateOptions, confirmCost, estimate, estimateText, formatFlops } from '../../src/estimate/estimate.ts'
import { trainIterations } from '../../src/estimate/stage-cost.ts'
import { forwardFlops } from '../../src/science/flops.ts'

const ROOT = join(import.meta.dirname, '../..')

t.test('forward FLOPs per example: hand sums of the architectures (multiply-add = 2)', async (t) => {
  // AlexNet-CIFAR at 32x32x3: conv1 11x11/4 -> 8x8x64, pool 4x4, conv2 5x5 -> 4x4x192, pool 2x2,
  // conv3..5 3x3 at 2x2 (192->384->256->256), pool 1x1, fc 256 -> 10.
  const alex = 121 * 3 * 64 * 64 + 25 * 64 * 192 * 16 + 9 * 192 * 384 * 4 + 9 * 384 * 256 * 4 + 9 * 256 * 256 * 4 + 256 * 10
  t.equal(forwardFlops({ arch: 'alexnet', inputShape: [32, 32, 3], classes: 10 }), 2 * alex)
  t.equal(Math.round((2 * alex) / 1e5) / 10, 29.9, 'the README figure: 29.9 MFLOP')
  // VGG-16 (D) at 32x32x3: per resolution, 3x3 same convs, then the 512-512-10 head.
  const vgg =
    9 * 1024 * (3 * 64 + 64 * 64) +
    9 * 256 * (64 * 128 + 128 * 128) +
    9 * 64 * (128 * 256 + 2 * 256 * 256) +
    9 * 16 * (256 * 512 + 2 * 512 * 512) +
    9 * 4 * (3 * 512 * 512) +
    512 * 512 * 2 +
    512 * 10
  t.equal(forwardFlops({ arch: 'vgg16', inputShape: [32, 32, 3], classes: 10 }), 2 * vgg)
  t.equal(Math.round((2 * vgg) / 1e5) / 10, 627.5, 'the README figure: 627.5 MFLOP')
  t.equal(forwardFlops({ arch: 'mlp', inputShape: [28, 28, 1], classes: 10, hidden: [100, 100] }), 2 * (784 * 100 + 100 * 100 + 100 * 10))
  t.ok(
    forwardFlops({ arch: 'vgg16', inputShape: [32, 32, 3], classes: 10, width: 0.5 }) <
      forwardFlops({ arch: 'vgg16', inputShape: [32, 32, 3], classes: 10 }) / 3,
    'width scales the convs',
  )
})

t.test('iterations: max_iterations, else round(max_t / eta)', async (t) => {
  t.equal(trainIterations({ eta: 0.003, max_t: 40 }), 13333)
  t.equal(trainIterations({ eta: 0.001, max_t: 40, max_iterations: 2000 }), 2000)
})

t.test('the paper profile, everything to run: the README table, per stage and in total', async (t) => {
  const a = await analyze({ file: join(ROOT, 'pipeline.yaml'), profile: 'paper', overrides: [], reader: nodeReader(ROOT) })
  if (!a.ok) throw new Error(JSON.stringify(a.error))
  const steps: PlanStep[] = [...a.value.instances.keys()].map((instance) => ({ instance, action: 'run', reasons: [] }))
  const e = estimate(a.value, steps, { device: 'a100' })
  const stage = (name: string) => e.stages.find((s) => s.stage === name)
  const pflop = (name: string) => (stage(name)?.flops ?? NaN) / 1e15
  const near = (got: number, want: number, what: string, rel = 0.005) =>
    t.ok(Math.abs(got - want) <= rel * want, `${what}: ${got.toFixed(1)} ~ ${want}`)
  // README rows (PFLOP): train AlexNet 6,140 + VGG 129,000; probes 4,420 + 92,600; classes 761;
  // dense 2,720; flow 686 per seed, and the profile now runs 2 seeds (1,372); total 236,000 + 686
  // (the cpu design's second dense run and the 2-class pair run add about 2 PFLOP).
  near(pflop('train'), 6140 + 129000, 'train (AlexNet + VGG-16)')
  near(pflop('probe'), 4420 + 92600, 'probe (AlexNet + VGG-16)')
  near(pflop('train-classes') + pflop('probe-classes'), 761, 'train-classes + probe-classes')
  near(pflop('train-dense') + pflop('probe-dense'), 2720, 'train-dense + probe-dense')
  near(pflop('train-flow'), 2 * 686, 'train-flow (2 seeds)')
  near(e.total.flops / 1e15, 236000 + 686, 'total', 0.002)
  t.equal(stage('train')?.instances, 16)
  t.equal(stage('probe')?.instances, 656)
  near(e.total.deviceHours, 13000, 'A100-hours at 5 TFLOP/s (README: ~13,000)', 0.015)
  near(stage('probe')?.hours ?? NaN, 15.7, 'the longest probe (README: 15.7 h each for VGG-16)', 0.01)
  t.equal(e.free, 0)
  t.equal(e.uncounted, 15, 'data (with the C3 pair subset), download, spectra-table, figures and audit do no counted arithmetic')
  near(e.total.usd, e.total.deviceHours * (deviceById('a100')?.usdPerHour ?? NaN), 'money = device-hours x price', 1e-9)
  const text = estimateText(e)
  t.match(text, /^stage\s+to run\s+compute \(upper bound\)\s+device\s+longest instance\s+device-hours\s+cost\n/)
  t.match(text, /\ntrain\s+16\s+134,979 PFLOP\s+a100\s/)
  t.match(text, /\ntotal\s+1100\s+236,961 PFLOP\s+13164\s+\$53,929\.\d\d\n/)
  t.match(text, /a100: NVIDIA A100 40GB, 5 TFLOP\/s sustained \(ASSUMED/)

  // Default placement follows the declared resources: only `probe` declares a GPU in the paper profile.
  const byResources = estimate(a.value, steps)
  t.equal(byResources.stages.find((s) => s.stage === 'probe')?.device, 'a100')
  t.equal(byResources.stages.find((s) => s.stage === 'train')?.device, 'cpu-core')
  // A price override scales the money and nothing else.
  const cheap = estimate(a.value, steps, { device: 'a100', price: 1 })
  t.equal(cheap.total.flops, e.total.flops)
  t.ok(Math.abs(cheap.total.usd - e.total.deviceHours) < 1e-6 * e.total.deviceHours)
  // A faster device takes fewer hours for the same arithmetic.
  t.ok(estimate(a.value, steps, { device: 'h100' }).total.deviceHours < e.total.deviceHours)
  // Fresh or restorable instances cost nothing.
  const someDone = estimate(
    a.value,
    steps.map((s) => (s.instance.startsWith('probe@') ? { ...s, action: 'fresh' as const } : s)),
    { device: 'a100' },
  )
  t.notOk(someDone.stages.some((s) => s.stage === 'probe'))
  t.equal(someDone.free, 656)
})

t.test('the device table: every entry sourced; unknown device and bad price are usage errors', async (t) => {
  for (const d of DEVICES) {
    t.ok(d.flopsPerSecond > 0 && d.usdPerHour > 0, d.id)
    t.match(d.priceSource, /AWS EC2 On-Demand/, `${d.id} price has its source`)
    t.match(d.priceAsOf, /^2024 /, `${d.id} price has its date`)
  }
  t.equal(deviceById('cpu-core')?.throughputSource, 'measured')
  t.ok(
    DEVICES.filter((d) => d.gpu).every((d) => d.throughputSource === 'assumption'),
    'no GPU figure is measured yet: all marked as assumptions',
  )
  t.match(checkEstimateOptions({ device: 'v100' }), /--device expects one of cpu-core, t4, a10g, l4, a100, h100, got 'v100'/)
  t.equal(checkEstimateOptions({ device: 'H100', price: 2 }), undefined)
  t.equal(formatFlops(4.3e12), '4.3 TFLOP')
})

t.test('confirmation: below the threshold or --yes goes on; above it asks on a terminal and refuses elsewhere', async (t) => {
  const never = { interactive: false, ask: async () => t.fail('must not prompt without a terminal') as never }
  t.same(await confirmCost(5, { yes: false, threshold: 10 }, never), { ok: true })
  t.same(await confirmCost(500, { yes: true, threshold: 10 }, never), { ok: true })
  const refused = await confirmCost(500, { yes: false, threshold: 10 }, never)
  t.match(refused, {
    ok: false,
    message: /\$500\.00 is above the confirmation threshold \$10\.00 and there is no terminal to ask: pass --yes/,
  })
  let asked = ''
  const tty = (answer: string) => ({ interactive: true, ask: async (q: string) => ((asked = q), answer) })
  t.same(await confirmCost(500, { yes: false, threshold: 10 }, tty('y')), { ok: true })
  t.match(asked, /Estimated cost \$500\.00 \(above \$10\.00\)\. Submit the jobs\? \[y\/N\]/)
  t.match(await confirmCost(500, { yes: false, threshold: 10 }, tty('')), { ok: false, message: /not confirmed: nothing was submitted/ })
})

t.test('device classes: the pipeline schema lists exactly the table', async (t) => {
  const schema = JSON.parse(readFileSync(join(ROOT, 'schemas/pipeline.schema.json'), 'utf8')) as {
    definitions: { deviceClass: { enum: string[] } }
  }
  t.same(
    schema.definitions.deviceClass.enum,
    DEVICES.map((d) => d.id),
  )
})

t.test("pipeline.yaml's estimate: block: device and prices, validated where written; flags win", async (t) => {
  // A copy of the project whose pipeline.yaml has (or lacks) an estimate: block.
  const dir = mkdtempSync(join(tmpdir(), 'cusp-estimate-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const f of ['stages', 'schemas', 'src']) symlinkSync(join(ROOT, f), join(dir, f))
  const yaml = readFileSync(join(ROOT, 'pipeline.yaml'), 'utf8')
  const load = (block: string) => {
    writeFileSync(join(dir, 'pipeline.yaml'), `${yaml.trimEnd()}\n${block}`)
    return analyze({ file: join(dir, 'pipeline.yaml'), profile: 'paper', overrides: [], reader: nodeReader(dir) })
  }
  const plain = load('')
  const priced = load('estimate:\n  device: l4\n  prices: { l4: 0.5, a100: 1.25 }\n')
  if (!plain.ok || !priced.ok) throw new Error('analyze failed')
  t.same(priced.value.estimate, { device: 'l4', prices: { l4: 0.5, a100: 1.25 } })
  t.equal(plain.value.estimate, undefined)
  const steps: PlanStep[] = [...priced.value.instances.keys()].map((instance) => ({ instance, action: 'run', reasons: [] }))
  const out = (p: typeof priced, f: { device?: string; price?: number }) => {
    const r = estimateOutput(p.ok ? p.value : (undefined as never), steps, { device: f.device, price: f.price, json: false })
    if (!r.ok) throw new Error(r.message)
    return r
  }
  const fromFile = out(priced, {})
  t.same(new Set(fromFile.estimate.rows.map((r) => r.device)), new Set(['l4']), 'estimate.device puts every instance on l4')
  const l4 = estimate(plain.value, steps, { device: 'l4' })
  t.equal(fromFile.estimate.total.flops, l4.total.flops)
  t.ok(Math.abs(fromFile.estimate.total.usd - l4.total.deviceHours * 0.5) < 1e-6 * l4.total.usd, 'at the file price of l4')
  t.match(fromFile.text, /l4: NVIDIA L4, .*; \$0\.5\/device-hour \(pipeline\.yaml estimate\.prices\)\./)
  t.notMatch(fromFile.text, /Table prices are 2024/, 'no table price used: no note about them')
  // --device wins over estimate.device; the file's a100 price still applies to a100.
  const flagDevice = out(priced, { device: 'a100' })
  t.ok(Math.abs(flagDevice.estimate.total.usd - flagDevice.estimate.total.deviceHours * 1.25) < 1e-6 * flagDevice.estimate.total.usd)
  // --price wins over estimate.prices.
  const flagPrice = out(priced, { price: 2 })
  t.ok(Math.abs(flagPrice.estimate.total.usd - flagPrice.estimate.total.deviceHours * 2) < 1e-6 * flagPrice.estimate.total.usd)
  t.match(flagPrice.text, /\$2\/device-hour \(--price\)/)
  // Without overrides: the table, its source and date, and the note that the prices were not re-checked.
  const table = out(plain, {})
  t.match(
    table.text,
    /a100: .*\(p4d\.24xlarge \$32\.7726\/h, 8 GPUs; AWS EC2 On-Demand, Linux, us-east-1 list price, 2024 \(not re-checked since\)\)/,
  )
  t.match(table.text, /Table prices are 2024 AWS list prices, recalled and not re-checked \(no internet access/)

  // Bad blocks: schema violations located at the key, in one line each, naming the device classes.
  for (const [block, re] of [
    ['estimate:\n  device: v100\n', /estimate\.device.*(cpu-core|one of)/],
    ['estimate:\n  prices: { v100: 2 }\n', /estimate\.prices/],
    ['estimate:\n  prices: { a100: -1 }\n', /estimate\.prices\.a100/],
    ['estimate:\n  gpu: a100\n', /estimate/],
  ] as const) {
    const r = load(block)
    t.notOk(r.ok, block)
    if (r.ok) continue
    const msg = r.error.map(formatFailure).join('\n')
    t.match(msg, re, `${JSON.stringify(block)}: ${msg}`)
    t.match(r.error[0], { reason: 'schema-violation' })
  }
  t.match(
    checkEstimateOptions({ device: 'v100', deviceFrom: 'pipeline.yaml estimate.device' }),
    /^pipeline\.yaml estimate\.device expects one of/,
  )
  t.match(checkEstimateOptions({ prices: { a100: Number.NaN } }), /estimate\.prices\.a100 expects USD per device-hour/)
})
