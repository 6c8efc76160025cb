/**
 * The static checks `npm test` runs before the tests: the type check, eslint and prettier, at the
 * same time (each is one single-threaded process, so on a 2-core CI machine running them one after
 * the other leaves a core idle for half a minute). Each check's output is printed whole, in this
 * order, once all have finished; the exit status is 1 when any check failed.
 */
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(ROOT, 'node_modules', '.bin', name)

const CHECKS = [
  ['typecheck', bin('tsc'), ['-p', '.', '--noEmit']],
  ['lint', bin('eslint'), ['.']],
  ['format:check', bin('prettier'), ['--check', '.']],
]

/** Runs one check, collecting its stdout and stderr together; resolves with its exit status. */
function run(name, cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('error', (e) => resolve({ name, code: 1, out: `${out}${e.message}\n` }))
    child.on('close', (code, signal) => resolve({ name, code: code ?? 1, out: signal ? `${out}killed by ${signal}\n` : out }))
  })
}

const results = await Promise.all(CHECKS.map(([name, cmd, args]) => run(name, cmd, args)))
let failed = 0
for (const r of results) {
  process.stdout.write(`> ${r.name}: ${r.code === 0 ? 'ok' : `FAILED (exit ${r.code})`}\n${r.out}`)
  if (r.code !== 0) failed++
}
process.exitCode = failed > 0 ? 1 : 0
