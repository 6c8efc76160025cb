/**
 * The analyzer on valid pipelines: matrix expansion and ids, exclude, profiles, --set,
 * defaults filled from params schemas, all/where/match resolution, deterministic order, and
 * that formatting (flow vs block, comments, key order) does not change the instances.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { analyze, memoryReader, nodeReader } from '../../src/harness/analyzer.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import type { StageInstance, ValidPipeline } from '../../src/harness/types.ts'
import { VALID_PIPELINE, validToyProject } from './fixtures/broken-corpus.ts'

const ROOT = '/project'
const FILE = `${ROOT}/pipeline.yaml`

function run(files: Record<string, string>, extra: { profile?: string; overrides?: string[] } = {}): ValidPipeline {
  const r = analyze({ file: FILE, reader: memoryReader(ROOT, files), ...extra })
  if (!r.ok) throw new Error(`expected a valid pipeline, got:\n${r.error.map(formatFailure).join('\n')}`)
  return r.value
}

const withYaml = (yaml: string): Record<string, string> => ({ ...validToyProject(), 'pipeline.yaml': yaml })
const inst = (p: ValidPipeline, id: string): StageInstance => {
  const i = p.instances.get(id)
  if (!i) throw new Error(`no instance ${id}; have ${[...p.instances.keys()].join(', ')}`)
  return i
}

t.test('matrix expansion, exclude, ids and defaults', async (t) => {
  const p = run(validToyProject())
  t.same([...p.instances.keys()].sort(), [
    'figures',
    'prepare-data',
    'probe@arch=cnn',
    'probe@arch=mlp',
    'train@arch=cnn,eta=0.01',
    'train@arch=cnn,eta=0.02',
    'train@arch=mlp,eta=0.01',
  ])
  t.equal(p.file, FILE)
  t.equal(p.root, ROOT)
  t.equal(p.profile, undefined)
  const tr = inst(p, 'train@arch=cnn,eta=0.02')
  t.same(tr.matrix, { arch: 'cnn', eta: 0.02 })
  t.strictSame(tr.params, { arch: 'cnn', eta: 0.02, mode: 'gd', steps: 100 }, 'matrix values + params + schema default (mode)')
  t.same(Object.keys(tr.params), ['arch', 'eta', 'mode', 'steps'], 'params keys sorted')
  t.equal(tr.impl, 'stages/train')
  t.same(tr.outputs, [
    { name: 'checkpoints', kind: 'dir' },
    { name: 'telemetry', kind: 'file' },
  ])
  t.same(tr.resources, { cpu: 1, memory: '2Gi', gpu: 0 })
  t.strictSame(inst(p, 'prepare-data').params, { n: 100, seed: 0, source: 'synthetic' })
  t.same(inst(p, 'prepare-data').matrix, {})
  t.strictSame(inst(p, 'figures').params, { format: 'svg' }, 'defaults filled for a stage without params')
})

t.test('all / where / match resolution', async (t) => {
  const p = run(validToyProject())
  t.same(inst(p, 'train@arch=mlp,eta=0.01').deps, [{ as: 'data', instance: 'prepare-data', output: 'dataset' }])
  t.same(inst(p, 'probe@arch=cnn').deps, [
    { as: 'ckpt', instance: 'train@arch=cnn,eta=0.01', output: 'checkpoints' },
    { as: 'ckpt', instance: 'train@arch=cnn,eta=0.02', output: 'checkpoints' },
    { as: 'data', instance: 'prepare-data', output: 'dataset' },
  ])
  t.same(
    inst(p, 'probe@arch=mlp')
      .deps.filter((d) => d.as === 'ckpt')
      .map((d) => d.instance),
    ['train@arch=mlp,eta=0.01'],
    'excluded combination is not a dep',
  )
  const fig = inst(p, 'figures').deps
  t.same(
    fig.filter((d) => d.as === 'runs').map((d) => d.instance),
    ['train@arch=cnn,eta=0.01', 'train@arch=cnn,eta=0.02', 'train@arch=mlp,eta=0.01'],
  )
  t.same(
    fig.filter((d) => d.as === 'cnn').map((d) => d.instance),
    ['train@arch=cnn,eta=0.01', 'train@arch=cnn,eta=0.02'],
  )
  t.ok(fig.every((d) => d.output === 'telemetry'))

  // where on a param that is not a matrix axis, and match on two keys.
  const yaml = `schema: 1
stages:
  train:
    matrix: { arch: [cnn, mlp], eta: [0.01, 0.02] }
    params: { steps: 7 }
    outputs: { checkpoints: dir }
  probe:
    matrix: { arch: [cnn, mlp] }
    params: { k: 3 }
    deps:
      ckpt: { stage: train, output: checkpoints, match: [arch], where: { eta: 0.02 } }
    outputs: { eigen: file }
  figures:
    deps:
      few: { stage: train, output: checkpoints, where: { steps: 7, arch: mlp } }
      probes: { stage: probe, output: eigen, where: { k: 3 } }
    outputs: { report: dir }
`
  const q = run(withYaml(yaml))
  t.same(inst(q, 'probe@arch=mlp').deps, [{ as: 'ckpt', instance: 'train@arch=mlp,eta=0.02', output: 'checkpoints' }])
  t.same(
    inst(q, 'figures').deps.map((d) => `${d.as}:${d.instance}`),
    ['few:train@arch=mlp,eta=0.01', 'few:train@arch=mlp,eta=0.02', 'probes:probe@arch=cnn', 'probes:probe@arch=mlp'],
  )
})

t.test('deterministic topological order: deps first, ties by id', async (t) => {
  const p = run(validToyProject())
  t.same(p.order, [
    'prepare-data',
    'train@arch=cnn,eta=0.01',
    'train@arch=cnn,eta=0.02',
    'probe@arch=cnn', // ready before train@arch=mlp,... and smaller
    'train@arch=mlp,eta=0.01',
    'figures',
    'probe@arch=mlp',
  ])
  t.same([...p.instances.keys()], p.order, 'the instances map iterates in order')
  const pos = new Map(p.order.map((id, i) => [id, i]))
  for (const i of p.instances.values()) for (const d of i.deps) t.ok(pos.get(d.instance)! < pos.get(i.id)!, `${d.instance} before ${i.id}`)
  t.same(run(validToyProject()).order, p.order, 'same input, same order')
})

t.test('profiles: params deep-merged, matrix axes replaced, default_profile and --profile', async (t) => {
  const yaml = VALID_PIPELINE.replace(
    'profiles:\n',
    `profiles:
  nested:
    stages:
      train: { params: { mode: gradient-flow }, matrix: { eta: [0.3], steps: [1, 2] }, exclude: [], resources: { gpu: 1 } }
`,
  )
  const smoke = run(withYaml(yaml), { profile: 'smoke' })
  t.equal(smoke.profile, 'smoke')
  t.same(
    [...smoke.instances.keys()].filter((k) => k.startsWith('train')).sort(),
    ['train@arch=cnn,eta=0.1', 'train@arch=mlp,eta=0.1'],
    'eta axis replaced, arch kept',
  )
  t.equal(inst(smoke, 'train@arch=mlp,eta=0.1').params['steps'], 5)

  const viaDefault = run(withYaml(`default_profile: smoke\n${yaml}`))
  t.equal(viaDefault.profile, 'smoke')
  t.same([...viaDefault.instances.keys()], [...smoke.instances.keys()])
  t.equal(run(withYaml(`default_profile: smoke\n${yaml}`), { profile: 'nested' }).profile, 'nested', '--profile wins over default_profile')

  const nested = run(withYaml(yaml), { profile: 'nested' })
  t.same(
    [...nested.instances.keys()].filter((k) => k.startsWith('train')).sort(),
    [
      'train@arch=cnn,eta=0.3,steps=1',
      'train@arch=cnn,eta=0.3,steps=2',
      'train@arch=mlp,eta=0.3,steps=1',
      'train@arch=mlp,eta=0.3,steps=2',
    ],
    'axis replaced in place, new axis appended, exclude replaced by the empty list',
  )
  const n = inst(nested, 'train@arch=mlp,eta=0.3,steps=2')
  t.same(n.resources, { cpu: 1, memory: '2Gi', gpu: 1 })
  t.strictSame(n.params, { arch: 'mlp', eta: 0.3, mode: 'gradient-flow', steps: 2 }, 'profile params merged, new axis is a param')
  t.same(Object.keys(n.matrix), ['arch', 'eta', 'steps'])

  // Deep merge: nested params objects merge key by key.
  const deep = `schema: 1
stages:
  figures:
    params: { style: { width: 3, height: 4 } }
    outputs: { report: dir }
profiles:
  wide:
    stages:
      figures: { params: { style: { width: 8 } } }
`
  const files = { ...withYaml(deep), 'schemas/stages/figures.params.schema.json': '{"type":"object"}' }
  t.same(inst(run(files, { profile: 'wide' }), 'figures').params, { style: { height: 4, width: 8 } })
  t.same(inst(run(files), 'figures').params, { style: { height: 4, width: 3 } })
})

t.test('--set overrides params and pins matrix axes', async (t) => {
  const p = run(validToyProject(), { overrides: ['train.steps=7', 'prepare-data.source=cifar10', 'probe.k=5'] })
  t.equal(inst(p, 'train@arch=cnn,eta=0.01').params['steps'], 7)
  t.equal(inst(p, 'prepare-data').params['source'], 'cifar10')
  t.equal(inst(p, 'probe@arch=mlp').params['k'], 5)

  const pinned = run(validToyProject(), { overrides: ['train.eta=0.5'] })
  t.same(
    [...pinned.instances.keys()].filter((k) => k.startsWith('train')).sort(),
    ['train@arch=cnn,eta=0.5', 'train@arch=mlp,eta=0.5'],
    'a --set of a matrix axis replaces the axis with that single value',
  )
  t.equal(typeof inst(pinned, 'train@arch=mlp,eta=0.5').params['eta'], 'number', 'values parse as YAML scalars')

  const afterProfile = run(validToyProject(), { profile: 'smoke', overrides: ['train.steps=3'] })
  t.equal(inst(afterProfile, 'train@arch=cnn,eta=0.1').params['steps'], 3, '--set wins over the profile')

  const nested = `schema: 1
stages:
  figures:
    params: { style: { width: 3, height: 4 } }
    outputs: { report: dir }
`
  const files = { ...withYaml(nested), 'schemas/stages/figures.params.schema.json': '{"type":"object"}' }
  const q = run(files, { overrides: ['figures.style.width=10', 'figures.tags=[a, b]', "figures.label=''"] })
  t.same(inst(q, 'figures').params, { label: '', style: { height: 4, width: 10 }, tags: ['a', 'b'] })
})

t.test('YAML formatting and key order do not change the instances', async (t) => {
  const block = `schema: 1
stages:
  prepare-data:
    params:
      source: synthetic
      n: 100
    outputs:
      dataset: file
      manifest: file
  train:
    matrix:
      arch:
        - cnn
        - mlp
      eta: [0.01, 0.02]
    exclude:
      - arch: mlp
        eta: 0.02
    params:
      steps: 100
    deps:
      data:
        stage: prepare-data
        output: dataset
    outputs:
      checkpoints: dir
      telemetry: file
`
  const reordered = `# the same pipeline, written differently
stages:   # stages first, reversed; keys shuffled; matrix axes keep their order (they make the ids)
  train: {outputs: {telemetry: file, checkpoints: dir}, deps: {data: {output: dataset, stage: prepare-data}},
          params: {steps: 100}, exclude: [{eta: 0.02, arch: mlp}], matrix: {arch: [cnn, mlp], eta: [0.01, 0.02]}}
  "prepare-data":
    outputs: { manifest: file, dataset: file }   # reordered
    params: { n: 100, source: 'synthetic' }
schema: 1
`
  const a = run(withYaml(block))
  const b = run(withYaml(reordered))
  t.strictSame([...b.instances.entries()], [...a.instances.entries()])
  t.equal(JSON.stringify([...b.instances.values()]), JSON.stringify([...a.instances.values()]), 'byte-identical serialisation')
  t.same(b.order, a.order)
})

t.test('anchors, aliases and merge keys expand like the written-out pipeline', async (t) => {
  const shared = `schema: 1
x-common: &common { source: synthetic }
stages:
  prepare-data:
    params: { <<: *common, n: 100 }
    outputs: &outs { dataset: file, manifest: file }
  train:
    matrix: { arch: &archs [cnn, mlp], eta: [0.01] }
    deps: { data: { stage: prepare-data, output: dataset } }
    outputs: { checkpoints: dir, telemetry: file }
`
  const plain = `schema: 1
stages:
  prepare-data:
    params: { source: synthetic, n: 100 }
    outputs: { dataset: file, manifest: file }
  train:
    matrix: { arch: [cnn, mlp], eta: [0.01] }
    deps: { data: { stage: prepare-data, output: dataset } }
    outputs: { checkpoints: dir, telemetry: file }
`
  // x-common is not a known top-level key, so it must be rejected; without it the anchors live inline.
  const r = analyze({ file: FILE, reader: memoryReader(ROOT, withYaml(shared)) })
  t.equal(r.ok, false, 'unknown top-level key x-common is still an error')
  const inline = shared
    .replace('x-common: &common { source: synthetic }\n', '')
    .replace('{ <<: *common, n: 100 }', '&p { source: synthetic, n: 100 }')
  t.strictSame([...run(withYaml(inline)).instances.entries()], [...run(withYaml(plain)).instances.entries()])
  const merged = `schema: 1
stages:
  prepare-data:
    params: &base { source: synthetic, n: 100 }
    outputs: { dataset: file, manifest: file }
  train:
    matrix: { arch: [cnn, mlp], eta: [0.01] }
    deps: { data: { stage: prepare-data, output: dataset } }
    outputs: { checkpoints: dir, telemetry: file }
profiles:
  p:
    stages:
      prepare-data: { params: { <<: *base, n: 5 } }
`
  const m = run(withYaml(merged), { profile: 'p' })
  t.strictSame(inst(m, 'prepare-data').params, { n: 5, seed: 0, source: 'synthetic' }, 'merge key (<<) with an override')
})

t.test('an analysis of 200 instances is complete and consistent', async (t) => {
  const etas = Array.from({ length: 10 }, (_, i) => (i + 1) / 100)
  const yaml = `schema: 1
stages:
  prepare-data:
    params: { source: synthetic, n: 10 }
    outputs: { dataset: file }
  train:
    matrix: { arch: [cnn, mlp], eta: [${etas.join(', ')}], steps: [1, 2, 3, 4, 5] }
    deps: { data: { stage: prepare-data, output: dataset } }
    outputs: { checkpoints: dir }
  probe:
    matrix: { arch: [cnn, mlp], eta: [${etas.join(', ')}], steps: [1, 2, 3, 4, 5] }
    deps: { ckpt: { stage: train, output: checkpoints, match: [arch, eta, steps] } }
    outputs: { eigen: file }
  figures:
    deps: { all: { stage: probe, output: eigen, all: true } }
    outputs: { report: dir }
`
  const files = {
    ...withYaml(yaml),
    'schemas/stages/probe.params.schema.json': JSON.stringify({
      type: 'object',
      properties: { arch: { type: 'string' }, eta: { type: 'number' }, steps: { type: 'integer' } },
    }),
  }
  const p = run(files)
  t.equal(p.instances.size, 202)
  t.equal(p.order.length, 202)
  t.equal(p.order[0], 'prepare-data')
  t.equal(p.order.at(-1), 'figures')
  t.equal(inst(p, 'figures').deps.length, 100)
  t.same(inst(p, 'probe@arch=mlp,eta=0.07,steps=3').deps, [
    { as: 'ckpt', instance: 'train@arch=mlp,eta=0.07,steps=3', output: 'checkpoints' },
  ])
})

t.test('nodeReader reads a real project directory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-analyzer-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [rel, text] of Object.entries(validToyProject())) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
  const reader = nodeReader(dir)
  t.equal(reader.readFile('missing.txt'), undefined)
  t.ok(reader.exists('stages/train/index.ts'))
  t.ok(reader.exists('stages/train'))
  t.notOk(reader.exists('stages/nope/index.ts'))
  const r = analyze({ file: join(dir, 'pipeline.yaml'), reader })
  t.ok(r.ok)
  if (r.ok) t.equal(r.value.instances.size, 7)
  const missing = analyze({ file: join(dir, 'nope.yaml'), reader })
  t.equal(missing.ok, false)
  if (!missing.ok) t.match(formatFailure(missing.error[0]!), /nope\.yaml does not exist/)
})
