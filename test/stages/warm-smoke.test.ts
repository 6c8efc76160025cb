// The smoke profile through the real CLI twice, in two throwaway projects linking this checkout:
// with a process per job (CUSP_STAGE_WORKERS=fresh) and with warm stage workers (the default).
// The locks must be byte-identical, and the warm run must have run science jobs (train, probe,
// train-flow) in reused workers, i.e. on an engine a previous job warmed (CUSP_STAGE_WORKER_LOG).
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { linkedProject, ROOT } from './fixtures.ts'

interface LogRecord {
  instance: string
  pid: number
  reused: boolean
  code: number | null
  dirty: string[]
}

/** Runs the smoke profile in `dir` with `env` added; stdout and stderr go to a file. */
async function smoke(dir: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const file = join(dir, 'cli-out.txt')
  const fd = openSync(file, 'w')
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [join(dir, 'scripts', 'pipeline.mjs'), '--profile', 'smoke'], {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1', CUSP_STORE: '', ...env },
        stdio: ['ignore', fd, fd],
      })
      child.on('error', reject)
      child.on('close', (c) => resolve(c))
    })
    return { code, out: await readFile(file, 'utf8') }
  } finally {
    closeSync(fd)
  }
}

t.test('smoke profile: warm workers give the same lock as a process per job, and reuse science workers', async (t) => {
  const yaml = await readFile(join(ROOT, 'pipeline.yaml'), 'utf8')
  const fresh = await linkedProject('cusp-fresh-', yaml)
  const warm = await linkedProject('cusp-warm-', yaml)
  const logDir = await mkdtemp(join(tmpdir(), 'cusp-wlog-'))
  t.teardown(async () => {
    for (const d of [fresh, warm, logDir]) await rm(d, { recursive: true, force: true })
  })
  const log = join(logDir, 'workers.jsonl')
  const a = await smoke(fresh, { CUSP_STAGE_WORKERS: 'fresh', CUSP_STAGE_WORKER_LOG: join(logDir, 'fresh.jsonl') })
  if (a.code !== 0) t.comment(a.out.slice(-3000))
  t.equal(a.code, 0, 'process per job: exit 0')
  const b = await smoke(warm, { CUSP_STAGE_WORKER_LOG: log })
  if (b.code !== 0) t.comment(b.out.slice(-3000))
  t.equal(b.code, 0, 'warm workers: exit 0')
  const [lockA, lockB] = await Promise.all([readFile(join(fresh, 'pipeline.lock'), 'utf8'), readFile(join(warm, 'pipeline.lock'), 'utf8')])
  t.ok(lockA.length > 1000, 'a lock was written')
  t.equal(lockB, lockA, 'pipeline.lock byte-identical (every output digest)')
  await t.rejects(readFile(join(logDir, 'fresh.jsonl')), 'no worker ran a job with CUSP_STAGE_WORKERS=fresh')

  const recs = (await readFile(log, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LogRecord)
  const ran = Number(/(\d+) ran, 0 restored, 0 fresh/.exec(b.out)?.[1] ?? 0)
  t.equal(recs.length, ran, `a worker log record per job (${ran})`)
  const reused = (stage: string): number => recs.filter((r) => r.reused && r.instance.split('@')[0] === stage).length
  // the smoke stages with more than one instance (workers are keyed by stage)
  for (const stage of ['train', 'probe', 'train-flow']) {
    t.ok(reused(stage) >= 1, `${stage}: ${reused(stage)} job(s) ran in a reused worker`)
  }
  // Science jobs leave tfjs behind (its keeper, warm-engine.ts), the figures job elkjs's `goog`
  // (its keeper, dag-svg.ts): no job of the profile may cost its worker.
  t.ok(
    recs.some((r) => r.instance === 'figures'),
    'the figures job ran in a worker',
  )
  t.same(
    recs.filter((r) => r.dirty.length > 0),
    [],
    'no job left state behind (the tfjs and elkjs keepers hold)',
  )
  t.comment(`${recs.filter((r) => r.reused).length} of ${recs.length} jobs in a reused worker`)
})
