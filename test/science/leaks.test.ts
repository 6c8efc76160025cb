/**
 * Memory stays flat: every tensor the engine creates is disposed inside the call. The live tensor
 * count (tf.memory().numTensors) after 1,000 HVPs equals that after 10, on cpu and wasm, for the
 * tensor-level hvp inside a tidy and for the plain-array chunk and dataset functions; a failing call
 * (bad input) leaks nothing either.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { chunkGradient, chunkHvp, chunkLoss, datasetHvp, hvp } from '../../src/science/hvp.ts'
import { crossEntropySum } from '../../src/science/loss.ts'
import { buildModel, initParams } from '../../src/science/models.ts'
import { makeChunk, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)

for (const backend of ['cpu', 'wasm'] as const) {
  t.test(`${backend}: tensor count after 1,000 HVPs equals that after 10`, async (t) => {
    await initEngine(backend)
    const m = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [4, 4, 1], classes: 2, width: 1 / 16, pool: 'max' })
    const theta = initParams(m, 1)
    const c = makeChunk(m, 2, 1)
    const v = unitVector(m.size, 2)
    const [h, w, ch] = m.spec.inputShape
    const thetaT = tf.tensor1d(theta)
    const vT = tf.tensor1d(v)
    const xT = tf.tensor4d(c.x, [c.n, h, w, ch])
    const yT = tf.tensor1d(c.y, 'int32')
    // Alternate the tensor-level hvp (inside a tidy) and the plain-array chunkHvp.
    const once = (i: number): void => {
      if (i % 2 === 0) tf.dispose(tf.tidy(() => hvp((th) => crossEntropySum(m.forward(th, xT), yT), thetaT, vT)))
      else chunkHvp(m, theta, v, c)
    }
    for (let i = 0; i < 10; i++) once(i)
    const after10 = tf.memory().numTensors
    const bytes10 = tf.memory().numBytes
    for (let i = 10; i < 1000; i++) once(i)
    t.equal(tf.memory().numTensors, after10, `hvp / chunkHvp: ${after10} live tensors after 10 and after 1,000`)
    t.equal(tf.memory().numBytes, bytes10, 'and the same number of bytes')
    for (let i = 0; i < 50; i++) {
      chunkLoss(m, theta, c)
      chunkGradient(m, theta, c)
      datasetHvp(m, theta, v, { x: c.x, y: c.y, n: c.n, shape: [h, w, ch] }, { chunkSize: 1 })
    }
    t.equal(tf.memory().numTensors, after10, 'chunkLoss, chunkGradient, datasetHvp leave nothing behind')
    t.throws(() => chunkHvp(m, theta, v, { ...c, n: 3 }))
    t.equal(tf.memory().numTensors, after10, 'a failing call leaves nothing behind')
    tf.dispose([thetaT, vT, xT, yT])
  })
}
