/**
 * A sentinel secret given with `--set` for a param marked `x-cusp-secret`, through every executor
 * and the Argo export, through the real CLI `main()` in-process. The in-process executor runs the
 * stage with the real value (its output proves it) and keeps only the sealed digest: the sentinel
 * is in no output, event, lock or stored object. Every executor that would copy the `--set` into a
 * command line, a job definition or an exported file (local-process, docker, kubernetes, aws-batch,
 * export) refuses before it starts anything: exit 2, one line naming the param, never the value,
 * with advice that does not send the secret into a committed file. The AWS Batch job's environment
 * carries the endpoint URL without its credentials.
 */
import { createHash } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import t from 'tap'
import { main } from '../../src/harness/cli.ts'
import { captureMain, type MainRun } from './fixtures/run-main.ts'
import { listing } from './fixtures/tree.ts'
import { submitInput } from '../../src/harness/executors/aws-batch-jobdef.ts'
import { secretOverrides } from '../../src/harness/secret-params.ts'
import type { Fingerprint, StageInstance } from '../../src/harness/types.ts'

const SENTINEL = 'sentinel-secret-7c41d9e2b0'
const NESTED = 'sentinel-nested-55aa01'

const PIPELINE = `schema: 1
stages:
  fetch:
    params: { token: placeholder-token, auth: { key: placeholder-key, user: me }, n: 1 }
    outputs: { got.txt: file }
`
const STAGE = `import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
export default {
  [Symbol.for('cusp.stage')]: true,
  async run(ctx) {
    ctx.log('token is ' + ctx.params.token)
    ctx.progress(0.5, 'using ' + ctx.params.token)
    console.error('stderr token ' + ctx.params.token)
    const h = (s) => createHash('sha256').update(s).digest('hex')
    writeFileSync(join(ctx.outDir, 'got.txt'), h(ctx.params.token) + ' ' + h(ctx.params.auth.key) + '\\n')
    return { n: ctx.params.n }
  },
}
`
const SCHEMA = JSON.stringify({
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  additionalProperties: false,
  properties: {
    token: { type: 'string', 'x-cusp-secret': true },
    auth: {
      type: 'object',
      additionalProperties: false,
      properties: { key: { type: 'string', 'x-cusp-secret': true }, user: { type: 'string' } },
    },
    n: { type: 'integer', minimum: 1 },
  },
})

function project(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-secret-sweep-'))
  const files: Record<string, string> = {
    'pipeline.yaml': PIPELINE,
    'schemas/stages/fetch.params.schema.json': SCHEMA,
    'stages/fetch/index.ts': STAGE,
  }
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
  mkdirSync(join(dir, 'home'))
  // A docker and a kubectl that record any call: a refused run must start neither.
  mkdirSync(join(dir, 'home', 'bin'))
  for (const tool of ['docker', 'kubectl', 'aws']) {
    const p = join(dir, 'home', 'bin', tool)
    writeFileSync(p, `#!/bin/sh\necho "$0 $*" >> "${join(dir, 'home', 'called')}"\nexit 1\n`)
    chmodSync(p, 0o755)
  }
  return dir
}

type Out = MainRun

const cli = (cwd: string, args: string[]): Promise<Out> =>
  captureMain(cwd, args, { PATH: `${join(cwd, 'home', 'bin')}:${process.env.PATH ?? ''}`, HOME: join(cwd, 'home'), NO_COLOR: '1' }, main)

/** Every file under `dir` that holds `needle` (relative paths). */
function filesHolding(dir: string, needle: string): string[] {
  return Object.keys(listing(dir)).filter((f) => {
    try {
      return readFileSync(join(dir, f), 'latin1').includes(needle)
    } catch {
      return false
    }
  })
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex')
const noStack = (s: string): boolean => !/^\s+at .+:\d+:\d+\)?$/m.test(s) && !/internal error/.test(s)

t.test('the in-process executor runs with the secret and keeps only its digest', async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const r = await cli(dir, ['run', '--json', '--set', `fetch.token=${SENTINEL}`, '--set', `fetch.auth.key=${NESTED}`])
  t.equal(r.code, 0, r.stderr)
  const stored = filesHolding(dir, `${sha(SENTINEL)} ${sha(NESTED)}\n`)
  t.ok(
    stored.some((f) => f.startsWith('artifacts/')),
    'the stage got both real values (its stored output holds their digests)',
  )
  for (const s of [SENTINEL, NESTED]) {
    t.notOk(r.stdout.includes(s), `${s} not in the events`)
    t.notOk(r.stderr.includes(s), `${s} not on stderr`)
    t.same(filesHolding(dir, s), [], `${s} in no file of the project (lock, store, work directories)`)
  }
  const events = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; message?: string })
  t.ok(
    events.some((e) => e.type === 'log' && e.message === 'token is ***'),
    'the stage log is relayed with the secret withheld',
  )
  t.match(readFileSync(join(dir, 'pipeline.lock'), 'utf8'), /sealed:scrypt:[0-9a-f]{64}/, 'the lock holds the sealed digest')
})

