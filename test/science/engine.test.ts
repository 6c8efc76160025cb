/**
 * Backend selection and cross-backend agreement: initEngine picks what is installed ('auto' falls
 * back to wasm here, where tfjs-node cannot be installed), is idempotent, reports versions for the
 * fingerprint, and rejects an unavailable explicit choice. The same loss, gradient and HVP computed
 * on cpu (tfjs's reference kernels) and on wasm (with cusp's kernel replacements) agree to 1e-5.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { chunkGradient, chunkHvp, chunkLoss } from '../../src/science/hvp.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { makeChunk, relErr, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)

async function nativeInstalled(): Promise<boolean> {
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(name)
      return true
    } catch {
      // absent
    }
  }
  return false
}

t.test('initEngine: explicit choices, idempotence, versions', async (t) => {
  const cpu = await initEngine('cpu')
  t.equal(cpu.backend, 'cpu')
  t.equal(tf.getBackend(), 'cpu')
  t.match(cpu.versions, { 'tfjs-core': /^\d+\.\d+\.\d+/ })
  t.same(await initEngine('cpu'), cpu, 'same choice, same answer')
  const wasm = await initEngine('wasm')
  t.equal(wasm.backend, 'wasm')
  t.match(wasm.versions, { 'tfjs-backend-wasm': /^\d+\.\d+\.\d+/ })
  const auto = await initEngine()
  t.equal(auto.backend, (await nativeInstalled()) ? 'tensorflow' : 'wasm', "'auto' prefers tfjs-node, then wasm")
  if (!(await nativeInstalled())) await t.rejects(initEngine('tensorflow'), /tfjs-node/)
})

t.test('cpu and wasm agree on loss, gradient and HVP (rel err <= 1e-5)', async (t) => {
  const specs: ModelSpec[] = [
    { arch: 'mlp', activation: 'tanh', inputShape: [6, 6, 1], classes: 10, hidden: [32, 32] },
    { arch: 'mlp', activation: 'relu', inputShape: [6, 6, 1], classes: 10, hidden: [32, 32] },
    { arch: 'cnn', activation: 'tanh', inputShape: [12, 12, 1], classes: 10, width: 0.5 },
    { arch: 'cnn', activation: 'relu', inputShape: [12, 12, 3], classes: 10, width: 0.5, pool: 'max' },
    { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
    { arch: 'alexnet', activation: 'tanh', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
    { arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
    { arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10 }, // the reference CNN, full size
  ]
  for (const spec of specs) {
    const m = buildModel(spec)
    const theta = initParams(m, 4)
    const c = makeChunk(m, 2, 8)
    const v = unitVector(m.size, 6)
    const run = async (backend: 'cpu' | 'wasm') => {
      await initEngine(backend)
      return { loss: chunkLoss(m, theta, c), grad: chunkGradient(m, theta, c).grad, hv: chunkHvp(m, theta, v, c) }
    }
    const a = await run('cpu')
    const b = await run('wasm')
    const name = `${spec.arch}-${spec.activation}${spec.pool === 'max' ? '-maxpool' : ''}`
    t.ok(Math.abs(a.loss - b.loss) <= 1e-5 * Math.abs(a.loss), `${name}: loss ${a.loss} vs ${b.loss}`)
    t.ok(relErr(b.grad, a.grad) <= 1e-5, `${name}: gradient rel err ${relErr(b.grad, a.grad).toExponential(2)}`)
    t.ok(relErr(b.hv, a.hv) <= 1e-5, `${name}: HVP rel err ${relErr(b.hv, a.hv).toExponential(2)}`)
  }
})
