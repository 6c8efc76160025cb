/**
 * Fingerprints: invariant to key order (so to YAML formatting), sensitive to every field, and
 * every sensitivity is explained by `diffBreakdowns`; the diff is empty exactly when the hashes
 * are equal. Also the canonical JSON they rest on.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { canonicalJson, CanonicalJsonError, sha256Hex, sortKeysDeep } from '../../src/harness/canonical-json.ts'
import { computeFingerprint, diffBreakdowns } from '../../src/harness/fingerprint.ts'
import type { FingerprintBreakdown, Fingerprint, ObjectDigest, RerunReason } from '../../src/harness/types.ts'

const d = (c: string) => c.repeat(64) as ObjectDigest
const f = (c: string) => c.repeat(64) as Fingerprint

function base(): FingerprintBreakdown {
  return {
    stage: 'train',
    code: 'c'.repeat(64),
    params: { eta: 0.1, arch: { width: 32, depth: 2 }, stop: ['loss', 1e-3], mode: 'gd' },
    inputs: { 'data/prepare-data/dataset': d('a'), 'data/prepare-data/manifest': d('b') },
    upstream: { 'prepare-data': f('e') },
    env: { backend: 'wasm', versions: { '@tensorflow/tfjs': '4.22.0', node: '20' } },
  }
}

/** The same value with every object's keys in reverse insertion order. */
function permuted<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x: unknown) => permuted(x)) as T
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(v).reverse()) out[k] = permuted((v as Record<string, unknown>)[k])
    return out as T
  }
  return v
}

t.test('canonical JSON', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 1.5, y: -0 } }), '{"a":[true,null,"x"],"b":1,"c":{"y":0,"z":1.5}}')
  t.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }))
  t.equal(canonicalJson(1e21), '1e+21', 'numbers as JS prints them')
  t.equal(canonicalJson('é\n"'), JSON.stringify('é\n"'))
  for (const bad of [NaN, Infinity, -Infinity, undefined, () => 1, 10n, new Date(0), new Map()]) {
    t.throws(() => canonicalJson({ p: { q: [bad] } }), CanonicalJsonError, `rejects ${String(bad)}`)
  }
  t.throws(() => canonicalJson({ p: { q: [NaN] } }), { message: /\$\.p\.q\[0\]/ }, 'error names the path')
  // eslint-disable-next-line no-sparse-arrays
  t.throws(() => canonicalJson([1, , 3]), CanonicalJsonError, 'sparse array rejected')
  t.equal(canonicalJson(Object.assign(Object.create(null), { a: 1 })), '{"a":1}', 'null-prototype objects are plain')
  const proto = JSON.parse('{"__proto__":{"x":1},"a":2}') as unknown
  t.equal(canonicalJson(sortKeysDeep(proto)), '{"__proto__":{"x":1},"a":2}', '__proto__ stays a data key')
  t.equal(sha256Hex('abc'), createHash('sha256').update('abc').digest('hex'))
  t.equal(sha256Hex(new TextEncoder().encode('abc')), sha256Hex('abc'))
})

t.test('fingerprint is sha256 of canonical JSON and invariant to key order', async (t) => {
  const b = base()
  const { fingerprint, breakdown } = computeFingerprint(b)
  t.equal(fingerprint, createHash('sha256').update(canonicalJson(b)).digest('hex'))
  t.match(fingerprint, /^[0-9a-f]{64}$/)
  t.equal(breakdown, b)
  const p = permuted(b)
  t.not(JSON.stringify(p), JSON.stringify(b), 'the permuted breakdown really is ordered differently')
  t.equal(computeFingerprint(p).fingerprint, fingerprint, 'permuted objects give the same hash')
  t.same(diffBreakdowns(b, p), [])
  t.same(diffBreakdowns(undefined, b), [{ kind: 'no-lock-entry' }])
})

