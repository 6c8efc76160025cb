/**
 * The analyzer: pipeline.yaml in, `Result<ValidPipeline, Failure[]>` out. It is the only
 * producer of a `ValidPipeline`, so nothing unvalidated reaches the planner or executor.
 * It reads files only through the injected `ProjectReader`, collects every problem it can
 * find (not only the first), and locates each at file:line:column plus the offending path.
 *
 * The format (schema 1; the JSON Schema is schemas/pipeline.schema.json):
 *
 * ```yaml
 * schema: 1
 * default_profile: cpu                      # optional; --profile wins
 * store: s3://bucket/prefix                 # optional; or { url, endpoint, region, path_style, ... };
 *                                           # --store and CUSP_STORE win; default <project>/artifacts
 * stages:
 *   prepare-data:                           # stage name: [a-z][a-z0-9-]*
 *     impl: prepare-data                    # optional, default = stage name: stages/<impl>/index.ts,
 *                                           #   params schema schemas/stages/<impl>.params.schema.json
 *     params: { source: synthetic, n: 100 }
 *     outputs: { dataset: file, manifest: file }   # name -> file | dir; names [A-Za-z0-9][A-Za-z0-9._-]*
 *     resources: { cpu: 1, memory: 2Gi, gpu: 0 }  # optional, these defaults
 *   train:
 *     matrix: { arch: [cnn, mlp], eta: [0.01, 0.02] }  # cartesian product; axes are param names
 *     exclude: [{ arch: mlp, eta: 0.02 }]             # optional
 *     params: { steps: 100 }
 *     deps:
 *       data: { stage: prepare-data, output: dataset }          # plain upstream: its one instance
 *     outputs: { checkpoints: dir, telemetry: file }
 *   probe:
 *     matrix: { arch: [cnn, mlp] }
 *     deps:
 *       ckpt: { stage: train, output: checkpoints, match: [arch] } # same arch (maybe several)
 *   figures:
 *     deps:
 *       runs: { stage: train, output: telemetry, all: true }       # every instance
 *       cnn:  { stage: train, output: telemetry, where: { arch: cnn } }
 * profiles:
 *   smoke:
 *     stages:
 *       train: { params: { steps: 5 }, matrix: { eta: [0.1] } }    # deep-merge params, replace axes
 *                          # also: exclude (replaces), resources (override per key),
 *                          # deps (add or replace by name), enabled (switch the stage on/off)
 * ```
 *
 * Instance ids: `stage`, or `stage@k1=v1,k2=v2` (axes in declared order; a profile's new
 * axes after them). Params of an instance: stage params <- profile params (deep merge) <-
 * matrix values <- `--set stage.param=value` (a `--set` of a matrix axis pins that axis to
 * one value), then validated against the impl's params schema with defaults filled.
 * A matrix upstream must be selected with all/where/match; a dep resolving to no instance is
 * an error. A stage with `enabled: false` (in itself or in the profile in effect) has no
 * instances, and a dep on it is an error; this is how one file holds stages that only some
 * profiles run (e.g. the CIFAR-10 download, paper profile only). Params keys are sorted, outputs by name, deps by (as, instance).
 *
 * Failure locations: `file` is the pipeline file's name relative to the project root
 * (`pipeline.yaml`), `path` the dotted path of the offending node. Command-line problems
 * (`--set`) are `bad-override` failures without a location; a missing pipeline file is `usage`.
 */
