/**
 * `dag`: the stage graph of every profile of the real pipeline.yaml (one node per stage, matrix
 * sizes that add up to the instances, one edge per stage-to-stage dep), its text / DOT / SVG
 * forms (DOT parsed back with ts-graphviz; SVG rasterised with resvg and probed at the node
 * boxes; byte-identical on a second layout), escaping of hostile names in every format, the
 * stage graph the analyzer hands the figures stage (changed by a DAG edit, not by a param
 * edit), and `--state` / `--events` on a toy project. Mermaid validity is checked with Mermaid's
 * own parser in test/report/chromium.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Resvg } from '@resvg/resvg-js'
import t from 'tap'
import { fromDot } from 'ts-graphviz'
import { analyze, nodeReader } from '../../src/harness/analyzer.ts'
import { main } from '../../src/harness/cli.ts'
import { captureMain } from './fixtures/run-main.ts'
import { dagDot, dagMermaid, dagText, mermaidText, PALETTE } from '../../src/harness/dag-format.ts'
import { stageGraphOf, stageGraphParam, stageView, type GraphView } from '../../src/harness/dag-graph.ts'
import { dagSvg, xmlText } from '../../src/harness/dag-svg.ts'
import type { ValidPipeline } from '../../src/harness/types.ts'
import { writeToyDag } from './fixtures/toy-dag.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function analysed(profile: string, overrides: string[] = []): ValidPipeline {
  const r = analyze({ file: join(ROOT, 'pipeline.yaml'), profile, overrides, reader: nodeReader(ROOT) })
  if (!r.ok) throw new Error(`pipeline.yaml (${profile}) does not analyse`)
  return r.value
}

const cli = (cwd: string, args: string[]) => captureMain(cwd, args, { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1' }, main)

const tmp = mkdtempSync(join(tmpdir(), 'cusp-dag-'))
t.teardown(() => rmSync(tmp, { recursive: true, force: true }))

for (const profile of ['smoke', 'cpu', 'paper']) {
  t.test(`the stage graph of profile ${profile}: every stage, its matrix size, every dep`, async (t) => {
    const p = analysed(profile)
    const g = stageGraphOf(p.instances.values())
    const stages = new Set([...p.instances.values()].map((i) => i.stage))
    t.strictSame(g.stages.map((s) => s.name).sort(), [...stages].sort())
    t.equal(
      g.stages.reduce((n, s) => n + s.instances, 0),
      p.instances.size,
    )
    for (const s of g.stages) t.equal(s.instances, [...p.instances.values()].filter((i) => i.stage === s.name).length, `${s.name} size`)
    const edges = new Set(g.edges.map((e) => `${e.from}->${e.to}`))
    const deps = [...p.instances.values()].flatMap((i) => i.deps.map((d) => `${p.instances.get(d.instance)!.stage}->${i.stage}`))
    t.strictSame(
      deps.filter((d) => !edges.has(d)),
      [],
      'every instance dep is a stage edge',
    )
    t.equal(edges.size, new Set(deps).size, 'and every stage edge is some instance dep')

    const text = await cli(ROOT, ['dag', '--profile', profile, '--store', join(tmp, `store-${profile}`)])
    t.equal(text.code, 0, text.stderr)
    const lines = text.stdout.split('\n')
    t.match(lines[0], `${g.stages.length} stages, ${g.edges.length} edges`)
    for (const s of g.stages)
      t.ok(
        lines.some((l) => l.startsWith(`${s.name} `) && l.includes(`${s.instances} instance`)),
        `text lists ${s.name} with ${s.instances}`,
      )

    const dot = fromDot(dagDot(stageView(g)))
    const declared = new Set(dot.nodes.map((n) => n.id))
    t.strictSame([...declared].sort(), [...stages].sort(), 'DOT declares one node per stage')
    t.equal(dot.edges.length, g.edges.length)
    const ends = dot.edges.flatMap((e) => e.targets.map((end) => (end as { id: string }).id))
    t.strictSame(
      ends.filter((id) => !declared.has(id)),
      [],
      'every edge end is declared',
    )
  })
}

/** Names no format may take literally. */
const HOSTILE: GraphView = {
  kind: 'instances',
  states: true,
  nodes: [
    { id: 'a"b', detail: 'x<y>&z', state: 'failed' },
    { id: "end#1;'q'", detail: 'a|b [c] {d}', state: 'fresh' },
    { id: 'plain', detail: 'stage', state: 'run' },
  ],
  edges: [
    { from: 'a"b', to: "end#1;'q'", label: 'o"u|t' },
    { from: "end#1;'q'", to: 'plain', label: '<&>' },
  ],
}

