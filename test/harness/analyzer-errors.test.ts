/**
 * One test per failure reason the analyzer can report: each asserts the reason, that the
 * formatted message starts with `pipeline.yaml:<line>:<col>: <path>:` at the exact spot
 * (computed from the text by locating a unique marker, not copied from the output), and
 * that it says what to do. Also: every error is collected in one pass, not only the first.
 */
import t, { type Test } from 'tap'
import { analyze, memoryReader } from '../../src/harness/analyzer.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import type { Failure } from '../../src/harness/types.ts'
import { validToyProject } from './fixtures/broken-corpus.ts'

const ROOT = '/p'

const BASE = `schema: 1
stages:
  prep:
    impl: prepare-data
    params: { source: synthetic, n: 100 }
    outputs: { dataset: file }
  train:
    matrix:
      arch: [cnn, mlp]
      eta: [0.01, 0.02]
    params: { steps: 100 }
    deps:
      data: { stage: prep, output: dataset }
    outputs: { checkpoints: dir, telemetry: file }
profiles:
  smoke:
    stages:
      train: { params: { steps: 5 } }
`

function failures(
  yaml: string,
  extra: { profile?: string; overrides?: string[]; files?: Record<string, string | undefined> } = {},
): Failure[] {
  const files: Record<string, string> = { ...validToyProject(), 'pipeline.yaml': yaml }
  for (const [k, v] of Object.entries(extra.files ?? {})) {
    if (v === undefined) delete files[k]
    else files[k] = v
  }
  const r = analyze({
    file: `${ROOT}/pipeline.yaml`,
    reader: memoryReader(ROOT, files),
    profile: extra.profile,
    overrides: extra.overrides,
  })
  if (r.ok) throw new Error('expected the analysis to fail')
  return r.error
}

/** `line:col` (1-based) of the `nth` occurrence of `marker` in `text`. */
function pos(text: string, marker: string, nth = 1): string {
  let i = -1
  for (let k = 0; k < nth; k++) {
    i = text.indexOf(marker, i + 1)
    if (i < 0) throw new Error(`marker ${JSON.stringify(marker)} not found`)
  }
  const before = text.slice(0, i).split('\n')
  return `${before.length}:${before.at(-1)!.length + 1}`
}

/** Exactly one failure, of `reason`, formatted as `pipeline.yaml:<at>: <path>: ...`. */
function one(t: Test, fs: Failure[], reason: Failure['reason'], at: string, path: string, ...more: RegExp[]): string {
  t.equal(fs.length, 1, `one failure: ${fs.map(formatFailure).join(' | ')}`)
  const f = fs[0]!
  t.equal(f.reason, reason)
  const text = formatFailure(f)
  t.ok(text.startsWith(`pipeline.yaml:${at}: ${path}:`), `"${text}" starts with pipeline.yaml:${at}: ${path}:`)
  for (const re of more) t.match(text, re)
  return text
}

const edit = (from: string, to: string): string => {
  if (!BASE.includes(from)) throw new Error(`${from} not in BASE`)
  return BASE.replace(from, to)
}

t.test('the base pipeline is valid', async (t) => {
  const r = analyze({ file: `${ROOT}/pipeline.yaml`, reader: memoryReader(ROOT, { ...validToyProject(), 'pipeline.yaml': BASE }) })
  t.ok(r.ok, r.ok ? '' : r.error.map(formatFailure).join('\n'))
})

t.test('yaml-syntax', async (t) => {
  const y = edit('arch: [cnn, mlp]', 'arch: [cnn, mlp')
  const fs = failures(y)
  t.ok(fs.length >= 1)
  t.ok(fs.every((f) => f.reason === 'yaml-syntax'))
  t.match(formatFailure(fs[0]!), /^pipeline\.yaml:\d+:\d+: stages\.train\.matrix.*: invalid YAML: .*\. Fix the syntax/)
  const dup = edit('  train:\n', '  prep:\n    outputs: { x: file }\n  train:\n')
  one(t, failures(dup), 'yaml-syntax', pos(dup, 'prep:', 2), 'stages.prep', /Map keys must be unique/)
  const alias = edit('params: { steps: 100 }', 'params: *nowhere')
  one(t, failures(alias), 'yaml-syntax', pos(alias, '*nowhere'), 'stages.train.params', /Unresolved alias/)
})

