/**
 * Builds the small real Fashion-MNIST subset committed under `data/fashion-mnist/`, so the
 * default profile runs offline with no root. The rule (documented in that folder's README and
 * checked by test/data/fashion-mnist.test.ts against Debian's full set when installed): from each
 * split, the first `perClass` images of every class in the order of the original file, kept in
 * file order (600 per class of the training split = 6,000; 100 per class of the test split =
 * 1,000). Written as gzip IDX files in the original format, so the same IDX reader reads the
 * bundle and the full set at /usr/share/datasets/fashion-mnist/ (Debian `dataset-fashion-mnist`).
 *
 * Run: `node --import tsx src/data/fashion-mnist-subset.ts [SRC_DIR] [OUT_DIR]`.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, encodeIdx, readIdxDataset, type IdxDataset } from './idx.ts'

/** Where Debian's `dataset-fashion-mnist` package puts the full set. */
export const DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'
/** Where the committed subset lives, relative to the project root. */
export const BUNDLED_FASHION_MNIST = 'data/fashion-mnist'

/** The two splits: file stem in the original naming, and examples kept per class. */
export const FASHION_SPLITS = [
  { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz', perClass: 600 },
  { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz', perClass: 100 },
] as const

/** Indices of the first `perClass` examples of each class, in ascending (file) order. */
export function firstPerClass(labels: Uint8Array, perClass: number): Int32Array {
  const taken = new Map<number, number>()
  const out: number[] = []
  labels.forEach((l, i) => {
    const k = taken.get(l) ?? 0
    if (k < perClass) {
      taken.set(l, k + 1)
      out.push(i)
    }
  })
  for (const [l, k] of taken) if (k < perClass) throw new Error(`class ${l} has only ${k} examples, fewer than ${perClass}`)
  return Int32Array.from(out)
}

/** The rows `indices` of `d`, as a new dataset. */
export function takeRows(d: IdxDataset, indices: Int32Array): IdxDataset {
  const per = d.rows * d.cols
  const images = new Uint8Array(indices.length * per) // [n, rows, cols]
  const labels = new Uint8Array(indices.length)
  indices.forEach((src, i) => {
    images.set(d.images.subarray(src * per, (src + 1) * per), i * per)
    labels[i] = d.labels[src]!
  })
  return { n: indices.length, rows: d.rows, cols: d.cols, images, labels }
}

/** Reads both splits from `srcDir` and writes the subset's gzip IDX files into `outDir`. */
export async function makeFashionMnistSubset(srcDir: string, outDir: string): Promise<void> {
  await mkdir(outDir, { recursive: true })
  for (const split of FASHION_SPLITS) {
    const full = await readIdxDataset(join(srcDir, split.images), join(srcDir, split.labels))
    const sub = takeRows(full, firstPerClass(full.labels, split.perClass))
    await writeFile(join(outDir, split.images), encodeIdx(IDX_IMAGES_MAGIC, [sub.n, sub.rows, sub.cols], sub.images))
    await writeFile(join(outDir, split.labels), encodeIdx(IDX_LABELS_MAGIC, [sub.n], sub.labels))
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await makeFashionMnistSubset(process.argv[2] ?? DEBIAN_FASHION_MNIST, process.argv[3] ?? BUNDLED_FASHION_MNIST)
}
