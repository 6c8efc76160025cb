/**
 * The stage-runner contract on its own: the stdout protocol (progress, log, stray lines),
 * console output kept off the protocol, result.json written with sorted keys, and failures
 * (a thrown error, a default export that is not a stage, a non-object result) as exit 1 with
 * the reason on stderr. Drives stage-process.ts through spawnStage with a hand-made work dir.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnStage } from '../../src/harness/spawn-stage.ts'
import { encodeMessage, parseMessage, stageCommand, type StageJob } from '../../src/harness/stage-api.ts'
import { REPO_ROOT } from './fixtures/counting-project.ts'

t.test('protocol lines round-trip; anything else is a log line', async (t) => {
  t.same(parseMessage(encodeMessage({ type: 'progress', fraction: 0.25, message: 'a' }).trim()), {
    type: 'progress',
    fraction: 0.25,
    message: 'a',
  })
  t.same(parseMessage(encodeMessage({ type: 'progress', fraction: 1 }).trim()), { type: 'progress', fraction: 1 })
  t.same(parseMessage(encodeMessage({ type: 'log', message: 'x\ny' }).trim()), { type: 'log', message: 'x\ny' })
  t.same(parseMessage('plain text'), { type: 'log', message: 'plain text' })
  t.same(parseMessage('{"cusp":1,"type":"progress"'), { type: 'log', message: '{"cusp":1,"type":"progress"' })
})

t.test('stageCommand: absolute paths locally, the image layout for a container', async (t) => {
  const local = stageCommand('/w/1')
  t.equal(local.file, process.execPath)
  t.match(local.args, ['--import', /^file:\/\/.*tsx/, join(REPO_ROOT, 'src/harness/stage-process.ts'), '/w/1'])
  t.same(stageCommand('/w/1', { cuspRoot: '/app' }), {
    file: 'node',
    args: ['--import', 'file:///app/node_modules/tsx/dist/loader.mjs', '/app/src/harness/stage-process.ts', '/w/1'],
  })
})

t.test('run-stage: context, protocol, result.json and failures', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cusp-runner-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  writeFileSync(join(root, 'package.json'), '{"type":"module"}\n')
  mkdirSync(join(root, 'node_modules'))
  symlinkSync(REPO_ROOT, join(root, 'node_modules', 'cusp'), 'dir')
  writeFileSync(join(root, 'input.txt'), 'abc')
  const stage = (name: string, body: string): string => {
    const file = join(root, 'stages', name, 'index.ts')
    mkdirSync(join(root, 'stages', name), { recursive: true })
    writeFileSync(
      file,
      `import { writeFileSync, readFileSync } from 'node:fs'\nimport { join } from 'node:path'\nimport { defineStage } from 'cusp/src/harness/stage-api.ts'\n${body}\n`,
    )
    return file
  }
  const run = async (module: string) => {
    const work = mkdtempSync(join(root, 'work-'))
    mkdirSync(join(work, 'out'))
    const job: StageJob = {
      schema: 1,
      instance: 'demo@k=2',
      module,
      params: { k: 2 },
      inputs: { data: [{ instance: 'src', output: 'input.txt', params: { n: 1 }, path: join(root, 'input.txt') }] },
      outDir: join(work, 'out'),
    }
    writeFileSync(join(work, 'job.json'), JSON.stringify(job))
    const progress: [number, string | undefined][] = []
    const logs: string[] = []
    const exit = await spawnStage(work, root, process.env, { progress: (f, m) => progress.push([f, m]), log: (m) => logs.push(m) })
    return { exit, progress, logs, out: join(work, 'out') }
  }

  const ok = await run(
    stage(
      'good',
      `export default defineStage<{ k: number }>(async (ctx) => {
  console.log('console goes to stderr')
  process.stdout.write('a stray stdout line\\n')
  ctx.progress(0.5, 'half')
  ctx.log('from ' + ctx.instance)
  const text = readFileSync(ctx.inputs.data[0].path, 'utf8')
  writeFileSync(join(ctx.outDir, 'o.txt'), text.repeat(ctx.params.k))
  return { zeta: 1, alpha: { b: 2, a: ctx.inputs.data[0].params.n } }
})`,
    ),
  )
  t.equal(ok.exit.exitCode, 0)
  t.same(ok.progress, [[0.5, 'half']])
  t.same(ok.logs.sort(), ['a stray stdout line', 'console goes to stderr', 'from demo@k=2'])
  t.equal(readFileSync(join(ok.out, 'o.txt'), 'utf8'), 'abcabc')
  t.equal(readFileSync(join(ok.out, 'result.json'), 'utf8'), '{\n  "alpha": {\n    "a": 1,\n    "b": 2\n  },\n  "zeta": 1\n}\n')

  const thrown = await run(stage('throws', `export default defineStage(async () => { throw new Error('boom from stage') })`))
  t.equal(thrown.exit.exitCode, 1)
  t.match(thrown.exit.stderrTail, /boom from stage/)

  const notStage = await run(stage('plain', `export default async () => ({})`))
  t.equal(notStage.exit.exitCode, 1)
  t.match(notStage.exit.stderrTail, /default export must be defineStage/)

  const notObject = await run(stage('array', `export default defineStage(async () => [1, 2] as unknown as object)`))
  t.equal(notObject.exit.exitCode, 1)
  t.match(notObject.exit.stderrTail, /must return a JSON object/)
})
