/**
 * The analyzer's small parts on literal inputs: matrix expansion and ids, matrix value
 * rules, --set parsing and params merging, safe names, YAML path locations, the
 * topological order on a hand-written graph, and the params-schema cache. Plus a seeded
 * fuzz: random byte-level damage to a valid pipeline never makes analyze() throw, and
 * whatever it rejects it locates.
 */
import { readFileSync } from 'node:fs'
import { Ajv } from 'ajv'
import t from 'tap'
import { LineCounter, parseDocument } from 'yaml'
import { analyze, memoryReader } from '../../src/harness/analyzer.ts'
import { topologicalOrder } from '../../src/harness/deps.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import { badMatrixValue, expandMatrix, instanceId, jsonEqual, renderValue } from '../../src/harness/matrix.ts'
import { deepMerge, parseOverride, setIn, sortKeysDeep } from '../../src/harness/overrides.ts'
import { isSafeName, unsafeNameReason } from '../../src/harness/safe-name.ts'
import { formatPath, pointerToPath, SourceMap } from '../../src/harness/source-location.ts'
import { compileParamsSchema } from '../../src/harness/stage-schemas.ts'
import { closest, didYouMean, editDistance } from '../../src/harness/suggest.ts'
import type { StageInstance } from '../../src/harness/types.ts'
import { VALID_PIPELINE, validToyProject } from './fixtures/broken-corpus.ts'

t.test('expandMatrix: product in declared order, first axis slowest, exclude removes matches', async (t) => {
  const axes = [
    { name: 'arch', values: ['cnn', 'mlp'] },
    { name: 'eta', values: [0.01, 0.02, 0.04] },
  ]
  const all = expandMatrix(axes, [])
  t.equal(all.length, 6)
  t.same(all[0], { arch: 'cnn', eta: 0.01 })
  t.same(all[1], { arch: 'cnn', eta: 0.02 })
  t.same(all[5], { arch: 'mlp', eta: 0.04 })
  const some = expandMatrix(axes, [{ arch: 'mlp', eta: 0.02 }, { eta: 0.04 }])
  t.same(some, [
    { arch: 'cnn', eta: 0.01 },
    { arch: 'cnn', eta: 0.02 },
    { arch: 'mlp', eta: 0.01 },
  ])
  t.same(expandMatrix([], []), [{}], 'no axes: one plain instance')
  t.same(expandMatrix(axes, [{ eta: '0.01' }]).length, 6, 'exclude compares values strictly (string is not number)')
})

t.test('instance ids and value rendering', async (t) => {
  const axes = [
    { name: 'eta', values: [1e-7] },
    { name: 'arch', values: ['cnn'] },
    { name: 'full', values: [true] },
  ]
  t.equal(
    instanceId('train', axes, { eta: 1e-7, arch: 'cnn', full: true }),
    'train@eta=1e-7,arch=cnn,full=true',
    'declared order, not sorted',
  )
  t.equal(instanceId('prep', [], {}), 'prep')
  t.equal(renderValue(0.1), '0.1')
  t.equal(renderValue(100), '100')
  t.equal(renderValue(-2.5), '-2.5')
})

t.test('matrix values must be safe scalars', async (t) => {
  for (const ok of ['cnn', 'gradient-flow', 0.01, -3, 1e-7, true, 'v1.2', 'a_b+c']) t.equal(badMatrixValue(ok), undefined, String(ok))
  t.match(badMatrixValue(null), /null/)
  t.match(badMatrixValue([1]), /list/)
  t.match(badMatrixValue({ a: 1 }), /mapping/)
  for (const bad of ['a/b', '../x', '..', '.hidden', 'with space', '', 'x'.repeat(65), 'a,b', 'a=b'])
    t.match(badMatrixValue(bad), /instance id/, JSON.stringify(bad))
})

t.test('jsonEqual ignores key order only', async (t) => {
  t.ok(jsonEqual({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }))
  t.notOk(jsonEqual([1, 2], [2, 1]))
  t.notOk(jsonEqual({ a: 1 }, { a: 1, b: 2 }))
  t.notOk(jsonEqual(1, '1'))
  t.notOk(jsonEqual(null, {}))
})

