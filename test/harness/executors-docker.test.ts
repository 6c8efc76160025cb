/**
 * The Docker runner's exact command lines (dockerRunArgs is pure): resources from pipeline.yaml
 * as --cpus/--memory, --gpus only for GPU stages, S3 settings forwarded by name only (never a
 * secret value on the command line), labels, a valid unique container name, and the arguments
 * after the image's `cusp run-stage` entrypoint (store URL, --expect, --file/--profile/--set).
 * The runner itself is driven with a fake `docker` executable that records its argv and plays
 * a container that fails, so the failure surfaces; a real container runs only where a Docker
 * engine answers (`docker info`), which is not the case in CI.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { containerName, DockerRunner, dockerRunArgs } from '../../src/harness/executors/docker.ts'
import { memoryBytes, nameFragment } from '../../src/harness/executors/runner.ts'
import { bareHost } from '../../src/harness/host.ts'
import { selectExecutor } from '../../src/harness/executors/select.ts'
import type { Fingerprint, StageInstance, ValidPipeline } from '../../src/harness/types.ts'

const FP = 'ab'.repeat(32) as Fingerprint
const inst = (id: string, stage: string, resources: StageInstance['resources']): StageInstance =>
  ({ id, stage, impl: stage, params: {}, matrix: {}, deps: [], outputs: [], resources }) as unknown as StageInstance
const train = inst('train@eta=0.1,seed=0', 'train', { cpu: 4, memory: '16Gi', gpu: 1 })
const prep = inst('prepare', 'prepare', { cpu: 1, memory: '2Gi', gpu: 0 })
const env = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE', AWS_SECRET_ACCESS_KEY: 'very-secret', AWS_REGION: 'eu-west-1', HOME: '/root' }

t.test('a GPU stage: exact docker run command line', async (t) => {
  const args = dockerRunArgs(
    {
      image: 'ghcr.io/x/cusp:gpu',
      spec: { store: 's3://bucket/exp1', file: 'paper.yaml', profile: 'paper', overrides: ['train.seed=3'] },
      pipelineName: 'cusp',
      env,
    },
    train,
    FP,
  )
  t.same(args, [
    'run',
    '--rm',
    '--name',
    containerName('cusp', train, FP),
    '--label',
    'cusp.pipeline=cusp',
    '--label',
    'cusp.instance=train@eta=0.1,seed=0',
    '--label',
    `cusp.fingerprint=${FP}`,
    '--cpus',
    '4',
    '--memory',
    String(16 * 2 ** 30),
    '--gpus',
    '1',
    '-e',
    'AWS_ACCESS_KEY_ID',
    '-e',
    'AWS_SECRET_ACCESS_KEY',
    '-e',
    'AWS_REGION',
    'ghcr.io/x/cusp:gpu',
    'train@eta=0.1,seed=0',
    '--store',
    's3://bucket/exp1',
    '--expect',
    FP,
    '--file',
    'paper.yaml',
    '--profile',
    'paper',
    '--set',
    'train.seed=3',
    '--json',
  ])
  t.notOk(
    args.some((a) => a.includes('very-secret') || a.includes('AKIAEXAMPLE')),
    'no credential value on the command line',
  )
})

t.test('a CPU stage: no --gpus, network when asked, explicit forward list', async (t) => {
  const args = dockerRunArgs(
    { image: 'cusp:cpu', spec: { store: 's3://b/p' }, pipelineName: 'p', env, network: 'host', forward: ['AWS_ENDPOINT_URL'] },
    prep,
    FP,
  )
  t.notOk(args.includes('--gpus'))
  t.same(args.slice(args.indexOf('--cpus')), [
    '--cpus',
    '1',
    '--memory',
    String(2 * 2 ** 30),
    '--network',
    'host',
    '-e',
    'AWS_ENDPOINT_URL',
    'cusp:cpu',
    'prepare',
    '--store',
    's3://b/p',
    '--expect',
    FP,
    '--json',
  ])
})

t.test('names and quantities', async (t) => {
  const name = containerName('My Project', train, FP)
  t.match(name, /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/, 'a valid container name')
  t.not(
    containerName('p', train, FP),
    containerName('p', inst('train@eta=0.1,seed=1', 'train', train.resources), FP),
    'distinct instances, distinct names',
  )
  t.not(containerName('p', train, FP, 'a1b2c3'), containerName('p', train, FP, 'd4e5f6'), 'distinct attempts, distinct names')
  t.not(nameFragment('a@b=1'), nameFragment('a@b=2'))
  t.ok(nameFragment('x'.repeat(200)).length <= 63)
  t.equal(memoryBytes('512Mi'), 512 * 2 ** 20)
  t.equal(memoryBytes('2G'), 2e9)
  t.equal(memoryBytes('1000'), 1000)
  t.equal(memoryBytes('lots'), undefined)
})

t.test('--executor docker needs an s3:// store', async (t) => {
  const pipeline = { root: '/p', file: '/p/pipeline.yaml' } as unknown as ValidPipeline
  const base = {
    executor: 'docker' as const,
    pipeline,
    profile: undefined,
    overrides: [],
    image: undefined,
    namespace: undefined,
    secret: undefined,
    env: {},
    host: bareHost,
  }
  const r = selectExecutor({ ...base, store: undefined })
  t.notOk(r.ok)
  if (!r.ok) t.match(r.error, { reason: 'usage', message: /s3:\/\/bucket\/prefix/ })
  const s = selectExecutor({ ...base, store: 's3://b/p' })
  t.ok(s.ok && s.value.runner?.name === 'docker')
})

t.test('the runner with a fake docker CLI: argv as built, a failing container surfaces', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-docker-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fake = join(dir, 'docker')
  writeFileSync(
    fake,
    `#!/bin/sh\nprintf '%s\\n' "$@" > ${join(dir, 'argv')}\necho '{"type":"progress","instance":"prepare","fraction":0.5}'\necho 'Error: stage exploded' >&2\nexit 3\n`,
  )
  chmodSync(fake, 0o755)
  const events: unknown[] = []
  const o = { image: 'cusp:cpu', spec: { store: 's3://b/p' }, pipelineName: 'p', env: { PATH: process.env.PATH }, docker: fake }
  const r = await new DockerRunner({ ...o, attempt: () => '' }).run({ instance: prep, fingerprint: FP, emit: (e) => events.push(e) })
  t.same(readFileSync(join(dir, 'argv'), 'utf8').trim().split('\n'), dockerRunArgs(o, prep, FP))
  t.notOk(r.ok)
  if (!r.ok) t.match(r.failure, { reason: 'stage-failed', instance: 'prepare', exitCode: 3, stderrTail: /stage exploded/ })
  t.same(events, [{ type: 'progress', instance: 'prepare', fraction: 0.5 }], 'progress lines become events')
})

t.test(
  'two runs of one instance at one fingerprint get distinct container names (a kept or orphaned container never blocks a rerun)',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cusp-docker-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const fake = join(dir, 'docker')
    // Records the --name of every `docker run` and refuses a name already used, as the engine does.
    writeFileSync(
      fake,
      `#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ "$1" = --name ]; then n="$2"; fi; shift; done\nif grep -qx "$n" ${join(dir, 'names')} 2>/dev/null; then echo "Conflict. The container name \\"/$n\\" is already in use" >&2; exit 125; fi\necho "$n" >> ${join(dir, 'names')}\nexit 0\n`,
    )
    chmodSync(fake, 0o755)
    const runner = new DockerRunner({
      image: 'cusp:cpu',
      spec: { store: 's3://b/p' },
      pipelineName: 'p',
      env: { PATH: process.env.PATH },
      docker: fake,
    })
    const first = await runner.run({ instance: prep, fingerprint: FP, emit: () => undefined })
    const second = await runner.run({ instance: prep, fingerprint: FP, emit: () => undefined })
    t.ok(first.ok && second.ok, 'both runs started their container')
    const names = readFileSync(join(dir, 'names'), 'utf8').trim().split('\n')
    t.equal(names.length, 2)
    t.not(names[0], names[1], 'one name per attempt')
    for (const n of names) t.match(n, /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/, 'a valid container name')
  },
)

const engine = spawnSync('docker', ['info'], { encoding: 'utf8' }).status === 0
t.test(
  'a real container (only with a Docker engine and CUSP_DOCKER_IMAGE built)',
  { skip: engine && process.env.CUSP_DOCKER_IMAGE ? false : 'no Docker engine / image here' },
  async (t) => {
    const r = spawnSync('docker', ['run', '--rm', process.env.CUSP_DOCKER_IMAGE ?? '', '--help'], { encoding: 'utf8' })
    t.equal(r.status, 0, r.stderr)
    t.match(r.stdout, /run-stage <instance>/)
  },
)
