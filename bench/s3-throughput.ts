/**
 * `npm run bench -- s3-throughput [--mb 200] [--files 8] [--part-mb 16]`: push and pull throughput
 * of the S3 store for a set of checkpoint-like files (float32 weights, roughly N(0, 0.05), as a
 * safetensors checkpoint's payload would be: incompressible in practice) over loopback to s3rver
 * running as a separate process. Ours is `push`/`pull` of one lock entry whose output is a
 * directory of those files (hash, HEAD, upload with SHA-256 checksums and re-hash while sending;
 * download with verification into the local store). The peer, in the same run and against the
 * same server, is the bare AWS SDK: lib-storage `Upload` and `GetObject` of the same files with
 * the same part size and concurrency, no hashing or checks, so the difference is what our
 * integrity checks cost. Ends with one JSON line: `{"bench":"s3-throughput", "mb", "files",
 * "push_mb_s", "pull_mb_s", "peer", "peer_push_mb_s", "peer_pull_mb_s", ...}` (MB = 1e6 bytes).
 * s3rver stores objects as plain files and is single-threaded JavaScript, so these figures bound
 * the harness's overhead rather than measure a real S3 endpoint.
 */
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import { createReadStream } from 'node:fs'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { LocalStore } from '../src/harness/store/local-store.ts'
import { mapLimit } from '../src/harness/store/restore.ts'
import { TieredStore } from '../src/harness/store/tiered-store.ts'
import { pullLock, pushLock } from '../src/harness/sync.ts'
import type { LockFile } from '../src/harness/types.ts'
import { makeRecord } from '../test/harness/store-contract.ts'
import { s3TestStore, startS3ServerChild, TEST_BUCKET } from '../test/harness/fixtures/s3-server.ts'

const args = process.argv.slice(2)
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? Number(args[i + 1]) : dflt
}
const totalMb = arg('mb', 200)
const files = arg('files', 8)
const partMb = arg('part-mb', 16)

/** float32 weights ~ N(0, 0.05) from a seeded generator (Box-Muller over a 32-bit LCG). */
function weights(bytes: number, seed: number): Buffer {
  const f = new Float32Array(bytes / 4) // [n]
  let s = seed >>> 0
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297
  for (let i = 0; i < f.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()))
    const th = 2 * Math.PI * u()
    f[i] = 0.05 * r * Math.cos(th)
    if (i + 1 < f.length) f[i + 1] = 0.05 * r * Math.sin(th)
  }
  return Buffer.from(f.buffer)
}

const root = await mkdtemp(join(tmpdir(), 'cusp-bench-s3-'))
const server = await startS3ServerChild(join(root, 'server'))
try {
  const perFile = Math.floor((totalMb * 1e6) / files / 4) * 4
  const ckpt = join(root, 'ckpt')
  await mkdir(ckpt)
  for (let i = 0; i < files; i++) await writeFile(join(ckpt, `step-${String(i).padStart(4, '0')}.bin`), weights(perFile, i + 1))
  const bytes = perFile * files
  const local = new LocalStore(join(root, 'cache-a'))
  const dir = await local.putDir(ckpt)
  const rec = makeRecord('train', { checkpoints: { ...dir, kind: 'dir' } })
  await local.putRun(rec)
  const lock: LockFile = {
    schema: 1,
    instances: { train: { stage: rec.stage, fingerprint: rec.fingerprint, breakdown: rec.breakdown, outputs: rec.outputs } },
  }
  const opts = { part_size_mb: String(partMb) }

  let t0 = performance.now()
  const pushed = await pushLock(lock, new TieredStore(local, s3TestStore(server.endpoint, 'ours', opts)))
  const pushS = (performance.now() - t0) / 1000
  t0 = performance.now()
  const pulled = await pullLock(lock, new TieredStore(new LocalStore(join(root, 'cache-b')), s3TestStore(server.endpoint, 'ours', opts)))
  const pullS = (performance.now() - t0) / 1000
  const problems = [...pushed.failures, ...pulled.failures]
  if (problems.length > 0) throw new Error(`bench transfers failed: ${problems.join('; ')}`)

  // The peer: the bare SDK, same files, part size and concurrency (4 files at once, 4 parts each).
  const raw = s3TestStore(server.endpoint, 'peer', opts).client
  const names = Array.from({ length: files }, (_, i) => `step-${String(i).padStart(4, '0')}.bin`)
  t0 = performance.now()
  await mapLimit(names, 4, (n) =>
    new Upload({
      client: raw,
      params: { Bucket: TEST_BUCKET, Key: `peer/${n}`, Body: createReadStream(join(ckpt, n)) },
      partSize: partMb << 20,
      queueSize: 4,
    }).done(),
  )
  const peerPushS = (performance.now() - t0) / 1000
  await mkdir(join(root, 'peer-out'))
  t0 = performance.now()
  await mapLimit(names, 4, async (n) => {
    const r = await raw.send(new GetObjectCommand({ Bucket: TEST_BUCKET, Key: `peer/${n}` }))
    await pipeline(r.Body as Readable, createWriteStream(join(root, 'peer-out', n)))
  })
  const peerPullS = (performance.now() - t0) / 1000

  const mbps = (s: number) => Number((bytes / 1e6 / s).toFixed(1))
  console.log(
    JSON.stringify({
      bench: 's3-throughput',
      mb: Number((bytes / 1e6).toFixed(1)),
      files,
      part_mb: partMb,
      push_mb_s: mbps(pushS),
      pull_mb_s: mbps(pullS),
      peer: 'bare @aws-sdk/lib-storage Upload + GetObject (no hashing or checks)',
      peer_push_mb_s: mbps(peerPushS),
      peer_pull_mb_s: mbps(peerPullS),
      server: 's3rver 3.7 (child process, loopback, path-style)',
      load_avg_1m: Number(loadavg()[0]!.toFixed(2)),
    }),
  )
} finally {
  await server.kill()
  await rm(root, { recursive: true, force: true })
}
