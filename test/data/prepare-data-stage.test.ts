// The prepare-data stage (and fetch-cifar10) end to end through the harness's executor, in a temp
// project whose src/, stages/, schemas/ and data/ link to this repository: the synthetic source, the
// bundled Fashion-MNIST subset, and CIFAR-10 fetched from a loopback HTTP server in the real archive
// format (fetched once: a second run is fresh). Outputs are checked against prepareDataset run
// in-process on the same source.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { execute } from '../../src/harness/run-pipeline.ts'
import { readLock } from '../../src/harness/lockfile.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { decodeSafetensors } from '../../src/data/safetensors.ts'
import { readIdxDataset } from '../../src/data/idx.ts'
import { FASHION_MNIST_CLASSES } from '../../src/data/image-set.ts'
import { prepareDataset } from '../../src/data/prepare.ts'
import { syntheticImageSet } from '../../src/data/synthetic.ts'
import { makeCifarArchive } from './fixtures/cifar-archive.ts'

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex')
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

t.test('prepare-data through execute(): synthetic, bundled Fashion-MNIST, fetched CIFAR-10', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-prepare-data-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  for (const link of ['src', 'stages', 'schemas', 'data', 'node_modules', 'package-lock.json', 'package.json']) symlinkSync(join(REPO, link), join(root, link))
  const fake = makeCifarArchive(join(root, 'fake'), 4)
  const body = readFileSync(fake.path)
  let requests = 0
  const server = createServer((_req, res) => {
    requests++
    res.writeHead(200, { 'content-length': body.length })
    res.end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cifar-10-binary.tar.gz`
  const out = '{ dataset: file, manifest: file }'
  writeFileSync(join(root, 'pipeline.yaml'), `schema: 1
stages:
  synth:
    impl: prepare-data
    params: { source: synthetic, classes: 3, n_data: 31, seed: 2, synthetic: { classes: 4, per_class: 20, height: 6, width: 5, channels: 2, noise: 0.5, seed: 7 } }
    outputs: ${out}
  fashion:
    impl: prepare-data
    params: { source: idx, classes: [Trouser, Bag], n_data: 200, seed: 3 }
    outputs: ${out}
  fetch:
    impl: fetch-cifar10
    params: { url: "${url}", md5: "${fake.md5}" }
    outputs: { archive: file }
  cifar:
    impl: prepare-data
    params: { source: cifar10, classes: 2, n_data: 4, normalisation: none, cifar10: { md5: "${fake.md5}" } }
    deps: { archive: { stage: fetch, output: archive } }
    outputs: ${out}
`)
  const store = new LocalStore(join(root, 'artifacts'))
  const lockPath = join(root, 'pipeline.lock')
  const run = async (): Promise<Record<string, string>> => {
    const p = analyze({ file: join(root, 'pipeline.yaml'), overrides: [], reader: nodeReader(root) })
    if (!p.ok) throw new Error(JSON.stringify(p.error))
    const r = await execute({ pipeline: p.value, store, lockPath, jobs: 2 })
    if (!r.ok) throw new Error(JSON.stringify(r.error))
    t.same(r.value.failures, [], 'no failures')
    return Object.fromEntries(Object.entries(r.value.outcomes).map(([k, v]) => [k, v.outcome]))
  }
  t.same(await run(), { synth: 'ran', fashion: 'ran', fetch: 'ran', cifar: 'ran' })
  const lock = readLock(lockPath)
  if (!lock.ok || lock.value === undefined) throw new Error('no lock')
  const instances = lock.value.instances
  const read = async (instance: string, output: string): Promise<Buffer> => {
    const o = instances[instance]?.outputs[output]
    if (o === undefined) throw new Error(`no ${instance}/${output}`)
    const dest = join(root, 'read', `${instance}-${output}`)
    mkdirSync(dirname(dest), { recursive: true })
    if (!(await store.getFile(o.digest, dest))) throw new Error('unreadable')
    return readFileSync(dest)
  }
  const check = async (instance: string, want: ReturnType<typeof prepareDataset>): Promise<void> => {
    const st = decodeSafetensors(await read(instance, 'dataset'), instance)
    t.same(st.tensors.x!.shape, want.manifest.shape, `${instance}: x shape`)
    t.ok(Buffer.from((st.tensors.x!.data as Float32Array).buffer).equals(Buffer.from(want.x.buffer)), `${instance}: x bits equal the in-process oracle`)
    t.same(Array.from(st.tensors.y!.data as Int32Array), Array.from(want.y), `${instance}: y`)
    t.same(JSON.parse((await read(instance, 'manifest')).toString()), want.manifest, `${instance}: manifest`)
  }

  const synthSpec = { classes: 4, perClass: 20, height: 6, width: 5, channels: 2, noise: 0.5, seed: 7 }
  const synth = prepareDataset(syntheticImageSet(synthSpec), { classes: 3, nD: 31, seed: 2, normalisation: 'standardise' }, {
    kind: 'synthetic', digest: sha256(JSON.stringify(synthSpec)), split: 'synthetic',
  })
  await check('synth', synth)
  t.same(synth.manifest.labelCounts, [11, 10, 10])

  const bundle = join(REPO, 'data/fashion-mnist')
  const fm = await readIdxDataset(join(bundle, 'train-images-idx3-ubyte.gz'), join(bundle, 'train-labels-idx1-ubyte.gz'))
  const fmSet = { n: fm.n, height: 28, width: 28, channels: 1, images: fm.images, labels: fm.labels, classNames: FASHION_MNIST_CLASSES }
  const manifest = JSON.parse((await read('fashion', 'manifest')).toString()) as { source: { digest: string } }
  await check('fashion', prepareDataset(fmSet, { classes: ['Trouser', 'Bag'], nD: 200, seed: 3, normalisation: 'standardise' }, { kind: 'idx', digest: manifest.source.digest, split: 'train' }))

  const cifarSet = { n: 20, height: 32, width: 32, channels: 3, images: fake.train.images, labels: fake.train.labels, classNames: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] }
  const cifar = prepareDataset(cifarSet, { classes: 2, nD: 4, seed: 0, normalisation: 'none' }, { kind: 'cifar10', digest: sha256(body), split: 'train' })
  await check('cifar', cifar)
  t.same(Array.from(cifar.indices), [0, 7, 10, 17])
  t.ok((await read('fetch', 'archive')).equals(body), 'the fetched archive is in the store')
  t.equal(requests, 1)

  t.same(await run(), { synth: 'fresh', fashion: 'fresh', fetch: 'fresh', cifar: 'fresh' }, 'second run: all fresh')
  t.equal(requests, 1, 'the archive was fetched once')
})
