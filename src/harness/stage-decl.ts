/**
 * Turns one schema-valid `stages.<name>` entry (plus its profile overlay and `--set`
 * overrides) into its stage instances: checks the implementation and output names, builds
 * the matrix, merges params in the documented order (stage <- profile <- matrix <- --set),
 * and validates each instance's params against the implementation's schema, filling
 * defaults. Every problem is pushed onto the shared failure list with its YAML location;
 * deps are only declared here and resolved later (deps.ts), once every stage is known.
 */
import type { ValidateFunction } from 'ajv'
import type { DescribedError } from './ajv-errors.ts'
import { describeAjvErrors } from './ajv-errors.ts'
import type { Axis } from './matrix.ts'
import { badMatrixValue, expandMatrix, instanceId, renderValue } from './matrix.ts'
import type { Override } from './overrides.ts'
import { deepMerge, setIn, sortKeysDeep } from './overrides.ts'
import type { ProjectReader } from './project-reader.ts'
import { withhold } from './redact.ts'
import { plainCredentialErrors, secretPaths, secretValues } from './secret-params.ts'
import { unsafeNameReason } from './safe-name.ts'
import type { PathSegment, SourceMap } from './source-location.ts'
import { formatPath } from './source-location.ts'
import { compileParamsSchema, paramsSchemaPath } from './stage-schemas.ts'
import type { Failure, JsonObject, JsonPrimitive, JsonValue, OutputDecl, Resources, StageInstance } from './types.ts'

/** What every analysis step shares: where things are, how to read files, what went wrong. */
export interface Ctx {
  src: SourceMap
  reader: ProjectReader
  failures: Failure[]
}

/** One declared dep of a stage, before resolution to instances. */
export interface DepDecl {
  /** Where it was declared: `stages.<name>.deps.<as>`, or the profile's entry that added it. */
  at: PathSegment[]
  as: string
  stage: string
  output: string
  all: boolean
  where: JsonObject | undefined
  match: string[] | undefined
}

/** A stage after its own checks: its instances (deps not yet filled) and declared deps. */
export interface StageDecl {
  name: string
  hasMatrix: boolean
  outputs: ReadonlySet<string>
  deps: DepDecl[]
  /** Empty when the matrix could not be built (then deps onto it are not checked further). */
  instances: StageInstance[]
}

/** A schema-valid profile entry for one stage. */
export interface ProfileEntry {
  profile: string
  enabled?: boolean
  params?: JsonObject
  matrix?: Record<string, JsonValue[]>
  exclude?: JsonObject[]
  deps?: RawStage['deps']
  resources?: Partial<Resources>
  timeout?: number | string
}

/** A schema-valid `stages.<name>` entry. */
export interface RawStage {
  impl?: string
  enabled?: boolean
  provenance?: boolean
  params?: JsonObject
  matrix?: Record<string, JsonValue[]>
  exclude?: JsonObject[]
  outputs: Record<string, 'file' | 'dir'>
  deps?: Record<string, { stage: string; output: string; all?: true; where?: JsonObject; match?: string[] }>
  resources?: Partial<Resources>
  timeout?: number | string
}

export const DEFAULT_RESOURCES: Resources = { cpu: 1, memory: '2Gi', gpu: 0 }

/** Most instances one stage's matrix may expand to (a typo'd axis should fail, not hang). */
export const MAX_INSTANCES = 10_000

/** Where an axis's values came from: a YAML path, or a `--set`. */
type Origin = { path: PathSegment[] } | { set: Override }

/**
 * Build one stage. `sets` are the `--set` overrides naming this stage. Never throws;
 * problems go to `ctx.failures`.
 */
