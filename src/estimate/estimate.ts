/**
 * `--estimate`: what a run would cost before it starts. For each instance the plan would RUN (fresh
 * instances and those restorable from the store cost nothing), the compute bound of stage-cost.ts,
 * the time on a device class (devices.ts) and the money at its price per device-hour; then per stage
 * and in total. Stages that declare GPUs go to the default GPU class (A100) at their GPU count, the
 * others to CPU cores at their `resources.cpu`; `--device D` (or pipeline.yaml `estimate.device`)
 * puts every instance on D; `--price` replaces every price per device-hour, pipeline.yaml
 * `estimate.prices` the price of the classes it names. Also the confirmation asked before a paid (aws-batch) run.
 * This module sits outside src/harness: it reads the harness's plan and the science side's FLOP
 * counts, so the harness itself stays free of science.
 */
import type { PlanStep, StageInstance, ValidPipeline } from '../harness/types.ts'
import { DEFAULT_GPU, deviceById, DEVICES, type DeviceClass } from './devices.ts'
import { instanceCost, type CostOptions } from './stage-cost.ts'

export interface EstimateOptions extends CostOptions {
  /** Put every instance on this device class (devices.ts ids). */
  device?: string
  /** Where `device` was set, for messages: '--device' (default) or 'pipeline.yaml estimate.device'. */
  deviceFrom?: string
  /** USD per device-hour, replacing the table's price for every device (--price). */
  price?: number
  /** USD per device-hour by device class (pipeline.yaml `estimate.prices`); `price` wins. */
  prices?: Record<string, number>
}

export interface EstimateRow {
  instance: string
  stage: string
  flops: number
  basis: string
  device: string
  /** Devices the instance occupies (GPUs, or CPU cores). */
  devices: number
  /** Wall-clock hours on those devices. */
  hours: number
  usd: number
}

export interface StageTotal {
  stage: string
  instances: number
  flops: number
  device: string
  hours: number
  deviceHours: number
  usd: number
}

export interface Estimate {
  rows: EstimateRow[]
  stages: StageTotal[]
  total: { instances: number; flops: number; deviceHours: number; usd: number }
  /** Instances the plan would not run (fresh or restorable): no cost. */
  free: number
  /** Instances that would run but whose stage does no counted arithmetic. */
  uncounted: number
  devicesUsed: DeviceClass[]
  price: number | undefined
  prices: Record<string, number> | undefined
}

/** A usage-style problem with the options (unknown device, bad price). */
export function checkEstimateOptions(o: EstimateOptions): string | undefined {
  const known = DEVICES.map((d) => d.id).join(', ')
  if (o.device !== undefined && deviceById(o.device) === undefined)
    return `${o.deviceFrom ?? '--device'} expects one of ${known}, got '${o.device}'`
  for (const [id, usd] of Object.entries(o.prices ?? {})) {
    if (deviceById(id) === undefined) return `pipeline.yaml estimate.prices: '${id}' is not a device class (${known})`
    if (!(usd >= 0 && Number.isFinite(usd)))
      return `pipeline.yaml estimate.prices.${id} expects USD per device-hour (>= 0), got ${String(usd)}`
  }
  if (o.price !== undefined && !(o.price >= 0 && Number.isFinite(o.price)))
    return `--price expects USD per device-hour (a number >= 0), got '${String(o.price)}'`
  return undefined
}

function deviceFor(inst: StageInstance, o: EstimateOptions): { device: DeviceClass; count: number } {
  const forced = o.device !== undefined ? deviceById(o.device) : undefined
  const device = forced ?? (inst.resources.gpu > 0 ? deviceById(DEFAULT_GPU) : deviceById('cpu-core'))
  if (device === undefined) throw new Error('device table is missing its defaults')
  const count = device.gpu ? Math.max(1, inst.resources.gpu) : Math.max(1, inst.resources.cpu)
  return { device, count }
}

/** The estimate of the instances `steps` would run. */
export function estimate(pipeline: ValidPipeline, steps: readonly PlanStep[], o: EstimateOptions = {}): Estimate {
  const lookup = (id: string) => pipeline.instances.get(id)
  const rows: EstimateRow[] = []
  let free = 0
  let uncounted = 0
  const used = new Map<string, DeviceClass>()
  for (const step of steps) {
    if (step.action !== 'run') {
      free++
      continue
    }
    const inst = pipeline.instances.get(step.instance)
    const cost = inst === undefined ? undefined : instanceCost(inst, lookup, o)
    if (inst === undefined || cost === undefined) {
      uncounted++
      continue
    }
    const { device, count } = deviceFor(inst, o)
    used.set(device.id, device)
    const hours = cost.flops / (device.flopsPerSecond * count) / 3600
    const price = o.price ?? o.prices?.[device.id] ?? device.usdPerHour
    rows.push({
      instance: inst.id,
      stage: inst.stage,
      flops: cost.flops,
      basis: cost.basis,
      device: device.id,
      devices: count,
      hours,
      usd: hours * count * price,
    })
  }
  const byStage = new Map<string, StageTotal>()
  for (const r of rows) {
    const s = byStage.get(r.stage) ?? { stage: r.stage, instances: 0, flops: 0, device: r.device, hours: 0, deviceHours: 0, usd: 0 }
    s.instances++
    s.flops += r.flops
    s.hours = Math.max(s.hours, r.hours)
    s.deviceHours += r.hours * r.devices
    s.usd += r.usd
    if (s.device !== r.device) s.device = 'mixed'
    byStage.set(r.stage, s)
  }
  const stages = [...byStage.values()]
  const total = {
    instances: rows.length,
    flops: stages.reduce((a, s) => a + s.flops, 0),
    deviceHours: stages.reduce((a, s) => a + s.deviceHours, 0),
    usd: stages.reduce((a, s) => a + s.usd, 0),
  }
  return { rows, stages, total, free, uncounted, devicesUsed: [...used.values()], price: o.price, prices: o.prices }
}