t.test('schema-violation: wrong type', async (t) => {
  const y = edit('{ steps: 100 }', '[steps]')
  one(
    t,
    failures(y),
    'schema-violation',
    pos(y, '[steps]'),
    'stages.train.params',
    /must be a mapping \(got a list\)\. Write a mapping here\./,
  )
  const r = edit('outputs: { dataset: file }', 'outputs: { dataset: folder }')
  one(t, failures(r), 'schema-violation', pos(r, 'folder'), 'stages.prep.outputs.dataset', /must be one of "file", "dir" \(got "folder"\)/)
  const s = edit('schema: 1', 'schema: 2')
  one(t, failures(s), 'schema-violation', pos(s, '2'), 'schema', /must be 1 \(got 2\)\. Change it to 1\./)
})

t.test('schema-violation: unknown key', async (t) => {
  const y = edit('    params: { steps: 100 }', '    parms: { steps: 100 }')
  one(
    t,
    failures(y),
    'schema-violation',
    pos(y, 'parms'),
    'stages.train.parms',
    /unknown key "parms"\. Remove it or fix its spelling\. Did you mean "params"\? Allowed keys here: impl, enabled, provenance, params/,
  )
  const far = edit('    params: { steps: 100 }', '    colour: blue\n    params: { steps: 100 }')
  t.notMatch(formatFailure(failures(far)[0]!), /Did you mean/, 'no suggestion when nothing is close')
})

t.test('schema-violation: bad names explain the rule', async (t) => {
  const y = edit('  train:\n', '  Train:\n').replace('stage: prep,', 'stage: prep,')
  const fs = failures(y)
  t.equal(fs[0]!.reason, 'schema-violation')
  t.ok(
    formatFailure(fs[0]!).startsWith(
      `pipeline.yaml:${pos(y, 'Train')}: stages.Train: name "Train" is not allowed: stage names are lowercase letters, digits and '-', starting with a letter. Rename it.`,
    ),
    formatFailure(fs[0]!),
  )
  const m = edit('      arch: [cnn, mlp]', '      arch-kind: [cnn, mlp]')
  t.match(formatFailure(failures(m)[0]!), /stages\.train\.matrix\.arch-kind: name "arch-kind" is not allowed: matrix axes are param names/)
})

t.test('schema-violation: missing required field', async (t) => {
  const y = edit('data: { stage: prep, output: dataset }', 'data: { stage: prep }')
  one(t, failures(y), 'schema-violation', pos(y, 'data:'), 'stages.train.deps.data.output', /missing required key "output"\. Add it\./)
})

t.test('schema-violation: all next to where', async (t) => {
  const y = `${BASE.replace(
    'profiles:',
    `  figures:
    deps: { runs: { stage: train, output: telemetry, all: true, where: { arch: cnn } } }
    outputs: { report: dir }
profiles:`,
  )}`
  one(t, failures(y), 'schema-violation', pos(y, 'all:'), 'stages.figures.deps.runs.all', /not both/)
})

t.test('params-invalid: at the param where it is written', async (t) => {
  const y = edit('{ steps: 100 }', '{ steps: fast }')
  one(
    t,
    failures(y),
    'params-invalid',
    pos(y, 'fast'),
    'stages.train.params.steps',
    /must be an integer \(got "fast"\) in train@arch=cnn,eta=0\.01 and 3 more \(per schemas\/stages\/train\.params\.schema\.json\)\. Write an integer here\./,
  )
})

t.test('params-invalid: in the profile when written there', async (t) => {
  const y = edit('{ params: { steps: 5 } }', '{ params: { steps: 0 } }')
  one(t, failures(y, { profile: 'smoke' }), 'params-invalid', pos(y, '0 } }'), 'profiles.smoke.stages.train.params.steps', /must be >= 1/)
})

t.test('params-invalid: on a matrix value', async (t) => {
  const y = edit('[cnn, mlp]', '[cnn, rnn]')
  one(
    t,
    failures(y),
    'params-invalid',
    pos(y, 'rnn'),
    'stages.train.params.arch',
    /must be one of "cnn", "mlp" \(got "rnn"\) in train@arch=rnn,eta=0\.01 and 1 more/,
  )
})

t.test('params-invalid: a missing param is reported at the stage', async (t) => {
  const y = edit('    params: { source: synthetic, n: 100 }\n', '')
  const fs = failures(y)
  t.equal(fs.length, 2)
  t.same(
    fs.map((f) => f.reason),
    ['params-invalid', 'params-invalid'],
  )
  t.ok(formatFailure(fs[0]!).startsWith(`pipeline.yaml:${pos(y, 'prep:')}: stages.prep.params.source: missing required key "source"`))
  t.ok(formatFailure(fs[1]!).startsWith(`pipeline.yaml:${pos(y, 'prep:')}: stages.prep.params.n: missing required key "n"`))
})