export function buildStage(ctx: Ctx, name: string, raw: RawStage, overlay: ProfileEntry | undefined, sets: Override[]): StageDecl {
  const base: PathSegment[] = ['stages', name]
  const profileBase: PathSegment[] = overlay ? ['profiles', overlay.profile, 'stages', name] : []
  const { validate, secrets } = checkImpl(ctx, name, raw)

  const outputs: OutputDecl[] = []
  for (const [out, kind] of Object.entries(raw.outputs)) {
    if (unsafeNameReason(out) !== undefined) {
      ctx.failures.push({ reason: 'unsafe-path', location: ctx.src.locate([...base, 'outputs', out], 'key'), value: out })
    }
    outputs.push({ name: out, kind })
  }
  outputs.sort((a, b) => (a.name < b.name ? -1 : 1))

  // Deps: declared, then added or replaced by name by the profile in effect.
  const depSources = new Map<string, { d: NonNullable<RawStage['deps']>[string]; at: PathSegment[] }>()
  for (const [as, d] of Object.entries(raw.deps ?? {})) depSources.set(as, { d, at: [...base, 'deps', as] })
  for (const [as, d] of Object.entries(overlay?.deps ?? {})) depSources.set(as, { d, at: [...profileBase, 'deps', as] })
  const deps: DepDecl[] = []
  for (const [as, { d, at }] of depSources) {
    if (unsafeNameReason(as) !== undefined) {
      ctx.failures.push({ reason: 'unsafe-path', location: ctx.src.locate(at, 'key'), value: as })
    }
    if (d.all === true && (d.where !== undefined || d.match !== undefined)) {
      ctx.failures.push({
        reason: 'schema-violation',
        location: ctx.src.locate([...at, 'all'], 'key'),
        message: 'all: true takes every instance, so where/match next to it mean nothing. Keep all: true or where/match, not both.',
      })
    }
    deps.push({ at, as, stage: d.stage, output: d.output, all: d.all === true, where: d.where, match: d.match })
  }

  const resources: Resources = { ...DEFAULT_RESOURCES, ...raw.resources, ...overlay?.resources }
  const timeout =
    overlay?.timeout !== undefined
      ? { seconds: timeoutSeconds(overlay.timeout), from: formatPath([...profileBase, 'timeout']) }
      : raw.timeout !== undefined
        ? { seconds: timeoutSeconds(raw.timeout), from: formatPath([...base, 'timeout']) }
        : undefined
  const hasMatrix = raw.matrix !== undefined || overlay?.matrix !== undefined
  const decl: StageDecl = { name, hasMatrix, outputs: new Set(outputs.map((o) => o.name)), deps, instances: [] }

  // Matrix axes: declared, then replaced/added by the profile, then pinned by --set.
  const axes: Axis[] = []
  const origins = new Map<string, Origin>()
  const addAxes = (matrix: Record<string, JsonValue[]> | undefined, at: PathSegment[]): boolean => {
    if (matrix === undefined) return true
    if (Object.keys(matrix).length === 0) {
      ctx.failures.push({
        reason: 'bad-matrix',
        location: ctx.src.locate(at),
        message: 'is empty. Give it at least one axis (name: [values]) or remove it.',
      })
      return false
    }
    for (const [axis, values] of Object.entries(matrix)) {
      const i = axes.findIndex((a) => a.name === axis)
      const entry = { name: axis, values: values as JsonPrimitive[] }
      if (i >= 0) axes[i] = entry
      else axes.push(entry)
      origins.set(axis, { path: [...at, axis] })
    }
    return true
  }
  const declared = addAxes(raw.matrix, [...base, 'matrix'])
  if (!(addAxes(overlay?.matrix, [...profileBase, 'matrix']) && declared)) return decl
  const paramSets: Override[] = []
  for (const s of sets) {
    const axis = s.path.length === 1 ? axes.find((a) => a.name === s.path[0]) : undefined
    if (axis) {
      axis.values = [s.value as JsonPrimitive]
      origins.set(axis.name, { set: s })
    } else {
      paramSets.push(s)
    }
  }
  if (!checkAxes(ctx, name, axes, origins)) return decl
  // A secret must not become part of an instance id (ids are printed and stored everywhere).
  const secretAxis = axes.find((a) => secrets.some((s) => s === a.name || s.startsWith(`${a.name}.`)))
  if (secretAxis !== undefined) {
    const origin = origins.get(secretAxis.name)!
    ctx.failures.push(
      'set' in origin
        ? {
            reason: 'bad-override',
            override: secretAxis.name,
            message: `${secretAxis.name} is a secret param (x-cusp-secret) and cannot be a matrix axis`,
          }
        : {
            reason: 'bad-matrix',
            location: ctx.src.locate(origin.path, 'key'),
            message: `is a secret param (x-cusp-secret), and a matrix axis becomes part of every instance id. Make it a plain param.`,
          },
    )
    return decl
  }

  const excludeAt: PathSegment[] = overlay?.exclude !== undefined ? [...profileBase, 'exclude'] : [...base, 'exclude']
  const exclude = overlay?.exclude ?? raw.exclude ?? []
  if (!checkExclude(ctx, name, axes, exclude, excludeAt, hasMatrix)) return decl
  const size = axes.reduce((n, a) => n * a.values.length, 1)
  if (size > MAX_INSTANCES) {
    ctx.failures.push({
      reason: 'bad-matrix',
      location: ctx.src.locate(['stages', name, 'matrix'], 'key'),
      message: `expands to ${size} combinations, more than the ${MAX_INSTANCES} one stage may have. Split the stage or use fewer values.`,
    })
    return decl
  }
  const combos = expandMatrix(axes, exclude)
  if (combos.length === 0) {
    ctx.failures.push({
      reason: 'bad-matrix',
      location: ctx.src.locate(excludeAt),
      message: 'removes every combination, so the stage has no instances. Remove entries from exclude.',
    })
    return decl
  }

  const merged = deepMerge(raw.params ?? {}, overlay?.params ?? {})
  const problems = new Map<string, { error: DescribedError; combo: JsonObject; ids: string[] }>()
  for (const combo of combos) {
    let params: JsonObject = { ...merged, ...combo }
    for (const s of paramSets) params = setIn(params, s.path, s.value)
    params = structuredClone(params)
    const id = instanceId(name, axes, combo)
    const invalid = validate !== undefined && !validate(params) ? describeAjvErrors(validate.errors ?? []) : []
    for (const error of [...invalid, ...plainCredentialErrors(params, secrets)]) {
      const key = JSON.stringify(paramsFailure(ctx, name, error, '', axes, origins, paramSets, profileBase, combo))
      const seen = problems.get(key)
      if (seen) seen.ids.push(id)
      else problems.set(key, { error, combo, ids: [id] })
    }
    if (secrets.length > 0) withhold(secretValues(params, secrets))
    decl.instances.push({
      id,
      stage: name,
      impl: `stages/${raw.impl ?? name}`,
      matrix: combo,
      params: sortKeysDeep(params) as JsonObject,
      deps: [],
      outputs: outputs.map((o) => ({ ...o })),
      resources: { ...resources },
      ...(timeout !== undefined ? { timeout: { ...timeout } } : {}),
      ...(raw.provenance === true ? { provenance: true as const } : {}),
      ...(secrets.length > 0 ? { secrets: [...secrets] } : {}),
    })
  }
  for (const { error, combo, ids } of problems.values()) {
    const inst = hasMatrix ? ` in ${ids[0]}${ids.length > 1 ? ` and ${ids.length - 1} more` : ''}` : ''
    const where = `${inst} (per ${paramsSchemaPath(raw.impl ?? name)})`
    ctx.failures.push(paramsFailure(ctx, name, error, where, axes, origins, paramSets, profileBase, combo))
  }
  return decl
}

