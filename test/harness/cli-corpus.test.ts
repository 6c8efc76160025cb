/**
 * Every broken project of the analyzer's corpus (test/harness/fixtures/broken-corpus.ts, >= 100
 * variants) through the CLI: exit code 2, stderr naming the file with a line:col location, no
 * stack trace, and nothing written anywhere (the project tree is byte-identical afterwards: no
 * store, no lock, no work directory). All cases go through the exported `main` in-process (100+
 * node processes would take a minute); a handful also through the real child process, to prove
 * the process behaves the same. The valid toy project of the same fixture is the control.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { captureMain } from './fixtures/run-main.ts'
import { brokenCorpus, validToyProject, type ProjectFiles } from './fixtures/broken-corpus.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..')
/** The CLI as `npm run pipeline` runs it: the prebuilt bundle of src/main.ts, no TypeScript loader to start. */
const CLI = join(REPO, 'scripts/pipeline.mjs')

const parent = mkdtempSync(join(tmpdir(), 'cusp-corpus-'))
t.teardown(() => rmSync(parent, { recursive: true, force: true }))

function writeProject(dir: string, files: ProjectFiles): void {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true })
    writeFileSync(join(dir, rel), content)
  }
}

/** Every path under `dir` with a digest of its bytes (directories as `/`), sorted. */
function snapshot(dir: string): string[] {
  const out: string[] = []
  const walk = (d: string, rel: string): void => {
    for (const name of readdirSync(d).sort()) {
      const abs = join(d, name)
      const r = rel === '' ? name : `${rel}/${name}`
      if (statSync(abs).isDirectory()) {
        out.push(`${r}/`)
        walk(abs, r)
      } else out.push(`${r} ${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)}`)
    }
  }
  walk(dir, '')
  return out
}

const inProcess = (dir: string, args: string[]) =>
  captureMain(dir, ['--file', join(dir, 'pipeline.yaml'), ...args], { PATH: process.env.PATH, NO_COLOR: '1' })

const LOCATED = /[\w./@-]+\.(?:yaml|yml|json|ts):\d+:\d+/
const STACK = /^\s{4}at /m

const corpus = brokenCorpus()

t.test('the corpus is big enough to mean something', async (t) => {
  t.ok(corpus.length >= 100, `${corpus.length} broken projects`)
})

t.test('control: the valid toy project passes analysis (status exits 0)', async (t) => {
  const dir = join(parent, 'valid')
  writeProject(dir, validToyProject())
  const r = await inProcess(dir, ['status', '--json'])
  t.equal(r.code, 0, r.stderr)
  t.ok((JSON.parse(r.stdout) as { instances: unknown[] }).instances.length > 0)
})

t.test('every broken project: exit 2, file:line:col on stderr, no stack, nothing written', async (t) => {
  let failures = 0
  for (const [i, c] of corpus.entries()) {
    const dir = join(parent, `case-${i}`)
    writeProject(dir, c.files)
    const before = snapshot(dir)
    // A plain run: the command that would write to the store and the lock if anything did.
    const r = await inProcess(dir, [])
    const problems: string[] = []
    if (r.code !== 2) problems.push(`exit ${r.code}`)
    if (!LOCATED.test(r.stderr)) problems.push('no file:line:col')
    if (STACK.test(r.stderr)) problems.push('stack trace')
    if (r.stderr.trim() === '') problems.push('empty stderr')
    const after = snapshot(dir)
    if (after.join('\n') !== before.join('\n')) problems.push(`wrote: ${after.filter((x) => !before.includes(x)).join(', ')}`)
    if (problems.length > 0) {
      failures++
      t.fail(`${c.name}: ${problems.join('; ')}\n${r.stderr}`)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  t.equal(failures, 0, `${corpus.length} broken projects rejected cleanly`)
})

t.test('a handful through the real child process behave the same', async (t) => {
  const picks = [0, Math.floor(corpus.length / 3), Math.floor((2 * corpus.length) / 3), corpus.length - 1]
  for (const i of picks) {
    const c = corpus[i]
    if (c === undefined) continue
    const dir = join(parent, `child-${i}`)
    writeProject(dir, c.files)
    const before = snapshot(dir)
    const r = spawnSync(process.execPath, [CLI, '--jobs', '1'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CUSP_STORE: '', CUSP_DEBUG: '', NO_COLOR: '1' },
    })
    t.equal(r.status, 2, `${c.name}: exit 2`)
    t.match(r.stderr, LOCATED, `${c.name}: located`)
    t.notMatch(r.stderr, STACK, `${c.name}: no stack`)
    t.same(snapshot(dir), before, `${c.name}: nothing written`)
  }
})
