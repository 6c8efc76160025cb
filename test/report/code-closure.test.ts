// Which stage reruns when what changes, at the level of code digests: the figures theme is in the
// figures stage's closure only (restyling reruns only figures), claims.yaml and the verdict logic
// are in the audit's (and reach figures through the audit's output, not its code).
import t from 'tap'
import { codeDigest, fsCodeReader, type CodeReader } from '../../src/harness/code-digest.ts'
import { ROOT } from './fixtures.ts'

function editing(relPath: string): CodeReader {
  return {
    readFile(abs) {
      const bytes = fsCodeReader.readFile(abs)
      return abs.endsWith(relPath) && bytes !== undefined ? new Uint8Array([...bytes, 0x20]) : bytes
    },
    listFiles: (dir) => fsCodeReader.listFiles(dir),
  }
}

t.test('the theme is read by figures only; claims.yaml by the audit', async (t) => {
  const base = { figures: codeDigest(ROOT, 'stages/figures'), audit: codeDigest(ROOT, 'stages/audit') }
  t.ok(base.figures.files.includes('stages/figures/theme.json'))
  t.notOk(base.audit.files.includes('stages/figures/theme.json'))
  t.ok(base.audit.files.includes('claims.yaml'))
  t.ok(base.audit.files.includes('src/report/verdicts.ts'))
  t.notOk(base.audit.files.includes('src/report/figure-specs.ts'), 'figure specs do not touch the audit')
  t.notOk(base.figures.files.includes('claims.yaml'))
  for (const sci of ['stages/train', 'stages/spectrum-probe', 'stages/cusp-scan'])
    t.notOk(
      codeDigest(ROOT, sci).files.some((f) => f.startsWith('src/report/') || f.startsWith('stages/figures')),
      `${sci} does not reach the report code`,
    )

  const theme = editing('stages/figures/theme.json')
  t.not(codeDigest(ROOT, 'stages/figures', theme).digest, base.figures.digest, 'restyling changes the figures digest')
  t.equal(codeDigest(ROOT, 'stages/audit', theme).digest, base.audit.digest, 'and not the audit digest')
})
