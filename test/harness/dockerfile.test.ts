/**
 * The Dockerfile, without a Docker engine (none runs on these machines; there is no hadolint
 * package here either): static checks of what the image promises (a CUDA 11.x + cuDNN 8 base
 * for tfjs-node-gpu's libtensorflow, a multi-stage build installing from the lock file with
 * `npm ci`, the native tfjs package pinned to the version image-env.ts predicts, a non-root
 * user, an exec-form entrypoint that is `cusp run-stage`, a cpu target), a few hadolint-style
 * rules (pinned base tags, no `latest`, no `sudo`, no `ADD` of URLs, `apt-get install` with
 * `--no-install-recommends`), and then the entrypoint itself run locally outside Docker, with
 * /app mapped to this checkout: it runs exactly one instance of a toy pipeline into a store,
 * refuses an instance whose upstream is not in the store, refuses a fingerprint it was not
 * asked for, and exits non-zero when the stage fails.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { TFJS_NODE_VERSION } from '../../src/science/image-env.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..')
const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8')

/** Instructions with continuation lines joined and comments dropped: [keyword, rest]. */
function instructions(src: string): [string, string][] {
  const out: [string, string][] = []
  let cur = ''
  for (const raw of src.split('\n')) {
    const line = raw.trim()
    if (cur === '' && (line === '' || line.startsWith('#'))) continue
    cur += cur === '' ? line : ` ${line}`
    if (cur.endsWith('\\')) cur = cur.slice(0, -1).trimEnd()
    else {
      const m = /^(\S+)\s*(.*)$/.exec(cur)
      if (m !== null) out.push([m[1]!.toUpperCase(), m[2] ?? ''])
      cur = ''
    }
  }
  return out
}
const ins = instructions(text)
const args = new Map(ins.filter(([k, v]) => k === 'ARG' && v.includes('=')).map(([, v]) => v.split('=') as [string, string]))
const stages = ins.filter(([k]) => k === 'FROM').map(([, v]) => v)
/** The instructions of one build stage, by its `AS` name. */
function stage(name: string): [string, string][] {
  const i = ins.findIndex(([k, v]) => k === 'FROM' && new RegExp(`\\sAS\\s+${name}$`, 'i').test(v))
  if (i < 0) return []
  const next = ins.findIndex(([k], j) => j > i && k === 'FROM')
  return ins.slice(i, next < 0 ? undefined : next)
}

t.test('base images: CUDA 11.x with cuDNN 8 for the GPU target, pinned tags, explained', async (t) => {
  const cuda = args.get('CUDA_IMAGE') ?? ''
  t.match(cuda, /^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/, 'a CUDA 11 + cuDNN 8 runtime image')
  t.match(text, /libtensorflow 2\.9\.1[\s\S]*CUDA 11\.2[\s\S]*cuDNN 8/, 'a comment says why CUDA 11 / cuDNN 8')
  for (const f of stages) {
    const image = f.split(/\s+/)[0] ?? ''
    t.notMatch(image, /:latest$/, `${image} is not :latest`)
    t.ok(
      image.includes(':') || image.startsWith('${') || stages.some((s) => new RegExp(`\\sAS\\s+${image}$`, 'i').test(s)),
      `${image} has a tag`,
    )
  }
  t.match(args.get('NODE_VERSION') ?? '', /^20\.\d+\.\d+$/, 'Node 20 (package.json engines)')
  t.ok(
    stages.some((s) => /^\$\{CUDA_IMAGE\}\s+AS\s+gpu$/i.test(s)),
    'the gpu target runs on the CUDA image',
  )
  t.equal(stages.at(-1)?.split(/\s+/).at(-1), 'gpu', 'gpu is the last stage (the default target)')
  t.ok(stage('cpu').length > 0, 'a cpu target exists')
})

