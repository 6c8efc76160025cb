/**
 * Executor selection and the fingerprint environment that goes with it: `--backend` sets the
 * `backend` param of the stages that have one and the lock's env record follows it (so results
 * from different backends never share a fingerprint); containers are fingerprinted with the
 * environment inside the image (exactly one native tfjs package, the Dockerfile's version),
 * not this machine's; executor names map to runners; remote executors need an s3:// store.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { main } from '../../src/main.ts'
import { imageEnv, TFJS_NODE_VERSION, variantOf } from '../../src/science/image-env.ts'
import { scienceHost } from '../../src/science/host.ts'
import { selectExecutor } from '../../src/harness/executors/select.ts'
import type { ValidPipeline } from '../../src/harness/types.ts'
import { installedVersion } from '../../src/science/env-record.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const core = installedVersion('@tensorflow/tfjs-core')

t.test('the environment inside the image', async (t) => {
  t.equal(variantOf('cusp:gpu'), 'gpu')
  t.equal(variantOf('registry.example/cusp:cpu'), 'cpu')
  t.equal(variantOf('cusp:1.2-cpu'), 'cpu')
  t.equal(variantOf('cusp'), 'gpu')
  const train = { params: { backend: 'auto' } }
  t.same(imageEnv('gpu', train), {
    backend: 'tensorflow',
    versions: { '@tensorflow/tfjs-core': core, '@tensorflow/tfjs-node-gpu': TFJS_NODE_VERSION },
  })
  t.same(imageEnv('cpu', { params: { backend: 'tensorflow' } }), {
    backend: 'tensorflow',
    versions: { '@tensorflow/tfjs-core': core, '@tensorflow/tfjs-node': TFJS_NODE_VERSION },
  })
  t.equal(imageEnv('gpu', { params: { backend: 'wasm' } }).backend, 'wasm', 'an explicit pure backend stays pure')
  t.same(imageEnv('gpu', { params: {} }), { backend: 'none', versions: {} }, 'non-science stages: the constant harness env')
})

t.test('executor names map to runners; remote ones need a shared store', async (t) => {
  const pipeline = { root: '/p', file: '/p/pipeline.yaml', instances: new Map() } as unknown as ValidPipeline
  const base = {
    pipeline,
    profile: 'paper',
    overrides: ['train.seed=1'],
    image: 'x/cusp:gpu',
    namespace: 'ml',
    secret: 's',
    env: {},
    host: scienceHost,
  }
  const local = selectExecutor({ ...base, executor: 'local', store: undefined })
  t.ok(local.ok && local.value.runner === undefined, 'local = in-process')
  const lp = selectExecutor({ ...base, executor: 'local-process', store: '' })
  t.ok(lp.ok && lp.value.runner?.name === 'local-process', 'local-process works with the embedded store')
  const k = selectExecutor({ ...base, executor: 'kubernetes', store: 's3://b/p' })
  t.ok(k.ok && k.value.runner?.name === 'kubernetes')
  if (k.ok)
    t.equal(k.value.env({ params: { backend: 'auto' } } as never).backend, 'tensorflow', 'kubernetes fingerprints with the image env')
  const bad = selectExecutor({ ...base, executor: 'kubernetes', store: '/shared/dir' })
  t.notOk(bad.ok)
})

t.test('--backend sets the backend param and the lock records that backend', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-backend-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  writeToyDag(root, { etas: [0.1], seeds: [0] })
  // The toy `train` takes a backend param, as the science stages do: that makes it a science stage.
  const schema = join(root, 'schemas/stages/train.params.schema.json')
  const s = JSON.parse(readFileSync(schema, 'utf8')) as { properties: Record<string, unknown> }
  s.properties.backend = { enum: ['auto', 'tensorflow', 'wasm', 'cpu'], default: 'auto' }
  writeFileSync(schema, JSON.stringify(s))
  const io = () => {
    const out = { stdout: '', stderr: '' }
    return {
      out,
      io: {
        stdout: { write: (x: string) => (out.stdout += x), isTTY: false },
        stderr: { write: (x: string) => (out.stderr += x), isTTY: false },
        cwd: root,
        env: { CUSP_STORE: '' },
      },
    }
  }
  const lock = () =>
    JSON.parse(readFileSync(join(root, 'pipeline.lock'), 'utf8')) as {
      instances: Record<
        string,
        { breakdown: { env: { backend: string; versions: Record<string, string> }; params: Record<string, unknown> } }
      >
    }

  const a = io()
  t.equal(await main(['run', '--backend', 'cpu'], a.io), 0, a.out.stderr)
  const cpu = lock().instances['train@eta=0.1,seed=0']?.breakdown
  t.equal(cpu?.env.backend, 'cpu')
  t.equal(cpu?.env.versions.node, process.versions.node.split('.')[0], 'the cpu backend records the Node major')
  t.equal(lock().instances.prepare?.breakdown.env.backend, 'none', 'a stage without a backend param is untouched')

  const b = io()
  t.equal(await main(['status', '--backend', 'wasm', '--json'], b.io), 0)
  const st = JSON.parse(b.out.stdout) as { instances: { id: string; action: string; reasons: unknown[] }[] }
  t.equal(st.instances.find((i) => i.id === 'train@eta=0.1,seed=0')?.action, 'run', 'another backend is another fingerprint')
  t.equal(st.instances.find((i) => i.id === 'prepare')?.action, 'fresh')
  const c = io()
  t.equal(await main(['status', '--backend', 'bogus'], c.io), 2, 'an unknown backend is a usage error')
  const d = io()
  t.equal(await main(['status', '--backend', 'cpu', '--json', '--image', 'cusp:gpu'], d.io), 0, d.out.stderr)
  const inImage = JSON.parse(d.out.stdout) as { instances: { id: string; action: string }[] }
  t.equal(
    inImage.instances.find((i) => i.id === 'train@eta=0.1,seed=0')?.action,
    'fresh',
    'an explicit pure backend is the same inside the image',
  )
  const g = io()
  t.equal(await main(['run'], g.io), 0, g.out.stderr) // auto: whatever this machine has (wasm here)
  const e = io()
  t.equal(await main(['status', '--json', '--image', 'cusp:gpu'], e.io), 0, e.out.stderr)
  const auto = JSON.parse(e.out.stdout) as { instances: { id: string; action: string; reasons: unknown[] }[] }
  const inGpu = auto.instances.find((i) => i.id === 'train@eta=0.1,seed=0')
  t.equal(inGpu?.action, 'run', 'auto inside the GPU image is tensorflow: not the lock entry made here')
  t.match(JSON.stringify(inGpu?.reasons), /env/, 'and the reason is the environment')
  t.equal(auto.instances.find((i) => i.id === 'prepare')?.action, 'fresh')
  const f = io()
  t.equal(await main(['artifacts', '--image', 'cusp:gpu'], f.io), 2, '--image is not a flag of artifacts')
})
