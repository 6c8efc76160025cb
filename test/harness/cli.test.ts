/**
 * The real CLI end to end on a 6-instance toy project (test/harness/fixtures/toy-dag.ts) in a
 * temp dir: exit codes, `status --json` shape, `why` naming the changed param old -> new,
 * `artifacts` listing every output, `show` printing the result JSON, usage errors without
 * stacks, and a failing stage exiting 1. Most commands go through the exported `main` (the same
 * code path, in-process, to keep the test fast); the ones that matter as a process (--help, a
 * usage error, the first run, a failing run) spawn the CLI as `npm run pipeline` does
 * (`node scripts/pipeline.mjs`, the prebuilt bundle of src/main.ts: no TypeScript loader to start),
 * and `--help` is also checked to be the same from the sources through tsx.
 */
import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { main } from '../../src/main.ts'
import { runMain } from './fixtures/run-main.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..')
const CLI = join(REPO, 'scripts/pipeline.mjs')
const SOURCES = join(REPO, 'src/main.ts')
/** tsx by absolute URL: the child's cwd is a temp dir, where a bare `tsx` would not resolve. */
const TSX = import.meta.resolve('tsx')

/** Spawn the real CLI (`node scripts/pipeline.mjs`, or `node --import tsx src/main.ts` with `sources`); cwd is the project dir so the default pipeline.yaml and store apply. */
function cli(cwd: string, args: string[], env: Record<string, string> = {}, sources = false) {
  const r = spawnSync(process.execPath, [...(sources ? ['--import', TSX, SOURCES] : [CLI]), ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CUSP_STORE: '', NO_COLOR: '1', CUSP_DEBUG: '', ...env },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

const run = runMain

const noStack = (s: string): boolean => !/^\s{4}at /m.test(s)

const dir = mkdtempSync(join(tmpdir(), 'cusp-cli-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
writeToyDag(dir, { etas: [0.1], seeds: [0, 1] })
const T0 = 'train@eta=0.1,seed=0'

t.test('--help prints usage and exits 0; a bad flag exits 2 with one line and no stack', async (t) => {
  const help = cli(dir, ['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /usage: npm run pipeline/)
  const fromSources = cli(dir, ['--help'], {}, true)
  t.equal(fromSources.code, 0, fromSources.stderr)
  t.equal(fromSources.stdout, help.stdout, 'the sources through tsx print the same usage as the bundle')
  const bad = cli(dir, ['--no-such-flag'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--no-such-flag/)
  t.ok(noStack(bad.stderr))
  t.equal(bad.stderr.trim().split('\n').length, 1, 'one line')
  t.notOk(existsSync(join(dir, 'artifacts')), 'a usage error opens no store')
  t.notOk(existsSync(join(dir, 'pipeline.lock')))
})

t.test('an unknown target exits 2 naming the close matches', async (t) => {
  const r = await run(dir, ['--stage', 'trian'])
  t.equal(r.code, 2)
  t.match(r.stderr, /trian/)
  t.match(r.stderr, /train/)
  const one = await run(dir, ['--stage', 'train@eta=0.3,seed=0'])
  t.equal(one.code, 2)
  t.match(one.stderr, /train@eta=0\.1,seed=0/)
  t.notOk(existsSync(join(dir, 'pipeline.lock')))
  const store = await run(dir, ['status', '--store', 'ftp://host/x'])
  t.equal(store.code, 2, 'an unusable --store is a usage error')
  t.match(store.stderr, /ftp:\/\/host\/x/)
})

t.test('before any run: status says every instance would run, dry run changes nothing', async (t) => {
  const r = await run(dir, ['status', '--json'])
  t.equal(r.code, 0, r.stderr)
  const s = JSON.parse(r.stdout) as { instances: Array<{ id: string; stage: string; action: string; reasons: Array<{ kind: string }> }> }
  t.same(Object.keys(s), ['instances'])
  t.equal(s.instances.length, 6)
  t.same(s.instances[0] && Object.keys(s.instances[0]).sort(), ['action', 'id', 'reasons', 'stage'])
  t.ok(s.instances.every((i) => i.action === 'run'))
  t.equal(s.instances.find((i) => i.id === 'prepare')?.reasons[0]?.kind, 'no-lock-entry')
  const dry = await run(dir, ['--dry-run'])
  t.equal(dry.code, 0, dry.stderr)
  t.notOk(existsSync(join(dir, 'pipeline.lock')), 'a dry run writes no lock')
})

t.test('the first run succeeds, then everything is fresh and a rerun does nothing', async (t) => {
  const first = cli(dir, ['--jobs', '2'])
  t.equal(first.code, 0, first.stderr)
  t.ok(existsSync(join(dir, 'pipeline.lock')))
  t.ok(existsSync(join(dir, 'artifacts')), 'default store is <project>/artifacts')
  const lock = readFileSync(join(dir, 'pipeline.lock'), 'utf8')
  const s = JSON.parse((await run(dir, ['status', '--json'])).stdout) as { instances: Array<{ action: string; reasons: unknown[] }> }
  t.ok(
    s.instances.every((i) => i.action === 'fresh' && i.reasons.length === 0),
    'all fresh',
  )
  const again = await run(dir, [])
  t.equal(again.code, 0, again.stderr)
  t.equal(readFileSync(join(dir, 'pipeline.lock'), 'utf8'), lock, 'the lock is unchanged by a no-op rerun')
  const json = await run(dir, ['--json'])
  t.equal(json.code, 0)
  for (const line of json.stdout.trim().split('\n')) t.doesNotThrow(() => JSON.parse(line), 'every --json line is JSON')
})

t.test('why names the changed param with old and new values', async (t) => {
  const viaSet = await run(dir, ['why', T0, '--set', 'train.steps=5'])
  t.equal(viaSet.code, 0, viaSet.stderr)
  t.match(viaSet.stdout, /would run/)
  t.match(viaSet.stdout, /steps/)
  t.match(viaSet.stdout, /3 -> 5/)
  const file = join(dir, 'pipeline.yaml')
  const original = readFileSync(file, 'utf8')
  writeFileSync(file, original.replace('params: { eta: 0.1, seed: 0, steps: 3 }', 'params: { eta: 0.1, seed: 0, steps: 4 }'))
  try {
    const edited = await run(dir, ['why', T0])
    t.match(edited.stdout, /param steps changed: 3 -> 4/)
    const probe = await run(dir, ['why', 'probe@eta=0.1,seed=1'])
    t.match(probe.stdout, /param steps changed: 3 -> 4/, 'a downstream instance is traced to the root change')
    const st = JSON.parse((await run(dir, ['status', '--json'])).stdout) as { instances: Array<{ id: string; action: string }> }
    t.equal(st.instances.find((i) => i.id === 'prepare')?.action, 'fresh')
    t.equal(st.instances.find((i) => i.id === T0)?.action, 'run')
  } finally {
    writeFileSync(file, original)
  }
  const fresh = await run(dir, ['why', T0])
  t.match(fresh.stdout, /fresh/)
  const unknown = await run(dir, ['why', 'nope'])
  t.equal(unknown.code, 2)
})

t.test('artifacts lists every stored output; show prints the result JSON and store location', async (t) => {
  const a = await run(dir, ['artifacts'])
  t.equal(a.code, 0, a.stderr)
  for (const name of ['prepare/data.txt', `${T0}/model.txt`, 'probe@eta=0.1,seed=1/probe.txt', 'aggregate/summary.txt']) {
    t.match(a.stdout, name)
  }
  t.match(a.stdout, /fingerprint [0-9a-f]{16}/)
  const aj = JSON.parse((await run(dir, ['artifacts', T0, '--json'])).stdout) as {
    artifacts: Array<{ names: string[]; digest: string; size: number; producedBy: Array<{ params: Record<string, unknown> }> }>
  }
  t.ok(aj.artifacts.length >= 2, 'model.txt and result.json')
  t.ok(aj.artifacts.every((x) => x.names.every((n) => n.startsWith(`${T0}/`))))
  const model = aj.artifacts.find((x) => x.names.includes(`${T0}/model.txt`))
  t.match(model?.digest, /^[0-9a-f]{64}$/)
  t.equal(model?.producedBy[0]?.params.steps, 3)
  const show = await run(dir, ['show', T0])
  t.equal(show.code, 0, show.stderr)
  t.match(show.stdout, /result\.json/)
  t.match(show.stdout, /"w":/)
  t.match(show.stdout, /model\.txt/)
  const sj = JSON.parse((await run(dir, ['show', T0, '--json'])).stdout) as { results: Record<string, { w?: number }> }
  t.type(sj.results['result.json']?.w, 'number')
})

t.test('the store comes from --store, else CUSP_STORE, else <project>/artifacts', async (t) => {
  const other = mkdtempSync(join(tmpdir(), 'cusp-cli-store-'))
  t.teardown(() => rmSync(other, { recursive: true, force: true }))
  const viaEnv = await run(dir, ['artifacts'], { CUSP_STORE: other })
  t.equal(viaEnv.code, 0, viaEnv.stderr)
  t.match(viaEnv.stdout, other)
  t.match(viaEnv.stdout, /no runs recorded/)
  const viaFlag = await run(dir, ['artifacts', '--store', join(dir, 'artifacts')], { CUSP_STORE: other })
  t.match(viaFlag.stdout, /prepare\/data\.txt/, '--store wins over CUSP_STORE')
  const byDefault = await run(dir, ['artifacts'])
  t.match(byDefault.stdout, join(dir, 'artifacts'))
  const st = JSON.parse((await run(dir, ['status', '--json'], { CUSP_STORE: other })).stdout) as {
    instances: Array<{ action: string; reasons: Array<{ kind: string }> }>
  }
  t.ok(
    st.instances.some((i) => i.reasons.some((r) => r.kind === 'output-missing')),
    'an empty store makes locked outputs missing',
  )
})

t.test('a failing stage exits 1 and leaves the lock entry of the failed instance alone', async (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'cusp-cli-fail-'))
  t.teardown(() => rmSync(copy, { recursive: true, force: true }))
  cpSync(dir, copy, { recursive: true })
  const lock = readFileSync(join(copy, 'pipeline.lock'), 'utf8')
  const r = cli(copy, ['--set', 'prepare.fail=true'])
  t.equal(r.code, 1)
  t.match(r.stderr, /prepare/)
  t.equal(readFileSync(join(copy, 'pipeline.lock'), 'utf8'), lock)
})

t.test('on a TTY the run view is redrawn in place; NO_COLOR keeps colour out', async (t) => {
  let stdout = ''
  const code = await main(['--force', '--stage', 'prepare'], {
    stdout: { write: (s: string) => (stdout += s), isTTY: true, columns: 100 },
    stderr: { write: () => true },
    cwd: dir,
    env: { PATH: process.env.PATH, NO_COLOR: '1' },
  })
  t.equal(code, 0)
  t.match(stdout, /⠿ prepare/, 'a live line for the running instance')
  t.match(stdout, /\x1b\[\d+F\x1b\[J/, 'erased in place')
  t.match(stdout, /\[0\/1\] 1 running/, 'a footer counting settled instances')
  t.match(stdout, /done\s+prepare/)
  t.notMatch(stdout, /\x1b\[3\dm/, 'no colour under NO_COLOR')
})

t.test('--verify exits 1 when a re-execution gives different bytes, 0 when identical', async (t) => {
  const copy = mkdtempSync(join(tmpdir(), 'cusp-cli-verify-'))
  t.teardown(() => rmSync(copy, { recursive: true, force: true }))
  cpSync(dir, copy, { recursive: true })
  const same = await run(copy, ['--verify', '--stage', 'prepare'])
  t.equal(same.code, 0, same.stderr + same.stdout)
  t.match(same.stdout, /verified prepare/)
  const first = await run(copy, ['--stage', 'prepare', '--set', 'prepare.noise=true'])
  t.equal(first.code, 0, first.stderr)
  const noisy = await run(copy, ['--verify', '--stage', 'prepare', '--set', 'prepare.noise=true'])
  t.equal(noisy.code, 1)
  t.match(noisy.stdout, /NOT deterministic/)
  t.match(noisy.stderr, /prepare: not deterministic.*data\.txt/)
})

t.test('an exception escaping main is one line, with a stack only under CUSP_DEBUG=1', async (t) => {
  const attempt = async (env: Record<string, string | undefined>) => {
    let stderr = ''
    const code = await main(['status'], {
      stdout: {
        write: () => {
          throw new Error('disk on fire')
        },
      },
      stderr: { write: (s: string) => (stderr += s) },
      cwd: dir,
      env,
    })
    return { code, stderr }
  }
  const quiet = await attempt({})
  t.equal(quiet.code, 1)
  t.match(quiet.stderr, /disk on fire/)
  t.ok(noStack(quiet.stderr))
  t.equal(quiet.stderr.trim().split('\n').length, 1, 'exactly one line')
  const debug = await attempt({ CUSP_DEBUG: '1' })
  t.equal(debug.code, 1)
  t.notOk(noStack(debug.stderr), 'CUSP_DEBUG=1 shows the stack')
})
