/**
 * Expected file-system failures through the real CLI `main()` in-process: a full disk (ENOSPC)
 * or a read-only place (EACCES, EROFS) while writing the lock, the store (artifacts/) or the
 * harness's own directory (.cusp/), a file where the store or a published path needs a
 * directory (ENOTDIR, EEXIST). The faults are injected into this process's `node:fs`
 * (fixtures/fs-faults.ts: the tests run as root, where chmod protects nothing). Each case
 * asserts the exit code, one line naming what and where with the errno, no stack and no
 * "internal error" (CUSP_DEBUG=1 adds the stack), that nothing already stored or locked was
 * lost or changed, that no temporary file was left behind, and that a rerun without the fault
 * succeeds.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import t from 'tap'
import { main } from '../../src/harness/cli.ts'
import { captureMain, type MainRun } from './fixtures/run-main.ts'
import { injectFsFault, type FaultSpec } from './fixtures/fs-faults.ts'

const STAGE = (body: string): string => `import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
export default {
  [Symbol.for('cusp.stage')]: true,
  async run(ctx) {
${body}
    return {}
  },
}
`
const PIPELINE = `schema: 1
stages:
  make:
    params: { word: hello }
    outputs: { a.txt: file }
  use:
    deps:
      a: { stage: make, output: a.txt }
    outputs: { b.txt: file }
`
const schema = (properties: Record<string, unknown>): string => JSON.stringify({ type: 'object', additionalProperties: false, properties })

function project(extra = ''): string {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-store-faults-'))
  const files: Record<string, string> = {
    'pipeline.yaml': PIPELINE + extra,
    'schemas/stages/make.params.schema.json': schema({ word: { type: 'string' } }),
    'schemas/stages/use.params.schema.json': schema({}),
    'stages/make/index.ts': STAGE(`    writeFileSync(join(ctx.outDir, 'a.txt'), ctx.params.word.repeat(1000))`),
    'stages/use/index.ts': STAGE(`    writeFileSync(join(ctx.outDir, 'b.txt'), readFileSync(ctx.inputs.a[0].path, 'utf8').toUpperCase())`),
  }
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
  mkdirSync(join(dir, 'home'))
  return dir
}

type Out = MainRun

const cli = (cwd: string, args: string[], env: Record<string, string> = {}): Promise<Out> =>
  captureMain(cwd, args, { PATH: process.env.PATH, HOME: join(cwd, 'home'), NO_COLOR: '1', ...env }, main)

/** Every file under `dir` with its bytes (relative path -> content), `home/` left out. */
function snapshot(dir: string, under = ''): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (d: string): void => {
    if (!existsSync(d)) return
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.isFile()) out.set(relative(dir, p), readFileSync(p, 'latin1'))
    }
  }
  walk(join(dir, under))
  return out
}

/** What the store and the lock hold: every stored object and record, and pipeline.lock. */
function stored(dir: string): Map<string, string> {
  const s = snapshot(dir, 'artifacts')
  if (existsSync(join(dir, 'pipeline.lock'))) s.set('pipeline.lock', readFileSync(join(dir, 'pipeline.lock'), 'latin1'))
  return s
}

/** The outputs a stored run record names (undefined when it is gone or unreadable). */
function outputsOf(text: string | undefined): unknown {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as { outputs?: unknown }).outputs
  } catch {
    return undefined
  }
}

const noStack = (s: string): boolean => !/^\s+at .+:\d+:\d+\)?$/m.test(s) && !/internal error/.test(s)

/** Temporary files a failed write must not leave behind (the lock's, the store's). */
function leftovers(dir: string): string[] {
  const root = readdirSync(dir).filter((n) => n.startsWith('.pipeline.lock.') || n.startsWith('pipeline.lock.'))
  const tmp = existsSync(join(dir, 'artifacts', 'tmp')) ? readdirSync(join(dir, 'artifacts', 'tmp')).map((n) => `artifacts/tmp/${n}`) : []
  return [...root, ...tmp]
}

interface Case {
  name: string
  fault: (dir: string) => FaultSpec
  /** The message (one line): what, where, the errno. */
  message: (dir: string) => RegExp
}

const lockMsg = (code: string) => (d: string) =>
  new RegExp(`^cannot write the lock file ${d}/pipeline\\.lock: .*\\(${code}\\)\\. .*then run again\\.$`)