t.test('parseOverride', async (t) => {
  const ok = (s: string): unknown => {
    const r = parseOverride(s)
    if (!r.ok) throw new Error(formatFailure(r.error))
    return { stage: r.value.stage, path: r.value.path, value: r.value.value }
  }
  t.same(ok('train.eta=0.5'), { stage: 'train', path: ['eta'], value: 0.5 })
  t.same(ok('train.arch=cnn'), { stage: 'train', path: ['arch'], value: 'cnn' })
  t.same(ok('train.eta="0.5"'), { stage: 'train', path: ['eta'], value: '0.5' }, 'quotes keep a string')
  t.same(ok('prepare-data.opt.lr=1e-3'), { stage: 'prepare-data', path: ['opt', 'lr'], value: 0.001 })
  t.same(ok('train.layers=[64, 64]'), { stage: 'train', path: ['layers'], value: [64, 64] })
  t.same(ok('train.x={a: 1}'), { stage: 'train', path: ['x'], value: { a: 1 } })
  t.same(ok('train.flag=true'), { stage: 'train', path: ['flag'], value: true })
  t.same(ok('train.name=a=b'), { stage: 'train', path: ['name'], value: 'a=b' }, 'only the first = splits')
  t.same(ok('train.v=null'), { stage: 'train', path: ['v'], value: null })
  for (const bad of [
    'train',
    'train.eta',
    '=1',
    'train=1',
    'Train.eta=1',
    'train..eta=1',
    'train.eta=',
    'train.eta=[1',
    'train.eta=a: b',
    'train.eta=- 1',
  ]) {
    const r = parseOverride(bad)
    t.equal(r.ok, false, bad)
    if (!r.ok) t.equal(r.error.reason, 'bad-override', bad)
  }
})

t.test('deepMerge, setIn, sortKeysDeep do not mutate and behave as documented', async (t) => {
  const base = { a: { x: 1, y: 2 }, l: [1, 2], s: 'k' }
  const over = { a: { y: 3 }, l: [9] }
  const m = deepMerge(base, over)
  t.same(m, { a: { x: 1, y: 3 }, l: [9], s: 'k' }, 'objects merge, lists replace')
  t.same(base, { a: { x: 1, y: 2 }, l: [1, 2], s: 'k' }, 'base untouched')
  const s = setIn(base, ['a', 'z', 'w'], 5)
  t.same(s, { a: { x: 1, y: 2, z: { w: 5 } }, l: [1, 2], s: 'k' })
  t.same(base.a, { x: 1, y: 2 })
  t.same(setIn({ a: 3 }, ['a', 'b'], 1), { a: { b: 1 } }, 'a scalar on the path is replaced')
  t.equal(JSON.stringify(sortKeysDeep({ b: 1, a: { d: [{ z: 1, y: 2 }], c: 0 } })), '{"a":{"c":0,"d":[{"y":2,"z":1}]},"b":1}')
  const proto = JSON.parse('{"__proto__": {"x": 1}}') as Record<string, never>
  const merged = deepMerge({}, proto)
  t.same(Object.keys(merged), ['__proto__'], 'a __proto__ key stays an own key, it does not set the prototype')
  t.equal(Object.getPrototypeOf(merged), Object.prototype)
  t.same(Object.keys(setIn({}, ['__proto__', 'y'], 1)), ['__proto__'])
  t.same(Object.keys(sortKeysDeep(proto) as object), ['__proto__'])
})

t.test('suggestions for typos', async (t) => {
  t.equal(editDistance('kitten', 'sitting'), 3)
  t.equal(editDistance('', 'abc'), 3)
  t.equal(editDistance('trian', 'train'), 1, 'a swap is one edit')
  t.equal(editDistance('abc', 'abc'), 0)
  t.equal(closest('parms', ['impl', 'params', 'matrix']), 'params')
  t.equal(closest('trian', ['train', 'probe']), 'train')
  t.equal(closest('colour', ['impl', 'params', 'matrix']), undefined, 'nothing close')
  t.equal(closest('ab', ['xy']), undefined, 'short names need near-exact matches')
  t.equal(closest('Params', ['params']), 'params', 'case differences are free')
  t.equal(didYouMean('outptus', ['outputs']), ' Did you mean "outputs"?')
  t.equal(didYouMean('zzz', ['outputs']), '')
})

t.test('safe names', async (t) => {
  for (const ok of ['dataset', 'data.txt', 'a_b-c.1', '0', 'CHECKPOINTS']) t.ok(isSafeName(ok), ok)
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['/abs', /absolute/],
    ['C:\\x', /absolute/],
    ['..', /climbs/],
    ['../x', /climbs/],
    ['a/../b', /climbs/],
    ['a/b', /separator/],
    ['a\\b', /separator/],
    ['a..b', /contains '\.\.'/],
    ['.hidden', /must match/],
    ['sp ace', /must match/],
    ['x'.repeat(129), /longer/],
  ]
  for (const [name, re] of cases) {
    t.notOk(isSafeName(name), name)
    t.match(unsafeNameReason(name), re, name)
  }
})

t.test('paths and locations', async (t) => {
  t.equal(formatPath([]), '(document)')
  t.equal(formatPath(['stages', 'train', 'matrix', 'arch', 1]), 'stages.train.matrix.arch[1]')
  t.equal(formatPath(['stages', 'figures', 'outputs', '../x']), 'stages.figures.outputs["../x"]')
  t.same(pointerToPath('/a~1b/c~0d/0'), ['a/b', 'c~d', '0'])
  t.same(pointerToPath(''), [])
  const text = 'a:\n  b: { c: 1 }\n  list:\n    - x\n    - y\n'
  const lines = new LineCounter()
  const src = new SourceMap('f.yaml', parseDocument(text, { lineCounter: lines }), lines)
  t.same(src.locate(['a', 'b', 'c']), { file: 'f.yaml', line: 2, column: 11, path: 'a.b.c' })
  t.same(src.locate(['a', 'b', 'c'], 'key'), { file: 'f.yaml', line: 2, column: 8, path: 'a.b.c' })
  t.same(src.locate(['a', 'list', 1]), { file: 'f.yaml', line: 5, column: 7, path: 'a.list[1]' })
  t.same(
    src.locate(['a', 'b', 'missing', 'deeper']),
    { file: 'f.yaml', line: 2, column: 3, path: 'a.b.missing.deeper' },
    'missing tail: key of the deepest written ancestor',
  )
  t.ok(src.has(['a', 'list', 0]))
  t.notOk(src.has(['a', 'list', 2]))
  t.notOk(src.has(['a', 'b', 'c', 'd']))
})

