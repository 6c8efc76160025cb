/**
 * `node --import tsx scripts/compare-backends.ts STORE_A STORE_B [--profile P] [--backends a,b] [--tol T]`
 * compares the science results of one profile run on two backends (each in its own store, e.g. the
 * smoke profile with `--backend wasm` and `--backend webgpu`): for every probe.json and scan.json
 * present in both, every numeric field that is a measured quantity (loss, norms, eigenvalues, rho,
 * projections, loss changes, scan values) is compared with a relative error scaled by the largest
 * magnitude of its array. Solver bookkeeping (residuals, matvec counts, converged) is skipped: it
 * differs legitimately once the bits do. Prints one line per file and ends with one JSON line;
 * exit 1 when any field exceeds the tolerance (default 1e-3), 2 on bad usage.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const argv = process.argv.slice(2)
const flag = (name: string, dflt: string): string => {
  const i = argv.indexOf(`--${name}`)
  if (i < 0) return dflt
  const v = argv[i + 1]
  argv.splice(i, 2)
  return v ?? dflt
}
const profile = flag('profile', 'smoke')
const [backA, backB] = flag('backends', 'wasm,webgpu').split(',') as [string, string]
const tol = Number(flag('tol', '1e-3'))
const [storeA, storeB] = argv
if (storeA === undefined || storeB === undefined || !(tol > 0)) {
  console.error('usage: compare-backends.ts STORE_A STORE_B [--profile P] [--backends a,b] [--tol T]')
  process.exit(2)
}
const SKIP = new Set(['residuals', 'matvecs', 'converged', 'iteration', 'parameters', 'classes', 'top_dim', 'eta', 't'])

interface Produced {
  instance: string
  output: string
  finishedAt?: string
}
/** instance/output -> object path of its latest run, from the pipeline's own registry listing. */
function outputs(store: string, backend: string): Map<string, string> {
  const out = execFileSync(
    process.execPath,
    ['scripts/pipeline.mjs', 'artifacts', '--profile', profile, '--backend', backend, '--store', store, '--json'],
    { encoding: 'utf8', maxBuffer: 1 << 28 },
  )
  const listing = JSON.parse(out.trim().split('\n')[0]!) as { artifacts: { digest: string; producedBy: Produced[] }[] }
  const latest = new Map<string, { at: string; file: string }>()
  for (const a of listing.artifacts) {
    for (const p of a.producedBy) {
      if (!/^(probe|scan)\.json$/.test(p.output)) continue
      const key = `${p.instance} ${p.output}`
      const at = p.finishedAt ?? ''
      if ((latest.get(key)?.at ?? '') <= at)
        latest.set(key, { at, file: join(store, 'objects', 'sha256', a.digest.slice(0, 2), a.digest.slice(2)) })
    }
  }
  return new Map([...latest].map(([k, v]) => [k, v.file]))
}

/** Largest relative difference over the numeric leaves of a and b (arrays scaled by their max). */
function compare(a: unknown, b: unknown, path: string, worst: { err: number; where: string }): void {
  if (typeof a === 'number' && typeof b === 'number') {
    const err = Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12)
    if (err > worst.err) Object.assign(worst, { err, where: path })
  } else if (Array.isArray(a) && Array.isArray(b)) {
    const scale = Math.max(1e-12, ...[...a, ...b].map((x) => (typeof x === 'number' ? Math.abs(x) : 0)))
    a.forEach((x, i) => {
      if (typeof x === 'number' && typeof b[i] === 'number') {
        const err = Math.abs(x - (b[i] as number)) / scale
        if (err > worst.err) Object.assign(worst, { err, where: `${path}[${i}]` })
      } else compare(x, b[i], `${path}[${i}]`, worst)
    })
  } else if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    for (const k of Object.keys(a))
      if (!SKIP.has(k) && k in b)
        compare((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k, worst)
  }
}

const A = outputs(storeA, backA)
const B = outputs(storeB, backB)
const rows: { file: string; err: number; where: string }[] = []
for (const [key, fa] of [...A].sort()) {
  const fb = B.get(key)
  if (fb === undefined) continue
  const worst = { err: 0, where: '' }
  compare(JSON.parse(readFileSync(fa, 'utf8')), JSON.parse(readFileSync(fb, 'utf8')), '', worst)
  rows.push({ file: key, ...worst })
  console.log(
    `${worst.err <= tol ? 'ok  ' : 'FAIL'} ${key.padEnd(60)} max rel diff ${worst.err.toExponential(2)}${worst.where ? ` (${worst.where})` : ''}`,
  )
}
const max = Math.max(0, ...rows.map((r) => r.err))
const ok = rows.length > 0 && max <= tol
console.log(
  JSON.stringify({
    compare: `${backA} vs ${backB}`,
    profile,
    files: rows.length,
    only_in_one: A.size + B.size - 2 * rows.length,
    max_rel_diff: +max.toExponential(3),
    tol,
    ok,
  }),
)
process.exit(ok ? 0 : 1)
