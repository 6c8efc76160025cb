/**
 * Stage bundles (stage-bundle.ts): a stage run from its bundle by plain node writes the same
 * bytes as the same stage run through tsx (real science stages, and the toy project through
 * `execute`); a bundle is keyed by its sources (an edit gives a new bundle, an untouched source
 * reuses it) and by its place (a copied project builds and runs its own, reading its own files);
 * the stage process refuses a bundle built from another stage module.
 */
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { localStageCommand } from '../../src/harness/spawn-stage.ts'
import {
  currentBundle,
  forgetStageBundles,
  pruneStageBuilds,
  SOURCE_EXPORT,
  STAGE_PROCESS_ENTRY,
  stageBundle,
  stageBuildDir,
} from '../../src/harness/stage-bundle.ts'
import { diffTrees } from '../../src/harness/workdir.ts'
import { Project } from './fixtures/counting-project.ts'
import { writeJob, writeToyData } from '../stages/fixtures.ts'

const tmp = (): string => mkdtempSync(join(tmpdir(), 'cusp-bundle-'))

/** Runs a command to completion; exit code and stderr. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()))
    child.once('error', rej)
    child.once('close', (code) => res({ code, stderr }))
  })
}

/** Runs the job in `workDir` the way spawn-stage.ts does, bundled or not; asserts which it was. */
async function runStage(t: Test, workDir: string, bundled: boolean): Promise<void> {
  const env = { ...process.env, CUSP_THREADS: '1', CUSP_STAGE_BUNDLE: bundled ? '1' : '0' }
  const cmd = await localStageCommand(workDir, env)
  t.equal(cmd.bundled, bundled, bundled ? 'ran from bundles with plain node' : 'ran through tsx')
  const r = await run(cmd.file, cmd.args, env)
  t.equal(r.code, 0, r.stderr)
}

t.test('a bundled stage writes the same bytes as the stage run through tsx (train, spectrum-probe)', async (t) => {
  const dir = tmp()
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { dataset, manifest } = await writeToyData(join(dir, 'data'), 48, 3)
  const din = {
    data: [{ instance: 'd', output: 'dataset', params: {}, path: dataset }],
    manifest: [{ instance: 'd', output: 'manifest', params: {}, path: manifest }],
  }
  const train = {
    arch: 'mlp',
    activation: 'relu',
    hidden: [8],
    seed: 1,
    stop_loss: 0,
    max_t: 40,
    log_every: 5,
    flow_factor: 0.5,
    eig_tol: 1e-3,
    eig_max_matvecs: 60,
    backend: 'wasm',
    chunk_size: 32,
    mode: 'gd',
    eta: 0.5,
    max_iterations: 20,
    checkpoint_every: 10,
  }
  const outs: Record<string, string> = {}
  for (const mode of ['tsx', 'bundle'] as const) {
    outs[`train-${mode}`] = await writeJob(join(dir, `train-${mode}`), 'train', train, din)
    await runStage(t, join(dir, `train-${mode}`), mode === 'bundle')
  }
  t.same(await diffTrees(outs['train-tsx']!, outs['train-bundle']!, 'train'), [], 'train: outputs byte-identical')
  const probe = {
    checkpoint: 1,
    k: 3,
    solver: 'lanczos',
    tol: 1e-4,
    max_matvecs: 200,
    eig_seed: 0,
    arch: 'mlp',
    eta: 0.5,
    backend: 'wasm',
    chunk_size: 32,
  }
  for (const mode of ['tsx', 'bundle'] as const) {
    const ck = { checkpoints: [{ instance: 'tr', output: 'checkpoints', params: {}, path: join(outs['train-tsx']!, 'checkpoints') }] }
    outs[`probe-${mode}`] = await writeJob(join(dir, `probe-${mode}`), 'spectrum-probe', probe, { ...din, ...ck })
    await runStage(t, join(dir, `probe-${mode}`), mode === 'bundle')
  }
  t.same(await diffTrees(outs['probe-tsx']!, outs['probe-bundle']!, 'probe'), [], 'spectrum-probe: outputs byte-identical')
})

