import t from 'tap'
import { createServer, type Server } from 'node:http'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'
import {
  CIFAR10_MD5,
  CIFAR10_URL,
  decodeCifar10Archive,
  decodeCifar10Batch,
  downloadCifar10,
  md5File,
  readCifar10Archive,
} from '../../src/data/cifar10.ts'
import { readTar } from '../../src/data/tar.ts'
import { CIFAR_CLASSES, makeCifarArchive } from './fixtures/cifar-archive.ts'

t.test('constants are the official address and published MD5', async (t) => {
  t.equal(CIFAR10_URL, 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz')
  t.equal(CIFAR10_MD5, 'c32a1d4ab5d03f1284b67883e8d87530')
})

for (const format of ['gnu', 'posix'] as const) {
  t.test(`reads a GNU-tar-built archive in the real format (${format} tar)`, async (t) => {
    const fake = makeCifarArchive(t.testdir(), 3, format)
    const train = await readCifar10Archive(fake.path, 'train')
    t.same([train.n, train.height, train.width, train.channels], [15, 32, 32, 3])
    t.same(train.classNames, CIFAR_CLASSES)
    t.same(Buffer.from(train.labels), Buffer.from(fake.train.labels), 'train labels, batches 1..5 in order')
    t.ok(Buffer.from(train.images).equals(Buffer.from(fake.train.images)), 'train pixels transposed to NHWC')
    const test = await readCifar10Archive(fake.path, 'test')
    t.equal(test.n, 3)
    t.ok(Buffer.from(test.images).equals(Buffer.from(fake.test.images)), 'test pixels')
    t.equal(await md5File(fake.path), fake.md5)
  })
}

t.test('a single record: channel-major planes become NHWC', async (t) => {
  const rec = new Uint8Array(3073)
  rec[0] = 4
  rec[1 + 0 * 1024 + 5 * 32 + 7] = 11 // R at (5, 7)
  rec[1 + 1 * 1024 + 5 * 32 + 7] = 22 // G
  rec[1 + 2 * 1024 + 0] = 33 // B at (0, 0)
  const { images, labels } = decodeCifar10Batch(rec, 'one.bin')
  t.equal(labels[0], 4)
  t.same(Array.from(images.subarray((5 * 32 + 7) * 3, (5 * 32 + 7) * 3 + 3)), [11, 22, 0])
  t.same(Array.from(images.subarray(0, 3)), [0, 0, 33])
})

t.test('corrupt inputs are clear errors naming the file', async (t) => {
  const fake = makeCifarArchive(t.testdir(), 2)
  const gz = readFileSync(fake.path)
  await t.rejects(decodeCifar10Archive(gz.subarray(0, gz.length - 100), 'a.tgz', 'train'), /a\.tgz: gzip data is corrupt or truncated/)
  // A tar cut at a block boundary inside a member, re-gzipped: the tar reader sees it.
  const tar = gunzipSync(gz)
  await t.rejects(decodeCifar10Archive(gzipSync(tar.subarray(0, 4096)), 'b.tgz', 'train'), /b\.tgz: tar archive is truncated/)
  const flipped = Buffer.from(tar)
  flipped[10] = flipped[10]! ^ 1 // inside the first header's name
  t.throws(() => readTar(flipped, 'c.tar'), /c\.tar: corrupt tar header at byte 0: checksum/)
  await t.rejects(decodeCifar10Archive(gzipSync(Buffer.alloc(1024)), 'd.tgz', 'test'), /d\.tgz: not a CIFAR-10 binary archive: it has no batches\.meta\.txt/)
  t.throws(() => decodeCifar10Batch(new Uint8Array(3073 * 2 - 1), 'e.bin'), /e\.bin: not a CIFAR-10 batch: 6145 bytes/)
  const badLabel = new Uint8Array(3073)
  badLabel[0] = 10
  t.throws(() => decodeCifar10Batch(badLabel, 'f.bin'), /f\.bin: record 0 has label 10/)
})

t.test('download from a loopback HTTP server: ok, redirect, wrong MD5, truncated, HTTP error', async (t) => {
  const dir = t.testdir()
  const fake = makeCifarArchive(dir, 2)
  const body = readFileSync(fake.path)
  const server: Server = createServer((req, res) => {
    switch (req.url) {
      case '/cifar.tgz':
        res.writeHead(200, { 'content-length': body.length })
        res.write(body.subarray(0, 1000))
        res.end(body.subarray(1000))
        return
      case '/moved':
        res.writeHead(302, { location: '/cifar.tgz' })
        res.end()
        return
      case '/cut':
        res.writeHead(200, { 'content-length': body.length })
        res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy())
        return
      case '/short': // no Content-Length: a short body is only caught by the MD5
        res.writeHead(200)
        res.end(body.subarray(0, body.length - 10))
        return
      default:
        res.writeHead(404)
        res.end('no')
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const progress: [number, number | undefined][] = []
  const dest = join(dir, 'got.tar.gz')
  const got = await downloadCifar10(`${base}/cifar.tgz`, dest, { md5: fake.md5, onProgress: (r, tot) => progress.push([r, tot]) })
  t.same(got, { path: dest, md5: fake.md5, bytes: body.length })
  t.ok(readFileSync(dest).equals(body), 'the file is the served archive')
  t.ok(progress.length >= 1 && progress.every(([r], i) => i === 0 || r > progress[i - 1]![0]), 'progress reported, increasing')
  t.same(progress.at(-1), [body.length, body.length])
  t.equal((await readCifar10Archive(dest, 'test')).n, 2, 'the downloaded archive reads')

  const dest2 = join(dir, 'redirected.tar.gz')
  t.equal((await downloadCifar10(`${base}/moved`, dest2, { md5: fake.md5 })).bytes, body.length, 'redirect followed')

  const failures: [string, string, RegExp][] = [
    ['wrong MD5', '/cifar.tgz', /MD5 mismatch: .* expected c32a1d4ab5d03f1284b67883e8d87530/],
    ['connection cut', '/cut', /download truncated/],
    ['short body without length', '/short', /MD5 mismatch/],
    ['HTTP 404', '/nothing', /download failed: HTTP 404/],
  ]
  for (const [name, path, re] of failures) {
    const d = join(dir, `fail-${path.slice(1)}.tar.gz`)
    // the default MD5 (the published one) for 'wrong MD5'; the right one otherwise
    const md5 = name === 'wrong MD5' ? undefined : fake.md5
    await t.rejects(downloadCifar10(`${base}${path}`, d, md5 === undefined ? {} : { md5 }), re, name)
    t.notOk(existsSync(d), `${name}: no file at the destination`)
  }
  t.same(readdirSync(dir).filter((f) => f.includes('.part-')), [], 'no temporary files left behind')
  await t.rejects(downloadCifar10('ftp://example.org/x', join(dir, 'x')), /only http: and https:/)
  await t.rejects(downloadCifar10(`${base}/cifar.tgz`, join(dir, 'no', 'such', 'x'), { md5: fake.md5 }), { code: 'ENOENT' }, 'a local file error is itself, not a truncated download')
})
