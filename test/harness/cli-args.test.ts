/**
 * Command-line parsing and target resolution, as pure functions: which argv are usage errors
 * (exit 2 in the CLI), what each command receives, and how an unknown target names close matches.
 */
import t from 'tap'
import { parseCli, USAGE } from '../../src/harness/cli-args.ts'
import { closeMatches, editDistance, resolveInstance, resolveSelectors } from '../../src/harness/targets.ts'
import type { StageInstance, ValidPipeline } from '../../src/harness/types.ts'

t.test('run is the default command and takes every run flag', async (t) => {
  const r = parseCli([
    '--stage',
    'train',
    '--stage',
    'probe@eta=0.1',
    '--downstream',
    '--force',
    '--dry-run',
    '--verify',
    '--jobs',
    '3',
    '--keep-going',
    '--profile',
    'cpu',
    '--set',
    'train.eta=0.5',
    '--set',
    'train.arch=cnn',
    '--store',
    's3://b/p',
    '--file',
    'x/pipeline.yaml',
    '--json',
  ])
  t.ok(r.ok)
  if (!r.ok) return
  t.same(r.value, {
    kind: 'run',
    file: 'x/pipeline.yaml',
    profile: 'cpu',
    overrides: ['train.eta=0.5', 'train.arch=cnn'],
    store: 's3://b/p',
    json: true,
    selectors: ['train', 'probe@eta=0.1'],
    downstream: true,
    force: true,
    dryRun: true,
    verify: true,
    jobs: 3,
    keepGoing: true,
    executor: 'local',
    estimate: false,
    yes: false,
    confirmAbove: 10,
    verbose: false,
  })
  const explicit = parseCli(['run', '--force'])
  t.ok(explicit.ok && explicit.value.kind === 'run' && explicit.value.force)
  const bare = parseCli([])
  t.ok(bare.ok && bare.value.kind === 'run' && bare.value.jobs === undefined && bare.value.selectors.length === 0)
})

t.test('every malformed command line is a usage failure with a message', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [['--bogus'], /--bogus/],
    [['status', '--force'], /'--force' is a flag of 'run'/],
    [['--jobs', '0'], /positive integer/],
    [['--jobs', 'two'], /positive integer/],
    [['--jobs'], /jobs/],
    [['--file'], /file/],
    [['--json=yes'], /json/],
    [['train'], /unknown command 'train'/],
    [['run', 'train'], /--stage train/],
    [['why'], /needs an instance/],
    [['why', 'a', 'b'], /one instance/],
    [['show'], /needs an instance/],
    [['status', 'extra'], /no arguments/],
    [['artifacts', 'a', 'b'], /at most one/],
    [['--set', 'noequals'], /stage\.param=value/],
    [['--set', 'stageonly=3'], /stage\.param=value/],
    [['--stage', ''], /--stage needs/],
    [['--profile', ''], /non-empty/],
  ]
  for (const [argv, re] of bad) {
    const r = parseCli(argv)
    t.notOk(r.ok, `${argv.join(' ')} is rejected`)
    if (r.ok) continue
    t.equal(r.error.reason, 'usage')
    if (r.error.reason === 'usage') t.match(r.error.message, re, argv.join(' '))
  }
})

t.test('other commands take their positional instance and the common flags', async (t) => {
  const why = parseCli(['why', 'train@eta=0.1', '--profile', 'cpu', '--set', 'train.eta=2'])
  t.ok(why.ok && why.value.kind === 'why' && why.value.instance === 'train@eta=0.1' && why.value.profile === 'cpu')
  const arts = parseCli(['artifacts', '--json'])
  t.ok(arts.ok && arts.value.kind === 'artifacts' && arts.value.instance === undefined && arts.value.json)
  const show = parseCli(['show', 'prepare'])
  t.ok(show.ok && show.value.kind === 'show' && show.value.instance === 'prepare')
  const late = parseCli(['--file', 'p.yaml', 'status', '--json'])
  t.ok(late.ok && late.value.kind === 'status' && late.value.file === 'p.yaml', 'flags may precede the command')
  const stageNamedLikeCommand = parseCli(['--stage', 'status'])
  t.ok(stageNamedLikeCommand.ok && stageNamedLikeCommand.value.kind === 'run', 'a flag value is not a command')
  const status = parseCli(['status', '--json', '--store', '/tmp/s'])
  t.ok(status.ok && status.value.kind === 'status' && status.value.json && status.value.store === '/tmp/s')
})

t.test('--help wins and the usage names every command', async (t) => {
  const h = parseCli(['status', '--help'])
  t.ok(h.ok && h.value.kind === 'help')
  for (const word of [
    'run',
    'status',
    'why',
    'artifacts',
    'show',
    '--stage',
    '--dry-run',
    '--verify',
    '--jobs',
    '--set',
    '--store',
    '--json',
  ]) {
    t.match(USAGE, word)
  }
})

function toyPipeline(): ValidPipeline {
  const inst = (id: string, stage: string): StageInstance => ({
    id,
    stage,
    impl: `stages/${stage}`,
    matrix: {},
    params: {},
    deps: [],
    outputs: [],
    resources: { cpu: 1, memory: '1Gi', gpu: 0 },
  })
  const ids = ['prepare', 'train@eta=0.1', 'train@eta=0.2', 'probe@eta=0.1', 'probe@eta=0.2', 'aggregate']
  const instances = new Map(ids.map((id) => [id, inst(id, id.split('@')[0] ?? id)]))
  return { __valid: true, file: '/p/pipeline.yaml', root: '/p', profile: undefined, instances, order: ids }
}

t.test('selectors: a stage name selects all its instances, an id selects one, in topological order', async (t) => {
  const p = toyPipeline()
  t.same(resolveSelectors(p, ['train']), { ok: true, value: ['train@eta=0.1', 'train@eta=0.2'] })
  t.same(resolveSelectors(p, ['probe@eta=0.2', 'prepare']), { ok: true, value: ['prepare', 'probe@eta=0.2'] })
  t.same(resolveSelectors(p, []), { ok: true, value: [] })
})

t.test('an unknown target fails with the closest names first', async (t) => {
  const p = toyPipeline()
  const r = resolveSelectors(p, ['trian', 'train@eta=0.3'])
  t.notOk(r.ok)
  if (r.ok) return
  t.equal(r.error.length, 2)
  const [a, b] = r.error
  t.ok(a?.reason === 'unknown-target' && a.target === 'trian' && a.known[0] === 'train')
  t.ok(b?.reason === 'unknown-target' && b.known.slice(0, 2).every((k) => k.startsWith('train@')))
  t.same(resolveInstance(p, 'prepare'), { ok: true, value: 'prepare' })
  t.notOk(resolveInstance(p, 'train').ok, 'a stage with several instances is not one instance')
  t.same(resolveInstance(p, 'aggregate'), { ok: true, value: 'aggregate' })
})

t.test('edit distance and close matches', async (t) => {
  t.equal(editDistance('kitten', 'sitting'), 3)
  t.equal(editDistance('', 'abc'), 3)
  t.equal(editDistance('same', 'same'), 0)
  t.same(closeMatches('zzzzzz', ['a', 'b']), ['a', 'b'], 'falls back to what exists')
})
