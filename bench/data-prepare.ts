/**
 * Data-layer throughput: read Fashion-MNIST's training split (Debian's full 60,000 at
 * /usr/share/datasets/fashion-mnist/ when installed, else the bundled 6,000), prepare all of it
 * (10 classes, standardise) and encode it as safetensors, against a numpy peer doing the same
 * read, scale and per-channel standardisation (/usr/bin/python3). With `--cifar`, also reads a
 * full-size archive in the real CIFAR-10 binary format (built here, 50,000 + 10,000 records) and
 * prepares n_D = 50,000. Best of `--repeat` (default 3) runs. Ends with one JSON line.
 *
 * Run: `npm run bench -- data-prepare [--repeat 3] [--cifar]`.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { readCifar10Archive } from '../src/data/cifar10.ts'
import { readIdxDataset } from '../src/data/idx.ts'
import { FASHION_MNIST_CLASSES } from '../src/data/image-set.ts'
import { prepareDataset } from '../src/data/prepare.ts'
import { encodeSafetensors, tensor } from '../src/data/safetensors.ts'
import { makeCifarArchive } from '../test/data/fixtures/cifar-archive.ts'

const args = process.argv.slice(2)
const repeat = Number(args[args.indexOf('--repeat') + 1] ?? 3) || 3
const debian = '/usr/share/datasets/fashion-mnist'
const dir = existsSync(debian) ? debian : fileURLToPath(new URL('../data/fashion-mnist/', import.meta.url))
const images = join(dir, 'train-images-idx3-ubyte.gz')
const labels = join(dir, 'train-labels-idx1-ubyte.gz')

async function best<T>(f: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  let ms = Infinity
  let value: T | undefined
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now()
    value = await f()
    ms = Math.min(ms, performance.now() - t0)
  }
  return { ms: Math.round(ms), value: value as T }
}

const read = await best(() => readIdxDataset(images, labels))
const d = read.value
const set = { n: d.n, height: d.rows, width: d.cols, channels: 1, images: d.images, labels: d.labels, classNames: FASHION_MNIST_CLASSES }
const prep = await best(() =>
  prepareDataset(set, { classes: 10, nD: d.n, seed: 0, normalisation: 'standardise' }, { kind: 'idx', digest: '', split: 'train' }),
)
const p = prep.value
const enc = await best(() => encodeSafetensors({ x: tensor.f32(p.manifest.shape, p.x), y: tensor.i32([d.n], p.y) }))

const peerScript = `
import gzip, json, sys, time
import numpy as np
best = {}
for _ in range(${repeat}):
    t0 = time.perf_counter()
    im = np.frombuffer(gzip.open(sys.argv[1]).read(), dtype=np.uint8, offset=16)
    lb = np.frombuffer(gzip.open(sys.argv[2]).read(), dtype=np.uint8, offset=8)
    t1 = time.perf_counter()
    x = (im.reshape(len(lb), 28, 28, 1).astype(np.float32) / np.float32(255))
    m = x.astype(np.float64).mean(axis=(0, 1, 2)); s = x.astype(np.float64).std(axis=(0, 1, 2))
    x = ((x - m) / s).astype(np.float32)
    t2 = time.perf_counter()
    for k, v in (('read', t1 - t0), ('prepare', t2 - t1)):
        best[k] = min(best.get(k, 1e9), v * 1000)
print(json.dumps({'read_ms': round(best['read']), 'prepare_ms': round(best['prepare']), 'mean': m.tolist(), 'std': s.tolist()}))
`
type Peer = { read_ms: number; prepare_ms: number; mean: number[]; std: number[] }
let peer: Peer | null = null
try {
  peer = JSON.parse(execFileSync('/usr/bin/python3', ['-c', peerScript, images, labels], { encoding: 'utf8' })) as Peer
} catch (e) {
  console.error(`numpy peer unavailable: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`)
}
const figures: Record<string, unknown> = {
  source: dir,
  examples: d.n,
  repeat,
  ours: {
    read_ms: read.ms,
    prepare_ms: prep.ms,
    encode_ms: enc.ms,
    safetensors_mb: +(enc.value.length / 1e6).toFixed(1),
    mean: p.manifest.normalisation.mean,
    std: p.manifest.normalisation.std,
  },
  numpy: peer,
}
console.error(
  `Fashion-MNIST train (${d.n}) from ${dir}: read ${read.ms} ms, prepare ${prep.ms} ms, encode ${enc.ms} ms; numpy read ${peer?.read_ms} ms, prepare ${peer?.prepare_ms} ms`,
)

if (args.includes('--cifar')) {
  const tmp = mkdtempSync(join(tmpdir(), 'bench-cifar-'))
  try {
    const fake = makeCifarArchive(tmp, 10_000)
    const c = await best(() => readCifar10Archive(fake.path, 'train'))
    const cp = await best(() =>
      prepareDataset(
        c.value,
        { classes: 10, nD: 50_000, seed: 0, normalisation: 'standardise' },
        { kind: 'cifar10', digest: '', split: 'train' },
      ),
    )
    figures.cifar10 = { read_ms: c.ms, prepare_ms: cp.ms, rss_mb: Math.round(process.memoryUsage().rss / 1e6) }
    console.error(`CIFAR-10-format archive (50,000 train): read ${c.ms} ms, prepare ${cp.ms} ms`)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}
console.log(JSON.stringify(figures))
