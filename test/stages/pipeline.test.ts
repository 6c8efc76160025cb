// pipeline.yaml through the real CLI (`npm run pipeline` runs scripts/pipeline.mjs) in a temporary
// project that links this checkout's code: the smoke profile end to end, a rerun that executes
// nothing, a changed cusp-scan param rerunning only the scan, and the paper profile planned.
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ROOT } from './fixtures.ts'

/**
 * Runs the CLI with stdout and stderr going to a file, not a pipe: the CLI exits right after its
 * last write, and a pipe can lose what was not yet drained (seen with 200 KB of status --json).
 */
async function cli(cwd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-cli-out-'))
  const file = join(dir, 'out.txt')
  const fd = openSync(file, 'w')
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [join(cwd, 'scripts', 'pipeline.mjs'), ...args], {
        cwd,
        env: { ...process.env, NO_COLOR: '1', CUSP_STORE: '' },
        stdio: ['ignore', fd, fd],
      })
      child.on('error', reject)
      child.on('close', (c) => resolve(c))
    })
    return { code, out: await readFile(file, 'utf8') }
  } finally {
    closeSync(fd)
    await rm(dir, { recursive: true, force: true })
  }
}

t.test('paper profile: the whole DAG plans and validates', async (t) => {
  const r = await cli(ROOT, ['--profile', 'paper', '--dry-run'])
  if (r.code !== 0) t.comment(r.out.slice(-2000))
  t.equal(r.code, 0, 'exit 0')
  const count = Number(/plan: (\d+) instances/.exec(r.out)?.[1] ?? 0)
  t.comment(`paper profile: ${count} stage instances`)
  t.ok(count > 1000, `${count} instances (16 runs x 41 probes, 3 class runs, 201 + 21 dense probes, 20 flows, 20 scans, data)`)
  const status = await cli(ROOT, ['--profile', 'paper', 'status', '--json'])
  t.equal(status.code, 0)
  const ids = new Set((JSON.parse(status.out) as { instances: { id: string }[] }).instances.map((i) => i.id))
  t.equal(ids.size, count, 'status lists every instance the dry run counted')
  for (const id of [
    'train@arch=vgg16,activation=tanh,eta=0.0001',
    'probe@arch=alexnet,activation=relu,eta=0.003,checkpoint=40',
    'probe-dense@iteration=2000',
    'probe-classes@classes=5,checkpoint=40',
    'train-flow@activation=tanh,n_data=16000,seed=1',
    'cusp-scan@activation=relu,n_data=16000,seed=0',
    'probe-dense-cnn@iteration=2000',
  ]) {
    t.ok(ids.has(id), id)
  }
})

t.test('smoke profile end to end; rerun does nothing; a cusp-scan param change reruns only the scan', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-smoke-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const f of ['src', 'stages', 'schemas', 'data', 'scripts', 'node_modules', 'package.json', 'package-lock.json', 'claims.yaml'])
    await symlink(join(ROOT, f), join(dir, f))
  const yaml = await readFile(join(ROOT, 'pipeline.yaml'), 'utf8')
  await writeFile(join(dir, 'pipeline.yaml'), yaml)

  const first = await cli(dir, ['--profile', 'smoke'])
  if (first.code !== 0) t.comment(first.out.slice(-3000))
  t.equal(first.code, 0, 'exit 0')
  const ran = Number(/(\d+) ran, 0 restored, 0 fresh/.exec(first.out)?.[1] ?? 0)
  t.ok(ran >= 14, `${ran} instances ran (every science stage at least once)`)
  const lock = await readFile(join(dir, 'pipeline.lock'), 'utf8')
  for (const id of [
    'train-flow@activation=relu,n_data=30,seed=0',
    'cusp-scan@activation=relu,n_data=30,seed=0',
    'probe@arch=mlp,activation=relu,eta=0.5,checkpoint=1',
    'probe-dense-cnn@iteration=2',
    'probe-cnn@n_data=48,iteration=3',
  ])
    t.ok(lock.includes(id), `lock has ${id}`)

  const again = await cli(dir, ['--profile', 'smoke'])
  if (again.code !== 0) t.comment(again.out.slice(-2000))
  t.equal(again.code, 0, 'exit 0')
  t.match(again.out, new RegExp(`0 ran, 0 restored, ${ran} fresh`), 'a rerun executes nothing')

  const smokeAt = yaml.indexOf('  smoke:')
  const edited = yaml.slice(0, smokeAt) + yaml.slice(smokeAt).replace('params: { points: 3,', 'params: { points: 4,')
  t.not(edited, yaml, 'the smoke cusp-scan points param was edited')
  await writeFile(join(dir, 'pipeline.yaml'), edited)
  const scan = await cli(dir, ['--profile', 'smoke', '--stage', 'cusp-scan'])
  if (scan.code !== 0) t.comment(scan.out.slice(-2000))
  t.equal(scan.code, 0, 'exit 0')
  t.match(scan.out, /1 ran, 0 restored, [0-9]+ fresh/, 'only the scan ran')
  t.match(scan.out, /cusp-scan@activation=relu,n_data=30,seed=0/)
  t.notMatch(scan.out, /done\s+train/, 'no training reran')
})
