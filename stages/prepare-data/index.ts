/**
 * Stage `prepare-data` (paper §4: "the CIFAR-10 training dataset"; datasets of 2, 3 or 5 classes;
 * subsets of size n_D): reads a source (the CIFAR-10 binary archive, MNIST-format IDX files, or
 * synthetic images), chooses classes and a class-balanced seeded subset of n_D examples,
 * normalises it per channel, and writes two outputs: `dataset` (safetensors, `x` float32
 * [n, h, w, c] and `y` int32 [n]) and `manifest` (JSON, src/data/manifest.ts). The work is
 * src/data/prepare.ts; this file only reads the source and writes the outputs.
 *
 * The source's content is in the fingerprint where the harness can see it: the CIFAR-10 archive
 * as an upstream output (dep `archive`, e.g. from stage fetch-cifar10, so it is downloaded once
 * and cached in the store) or pinned by its MD5 param when read from `cifar10.path`; the bundled
 * Fashion-MNIST files through the `new URL(...)` references below, which the code digest hashes.
 * A local `idx.dir` is fingerprinted by content (its params schema marks it `x-cusp-path`).
 */
import { readFile, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { decodeCifar10Archive } from '../../src/data/cifar10.ts'
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, decodeIdx, idxDataset } from '../../src/data/idx.ts'
import { FASHION_MNIST_CLASSES, checkImageSet, type ImageSet } from '../../src/data/image-set.ts'
import { sourceDigest, type SourceKind } from '../../src/data/manifest.ts'
import type { Normalisation } from '../../src/data/normalise.ts'
import { prepareDataset } from '../../src/data/prepare.ts'
import { tensor, writeSafetensors } from '../../src/data/safetensors.ts'
import type { ClassSpec } from '../../src/data/subset.ts'
import { syntheticImageSet } from '../../src/data/synthetic.ts'
import { defineStage, type StageContext } from '../../src/harness/stage-api.ts'

/** Params (schemas/stages/prepare-data.params.schema.json; defaults filled by the analyzer). */
export interface PrepareDataParams {
  source: SourceKind
  split: 'train' | 'test'
  classes: ClassSpec
  /** With an integer `classes` = n: take the first n of this list instead of the first n labels. */
  class_order?: (number | string)[]
  n_data: number
  normalisation: Normalisation
  seed: number
  expect_digest?: string
  cifar10: { path?: string; md5: string }
  idx: { dir?: string; class_names?: string[] }
  synthetic: { classes: number; per_class: number; height: number; width: number; channels: number; noise: number; seed: number }
}

/** What the stage returns (schemas/stages/prepare-data.result.schema.json). */
export interface PrepareDataResult {
  source: SourceKind
  source_digest: string
  split: string
  examples: number
  shape: number[]
  classes: number
  class_names: string[]
  label_counts: number[]
  indices_digest: string
  normalisation: Normalisation
}

/** The bundled Fashion-MNIST subset (literal URLs, so the code digest covers these bytes). */
const BUNDLED = {
  train: {
    images: new URL('../../data/fashion-mnist/train-images-idx3-ubyte.gz', import.meta.url),
    labels: new URL('../../data/fashion-mnist/train-labels-idx1-ubyte.gz', import.meta.url),
  },
  test: {
    images: new URL('../../data/fashion-mnist/t10k-images-idx3-ubyte.gz', import.meta.url),
    labels: new URL('../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz', import.meta.url),
  },
}

/** `<dir>/<stem>.gz` when it exists, else `<dir>/<stem>` (IDX files come gzipped or plain). */
function idxFile(dir: string, stem: string): string {
  const gz = join(dir, `${stem}.gz`)
  return existsSync(gz) ? gz : join(dir, stem)
}