/** A schema-valid `timeout:` (seconds, or `90s` / `45m` / `6h`) in seconds. */
export function timeoutSeconds(t: number | string): number {
  if (typeof t === 'number') return t
  const n = Number(t.slice(0, -1))
  return t.endsWith('h') ? n * 3600 : t.endsWith('m') ? n * 60 : n
}

/** Impl name safe, code present, params schema present and valid; returns its validator and secret param paths. */
function checkImpl(ctx: Ctx, name: string, raw: RawStage): { validate: ValidateFunction | undefined; secrets: string[] } {
  const validate = checkSchema(ctx, name, raw)
  if (validate === undefined) return { validate, secrets: [] }
  return { validate, secrets: secretPaths(JSON.parse(ctx.reader.readFile(paramsSchemaPath(raw.impl ?? name))!)) }
}

function checkSchema(ctx: Ctx, name: string, raw: RawStage): ValidateFunction | undefined {
  const impl = raw.impl ?? name
  const location = raw.impl !== undefined ? ctx.src.locate(['stages', name, 'impl']) : ctx.src.locate(['stages', name, 'impl'], 'key')
  if (unsafeNameReason(impl) !== undefined) {
    ctx.failures.push({ reason: 'unsafe-path', location, value: impl })
    return undefined
  }
  if (!ctx.reader.exists(`stages/${impl}/index.ts`)) {
    ctx.failures.push({ reason: 'unknown-stage-impl', location, impl })
  }
  const file = paramsSchemaPath(impl)
  const text = ctx.reader.readFile(file)
  if (text === undefined) {
    ctx.failures.push({ reason: 'bad-stage-schema', location, file, message: 'is missing' })
    return undefined
  }
  const compiled = compileParamsSchema(text)
  if (!compiled.ok) {
    ctx.failures.push({ reason: 'bad-stage-schema', location, file, message: compiled.error })
    return undefined
  }
  return compiled.value
}

