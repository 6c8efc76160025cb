/**
 * Hostile archives and tensor files: truncated, with out-of-range header lengths and offsets,
 * prototype-polluting names, gzip bombs. Each row is one test asserting a `DataFormatError`
 * that names the file on one line (never a RangeError, a hang or a prototype change), or, for
 * the gzip bombs, that decompression stops at the cap with bounded memory.
 */
import t from 'tap'
import { createGzip, gzipSync } from 'node:zlib'
import { decodeCifar10Archive, decodeCifar10Batch } from '../../src/data/cifar10.ts'
import { DataFormatError } from '../../src/data/errors.ts'
import { decodeIdx, encodeIdx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC } from '../../src/data/idx.ts'
import { decodeSafetensors, encodeSafetensors, tensor } from '../../src/data/safetensors.ts'
import { readTar } from '../../src/data/tar.ts'

const FILE = '/data/suspect.bin'

/** safetensors bytes with a hand-written header (and `data` after it). */
function st(header: unknown, data = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}
const f32 = (offs: unknown, shape: unknown = [1]) => ({ dtype: 'F32', shape, data_offsets: offs })
const good = encodeSafetensors({ w: tensor.f32([2], new Float32Array([1, 2])) })

const safetensorsCases: [string, Uint8Array, RegExp][] = [
  ['empty file', new Uint8Array(0), /shorter than the 8-byte header length/],
  ['truncated to 5 bytes', good.subarray(0, 5), /shorter than the 8-byte header length/],
  ['truncated inside the data', good.subarray(0, good.length - 3), /run past|trailing|truncated/],
  ['header length over the limit', st('{}', undefined, 200_000_000n), /exceeds the/],
  ['header length 2^63 (negative as i64)', st('{}', undefined, 1n << 63n), /exceeds the/],
  ['header length past the end', st('{}', undefined, 1000n), /runs past the end/],
  ['header not JSON', st('{"w": '), /not JSON/],
  ['header a JSON array', st('[1,2]'), /does not start with|not a JSON object/],
  ['negative offsets', st({ w: f32([-4, 0]) }, new Uint8Array(4)), /not a pair of non-negative integers/],
  ['offsets past the data', st({ w: f32([0, 4000]) }, new Uint8Array(4)), /run past/],
  ['offsets reversed', st({ w: f32([4, 0]) }, new Uint8Array(4)), /end before they begin/],
  ['overlapping tensors', st({ a: f32([0, 4]), b: f32([0, 4]) }, new Uint8Array(4)), /overlap|trailing/],
  ['a gap between tensors', st({ a: f32([0, 4]), b: f32([8, 12]) }, new Uint8Array(12)), /gap/],
  ['tensor named __proto__', st(`{"__proto__": ${JSON.stringify(f32([0, 4]))}}`, new Uint8Array(4)), /reserved/],
  ['tensor named constructor', st({ constructor: f32([0, 4]) }, new Uint8Array(4)), /reserved/],
  ['tensor named hasOwnProperty', st({ hasOwnProperty: f32([0, 4]) }, new Uint8Array(4)), /reserved/],
  ['empty tensor name', st({ '': f32([0, 4]) }, new Uint8Array(4)), /empty/],
  ['metadata key __proto__', st(`{"__metadata__": {"__proto__": "x"}}`), /reserved/],
  ['shape with a fraction', st({ w: f32([0, 4], [0.5]) }, new Uint8Array(4)), /non-negative integers/],
  ['shape of rank 65', st({ w: f32([0, 4], Array(65).fill(1)) }, new Uint8Array(4)), /non-negative integers/],
  ['shape whose size overflows', st({ w: f32([0, 4], [2 ** 52, 2 ** 52]) }, new Uint8Array(4)), /needs/],
  ['unknown dtype', st({ w: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, new Uint8Array(2)), /unsupported dtype/],
]
for (const [name, bytes, why] of safetensorsCases) {
  t.test(`safetensors: ${name}`, async (t) => {
    const before = Object.getOwnPropertyNames(Object.prototype).length
    t.throws(() => decodeSafetensors(bytes, FILE), { name: 'DataFormatError', file: FILE, message: why })
    try {
      decodeSafetensors(bytes, FILE)
    } catch (e) {
      t.notMatch((e as Error).message, /\n/, 'one line')
    }
    t.equal(Object.getOwnPropertyNames(Object.prototype).length, before, 'Object.prototype untouched')
  })
}

// ---------------------------------------------------------------------------------------------

/** A one-member ustar archive (checksum computed), optionally with a custom size field. */
function tarOf(name: string, data: Uint8Array, sizeField?: Uint8Array): Uint8Array {
  const h = new Uint8Array(512)
  h.set(Buffer.from(name), 0)
  h.set(Buffer.from('0000644\0'), 100)
  h.set(sizeField ?? Buffer.from(`${data.length.toString(8).padStart(11, '0')}\0`), 124)
  h[156] = '0'.charCodeAt(0)
  h.set(Buffer.from('ustar\0'), 257)
  h.set(Buffer.from('        '), 148)
  const sum = h.reduce((a, b) => a + b, 0)
  h.set(Buffer.from(`${sum.toString(8).padStart(6, '0')}\0 `), 148)
  const body = new Uint8Array(Math.ceil(data.length / 512) * 512)
  body.set(data)
  return Buffer.concat([h, body, new Uint8Array(1024)])
}
const okTar = tarOf('a.txt', Buffer.from('hello'))
const huge = new Uint8Array(12)
huge[0] = 0x80
huge.fill(0xff, 1)
const flipped = Uint8Array.from(okTar)
flipped[10] = flipped[10]! ^ 1
const tarCases: [string, Uint8Array, RegExp][] = [
  ['truncated inside the header', okTar.subarray(0, 300), /truncated/],
  ['truncated inside a member', tarOf('a.txt', Buffer.alloc(2000)).subarray(0, 1024), /truncated/],
  ['no end-of-archive marker', okTar.subarray(0, 1024), /truncated/],
  ['bad header checksum', flipped, /checksum/],
  ['base-256 size of 2^88', tarOf('a.txt', Buffer.from('x'), huge), /truncated|needs/],
]
for (const [name, bytes, why] of tarCases) {
  t.test(`tar: ${name}`, async (t) => {
    t.throws(() => readTar(bytes, FILE), { name: 'DataFormatError', file: FILE, message: why })
  })
}
t.test('tar: control: a well-formed archive reads', async (t) => {
  t.equal(Buffer.from(readTar(okTar, FILE).get('a.txt')!).toString(), 'hello')
})

// ---------------------------------------------------------------------------------------------

/** gzip of `mb` MiB of zeros, built by streaming so the test itself stays small. */
async function gzipBomb(mb: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 })
  const chunks: Buffer[] = []
  gz.on('data', (c: Buffer) => chunks.push(c))
  const done = new Promise((r) => gz.on('end', r))
  const zero = Buffer.alloc(1 << 20)
  for (let i = 0; i < mb; i++) if (!gz.write(zero)) await new Promise((r) => gz.once('drain', r))
  gz.end()
  await done
  return Buffer.concat(chunks)
}

