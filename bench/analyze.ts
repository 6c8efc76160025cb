/**
 * `npm run bench -- analyze [instances]`: how long `analyze()` takes on a pipeline of about
 * 200 instances (prepare -> train matrix -> probe per train -> figures over all), cold (first
 * call in a process: ajv compiles the stage schemas, the JIT is cold; this is what one CLI
 * invocation pays) and warm (median and minimum of repeated calls after a warm-up). The peer is the floor: parsing the same YAML with `yaml.parse` alone.
 * Prints one JSON line.
 */
import { performance } from 'node:perf_hooks'
import { parse } from 'yaml'
import { analyze, memoryReader } from '../src/harness/analyzer.ts'
import { validToyProject } from '../test/harness/fixtures/broken-corpus.ts'

const target = Number(process.argv[2] ?? 200)
const per = Math.max(1, Math.round((target - 2) / 2 / 10)) // train and probe: 2 archs x 5 steps x `per` etas
const etas = Array.from({ length: per }, (_, i) => (i + 1) / 1000)
const axes = `{ arch: [cnn, mlp], eta: [${etas.join(', ')}], steps: [1, 2, 3, 4, 5] }`
const yaml = `schema: 1
stages:
  prepare-data:
    params: { source: synthetic, n: 10 }
    outputs: { dataset: file }
  train:
    matrix: ${axes}
    deps: { data: { stage: prepare-data, output: dataset } }
    outputs: { checkpoints: dir, telemetry: file }
  probe:
    matrix: ${axes}
    deps:
      ckpt: { stage: train, output: checkpoints, match: [arch, eta, steps] }
      data: { stage: prepare-data, output: dataset }
    outputs: { eigen: file }
  figures:
    deps: { runs: { stage: train, output: telemetry, all: true }, probes: { stage: probe, output: eigen, all: true } }
    outputs: { report: dir }
`
const probeSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { arch: { enum: ['cnn', 'mlp'] }, eta: { type: 'number' }, steps: { type: 'integer' }, k: { type: 'integer', default: 20 } },
}
const files = { ...validToyProject(), 'pipeline.yaml': yaml, 'schemas/stages/probe.params.schema.json': JSON.stringify(probeSchema) }
const reader = memoryReader('/bench', files)
const run = (): number => {
  const r = analyze({ file: '/bench/pipeline.yaml', reader })
  if (!r.ok) throw new Error(JSON.stringify(r.error))
  return r.value.instances.size
}
const time = (f: () => unknown): number => {
  const t0 = performance.now()
  f()
  return performance.now() - t0
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

let instances = 0
const coldMs = time(() => (instances = run()))
for (let i = 0; i < 30; i++) run() // let the JIT settle: a long-lived process (or a warm rerun) pays this
const warm = Array.from({ length: 100 }, () => time(run))
const parseOnly = Array.from({ length: 100 }, () => time(() => parse(yaml)))
// On a shared machine single runs get preempted; the minimum is the uncontended cost.
console.log(
  JSON.stringify({
    bench: 'analyze',
    instances,
    cold_ms: Number(coldMs.toFixed(2)),
    warm_median_ms: Number(median(warm).toFixed(3)),
    warm_min_ms: Number(Math.min(...warm).toFixed(3)),
    peer_yaml_parse_median_ms: Number(median(parseOnly).toFixed(3)),
    peer_yaml_parse_min_ms: Number(Math.min(...parseOnly).toFixed(3)),
  }),
)