t.test('params-invalid: unknown param', async (t) => {
  const y = edit('{ steps: 100 }', '{ steps: 100, lr: 3 }')
  one(t, failures(y), 'params-invalid', pos(y, 'lr'), 'stages.train.params.lr', /unknown key "lr"/)
})

t.test('unknown-stage-impl', async (t) => {
  const y = edit('impl: prepare-data', 'impl: prepare')
  const fs = failures(y, { files: { 'schemas/stages/prepare.params.schema.json': '{"type":"object"}' } })
  one(
    t,
    fs,
    'unknown-stage-impl',
    pos(y, 'prepare\n'),
    'stages.prep.impl',
    /stages\/prepare\/index\.ts does not exist\. Create it, or set impl:/,
  )
})

t.test('bad-stage-schema: missing, not JSON, not a schema', async (t) => {
  const at = pos(BASE, 'train:')
  one(
    t,
    failures(BASE, { files: { 'schemas/stages/train.params.schema.json': undefined } }),
    'bad-stage-schema',
    at,
    'stages.train.impl',
    /params schema schemas\/stages\/train\.params\.schema\.json is missing/,
  )
  one(
    t,
    failures(BASE, { files: { 'schemas/stages/train.params.schema.json': '{' } }),
    'bad-stage-schema',
    at,
    'stages.train.impl',
    /is not valid JSON/,
  )
  one(
    t,
    failures(BASE, { files: { 'schemas/stages/train.params.schema.json': '{"type": 3}' } }),
    'bad-stage-schema',
    at,
    'stages.train.impl',
    /is not a valid JSON Schema/,
  )
})

t.test('dangling-dep: unknown stage', async (t) => {
  const y = edit('stage: prep,', 'stage: prepare,')
  one(
    t,
    failures(y),
    'dangling-dep',
    pos(y, 'prepare,'),
    'stages.train.deps.data.stage',
    /there is no stage named "prepare"\. Stages: prep, train\./,
  )
  const typo = edit('stage: prep,', 'stage: perp,')
  one(
    t,
    failures(typo),
    'dangling-dep',
    pos(typo, 'perp'),
    'stages.train.deps.data.stage',
    /no stage named "perp"\. Did you mean "prep"\? Stages: prep, train\./,
  )
})

t.test('dangling-dep: unknown output', async (t) => {
  const y = edit('output: dataset', 'output: data')
  one(
    t,
    failures(y),
    'dangling-dep',
    pos(y, 'data }'),
    'stages.train.deps.data.output',
    /stage prep has no output "data"\. Its outputs: dataset\./,
  )
  const typo = edit('output: dataset', 'output: datset')
  one(
    t,
    failures(typo),
    'dangling-dep',
    pos(typo, 'datset'),
    'stages.train.deps.data.output',
    /no output "datset"\. Did you mean "dataset"\?/,
  )
})

t.test('dangling-dep: matrix upstream without all/where/match', async (t) => {
  const y = BASE.replace(
    'profiles:',
    `  probe:
    deps: { ckpt: { stage: train, output: checkpoints } }
    outputs: { eigen: file }
profiles:`,
  )
  const files = { 'schemas/stages/probe.params.schema.json': '{"type":"object"}' }
  one(
    t,
    failures(y, { files }),
    'dangling-dep',
    pos(y, 'ckpt:'),
    'stages.probe.deps.ckpt',
    /stage train has a matrix, so say which of its instances: add all: true, where/,
  )
})

t.test('dangling-dep: zero matching instances', async (t) => {
  const y = BASE.replace(
    'profiles:',
    `  probe:
    matrix: { arch: [cnn, mlp] }
    deps: { ckpt: { stage: train, output: checkpoints, match: [arch], where: { eta: 0.5 } } }
    outputs: { eigen: file }
profiles:`,
  )
  one(
    t,
    failures(y),
    'dangling-dep',
    pos(y, 'ckpt:'),
    'stages.probe.deps.ckpt',
    /resolves to no instance of train for probe@arch=cnn and 1 more/,
  )
})

