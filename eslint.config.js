// Lint: the import direction between layers and no import cycles (docs/architecture.md,
// "Layers"). Formatting is prettier's job (.prettierrc.json), not eslint's. No type-aware
// rules, so a run parses each file once and stays cheap on a 2-core CI machine.
import { readdirSync } from 'node:fs'
import { createNodeResolver, importX } from 'eslint-plugin-import-x'
import tseslint from 'typescript-eslint'

/** A zone: files under `target` may not import anything under `from` (paths from the repo root). */
const zone = (target, from, message, except) => ({ target, from, message, ...(except ? { except } : {}) })

const stageDirs = readdirSync(new URL('./stages/', import.meta.url), { withFileTypes: true })
  .filter((e) => e.isDirectory() && e.name !== 'shared')
  .map((e) => e.name)

const zones = [
  // src/core is the shared vocabulary: it imports no other layer.
  ...['src/harness', 'src/science', 'src/report', 'src/data', 'stages', 'src/main.ts'].map((from) =>
    zone('./src/core', `./${from}`, 'src/core is the shared vocabulary and imports no other layer'),
  ),
  // The generic harness knows no science, report, data or stage: they come in through src/main.ts.
  ...['src/science', 'src/report', 'src/data', 'stages', 'src/main.ts'].map((from) =>
    zone(
      './src/harness',
      `./${from}`,
      'the harness must not import science/report/data/stages: inject it through src/harness/host.ts in src/main.ts',
    ),
  ),
  // Science computes; it does not run pipelines or write reports.
  ...['src/harness', 'src/report', 'stages', 'src/main.ts'].map((from) =>
    zone('./src/science', `./${from}`, 'science must not import the harness, the report or stages (use src/core for shared types)'),
  ),
  ...['src/harness', 'src/report', 'stages', 'src/main.ts'].map((from) =>
    zone('./src/data', `./${from}`, 'data readers must not import the harness, the report or stages'),
  ),
  ...['stages', 'src/main.ts'].map((from) => zone('./src/report', `./${from}`, 'the report must not import stages or the entry module')),
  // A stage shares code through stages/shared, never through a sibling stage's files.
  ...stageDirs.map((d) =>
    zone(`./stages/${d}`, './stages', `stages/${d} may import stages/shared, not another stage's files`, [`./${d}`, './shared']),
  ),
]

export default [
  { ignores: ['node_modules/**', '.cusp/**', 'artifacts/**', 'results/**', 'test/**/fixtures/**'] },
  {
    files: ['src/**/*.ts', 'stages/**/*.ts', 'scripts/**/*.mjs', 'bench/**/*.ts', 'test/**/*.ts'],
    languageOptions: { parser: tseslint.parser, ecmaVersion: 'latest', sourceType: 'module' },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.mjs', '.js'] })],
      // Without these, imported .ts files are not parsed and no-cycle cannot follow them.
      'import-x/extensions': ['.ts', '.mjs', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
    },
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    rules: {
      'import-x/no-restricted-paths': ['error', { zones }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
    },
  },
]