t.test('execute: the toy project with and without bundles gives the same lock outputs', async (t) => {
  const locks = []
  for (const bundle of ['0', '1']) {
    const p = new Project()
    t.teardown(() => p.cleanup())
    const env = { ...process.env, TOY_COUNTER_DIR: p.counterDir, CUSP_STAGE_ENV: 'TOY_COUNTER_DIR', CUSP_STAGE_BUNDLE: bundle }
    const { summary, ran } = await p.run({ processEnv: env })
    t.ok(summary.ok, `run with CUSP_STAGE_BUNDLE=${bundle}`)
    t.equal(ran.length, 6, 'every instance ran')
    locks.push(Object.fromEntries(Object.entries(p.lock().instances).map(([id, e]) => [id, e.outputs])))
  }
  t.same(locks[1], locks[0], 'same output digests')
})

/** A project with one stage that reads a file next to it through import.meta.url. */
function stageProject(root: string, word: string): string {
  mkdirSync(join(root, 'stages', 'echo'), { recursive: true })
  const module = join(root, 'stages', 'echo', 'index.ts')
  writeFileSync(
    module,
    `import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
const data: string = readFileSync(new URL('./data.txt', import.meta.url), 'utf8')
export default {
  [Symbol.for('cusp.stage')]: true,
  async run(ctx: { outDir: string }) {
    writeFileSync(join(ctx.outDir, 'out.txt'), '${word} ' + data)
    return {}
  },
}
`,
  )
  writeFileSync(join(root, 'stages', 'echo', 'data.txt'), `data of ${root}\n`)
  return module
}

/** Runs `module`'s bundle (with the stage process's bundle) on a fresh job; the text it wrote. */
async function runBundle(t: Test, module: string, bundle: string): Promise<string> {
  const proc = await stageBundle(STAGE_PROCESS_ENTRY) // this checkout's, as spawn-stage.ts uses
  if (!proc.ok) throw new Error(proc.reason)
  const work = tmp()
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  mkdirSync(join(work, 'out'))
  writeFileSync(
    join(work, 'job.json'),
    JSON.stringify({ schema: 1, instance: 'echo', module, params: {}, inputs: {}, outDir: join(work, 'out') }),
  )
  const r = await run(process.execPath, [proc.path, work, String(process.pid), bundle])
  t.equal(r.code, 0, r.stderr)
  return readFileSync(join(work, 'out', 'out.txt'), 'utf8')
}

t.test('bundle key: an edit gives a new bundle, a copied project builds and runs its own', async (t) => {
  const a = tmp()
  t.teardown(() => rmSync(a, { recursive: true, force: true }))
  const buildA = stageBuildDir(a)
  const module = stageProject(a, 'one')
  const first = await stageBundle(module, buildA)
  if (!first.ok) throw new Error(first.reason)
  t.equal(currentBundle(module, buildA), first.path, 'recorded as current')
  t.equal(await runBundle(t, module, first.path), `one data of ${a}\n`, 'reads its data through the pinned import.meta.url')

  forgetStageBundles()
  const mtime = statSync(join(buildA, first.path.split('/').at(-1)!)).mtimeMs
  t.same(await stageBundle(module, buildA), first, 'unchanged sources: the same bundle, not rebuilt')
  t.equal(statSync(first.path).mtimeMs, mtime)

  stageProject(a, 'two') // same size, new content
  t.equal(currentBundle(module, buildA), undefined, 'an edited source makes the recorded bundle stale')
  forgetStageBundles()
  const second = await stageBundle(module, buildA)
  if (!second.ok) throw new Error(second.reason)
  t.not(second.path, first.path, 'a new bundle for new sources')
  t.ok(existsSync(first.path), 'the old bundle stays for a process that may still be starting it')
  t.equal(await runBundle(t, module, second.path), `two data of ${a}\n`)

  const b = `${a}-copy`
  cpSync(a, b, { recursive: true, preserveTimestamps: true })
  t.teardown(() => rmSync(b, { recursive: true, force: true }))
  const copied = join(b, 'stages', 'echo', 'index.ts')
  writeFileSync(join(b, 'stages', 'echo', 'data.txt'), 'the copy\n')
  const buildB = stageBuildDir(b)
  t.equal(currentBundle(copied, buildB), undefined, "the copy's .cusp/build holds no bundle for the copy's stage")
  const third = await stageBundle(copied, buildB)
  if (!third.ok) throw new Error(third.reason)
  t.ok(third.path.startsWith(buildB), "built into the copy's own build directory")
  const mod = (await import(third.path)) as Record<string, unknown>
  t.equal(mod[SOURCE_EXPORT], copied, 'a bundle of the copied source')
  t.equal(await runBundle(t, copied, third.path), 'two the copy\n', "the copy's stage reads the copy's files")
})

