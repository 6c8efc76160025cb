/**
 * `store:` in pipeline.yaml: the analyzer turns the string or object form into one store spec
 * (S3 options folded into the URL's query, as `--store` accepts them), a malformed value is a
 * located schema error, and the CLI uses it only when neither --store nor CUSP_STORE is given.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { analyze, memoryReader } from '../../src/harness/analyzer.ts'
import { main } from '../../src/main.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import { VALID_PIPELINE, validToyProject } from './fixtures/broken-corpus.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const ROOT = '/project'
const analyseWith = (storeYaml: string) =>
  analyze({
    file: `${ROOT}/pipeline.yaml`,
    reader: memoryReader(ROOT, { ...validToyProject(), 'pipeline.yaml': `${storeYaml}\n${VALID_PIPELINE}` }),
  })

t.test('the string form is the spec itself; no store: means none', async (t) => {
  const r = analyseWith('store: s3://bucket/runs')
  t.ok(r.ok)
  if (r.ok) t.equal(r.value.store, 's3://bucket/runs')
  const none = analyseWith('')
  t.ok(none.ok)
  if (none.ok) t.equal(none.value.store, undefined)
})

t.test('the object form folds S3 options into the query, sorted', async (t) => {
  const r = analyseWith('store: { url: "s3://bucket/runs", region: eu-west-1, path_style: true, endpoint: "http://127.0.0.1:9000" }')
  t.ok(r.ok)
  if (r.ok) t.equal(r.value.store, 's3://bucket/runs?endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=true&region=eu-west-1')
})

t.test('a malformed store: is a located schema error', async (t) => {
  for (const bad of ['store: 42', 'store: { url: "s3://b/p", password: hunter2 }', 'store: { region: eu-west-1 }']) {
    const r = analyseWith(bad)
    t.notOk(r.ok, bad)
    if (!r.ok) t.match(r.error.map(formatFailure).join('\n'), /^pipeline\.yaml:1:\d+: store/m, bad)
  }
})

t.test('the CLI uses store: only when neither --store nor CUSP_STORE is given', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-store-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeToyDag(dir, { etas: [0.1], seeds: [0] })
  const file = join(dir, 'pipeline.yaml')
  writeFileSync(file, `store: from-yaml\n${readFileSync(file, 'utf8')}`)
  const io = (env: Record<string, string>) => ({
    stdout: { write: () => true, isTTY: false },
    stderr: { write: () => true, isTTY: false },
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env },
  })
  t.equal(await main(['status'], io({ CUSP_STORE: join(dir, 'from-env') })), 0)
  t.notOk(existsSync(join(dir, 'from-yaml')), 'CUSP_STORE wins over store:')
  t.equal(await main(['--store', join(dir, 'from-flag'), '--stage', 'prepare'], io({})), 0)
  t.ok(existsSync(join(dir, 'from-flag', 'objects')), '--store wins over store:')
  t.notOk(existsSync(join(dir, 'from-yaml')))
  t.equal(await main(['--stage', 'prepare'], io({})), 0)
  t.ok(existsSync(join(dir, 'from-yaml', 'objects')), 'store: is used, relative to the project root')
  t.notOk(existsSync(join(dir, 'artifacts')), 'the embedded default is not touched')
})
