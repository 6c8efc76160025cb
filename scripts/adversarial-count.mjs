#!/usr/bin/env node
/**
 * Counts the adversarial test cases per category, and with --run how many of them pass.
 *
 *   node scripts/adversarial-count.mjs            list the cases (fast: tap --only enumerates
 *                                                 every top-level t.test without running its body)
 *   node scripts/adversarial-count.mjs --run      run the files (tap, CI=true) and count passes
 *   node scripts/adversarial-count.mjs --tap F    read a saved `tap --reporter=tap` output instead
 *
 * Prints a table (category, cases, passed, files) and, last, one JSON line:
 *   {"categories":{"pipeline":N,...},"total":N}            plus "passed":{...},"passedTotal":M with --run/--tap
 *
 * What counts as a case: one top-level `t.test` of a file listed in RULES below (a test generated
 * in a loop over a table of inputs counts once per input, as tap runs it), named in tap's own
 * output so loops, helpers and fixtures need no parsing here. A case's category is the first rule
 * of its file whose pattern matches its name; a rule with category `null` excludes a test that is
 * not an adversarial case (a control that checks the well-formed input still works, a unit test of
 * a helper). A test of a listed file that no rule matches makes the script fail (exit 1), so a new
 * test must be classified here. With --run, a case passes when tap reports it `ok`, not skipped,
 * with at least one assertion (its plan `1..N`, N > 0); a case that ran no assertion is reported.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** The categories of issue 10's adversarial suite, in the order the table prints them. */
const CATEGORIES = {
  pipeline: 'pipeline.yaml, --set and the command line',
  lock: 'lock files',
  records: 'run records and listings from a store',
  formats: 'archives and tensors',
  store: 'store faults',
  concurrency: 'concurrency and crashes',
  credentials: 'credentials',
}

const CONTROL = [/\bcontrol: /, null]
/** [file, [[name pattern, category or null], ...]]: first match wins. */
const RULES = [
  [
    'test/harness/adversarial-inputs.test.ts',
    [
      [/^(--set |pipeline file with |--file |--executor )/, 'pipeline'],
      [/^(pipeline\.lock with |a stale lock owner file)/, 'lock'],
      [/secret|password|credential|export --format argo|--json events/, 'credentials'],
      [/^two runs of one instance/, 'concurrency'],
      [/^a file in place of /, 'store'],
    ],
  ],
  [
    'test/harness/lockfile.test.ts',
    [
      [/^invalid locks are rejected|any edit of its bytes is checked/, 'lock'],
      [/./, null], // round trips and the writer: unit tests of the format
    ],
  ],
  ['test/harness/record-attack.test.ts', [[/./, 'records']]],
  ['test/harness/signed-cli.test.ts', [[/./, 'records']]],
  ['test/harness/terminal-controls.test.ts', [CONTROL, [/^pipeline\.lock /, 'lock'], [/^a run record/, 'records']]],
  [
    'test/harness/store-adversarial.test.ts',
    [
      CONTROL,
      [/round trip/, null],
      [/^(record|declared outputs|signed records|listing|registry): /, 'records'],
      [/^(fault: |fsck |gc: )/, 'store'],
    ],
  ],
  [
    'test/harness/s3-trust.test.ts',
    [
      [/planted in the bucket|oversized record|signed records/, 'records'],
      [/./, 'store'],
    ],
  ],
  ['test/harness/store-faults.test.ts', [[/./, 'store']]],
  ['test/harness/s3-faults.test.ts', [[/./, 'store']]],
  ['test/harness/store-repair.test.ts', [[/./, 'store']]],
  ['test/harness/fsck-cli.test.ts', [[/./, 'store']]],
  [
    'test/harness/s3-gc.test.ts',
    [
      [/plan lists what the lock does not reference/, 'store'],
      [/./, null], // a server that lacks one API: compatibility, not an attack
    ],
  ],
  ['test/data/adversarial-formats.test.ts', [CONTROL, [/./, 'formats']]],
  ['test/harness/concurrency.test.ts', [[/./, 'concurrency']]],
  ['test/harness/resume-and-lock.test.ts', [[/./, 'concurrency']]],
  [
    'test/harness/secret-sweep.test.ts',
    [
      [/still reaches/, null], // the control: a plain --set is not refused
      [/./, 'credentials'],
    ],
  ],
  ['test/harness/relay-redact.test.ts', [[/./, 'credentials']]],
]

