import t from 'tap'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import {
  IDX_IMAGES_MAGIC,
  IDX_LABELS_MAGIC,
  decodeIdx,
  encodeIdx,
  readIdxDataset,
} from '../../src/data/idx.ts'
import { DataFormatError } from '../../src/data/errors.ts'

// A hand-built IDX file (big-endian header written byte by byte, independent of encodeIdx).
const images = Uint8Array.from({ length: 3 * 2 * 4 }, (_, i) => (i * 37) % 256)
const handImages = Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4, ...images])
const handLabels = Uint8Array.from([0, 0, 8, 1, 0, 0, 0, 3, 9, 0, 4])

t.test('reads plain and gzip IDX written by hand', async (t) => {
  for (const [name, bytes] of [['plain', handImages], ['gzip', gzipSync(handImages)]] as const) {
    const a = decodeIdx(bytes, name, IDX_IMAGES_MAGIC)
    t.same(a.dims, [3, 2, 4], name)
    t.same(Array.from(a.data), Array.from(images), name)
  }
  t.same(Array.from(decodeIdx(handLabels, 'l', IDX_LABELS_MAGIC).data), [9, 0, 4])
})

t.test('encodeIdx writes the same bytes as the hand-built file, deterministically', async (t) => {
  t.same(Buffer.from(encodeIdx(IDX_IMAGES_MAGIC, [3, 2, 4], images, false)), Buffer.from(handImages))
  t.same(Buffer.from(encodeIdx(IDX_IMAGES_MAGIC, [3, 2, 4], images)), Buffer.from(encodeIdx(IDX_IMAGES_MAGIC, [3, 2, 4], images)))
})

t.test('malformed files are DataFormatErrors naming the file', async (t) => {
  const gz = gzipSync(handImages)
  const corrupt = Uint8Array.from(gz)
  corrupt[gz.length - 6] = corrupt[gz.length - 6]! ^ 0xff // inside the CRC/size trailer
  const cases: [string, Uint8Array, number, RegExp][] = [
    ['labels read as images', handLabels, IDX_IMAGES_MAGIC, /magic number 0x00000801, expected 0x00000803/],
    ['random bytes', Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), IDX_LABELS_MAGIC, /magic number 0x01020304/],
    ['truncated data', handImages.subarray(0, handImages.length - 1), IDX_IMAGES_MAGIC, /only 23 follow \(truncated\?\)/],
    ['truncated header', handImages.subarray(0, 10), IDX_IMAGES_MAGIC, /too short for a header/],
    ['extra data', Uint8Array.from([...handLabels, 1]), IDX_LABELS_MAGIC, /but 4 follow/],
    ['too short', Uint8Array.from([0, 0]), IDX_LABELS_MAGIC, /too short for the magic/],
    ['truncated gzip', gz.subarray(0, Math.floor(gz.length / 2)), IDX_IMAGES_MAGIC, /gzip data is corrupt or truncated/],
    ['corrupt gzip', corrupt, IDX_IMAGES_MAGIC, /gzip data is corrupt or truncated/],
  ]
  for (const [name, bytes, magic, re] of cases) {
    t.throws(() => decodeIdx(bytes, '/x/f.idx', magic), re, name)
    let err: unknown
    try {
      decodeIdx(bytes, '/x/f.idx', magic)
    } catch (e) {
      err = e
    }
    t.ok(err instanceof DataFormatError && err.file === '/x/f.idx' && err.message.startsWith('/x/f.idx: '), `${name} names the file`)
  }
})

t.test('readIdxDataset pairs files and checks counts', async (t) => {
  const dir = t.testdir()
  const im = join(dir, 'im.gz')
  const lb = join(dir, 'lb')
  const lb2 = join(dir, 'lb2')
  await writeFile(im, gzipSync(handImages))
  await writeFile(lb, handLabels)
  await writeFile(lb2, encodeIdx(IDX_LABELS_MAGIC, [2], Uint8Array.from([1, 2])))
  const d = await readIdxDataset(im, lb)
  t.same([d.n, d.rows, d.cols], [3, 2, 4])
  t.same(Array.from(d.labels), [9, 0, 4])
  await t.rejects(readIdxDataset(im, lb2), /im\.gz: 3 images but .*lb2 has 2 labels/)
  await t.rejects(readIdxDataset(join(dir, 'missing'), lb), /ENOENT/)
})

const debian = '/usr/share/datasets/fashion-mnist'
t.test('reads the full Fashion-MNIST test split from Debian', { skip: existsSync(debian) ? false : `${debian} not installed` }, async (t) => {
  const d = await readIdxDataset(join(debian, 't10k-images-idx3-ubyte.gz'), join(debian, 't10k-labels-idx1-ubyte.gz'))
  t.same([d.n, d.rows, d.cols], [10000, 28, 28])
  const counts = new Array<number>(10).fill(0)
  for (const l of d.labels) counts[l]!++
  t.same(counts, new Array(10).fill(1000), 'the test split has 1,000 images per class')
})
