/**
 * The webgpu oracle subset as a plain script (no test runner, so it also runs bundled on a GPU machine
 * that has only node: scripts/gpu-pack.sh): cross-backend agreement with cpu of loss, gradient and HVP
 * (reference CNN at full size, AlexNet-CIFAR and VGG-16 narrowed, a tanh MLP), a quadratic with a
 * known Hessian, five-point finite differences on a smooth CNN, top-3 eigenvalues by Lanczos against
 * cpu, identical bytes on repeated calls, and flat memory over 200 HVPs. test/science/webgpu.test.ts
 * holds the full set. Prints one line per check with its figure, then one JSON line; exit 1 on a failure.
 */
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../src/science/engine.ts'
import { lanczos } from '../src/science/eigen/lanczos.ts'
import { chunkGradientAsync, chunkHvpAsync, chunkLossAsync, hvp, type Chunk } from '../src/science/hvp.ts'
import { buildModel, initParams, type Model, type ModelSpec } from '../src/science/models.ts'
import { createRng } from '../src/science/rng.ts'
import { makeChunk, relErr, unitVector } from '../test/science/fixtures/oracles.ts'

const results: { check: string; value: number; limit: number; ok: boolean }[] = []
function check(name: string, value: number, limit: number): void {
  const ok = Number.isFinite(value) && value <= limit
  results.push({ check: name, value, limit, ok })
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${value.toExponential(2)} (limit ${limit.toExponential(0)})`)
}

async function products(backend: 'cpu' | 'webgpu', m: Model, theta: Float32Array, v: Float32Array, c: Chunk) {
  await initEngine(backend)
  return {
    loss: await chunkLossAsync(m, theta, c),
    grad: (await chunkGradientAsync(m, theta, c)).grad,
    hv: await chunkHvpAsync(m, theta, v, c),
  }
}

const info = await initEngine('webgpu')
console.log(`adapter ${info.versions.adapter}, webgpu ${info.versions.webgpu}, tfjs-backend-webgpu ${info.versions['tfjs-backend-webgpu']}`)

const specs: [ModelSpec, number][] = [
  [{ arch: 'cnn', activation: 'relu', inputShape: [28, 28, 1], classes: 10 }, 8],
  [{ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 4 }, 4],
  [{ arch: 'vgg16', activation: 'tanh', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 }, 2],
  [{ arch: 'mlp', activation: 'tanh', inputShape: [6, 6, 1], classes: 10, hidden: [32, 32] }, 8],
]
for (const [spec, n] of specs) {
  const m = buildModel(spec)
  const theta = initParams(m, 4)
  const c = makeChunk(m, n, 8)
  const v = unitVector(m.size, 6)
  const a = await products('cpu', m, theta, v, c)
  const b = await products('webgpu', m, theta, v, c)
  const name = `${spec.arch}-${spec.activation} (${m.size} params) vs cpu`
  check(`${name}: loss rel err`, Math.abs(a.loss - b.loss) / Math.abs(a.loss), 1e-5)
  check(`${name}: gradient rel err`, relErr(b.grad, a.grad), 1e-5)
  check(`${name}: HVP rel err`, relErr(b.hv, a.hv), 1e-5)
}

await initEngine('webgpu')
{
  const P = 24
  const rng = createRng(1, 'quadratic')
  const A = new Float32Array(P * P)
  for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) A[i * P + j] = A[j * P + i] = rng.normal()
  const theta = new Float32Array(P).map(() => rng.normal())
  const v = new Float32Array(P).map(() => rng.normal())
  const At = tf.tensor2d(A, [P, P])
  const f = (th: tf.Tensor1D): tf.Scalar => tf.mul(0.5, tf.sum(tf.mul(th, tf.squeeze(tf.matMul(At, tf.reshape(th, [P, 1]))))))
  const out = tf.tidy(() => hvp(f, tf.tensor1d(theta), tf.tensor1d(v)))
  const hv = (await out.data()) as Float32Array
  tf.dispose([out, At])
  const want = new Float64Array(P)
  for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) want[i]! += A[i * P + j]! * v[j]!
  check('quadratic: Hv vs Av rel err', relErr(hv, want), 2e-6)
}
{
  const m = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 })
  const theta = initParams(m, 3)
  const c = makeChunk(m, 3, 5)
  const v = unitVector(m.size, 9)
  const hv = await chunkHvpAsync(m, theta, v, c)
  const eps = 3e-2
  const at = async (s: number) =>
    (
      await chunkGradientAsync(
        m,
        Float32Array.from(theta, (a, i) => a + s * v[i]!),
        c,
      )
    ).grad
  const [p1, m1, p2, m2] = [await at(eps), await at(-eps), await at(2 * eps), await at(-2 * eps)]
  const fd = Float64Array.from(p1, (_, i) => (8 * (p1[i]! - m1[i]!) - (p2[i]! - m2[i]!)) / (12 * eps))
  check('tanh CNN: HVP vs five-point finite differences rel err', relErr(hv, fd), 1e-3)
}
{
  const m = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 })
  const theta = initParams(m, 7)
  const c = makeChunk(m, 6, 7)
  const top = async (backend: 'cpu' | 'webgpu') => {
    await initEngine(backend)
    return lanczos((v) => chunkHvpAsync(m, theta, v, c), m.size, 3, { tol: 1e-5, seed: 1, maxMatvecs: 200 })
  }
  const a = await top('cpu')
  const b = await top('webgpu')
  for (let i = 0; i < 3; i++)
    check(
      `lambda_${i + 1} vs cpu rel err (cpu ${a.values[i]!.toPrecision(7)})`,
      Math.abs(a.values[i]! - b.values[i]!) / Math.abs(a.values[0]!),
      1e-4,
    )
}
{
  await initEngine('webgpu')
  const m = buildModel({ arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 8 })
  const theta = initParams(m, 2)
  const c = makeChunk(m, 4, 4)
  const v = unitVector(m.size, 5)
  const first = await chunkHvpAsync(m, theta, v, c)
  let differing = 0
  for (let i = 0; i < 200; i++) {
    const again = await chunkHvpAsync(m, theta, v, c)
    if (i === 9 || i === 199) {
      const mem = tf.memory() as tf.MemoryInfo & { numBytesAllocatedInGPU?: number }
      console.log(`     after ${i + 1} HVPs: ${mem.numTensors} tensors, ${mem.numBytesAllocatedInGPU ?? '?'} bytes in the GPU buffer pool`)
      if (i === 9) results.push({ check: 'memory@10', value: mem.numTensors, limit: mem.numBytesAllocatedInGPU ?? 0, ok: true })
      else {
        const at10 = results.find((r) => r.check === 'memory@10')!
        check('tensors after 200 HVPs minus after 10', mem.numTensors - at10.value, 0)
        check('GPU buffer pool bytes after 200 HVPs minus after 10', (mem.numBytesAllocatedInGPU ?? 0) - at10.limit, 0)
      }
    }
    if (!Buffer.from(again.buffer).equals(Buffer.from(first.buffer))) differing++
  }
  check('repeated HVPs with bytes differing from the first', differing, 0)
}
const failed = results.filter((r) => !r.ok)
console.log(
  JSON.stringify({
    oracles: 'webgpu',
    adapter: info.versions.adapter,
    passed: results.length - failed.length,
    failed: failed.length,
    failures: failed.map((f) => f.check),
  }),
)
process.exit(failed.length === 0 ? 0 : 1)