const refused: [string, string[]][] = [
  ['local-process', ['run', '--executor', 'local-process']],
  ['docker', ['run', '--executor', 'docker', '--store', 's3://bucket/x']],
  ['kubernetes', ['run', '--executor', 'kubernetes', '--store', 's3://bucket/x']],
  ['aws-batch', ['run', '--executor', 'aws-batch', '--store', 's3://bucket/x', '--job-queue', 'q']],
  ['aws-batch --dry-run', ['run', '--executor', 'aws-batch', '--store', 's3://bucket/x', '--job-queue', 'q', '--dry-run']],
  ['docker without a store', ['run', '--executor', 'docker']],
  ['export --format argo', ['export', '--format', 'argo']],
  ['export --format argo --json', ['export', '--format', 'argo', '--json', '--store', 's3://bucket/x']],
]
const sets: [string, string[], string][] = [
  ['a secret param', [`fetch.token=${SENTINEL}`], 'fetch.token'],
  ['a nested secret param', [`fetch.auth.key=${SENTINEL}`], 'fetch.auth.key'],
  ['an object holding a secret', [`fetch.auth={key: ${SENTINEL}, user: me}`], 'fetch.auth.key'],
  ['a secret after a plain one', ['fetch.n=2', `fetch.token=${SENTINEL}`], 'fetch.token'],
]
for (const [what, args] of refused) {
  for (const [kind, overrides, name] of sets) {
    t.test(`${what}, --set ${kind}: exit 2, one line, nothing started or written`, async (t) => {
      const dir = project()
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const before = listing(dir)
      const r = await cli(dir, [...args, ...overrides.flatMap((o) => ['--set', o])])
      t.equal(r.code, 2)
      t.equal(r.stdout, '', 'nothing on stdout (no exported workflow)')
      t.equal(r.stderr.trimEnd().split('\n').length, 1, 'one line')
      t.ok(noStack(r.stderr), 'no stack')
      t.match(r.stderr, new RegExp(`--set ${name.replace(/\./g, '\\.')}: secret param \\(x-cusp-secret\\)`))
      t.match(r.stderr, /through its environment instead, or run with the default in-process executor \(--executor local\)/)
      t.notMatch(r.stderr, /pipeline\.yaml|profile/, 'never advises a committed file')
      t.notOk(r.stderr.includes(SENTINEL), 'the value is not echoed')
      t.same(listing(dir), before, 'nothing written (no lock, no store, no work directory)')
      t.notOk(existsSync(join(dir, 'home', 'called')), 'no docker, kubectl or aws started')
    })
  }
}

t.test('both secrets named once, in order, when two are set', async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const r = await cli(dir, ['run', '--executor', 'local-process', '--set', `fetch.token=${SENTINEL}`, '--set', `fetch.auth.key=${NESTED}`])
  t.equal(r.code, 2)
  t.match(r.stderr, /^--set fetch\.auth\.key, fetch\.token: secret params /)
  t.notOk(r.stderr.includes(SENTINEL) || r.stderr.includes(NESTED))
})

t.test('a plain --set still reaches a remote executor (the refusal is for secrets only)', async (t) => {
  const dir = project()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const r = await cli(dir, ['run', '--executor', 'docker', '--set', 'fetch.n=2', '--set', 'fetch.auth.user=you'])
  t.equal(r.code, 2)
  t.match(r.stderr, /needs a store every container can reach/, 'stopped by the store check, not the secret one')
  const e = await cli(dir, ['export', '--format', 'argo', '--set', 'fetch.n=2'])
  t.equal(e.code, 0, e.stderr)
  t.match(e.stdout, /--set\s+- fetch\.n=2|fetch\.n=2/, 'the plain override is exported')
})

t.test('secretOverrides: which --set hits which secret path', async (t) => {
  const insts = [
    { stage: 'fetch', secrets: ['token', 'auth.key'] },
    { stage: 'other', secrets: [] },
  ]
  t.same(secretOverrides(insts, ['fetch.token=x']), ['fetch.token'])
  t.same(secretOverrides(insts, ['fetch.auth={key: x}']), ['fetch.auth.key'], 'a parent object')
  t.same(secretOverrides(insts, ['fetch.token.deep=x']), ['fetch.token'], 'a part of a secret')
  t.same(secretOverrides(insts, ['fetch.tokens=x', 'fetch.auth.user=x', 'other.token=x', 'fetch.n=x']), [], 'neighbours are not secrets')
  t.same(secretOverrides(insts, ['fetch.token=a=b', 'fetch.token=c']), ['fetch.token'], 'named once')
})

t.test('AWS Batch: the job environment carries endpoint URLs without their credentials', async (t) => {
  const inst = {
    id: 'fetch',
    stage: 'fetch',
    impl: 'fetch',
    params: {},
    matrix: {},
    deps: [],
    outputs: [],
    resources: { cpu: 1, memory: '1Gi', gpu: 0 },
  } as unknown as StageInstance
  const sub = submitInput({
    jobQueue: 'q',
    jobDefinitionArn: 'arn:def:1',
    pipelineName: 'p',
    spec: { store: 's3://b/p' },
    inst,
    fingerprint: 'ab'.repeat(32) as Fingerprint,
    env: {
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL: `https://minio:${SENTINEL}@minio.example:9000/`,
      AWS_ENDPOINT_URL_S3: `http://key@s3.example`,
      AWS_SECRET_ACCESS_KEY: SENTINEL,
    },
  })
  t.same(sub.containerOverrides?.environment, [
    { name: 'CUSP_STORE', value: 's3://b/p' },
    { name: 'AWS_REGION', value: 'eu-west-1' },
    { name: 'AWS_ENDPOINT_URL', value: 'https://minio.example:9000/' },
    { name: 'AWS_ENDPOINT_URL_S3', value: 'http://s3.example' },
  ])
  t.notOk(JSON.stringify(sub).includes(SENTINEL), 'the sentinel is in no part of the SubmitJob input')
})
