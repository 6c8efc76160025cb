/**
 * The webgpu backend (Dawn through Vulkan; in CI Mesa's software driver lavapipe) against the same
 * oracles as cpu and wasm, at small sizes (lavapipe is slow): a quadratic with a known Hessian, the
 * cross-entropy's exact Hessian in float64, five-point finite differences on smooth models, a full
 * Hessian column by column against cpu, cross-backend agreement of loss, gradient, HVP and top
 * eigenvalues, determinism within and across processes, the worker pool, flat memory over many
 * HVPs, the grouped AddN, device-error reporting, and the one-line refusal without a driver.
 * Without an adapter the file fails under CI=true (CI installs lavapipe) and skips otherwise.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import * as tf from '@tensorflow/tfjs'
import { initEngine } from '../../src/science/engine.ts'
import { scienceEnv } from '../../src/science/env-record.ts'
import { lanczos } from '../../src/science/eigen/lanczos.ts'
import { chunkGradientAsync, chunkHvpAsync, chunkLossAsync, chunks, hvp, type Chunk } from '../../src/science/hvp.ts'
import { crossEntropySum } from '../../src/science/loss.ts'
import { buildModel, initParams, type Model, type ModelSpec } from '../../src/science/models.ts'
import { createObjective } from '../../src/science/objective.ts'
import { createRng } from '../../src/science/rng.ts'
import { throwIfDeviceError, watchDevice } from '../../src/science/webgpu/errors.ts'
import { dot, makeChunk, relErr, unitVector } from './fixtures/oracles.ts'

tf.env().set('IS_TEST', true)
const run = promisify(execFile)
const child = fileURLToPath(new URL('./webgpu-fixtures/child.ts', import.meta.url))

const ready = await initEngine('webgpu').then(
  (info) => info,
  (e: unknown) => (e instanceof Error ? e.message : String(e)),
)
if (typeof ready === 'string') {
  if (process.env.CI === 'true') t.fail(`webgpu must run in CI (lavapipe is installed by .ci/run): ${ready}`)
  else t.plan(0, `skipped: no webgpu adapter here (${ready})`)
} else {
  await oracles(ready.versions)
}

/** Reads a tensor back with data() (webgpu has no dataSync in Node) and disposes it. */
async function read(x: tf.Tensor): Promise<Float32Array> {
  try {
    return (await x.data()) as Float32Array
  } finally {
    x.dispose()
  }
}

/** loss, gradient and HVP of one chunk on `backend` (async read backs work everywhere). */
async function products(backend: 'cpu' | 'webgpu', m: Model, theta: Float32Array, v: Float32Array, c: Chunk) {
  await initEngine(backend)
  return {
    loss: await chunkLossAsync(m, theta, c),
    grad: (await chunkGradientAsync(m, theta, c)).grad,
    hv: await chunkHvpAsync(m, theta, v, c),
  }
}

