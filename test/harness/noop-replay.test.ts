/**
 * The no-op replay (scripts/noop-replay.cjs, src/harness/noop-replay.ts) through the real CLI,
 * `node scripts/pipeline.cjs`, on the toy DAG with a published file and a local data directory
 * (a param marked `x-cusp-path: dir`). A no-op rerun replays the recorded output byte for byte
 * (`CUSP_DEBUG_REPLAY=1` says `hit` on stderr), leaving every file as it was; each change the
 * full path would see (the pipeline file edited with its size and mtime restored, a stage source
 * edited or touched, an environment variable, another argv, a stored object deleted or resized,
 * a published file edited, a new file in the data directory, the lock rewritten) is a miss, and
 * the run then does what the full path does. On a pseudo-terminal (util-linux `script`) a no-op
 * is recorded and replayed too, byte for byte what the full path shows there, with one record per
 * terminal size beside the piped one. A remote or non-local run is never offered. A temp directory
 * the run makes and removes (the audit summary's) does not stop a replay.
 */
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { toyDagFiles, writeToyDag } from './fixtures/toy-dag.ts'
import { replayable, type ReplayCandidate } from '../../src/harness/noop-replay.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { startS3Server, TEST_BUCKET, TEST_ENV } from './fixtures/s3-server.ts'
import type { ArtifactStore, LockFile } from '../../src/harness/types.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..')
const dir = await mkdtemp(join(tmpdir(), 'cusp-noop-replay-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const yaml = writeToyDag(dir, { etas: [0.1], seeds: [0, 1] })
writeFileSync(yaml, `${readFileSync(yaml, 'utf8')}publish:\n  results/report.txt: { stage: aggregate, output: summary.txt }\n`)
// prepare reads a local directory named by a param: its content is in prepare's fingerprint.
const schemaPath = join(dir, 'schemas/stages/prepare.params.schema.json')
const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as { properties: Record<string, unknown> }
schema.properties['src'] = { type: 'string', 'x-cusp-path': 'dir', default: 'data' }
writeFileSync(schemaPath, `${JSON.stringify(schema, null, 2)}\n`)
mkdirSync(join(dir, 'data'))
writeFileSync(join(dir, 'data/a.txt'), 'a\n')
const published = join(dir, 'results/report.txt')

interface Run {
  code: number | null
  stdout: string
  /** stderr without the replay's debug lines. */
  stderr: string
  /** The replay's debug lines. */
  replay: string
}

/** `env -i VAR=... node scripts/pipeline.cjs --file <yaml> ...args` (what `npm run pipeline` runs), as argv. */
function command(args: string[], env: Record<string, string>, entry = 'scripts/pipeline.cjs'): string[] {
  // tap gives every child process its own ids (_TAPJS_PROCESSINFO_*, added by its spawn hook and
  // by the hooks it puts in NODE_OPTIONS); the environment's digest would see them, as it sees
  // every variable, so the CLI runs without them (it needs none of tap's hooks).
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_')))
  const file = args.includes('--file') ? [] : ['--file', yaml]
  const node = [process.execPath, join(REPO, entry), ...file, ...args]
  const vars = { ...clean, CUSP_STORE: '', NO_COLOR: '1', CUSP_DEBUG_REPLAY: '1', ...env }
  // `env -i`: exactly these variables, whatever tap's spawn hook adds.
  return ['-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v ?? ''}`), ...node]
}

function result(code: number | null, stdout: string, stderr: string): Run {
  const lines = stderr.split(/(?<=\n)/)
  return {
    code,
    stdout,
    stderr: lines.filter((l) => !l.startsWith('cusp: replay: ')).join(''),
    replay: lines.filter((l) => l.startsWith('cusp: replay: ')).join(''),
  }
}

function cli(args: string[] = [], env: Record<string, string> = {}, entry?: string): Run {
  const r = spawnSync('env', command(args, env, entry), { cwd: dir, encoding: 'utf8' })
  return result(r.status, r.stdout, r.stderr)
}

/** `cli` without blocking this process's event loop (the S3 server runs in it). */
function cliAsync(args: string[] = [], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    const child = spawn('env', command(args, env), { cwd: dir })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
    child.on('close', (code) => done(result(code, stdout, stderr)))
  })
}

/** The full path's output, never replayed. */
const full = (args: string[] = [], env: Record<string, string> = {}) => cli(args, { ...env, CUSP_NO_REPLAY: '1' })

/**
 * A no-op run that records, then one that replays. The pause lets every stamp of the last
 * change age past the recorder's margin (a record is only written for stamps older than it).
 */
async function recordThenHit(t: Test, what: string): Promise<Run> {
  await sleep(250)
  const rec = cli()
  t.equal(rec.code, 0, `${what}: the recording run succeeds`)
  t.match(rec.replay, /recorded \d+ paths|hit/, `${what}: a no-op run records (or replays a record still valid)`)
  const hit = cli()
  t.match(hit.replay, /^cusp: replay: hit\n$/, `${what}: the next no-op replays`)
  t.equal(hit.stdout, rec.stdout, `${what}: the replay prints what the recording run printed`)
  t.equal(hit.stderr, rec.stderr)
  t.equal(hit.code, 0)
  return hit
}

/** Every file under the project with its stat, but the replay's own record. */
function snapshot(): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (p.startsWith(join(dir, '.cusp/replay'))) continue
      const st = statSync(p, { bigint: true })
      out[p] = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}`
      if (e.isDirectory()) walk(p)
    }
  }
  walk(dir)
  return out
}

const miss = (t: Test, r: { replay: string }, what: string) => {
  t.match(r.replay, /miss/, `${what}: no replay`)
  t.notMatch(r.replay, /hit/)
}

const lock = () => JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as LockFile
const objectOf = (inst: string, out: string) =>
  new LocalStore(join(dir, 'artifacts')).objectPath(lock().instances[inst]!.outputs[out]!.digest)

t.test('first run', async (t) => {
  const r = cli()
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /6 ran, 0 restored, 0 fresh/)
  t.match(r.replay, /not recorded/, 'a run that did work is not recorded')
})

t.test('a no-op rerun replays exactly what the full path prints, and changes nothing', async (t) => {
  const hit = await recordThenHit(t, 'no-op')
  const ref = full()
  t.equal(ref.replay, '', 'CUSP_NO_REPLAY=1: no replay, no record')
  t.equal(hit.stdout, ref.stdout, 'stdout byte-identical to the full path')
  t.equal(hit.stderr, ref.stderr, 'stderr byte-identical to the full path')
  t.match(hit.stdout, /0 ran, 0 restored, 6 fresh/)
  t.match(hit.stdout, /open results\/report\.txt/)
  const before = snapshot()
  t.match(cli().replay, /hit/)
  t.same(snapshot(), before, 'a replay leaves every file and directory as it was')
  const after = full()
  t.same(snapshot(), before, 'so does the full no-op')
  t.equal(after.stdout, ref.stdout)
  const esm = cli([], {}, 'scripts/pipeline.mjs')
  t.match(esm.replay, /^cusp: replay: hit\n$/, 'node scripts/pipeline.mjs, the same CLI, replays the same record')
  t.equal(esm.stdout, ref.stdout)
})

/** The shell command `script` runs: the same `env -i ... node ...` as `cli`, on a terminal of `cols` x 24. */
function onTerminal(cols: number, args: string[], env: Record<string, string>): string {
  const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`
  return `stty cols ${cols} rows 24 && exec env ${command(args, env).map(quote).join(' ')}`
}