t.test('no bundle where a module calling import.meta.resolve would see other node_modules', async (t) => {
  const a = tmp()
  t.teardown(() => rmSync(a, { recursive: true, force: true }))
  const r = await stageBundle(STAGE_PROCESS_ENTRY, stageBuildDir(a))
  t.equal(r.ok, false, 'refused (the stage then runs through tsx)')
  t.match(r.ok ? '' : r.reason, /stage-api\.ts calls import\.meta\.resolve/)
})

t.test("the stage process refuses a bundle built from another stage's module", async (t) => {
  const a = tmp()
  t.teardown(() => rmSync(a, { recursive: true, force: true }))
  const build = stageBuildDir(a)
  const module = stageProject(a, 'one')
  const bundle = await stageBundle(module, build)
  const proc = await stageBundle(STAGE_PROCESS_ENTRY)
  if (!bundle.ok || !proc.ok) throw new Error('no bundle')
  const work = tmp()
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  mkdirSync(join(work, 'out'))
  const other = join(a, 'stages', 'other', 'index.ts')
  writeFileSync(
    join(work, 'job.json'),
    JSON.stringify({ schema: 1, instance: 'x', module: other, params: {}, inputs: {}, outDir: join(work, 'out') }),
  )
  const r = await run(process.execPath, [proc.path, work, String(process.pid), bundle.path])
  t.equal(r.code, 1)
  t.match(r.stderr, `a bundle of ${module}, but the job's stage is ${other}`)
  t.notOk(existsSync(join(work, 'out', 'out.txt')), 'the stage did not run')
})

t.test('pruning: manifests of deleted entries go, unreferenced bundles go once an hour old', async (t) => {
  const a = tmp()
  t.teardown(() => rmSync(a, { recursive: true, force: true }))
  const build = stageBuildDir(a)
  const kept = await stageBundle(stageProject(join(a, 'kept'), 'one'), build)
  const goneModule = stageProject(join(a, 'gone'), 'two')
  const gone = await stageBundle(goneModule, build)
  if (!kept.ok || !gone.ok) throw new Error('no bundle')
  rmSync(join(a, 'gone'), { recursive: true, force: true })
  pruneStageBuilds(build)
  t.ok(existsSync(gone.path), 'an unreferenced bundle younger than an hour stays')
  t.equal(readdirSync(build).filter((n) => n.endsWith('.json')).length, 1, "the deleted entry's manifest is gone")
  pruneStageBuilds(build, Date.now() + 3_600_001)
  t.notOk(existsSync(gone.path), 'an hour later the unreferenced bundle is gone')
  t.ok(existsSync(kept.path), 'the current bundle stays')
  t.equal(currentBundle(join(a, 'kept', 'stages', 'echo', 'index.ts'), build), kept.path, 'and is still current')
})

t.test('a stage reached through a symlink and by its real path: two entries, each bundle runs its own', async (t) => {
  const a = tmp()
  t.teardown(() => rmSync(a, { recursive: true, force: true }))
  const build = stageBuildDir(a)
  const module = stageProject(join(a, 'real'), 'one')
  mkdirSync(join(a, 'linked'))
  symlinkSync(join(a, 'real', 'stages'), join(a, 'linked', 'stages'))
  const viaLink = join(a, 'linked', 'stages', 'echo', 'index.ts')
  const direct = await stageBundle(module, build)
  const linked = await stageBundle(viaLink, build)
  if (!direct.ok || !linked.ok) throw new Error('no bundle')
  t.not(linked.path, direct.path, 'one bundle per path the jobs name')
  const want = `one data of ${join(a, 'real')}\n`
  t.equal(await runBundle(t, module, direct.path), want)
  t.equal(await runBundle(t, viaLink, linked.path), want, 'the bundle named by the linked path runs (its source check passes)')
})
