/**
 * The `publish:` block of pipeline.yaml: which stored outputs a person wants to see in the working
 * tree, and where. Top level, keyed by the target path (relative to the project root):
 *
 * ```yaml
 * publish:
 *   results/report.html: { stage: figures, output: report.html }
 *   results/figures/:    { stage: figures, output: figures }      # a dir output: a directory
 * ```
 *
 * Only a stage with exactly one instance in the profile in effect can be published (a matrix
 * stage's instances are gathered by a stage of their own, e.g. `spectra-table`, whose single
 * output is then published). A target is a plain relative path inside the project, not under a
 * place cusp or the project's code owns (artifacts/, .cusp/, src/, stages/, ...), not `..`, and no
 * two targets are equal or nested. Publishing is never an input: targets are not hashed into any
 * fingerprint, and a published file is only ever a read-only copy of stored bytes (published.ts).
 */
import { isAbsolute, posix } from 'node:path'
import type { Ctx } from './stage-decl.ts'
import type { PublishEntry, StageInstance } from './types.ts'

export type { PublishEntry } from './types.ts'

/** Top-level directories (and files) of a project that a publish target may not be in or be. */
const RESERVED = ['artifacts', '.cusp', '.git', 'src', 'stages', 'schemas', 'node_modules', 'test', 'bench', 'scripts', 'docs']
const RESERVED_FILES = ['pipeline.yaml', 'pipeline.lock', 'package.json', 'package-lock.json', 'claims.yaml']

/** Why `raw` cannot be a publish target, or its normalised form. */
export function normaliseTarget(raw: string): { target: string } | { problem: string } {
  if (raw.trim() === '') return { problem: 'is empty' }
  if (raw.includes('\\')) return { problem: "uses '\\': write paths with '/'" }
  if (isAbsolute(raw) || /^[A-Za-z]:/.test(raw)) return { problem: 'is absolute: write it relative to the project root, e.g. results/x' }
  if (raw.split('/').includes('..')) return { problem: "contains '..': a published file must stay inside the project" }
  if (/[\0-\x1f]/.test(raw)) return { problem: 'contains a control character' }
  const target = posix.normalize(raw).replace(/\/+$/, '')
  if (target === '' || target === '.') return { problem: 'is the project root itself' }
  if (target.split('/').some((s) => s.startsWith('.cusp-publish'))) return { problem: "uses the name '.cusp-publish*', which cusp keeps" }
  const top = target.split('/')[0] ?? ''
  if (RESERVED.includes(top)) return { problem: `is inside ${top}/, which cusp or the project's code owns: publish under results/` }
  if (RESERVED_FILES.includes(target)) return { problem: `would overwrite ${target}` }
  return { target }
}

/**
 * Validate the (schema-checked) `publish:` block against the pipeline's instances; problems go to
 * `ctx.failures` at the offending key. Entries come back sorted by target.
 */
export function resolvePublish(ctx: Ctx, raw: unknown, instances: readonly StageInstance[]): PublishEntry[] {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return []
  const out: PublishEntry[] = []
  const problem = (key: string, message: string, at: 'key' | 'value' = 'key') =>
    ctx.failures.push({ reason: 'schema-violation', location: ctx.src.locate(['publish', key], at), message })
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const t = normaliseTarget(key)
    if ('problem' in t) {
      problem(key, `publish target ${JSON.stringify(key)} ${t.problem}`)
      continue
    }
    const { stage, output } = (value ?? {}) as { stage?: unknown; output?: unknown }
    if (typeof stage !== 'string' || typeof output !== 'string') continue // the schema reported it
    const of = instances.filter((i) => i.stage === stage)
    if (of.length === 0) {
      problem(key, `publish ${key}: there is no enabled stage ${JSON.stringify(stage)} in this profile. Name a stage that runs.`, 'value')
      continue
    }
    if (of.length > 1) {
      problem(
        key,
        `publish ${key}: stage ${stage} has ${of.length} instances; only a single-instance stage can be published (gather a matrix stage's outputs in a stage of their own, like spectra-table).`,
        'value',
      )
      continue
    }
    const inst = of[0]!
    const decl = inst.outputs.find((o) => o.name === output)
    if (decl === undefined) {
      const names = inst.outputs.map((o) => o.name).join(', ')
      problem(key, `publish ${key}: stage ${stage} declares no output ${JSON.stringify(output)} (its outputs: ${names})`, 'value')
      continue
    }
    if (decl.kind === 'file' && key.endsWith('/'))
      problem(key, `publish ${key}: output ${output} is a file, but the target ends in '/' (a directory); drop the '/'`)
    else out.push({ target: t.target, instance: inst.id, output, kind: decl.kind })
  }
  out.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0))
  for (let i = 0; i < out.length; i++) {
    for (let j = i + 1; j < out.length; j++) {
      const a = out[i]!
      const b = out[j]!
      if (a.target === b.target || b.target.startsWith(`${a.target}/`)) {
        const key = Object.keys(raw as object).find((k) => normaliseTarget(k) && posix.normalize(k).replace(/\/+$/, '') === b.target)
        problem(key ?? b.target, `publish targets collide: ${b.target} ${a.target === b.target ? 'is' : 'is inside'} ${a.target}`)
      }
    }
  }
  return out
}