const cases: Case[] = [
  {
    name: 'the lock: ENOSPC while writing it',
    fault: (d) => ({ prefixes: [`${d}/.pipeline.lock.tmp`], code: 'ENOSPC', ops: ['write'] }),
    message: lockMsg('ENOSPC'),
  },
  {
    name: 'the lock: EACCES creating its temporary file',
    fault: (d) => ({ prefixes: [`${d}/.pipeline.lock.tmp`], code: 'EACCES', ops: ['open'] }),
    message: lockMsg('EACCES'),
  },
  {
    name: 'the lock: EACCES renaming it into place',
    fault: (d) => ({ prefixes: [`${d}/.pipeline.lock.tmp`], code: 'EACCES', ops: ['rename'] }),
    message: lockMsg('EACCES'),
  },
  {
    name: 'the lock: EROFS on its owner file',
    fault: (d) => ({ prefixes: [`${d}/.pipeline.lock.owner`, `${d}/pipeline.lock.owner`], code: 'EROFS' }),
    message: (d) => new RegExp(`^cannot \\w+ ${d}/\\.?pipeline\\.lock\\.owner\\S*: read-only file system \\(EROFS\\)\\. `),
  },
  {
    name: 'the store: read-only (EACCES on every write under artifacts/)',
    fault: (d) => ({ under: [`${d}/artifacts`], code: 'EACCES' }),
    message: (d) => new RegExp(`^cannot \\w+ ${d}/artifacts/\\S+: permission denied \\(EACCES\\)\\. Make it writable`),
  },
  {
    name: 'the store: a full disk (ENOSPC on every write of data under artifacts/)',
    fault: (d) => ({ under: [`${d}/artifacts`], code: 'ENOSPC', ops: ['write', 'writeFile', 'copyFile'] }),
    message: (d) => new RegExp(`^cannot write ${d}/artifacts/\\S+: no space left on the device \\(ENOSPC\\)\\. Free space`),
  },
  {
    name: 'the store: immutable (EPERM on every write under artifacts/, as after chattr +i)',
    fault: (d) => ({ under: [`${d}/artifacts`], code: 'EPERM' }),
    message: (d) =>
      new RegExp(
        `^cannot \\w+ ${d}/artifacts/\\S+: operation not permitted \\(an immutable or protected file\\?\\) \\(EPERM\\)\\. Make it writable`,
      ),
  },
  {
    name: 'the store: a read-only file system (EROFS)',
    fault: (d) => ({ under: [`${d}/artifacts`], code: 'EROFS' }),
    message: (d) => new RegExp(`^cannot \\w+ ${d}/artifacts/\\S+: read-only file system \\(EROFS\\)\\. `),
  },
  {
    name: '.cusp/: read-only (EACCES)',
    fault: (d) => ({ under: [`${d}/.cusp`], code: 'EACCES' }),
    message: (d) => new RegExp(`^cannot \\w+ ${d}/\\.cusp/\\S*: permission denied \\(EACCES\\)\\. `),
  },
  {
    name: '.cusp/: a full disk (ENOSPC)',
    fault: (d) => ({ under: [`${d}/.cusp`], code: 'ENOSPC', ops: ['write', 'writeFile', 'copyFile', 'mkdir'] }),
    message: (d) => new RegExp(`^cannot \\w+ ${d}/\\.cusp/\\S*: no space left on the device \\(ENOSPC\\)\\. Free space`),
  },
  {
    name: 'the whole project read-only (EROFS)',
    fault: (d) => ({ under: [d], code: 'EROFS' }),
    message: (d) => new RegExp(`^cannot \\w+ ${d}/\\S+: read-only file system \\(EROFS\\)\\. `),
  },
]

for (const c of cases) {
  t.test(`${c.name}: exit 1, one line, nothing stored lost, rerun recovers`, async (t) => {
    const dir = project()
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const first = await cli(dir, ['run'])
    t.equal(first.code, 0, first.stderr)
    const before = stored(dir)
    const fault = injectFsFault(c.fault(dir))
    let r: Out
    try {
      r = await cli(dir, ['run', '--force'])
    } finally {
      fault.undo()
    }
    t.ok(fault.failed() > 0, 'the fault was hit')
    t.equal(r.code, 1, 'exit 1: the environment, not the input')
    const lines = r.stderr.trimEnd().split('\n')
    t.equal(lines.length, 1, `one line: ${r.stderr}`)
    t.match(lines[0], c.message(dir), 'names what, where and the errno')
    t.ok(noStack(r.stderr), 'no stack, no "internal error"')
    const after = stored(dir)
    for (const [path, bytes] of before) {
      // A --force run may republish a record for the same fingerprint (a later time): what it names must not change.
      if (path.startsWith('artifacts/runs/')) t.same(outputsOf(after.get(path)), outputsOf(bytes), `${path} names the same outputs`)
      else t.equal(after.get(path), bytes, `${path} kept as it was`)
    }
    t.same(leftovers(dir), [], 'no temporary file left behind')
    const again = await cli(dir, ['run'])
    t.equal(again.code, 0, `a rerun without the fault succeeds: ${again.stderr}`)
    const status = await cli(dir, ['status'])
    t.match(status.stdout, /2 instances: 2 fresh/)
  })
}