t.test('dangling-dep: match key missing on one side', async (t) => {
  const y = BASE.replace(
    'profiles:',
    `  probe:
    matrix: { arch: [cnn, mlp] }
    deps: { ckpt: { stage: train, output: checkpoints, match: [arch, eta] } }
    outputs: { eigen: file }
profiles:`,
  )
  one(t, failures(y), 'dangling-dep', pos(y, 'eta] }'), 'stages.probe.deps.ckpt.match[1]', /match key "eta" is not a param of stage probe/)
})

t.test('duplicate-instance-id', async (t) => {
  const y = edit('[0.01, 0.02]', '[0.01, 0.02, 0.010]')
  one(
    t,
    failures(y),
    'duplicate-instance-id',
    pos(y, '0.010'),
    'stages.train.matrix.eta[2]',
    /duplicate instance train@arch=cnn,eta=0\.01: .*Remove the duplicate/,
  )
})

t.test('cycle: reported as the trail', async (t) => {
  const y = edit(
    '    outputs: { dataset: file }\n',
    '    outputs: { dataset: file }\n    deps: { back: { stage: train, output: telemetry, all: true } }\n',
  )
  const text = one(
    t,
    failures(y),
    'cycle',
    pos(y, 'train, output: telemetry'),
    'stages.prep.deps.back.stage',
    /dependency cycle prep -> train -> prep/,
  )
  t.match(text, /Remove one of these deps/)
  const self = edit('data: { stage: prep, output: dataset }', 'data: { stage: train, output: telemetry, all: true }')
  one(t, failures(self), 'cycle', pos(self, 'train, output'), 'stages.train.deps.data.stage', /dependency cycle train -> train/)
})

t.test('bad-matrix: empty list, non-scalar values, empty matrix, bad exclude', async (t) => {
  const empty = edit('[cnn, mlp]', '[]')
  one(t, failures(empty), 'bad-matrix', pos(empty, '[]'), 'stages.train.matrix.arch', /has no values\. Give the axis at least one value/)
  const nested = edit('[cnn, mlp]', '[cnn, [mlp]]')
  one(
    t,
    failures(nested),
    'bad-matrix',
    pos(nested, '[mlp]'),
    'stages.train.matrix.arch[1]',
    /value is a list; matrix values must be scalars/,
  )
  const unsafe = edit('[cnn, mlp]', '[cnn, "../mlp"]')
  one(t, failures(unsafe), 'bad-matrix', pos(unsafe, '"../mlp"'), 'stages.train.matrix.arch[1]', /cannot appear in an instance id/)
  const none = edit(
    '    matrix:\n      arch: [cnn, mlp]\n      eta: [0.01, 0.02]\n',
    '    matrix: {}\n    params: { arch: cnn, eta: 0.1 }\n',
  ).replace('    params: { steps: 100 }\n', '')
  one(t, failures(none), 'bad-matrix', pos(none, '{}'), 'stages.train.matrix', /is empty/)
  const excl = edit('    params: { steps: 100 }\n', '    exclude: [{ depth: 1 }]\n    params: { steps: 100 }\n')
  one(
    t,
    failures(excl),
    'bad-matrix',
    pos(excl, 'depth'),
    'stages.train.exclude[0].depth',
    /"depth" is not a matrix axis of stage train \(axes: arch, eta\)/,
  )
  const all = edit('    params: { steps: 100 }\n', '    exclude: [{ arch: cnn }, { arch: mlp }]\n    params: { steps: 100 }\n')
  one(t, failures(all), 'bad-matrix', pos(all, '[{ arch'), 'stages.train.exclude', /removes every combination/)
  const values = Array.from({ length: 101 }, (_, i) => i + 1).join(', ')
  const huge = edit('    matrix:\n', `    matrix:\n      a: [${values}]\n      b: [${values}]\n`)
  one(t, failures(huge), 'bad-matrix', pos(huge, 'matrix:'), 'stages.train.matrix', /expands to 40804 combinations, more than the 10000/)
  const plain = edit('    outputs: { dataset: file }\n', '    outputs: { dataset: file }\n    exclude: [{ n: 1 }]\n')
  one(t, failures(plain), 'bad-matrix', pos(plain, 'exclude'), 'stages.prep.exclude', /has no matrix/)
})