/** One change per field; each must change the hash and be reported exactly as `expected`. */
const cases: Array<{ name: string; edit: (b: FingerprintBreakdown) => void; expected: RerunReason[] }> = [
  {
    name: 'code',
    edit: (b) => void (b.code = 'd'.repeat(64)),
    expected: [{ kind: 'code-changed', old: 'c'.repeat(64), new: 'd'.repeat(64) }],
  },
  { name: 'param value', edit: (b) => void (b.params['eta'] = 0.2), expected: [{ kind: 'param-changed', key: 'eta', old: 0.1, new: 0.2 }] },
  {
    name: 'param type (number to string)',
    edit: (b) => void (b.params['eta'] = '0.1'),
    expected: [{ kind: 'param-changed', key: 'eta', old: 0.1, new: '0.1' }],
  },
  {
    name: 'nested param',
    edit: (b) => void ((b.params['arch'] as { width: number }).width = 64),
    expected: [{ kind: 'param-changed', key: 'arch.width', old: 32, new: 64 }],
  },
  {
    name: 'array param',
    edit: (b) => void (b.params['stop'] = ['loss', 1e-4]),
    expected: [{ kind: 'param-changed', key: 'stop', old: ['loss', 1e-3], new: ['loss', 1e-4] }],
  },
  {
    name: 'param added',
    edit: (b) => void (b.params['seed'] = 0),
    expected: [{ kind: 'param-changed', key: 'seed', old: undefined, new: 0 }],
  },
  {
    name: 'param removed',
    edit: (b) => void delete b.params['mode'],
    expected: [{ kind: 'param-changed', key: 'mode', old: 'gd', new: undefined }],
  },
  {
    name: 'input digest',
    edit: (b) => void (b.inputs['data/prepare-data/dataset'] = d('9')),
    expected: [{ kind: 'input-changed', input: 'data/prepare-data/dataset', old: d('a'), new: d('9') }],
  },
  {
    name: 'input added',
    edit: (b) => void (b.inputs['extra/x/y'] = d('1')),
    expected: [{ kind: 'input-changed', input: 'extra/x/y', old: undefined, new: d('1') }],
  },
  {
    name: 'upstream fingerprint',
    edit: (b) => void (b.upstream['prepare-data'] = f('7')),
    expected: [{ kind: 'upstream-changed', upstream: 'prepare-data' }],
  },
  {
    name: 'upstream removed',
    edit: (b) => void delete b.upstream['prepare-data'],
    expected: [{ kind: 'upstream-changed', upstream: 'prepare-data' }],
  },
  {
    name: 'env backend',
    edit: (b) => void (b.env.backend = 'cpu'),
    expected: [{ kind: 'env-changed', old: base().env, new: { ...base().env, backend: 'cpu' } }],
  },
  {
    name: 'env version',
    edit: (b) => void (b.env.versions['@tensorflow/tfjs'] = '4.21.0'),
    expected: [{ kind: 'env-changed', old: base().env, new: { backend: 'wasm', versions: { '@tensorflow/tfjs': '4.21.0', node: '20' } } }],
  },
  { name: 'stage name', edit: (b) => void (b.stage = 'train2'), expected: [{ kind: 'no-lock-entry' }] },
]

for (const c of cases) {
  t.test(`a change of ${c.name} changes the hash and is reported`, async (t) => {
    const old = base()
    const now = base()
    c.edit(now)
    t.not(computeFingerprint(now).fingerprint, computeFingerprint(old).fingerprint)
    t.same(diffBreakdowns(old, now), c.expected)
  })
}

t.test('several changes are all reported, in breakdown order', async (t) => {
  const now = base()
  now.env.backend = 'cpu'
  now.params['eta'] = 0.3
  now.code = 'f'.repeat(64)
  now.upstream['prepare-data'] = f('0')
  t.same(
    diffBreakdowns(base(), now).map((r) => r.kind),
    ['code-changed', 'param-changed', 'upstream-changed', 'env-changed'],
  )
})

t.test('diff is empty exactly when fingerprints are equal (pseudo-random edits)', async (t) => {
  let seed = 12345
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
  const edits = cases.map((c) => c.edit)
  for (let i = 0; i < 200; i++) {
    const now = base()
    const k = rand(3)
    for (let j = 0; j < k; j++) edits[rand(edits.length)]!(now)
    const same = computeFingerprint(now).fingerprint === computeFingerprint(base()).fingerprint
    t.equal(diffBreakdowns(base(), permuted(now)).length === 0, same, `trial ${i}`)
  }
})