t.test('every format escapes names', async (t) => {
  const mm = dagMermaid(HOSTILE)
  t.equal(mermaidText('a"b#c<d>&e'), 'a#34;b#35;c#60;d#62;#38;e')
  for (const line of mm.split('\n').filter((l) => /^\s+n\d+\[/.test(l)))
    t.match(line, /^\s+n\d+\["[^"]*"\]$/, 'one quoted label per node line')
  for (const line of mm.split('\n').filter((l) => l.includes('-->')))
    t.match(line, /^\s+n\d+ -->\|"[^"]*"\| n\d+$/, 'ids are generated, labels quoted')
  t.match(mm, /classDef failed fill:#f6d2d2/)
  t.match(mm, /subgraph legend/)

  const dot = fromDot(dagDot(HOSTILE))
  t.strictSame(
    dot.nodes.map((n) => n.id),
    ['a"b', "end#1;'q'", 'plain'],
    'DOT ids parse back to the names',
  )
  t.strictSame(
    dot.edges.map((e) => e.targets.map((x) => (x as { id: string }).id)),
    [
      ['a"b', "end#1;'q'"],
      ["end#1;'q'", 'plain'],
    ],
  )
  t.equal(dot.subgraphs[0]?.id, 'cluster_legend', 'a legend cluster')
  t.equal(dot.subgraphs[0]?.nodes.length, 3, 'one legend entry per state shown')

  const { svg } = await dagSvg(HOSTILE)
  t.notMatch(svg, /a"b|x<y|&z|<&>/, 'no raw name in the SVG')
  t.match(svg, `data-id="${xmlText('a"b')}"`)
  t.doesNotThrow(() => new Resvg(svg).render(), 'the SVG parses')
  t.match(dagText(HOSTILE), /^a"b\s+x<y>&z {2}\[failed\]$/m, 'text is plain text')
})

t.test('--format svg: deterministic, renders, a filled box at every node', async (t) => {
  const p = analysed('cpu')
  const states = new Map([...p.instances.keys()].map((id) => [id, id.startsWith('probe') ? ('run' as const) : ('fresh' as const)]))
  const view = stageView(stageGraphOf(p.instances.values()), p.instances.values(), states)
  const a = await dagSvg(view)
  const b = await dagSvg(stageView(stageGraphOf([...p.instances.values()].reverse()), p.instances.values(), states))
  t.equal(a.svg, b.svg, 'byte-identical for the same pipeline')
  t.equal(a.boxes.length, view.nodes.length)
  const png = new Resvg(a.svg, { font: { loadSystemFonts: false } }).render()
  t.equal(png.width, Math.ceil(a.width))
  const px = png.pixels
  const at = (x: number, y: number) => {
    const i = (Math.floor(y) * png.width + Math.floor(x)) * 4
    return [px[i]!, px[i + 1]!, px[i + 2]!, px[i + 3]!]
  }
  const rgb = (hex: string) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16))
  for (const [i, box] of a.boxes.entries()) {
    const fill = rgb(PALETTE[view.nodes[i]!.state!].fill)
    const [r, g, bl, alpha] = at(box.x + 4, box.y + box.height / 2)
    t.equal(alpha, 255, `${box.id}: opaque inside its box`)
    t.ok(Math.abs(r! - fill[0]!) + Math.abs(g! - fill[1]!) + Math.abs(bl! - fill[2]!) <= 6, `${box.id}: filled with its state's colour`)
  }
  const [, , , outside] = at(a.width - 2, 2)
  t.equal(outside, 0, 'transparent away from the nodes')
})

t.test('the figures stage gets the stage graph as a param: a DAG edit changes it, a param edit does not', async (t) => {
  const base = analysed('smoke')
  const fig = base.instances.get('figures')!
  t.strictSame(fig.params.stage_graph, stageGraphParam(stageGraphOf(base.instances.values())))
  t.notOk('stage_graph' in base.instances.get('audit')!.params, 'only a stage whose schema asks for it')
  const paramEdit = analysed('smoke', ['train.seed=7'])
  t.strictSame(paramEdit.instances.get('figures')!.params, fig.params, 'another stage’s param: same figures params')
  const dagEdit = analysed('cpu', ['probe.checkpoint=0'])
  const g = dagEdit.instances.get('figures')!.params.stage_graph as { stages: { name: string; instances: number }[] }
  t.equal(g.stages.find((s) => s.name === 'probe')?.instances, 6, 'a smaller matrix is in the graph')
  t.not(JSON.stringify(g), JSON.stringify(analysed('cpu').instances.get('figures')!.params.stage_graph))
})

t.test('dag --state colours by plan state; --events marks failed instances', async (t) => {
  const dir = join(tmp, 'toy')
  writeToyDag(dir, { etas: [0.1], seeds: [0] })
  const first = await cli(dir, ['dag', '--state', '--instances'])
  t.equal(first.code, 0, first.stderr)
  t.match(first.stdout, /^4 instances, 3 edges/)
  t.equal((first.stdout.match(/\[run\]/g) ?? []).length, 4, 'nothing stored: every instance would run')
  const ran = await cli(dir, ['--json', '--set', 'prepare.fail=true'])
  t.equal(ran.code, 1)
  const events = join(dir, 'events.jsonl')
  writeFileSync(events, ran.stdout)
  const failed = await cli(dir, ['dag', '--events', events, '--set', 'prepare.fail=true', '--format', 'mermaid'])
  t.equal(failed.code, 0, failed.stderr)
  t.match(failed.stdout, /class n0,legend_failed failed/, 'the stage that failed is coloured failed')
  t.match(failed.stdout, /n0\["prepare<br\/>1 instance: 1 failed"\]/)
  t.equal((await cli(dir, ['dag', '--events', join(dir, 'missing.jsonl')])).code, 2, 'an unreadable events file is a usage error')
  const one = await cli(dir, ['dag', '--stage', 'prepare'])
  t.match(one.stdout, /^1 stage, 0 edges\nprepare {2}1 instance\n$/, '--stage draws the selection and its upstream only')
  const bad = await cli(dir, ['dag', '--format', 'png'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--format expects one of text, mermaid, dot, svg/)
  t.equal((await cli(dir, ['status', '--instances'])).code, 2, '--instances is a flag of dag only')
})