t.test('multi-stage build from the lock file; native tfjs pinned as image-env.ts predicts', async (t) => {
  const runs = ins.filter(([k]) => k === 'RUN').map(([, v]) => v)
  t.ok(
    runs.some((r) => /\bnpm ci\b/.test(r)),
    'npm ci',
  )
  t.notOk(
    runs.some((r) => /\bnpm install\b(?![^&]*--no-save)/.test(r)),
    'npm install only with --no-save (the lock file stays the truth)',
  )
  t.ok(
    ins.some(([k, v]) => k === 'COPY' && /package-lock\.json/.test(v)),
    'the lock file is copied before npm ci',
  )
  t.equal(args.get('TFJS_NODE_VERSION'), TFJS_NODE_VERSION, 'the Dockerfile and image-env.ts agree on the tfjs-node version')
  t.ok(
    stage('build-gpu').some(([k, v]) => k === 'RUN' && v.includes('@tensorflow/tfjs-node-gpu@${TFJS_NODE_VERSION}')),
    'gpu build installs tfjs-node-gpu',
  )
  t.ok(
    stage('build-cpu').some(([k, v]) => k === 'RUN' && v.includes('@tensorflow/tfjs-node@${TFJS_NODE_VERSION}')),
    'cpu build installs tfjs-node',
  )
  t.ok(
    stage('gpu').some(([k, v]) => k === 'COPY' && v.includes('--from=build-gpu')),
    'gpu runtime copies the gpu build',
  )
  t.ok(
    stage('cpu').some(([k, v]) => k === 'COPY' && v.includes('--from=build-cpu')),
    'cpu runtime copies the cpu build',
  )
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>
  for (const field of ['dependencies', 'optionalDependencies', 'devDependencies']) {
    t.notOk(
      Object.keys(pkg[field] ?? {}).some((d) => d.startsWith('@tensorflow/tfjs-node')),
      `no tfjs-node in package.json ${field} (its install downloads libtensorflow)`,
    )
  }
})

t.test('runtime targets: non-root user, exec-form entrypoint `cusp run-stage`, hadolint-style rules', async (t) => {
  for (const name of ['gpu', 'cpu', 'webgpu']) {
    const s = stage(name)
    const user = s.filter(([k]) => k === 'USER').at(-1)?.[1]
    t.ok(user !== undefined && user !== 'root' && user !== '0', `${name}: the last USER is not root (${user})`)
    const entry = s.find(([k]) => k === 'ENTRYPOINT')?.[1] ?? ''
    t.same(JSON.parse(entry), ['node', '/app/scripts/pipeline.mjs', 'run-stage'], `${name}: exec-form entrypoint runs run-stage`)
    t.ok(
      s.some(([k, v]) => k === 'WORKDIR' && v === '/app'),
      `${name}: WORKDIR /app`,
    )
  }
  for (const [k, v] of ins) {
    if (k === 'RUN') {
      t.notMatch(v, /\bsudo\b/, 'no sudo')
      if (/apt-get install/.test(v)) t.match(v, /--no-install-recommends/, 'apt-get install --no-install-recommends')
      t.notMatch(v, /^cd\s/, 'WORKDIR instead of cd')
    }
    t.not(k, 'ADD', 'COPY, not ADD')
    t.not(k, 'MAINTAINER', 'no deprecated MAINTAINER')
  }
  const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
  for (const p of ['node_modules', '.git', 'artifacts', '.cusp']) t.ok(ignore.includes(p), `.dockerignore leaves out ${p}`)
})

