/**
 * HVPs of networks with kinks (ReLU, max pools) against the frozen-pattern surrogate, on the cpu
 * backend. Finite differences of the network itself cross kinks (arg-max switches, ReLU sign changes)
 * and are no oracle there (docs/architecture.md "Engine facts"). The surrogate freezes, at θ0, each ReLU's mask
 * and each max pool's arg-max: it is smooth and has the network's gradient and Hessian at θ0, so five-
 * point differences of ITS gradient are. Tanh AlexNet/VGG need it too: their max pools are kinks.
 * A tiny ReLU network's full Hessian is also assembled column by column and compared.
 */
import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { chunkGradient, chunkHvp } from '../../src/science/hvp.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'
import { fdHvp, frozenSurrogate, makeChunk, relErr, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
await initEngine('cpu')

t.test('ReLU / max-pool networks: HVP matches finite differences of the frozen surrogate (rel err <= 1e-3)', async (t) => {
  const cases: [ModelSpec, number][] = [
    [{ arch: 'mlp', activation: 'relu', inputShape: [4, 4, 1], classes: 3, hidden: [8, 8] }, 3],
    [{ arch: 'cnn', activation: 'relu', inputShape: [8, 8, 1], classes: 3, width: 0.25, pool: 'max' }, 3],
    [{ arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 2], classes: 3, width: 0.25, pool: 'max' }, 3],
    [{ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 3, width: 1 / 16 }, 2],
    [{ arch: 'alexnet', activation: 'tanh', inputShape: [32, 32, 3], classes: 3, width: 1 / 16 }, 2],
    [{ arch: 'vgg16', activation: 'relu', inputShape: [32, 32, 3], classes: 3, width: 1 / 16 }, 1],
    [{ arch: 'vgg16', activation: 'tanh', inputShape: [32, 32, 3], classes: 3, width: 1 / 32 }, 1],
  ]
  for (const [spec, n] of cases) {
    const m = buildModel(spec)
    const theta = initParams(m, 3)
    const c = makeChunk(m, n, 5)
    const v = unitVector(m.size, 9)
    const hv = chunkHvp(m, theta, v, c)
    const sur = frozenSurrogate(m, theta, c)
    const g0 = chunkGradient(m, theta, c).grad
    t.ok(relErr(sur.grad(theta), g0) < 1e-6, `${spec.arch}-${spec.activation}: surrogate has the network's gradient at θ0`)
    const eps = spec.activation === 'relu' ? 0.1 : 1e-2 // ReLU surrogates are smooth but for the loss: larger steps
    const fd = fdHvp(sur.grad, theta, v, eps)
    const err = relErr(hv, fd)
    t.ok(err <= 1e-3, `${spec.arch}-${spec.activation} (${m.size} params): rel err ${err.toExponential(2)}`)
    sur.dispose()
  }
})

t.test("tiny ReLU CNN with max pools: full Hessian, column by column, equals the surrogate's", async (t) => {
  const m = buildModel({ arch: 'cnn', activation: 'relu', inputShape: [4, 4, 1], classes: 2, width: 1 / 16, pool: 'max' })
  t.equal(m.size, 9 + 1 + 9 * 2 + 2 + 2 * 2 + 2, '1 and 2 channels, 1x1 features: 36 parameters')
  const theta = initParams(m, 21)
  const c = makeChunk(m, 4, 2)
  const sur = frozenSurrogate(m, theta, c)
  const P = m.size
  const H = new Float64Array(P * P)
  const F = new Float64Array(P * P)
  for (let j = 0; j < P; j++) {
    const e = new Float32Array(P)
    e[j] = 1
    H.set(chunkHvp(m, theta, e, c), j * P)
    F.set(fdHvp(sur.grad, theta, e, 0.05), j * P)
  }
  sur.dispose()
  t.ok(relErr(H, F) < 1e-3, `||H - H_fd|| / ||H_fd|| = ${relErr(H, F).toExponential(2)}`)
  let asym = 0
  let norm = 0
  for (let i = 0; i < P; i++)
    for (let j = 0; j < P; j++) {
      asym += (H[i * P + j]! - H[j * P + i]!) ** 2
      norm += H[i * P + j]! ** 2
    }
  t.ok(Math.sqrt(asym / norm) < 1e-6, `H is symmetric: ${Math.sqrt(asym / norm).toExponential(2)}`)
  t.ok(norm > 0, 'and not zero')
})