import { readFileSync } from 'node:fs'
import { dirname, basename, resolve } from 'node:path'
import type { ValidateFunction } from 'ajv'
import { LineCounter, parseDocument, visit } from 'yaml'
import { describeAjvErrors } from './ajv-errors.ts'
import { reportCycles, resolveDeps, topologicalOrder } from './deps.ts'
import { injectStageGraph, stageGraphParams } from './dag-graph.ts'
import type { Override } from './overrides.ts'
import { isObject, parseOverride } from './overrides.ts'
import { clip } from './redact.ts'
import { jsonDataMessage, jsonDataProblem, MAX_ALIASES, MAX_PIPELINE_BYTES, MAX_REPORTED_FAILURES } from './json-data.ts'
import type { ProjectReader } from './project-reader.ts'
import { SourceMap } from './source-location.ts'
import type { Ctx, ProfileEntry, RawStage, StageDecl } from './stage-decl.ts'
import { buildStage } from './stage-decl.ts'
import { paramsSchemaPath, SCHEMA_OPTIONS } from './stage-schemas.ts'
import { didYouMean } from './suggest.ts'
import { resolvePublish } from './published-decl.ts'
import { cachedValidator } from './validator-cache.ts'
import type { Failure, JsonObject, Result, StageInstance, ValidPipeline } from './types.ts'
import { fail, ok } from './types.ts'

export type { ProjectReader } from './project-reader.ts'
export { memoryReader, nodeReader } from './project-reader.ts'

/** What to analyze and how. */
export interface AnalyzeOptions {
  /** Absolute path of pipeline.yaml; the project root is its directory. */
  file: string
  /** --profile; else the file's `default_profile`, else none. */
  profile?: string
  /** --set values, each "stage.param=value" (value parsed as a YAML scalar or flow value). */
  overrides?: string[]
  reader: ProjectReader
}

let validatePipeline: ValidateFunction | undefined

/** The pipeline schema's validator, compiled once per schema text (validator-cache.ts). */
function pipelineValidator(): ValidateFunction {
  const text = readFileSync(new URL('../../schemas/pipeline.schema.json', import.meta.url), 'utf8')
  return cachedValidator(text, JSON.parse(text) as object, 'draft-07', SCHEMA_OPTIONS)
}

/**
 * Validate pipeline.yaml and expand it into stage instances. On success every instance's
 * params are validated with defaults filled and its deps resolved; `order` is a
 * deterministic topological order. On failure, every problem found, sorted by location.
 */
