/**
 * Determinism (docs/architecture.md "Engine facts"): the same shapes on the same backend give bit-identical
 * gradients and HVPs across processes. Two separate `node --import tsx` children per backend compute a
 * chunked dataset gradient and HVP of a small AlexNet; their float32 bytes must be identical. The
 * initialisation is byte-identical across backends.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { buildModel, initParams } from '../../src/science/models.ts'

tf.env().set('IS_TEST', true)
const run = promisify(execFile)
const child = fileURLToPath(new URL('./fixtures/determinism-child.ts', import.meta.url))

async function bytesFrom(backend: 'cpu' | 'wasm'): Promise<Buffer> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', child, backend], { maxBuffer: 1 << 26 })
  return Buffer.from(stdout, 'base64')
}

for (const backend of ['cpu', 'wasm'] as const) {
  t.test(`${backend}: two processes give byte-identical gradients and HVPs`, async (t) => {
    const a = await bytesFrom(backend)
    const b = await bytesFrom(backend)
    const P = buildModel({ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 }).size
    t.equal(a.length, 2 * 4 * P, 'gradient and HVP, float32')
    t.ok(a.equals(b), 'identical bytes')
    const f = new Float32Array(a.buffer, a.byteOffset, a.length / 4)
    t.ok(f.some((x) => x !== 0) && f.every(Number.isFinite), 'finite and not all zero')
  })
}

t.test('initialisation is byte-identical on every backend', async (t) => {
  const m = buildModel({ arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 8 })
  await initEngine('cpu')
  const a = initParams(m, 9)
  await initEngine('wasm')
  const b = initParams(m, 9)
  t.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)))
})
