import t from 'tap'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  tensor,
  writeSafetensors,
  type Tensor,
} from '../../src/data/safetensors.ts'
import { DataFormatError } from '../../src/data/errors.ts'

const sample = (): Record<string, Tensor> => ({
  x: tensor.f32([2, 2, 3, 1], Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 1.25)),
  y: tensor.i32([2], Int32Array.from([7, -3])),
  w: tensor.f64([3], Float64Array.from([Math.PI, -0, 1e-300])),
  big: tensor.i64([2], BigInt64Array.from([2n ** 62n, -5n])),
  raw: tensor.u8([5], Uint8Array.from([0, 1, 127, 128, 255])),
  empty: tensor.f32([0, 4], new Float32Array(0)),
})

function header(bytes: Uint8Array): { n: number; json: Record<string, unknown> } {
  const n = Number(Buffer.from(bytes).readBigUInt64LE(0))
  return { n, json: JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Record<string, unknown> }
}

/** A file with a hand-written header (for the strictness tests). */
function craft(head: unknown, dataBytes: number): Uint8Array {
  const json = Buffer.from(typeof head === 'string' ? head : JSON.stringify(head))
  const out = Buffer.alloc(8 + json.length + dataBytes)
  out.writeBigUInt64LE(BigInt(json.length), 0)
  json.copy(out, 8)
  return out
}

t.test('round trip of every dtype, with metadata', async (t) => {
  const bytes = encodeSafetensors(sample(), { source: 'test', b: '2' })
  const back = decodeSafetensors(bytes)
  t.same(back.metadata, { b: '2', source: 'test' })
  for (const [name, tt] of Object.entries(sample())) {
    const got = back.tensors[name]
    t.ok(got, name)
    t.equal(got!.dtype, tt.dtype, `${name} dtype`)
    t.same(got!.shape, tt.shape, `${name} shape`)
    t.same(Array.from(got!.data as ArrayLike<number | bigint>), Array.from(tt.data as ArrayLike<number | bigint>), `${name} data`)
  }
  t.ok(Object.is((back.tensors.w!.data as Float64Array)[1], -0), 'negative zero survives')
})

t.test('bytes are deterministic: sorted keys, no whitespace, header padded to 8, aligned data', async (t) => {
  const a = encodeSafetensors(sample(), { z: '1', a: '2' })
  const reordered: Record<string, Tensor> = {}
  for (const k of Object.keys(sample()).reverse()) reordered[k] = sample()[k]!
  const b = encodeSafetensors(reordered, { a: '2', z: '1' })
  t.equal(createHash('sha256').update(a).digest('hex'), createHash('sha256').update(b).digest('hex'))
  const { n, json } = header(a)
  t.equal(n % 8, 0, 'header length is a multiple of 8')
  const text = Buffer.from(a.subarray(8, 8 + n)).toString('utf8').trimEnd()
  t.notMatch(text, /\s/, 'no whitespace inside the JSON')
  t.same(Object.keys(json), Object.keys(json).sort(), 'keys sorted')
  // 8-byte dtypes first: big and w start on 8-byte boundaries of the data section.
  const offs = (k: string): number[] => (json[k] as { data_offsets: number[] }).data_offsets
  t.equal(offs('big')[0]! % 8, 0)
  t.equal(offs('w')[0]! % 8, 0)
  t.equal(offs('x')[0]! % 4, 0)
})

t.test('file round trip via writeSafetensors/readSafetensors', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'd.safetensors')
  await writeSafetensors(path, sample())
  const back = await readSafetensors(path)
  t.same(Array.from(back.tensors.y!.data as Int32Array), [7, -3])
})

