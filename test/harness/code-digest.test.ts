/**
 * Code digests: the closure a stage can reach (relative imports of every form, followed
 * transitively, with NodeNext `.js`-for-`.ts` resolution) and the locked versions of the packages
 * it imports. Editing a reachable file or a used dependency's version changes the digest;
 * editing anything else does not; each file is read once per process however many stages share it.
 */
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { clearCodeDigestCache, codeDigest, fsCodeReader, packageName, type CodeReader } from '../../src/harness/code-digest.ts'

function lockJson(yamlVersion = '2.0.0', depVersion = '3.0.0', unrelatedVersion = '1.0.0'): string {
  return JSON.stringify({
    lockfileVersion: 3,
    packages: {
      '': { name: 'proj' },
      'node_modules/yaml': { version: yamlVersion },
      'node_modules/@scope/pkg': { version: '1.0.0', dependencies: { dep: '^3' }, peerDependencies: { yaml: '*' } },
      'node_modules/@scope/pkg/node_modules/dep': { version: depVersion },
      'node_modules/dep': { version: '9.9.9' },
      'node_modules/unrelated': { version: unrelatedVersion },
    },
  })
}

function project() {
  return {
    'package-lock.json': lockJson(),
    stages: {
      toy: {
        'index.ts': [
          "import { a } from '../../src/lib/a.ts'",
          "import {\n  parse,\n} from 'yaml'",
          "import { readFileSync } from 'node:fs'",
          "import fs from 'fs'",
          "import type { X } from '@scope/pkg/sub'",
          "const schema = new URL('../../schemas/toy.json', import.meta.url)",
          "const args = ['--import', tsx, join(HERE, 'stage-process.ts')] // not an import",
          "const msg = 'please import from \\'zzz\\''",
          'export const run = () => [a, parse, readFileSync, fs, schema, args, msg]',
        ].join('\n'),
        'params.json': '{"eta": 0.1}',
      },
      other: { 'index.ts': "import { b } from '../../src/lib/b.ts'\nexport const x = b\n" },
    },
    src: {
      lib: {
        'a.ts': "export { b } from './b.js'\nexport const a = 1\nexport const lazy = () => import('./c.ts')\n",
        'b.ts': "import './side'\nexport const b = 2\n",
        'side.ts': 'globalThis.x = 1\n',
        'c.ts': "export * from './dir'\n",
        dir: { 'index.ts': 'export const d = 4\n' },
        'unrelated.ts': 'export const u = 0\n',
      },
    },
    schemas: { 'toy.json': '{}', 'other.json': '{}' },
  }
}

t.beforeEach(() => clearCodeDigestCache())

t.test('closure: every import form, followed transitively, plus locked packages', async (t) => {
  const root = t.testdir(project())
  const r = codeDigest(root, 'toy')
  t.same(r.files, [
    'schemas/toy.json',
    'src/lib/a.ts',
    'src/lib/b.ts',
    'src/lib/c.ts',
    'src/lib/dir/index.ts',
    'src/lib/side.ts',
    'stages/toy/index.ts',
    'stages/toy/params.json',
  ])
  t.same(r.packages, { '@scope/pkg': '1.0.0', '@scope/pkg/node_modules/dep': '3.0.0', yaml: '2.0.0' })
  t.match(r.digest, /^[0-9a-f]{64}$/)
  t.same(codeDigest(root, 'stages/toy'), r, 'impl may be given as stages/<impl>')
  t.same(codeDigest(root, 'other').files, ['src/lib/b.ts', 'src/lib/side.ts', 'stages/other/index.ts'])
  t.same(codeDigest(root, 'missing').files, [], 'a missing impl is an empty closure, not a throw')
})

t.test('what changes the digest and what does not', async (t) => {
  const root = t.testdir(project())
  const before = codeDigest(root, 'toy').digest
  const edit = (rel: string, text: string): string => {
    const path = join(root, rel)
    const old = readFileSync(path, 'utf8')
    writeFileSync(path, text)
    clearCodeDigestCache()
    const d = codeDigest(root, 'toy').digest
    writeFileSync(path, old)
    return d
  }
  t.not(edit('src/lib/side.ts', 'globalThis.x = 2\n'), before, 'editing a transitively imported file')
  t.not(edit('src/lib/dir/index.ts', 'export const d = 5\n'), before, 'editing a file reached via export * and dynamic import')
  t.not(edit('stages/toy/params.json', '{"eta": 0.2}'), before, 'editing a non-code file of the stage')
  t.not(edit('schemas/toy.json', '{"x":1}'), before, 'editing an asset referenced by new URL(..., import.meta.url)')
  t.not(edit('package-lock.json', lockJson('2.1.0')), before, 'a changed version of an imported package')
  t.not(edit('package-lock.json', lockJson('2.0.0', '3.0.1')), before, 'a changed version of a transitive dependency')
  t.equal(edit('src/lib/unrelated.ts', 'export const u = 1\n'), before, 'editing an unrelated file')
  t.equal(edit('schemas/other.json', '{"y":1}'), before, 'editing an unrelated asset')
  t.equal(edit('package-lock.json', lockJson('2.0.0', '3.0.0', '1.0.1')), before, 'bumping a package the stage does not use')
  t.equal(edit('stages/other/index.ts', 'export const x = 0\n'), before, "editing another stage's code")
  clearCodeDigestCache()
  t.equal(codeDigest(root, 'toy').digest, before, 'restored files give the original digest')
})

t.test('memoised: a digest is stable within a process until the cache is cleared', async (t) => {
  const root = t.testdir(project())
  const before = codeDigest(root, 'toy').digest
  writeFileSync(join(root, 'src/lib/a.ts'), 'export const a = 99\n')
  t.equal(codeDigest(root, 'toy').digest, before, 'memoised result')
  clearCodeDigestCache()
  t.not(codeDigest(root, 'toy').digest, before, 'recomputed after clearing')
})

t.test('each file is read once however many stages and calls share it', async (t) => {
  const root = t.testdir(project())
  const reads = new Map<string, number>()
  const counting: CodeReader = {
    readFile(p) {
      reads.set(p, (reads.get(p) ?? 0) + 1)
      return fsCodeReader.readFile(p)
    },
    listFiles: (d) => fsCodeReader.listFiles(d),
  }
  const first = codeDigest(root, 'toy', counting).digest
  for (let i = 0; i < 100; i++) {
    t.equal(codeDigest(root, i % 2 === 0 ? 'toy' : 'other', counting).digest === first, i % 2 === 0)
  }
  t.ok(reads.size > 5)
  t.same(
    [...reads.values()].filter((n) => n !== 1),
    [],
    'no path read twice',
  )
})

t.test('package names', async (t) => {
  t.equal(packageName('yaml'), 'yaml')
  t.equal(packageName('yaml/util'), 'yaml')
  t.equal(packageName('@tensorflow/tfjs-core/dist/x.js'), '@tensorflow/tfjs-core')
})
