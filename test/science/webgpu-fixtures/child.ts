/**
 * Child process for webgpu.test.ts. `bytes`: on webgpu, the chunked gradient and HVP of a small
 * AlexNet (float32 bytes, base64 on stdout) so the parent compares two processes byte for byte.
 * `refuse`: prints the message initEngine('webgpu') rejects with (run with no Vulkan driver).
 */
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../../src/science/engine.ts'
import { chunkGradientAsync, chunkHvpAsync, chunks } from '../../../src/science/hvp.ts'
import { buildModel, initParams } from '../../../src/science/models.ts'
import { makeChunk, unitVector } from '../fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
if (process.argv[2] === 'refuse') {
  try {
    await initEngine('webgpu')
    process.stdout.write('initialised\n')
  } catch (e: unknown) {
    process.stdout.write(`${e instanceof Error ? e.message : String(e)}\n`)
  }
} else {
  await initEngine('webgpu')
  const m = buildModel({ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 })
  const theta = initParams(m, 1)
  const c = makeChunk(m, 4, 2)
  const data = { x: c.x, y: c.y, n: c.n, shape: [32, 32, 3] as [number, number, number] }
  const v = unitVector(m.size, 3)
  const out: Buffer[] = []
  for (const part of chunks(m, data, 2)) {
    out.push(Buffer.from((await chunkGradientAsync(m, theta, part)).grad.buffer))
    out.push(Buffer.from((await chunkHvpAsync(m, theta, v, part)).buffer))
  }
  process.stdout.write(Buffer.concat(out).toString('base64'))
}
