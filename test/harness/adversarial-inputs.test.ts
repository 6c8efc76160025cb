/**
 * Adversarial inputs, table-driven, through the real CLI `main()` in-process: hostile
 * pipeline.yaml files and `--set` values (non-finite numbers, YAML tags that are not JSON data,
 * unresolved aliases and alias bombs, huge and non-regular files), broken lock files, two runs
 * of one instance, flag-like images, and credentials (a sentinel AWS secret, a URL with a
 * password, terminal escapes) that must never be printed or stored. Every case asserts the exit
 * code, a short message without a stack, that nothing was written into the project, and that
 * nothing already stored was lost.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { main } from '../../src/harness/cli.ts'
import { captureMain, type MainRun } from './fixtures/run-main.ts'
import { listing } from './fixtures/tree.ts'

const SECRET = 'sentinel-aws-9f1c2e7d'
const PASSWORD = 'sentinel-pw-4b8a'
const SECRET_URL = `https://user:${PASSWORD}@example.invalid/data.bin`

const stage = (body: string): string => `import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
export default {
  [Symbol.for('cusp.stage')]: true,
  async run(ctx) {
${body}
  },
}
`
const schema = (properties: Record<string, unknown>): string =>
  JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object', additionalProperties: false, properties })

const PIPELINE = `schema: 1
stages:
  side:
    params: { n: 3, word: hello }
    outputs: { side.txt: file }
  leak:
    params: { url: "${SECRET_URL}", fail: false }
    outputs: { leak.txt: file }
`

/** A project whose \`leak\` stage does its worst: prints its environment, a URL with a password and terminal escapes. */
function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-adv-'))
  const files: Record<string, string> = {
    'pipeline.yaml': PIPELINE,
    'schemas/stages/side.params.schema.json': schema({ n: { type: 'integer', minimum: 1 }, word: { type: 'string' } }),
    'schemas/stages/leak.params.schema.json': schema({ url: { type: 'string', 'x-cusp-secret': true }, fail: { type: 'boolean' } }),
    'stages/side/index.ts': stage(`    const hold = join(process.env.HOME ?? '/', 'hold')
    writeFileSync(join(process.env.HOME ?? '/', 'started'), String(process.pid))
    while ((await import('node:fs')).existsSync(hold)) await new Promise((r) => setTimeout(r, 10))
    writeFileSync(join(ctx.outDir, 'side.txt'), ctx.params.word.repeat(ctx.params.n) + '\\n')
    return { n: ctx.params.n }`),
    'stages/leak/index.ts': stage(`    const env = JSON.stringify(process.env)
    ctx.log('env ' + env)
    ctx.log('fetching ' + ctx.params.url + ' \\u001b[2J\\u001b]0;owned\\u0007 done')
    ctx.progress(0.5, 'half of ' + ctx.params.url)
    console.error('stderr env ' + env + ' url ' + ctx.params.url)
    writeFileSync(join(ctx.outDir, 'leak.txt'), env + '\\n')
    if (ctx.params.fail) throw new Error('failing on purpose at ' + ctx.params.url + ' with ' + env)
    return { keys: Object.keys(process.env).length }`),
  }
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
  return dir
}

type Out = MainRun

const cli = (cwd: string, args: string[], env: Record<string, string> = {}): Promise<Out> =>
  captureMain(
    cwd,
    args,
    {
      PATH: process.env.PATH,
      HOME: join(cwd, 'home'),
      NO_COLOR: '1',
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_ACCESS_KEY_ID: 'AKIASENTINEL0001',
      ...env,
    },
    main,
  )

/** All bytes of every file under `dir`, as one string (for "the secret is nowhere" checks). */
function allText(dir: string): string {
  return Object.keys(listing(dir))
    .map((f) => {
      try {
        return readFileSync(join(dir, f), 'latin1')
      } catch {
        return ''
      }
    })
    .join('\n')
}

const noStack = (s: string): boolean => !/^\s+at .+:\d+:\d+\)?$/m.test(s) && !/internal error/.test(s)