t.test('topologicalOrder on a literal graph: deps first, ties by id', async (t) => {
  const node = (id: string, ...ups: string[]): StageInstance => ({
    id,
    stage: id,
    impl: `stages/${id}`,
    matrix: {},
    params: {},
    deps: ups.map((u) => ({ as: 'in', instance: u, output: 'o' })),
    outputs: [],
    resources: { cpu: 1, memory: '2Gi', gpu: 0 },
  })
  // d <- b <- a, d <- c, e alone; declared in a scrambled order.
  const graph = [node('a', 'b'), node('e'), node('c', 'd'), node('b', 'd'), node('d')]
  t.same(topologicalOrder(graph), ['d', 'b', 'a', 'c', 'e'])
  t.same(topologicalOrder([...graph].reverse()), ['d', 'b', 'a', 'c', 'e'], 'independent of input order')
  t.same(topologicalOrder([node('x', 'y', 'y'), node('y')]), ['y', 'x'], 'a repeated edge counts once')
})

t.test('the pipeline schema passes ajv strict mode (the analyzer compiles it leniently, shared with stage schemas)', async (t) => {
  const schema = JSON.parse(readFileSync(new URL('../../schemas/pipeline.schema.json', import.meta.url), 'utf8')) as object
  t.doesNotThrow(() => new Ajv({ strict: true, allowUnionTypes: true, allErrors: true }).compile(schema))
  t.match((schema as { description: string }).description, /Format \(schema 1\)/, 'the format is documented in the schema')
})

t.test('params schemas compile once per text', async (t) => {
  const text = '{"type":"object","properties":{"k":{"type":"integer","default":3}}}'
  const a = compileParamsSchema(text)
  const b = compileParamsSchema(text)
  t.ok(a.ok && b.ok && a.value === b.value, 'the same validator object')
  const two = compileParamsSchema(
    '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{"a":{"prefixItems":[{"type":"number"}]}}}',
  )
  t.ok(two.ok, '2020-12 schemas are accepted')
  if (two.ok) t.notOk(two.value({ a: ['x'] }), '...and validated as 2020-12 (prefixItems)')
  // Two different schemas with the same $id must not collide.
  t.ok(compileParamsSchema('{"$id":"x","type":"object"}').ok)
  t.ok(compileParamsSchema('{"$id":"x","type":"object","required":["a"]}').ok)
})

/** Small deterministic PRNG (mulberry32) so the fuzz cases are the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('fuzz: damaged pipelines never throw, and rejections are located', async (t) => {
  const rand = rng(20261128)
  const alphabet = ['{', '}', '[', ']', ':', ',', '-', ' ', '\n', '\t', '"', "'", '&', '*', '#', 'x', '0', '../', '@', '!!str ']
  let rejected = 0
  const cases = 300
  for (let i = 0; i < cases; i++) {
    let text = VALID_PIPELINE
    const edits = 1 + Math.floor(rand() * 3)
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * text.length)
      const kind = rand()
      if (kind < 0.33) text = text.slice(0, at) + text.slice(at + 1 + Math.floor(rand() * 8))
      else if (kind < 0.66) text = text.slice(0, at) + alphabet[Math.floor(rand() * alphabet.length)]! + text.slice(at)
      else {
        const line = text.split('\n')
        const j = Math.floor(rand() * line.length)
        line.splice(Math.floor(rand() * line.length), 0, line[j]!)
        text = line.join('\n')
      }
    }
    let r
    try {
      r = analyze({ file: '/fz/pipeline.yaml', reader: memoryReader('/fz', { ...validToyProject(), 'pipeline.yaml': text }) })
    } catch (err) {
      t.fail(`case ${i} threw ${String(err)}\n${text}`)
      continue
    }
    if (r.ok) continue
    rejected++
    for (const f of r.error) {
      const msg = formatFailure(f)
      // The closing count of a capped report is no rejection of its own; every rejection is located.
      if (/^\.\.\. and \d+ more problems? not shown/.test(msg)) continue
      if (!/^pipeline\.yaml:\d+:\d+: /.test(msg)) t.fail(`case ${i}: unlocated: ${msg}\n${text}`)
    }
  }
  t.ok(rejected > cases / 3, `${rejected} of ${cases} damaged pipelines rejected`)
})
