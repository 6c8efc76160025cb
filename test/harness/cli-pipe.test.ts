/**
 * Output piped into a slow reader arrives whole: the CLI flushes stdout before it exits (a
 * `status --json` of the paper profile is ~0.6 MB, far more than a pipe buffer holds). The CLI
 * runs as `npm run pipeline` runs it (`node scripts/pipeline.mjs`, the prebuilt bundle).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..')

t.test('status --json through a slow pipe is complete, valid JSON', async (t) => {
  const store = mkdtempSync(join(tmpdir(), 'cusp-pipe-'))
  t.teardown(() => rmSync(store, { recursive: true, force: true }))
  const cli = `"${process.execPath}" "${join(REPO, 'scripts/pipeline.mjs')}"`
  const args = `--file "${join(REPO, 'pipeline.yaml')}" --profile paper --store "${store}" status --json`
  // The reader sleeps before reading, so the writer fills the pipe and must wait for it.
  const r = spawnSync('sh', ['-c', `${cli} ${args} | (sleep 1; cat)`], { encoding: 'utf8', maxBuffer: 64 << 20 })
  t.equal(r.status, 0, r.stderr)
  // Larger than twice Linux's 64 KiB pipe buffer, so the writer must wait for the reader.
  t.ok(r.stdout.length > 128 * 1024, `a large output (${r.stdout.length} bytes)`)
  const parsed = JSON.parse(r.stdout) as { instances: unknown[] }
  t.ok(parsed.instances.length > 1000, `${parsed.instances.length} instances`)
})
