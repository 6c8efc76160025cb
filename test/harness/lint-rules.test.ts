/**
 * The layer rules of eslint.config.js, exercised on deliberate violations: the harness importing
 * science or the report, science importing the harness, a stage importing a sibling stage's files,
 * and an import cycle. Each must be reported by the rule that guards it, and the allowed
 * direction (harness -> core, stage -> stages/shared) must not be.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const eslint = new ESLint({ cwd: REPO })

async function rulesFor(filePath: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(REPO, filePath) })
  return (r?.messages ?? []).map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`)
}

const RESTRICTED = /^import-x\/no-restricted-paths: /

t.test('the harness may not import science or the report', async (t) => {
  const science = await rulesFor(
    'src/harness/zz-fixture.ts',
    "import { scienceEnv } from '../science/env-record.ts'\nexport const x = scienceEnv\n",
  )
  t.equal(science.length, 1)
  t.match(science[0], RESTRICTED)
  t.match(science[0], /host\.ts/, 'the message says where the seam is')
  const report = await rulesFor(
    'src/harness/executors/zz-fixture.ts',
    "import { AUDIT_INSTANCE } from '../../report/print-audit.ts'\nexport const x = AUDIT_INSTANCE\n",
  )
  t.equal(report.length, 1)
  t.match(report[0], RESTRICTED)
})

t.test('science may not import the harness; core imports nothing', async (t) => {
  const r = await rulesFor('src/science/zz-fixture.ts', "import { ok } from '../harness/types.ts'\nexport const x = ok\n")
  t.equal(r.length, 1)
  t.match(r[0], RESTRICTED)
  const core = await rulesFor(
    'src/core/zz-fixture.ts',
    "import { BACKEND_CHOICES } from '../science/backends.ts'\nexport const x = BACKEND_CHOICES\n",
  )
  t.equal(core.length, 1)
  t.match(core[0], RESTRICTED)
})

t.test('a stage may use stages/shared but not a sibling stage', async (t) => {
  const sibling = await rulesFor('stages/cusp-scan/zz-fixture.ts', "import stage from '../train/index.ts'\nexport const x = stage\n")
  t.equal(sibling.length, 1)
  t.match(sibling[0], RESTRICTED)
  t.same(await rulesFor('stages/cusp-scan/zz-fixture.ts', "import { throttled } from '../shared/io.ts'\nexport const x = throttled\n"), [])
})

t.test('allowed directions pass', async (t) => {
  t.same(await rulesFor('src/harness/zz-fixture.ts', "import { ok } from '../core/vocabulary.ts'\nexport const x = ok\n"), [])
  t.same(
    await rulesFor('src/science/zz-fixture.ts', "import { envRecord } from '../core/environment.ts'\nexport const x = envRecord\n"),
    [],
  )
  t.same(
    await rulesFor(
      'src/main.ts',
      "import { main } from './harness/cli.ts'\nimport { scienceHost } from './science/host.ts'\nexport const x = [main, scienceHost]\n",
    ),
    [],
  )
})

t.test('an import cycle is an error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-lint-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'src', 'report'), { recursive: true })
  writeFileSync(join(dir, 'src', 'report', 'a.ts'), "import { b } from './b.ts'\nexport const a = () => b\n")
  writeFileSync(join(dir, 'src', 'report', 'b.ts'), "import { a } from './a.ts'\nexport const b = () => a\n")
  mkdirSync(join(dir, 'stages'))
  const lint = new ESLint({ cwd: dir, overrideConfigFile: join(REPO, 'eslint.config.js') })
  const results = await lint.lintFiles(['src/report/a.ts', 'src/report/b.ts'])
  const cycles = results.flatMap((r) => r.messages.filter((m) => m.ruleId === 'import-x/no-cycle'))
  t.equal(cycles.length, 2, 'each file of the cycle is reported')
  const acyclic = await lint.lintText('export const c = 1\n', { filePath: join(dir, 'src', 'report', 'c.ts') })
  t.same(acyclic[0]?.messages, [])
})
