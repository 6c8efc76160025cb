import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { writeLock } from '../../src/harness/lockfile.ts'
import { normaliseTarget } from '../../src/harness/published-decl.ts'
import { publishedStatus, publishFromLock } from '../../src/harness/published.ts'
import { opener } from '../../src/harness/open-command.ts'
import { LocalStore } from '../../src/harness/store/local-store.ts'
import type { Fingerprint, LockFile, PublishEntry, StoredOutput } from '../../src/harness/types.ts'
import { spectraRows, toCsv } from '../../stages/spectra-table/table.ts'

async function project(t: { teardown: (f: () => Promise<void>) => void }) {
  const root = await mkdtemp(join(tmpdir(), 'cusp-published-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const store = new LocalStore(join(root, 'artifacts'))
  const lockPath = join(root, 'pipeline.lock')
  const put = async (name: string, text: string) => {
    await writeFile(join(root, name), text)
    const r = await store.putFile(join(root, name))
    return { digest: r.digest, size: r.size, kind: 'file' } as StoredOutput
  }
  const lock = (outputs: Record<string, StoredOutput>): void => {
    const l: LockFile = { schema: 1, instances: {} }
    l.instances['figures'] = {
      stage: 'figures',
      fingerprint: '3e057930f2c23f1175871417f9e21c4bc5aa71dfba113e68fd79f9c2a0ff5604' as Fingerprint,
      breakdown: { stage: 'figures', code: 'b'.repeat(64), params: {}, inputs: {}, upstream: {}, env: { backend: 'none', versions: {} } },
      outputs,
    }
    const w = writeLock(lockPath, l)
    if (!w.ok) throw new Error(JSON.stringify(w.error))
  }
  return { root, store, lockPath, put, lock }
}

const ENTRY: PublishEntry = { target: 'results/report.html', instance: 'figures', output: 'report.html', kind: 'file' }

t.test('publish copies the stored bytes read-only; an edit is reported, saved and restored; stale files are removed', async (t) => {
  const p = await project(t)
  const v1 = await p.put('v1.html', '<p>one</p>\n')
  p.lock({ 'report.html': v1 })
  const r1 = await publishFromLock({ root: p.root, entries: [ENTRY], lockPath: p.lockPath, store: p.store })
  const dest = join(p.root, 'results', 'report.html')
  t.equal(await readFile(dest, 'utf8'), '<p>one</p>\n')
  t.equal((await stat(dest)).mode & 0o222, 0, 'read-only')
  t.same(r1.written, ['results/report.html'])
  t.same(await publishedStatus(p.root, [ENTRY]), [])

  await chmod(dest, 0o644)
  await writeFile(dest, '<p>mine</p>\n')
  t.same(await publishedStatus(p.root, [ENTRY]), [{ path: 'results/report.html', state: 'modified' }])
  const r2 = await publishFromLock({ root: p.root, entries: [ENTRY], lockPath: p.lockPath, store: p.store })
  t.equal(await readFile(dest, 'utf8'), '<p>one</p>\n', 'restored')
  t.equal(await readFile(join(p.root, r2.saved['results/report.html']!), 'utf8'), '<p>mine</p>\n', 'the edit is kept aside')
  t.equal(await readFile(join(p.store.objectPath(v1.digest)), 'utf8'), '<p>one</p>\n', 'the store is untouched')

  const r3 = await publishFromLock({ root: p.root, entries: [ENTRY], lockPath: p.lockPath, store: p.store })
  t.equal(r3.written.length, 0)
  t.equal(r3.unchanged, 1)

  // the declaration goes away: cusp's untouched file is removed ...
  const r4 = await publishFromLock({ root: p.root, entries: [], lockPath: p.lockPath, store: p.store })
  t.same(r4.removed, ['results/report.html'])
  t.equal(await stat(dest).catch(() => undefined), undefined)
})

t.test('a stale published file someone changed is left in place; a user file at a target is saved first', async (t) => {
  const p = await project(t)
  p.lock({ 'report.html': await p.put('v1.html', 'one\n') })
  await mkdir(join(p.root, 'results'))
  await writeFile(join(p.root, 'results', 'report.html'), 'user\n')
  const r1 = await publishFromLock({ root: p.root, entries: [ENTRY], lockPath: p.lockPath, store: p.store })
  t.equal(await readFile(join(p.root, r1.saved['results/report.html']!), 'utf8'), 'user\n')
  const dest = join(p.root, 'results', 'report.html')
  await chmod(dest, 0o644)
  await writeFile(dest, 'changed\n')
  const r2 = await publishFromLock({ root: p.root, entries: [], lockPath: p.lockPath, store: p.store })
  t.same(r2.kept, ['results/report.html'])
  t.equal(await readFile(dest, 'utf8'), 'changed\n')
})

t.test('a new output replaces the published bytes; a skipped instance keeps the old ones', async (t) => {
  const p = await project(t)
  p.lock({ 'report.html': await p.put('v1.html', 'one\n') })
  await publishFromLock({ root: p.root, entries: [ENTRY], lockPath: p.lockPath, store: p.store })
  p.lock({ 'report.html': await p.put('v2.html', 'two\n') })
  await publishFromLock({ root: p.root, entries: [ENTRY], lockPath: p.lockPath, store: p.store, skip: new Set(['figures']) })
  t.equal(await readFile(join(p.root, 'results', 'report.html'), 'utf8'), 'one\n')
  await publishFromLock({ root: p.root, entries: [ENTRY], lockPath: p.lockPath, store: p.store })
  t.equal(await readFile(join(p.root, 'results', 'report.html'), 'utf8'), 'two\n')
})

t.test('publish targets: relative, inside the project, not where cusp or the code lives', async (t) => {
  t.same(normaliseTarget('results/figures/'), { target: 'results/figures' })
  for (const bad of ['/tmp/x', '../x', 'results/../../x', 'artifacts/x', '.cusp/x', 'src/x', '.', 'pipeline.lock', 'a\\b'])
    t.ok('problem' in normaliseTarget(bad), bad)
})

t.test('open: a browser only where one exists', async (t) => {
  t.equal(opener('/r.html', 'linux', { PATH: '/nonexistent' }), undefined)
  t.same(opener('/r.html', 'linux', { BROWSER: 'firefox' }), ['firefox', ['/r.html']])
  t.same(opener('/r.html', 'darwin', {}), ['open', ['/r.html']])
})

t.test('spectra table: one row per probe x eigenvalue, values as the probe file has them', async (t) => {
  const probe = {
    present: true,
    arch: 'mlp',
    activation: 'relu',
    eta: 0.1,
    seed: 0,
    classes: 3,
    n_data: 48,
    iteration: 6,
    t: 0.6,
    eigenvalues: [12.5, 3.25],
    rho: [0.625, 0.1625],
    d: [0.1, -0.2],
    residuals: [1e-9, 2e-8],
    loss: 1.5,
    grad_norm: 0.3,
  }
  const { rows, absent } = spectraRows([
    { input: { instance: 'probe@eta=0.1,checkpoint=2', params: { checkpoint: 2 } }, text: JSON.stringify(probe) },
    { input: { instance: 'probe@eta=0.1,checkpoint=9', params: {} }, text: '{"present":false,"iteration":90}' },
  ])
  t.same(absent, ['probe@eta=0.1,checkpoint=9'])
  t.equal(rows.length, 2)
  for (const [i, r] of rows.entries()) {
    t.equal(r.rank, i + 1)
    t.equal(r.eigenvalue, probe.eigenvalues[i])
    t.equal(r.rho, probe.rho[i])
    t.equal(r.checkpoint, 2)
  }
  const csv = toCsv(rows).split('\n')
  t.equal(csv[1], 'probe,"probe@eta=0.1,checkpoint=2",mlp,relu,0.1,0,3,48,2,6,0.6,1,12.5,0.625,0.1,1e-9,1.5,0.3')
})