export function analyze(opts: AnalyzeOptions): Result<ValidPipeline, Failure[]> {
  const file = resolve(opts.file)
  const root = dirname(file)
  const read = opts.reader.readBounded?.(file, MAX_PIPELINE_BYTES) ?? readWhole(opts.reader, file)
  if ('problem' in read) {
    return fail([{ reason: 'usage', message: `${file} ${read.problem}. Run from the project directory or pass the right path.` }])
  }
  const text = read.text
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, merge: true, logLevel: 'error' })
  const src = new SourceMap(basename(file), doc, lines)
  if (doc.errors.length > 0) {
    const seen = new Set<string>()
    const errors: Failure[] = []
    for (const e of doc.errors) {
      const location = src.at(e.pos[0])
      const key = `${location.line}:${location.column}:${e.message}`
      if (seen.has(key)) continue
      seen.add(key)
      errors.push({ reason: 'yaml-syntax', location, message: e.message.replace(/\.$/, '') })
    }
    return fail(capped(errors))
  }
  const ctx: Ctx = { src, reader: opts.reader, failures: [] }
  let data: unknown
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES })
  } catch (e) {
    // toJS throws on an alias whose anchor is missing (or on an alias bomb): point at the alias.
    let offset = 0
    visit(doc, {
      Alias(_, node) {
        if (node.resolve(doc) !== undefined) return undefined
        offset = node.range?.[0] ?? 0
        return visit.BREAK
      },
    })
    return fail([{ reason: 'yaml-syntax', location: src.at(offset), message: e instanceof Error ? e.message : String(e) }])
  }
  const notJson = jsonDataProblem(data)
  if (notJson !== undefined)
    return fail([
      {
        reason: 'schema-violation',
        location: src.locate(notJson.path),
        message: `this value is ${jsonDataMessage(notJson)}. Write it as JSON data (quote a date or a large number to keep it as text).`,
      },
    ])

  const broken = { stages: new Set<string>(), profiles: new Set<string>() }
  validatePipeline ??= pipelineValidator()
  if (!validatePipeline(data)) {
    for (const e of describeAjvErrors(validatePipeline.errors ?? [])) {
      ctx.failures.push({ reason: 'schema-violation', location: src.locate(e.path, e.at), message: `${e.problem}. ${e.hint}` })
      const [top, name] = e.path
      if (top === 'stages' && name !== undefined) broken.stages.add(String(name))
      if (top === 'profiles' && name !== undefined) broken.profiles.add(String(name))
    }
  }
  if (!isObject(data) || !isObject(data['stages'])) return fail(capped(sorted(ctx.failures)))
  const stages = data['stages'] as unknown as Record<string, RawStage>
  const profiles = (isObject(data['profiles']) ? data['profiles'] : {}) as Record<string, { stages?: Record<string, JsonObject> }>

  const profile = chooseProfile(ctx, opts.profile, data['default_profile'], profiles)
  checkProfileStages(ctx, profiles, stages, broken.profiles)
  const sets = parseOverrides(ctx, opts.overrides ?? [], stages)

  const decls = new Map<string, StageDecl>()
  const disabled = new Set<string>()
  for (const [name, raw] of Object.entries(stages)) {
    if (broken.stages.has(name)) continue
    const overrides = profile !== undefined && !broken.profiles.has(profile) ? profiles[profile]?.stages : undefined
    const entry = overrides !== undefined && Object.hasOwn(overrides, name) ? overrides[name] : undefined
    const overlay = entry !== undefined ? ({ profile, ...entry } as ProfileEntry) : undefined
    if ((overlay?.enabled ?? raw.enabled ?? true) === false) {
      disabled.add(name)
      continue
    }
    decls.set(
      name,
      buildStage(
        ctx,
        name,
        raw,
        overlay,
        sets.filter((s) => s.stage === name),
      ),
    )
  }
  for (const s of sets)
    if (disabled.has(s.stage))
      ctx.failures.push({
        reason: 'bad-override',
        override: s.text,
        message: `stage ${s.stage} is not enabled in ${profile === undefined ? 'this pipeline' : `profile ${profile}`}`,
      })
  resolveDeps(ctx, decls, new Set(Object.keys(stages)), disabled, profile)
  const cyclic = reportCycles(ctx, decls)
  if (ctx.failures.length > 0 || cyclic) return fail(capped(sorted(ctx.failures)))

  const all: StageInstance[] = [...decls.values()].flatMap((d) => d.instances)
  // A param marked `x-cusp-stage-graph` gets the stage graph (dag-graph.ts), so it is fingerprinted.
  injectStageGraph(all, (impl) => stageGraphParams(opts.reader.readFile(paramsSchemaPath(impl))))
  const publish = resolvePublish(ctx, data['publish'], all)
  if (ctx.failures.length > 0) return fail(capped(sorted(ctx.failures)))
  const order = topologicalOrder(all)
  const byId = new Map(all.map((i) => [i.id, i]))
  const instances = new Map(order.map((id) => [id, byId.get(id)!]))
  const estimate = isObject(data['estimate']) ? { estimate: structuredClone(data['estimate']) as ValidPipeline['estimate'] } : {}
  const published = publish.length > 0 ? { publish } : {}
  return ok({ __valid: true, file, root, profile, ...storeOf(data['store']), ...estimate, instances, order, ...published })
}

/**
 * The profile in effect: --profile, else default_profile, else none. An unknown name is
 * reported wherever it was written (default_profile is checked even when --profile wins).
 */
function chooseProfile(ctx: Ctx, flag: string | undefined, fileDefault: unknown, profiles: Record<string, unknown>): string | undefined {
  const known = Object.keys(profiles)
  const fileDefaultOk = typeof fileDefault !== 'string' || Object.hasOwn(profiles, fileDefault)
  if (!fileDefaultOk) {
    ctx.failures.push({ reason: 'unknown-profile', location: ctx.src.locate(['default_profile']), profile: String(fileDefault), known })
  }
  if (flag !== undefined) {
    if (Object.hasOwn(profiles, flag)) return flag
    ctx.failures.push({ reason: 'unknown-profile', location: ctx.src.locate(['profiles'], 'key'), profile: flag, known })
    return undefined
  }
  return typeof fileDefault === 'string' && fileDefaultOk ? fileDefault : undefined
}