/** Every axis non-empty with safe, distinct scalar values; drops duplicates after reporting. */
function checkAxes(ctx: Ctx, stage: string, axes: Axis[], origins: Map<string, Origin>): boolean {
  let good = true
  for (const axis of axes) {
    const origin = origins.get(axis.name)!
    if ('path' in origin && axis.values.length === 0) {
      ctx.failures.push({
        reason: 'bad-matrix',
        location: ctx.src.locate(origin.path),
        message: 'has no values. Give the axis at least one value or remove it.',
      })
      good = false
    }
    const seen = new Set<string>()
    const kept: JsonPrimitive[] = []
    axis.values.forEach((v, i) => {
      const why = badMatrixValue(v)
      if (why !== undefined) {
        good = false
        if ('set' in origin) ctx.failures.push({ reason: 'bad-override', override: origin.set.text, message: `a matrix value ${why}` })
        else
          ctx.failures.push({
            reason: 'bad-matrix',
            location: ctx.src.locate([...origin.path, i]),
            message: `value ${why}. Change or remove this value.`,
          })
        return
      }
      const text = renderValue(v)
      if (seen.has(text)) {
        const at = 'path' in origin ? ctx.src.locate([...origin.path, i]) : ctx.src.locate(['stages', stage, 'matrix', axis.name])
        const example: JsonObject = Object.fromEntries(axes.map((a) => [a.name, a.values[0] ?? null]))
        const id = instanceId(stage, axes, { ...example, [axis.name]: v })
        ctx.failures.push({ reason: 'duplicate-instance-id', location: at, id })
        return
      }
      seen.add(text)
      kept.push(v)
    })
    axis.values = kept
  }
  return good
}

/** exclude only with a matrix, and only naming its axes. */
function checkExclude(ctx: Ctx, stage: string, axes: Axis[], exclude: JsonObject[], at: PathSegment[], hasMatrix: boolean): boolean {
  if (exclude.length > 0 && !hasMatrix) {
    ctx.failures.push({
      reason: 'bad-matrix',
      location: ctx.src.locate(at, 'key'),
      message: `stage ${stage} has no matrix, so there is nothing to exclude. Remove exclude or add a matrix.`,
    })
    return false
  }
  let good = true
  const names = axes.map((a) => a.name)
  exclude.forEach((entry, i) => {
    for (const key of Object.keys(entry)) {
      if (!names.includes(key)) {
        good = false
        ctx.failures.push({
          reason: 'bad-matrix',
          location: ctx.src.locate([...at, i, key], 'key'),
          message: `${JSON.stringify(key)} is not a matrix axis of stage ${stage} (axes: ${names.join(', ')}). Use an axis name.`,
        })
      }
    }
  })
  return good
}

/**
 * Locate one params error: inside a --set value it is that override's fault; on a matrix
 * axis, at the offending value; else where the param is written (profile first), falling
 * back to the nearest written ancestor under `stages.<name>.params`.
 */
function paramsFailure(
  ctx: Ctx,
  stage: string,
  error: DescribedError,
  where: string,
  axes: Axis[],
  origins: Map<string, Origin>,
  paramSets: Override[],
  profileBase: PathSegment[],
  combo: JsonObject,
): Failure {
  const { path, at } = error
  const message = `${error.problem}${where}. ${error.hint}`
  const cli = `params.${formatPath(path)} ${error.problem}${where}`
  const set = [...paramSets].reverse().find((s) => s.path.every((seg, i) => String(path[i]) === seg))
  if (set) return { reason: 'bad-override', override: set.text, message: cli }
  const head = path[0]
  const axis = path.length === 1 ? axes.find((a) => a.name === head) : undefined
  if (axis) {
    const origin = origins.get(axis.name)!
    if ('set' in origin) return { reason: 'bad-override', override: origin.set.text, message: cli }
    const original = origin.path
    // A value error points at the value; a key error ("unknown key") at the axis itself.
    const index = at === 'value' ? axis.values.findIndex((v) => v === combo[axis.name]) : -1
    const location = index >= 0 ? ctx.src.locate([...original, index]) : ctx.src.locate(original, 'key')
    return { reason: 'params-invalid', location: { ...location, path: formatPath(['stages', stage, 'params', ...path]) }, stage, message }
  }
  const inProfile = [...profileBase, 'params', ...path]
  const location =
    profileBase.length > 0 && ctx.src.has(inProfile)
      ? ctx.src.locate(inProfile, at)
      : ctx.src.locate(['stages', stage, 'params', ...path], at)
  return { reason: 'params-invalid', location, stage, message }
}