const dir = project()
mkdirSync(join(dir, 'home'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// ---- 1. --set values -------------------------------------------------------------------------
const bomb =
  '[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]]'
const setCases: [string, string, RegExp][] = [
  ['.inf', 'side.n=.inf', /infinite number/],
  ['-.inf', 'side.n=-.inf', /infinite number/],
  ['1e400', 'side.n=1e400', /infinite number/],
  ['-1e400', 'side.n=-1e400', /infinite number/],
  ['.nan', 'side.n=.nan', /NaN/],
  ['.inf inside a list', 'side.word=[1, .inf]', /at 1 is an infinite number/],
  ['.inf inside a mapping', 'side.word={a: {b: .inf}}', /at a\.b is an infinite number/],
  ['!!binary', 'side.word=!!binary aGVsbG8=', /binary data/],
  ['!!timestamp', 'side.word=!!timestamp 2001-12-14', /timestamp/],
  ['!!set', 'side.word=!!set {a, b}', /a set/],
  ['!!omap', 'side.word=!!omap [a: 1, b: 2]', /ordered map/],
  ['an unresolved alias', 'side.word=*nope', /scalar or flow value|alias/],
  ['an unresolved alias inside a list', 'side.word=[*nope]', /alias/],
  ['an alias bomb', `side.word=${bomb}`, /aliases cannot be resolved/],
  ['a 100 KB value', `side.word=${'x'.repeat(100_000)}`, /more than the 65536/],
  ['nesting 200 deep', `side.word=${'['.repeat(200)}1${']'.repeat(200)}`, /nested more than 64 levels/],
  ['out of the schema range', 'side.n=0', /params\.n must be >= 1/],
  ['no =', 'side.n', /expects stage\.param=value/],
  ['an unknown stage', 'nosuch.n=1', /no stage named "nosuch"/],
  ['an empty value', 'side.n=', /the value is empty/],
]
for (const [name, set, message] of setCases) {
  t.test(`--set ${name}: exit 2, one line, nothing written`, async (t) => {
    const before = listing(dir)
    const r = await cli(dir, ['status', '--set', set])
    t.equal(r.code, 2)
    t.match(r.stderr, message)
    t.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line')
    t.ok(r.stderr.length < 2000, 'a short message')
    t.ok(noStack(r.stderr), 'no stack')
    t.same(listing(dir), before, 'nothing written')
  })
}

// ---- 2. pipeline files ----------------------------------------------------------------------
const withParams = (params: string): string => `schema: 1\nstages:\n  side:\n    params: ${params}\n    outputs: { side.txt: file }\n`
const fileCases: [string, string | (() => string), RegExp, number?][] = [
  ['.inf in params', withParams('{ n: .inf, word: a }'), /side\.params\.n: this value is an infinite number/],
  ['1e400 in params', withParams('{ n: 1e400, word: a }'), /infinite number/],
  ['.nan in params', withParams('{ n: .nan, word: a }'), /NaN/],
  ['!!binary in params', withParams('{ n: 1, word: !!binary aGVsbG8= }'), /binary data/],
  ['!!timestamp in params', withParams('{ n: 1, word: !!timestamp 2001-12-14 }'), /timestamp/],
  ['!!set in params', withParams('{ n: 1, word: !!set {a, b} }'), /a set/],
  ['an unresolved alias', withParams('{ n: 1, word: *nope }'), /alias|nope/i],
  [
    'an alias bomb',
    `schema: 1\na: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nstages: {}\n`,
    /alias/i,
  ],
  [
    'a self-referential alias',
    'schema: 1\nstages:\n  side: &s { params: { x: [*s] }, outputs: { a: file } }\n',
    /nested more than 64 levels|alias/,
  ],
  ['a 5 MB file', () => `# ${'x'.repeat(5 * 1024 * 1024)}\n`, /more than the 4194304 a pipeline file may have/],
  ['an empty file', '', /mapping|schema|stages/i],
  ['a list at the top', '- 1\n- 2\n', /mapping/],
  ['NUL bytes', 'schema: 1\nstages:\n  \u0000side: {}\n', /./],
  [
    '1000 unknown top-level keys',
    () => `schema: 1\nstages: {}\n${Array.from({ length: 1000 }, (_, i) => `k${i}: 1`).join('\n')}\n`,
    /more problems not shown|must NOT have additional|unknown/i,
    52,
  ],
  ['3 MB of random bytes', () => randomText(3 * 1024 * 1024), /./, 52],
]
/** Deterministic garbage (xorshift) as latin1 text. */
function randomText(n: number): string {
  const b = Buffer.alloc(n)
  let s = 2463534242
  for (let i = 0; i < n; i++) {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    b[i] = s & 0xff
  }
  return b.toString('latin1')
}
for (const [name, content, message, maxLines] of fileCases) {
  t.test(`pipeline file with ${name}: exit 2, bounded message, nothing written`, async (t) => {
    const file = join(dir, 'variant.yaml')
    writeFileSync(file, typeof content === 'function' ? content() : content, 'latin1')
    t.teardown(() => rmSync(file, { force: true }))
    const before = listing(dir)
    const r = await cli(dir, ['status', '--file', file])
    t.equal(r.code, 2)
    t.match(r.stderr, message)
    const lines = r.stderr.trimEnd().split('\n').length
    t.ok(lines <= (maxLines ?? 3), `${lines} lines`)
    t.ok(r.stderr.length < 60_000, `${r.stderr.length} characters of error output`)
    t.ok(noStack(r.stderr), 'no stack')
    t.same(listing(dir), before, 'nothing written')
  })
}

const specialCases: [string, () => string | undefined, RegExp][] = [
  ['/dev/zero', () => '/dev/zero', /not a regular file/],
  ['/dev/null', () => '/dev/null', /not a regular file/],
  [
    'a FIFO with no writer',
    () => (spawnSync('mkfifo', [join(dir, 'fifo.yaml')]).status === 0 ? join(dir, 'fifo.yaml') : undefined),
    /not a regular file/,
  ],
  ['a directory', () => join(dir, 'stages'), /is a directory/],
  ['a missing file', () => join(dir, 'missing.yaml'), /does not exist/],
]
for (const [name, path, message] of specialCases) {
  t.test(`--file ${name}: exit 2 at once, one line`, async (t) => {
    const p = path()
    if (p === undefined) {
      t.pass('mkfifo not available here')
      return
    }
    t.teardown(() => (p.endsWith('fifo.yaml') ? rmSync(p, { force: true }) : undefined))
    const r = await cli(dir, ['status', '--file', p])
    t.equal(r.code, 2)
    t.match(r.stderr, message)
    t.equal(r.stderr.trimEnd().split('\n').length, 1)
    t.ok(noStack(r.stderr))
  })
}

// ---- 3. flag-like images ---------------------------------------------------------------------
for (const [executor, image] of [
  ['docker', '--privileged'],
  ['docker', '-v/:/host'],
  ['kubernetes', '--privileged'],
  ['docker', 'UPPER CASE'],
] as const) {
  t.test(`--executor ${executor} --image=${image}: refused before anything runs`, async (t) => {
    const before = listing(dir)
    const r = await cli(dir, ['run', '--executor', executor, `--image=${image}`, '--store', 's3://bucket-name/p'])
    t.equal(r.code, 2)
    t.match(r.stderr, image.startsWith('-') ? /starts with '-'/ : /not a valid image reference/)
    t.ok(noStack(r.stderr))
    t.same(listing(dir), before, 'nothing written')
  })
}

// ---- 4. credentials and terminal escapes --------------------------------------------------------
const secretFree = (t: Test, what: string, text: string): void => {
  t.notOk(text.includes(SECRET), `${what}: no AWS secret`)
  t.notOk(text.includes(PASSWORD), `${what}: no URL password`)
}

t.test('a stage that prints its environment and a URL with a password: nothing secret printed, stored or locked', async (t) => {
  const human = await cli(dir, ['run', '--stage', 'leak'])
  t.equal(human.code, 0, human.stderr)
  secretFree(t, 'stdout', human.stdout)
  secretFree(t, 'stderr', human.stderr)
  t.match(human.stdout, /https:\/\/\*\*\*@example\.invalid/, 'the URL is printed with its credentials redacted')
  t.notMatch(human.stdout, /\u001b/, 'no terminal escape reaches the terminal')
  t.notOk(allText(join(dir, 'artifacts')).includes(SECRET), 'the store holds no AWS secret: the stage never received it')
  t.notOk(readFileSync(join(dir, 'pipeline.lock'), 'utf8').includes(SECRET), 'the lock holds no AWS secret')
  t.same(readdirSync(join(dir, '.cusp', 'work')), [], 'no work directory left')
})

t.test('the lock and the store hold the URL password only sealed', async (t) => {
  const lock = readFileSync(join(dir, 'pipeline.lock'), 'utf8')
  t.notOk(lock.includes(PASSWORD), 'no URL password in the lock')
  t.match(lock, /sealed:scrypt:[0-9a-f]{64}/, 'the secret param is in the lock as its seal')
  t.notOk(allText(join(dir, 'artifacts', 'runs')).includes(PASSWORD), 'no URL password in any run record')
})

// A URL with credentials in a param that is NOT marked secret would reach the lock and the run
// records in clear: refused before anything runs, without echoing the password.
const plainCredentialCases: [string, string[]][] = [
  ['through --set', ['--set', `side.word=https://u:${PASSWORD}@h.invalid/x`]],
  ['through --set, a user name only', ['--set', `side.word=ftp://${PASSWORD}@h.invalid/x`]],
  ['through --set, plain http', ['--set', `side.word=http://u:${PASSWORD}@h.invalid:8080/x?y=1`]],
]
for (const [name, args] of plainCredentialCases) {
  t.test(`a URL with credentials in a plain param ${name}: exit 2, one line, the password not echoed`, async (t) => {
    const before = listing(dir)
    const r = await cli(dir, ['run', '--stage', 'side', ...args])
    t.equal(r.code, 2, r.stderr)
    t.match(r.stderr, /holds a URL with credentials.*x-cusp-secret.*environment/)
    t.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line')
    t.notOk(r.stderr.includes(PASSWORD) || r.stdout.includes(PASSWORD), 'the password is not echoed')
    t.ok(noStack(r.stderr), 'no stack')
    t.same(listing(dir), before, 'nothing written, nothing run')
  })
}

t.test('a URL with credentials in a plain param in pipeline.yaml: exit 2, the password not echoed', async (t) => {
  const other = mkdtempSync(join(tmpdir(), 'cusp-adv-cred-'))
  t.teardown(() => rmSync(other, { recursive: true, force: true }))
  for (const rel of ['schemas/stages/side.params.schema.json', 'stages/side/index.ts']) {
    mkdirSync(join(other, rel, '..'), { recursive: true })
    writeFileSync(join(other, rel), readFileSync(join(dir, rel)))
  }
  writeFileSync(
    join(other, 'pipeline.yaml'),
    `schema: 1\nstages:\n  side:\n    params: { n: 1, word: "https://u:${PASSWORD}@h.invalid/x" }\n    outputs: { side.txt: file }\n`,
  )
  const before = listing(other)
  const r = await cli(other, ['run'])
  t.equal(r.code, 2, r.stderr)
  t.match(r.stderr, /side\.params\.word.*holds a URL with credentials/)
  t.notOk(r.stderr.includes(PASSWORD) || r.stdout.includes(PASSWORD), 'the password is not echoed')
  t.same(listing(other), before, 'nothing written')
})

t.test('the same with --json events and --force', async (t) => {
  const r = await cli(dir, ['run', '--stage', 'leak', '--force', '--json'])
  t.equal(r.code, 0, r.stderr)
  secretFree(t, '--json events', r.stdout)
  secretFree(t, 'stderr', r.stderr)
  for (const line of r.stdout.trim().split('\n')) t.doesNotThrow(() => JSON.parse(line), 'every event line is JSON')
  t.notMatch(r.stdout, /\\u001b\[2J/, 'no escape sequence in the events')
})

t.test('a failing stage that puts secrets into its error: the failure message is redacted, exit 1', async (t) => {
  const r = await cli(dir, ['run', '--stage', 'leak', '--set', 'leak.fail=true'])
  t.equal(r.code, 1)
  secretFree(t, 'stdout', r.stdout)
  secretFree(t, 'stderr', r.stderr)
  t.match(r.stderr, /stage instance leak exited with code 1/)
  t.ok(noStack(r.stderr.split('Last lines of its stderr')[0] ?? ''), 'the harness adds no stack of its own')
})

t.test('export --format argo holds no credential', async (t) => {
  const r = await cli(dir, ['export', '--format', 'argo'])
  t.equal(r.code, 0, r.stderr)
  t.notOk(r.stdout.includes(SECRET), 'no AWS secret in the workflow')
})

// ---- 5. lock files -----------------------------------------------------------------------------
const lockCases: [string, string | (() => void), RegExp][] = [
  ['invalid JSON', '{"schema": 1, "instances": {', /invalid lock file: not valid JSON/],
  ['wrong types', '{"schema": 1, "instances": []}', /invalid lock file/],
  ['an empty file', '', /invalid lock file/],
  [
    'a forged fingerprint',
    () => {
      const lock = JSON.parse(readFileSync(join(dir, 'pipeline.lock.good'), 'utf8')) as {
        instances: Record<string, { fingerprint: string }>
      }
      for (const e of Object.values(lock.instances)) e.fingerprint = 'f'.repeat(64)
      writeFileSync(join(dir, 'pipeline.lock'), JSON.stringify(lock))
    },
    /not the hash of its breakdown/,
  ],
  [
    'a 20 MB lock',
    () => writeFileSync(join(dir, 'pipeline.lock'), `{"schema":1,"instances":{},"pad":"${'x'.repeat(20 * 1024 * 1024)}"}`),
    /invalid lock file/,
  ],
  ['a directory in its place', () => mkdirSync(join(dir, 'pipeline.lock')), /invalid lock file: cannot read/],
  // Output names in a lock become paths (restore, publish): a lock from a pull request or a
  // collaborator's commit is as untrusted as a store record. Fingerprints stay valid here, so only
  // the name rule can refuse these.
  [
    'an output name climbing out of the project',
    () => renameOutputs('../../stages/side'),
    /output name "\.\.\/\.\.\/stages\/side" climbs out/,
  ],
  ['an absolute output name', () => renameOutputs('/etc/passwd'), /output name "\/etc\/passwd" is an absolute path/],
  ['an output name with a separator', () => renameOutputs('sub/dir'), /output name "sub\/dir" contains a path separator/],
  ['a hidden output name', () => renameOutputs('.git'), /output name "\.git" must match/],
  ['257 outputs in one entry', () => renameOutputs(Array.from({ length: 257 }, (_, i) => `o${i}`)), /257 outputs \(at most 256\)/],
]

/** The project's files except what a run keeps for itself (.cusp/, the store, lock files). */
function sourceTree(): Record<string, number> {
  return Object.fromEntries(Object.entries(listing(dir)).filter(([f]) => !/^(\.cusp|artifacts|results)\/|^pipeline\.lock/.test(f)))
}

/** Write the good lock with every entry's outputs renamed (one name, or one output per name). */
function renameOutputs(names: string | string[]): void {
  const lock = JSON.parse(readFileSync(join(dir, 'pipeline.lock.good'), 'utf8')) as {
    instances: Record<string, { outputs: Record<string, unknown> }>
  }
  for (const e of Object.values(lock.instances)) {
    const first = Object.values(e.outputs)[0]
    e.outputs = Object.fromEntries((typeof names === 'string' ? [names] : names).map((n) => [n, first]))
  }
  writeFileSync(join(dir, 'pipeline.lock'), JSON.stringify(lock))
}
for (const [name, content, message] of lockCases) {
  t.test(`pipeline.lock with ${name}: exit 2, one line, the store untouched`, async (t) => {
    if (!existsSync(join(dir, 'pipeline.lock.good')))
      writeFileSync(join(dir, 'pipeline.lock.good'), readFileSync(join(dir, 'pipeline.lock')))
    const store = listing(join(dir, 'artifacts'))
    const project = sourceTree()
    rmSync(join(dir, 'pipeline.lock'), { recursive: true, force: true })
    if (typeof content === 'string') writeFileSync(join(dir, 'pipeline.lock'), content)
    else content()
    t.teardown(() => {
      rmSync(join(dir, 'pipeline.lock'), { recursive: true, force: true })
      writeFileSync(join(dir, 'pipeline.lock'), readFileSync(join(dir, 'pipeline.lock.good')))
    })
    for (const cmd of ['status', 'run']) {
      const r = await cli(dir, [cmd])
      t.equal(r.code, 2, `${cmd}: exit 2`)
      t.match(r.stderr, message)
      t.ok(r.stderr.length < 2000, 'a short message')
      t.ok(noStack(r.stderr))
    }
    t.same(listing(join(dir, 'artifacts')), store, 'nothing stored lost or added')
    t.same(sourceTree(), project, 'no project file written or removed')
  })
}

t.test('a stale lock owner file (dead pid, or garbage) does not block the lock write', async (t) => {
  for (const text of [JSON.stringify({ pid: 999999999, host: hostname() }), 'garbage', '{"pid": "1", "host": 7}']) {
    writeFileSync(join(dir, 'pipeline.lock.owner'), text)
    const r = await cli(dir, ['run', '--stage', 'side', '--force'])
    t.equal(r.code, 0, r.stderr)
    t.notOk(existsSync(join(dir, 'pipeline.lock.owner')), `taken over and released (${text})`)
  }
})

// ---- 6. two runs of one instance -------------------------------------------------------------
t.test('two runs of one instance at once: the second fails with one line naming the owner; nothing lost', async (t) => {
  const home = join(dir, 'home')
  rmSync(join(home, 'started'), { force: true })
  writeFileSync(join(home, 'hold'), '')
  const first = cli(dir, ['run', '--stage', 'side', '--force', '--set', 'side.n=4'])
  for (let i = 0; i < 6000 && !existsSync(join(home, 'started')); i++) await new Promise((r) => setTimeout(r, 10))
  t.ok(existsSync(join(home, 'started')), 'the first run is inside its stage')
  const second = await cli(dir, ['run', '--stage', 'side', '--force', '--set', 'side.n=4'])
  rmSync(join(home, 'hold'))
  const one = await first
  t.equal(one.code, 0, one.stderr)
  t.equal(second.code, 1)
  t.match(second.stderr, /side is already being run by another run in this process/)
  t.equal(second.stderr.trimEnd().split('\n').length, 1, 'one line')
  const lock = JSON.parse(readFileSync(join(dir, 'pipeline.lock'), 'utf8')) as { instances: Record<string, unknown> }
  t.ok(lock.instances.side && lock.instances.leak, 'both entries kept in the lock')
  t.same(
    readdirSync(join(dir, '.cusp', 'resume')).filter((n) => !n.startsWith('.')),
    [],
    'no resume directory or owner file left',
  )
})

// ---- 7. store and work-area faults (root ignores permissions, so a file stands where a directory must be) ----
const faultCases: [string, (d: string) => void, RegExp][] = [
  [
    'a file in place of the store objects directory',
    (d) => {
      mkdirSync(join(d, 'artifacts'), { recursive: true })
      writeFileSync(join(d, 'artifacts', 'objects'), '')
    },
    /^cannot \w+ .*artifacts\/objects.*: a file is where a directory should be \(ENOTDIR\)/,
  ],
  [
    'a file in place of .cusp',
    (d) => writeFileSync(join(d, '.cusp'), ''),
    /cannot \w+ .*\.cusp.*(ENOTDIR|EEXIST)|a file is where a directory should be/,
  ],
]
for (const [name, breakIt, message] of faultCases) {
  t.test(`${name}: exit 1, one-line store error, no stack, no lock entry`, async (t) => {
    const d = project()
    t.teardown(() => rmSync(d, { recursive: true, force: true }))
    mkdirSync(join(d, 'home'))
    breakIt(d)
    const r = await cli(d, ['run', '--stage', 'side'])
    t.equal(r.code, 1)
    t.match(r.stderr, message)
    t.ok(noStack(r.stderr), 'no stack')
    t.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line')
    t.notOk(existsSync(join(d, 'pipeline.lock')), 'nothing locked')
  })
}