async function readSource(
  p: PrepareDataParams,
  ctx: StageContext<PrepareDataParams>,
): Promise<{ set: ImageSet; digest: string; split: string }> {
  switch (p.source) {
    case 'synthetic': {
      const s = p.synthetic
      const spec = {
        classes: s.classes,
        perClass: s.per_class,
        height: s.height,
        width: s.width,
        channels: s.channels,
        noise: s.noise,
        seed: s.seed,
      }
      const digest = createHash('sha256').update(JSON.stringify(spec)).digest('hex')
      return { set: syntheticImageSet(spec), digest, split: 'synthetic' }
    }
    case 'idx': {
      let images: string
      let labels: string
      if (p.idx.dir === undefined) {
        images = fileURLToPath(BUNDLED[p.split].images)
        labels = fileURLToPath(BUNDLED[p.split].labels)
      } else {
        const stem = p.split === 'train' ? 'train' : 't10k'
        images = idxFile(resolve(p.idx.dir), `${stem}-images-idx3-ubyte`)
        labels = idxFile(resolve(p.idx.dir), `${stem}-labels-idx1-ubyte`)
      }
      ctx.log(`reading ${images} and ${labels}`)
      const [ib, lb] = await Promise.all([readFile(images), readFile(labels)])
      const d = idxDataset(decodeIdx(ib, images, IDX_IMAGES_MAGIC), decodeIdx(lb, labels, IDX_LABELS_MAGIC), images, labels)
      const set: ImageSet = {
        n: d.n,
        height: d.rows,
        width: d.cols,
        channels: 1,
        images: d.images,
        labels: d.labels,
        classNames: p.idx.class_names ?? FASHION_MNIST_CLASSES,
      }
      return { set, digest: sourceDigest(ib, lb), split: p.split }
    }
    case 'cifar10': {
      const path = ctx.inputs.archive?.[0]?.path ?? (p.cifar10.path === undefined ? undefined : resolve(p.cifar10.path))
      if (path === undefined) {
        throw new Error(
          'source cifar10 needs the archive: add a dep `archive` on a fetch-cifar10 stage (output archive), or set cifar10.path to a local cifar-10-binary.tar.gz',
        )
      }
      ctx.log(`reading ${path}`)
      const bytes = await readFile(path)
      const md5 = createHash('md5').update(bytes).digest('hex')
      if (md5 !== p.cifar10.md5)
        throw new Error(
          `${path}: MD5 mismatch: the archive has MD5 ${md5}, expected ${p.cifar10.md5} (corrupt, or not the official archive)`,
        )
      return { set: await decodeCifar10Archive(bytes, path, p.split), digest: sourceDigest(bytes), split: p.split }
    }
  }
}

export default defineStage<PrepareDataParams, PrepareDataResult>(async (ctx) => {
  const p = ctx.params
  ctx.progress(0, `reading ${p.source}`)
  const { set, digest, split } = await readSource(p, ctx)
  if (p.expect_digest !== undefined && p.expect_digest !== digest) {
    throw new Error(`the ${p.source} source has digest ${digest}, but expect_digest is ${p.expect_digest}`)
  }
  checkImageSet(set, `${p.source} source`)
  ctx.progress(0.5, `selecting ${p.n_data} of ${set.n} examples`)
  let classes: ClassSpec = p.classes
  if (p.class_order !== undefined && typeof classes === 'number') {
    if (classes > p.class_order.length) throw new Error(`classes = ${classes} but class_order lists only ${p.class_order.length} classes`)
    classes = p.class_order.slice(0, classes)
  }
  const prepared = prepareDataset(
    set,
    { classes, nD: p.n_data, seed: p.seed, normalisation: p.normalisation },
    { kind: p.source, digest, split },
  )
  const m = prepared.manifest
  await writeSafetensors(join(ctx.outDir, 'dataset'), { x: tensor.f32(m.shape, prepared.x), y: tensor.i32([m.shape[0]!], prepared.y) })
  await writeFile(join(ctx.outDir, 'manifest'), `${JSON.stringify(m, null, 2)}\n`)
  ctx.progress(1, `${m.shape[0]} examples of ${m.classes.names.length} classes`)
  return {
    source: p.source,
    source_digest: digest,
    split,
    examples: m.shape[0]!,
    shape: m.shape,
    classes: m.classes.names.length,
    class_names: m.classes.names,
    label_counts: m.labelCounts,
    indices_digest: m.indices.digest,
    normalisation: p.normalisation,
  }
})