t.test('webgpu target: Vulkan loader in the image, the NVIDIA runtime asked for its Vulkan driver', async (t) => {
  const s = stage('webgpu')
  t.ok(s.length > 0, 'a webgpu target exists')
  t.ok(
    s.some(([k, v]) => k === 'RUN' && /apt-get install[^&]*\blibvulkan1\b/.test(v)),
    'libvulkan1 installed',
  )
  const env = s
    .filter(([k]) => k === 'ENV')
    .map(([, v]) => v)
    .join(' ')
  const caps = /NVIDIA_DRIVER_CAPABILITIES=(\S+)/.exec(env)?.[1]?.split(',') ?? []
  for (const c of ['compute', 'graphics', 'utility'])
    t.ok(caps.includes(c), `NVIDIA_DRIVER_CAPABILITIES includes ${c} (graphics mounts the Vulkan ICD)`)
  t.ok(
    s.some(([k, v]) => k === 'COPY' && v.includes('--from=build-webgpu')),
    'copies the webgpu build',
  )
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  for (const d of ['webgpu', '@tensorflow/tfjs-backend-webgpu'])
    t.ok(d in pkg.dependencies, `${d} is a dependency, so npm ci installs it (Dawn's prebuilt dawn.node, no download)`)
  t.match(
    readFileSync(join(REPO, 'README.md'), 'utf8'),
    /cusp:webgpu[\s\S]*webgpu-adapter\.mjs/,
    'the README says how to check the adapter in the container',
  )
})

/** The image's ENTRYPOINT, with /app as this checkout, run with `argv` in `cwd`. */
function entrypoint(cwd: string, argv: string[]) {
  const entry = JSON.parse(stage('gpu').find(([k]) => k === 'ENTRYPOINT')?.[1] ?? '[]') as string[]
  const [cmd, ...rest] = entry.map((a) => a.replace(/^\/app\//, `${REPO}/`))
  const r = spawnSync(cmd === 'node' ? process.execPath : (cmd ?? ''), [...rest, ...argv], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, CUSP_STORE: '', NO_COLOR: '1', CUSP_DEBUG: '' },
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('the entrypoint runs outside Docker: exactly one instance into the store, failures non-zero', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-entry-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  writeToyDag(root, { etas: [0.1], seeds: [0] })
  const storeDir = join(root, 'shared-store')
  const store = new LocalStore(storeDir)

  const early = entrypoint(root, ['train@eta=0.1,seed=0', '--store', storeDir])
  t.equal(early.code, 1, 'upstream not in the store: refused')
  t.match(early.stderr, /upstream prepare has no complete run/)

  const prep = entrypoint(root, ['prepare', '--store', storeDir, '--json'])
  t.equal(prep.code, 0, prep.stderr)
  const events = prep.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; instance?: string })
  t.same([...new Set(events.filter((e) => e.type === 'done').map((e) => e.instance))], ['prepare'], 'exactly one instance ran')
  const runs = await store.listRuns()
  t.same(
    runs.map((r) => r.instance),
    ['prepare'],
    'its run record is in the store',
  )

  const again = entrypoint(root, ['prepare', '--store', storeDir, '--json'])
  t.equal(again.code, 0, 'a rerun is a cache hit and succeeds')
  t.notMatch(again.stdout, /"action":"run"/, 'and runs nothing')

  const wrong = entrypoint(root, ['train@eta=0.1,seed=0', '--store', storeDir, '--expect', 'f'.repeat(64)])
  t.equal(wrong.code, 2, 'an unexpected fingerprint is refused')
  t.match(wrong.stderr, /the scheduler expected f{64}/)
  t.equal((await store.listRuns()).length, 1, 'and nothing was published')

  const train = entrypoint(root, ['train@eta=0.1,seed=0', '--store', storeDir])
  t.equal(train.code, 0, train.stderr)
  t.same((await store.listRuns()).map((r) => r.instance).sort(), ['prepare', 'train@eta=0.1,seed=0'])

  writeFileSync(join(root, 'pipeline.yaml'), readFileSync(join(root, 'pipeline.yaml'), 'utf8').replace('fail: false', 'fail: true'))
  const failing = entrypoint(root, ['prepare', '--store', storeDir])
  t.equal(failing.code, 1, 'a failing stage exits non-zero')
  t.match(failing.stderr, /prepare was asked to fail/)

  const usage = entrypoint(root, ['no-such-stage', '--store', storeDir])
  t.equal(usage.code, 2, 'an unknown instance is a usage error')
})