t.test('CUSP_DEBUG=1 adds the stack to a file-system failure', async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal((await cli(dir, ['run'])).code, 0)
  const fault = injectFsFault({ prefixes: [`${dir}/.pipeline.lock.tmp`], code: 'ENOSPC', ops: ['write'] })
  const saved = process.env.CUSP_DEBUG
  process.env.CUSP_DEBUG = '1'
  let r: Out
  try {
    r = await cli(dir, ['run', '--force'], { CUSP_DEBUG: '1' })
  } finally {
    fault.undo()
    if (saved === undefined) delete process.env.CUSP_DEBUG
    else process.env.CUSP_DEBUG = saved
  }
  t.equal(r.code, 1)
  t.match(r.stderr, /^cannot write the lock file .*\(ENOSPC\)/)
  t.match(r.stderr, /\n\s+at .+:\d+:\d+\)?$/m, 'the stack follows')
})

t.test('reading commands work against a read-only store', async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal((await cli(dir, ['run'])).code, 0)
  const fault = injectFsFault({ under: [`${dir}/artifacts`, `${dir}/.cusp`, `${dir}/pipeline.lock`], code: 'EACCES' })
  try {
    const s = await cli(dir, ['status'])
    t.equal(s.code, 0, s.stderr)
    t.match(s.stdout, /2 instances: 2 fresh/)
    const w = await cli(dir, ['why', 'use'])
    t.equal(w.code, 0, w.stderr)
  } finally {
    fault.undo()
  }
})

const storeCases: [string, string[], Record<string, string>][] = [
  ['--store under a file', ['run', '--store', 'f.txt/store'], {}],
  ['CUSP_STORE under a file', ['run'], { CUSP_STORE: 'f.txt/store' }],
  ['--store under a file, status', ['status', '--store', 'f.txt/store'], {}],
]
for (const [name, args, env] of storeCases) {
  t.test(`${name} (ENOTDIR): exit 2, one line naming the store`, async (t) => {
    const dir = project()
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'f.txt'), 'a file')
    const r = await cli(dir, args, env)
    t.equal(r.code, 2)
    t.equal(r.stderr.trimEnd().split('\n').length, 1)
    t.match(r.stderr, new RegExp(`^cannot use the store ${dir}/f\\.txt/store: a file is where a directory should be \\(ENOTDIR\\)\\. `))
    t.ok(noStack(r.stderr))
    t.same([...snapshot(dir).keys()].filter((f) => !f.startsWith('stages/') && !f.startsWith('schemas/')).sort(), [
      'f.txt',
      'pipeline.yaml',
    ])
  })
}

t.test('.cusp is a file (ENOTDIR): exit 1, one line, the store untouched', async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal((await cli(dir, ['run'])).code, 0)
  const before = stored(dir)
  rmSync(join(dir, '.cusp'), { recursive: true, force: true })
  writeFileSync(join(dir, '.cusp'), 'a file')
  const r = await cli(dir, ['run', '--force'])
  t.equal(r.code, 1)
  t.equal(r.stderr.trimEnd().split('\n').length, 1)
  t.match(r.stderr, /^cannot \w+ .*\/\.cusp\/\S*: a file is where a directory should be \(ENOTDIR\)\. /)
  t.ok(noStack(r.stderr))
  const after = stored(dir)
  for (const [path, bytes] of before) if (!path.startsWith('artifacts/runs/')) t.equal(after.get(path), bytes, `${path} kept`)
})

t.test('a published path under a file (EEXIST): exit 1, one line, the run itself kept', async (t) => {
  const dir = project('publish:\n  f.txt/b.txt: { stage: use, output: b.txt }\n')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'f.txt'), 'a file')
  const r = await cli(dir, ['run'])
  t.equal(r.code, 1)
  t.equal(r.stderr.trimEnd().split('\n').length, 1)
  t.match(r.stderr, new RegExp(`^cannot mkdir ${dir}/f\\.txt: .*\\((EEXIST|ENOTDIR)\\)\\. Move`))
  t.ok(noStack(r.stderr))
  t.equal(readFileSync(join(dir, 'f.txt'), 'utf8'), 'a file', 'the file in the way is not touched')
  const s = await cli(dir, ['status'])
  t.match(s.stdout, /2 instances: 2 fresh/, 'the run was stored and locked before publishing failed')
})