interface TermRun {
  code: number | null
  /** Everything the terminal showed (stdout and stderr, as the pty wrote them), without the replay's debug lines. */
  screen: string
  replay: string
}

/** The CLI on a pseudo-terminal (util-linux `script`), as a person runs it: stdin, stdout and stderr all the terminal. */
function term(cols: number, args: string[] = [], env: Record<string, string> = {}): TermRun {
  const r = spawnSync('script', ['-q', '-e', '-c', onTerminal(cols, args, env), '/dev/null'], { cwd: dir, encoding: 'utf8' })
  const lines = r.stdout.split(/(?<=\n)/)
  return {
    code: r.status,
    screen: lines.filter((l) => !l.startsWith('cusp: replay: ')).join(''),
    replay: lines.filter((l) => l.startsWith('cusp: replay: ')).join(''),
  }
}

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0

t.test(
  'on a terminal: replayed byte for byte per terminal size, beside the piped record',
  { skip: !hasScript && 'no util-linux script' },
  async (t) => {
    // Colour allowed (no NO_COLOR, a colour TERM): what a person's terminal gets.
    const env = { NO_COLOR: '', TERM: 'xterm-256color' }
    await sleep(250)
    const rec = term(80, [], env)
    t.equal(rec.code, 0, rec.screen)
    t.match(rec.replay, /recorded \d+ paths/, 'a no-op on a terminal records')
    t.match(rec.screen, /0 ran, 0 restored, 6 fresh\r\n/, 'through the terminal (\\n shown as \\r\\n)')
    const hit = term(80, [], env)
    t.match(hit.replay, /^cusp: replay: hit\r\n$/, 'the next no-op on the same terminal replays')
    const full = term(80, [], { ...env, CUSP_NO_REPLAY: '1' })
    t.equal(full.replay, '')
    t.equal(hit.screen, full.screen, 'the replayed screen is byte for byte the full path on that terminal')
    t.equal(hit.code, full.code)

    const wide = term(100, [], env)
    t.match(wide.replay, /miss \(no record\)/, 'another width: not replayed')
    t.match(wide.replay, /recorded/, 'and it records its own')
    t.equal(wide.screen, term(100, [], { ...env, CUSP_NO_REPLAY: '1' }).screen)
    const wideHit = term(100, [], env)
    t.match(wideHit.replay, /hit/)
    t.equal(wideHit.screen, wide.screen)
    t.match(term(80, [], env).replay, /hit/, 'the 80-column record is still there')
    miss(t, term(80, [], { ...env, TERM: 'dumb' }), 'TERM=dumb (no colour)')
    miss(t, term(80, [], { ...env, NO_COLOR: '1' }), 'NO_COLOR')
    t.match(cli().replay, /hit/, 'piped output keeps its own record')
  },
)