/** Every profile (used or not) may only override stages that exist. */
function checkProfileStages(
  ctx: Ctx,
  profiles: Record<string, { stages?: Record<string, unknown> }>,
  stages: Record<string, unknown>,
  broken: ReadonlySet<string>,
): void {
  for (const [name, p] of Object.entries(profiles)) {
    if (broken.has(name)) continue
    for (const stage of Object.keys(p.stages ?? {})) {
      if (Object.hasOwn(stages, stage)) continue
      ctx.failures.push({
        reason: 'schema-violation',
        location: ctx.src.locate(['profiles', name, 'stages', stage], 'key'),
        message: `profile ${name} overrides stage ${JSON.stringify(stage)}, which is not in stages (${Object.keys(stages).join(', ')}).${didYouMean(stage, Object.keys(stages))} Fix the name or remove the entry.`,
      })
    }
  }
}

function parseOverrides(ctx: Ctx, texts: readonly string[], stages: Record<string, unknown>): Override[] {
  const out: Override[] = []
  for (const text of texts) {
    const r = parseOverride(text)
    if (!r.ok) ctx.failures.push(r.error)
    else if (!Object.hasOwn(stages, r.value.stage)) {
      const hint = didYouMean(r.value.stage, Object.keys(stages))
      ctx.failures.push({
        reason: 'bad-override',
        override: text,
        message: `there is no stage named ${JSON.stringify(r.value.stage)} (stages: ${Object.keys(stages).join(', ')}).${hint}`,
      })
    } else out.push(r.value)
  }
  return out
}

/** The first MAX_REPORTED_FAILURES failures, and one line counting the rest. */
function capped(failures: Failure[]): Failure[] {
  // A hostile file can make one message (a path of huge keys, a quoted value) very long too.
  const short = failures.slice(0, MAX_REPORTED_FAILURES).map((f) => ({
    ...f,
    ...('location' in f ? { location: { ...f.location, path: clip(f.location.path, 200) } } : {}),
    ...('message' in f ? { message: clip(f.message, 1000) } : {}),
  })) as Failure[]
  if (failures.length <= MAX_REPORTED_FAILURES) return short
  const more = failures.length - MAX_REPORTED_FAILURES
  return [
    ...short,
    { reason: 'usage', message: `... and ${more} more problem${more === 1 ? '' : 's'} not shown; fix the ones above first.` },
  ]
}

/** For readers without `readBounded` (in-memory test projects): the text, or why there is none. */
function readWhole(reader: ProjectReader, file: string): { text: string } | { problem: string } {
  const text = reader.readFile(file)
  return text === undefined ? { problem: 'does not exist or cannot be read' } : { text }
}

/** Failures without a location first (command-line problems), then by line and column. */
function sorted(failures: Failure[]): Failure[] {
  const pos = (f: Failure): [number, number] => ('location' in f ? [f.location.line, f.location.column] : [0, 0])
  return failures
    .map((f, i) => ({ f, i }))
    .sort((a, b) => {
      const [la, ca] = pos(a.f)
      const [lb, cb] = pos(b.f)
      return la - lb || ca - cb || a.i - b.i
    })
    .map((x) => x.f)
}

/**
 * The file's `store:` (already schema-checked) as one spec: the string itself, or the object's
 * `url` with its S3 options appended as query parameters (the form `--store` also accepts), so
 * the same spec reaches containers unchanged.
 */
function storeOf(raw: unknown): Pick<ValidPipeline, 'store'> {
  if (typeof raw === 'string') return { store: raw }
  if (!isObject(raw) || typeof raw['url'] !== 'string') return {}
  const { url, ...options } = raw
  const query = new URLSearchParams()
  for (const [k, v] of Object.entries(options).sort(([a], [b]) => (a < b ? -1 : 1))) query.set(k, String(v))
  const q = query.toString()
  return { store: q === '' ? url : `${url}${url.includes('?') ? '&' : '?'}${q}` }
}
