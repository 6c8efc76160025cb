/**
 * Stages that only some profiles run: `enabled: false` on a stage (or in a profile) removes it,
 * a profile can switch it back on and add or replace deps by name, and a dep on a stage that is
 * off in the profile in effect is a located `dangling-dep` error (so is a `--set` naming it).
 */
import t from 'tap'
import { analyze, memoryReader } from '../../src/harness/analyzer.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import { VALID_PIPELINE, validToyProject } from './fixtures/broken-corpus.ts'

const ROOT = '/project'
// A download stage (impl prepare-data, for its schema) that only the `full` profile runs, and
// the probe's data dep rewired to it there.
const YAML = `${VALID_PIPELINE}  full:
    stages:
      fetch: { enabled: true }
      probe:
        deps:
          data: { stage: fetch, output: dataset }
          extra: { stage: prepare-data, output: manifest }
`.replace(
  '  figures:\n',
  '  fetch:\n    impl: prepare-data\n    enabled: false\n    params: { source: cifar10, n: 10 }\n    outputs: { dataset: file }\n  figures:\n',
)

const analyseWith = (yaml: string, profile?: string, overrides?: string[]) =>
  analyze({
    file: `${ROOT}/pipeline.yaml`,
    reader: memoryReader(ROOT, { ...validToyProject(), 'pipeline.yaml': yaml }),
    ...(profile ? { profile } : {}),
    ...(overrides ? { overrides } : {}),
  })

t.test('a disabled stage has no instances; its profile enables it and rewires deps by name', async (t) => {
  const plain = analyseWith(YAML)
  if (!plain.ok) throw new Error(plain.error.map(formatFailure).join('\n'))
  t.notOk(
    [...plain.value.instances.keys()].some((id) => id.startsWith('fetch')),
    'off by default',
  )
  t.same(
    plain.value.instances.get('probe@arch=cnn')?.deps.map((d) => `${d.as}<-${d.instance}`),
    ['ckpt<-train@arch=cnn,eta=0.01', 'ckpt<-train@arch=cnn,eta=0.02', 'data<-prepare-data'],
  )

  const full = analyseWith(YAML, 'full')
  if (!full.ok) throw new Error(full.error.map(formatFailure).join('\n'))
  t.ok(full.value.instances.has('fetch'), 'the profile switches it on')
  t.same(
    full.value.instances.get('probe@arch=cnn')?.deps.map((d) => `${d.as}<-${d.instance}.${d.output}`),
    [
      'ckpt<-train@arch=cnn,eta=0.01.checkpoints',
      'ckpt<-train@arch=cnn,eta=0.02.checkpoints',
      'data<-fetch.dataset',
      'extra<-prepare-data.manifest',
    ],
    'data replaced by name, extra added',
  )
  t.ok(full.value.order.indexOf('fetch') < full.value.order.indexOf('probe@arch=cnn'), 'the new upstream runs first')
})

t.test('a dep on a stage that is off in the profile in effect is a located error', async (t) => {
  const yaml = YAML.replace(
    '      ckpt: { stage: train, output: checkpoints, match: [arch] }\n',
    '      ckpt: { stage: train, output: checkpoints, match: [arch] }\n      raw: { stage: fetch, output: dataset }\n',
  )
  const r = analyseWith(yaml)
  t.notOk(r.ok)
  if (r.ok) return
  const msg = r.error.map(formatFailure).join('\n')
  const line = yaml.split('\n').findIndex((l) => l.includes('raw: { stage: fetch')) + 1
  t.match(
    msg,
    new RegExp(`^pipeline\\.yaml:${line}:\\d+: stages\\.probe\\.deps\\.raw\\.stage: .*fetch is not enabled in this pipeline`, 'm'),
  )
  t.ok(analyseWith(yaml, 'full').ok, 'fine where the profile enables it')
})

t.test('a profile can switch a stage off; --set of an off stage is an error', async (t) => {
  const yaml = `${YAML}  lean:\n    stages:\n      figures: { enabled: false }\n`
  const lean = analyseWith(yaml, 'lean')
  if (!lean.ok) throw new Error(lean.error.map(formatFailure).join('\n'))
  t.notOk(lean.value.instances.has('figures'))
  const set = analyseWith(yaml, 'lean', ['figures.format=png'])
  t.notOk(set.ok)
  if (!set.ok) t.match(set.error.map(formatFailure).join('\n'), /figures\.format=png.*not enabled in profile lean/)
  const wrongType = analyseWith(`${YAML}  odd:\n    stages:\n      figures: { enabled: maybe }\n`, 'odd')
  t.notOk(wrongType.ok, 'enabled must be a boolean')
  if (!wrongType.ok) t.match(wrongType.error.map(formatFailure).join('\n'), /profiles\.odd\.stages\.figures\.enabled/)
})