t.test('pipeline.yaml edited, same size and mtime restored: the ctime catches it', async (t) => {
  // A whole-second mtime, so that utimes can put it back exactly.
  utimesSync(yaml, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'))
  await recordThenHit(t, 'before')
  const st = statSync(yaml)
  const text = readFileSync(yaml, 'utf8')
  t.match(text, /n: 8,/)
  writeFileSync(yaml, text.replace('n: 8,', 'n: 9,'))
  utimesSync(yaml, st.atime, st.mtime)
  t.equal(statSync(yaml).size, st.size)
  t.equal(statSync(yaml).mtimeMs, st.mtimeMs)
  const r = cli()
  miss(t, r, 'pipeline.yaml')
  t.match(r.stdout, /prepare/)
  t.notMatch(r.stdout, /0 ran, 0 restored, 6 fresh/, 'the edit reruns prepare')
  t.equal(r.code, 0, r.stderr)
})

t.test('a stage source edited, or only touched', async (t) => {
  await recordThenHit(t, 'before')
  appendFileSync(join(dir, 'stages/aggregate/index.ts'), '// edited\n')
  const r = cli()
  miss(t, r, 'edited')
  t.match(r.stdout, /1 ran, 0 restored, 5 fresh/, 'aggregate reruns')
  await recordThenHit(t, 'after the edit')
  const now = new Date()
  utimesSync(join(dir, 'stages/train/index.ts'), now, now)
  const touched = cli()
  miss(t, touched, 'touched')
  t.match(touched.stdout, /0 ran, 0 restored, 6 fresh/, 'same bytes: the full path finds everything fresh')
})

t.test('an environment variable or another argv', async (t) => {
  await recordThenHit(t, 'before')
  const other = join(dir, 'other-store')
  const r = cli([], { CUSP_STORE: other })
  miss(t, r, 'CUSP_STORE')
  t.match(r.stdout, /6 ran/, 'another store: everything runs into it')
  await sleep(250) // the run into the other store rewrote files: let their stamps age
  const region = cli([], { AWS_REGION: 'eu-west-3' })
  miss(t, region, 'AWS_REGION')
  t.match(region.replay, /recorded/, 'an all-fresh run with another environment records its own')
  miss(t, cli([], { CUSP_RECORD_KEY: 'k' }), 'CUSP_RECORD_KEY')
  await sleep(250)
  const jobs = cli(['--jobs', '1'])
  miss(t, jobs, '--jobs 1')
  t.match(jobs.replay, /recorded/, 'another argv records its own')
  t.match(jobs.stdout, /0 ran, 0 restored, 6 fresh/)
  const status = cli(['status'])
  t.notMatch(status.replay, /hit/, 'status never replays')
  t.match(status.replay, /not recorded/, 'nor is it recorded')
  const dry = cli(['--dry-run'])
  t.notMatch(dry.replay, /hit|recorded \d/, '--dry-run is neither replayed nor recorded')
  // One record per argv and cwd: the runs with another environment replaced the plain one's.
  t.match(cli(['--jobs', '1']).replay, /hit/, '--jobs 1 has its own record, still valid')
  t.match(cli([], { AWS_REGION: 'eu-west-3' }).replay, /hit/, 'the last environment recorded replays')
  miss(t, cli(), 'back to the first environment')
})

t.test('a stored object deleted or resized', async (t) => {
  await recordThenHit(t, 'before')
  const obj = objectOf('train@eta=0.1,seed=1', 'model.txt')
  rmSync(obj, { force: true })
  const r = cli()
  miss(t, r, 'deleted')
  t.notMatch(r.stdout, /0 ran, 0 restored, 6 fresh/, 'the lost output is produced again')
  await recordThenHit(t, 'after the repair')
  const agg = objectOf('aggregate', 'summary.txt')
  chmodSync(agg, 0o644)
  appendFileSync(agg, 'x')
  chmodSync(agg, 0o444)
  miss(t, cli(), 'resized')
})

t.test('a published file edited: status reports it and the rerun restores it', async (t) => {
  // The resized object above: put the store right first (fsck --repair is not what this tests).
  rmSync(objectOf('aggregate', 'summary.txt'), { force: true })
  t.equal(cli().code, 0)
  await recordThenHit(t, 'before')
  const good = readFileSync(published, 'utf8')
  chmodSync(published, 0o644)
  writeFileSync(published, 'edited by hand\n')
  const status = cli(['status'])
  t.match(status.stdout, /report\.txt/, 'status names the edited file')
  t.match(status.stdout, /edited|modified|changed/)
  const r = cli()
  miss(t, r, 'published file')
  t.equal(readFileSync(published, 'utf8'), good, 'the rerun restored it')
})

t.test('a new file in the data directory, the lock rewritten', async (t) => {
  await recordThenHit(t, 'before')
  writeFileSync(join(dir, 'data/b.txt'), 'b\n')
  const r = cli()
  miss(t, r, 'new data file')
  t.match(r.stdout, /ran/)
  t.notMatch(r.stdout, /0 ran, 0 restored, 6 fresh/, 'prepare reruns on its new input')
  await recordThenHit(t, 'after')
  const lockPath = join(dir, 'pipeline.lock')
  writeFileSync(lockPath, readFileSync(lockPath))
  const same = cli()
  miss(t, same, 'lock rewritten')
  t.match(same.stdout, /0 ran, 0 restored, 6 fresh/)
})

t.test('a stage named audit: the closing summary reads its result through a temp directory, still replayed', async (t) => {
  // src/main.ts's afterRun copies audit/result.json out of the store into a fresh mkdtemp
  // directory and removes it: private to the run, so it neither disqualifies nor becomes an input.
  const root = await mkdtemp(join(tmpdir(), 'cusp-noop-replay-audit-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  for (const [rel, content] of Object.entries(toyDagFiles({ etas: [0.1], seeds: [0] }))) {
    const abs = join(root, rel.replaceAll('aggregate', 'audit'))
    mkdirSync(dirname(abs), { recursive: true })
    writeFileSync(abs, content.replaceAll('aggregate', 'audit'))
  }
  const file = join(root, 'pipeline.yaml')
  t.equal(cli(['--file', file]).code, 0)
  await sleep(250)
  t.match(cli(['--file', file]).replay, /recorded/, 'the no-op records')
  const hit = cli(['--file', file])
  t.match(hit.replay, /hit/, 'and replays')
  t.equal(hit.stdout, full(['--file', file]).stdout)
})

t.test('an S3 store (tiered behind the local cache) is never recorded', async (t) => {
  const server = await startS3Server()
  t.teardown(() => server.close())
  const spec = `s3://${TEST_BUCKET}/noop-replay?endpoint=${encodeURIComponent(server.endpoint)}`
  const push = await cliAsync(['push', '--store', spec], TEST_ENV)
  t.equal(push.code, 0, push.stderr)
  for (let i = 0; i < 2; i++) {
    await sleep(250)
    const r = await cliAsync(['--store', spec], TEST_ENV)
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /0 ran, 0 restored, 6 fresh/, 'a no-op')
    t.notMatch(r.replay, /hit/, 'never replayed')
    t.match(r.replay, /not recorded \(not a plain all-fresh run\)/, 'and never recorded: the CLI does not offer it')
  }
})

t.test('a run that touches process.stdin (a prompt, a terminal) is not recorded', async (t) => {
  // The recorder alone (scripts/noop-record.mjs) in a node process that offers itself, with and
  // without a look at process.stdin: only fs reads are traced, so stdin in any form rules a run out.
  const root = await mkdtemp(join(tmpdir(), 'cusp-noop-replay-stdin-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const script = (touch: boolean) => `
    import { bundlePaths } from ${JSON.stringify(join(REPO, 'scripts/cli-bundle.mjs'))}
    import { startRecording } from ${JSON.stringify(join(REPO, 'scripts/noop-record.mjs'))}
    const { bundle, manifest } = bundlePaths()
    startRecording({ bundle, manifest, scripts: [] })
    ${touch ? 'void process.stdin.isTTY' : ''}
    globalThis[Symbol.for('cusp.noop-replay')].offer(process.cwd())
  `
  const run = (touch: boolean) =>
    spawnSync(process.execPath, ['--input-type=module', '-e', script(touch)], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, CUSP_DEBUG_REPLAY: '1', CUSP_NO_REPLAY: '' },
    })
  t.match(run(true).stderr, /not recorded \(uses process\.stdin\)/)
  t.match(run(false).stderr, /recorded \d+ paths/, 'the same process without it records')
})

t.test('only a plain local all-fresh run is offered', async (t) => {
  const store = new LocalStore(join(dir, 'artifacts'))
  const base: ReplayCandidate = {
    cmd: { force: false, dryRun: false, verify: false, estimate: false, executor: 'local' },
    remote: false,
    store,
    summary: { steps: [], outcomes: { a: { outcome: 'fresh' } }, failures: [], ok: true },
    published: undefined,
    root: dir,
  }
  t.ok(replayable(base))
  t.notOk(replayable({ ...base, store: { ...store } as unknown as ArtifactStore }), 'not a LocalStore (S3, tiered)')
  t.notOk(replayable({ ...base, remote: true }))
  t.notOk(replayable({ ...base, cmd: { ...base.cmd, force: true } }))
  t.notOk(replayable({ ...base, cmd: { ...base.cmd, verify: true } }))
  t.notOk(replayable({ ...base, cmd: { ...base.cmd, executor: 'docker' } }))
  t.notOk(replayable({ ...base, summary: { ...base.summary, outcomes: { a: { outcome: 'restored' } } } }))
  const report = { written: [], unchanged: 1, removed: [], kept: [], saved: {}, problems: [] }
  t.ok(replayable({ ...base, published: report }))
  t.notOk(replayable({ ...base, published: { ...report, written: ['r.txt'] } }))
  t.notOk(replayable({ ...base, published: { ...report, problems: ['p'] } }))
})