async function oracles(versions: Record<string, string>): Promise<void> {
  t.test('engine: versions and the numeric environment name Dawn, tfjs-backend-webgpu and the adapter', async (t) => {
    t.match(versions, { webgpu: /^\d+\.\d+\.\d+/, 'tfjs-backend-webgpu': /^\d+\.\d+\.\d+/, adapter: /^[^/]+\/[^/]+$/ })
    const env = scienceEnv('webgpu')
    t.equal(env.backend, 'webgpu')
    t.match(env.versions, { '@tensorflow/tfjs-core': /\d/, '@tensorflow/tfjs-backend-webgpu': /\d/, webgpu: /\d/ })
    t.equal(env.versions.adapter, versions.adapter, 'the probed adapter is the one the engine got')
  })

  t.test('quadratic 0.5 θᵀAθ + bᵀθ: Hv = Av to float32 rounding', async (t) => {
    await initEngine('webgpu')
    const P = 24
    const rng = createRng(1, 'quadratic')
    const A = new Float32Array(P * P)
    for (let i = 0; i < P; i++) for (let j = 0; j <= i; j++) A[i * P + j] = A[j * P + i] = rng.normal()
    const theta = new Float32Array(P).map(() => rng.normal())
    const v = new Float32Array(P).map(() => rng.normal())
    const At = tf.tensor2d(A, [P, P])
    const f = (th: tf.Tensor1D): tf.Scalar => tf.mul(0.5, tf.sum(tf.mul(th, tf.squeeze(tf.matMul(At, tf.reshape(th, [P, 1]))))))
    const hv = await read(tf.tidy(() => hvp(f, tf.tensor1d(theta), tf.tensor1d(v))))
    const want = new Float64Array(P)
    for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) want[i]! += A[i * P + j]! * v[j]!
    t.ok(relErr(hv, want) < 2e-6, `rel err ${relErr(hv, want).toExponential(2)}`)
    At.dispose()
  })

  t.test('cross-entropy: value, gradient and exact Hessian (diag p - p pᵀ) v against float64', async (t) => {
    await initEngine('webgpu')
    const [n, k] = [3, 4]
    const z = new Float32Array([1, 2, 3, 4, -1, 0.5, 0.25, 0, 100, 101, 99, -50])
    const y = new Int32Array([3, 0, 1])
    const v = new Float32Array([0.3, -1, 2, 0.5, 1, 1, -1, 0, 0.1, 0.2, -0.7, 1.5])
    const f = (th: tf.Tensor1D): tf.Scalar => crossEntropySum(tf.reshape(th, [n, k]) as tf.Tensor2D, y)
    let want = 0
    const hvWant = new Float64Array(n * k)
    for (let i = 0; i < n; i++) {
      const row = Array.from(z.subarray(i * k, (i + 1) * k))
      const m = Math.max(...row)
      const s = row.reduce((a, b) => a + Math.exp(b - m), 0)
      const p = row.map((a) => Math.exp(a - m) / s)
      want += m + Math.log(s) - row[y[i]!]!
      const pv = p.reduce((a, pj, j) => a + pj * v[i * k + j]!, 0)
      for (let j = 0; j < k; j++) hvWant[i * k + j] = p[j]! * v[i * k + j]! - p[j]! * pv
    }
    const value = (await read(tf.tidy(() => f(tf.tensor1d(z)))))[0]!
    t.ok(Math.abs(value - want) < 1e-5 * want, `loss ${value} vs ${want}`)
    const hv = await read(tf.tidy(() => hvp(f, tf.tensor1d(z), tf.tensor1d(v))))
    t.ok(relErr(hv, hvWant) < 1e-6, `HVP rel err ${relErr(hv, hvWant).toExponential(2)}`)
  })

  t.test('smooth models: HVP matches five-point finite differences of the gradient (rel err <= 1e-3)', async (t) => {
    await initEngine('webgpu')
    const specs: ModelSpec[] = [
      { arch: 'mlp', activation: 'tanh', inputShape: [4, 4, 1], classes: 3, hidden: [8, 8] },
      { arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 },
    ]
    for (const spec of specs) {
      const m = buildModel(spec)
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
      t.ok(relErr(hv, fd) <= 1e-3, `${spec.arch}-${spec.activation}: rel err ${relErr(hv, fd).toExponential(2)}`)
    }
  })

  t.test("a small model's full Hessian, column by column, equals cpu's and is symmetric", async (t) => {
    const m = buildModel({ arch: 'mlp', activation: 'tanh', inputShape: [2, 2, 1], classes: 3, hidden: [3] })
    const theta = initParams(m, 5)
    const c = makeChunk(m, 4, 6)
    const P = m.size
    const columns = async (backend: 'cpu' | 'webgpu'): Promise<Float64Array> => {
      await initEngine(backend)
      const H = new Float64Array(P * P)
      for (let j = 0; j < P; j++) {
        const e = new Float32Array(P)
        e[j] = 1
        H.set(await chunkHvpAsync(m, theta, e, c), j * P)
      }
      return H
    }
    const cpu = await columns('cpu')
    const gpu = await columns('webgpu')
    t.ok(relErr(gpu, cpu) <= 1e-5, `${P}x${P} Hessian rel err vs cpu ${relErr(gpu, cpu).toExponential(2)}`)
    let asym = 0
    for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) asym = Math.max(asym, Math.abs(gpu[i * P + j]! - gpu[j * P + i]!))
    t.ok(asym <= 1e-5 * Math.max(...gpu.map(Math.abs)), `max |H - Hᵀ| ${asym.toExponential(2)}`)
  })

  t.test('agreement with cpu: loss, gradient and HVP (rel err <= 1e-5), every architecture', async (t) => {
    const specs: ModelSpec[] = [
      { arch: 'mlp', activation: 'relu', inputShape: [6, 6, 1], classes: 10, hidden: [32, 32] },
      { arch: 'cnn', activation: 'relu', inputShape: [12, 12, 3], classes: 10, width: 0.5, pool: 'max' },
      { arch: 'alexnet', activation: 'relu', inputShape: [32, 32, 3], classes: 10, width: 1 / 16 },
      { arch: 'vgg16', activation: 'tanh', inputShape: [32, 32, 3], classes: 10, width: 1 / 32 },
    ]
    for (const spec of specs) {
      const m = buildModel(spec)
      const theta = initParams(m, 4)
      const c = makeChunk(m, 2, 8)
      const v = unitVector(m.size, 6)
      const a = await products('cpu', m, theta, v, c)
      const b = await products('webgpu', m, theta, v, c)
      const name = `${spec.arch}-${spec.activation}${spec.pool === 'max' ? '-maxpool' : ''}`
      const lossErr = Math.abs(a.loss - b.loss) / Math.abs(a.loss)
      t.ok(lossErr <= 1e-5, `${name}: loss rel err ${lossErr.toExponential(2)}`)
      t.ok(relErr(b.grad, a.grad) <= 1e-5, `${name}: gradient rel err ${relErr(b.grad, a.grad).toExponential(2)}`)
      t.ok(relErr(b.hv, a.hv) <= 1e-5, `${name}: HVP rel err ${relErr(b.hv, a.hv).toExponential(2)}`)
    }
  })

  t.test('top-3 Hessian eigenvalues by Lanczos agree with cpu (rel err <= 1e-4)', async (t) => {
    const m = buildModel({ arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 })
    const theta = initParams(m, 7)
    const c = makeChunk(m, 6, 7)
    const top = async (backend: 'cpu' | 'webgpu') => {
      await initEngine(backend)
      return lanczos((v) => chunkHvpAsync(m, theta, v, c), m.size, 3, { tol: 1e-5, seed: 1, maxMatvecs: 200 })
    }
    const a = await top('cpu')
    const b = await top('webgpu')
    for (let i = 0; i < 3; i++) {
      const err = Math.abs(a.values[i]! - b.values[i]!) / Math.abs(a.values[0]!)
      t.ok(
        err <= 1e-4,
        `lambda_${i + 1}: cpu ${a.values[i]!.toPrecision(8)}, webgpu ${b.values[i]!.toPrecision(8)}, rel err ${err.toExponential(2)}`,
      )
    }
  })

  t.test('determinism: repeated calls and two processes give identical bytes', async (t) => {
    await initEngine('webgpu')
    const m = buildModel({ arch: 'cnn', activation: 'relu', inputShape: [8, 8, 1], classes: 3, width: 0.25, pool: 'max' })
    const theta = initParams(m, 2)
    const c = makeChunk(m, 3, 4)
    const v = unitVector(m.size, 5)
    const first = await chunkHvpAsync(m, theta, v, c)
    const second = await chunkHvpAsync(m, theta, v, c)
    t.ok(Buffer.from(first.buffer).equals(Buffer.from(second.buffer)), 'same process: identical HVP bytes')
    const bytes = async () =>
      Buffer.from((await run(process.execPath, ['--import', 'tsx', child, 'bytes'], { maxBuffer: 1 << 26 })).stdout, 'base64')
    const [x, y] = [await bytes(), await bytes()]
    t.ok(x.length > 0 && x.equals(y), `two processes: identical gradient and HVP bytes (${x.length} bytes)`)
  })

  t.test('the worker pool on webgpu: one worker, the in-process bits, mean reduction', async (t) => {
    const spec: ModelSpec = { arch: 'cnn', activation: 'tanh', inputShape: [8, 8, 1], classes: 3, width: 0.25 }
    const m = buildModel(spec)
    const c = makeChunk(m, 5, 3)
    const data = { x: c.x, y: c.y, n: c.n, shape: [8, 8, 1] as [number, number, number] }
    const theta = initParams(m, 1)
    const v = unitVector(m.size, 2)
    await initEngine('webgpu')
    const acc = new Float64Array(m.size)
    for (const part of chunks(m, data, 2)) (await chunkHvpAsync(m, theta, v, part)).forEach((a, i) => (acc[i]! += a))
    const want = Float32Array.from(acc, (a) => a / data.n)
    const obj = await createObjective({ spec, data, chunkSize: 2, workers: 2, backend: 'webgpu' })
    try {
      t.equal(obj.backend, 'webgpu')
      t.equal(obj.workers, 1, 'one device, one worker')
      const hv = await obj.hvp(theta, v)
      t.ok(Buffer.from(hv.buffer).equals(Buffer.from(want.buffer)), 'bit-identical to the in-process sum')
    } finally {
      await obj.dispose()
    }
  })

  t.test('memory is flat: tensors and GPU buffers after 100 HVPs equal those after 10', async (t) => {
    await initEngine('webgpu')
    const m = buildModel({ arch: 'cnn', activation: 'relu', inputShape: [8, 8, 1], classes: 3, width: 0.25, pool: 'max' })
    const theta = initParams(m, 1)
    const c = makeChunk(m, 2, 1)
    const v = unitVector(m.size, 1)
    for (let i = 0; i < 10; i++) await chunkHvpAsync(m, theta, v, c)
    const before = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number }
    for (let i = 0; i < 90; i++) await chunkHvpAsync(m, theta, v, c)
    const after = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number }
    t.equal(after.numTensors, before.numTensors, `tensors: ${before.numTensors} -> ${after.numTensors}`)
    t.equal(after.numBytesInGPU, before.numBytesInGPU, `GPU bytes in use: ${before.numBytesInGPU} -> ${after.numBytesInGPU}`)
    t.ok(typeof after.numBytesAllocatedInGPU === 'number' && after.numBytesAllocatedInGPU > 0, 'the backend reports its buffer pool')
    t.equal(
      after.numBytesAllocatedInGPU,
      before.numBytesAllocatedInGPU,
      `GPU buffer pool: ${before.numBytesAllocatedInGPU} -> ${after.numBytesAllocatedInGPU} bytes`,
    )
  })

  t.test('AddN over more tensors than a shader may bind equals the cpu sum', async (t) => {
    const parts = Array.from({ length: 21 }, (_, i) => Float32Array.from({ length: 33 }, (_, j) => Math.sin(i * 33 + j)))
    const sum = async (backend: 'cpu' | 'webgpu') => {
      await initEngine(backend)
      return read(tf.tidy(() => tf.addN(parts.map((p) => tf.tensor1d(p)))))
    }
    const a = await sum('cpu')
    const b = await sum('webgpu')
    t.ok(relErr(b, a) <= 1e-6 && dot(a, a) > 0, `21 inputs: rel err ${relErr(b, a).toExponential(2)}`)
    t.doesNotThrow(() => throwIfDeviceError(), 'no device error')
  })

  t.test('a device error fails the next read back with one line', async (t) => {
    const device = new EventTarget()
    watchDevice(device as never)
    const event = Object.assign(new Event('uncapturederror'), { error: { message: 'shader broke\n - while validating' } })
    device.dispatchEvent(event)
    t.throws(() => throwIfDeviceError(), /^webgpu device error: shader broke$/)
    t.doesNotThrow(() => throwIfDeviceError(), 'reported once')
  })

  t.test("without a Vulkan driver, initEngine('webgpu') refuses in one line naming what is missing", async (t) => {
    const env = { ...process.env, VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' }
    const { stdout } = await run(process.execPath, ['--import', 'tsx', child, 'refuse'], { env })
    const lines = stdout.trim().split('\n')
    t.equal(lines.length, 1, 'one line')
    t.match(lines[0], /^backend 'webgpu': no Vulkan driver .*mesa-vulkan-drivers/)
  })
}
