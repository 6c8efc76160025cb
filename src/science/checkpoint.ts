/**
 * The checkpoint layout of the train stage (paper §4.1: snapshots every 1/eta iterations; §4.2:
 * every 100): one safetensors file per snapshot holding every parameter tensor under its
 * PyTorch-style name (`conv1.weight`, `fc.bias`, ...) IN PYTORCH'S LAYOUT (conv weight
 * [cout, cin, kh, kw], dense weight [out, in], bias [out]), so `model.load_state_dict({k:
 * torch.from_numpy(v)})` works for a torch module built from the spec in the metadata. The
 * `__metadata__` carries `format` ("cusp-checkpoint/1"), `layout` ("pytorch"), `spec` (the
 * ModelSpec as JSON: arch, activation, classes, inputShape [h, w, c], ...), `input` (how images
 * enter: NCHW for convs; an MLP flattens its image in NHWC order, see models.ts), `iteration`,
 * and any extra string fields. Pure: bytes in, bytes out (the stage does the file I/O).
 * The permutations are exact, so decode(encode(θ)) === θ bit for bit, which resume relies on.
 */
import { decodeSafetensors, encodeSafetensors, tensor, type Tensor } from '../data/safetensors.ts'
import { buildModel, type ModelSpec, type ParamSpec } from './models.ts'

export const CHECKPOINT_FORMAT = 'cusp-checkpoint/1'

/** What a checkpoint holds besides the weights. */
export interface CheckpointMeta {
  spec: ModelSpec
  iteration: number
  /** Further string metadata (e.g. eta, t = sum of step sizes, loss). */
  extra?: Record<string, string>
}

/** One parameter tensor from cusp's flat θ (tfjs layout) to PyTorch's layout. */
function toTorch(p: ParamSpec, theta: Float32Array): Tensor {
  const n = p.shape.reduce((a, b) => a * b, 1)
  const src = theta.subarray(p.offset, p.offset + n)
  if (p.shape.length === 4) {
    const [kh, kw, cin, cout] = p.shape as [number, number, number, number]
    const out = new Float32Array(n) // [cout, cin, kh, kw]
    for (let a = 0; a < kh; a++)
      for (let b = 0; b < kw; b++)
        for (let c = 0; c < cin; c++)
          for (let d = 0; d < cout; d++) out[((d * cin + c) * kh + a) * kw + b] = src[((a * kw + b) * cin + c) * cout + d]!
    return tensor.f32([cout, cin, kh, kw], out)
  }
  if (p.shape.length === 2) {
    const [inn, outn] = p.shape as [number, number]
    const out = new Float32Array(n) // [out, in]
    for (let i = 0; i < inn; i++) for (let o = 0; o < outn; o++) out[o * inn + i] = src[i * outn + o]!
    return tensor.f32([outn, inn], out)
  }
  return tensor.f32([...p.shape], src.slice())
}

/** The inverse of toTorch, written into θ at p.offset. */
function fromTorch(p: ParamSpec, t: Tensor, theta: Float32Array, file: string): void {
  if (t.dtype !== 'F32') throw new Error(`${file}: ${p.name} is ${t.dtype}, expected F32`)
  const want =
    p.shape.length === 4 ? [p.shape[3], p.shape[2], p.shape[0], p.shape[1]] : p.shape.length === 2 ? [p.shape[1], p.shape[0]] : p.shape
  if (t.shape.join() !== want.join())
    throw new Error(`${file}: ${p.name} has shape [${t.shape.join(',')}], the spec needs [${want.join(',')}]`)
  const src = t.data
  const dst = theta.subarray(p.offset)
  if (p.shape.length === 4) {
    const [kh, kw, cin, cout] = p.shape as [number, number, number, number]
    for (let a = 0; a < kh; a++)
      for (let b = 0; b < kw; b++)
        for (let c = 0; c < cin; c++)
          for (let d = 0; d < cout; d++) dst[((a * kw + b) * cin + c) * cout + d] = src[((d * cin + c) * kh + a) * kw + b]!
  } else if (p.shape.length === 2) {
    const [inn, outn] = p.shape as [number, number]
    for (let i = 0; i < inn; i++) for (let o = 0; o < outn; o++) dst[i * outn + o] = src[o * inn + i]!
  } else {
    dst.set(src)
  }
}

/** Safetensors bytes for θ [P] of `meta.spec` (see the module comment for the layout). */
export function encodeCheckpoint(theta: Float32Array, meta: CheckpointMeta): Uint8Array {
  const model = buildModel(meta.spec)
  if (theta.length !== model.size) throw new RangeError(`encodeCheckpoint: theta has ${theta.length} entries, the spec needs ${model.size}`)
  const tensors: Record<string, Tensor> = {}
  for (const p of model.params) tensors[p.name] = toTorch(p, theta)
  const conv = meta.spec.arch !== 'mlp'
  const metadata: Record<string, string> = {
    ...(meta.extra ?? {}),
    format: CHECKPOINT_FORMAT,
    layout: 'pytorch',
    spec: JSON.stringify(meta.spec),
    input: conv ? 'NCHW image' : 'image flattened in NHWC (h, w, c) order',
    iteration: String(meta.iteration),
  }
  return encodeSafetensors(tensors, metadata)
}

/** A decoded checkpoint: the spec, θ in cusp's flat layout, and its metadata. */
export interface Checkpoint {
  spec: ModelSpec
  theta: Float32Array
  iteration: number
  metadata: Record<string, string>
}

/** Decodes checkpoint bytes; throws naming `file` when the format, spec or a tensor is wrong. */
export function decodeCheckpoint(bytes: Uint8Array, file = '<checkpoint>'): Checkpoint {
  const { tensors, metadata } = decodeSafetensors(bytes, file)
  if (metadata.format !== CHECKPOINT_FORMAT)
    throw new Error(`${file}: not a ${CHECKPOINT_FORMAT} file (format ${JSON.stringify(metadata.format)})`)
  const spec = JSON.parse(metadata.spec ?? 'null') as ModelSpec | null
  if (spec === null || typeof spec !== 'object') throw new Error(`${file}: metadata has no model spec`)
  const model = buildModel(spec)
  const theta = new Float32Array(model.size)
  for (const p of model.params) {
    const t = tensors[p.name]
    if (t === undefined) throw new Error(`${file}: tensor ${p.name} is missing`)
    fromTorch(p, t, theta, file)
  }
  const extra = Object.keys(tensors).filter((k) => !model.params.some((p) => p.name === k))
  if (extra.length > 0) throw new Error(`${file}: unexpected tensors ${extra.join(', ')}`)
  return { spec, theta, iteration: Number(metadata.iteration ?? NaN), metadata }
}
