/**
 * How much arithmetic one instance of each science stage needs, as an upper bound, from its params
 * and the dataset and model it works on (found through its deps): the compute model behind
 * `--estimate`. Units are forward passes of the model on one example (`src/science/flops.ts`
 * counts those in FLOPs), with these ratios (the ones measured for the reference CNN: a gradient
 * costs 3.5 forward passes and a Hessian-vector product 15; PyTorch 152 ms / 537 ms / 2.49 s on
 * the same batch):
 * - train (gd): iterations x one full-batch gradient, iterations = max_iterations, else
 *   round(max_t / eta) (every run counted to its cap; runs that reach stop_loss end earlier).
 * - train (gradient-flow): per iteration a gradient and the warm-started lambda_1 refresh, counted
 *   as `flowHvps` HVPs (default 1: an ASSUMPTION, the solve starts from the last h_1; its cap
 *   eig_max_matvecs would be an upper bound 60 times larger).
 * - spectrum-probe: max_matvecs HVPs (the solver's budget) plus a gradient.
 * - cusp-scan: max_matvecs HVPs for h_1 plus `points` loss evaluations.
 * - anything else (data preparation, download, figures, audit): no arithmetic worth counting.
 * This module knows the science stages' names and params; the harness knows none of it.
 */
import type { StageInstance } from '../harness/types.ts'
import type { Arch } from '../science/models.ts'
import { forwardFlops, type FlopSpec } from '../science/flops.ts'

export const GRADIENT_FORWARDS = 3.5
export const HVP_FORWARDS = 15

export interface InstanceCost {
  /** Upper bound on the instance's floating-point operations. */
  flops: number
  /** How the bound was reached, in one line (e.g. "40,000 it x gradient on 50,000 x 29.9 MFLOP"). */
  basis: string
}

export interface CostOptions {
  /** HVPs per gradient-flow iteration for the warm-started lambda_1 (default 1). */
  flowHvps?: number
}

type Lookup = (id: string) => StageInstance | undefined

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)
const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 1 })

/** The input shape of a prepare-data instance's images. */
function inputShape(data: StageInstance): [number, number, number] {
  const p = data.params
  if (p.source === 'cifar10') return [32, 32, 3]
  if (p.source === 'synthetic') {
    const s = (p.synthetic ?? {}) as Record<string, unknown>
    return [num(s.height) ?? 8, num(s.width) ?? 8, num(s.channels) ?? 1]
  }
  return [28, 28, 1] // idx: Fashion-MNIST
}

/** Examples and classes of a prepare-data instance. */
function dataSize(data: StageInstance): { n: number; classes: number } {
  const c = data.params.classes
  const classes = Array.isArray(c) ? c.length : (num(c) ?? 10)
  const n =
    num(data.params.n_data) ??
    (data.params.source === 'synthetic'
      ? classes * (num((data.params.synthetic as Record<string, unknown> | undefined)?.per_class) ?? 100)
      : 0)
  return { n, classes }
}

/** The instance a dep named `as` points to. */
function dep(inst: StageInstance, as: string, lookup: Lookup): StageInstance | undefined {
  const d = inst.deps.find((x) => x.as === as)
  return d === undefined ? undefined : lookup(d.instance)
}

/** The model (arch, sizes) a train instance trains, on the dataset it reads. */
function modelOf(train: StageInstance, data: StageInstance): FlopSpec {
  const p = train.params
  const { classes } = dataSize(data)
  return {
    arch: (typeof p.arch === 'string' ? p.arch : 'mlp') as Arch,
    inputShape: inputShape(data),
    classes,
    ...(Array.isArray(p.hidden) ? { hidden: p.hidden.filter((x): x is number => typeof x === 'number') } : {}),
    ...(num(p.width) !== undefined ? { width: num(p.width) as number } : {}),
    ...(p.pool === 'max' || p.pool === 'avg' ? { pool: p.pool } : {}),
  }
}

/** Iterations a train instance runs at most. */
export function trainIterations(p: StageInstance['params']): number {
  const cap = num(p.max_iterations)
  if (cap !== undefined) return cap
  const eta = num(p.eta) ?? 0.1
  return Math.round((num(p.max_t) ?? 40) / eta)
}

/** The upper-bound cost of one instance, or undefined when its stage does no counted arithmetic. */
export function instanceCost(inst: StageInstance, lookup: Lookup, o: CostOptions = {}): InstanceCost | undefined {
  const impl = inst.impl.replace(/^stages\//, '')
  const p = inst.params
  if (impl === 'train') {
    const data = dep(inst, 'data', lookup)
    if (data === undefined) return undefined
    const spec = modelOf(inst, data)
    const fwd = forwardFlops(spec)
    const { n } = dataSize(data)
    const it = trainIterations(p)
    const flow = p.mode === 'gradient-flow'
    const perIt = GRADIENT_FORWARDS + (flow ? (o.flowHvps ?? 1) * HVP_FORWARDS : 0)
    return {
      flops: it * perIt * fwd * n,
      basis: `${fmt(it)} it x ${flow ? `(gradient + ${o.flowHvps ?? 1} HVP)` : 'gradient'} on ${fmt(n)} x ${spec.arch} ${fmt(fwd / 1e6)} MFLOP`,
    }
  }
  if (impl === 'spectrum-probe' || impl === 'cusp-scan') {
    const train = dep(inst, 'checkpoints', lookup)
    const data = dep(inst, 'data', lookup) ?? (train !== undefined ? dep(train, 'data', lookup) : undefined)
    if (train === undefined || data === undefined) return undefined
    const spec = modelOf(train, data)
    const fwd = forwardFlops(spec)
    const { n } = dataSize(data)
    const hvps = num(p.max_matvecs) ?? (impl === 'spectrum-probe' ? 600 : 300)
    const extra = impl === 'spectrum-probe' ? GRADIENT_FORWARDS : (num(p.points) ?? 61)
    const what = impl === 'spectrum-probe' ? `${fmt(hvps)} HVP + gradient` : `${fmt(hvps)} HVP + ${fmt(extra)} losses`
    return { flops: (hvps * HVP_FORWARDS + extra) * fwd * n, basis: `${what} on ${fmt(n)} x ${spec.arch} ${fmt(fwd / 1e6)} MFLOP` }
  }
  return undefined
}