const args = process.argv.slice(2)
const tapFile = args.includes('--tap') ? args[args.indexOf('--tap') + 1] : undefined
const run = args.includes('--run') || tapFile !== undefined
const files = RULES.map(([f]) => f)

let tap
if (tapFile !== undefined) tap = readFileSync(tapFile, 'utf8')
else {
  const r = spawnSync('npx', ['tap', ...(run ? [] : ['--only']), '--reporter=tap', ...files], {
    encoding: 'utf8',
    env: { ...process.env, CI: 'true' },
    maxBuffer: 256 << 20,
  })
  tap = `${r.stdout}\n${r.stderr}`
}

/** Top-level subtests of every file in `tap`: { file, name, ok, skip, asserts }. */
function parseTap(text) {
  const out = []
  let file
  let plan
  for (const line of text.split('\n')) {
    let m
    if ((m = /^# Subtest: (\S+\.test\.[mc]?[jt]s)$/.exec(line))) {
      file = m[1]
      continue
    }
    if (file === undefined) continue
    if ((m = /^ {8}1\.\.(\d+)/.exec(line))) plan = Number(m[1])
    else if (/^ {4}# Subtest: /.test(line)) plan = undefined
    else if ((m = /^ {4}(not )?ok \d+ - (.*)$/.exec(line))) {
      let name = m[2].replace(/ # time=[\d.]+m?s$/, '')
      const directive = / # (SKIP|TODO)\b.*$/i.exec(name)
      if (directive) name = name.slice(0, directive.index)
      out.push({ file, name: name.replace(/\\#/g, '#'), ok: m[1] === undefined, skip: directive !== null, asserts: plan })
      plan = undefined
    }
  }
  return out
}

const tests = parseTap(tap)
const cases = Object.fromEntries(Object.keys(CATEGORIES).map((c) => [c, 0]))
const passed = Object.fromEntries(Object.keys(CATEGORIES).map((c) => [c, 0]))
const filesOf = Object.fromEntries(Object.keys(CATEGORIES).map((c) => [c, new Set()]))
const problems = []
for (const f of files) if (!tests.some((x) => x.file === f)) problems.push(`${f}: no tests found in tap's output`)
for (const x of tests) {
  const rules = RULES.find(([f]) => f === x.file)?.[1]
  if (rules === undefined) continue
  const rule = rules.find(([re]) => re.test(x.name))
  if (rule === undefined) {
    problems.push(`${x.file}: unclassified test "${x.name}" (add a rule in scripts/adversarial-count.mjs)`)
    continue
  }
  const category = rule[1]
  if (category === null) continue
  cases[category]++
  filesOf[category].add(x.file.replace(/^test\//, ''))
  if (!run) continue
  if (x.ok && !x.skip && (x.asserts ?? 0) > 0) passed[category]++
  else problems.push(`${x.file}: ${x.skip ? 'skipped' : !x.ok ? 'FAILED' : 'no assertion'}: ${x.name}`)
}

const total = Object.values(cases).reduce((a, b) => a + b, 0)
const passedTotal = Object.values(passed).reduce((a, b) => a + b, 0)
const rows = Object.keys(CATEGORIES).map((c) => [c, String(cases[c]), run ? String(passed[c]) : '-', [...filesOf[c]].join(', ')])
rows.push(['total', String(total), run ? String(passedTotal) : '-', ''])
const header = ['category', 'cases', 'passed', 'files']
const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
for (const r of [header, ...rows]) console.log(r.map((s, i) => (i === 3 ? s : s.padEnd(width[i]))).join('  '))
for (const p of problems) console.error(p)
console.log(JSON.stringify({ categories: cases, total, ...(run ? { passed, passedTotal } : {}) }))
process.exitCode = problems.length > 0 ? 1 : 0
