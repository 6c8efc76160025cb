// The prepare-data stage function called in-process (no child process): the params schema's
// defaults, the cifar10 local-path branch with its MD5 check, expect_digest, an idx directory of
// plain (not gzipped) files, Debian's full Fashion-MNIST set when installed, and the errors.
import t from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { compileParamsSchema } from '../../src/harness/stage-schemas.ts'
import stage, { type PrepareDataParams, type PrepareDataResult } from '../../stages/prepare-data/index.ts'
import type { ValidateFunction } from 'ajv'
import type { StageContext, StageInput } from '../../src/harness/stage-api.ts'
import { readSafetensors } from '../../src/data/safetensors.ts'
import { makeCifarArchive } from './fixtures/cifar-archive.ts'

const schemaDir = new URL('../../schemas/stages/', import.meta.url)
/** Compiled as the analyzer compiles params schemas (defaults filled, all errors). */
function compile(name: string): ValidateFunction {
  const r = compileParamsSchema(readFileSync(new URL(name, schemaDir), 'utf8'))
  if (!r.ok) throw new Error(`${name} ${r.error}`)
  return r.value
}
const validateParams = compile('prepare-data.params.schema.json')
const validateResult = compile('prepare-data.result.schema.json')
const errors = (v: ValidateFunction): string => JSON.stringify(v.errors ?? [])

/** Params as the analyzer would give them: validated, defaults filled. */
function params(p: Record<string, unknown>): PrepareDataParams {
  const copy = structuredClone(p)
  if (!validateParams(copy)) throw new Error(errors(validateParams))
  return copy as unknown as PrepareDataParams
}

async function runStage(outDir: string, p: PrepareDataParams, inputs: Record<string, StageInput[]> = {}): Promise<PrepareDataResult> {
  const ctx: StageContext<PrepareDataParams> = { instance: 'prepare-data@test', params: p, inputs, outDir, progress: () => {}, log: () => {} }
  const result = await stage.run(ctx)
  if (!validateResult(result)) throw new Error(`result does not match its schema: ${errors(validateResult)}`)
  return result
}

t.test('schema defaults: split train, 10 classes, standardise, seed 0, nested source defaults', async (t) => {
  const p = params({ source: 'synthetic', n_data: 20 })
  t.same(p.synthetic, { classes: 10, per_class: 100, height: 8, width: 8, channels: 1, noise: 1, seed: 0 })
  t.same([p.split, p.classes, p.normalisation, p.seed], ['train', 10, 'standardise', 0])
  t.equal(p.cifar10.md5, 'c32a1d4ab5d03f1284b67883e8d87530')
  t.notOk(validateParams({ source: 'mnist', n_data: 1 }), 'unknown source rejected')
  t.notOk(validateParams({ source: 'idx' }), 'n_data required')
})

t.test('cifar10 from a local path: MD5 checked against the param', async (t) => {
  const dir = t.testdir()
  const fake = makeCifarArchive(dir, 2)
  const good = await runStage(dir, params({ source: 'cifar10', split: 'test', classes: ['cat', 'airplane'], n_data: 2, cifar10: { path: fake.path, md5: fake.md5 } }))
  t.same(good.class_names, ['cat', 'airplane'])
  t.same(good.shape, [2, 32, 32, 3])
  const st = await readSafetensors(join(dir, 'dataset'))
  t.same(Object.keys(st.tensors).sort(), ['x', 'y'])
  await t.rejects(runStage(dir, params({ source: 'cifar10', n_data: 2, cifar10: { path: fake.path } })), /MD5 mismatch: the archive has MD5 [0-9a-f]{32}, expected c32a1d4ab5d03f1284b67883e8d87530/)
  await t.rejects(runStage(dir, params({ source: 'cifar10', n_data: 2 })), /source cifar10 needs the archive/)
  await t.rejects(
    runStage(dir, params({ source: 'cifar10', n_data: 2, cifar10: { path: fake.path, md5: fake.md5 }, expect_digest: '0'.repeat(64) })),
    /digest [0-9a-f]{64}, but expect_digest is 0000/,
  )
  await t.rejects(runStage(dir, params({ source: 'cifar10', n_data: 200, classes: 2, cifar10: { path: fake.path, md5: fake.md5 } })), /fewer than the 100/)
})

t.test('idx from a directory of plain files; a missing or corrupt file is an error', async (t) => {
  const dir = t.testdir()
  const bundle = new URL('../../data/fashion-mnist/', import.meta.url)
  for (const f of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(join(dir, f), gunzipSync(readFileSync(new URL(`${f}.gz`, bundle))))
  const r = await runStage(dir, params({ source: 'idx', split: 'test', classes: 3, n_data: 30, idx: { dir } }))
  t.same(r.label_counts, [10, 10, 10])
  t.same(r.class_names, ['T-shirt/top', 'Trouser', 'Pullover'])
  await t.rejects(runStage(dir, params({ source: 'idx', split: 'train', n_data: 30, idx: { dir } })), /ENOENT/)
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), Buffer.from([0, 0, 8, 3, 0, 0, 0, 0]))
  await t.rejects(runStage(dir, params({ source: 'idx', split: 'test', n_data: 30, idx: { dir } })), /t10k-labels-idx1-ubyte: not a valid IDX file: magic number 0x00000803, expected 0x00000801/)
})

const debian = '/usr/share/datasets/fashion-mnist'
t.test("idx from Debian's full Fashion-MNIST set", { skip: existsSync(debian) ? false : `${debian} not installed` }, async (t) => {
  const dir = t.testdir()
  const r = await runStage(dir, params({ source: 'idx', split: 'test', classes: 10, n_data: 5000, idx: { dir: debian } }))
  t.same(r.label_counts, new Array(10).fill(500))
  t.same(r.shape, [5000, 28, 28, 1])
})