/** FLOPs with an SI prefix (e.g. "6,140 PFLOP", "4.3 TFLOP"). */
export function formatFlops(f: number): string {
  const units: [number, string][] = [
    [1e15, 'PFLOP'],
    [1e12, 'TFLOP'],
    [1e9, 'GFLOP'],
    [1e6, 'MFLOP'],
  ]
  for (const [scale, unit] of units) {
    if (f >= scale) return `${(f / scale).toLocaleString('en-US', { maximumFractionDigits: f / scale >= 100 ? 0 : 1 })} ${unit}`
  }
  return `${Math.round(f)} FLOP`
}

const hoursText = (h: number): string =>
  h >= 1
    ? `${h.toLocaleString('en-US', { maximumFractionDigits: 1 })} h`
    : `${(h * 60).toLocaleString('en-US', { maximumFractionDigits: 1 })} min`
const usdText = (u: number): string => `$${u.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`

/** The per-stage table, the total, and the assumptions it rests on. */
export function estimateText(e: Estimate): string {
  const head = ['stage', 'to run', 'compute (upper bound)', 'device', 'longest instance', 'device-hours', 'cost']
  const body = e.stages.map((s) => [
    s.stage,
    String(s.instances),
    formatFlops(s.flops),
    s.device,
    hoursText(s.hours),
    e.total.deviceHours > 0 ? s.deviceHours.toFixed(s.deviceHours >= 10 ? 0 : 2) : '0',
    usdText(s.usd),
  ])
  body.push([
    'total',
    String(e.total.instances),
    formatFlops(e.total.flops),
    '',
    '',
    e.total.deviceHours.toFixed(e.total.deviceHours >= 10 ? 0 : 2),
    usdText(e.total.usd),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 || i === 3 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  const out = [line(head), ...body.map(line)]
  out.push('')
  out.push(
    `${e.free} instance(s) fresh or restorable from the store: no cost${e.uncounted > 0 ? `; ${e.uncounted} that would run do no counted arithmetic (data, figures, audit)` : ''}.`,
  )
  let tablePrices = false
  for (const d of e.devicesUsed) {
    const own = e.prices?.[d.id]
    tablePrices ||= e.price === undefined && own === undefined
    const price =
      e.price !== undefined
        ? `$${e.price}/device-hour (--price)`
        : own !== undefined
          ? `$${own}/device-hour (pipeline.yaml estimate.prices)`
          : `$${d.usdPerHour.toFixed(4)}/device-hour (${d.priceNote}; ${d.priceSource}, ${d.priceAsOf})`
    out.push(
      `${d.id}: ${d.label}, ${formatFlops(d.flopsPerSecond)}/s sustained (${d.throughputSource === 'measured' ? 'measured' : 'ASSUMED'}: ${d.throughputNote}); ${price}.`,
    )
  }
  out.push('Upper bounds: every run counted to its iteration cap, every probe to its HVP budget (gradient = 3.5, HVP = 15 forward passes).')
  if (tablePrices)
    out.push(
      "Table prices are 2024 AWS list prices, recalled and not re-checked (no internet access where the table was written): set estimate.prices in pipeline.yaml or pass --price for today's.",
    )
  return `${out.join('\n')}\n`
}

/** The estimate as one JSON object (`--json`). */
export function estimateJson(e: Estimate): object {
  return {
    type: 'estimate',
    total: e.total,
    stages: e.stages,
    instances: e.rows,
    free: e.free,
    uncounted: e.uncounted,
    devices: e.devicesUsed,
  }
}

export interface ConfirmIo {
  /** Both stdin and stdout are terminals. */
  interactive: boolean
  /** Asks the question; resolves to the answer line. */
  ask: (question: string) => Promise<string>
}

/**
 * Before a paid run: proceed when the total is at most `threshold` USD or `yes` was given; else ask
 * on a terminal, and refuse with a one-line message anywhere else (never prompt a pipe or CI).
 */
export async function confirmCost(
  total: number,
  o: { yes: boolean; threshold: number },
  io: ConfirmIo,
): Promise<{ ok: true } | { ok: false; message: string }> {
  if (o.yes || total <= o.threshold) return { ok: true }
  const amount = usdText(total)
  if (!io.interactive)
    return {
      ok: false,
      message: `the estimated cost ${amount} is above the confirmation threshold ${usdText(o.threshold)} and there is no terminal to ask: pass --yes to run anyway (or --dry-run --estimate to see the table)`,
    }
  const answer = (await io.ask(`Estimated cost ${amount} (above ${usdText(o.threshold)}). Submit the jobs? [y/N] `)).trim().toLowerCase()
  return answer === 'y' || answer === 'yes'
    ? { ok: true }
    : { ok: false, message: `not confirmed: nothing was submitted (estimated cost ${amount})` }
}