t.test('idx: a gzip bomb (1 GiB of zeros in ~1 MB) stops at the cap with bounded memory', async (t) => {
  const bomb = await gzipBomb(1024)
  t.ok(bomb.length < 2 << 20, `the bomb is small (${bomb.length} bytes)`)
  const before = process.memoryUsage().rss
  t.throws(() => decodeIdx(bomb, FILE, IDX_IMAGES_MAGIC, 8 << 20), { name: 'DataFormatError', file: FILE, message: /expands to more than 8388608 bytes/ })
  const grew = process.memoryUsage().rss - before
  t.ok(grew < 256 << 20, `memory grew by ${(grew / 1e6).toFixed(0)} MB, far below the 1 GiB the bomb holds`)
})

const labels = encodeIdx(IDX_LABELS_MAGIC, [4], Uint8Array.from([1, 2, 3, 4]), false)
const idxCases: [string, Uint8Array, number, RegExp][] = [
  ['truncated gzip stream', gzipSync(labels).subarray(0, 20), IDX_LABELS_MAGIC, /gzip data is corrupt or truncated/],
  ['wrong magic', labels, IDX_IMAGES_MAGIC, /magic number/],
  ['data shorter than the header says', labels.subarray(0, labels.length - 1), IDX_LABELS_MAGIC, /truncated/],
  ['data longer than the header says', Buffer.concat([labels, Buffer.from([9])]), IDX_LABELS_MAGIC, /follow/],
  ['header claims 2^32 x 2^32 elements', Uint8Array.from([0, 0, 8, 2, 255, 255, 255, 255, 255, 255, 255, 255, 1]), 0x00000802, /truncated/],
  ['three bytes', Uint8Array.from([0, 0, 8]), IDX_LABELS_MAGIC, /too short/],
]
for (const [name, bytes, magic, why] of idxCases) {
  t.test(`idx: ${name}`, async (t) => {
    t.throws(() => decodeIdx(bytes, FILE, magic), { name: 'DataFormatError', file: FILE, message: why })
  })
}

// ---------------------------------------------------------------------------------------------

t.test('cifar10: a gzip bomb in place of the archive stops at the cap', async (t) => {
  await t.rejects(decodeCifar10Archive(await gzipBomb(64), FILE, 'train', 4 << 20), { name: 'DataFormatError', file: FILE, message: /expands to more than/ })
})
t.test('cifar10: not gzip at all', async (t) => {
  await t.rejects(decodeCifar10Archive(Buffer.from('plain text'), FILE, 'train'), { name: 'DataFormatError', file: FILE })
})
t.test('cifar10: a valid tar.gz without the batches', async (t) => {
  await t.rejects(decodeCifar10Archive(gzipSync(okTar), FILE, 'test'), { name: 'DataFormatError', message: /has no batches.meta.txt/ })
})
t.test('cifar10: a batch that is not whole records', async (t) => {
  t.throws(() => decodeCifar10Batch(new Uint8Array(3073 + 5), FILE), DataFormatError)
})
t.test('cifar10: a label outside the classes', async (t) => {
  const rec = new Uint8Array(3073)
  rec[0] = 200
  t.throws(() => decodeCifar10Batch(rec, FILE), { name: 'DataFormatError', message: /label 200/ })
})
