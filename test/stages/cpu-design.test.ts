// The cpu profile's design rule "no planned instance can do no work": every spectrum-probe of the
// real pipeline.yaml names a checkpoint its train run is guaranteed to write (a fixed-length run,
// stop_loss 0, that checkpoints at that iteration), and every run the profile trains is probed or
// scanned. Checked on the analyzed plan, so it fails as soon as a matrix names an unreachable iteration.
import t from 'tap'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import type { StageInstance } from '../../src/harness/types.ts'
import { ROOT } from './fixtures.ts'

/** Iterations a fixed-length train instance writes (train-loop.ts: n % every, dense n <= until, the last). */
function written(p: Record<string, unknown>): { iterations: Set<number>; fixed: boolean; cadence: number } {
  const eta = p.eta as number
  const max = (p.max_iterations as number | undefined) ?? Math.round((p.max_t as number) / eta)
  const every = (p.checkpoint_every as number | undefined) ?? (p.mode === 'gradient-flow' ? 100 : Math.max(1, Math.round(1 / eta)))
  const its = new Set<number>()
  for (let n = 0; n <= max; n++) {
    const dense =
      p.dense_every !== undefined && n % (p.dense_every as number) === 0 && n <= ((p.dense_until as number | undefined) ?? Infinity)
    if (n % every === 0 || dense || n === max) its.add(n)
  }
  return { iterations: its, fixed: p.stop_loss === 0 && p.mode !== 'gradient-flow', cadence: every }
}

t.test('cpu profile: every probe reads a checkpoint its fixed-length run is sure to write', async (t) => {
  const r = analyze({ file: `${ROOT}/pipeline.yaml`, profile: 'cpu', reader: nodeReader(ROOT) })
  if (!r.ok) throw new Error(JSON.stringify(r.error).slice(0, 500))
  const all = [...r.value.instances.values()] as StageInstance[]
  const byId = new Map(all.map((i) => [i.id, i]))
  const probes = all.filter((i) => i.impl === 'stages/spectrum-probe')
  t.ok(probes.length > 0, `${probes.length} probes (the filter found the profile's probes)`)
  const probed = new Set<string>()
  for (const probe of probes) {
    const dep = probe.deps.find((d) => d.as === 'checkpoints')
    const run = dep && byId.get(dep.instance)
    if (!run) {
      t.fail(`${probe.id}: no train instance`)
      continue
    }
    probed.add(run.id)
    const w = written(run.params)
    const it = (probe.params.iteration as number | undefined) ?? (probe.params.checkpoint as number) * w.cadence
    if (!w.fixed || !w.iterations.has(it))
      t.fail(`${probe.id} reads iteration ${it}, which ${run.id} ${w.fixed ? 'never writes' : 'may not reach (not fixed-length)'}`)
  }
  t.pass(`${probes.length} probes checked`)
  const scanned = new Set(
    all.filter((i) => i.stage === 'cusp-scan').flatMap((i) => i.deps.filter((d) => d.as === 'checkpoints').map((d) => d.instance)),
  )
  for (const run of all.filter((i) => i.impl === 'stages/train'))
    t.ok(probed.has(run.id) || scanned.has(run.id), `${run.id} is probed or scanned`)
  // the regime: the small etas are 8x below the largest, per activation
  const etas = (act: string): number[] =>
    all.filter((i) => i.stage === 'train' && i.params.activation === act).map((i) => i.params.eta as number)
  for (const act of ['relu', 'tanh']) t.ok(Math.max(...etas(act)) / Math.min(...etas(act)) >= 8 - 1e-9, `${act}: eta span >= 8x`)
  const flows = all.filter((i) => i.stage === 'train-flow' && i.params.activation === 'relu')
  t.ok(
    new Set(flows.map((f) => f.params.n_data)).size >= 4 && new Set(flows.map((f) => f.params.seed)).size >= 2,
    'C4: >= 4 n_D x >= 2 seeds',
  )
  // C2: >= 2 dense MLP runs, each with >= 20 uniformly spaced probes (the chance null assumes a jump at
  // a uniformly random probe): with P = 20 probes an entry coincides by chance with p0 <= 3/19, so
  // N entries all coinciding give p <= (3/19)^N, 0.025 for N = 2 (< alpha 0.05; one entry never can).
  const dense = all.filter((i) => i.impl === 'stages/spectrum-probe' && i.stage.startsWith('probe-dense') && i.stage !== 'probe-dense-cnn')
  const denseRuns = new Map<string, number[]>()
  for (const p of dense) {
    const run = p.deps.find((d) => d.as === 'checkpoints')!.instance
    denseRuns.set(run, [...(denseRuns.get(run) ?? []), p.params.iteration as number])
  }
  t.ok(denseRuns.size >= 2, `C2: ${denseRuns.size} dense MLP runs`)
  for (const [run, its] of denseRuns) {
    const kept = its.filter((n) => n > 0).sort((a, b) => a - b)
    const steps = new Set(kept.slice(1).map((n, j) => n - kept[j]!))
    t.ok(kept.length >= 19 && steps.size === 1, `${run}: ${kept.length} probes after t = 0, uniformly spaced`)
  }
  // C3: a run whose top subspace (n_c - 1 = 1 direction) reaches rho > 0.7: the 2-class pair, probed at t >= 6
  const pair = all.filter((i) => i.stage === 'probe-pair')
  t.ok(pair.filter((p) => (p.params.checkpoint as number) >= 6).length >= 5, 'C3: >= 5 probes of the 2-class run at t >= 6')
})
