// Checkpoint layout (src/science/checkpoint.ts) and the science env record (src/science/env-record.ts).
import t from 'tap'
import { decodeSafetensors, encodeSafetensors } from '../../src/data/safetensors.ts'
import { decodeCheckpoint, encodeCheckpoint } from '../../src/science/checkpoint.ts'
import { envForInstance, installedVersion, predictedBackend, scienceEnv } from '../../src/science/env-record.ts'
import { buildModel, initParams, type ModelSpec } from '../../src/science/models.ts'

const cnn: ModelSpec = { arch: 'cnn', activation: 'relu', inputShape: [8, 8, 1], classes: 3, width: 0.25 }
const mlp: ModelSpec = { arch: 'mlp', activation: 'tanh', inputShape: [4, 4, 2], classes: 5, hidden: [7] }

t.test('encode/decode round trip is bit-exact and keeps the metadata', (t) => {
  for (const spec of [cnn, mlp]) {
    const model = buildModel(spec)
    const theta = initParams(model, 3)
    for (let i = 0; i < theta.length; i += 7) theta[i] = theta[i]! + 0.01 * i // biases too
    const bytes = encodeCheckpoint(theta, { spec, iteration: 42, extra: { eta: '0.02' } })
    const back = decodeCheckpoint(bytes)
    t.same(Buffer.from(back.theta.buffer), Buffer.from(theta.buffer), `${spec.arch}: θ bytes`)
    t.same(back.spec, spec)
    t.equal(back.iteration, 42)
    t.equal(back.metadata.eta, '0.02')
    t.equal(back.metadata.layout, 'pytorch')
    t.same(encodeCheckpoint(theta, { spec, iteration: 42, extra: { eta: '0.02' } }), bytes, 'deterministic bytes')
  }
  t.end()
})

t.test('tensors are in PyTorch layout: conv [cout, cin, kh, kw], dense [out, in]', (t) => {
  const model = buildModel(cnn)
  const theta = new Float32Array(model.size).map((_, i) => i) // each entry its own index
  const { tensors } = decodeSafetensors(encodeCheckpoint(theta, { spec: cnn, iteration: 0 }))
  let checkedConv = false
  let checkedDense = false
  for (const p of model.params) {
    const tt = tensors[p.name]!
    t.ok(tt, p.name)
    if (p.shape.length === 4) {
      const [kh, kw, cin, cout] = p.shape as [number, number, number, number]
      t.same(tt.shape, [cout, cin, kh, kw], `${p.name} shape`)
      const a = kh - 1,
        b = 0,
        c = cin - 1,
        d = cout - 1 // one off-diagonal element, by hand
      t.equal(tt.data[((d * cin + c) * kh + a) * kw + b], p.offset + ((a * kw + b) * cin + c) * cout + d, `${p.name}[d,c,a,b] = θ[a,b,c,d]`)
      checkedConv = true
    } else if (p.shape.length === 2) {
      const [inn, outn] = p.shape as [number, number]
      t.same(tt.shape, [outn, inn])
      t.equal(tt.data[1 * inn + 2], p.offset + 2 * outn + 1, `${p.name}[1, 2] = θ[2, 1]`)
      checkedDense = true
    }
  }
  t.ok(checkedConv && checkedDense)
  t.end()
})

t.test('decode rejects a wrong format, a missing tensor, a wrong shape', (t) => {
  const model = buildModel(mlp)
  const good = encodeCheckpoint(initParams(model, 0), { spec: mlp, iteration: 1 })
  const { tensors, metadata } = decodeSafetensors(good)
  t.throws(() => decodeCheckpoint(good.slice(0, 8)), 'truncated')
  t.throws(() => decodeCheckpoint(encodeSafetensors(tensors, { ...metadata, format: 'other' })), /not a cusp-checkpoint/)
  const { ['fc1.bias']: _dropped, ...fewer } = tensors
  t.ok(_dropped, 'fc1.bias exists in the mlp layout')
  t.throws(() => decodeCheckpoint(encodeSafetensors(fewer, metadata), 'x.safetensors'), /x.safetensors: tensor fc1.bias is missing/)
  const wider = JSON.stringify({ ...mlp, hidden: [8] })
  t.throws(() => decodeCheckpoint(encodeSafetensors(tensors, { ...metadata, spec: wider })), /has shape/)
  t.end()
})

t.test('scienceEnv: the backend auto would pick here and the tfjs versions, without initialising tfjs', (t) => {
  const wasm = installedVersion('@tensorflow/tfjs-backend-wasm')
  t.ok(wasm, 'wasm backend installed in this checkout')
  t.equal(predictedBackend('auto'), installedVersion('@tensorflow/tfjs-node') ? 'tensorflow' : 'wasm')
  const auto = scienceEnv('auto')
  t.equal(auto.backend, 'wasm')
  t.same(auto.versions, { '@tensorflow/tfjs-backend-wasm': wasm, '@tensorflow/tfjs-core': installedVersion('@tensorflow/tfjs-core') })
  const cpu = scienceEnv('cpu')
  t.equal(cpu.backend, 'cpu')
  t.equal(cpu.versions.node, process.versions.node.split('.')[0])
  t.ok(cpu.versions['@tensorflow/tfjs-backend-cpu'])
  t.not(JSON.stringify(cpu), JSON.stringify(auto), 'different backends never alias')
  t.same(envForInstance({ params: {} }), { backend: 'none', versions: {} }, 'no backend param: not a science stage')
  t.same(envForInstance({ params: { backend: 'cpu' } }), cpu)
  t.same(envForInstance({ params: { backend: 'auto', k: 20 } }), auto)
  t.equal(installedVersion('surely-not-a-package-xyz'), undefined)
  t.end()
})