t.test('strict validation: each malformation is a DataFormatError naming the file', async (t) => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }
  const cases: [string, Uint8Array, RegExp][] = [
    ['too short', new Uint8Array(5), /shorter than the 8-byte/],
    ['header past end', (() => { const b = craft(ok, 8); return b.subarray(0, 20) })(), /runs past the end/],
    ['huge header', (() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(2n ** 40n, 0); return b })(), /exceeds/],
    ['not json', craft('{nope', 0), /not JSON/],
    ['not an object', craft('[1,2]', 0), /does not start with/],
    ['unknown dtype', craft({ a: { dtype: 'BF16', shape: [2], data_offsets: [0, 4] } }, 4), /unsupported dtype "BF16"/],
    ['bad shape', craft({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /shape/],
    ['offsets out of range', craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4), /run past the 4 data bytes/],
    ['offsets reversed', craft({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, 4), /end before/],
    ['size mismatch', craft({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /needs 12/],
    ['overlap', craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /overlap/],
    ['gap', craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /gap/],
    ['trailing bytes', craft(ok, 12), /trailing/],
    ['metadata not string', craft({ __metadata__: { k: 1 } }, 0), /not a string/],
  ]
  for (const [name, bytes, re] of cases) {
    t.throws(() => decodeSafetensors(bytes, 'bad.safetensors'), re, name)
    try {
      decodeSafetensors(bytes, 'bad.safetensors')
    } catch (e) {
      t.ok(e instanceof DataFormatError && e.file === 'bad.safetensors' && e.message.startsWith('bad.safetensors: '), `${name}: names the file`)
    }
  }
  t.doesNotThrow(() => decodeSafetensors(craft(ok, 8)), 'the well-formed control case reads')
})

t.test('encode rejects a shape that does not match the data', async (t) => {
  t.throws(() => encodeSafetensors({ a: tensor.f32([3], new Float32Array(2)) }), /holds 3 elements but data has 2/)
})

// An independent reader/writer in Python (struct + json + numpy only): our bytes must read there,
// and its bytes must read here.
const PY = '/usr/bin/python3'
const script = `
import json, struct, sys
import numpy as np
DT = {'F32': '<f4', 'F64': '<f8', 'I32': '<i4', 'I64': '<i8', 'U8': 'u1'}
def read(path):
    b = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', b[:8])
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', {})
    out = {}
    for k, v in h.items():
        s, e = v['data_offsets']
        a = np.frombuffer(b[8 + n + s: 8 + n + e], dtype=DT[v['dtype']]).reshape(v['shape'])
        out[k] = {'dtype': v['dtype'], 'shape': list(a.shape), 'values': [str(x) for x in a.reshape(-1).tolist()]}
    return {'meta': meta, 'tensors': out}
def write(path):
    ts = {'b': np.arange(6, dtype='<f4').reshape(2, 3) / 4, 'a': np.array([-1, 2**40], dtype='<i8')}
    h, data, pos = {}, b'', 0
    for k, a in ts.items():
        raw = a.tobytes()
        h[k] = {'dtype': {'float32': 'F32', 'int64': 'I64'}[str(a.dtype)], 'shape': list(a.shape), 'data_offsets': [pos, pos + len(raw)]}
        data += raw
        pos += len(raw)
    h['__metadata__'] = {'by': 'python'}
    hb = json.dumps(h, indent=1).encode()
    open(path, 'wb').write(struct.pack('<Q', len(hb)) + hb + data)
if sys.argv[1] == 'read':
    print(json.dumps(read(sys.argv[2])))
else:
    write(sys.argv[2])
`
const havePy = existsSync(PY) && (() => {
  try {
    execFileSync(PY, ['-c', 'import numpy'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

t.test('an independent Python reader agrees with our bytes; we read its bytes', { skip: havePy ? false : 'no /usr/bin/python3 with numpy' }, async (t) => {
  const dir = t.testdir()
  const ours = join(dir, 'ours.safetensors')
  await writeSafetensors(ours, sample(), { k: 'v' })
  const seen = JSON.parse(execFileSync(PY, ['-c', script, 'read', ours], { encoding: 'utf8' })) as {
    meta: Record<string, string>
    tensors: Record<string, { dtype: string; shape: number[]; values: string[] }>
  }
  t.same(seen.meta, { k: 'v' })
  const x = seen.tensors.x!
  t.same(x.shape, [2, 2, 3, 1])
  t.same(x.values.map(Number), Array.from(sample().x!.data as Float32Array))
  t.same(seen.tensors.big!.values, ['4611686018427387904', '-5'])
  t.same(seen.tensors.y!.values, ['7', '-3'])
  t.same(seen.tensors.raw!.values, ['0', '1', '127', '128', '255'])
  t.same(seen.tensors.empty!.shape, [0, 4])

  const theirs = join(dir, 'theirs.safetensors')
  execFileSync(PY, ['-c', script, 'write', theirs])
  const back = decodeSafetensors(readFileSync(theirs), theirs)
  t.same(back.metadata, { by: 'python' })
  t.same(back.tensors.b!.shape, [2, 3])
  t.same(Array.from(back.tensors.b!.data as Float32Array), [0, 0.25, 0.5, 0.75, 1, 1.25])
  t.same(Array.from(back.tensors.a!.data as BigInt64Array), [-1n, 2n ** 40n])
})