t.test('unsafe-path: output names, impl, dep names', async (t) => {
  for (const bad of ['../x', '/abs', 'a/b']) {
    const y = edit('telemetry: file', `"${bad}": file`)
    one(
      t,
      failures(y),
      'unsafe-path',
      pos(y, `"${bad}"`),
      `stages.train.outputs[${JSON.stringify(bad)}]`,
      /is not a safe name: it (climbs|is an absolute|contains a path separator)/,
    )
    const i = edit('impl: prepare-data', `impl: "${bad}"`)
    one(t, failures(i), 'unsafe-path', pos(i, `"${bad}"`), 'stages.prep.impl', /is not a safe name/)
  }
  const d = edit('data: { stage', '"../in": { stage')
  one(t, failures(d), 'unsafe-path', pos(d, '"../in"'), 'stages.train.deps["../in"]', /climbs out of its directory/)
})

t.test('unknown-profile: from default_profile and from --profile', async (t) => {
  const y = `default_profile: gpu\n${BASE}`
  one(t, failures(y), 'unknown-profile', pos(y, 'gpu'), 'default_profile', /unknown profile "gpu"; profiles defined: smoke\./)
  one(
    t,
    failures(BASE, { profile: 'fast' }),
    'unknown-profile',
    pos(BASE, 'profiles:'),
    'profiles',
    /unknown profile "fast"; profiles defined: smoke/,
  )
})

t.test('schema-violation: a profile overriding an unknown stage', async (t) => {
  const y = edit('      train: { params: { steps: 5 } }', '      trian: { params: { steps: 5 } }')
  one(t, failures(y), 'schema-violation', pos(y, 'trian'), 'profiles.smoke.stages.trian', /not in stages \(prep, train\)/)
})

t.test('bad-override: malformed --set and --set values that break the schema', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['train.steps', /no '=' found/],
    ['steps=3', /must be stage\.param/],
    ['Train.steps=3', /must be stage\.param/],
    ['train.steps=', /the value is empty/],
    ['train.steps=[1, 2', /not valid YAML/],
    ['train.steps=a: b', /scalar or flow value/],
    ['nope.steps=3', /no stage named "nope"/],
    ['trian.steps=3', /no stage named "trian" \(stages: prep, train\)\. Did you mean "train"\? Write --set/],
    ['train.steps=many', /params\.steps must be an integer \(got "many"\)/],
    ['train.arch=rnn', /params\.arch must be one of "cnn", "mlp" \(got "rnn"\)/],
    ['train.arch=[a]', /a matrix value is a list/],
  ]
  for (const [set, re] of cases) {
    const fs = failures(BASE, { overrides: [set] })
    t.equal(fs.length, 1, set)
    t.equal(fs[0]!.reason, 'bad-override', set)
    const text = formatFailure(fs[0]!)
    t.ok(text.startsWith(`--set ${set}: `), text)
    t.match(text, re, set)
  }
})

t.test('usage: the pipeline file is missing', async (t) => {
  const r = analyze({ file: '/p/other.yaml', reader: memoryReader(ROOT, validToyProject()) })
  t.equal(r.ok, false)
  if (!r.ok) {
    t.equal(r.error[0]!.reason, 'usage')
    t.match(formatFailure(r.error[0]!), /\/p\/other\.yaml does not exist/)
  }
})

t.test('every error is collected, in file order', async (t) => {
  const y = BASE.replace('schema: 1', 'schema: 1\ncolour: blue')
    .replace('{ steps: 100 }', '{ steps: fast }')
    .replace('stage: prep,', 'stage: prepare,')
    .replace('telemetry: file', '"../t": file')
    .replace('      train: { params', '      nope: { params')
  const fs = failures(y, { overrides: ['train.steps'] })
  t.same(
    fs.map((f) => f.reason),
    ['bad-override', 'schema-violation', 'params-invalid', 'dangling-dep', 'unsafe-path', 'schema-violation'],
  )
  const lines = fs.filter((f) => 'location' in f).map((f) => ('location' in f ? f.location.line : 0))
  t.same(
    lines,
    [...lines].sort((a, b) => a - b),
    'sorted by line',
  )
})

t.test('names that are Object.prototype members are not mistaken for stages or profiles', async (t) => {
  const fs = failures(BASE, { profile: 'constructor', overrides: ['constructor.x=1'] })
  t.same(fs.map((f) => f.reason).sort(), ['bad-override', 'unknown-profile'])
  const y = edit('stage: prep,', 'stage: constructor,')
  one(t, failures(y), 'dangling-dep', pos(y, 'constructor'), 'stages.train.deps.data.stage', /no stage named "constructor"/)
  const w = `default_profile: nope\n${BASE}`
  t.same(
    failures(w, { profile: 'smoke' }).map((f) => f.reason),
    ['unknown-profile'],
    'a bad default_profile is reported even when --profile wins',
  )
})
