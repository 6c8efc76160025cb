/**
 * The generated corpus of broken pipelines (test/harness/fixtures/broken-corpus.ts): every
 * variant must be rejected, every failure must format (without throwing) to a message that
 * names the file and a `:line:col` location, and together the corpus must exercise every
 * located failure reason the analyzer has. The valid base project must pass.
 */
import t from 'tap'
import { analyze, memoryReader } from '../../src/harness/analyzer.ts'
import { formatFailure } from '../../src/harness/failures.ts'
import type { Failure } from '../../src/harness/types.ts'
import { brokenCorpus, validToyProject } from './fixtures/broken-corpus.ts'

const ROOT = '/corpus'
const FILE = `${ROOT}/pipeline.yaml`

t.test('the base project is valid', async (t) => {
  const r = analyze({ file: FILE, reader: memoryReader(ROOT, validToyProject()) })
  t.ok(r.ok, r.ok ? 'valid' : r.error.map(formatFailure).join('\n'))
})

t.test('every broken variant is rejected with located, formatted failures', async (t) => {
  const corpus = brokenCorpus()
  t.ok(corpus.length >= 100, `${corpus.length} variants`)
  t.equal(new Set(corpus.map((c) => c.name)).size, corpus.length, 'names are unique')
  const seen = new Set<Failure['reason']>()
  let bad = 0
  for (const { name, files } of corpus) {
    const r = analyze({ file: FILE, reader: memoryReader(ROOT, files) })
    if (r.ok) {
      bad++
      t.fail(`${name}: analyze accepted a broken pipeline`)
      continue
    }
    if (r.error.length === 0) t.fail(`${name}: rejected with no failures`)
    for (const f of r.error) {
      seen.add(f.reason)
      let text = ''
      try {
        text = formatFailure(f)
      } catch (e) {
        bad++
        t.fail(`${name}: formatting ${f.reason} threw ${String(e)}`)
        continue
      }
      if (!/^pipeline\.yaml:\d+:\d+: /.test(text)) {
        bad++
        t.fail(`${name}: not located: ${text}`)
      }
      if (text.includes('[object Object]') || text.includes('undefined')) {
        bad++
        t.fail(`${name}: badly rendered: ${text}`)
      }
    }
  }
  t.equal(bad, 0, 'no variant accepted, unlocated or badly rendered')
  const located: Failure['reason'][] = [
    'yaml-syntax',
    'schema-violation',
    'params-invalid',
    'unknown-stage-impl',
    'bad-stage-schema',
    'dangling-dep',
    'duplicate-instance-id',
    'cycle',
    'bad-matrix',
    'unsafe-path',
    'unknown-profile',
  ]
  for (const reason of located) t.ok(seen.has(reason), `the corpus produces ${reason}`)
})
