/**
 * Command-line parsing for `npm run pipeline -- ...`: turns argv into one typed `Command`, or a
 * `usage` Failure. Parsing is strict (node:util parseArgs): an unknown flag, a missing value or a
 * stray positional is a usage error, never silently ignored. Each command accepts the common
 * flags (which pipeline, profile, overrides, store, JSON output); only `run` accepts the run
 * flags. Nothing here touches the file system, so every rule is testable as a pure function.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { fail, ok, type Failure, type Result } from './types.ts'
import { DAG_OPTIONS, parseDagFlags, type DagFlags } from './dag-args.ts'

/** Flags every command accepts: which pipeline, how it is parameterised, which store, output format. */
export interface CommonFlags {
  /** `--file`, as given (relative to the working directory); undefined means `./pipeline.yaml`. */
  file: string | undefined
  profile: string | undefined
  /** `--set stage.param=value`, in the order given (later wins). */
  overrides: string[]
  /** `--store PATH|s3://...`, as given; undefined means `$CUSP_STORE`, else `<project>/artifacts`. */
  store: string | undefined
  json: boolean
  /** `--stage NAME` or `--stage NAME@instance`, in the order given. */
  selectors: string[]
  /** `--backend`: sets the backend param of every stage that has one (the host checks the name). */
  backend: string | undefined
  /** `--image` (run, export, status, why): the stage image; status/why fingerprint with its environment. */
  image: string | undefined
}

export const EXECUTORS = ['local', 'local-process', 'docker', 'kubernetes', 'aws-batch'] as const
export type ExecutorKind = (typeof EXECUTORS)[number]

/** Where containers run (run --executor docker|kubernetes, and export). */
export interface RemoteFlags {
  /** The stage image; default `cusp:gpu`. */
  image: string | undefined
  /** Kubernetes namespace; default `default`. */
  namespace: string | undefined
  /** Name of the Kubernetes Secret holding the S3 credentials (AWS_* keys). */
  secret: string | undefined
}

/** `--estimate` and its device/price (run, status): the cost of the instances that would run. */
export interface EstimateFlags {
  estimate: boolean
  /** `--device`: a device class of src/estimate/devices.ts for every instance. */
  device: string | undefined
  /** `--price`: USD per device-hour. */
  price: number | undefined
}

/** AWS Batch (run --executor aws-batch). */
export interface BatchFlags {
  jobQueue: string | undefined
  /** `--job-role ARN`: the IAM role the jobs run as (its policy grants the bucket). */
  jobRole: string | undefined
  /** `--job-timeout SECONDS`: the time limit of every instance's run, on any executor (overrides the stages' `timeout:`). */
  jobTimeout: number | undefined
  /** `--yes`: do not ask before a run estimated above the threshold. */
  yes: boolean
  /** `--confirm-above USD`: ask (or refuse off a terminal) above this estimated cost; default 10. */
  confirmAbove: number
}

export interface RunFlags {
  downstream: boolean
  force: boolean
  dryRun: boolean
  verify: boolean
  jobs: number | undefined
  keepGoing: boolean
  /** `-v`: on a terminal, every instance's reasons as well as the one line per stage. */
  verbose: boolean
  /** `--executor`: where each instance runs (default `local`, in-process). */
  executor: ExecutorKind
}

export type Command =
  | { kind: 'help'; topic: string | undefined }
  | ({ kind: 'run' } & CommonFlags & RunFlags & RemoteFlags & EstimateFlags & BatchFlags)
  | ({ kind: 'run-stage'; instance: string; expect: string | undefined } & CommonFlags)
  | ({ kind: 'export'; format: 'argo' } & CommonFlags & RemoteFlags)
  | ({ kind: 'status' } & CommonFlags & EstimateFlags)
  | ({ kind: 'why'; instance: string } & CommonFlags)
  | ({ kind: 'artifacts'; instance: string | undefined } & CommonFlags)
  | ({ kind: 'show'; instance: string } & CommonFlags)
  | ({ kind: 'push' | 'pull' } & CommonFlags)
  | ({ kind: 'gc'; dryRun: boolean } & CommonFlags)
  | ({ kind: 'fsck'; repair: boolean; quarantineUnsigned: boolean } & CommonFlags)
  | ({ kind: 'dag' } & CommonFlags & DagFlags)
  | ({ kind: 'open' } & CommonFlags)

export const COMMANDS = [
  'run',
  'status',
  'why',
  'artifacts',
  'show',
  'run-stage',
  'export',
  'push',
  'pull',
  'gc',
  'fsck',
  'dag',
  'open',
] as const

/** The text `--help` prints (and a usage error points to). */
export const USAGE = `usage: npm run pipeline -- [command] [flags]

commands:
  run (default)        bring the selected instances (default: all) up to date
  status               per instance: fresh / would restore / would run, with reasons
  why <instance>       what changed since the lock: param / input / code / env, old -> new
  artifacts [<inst>]   the registry: every stored output, its digest, size, producer and fingerprints
  show <instance>      an instance's result JSON and where its files are in the store
  run-stage <instance> run exactly one instance into the store (what a container runs); its
                       upstream must already be in the store; --expect FP refuses another fingerprint
  export --format argo the DAG as an Argo Workflows Workflow (YAML on stdout); cache hits are no-ops
  push / pull          with --store s3://...: copy the lock's entries local cache -> bucket / bucket -> local cache
  gc [--dry-run]       list (--dry-run) or delete the run records and objects the lock does not reference
  fsck [--repair]      re-hash every stored object and re-check every run record; --repair quarantines what fails
                       (records failing only their signature, when most do: only with --quarantine-unsigned)
  dag                  the stage graph with matrix sizes: --format text|mermaid|dot|svg, --instances (the
                       instance graph), --state (coloured by plan state), --events FILE (failed, from run --json)
  open                 open the published report (results/report.html) in a browser, or print its path

run flags:
  --stage NAME | NAME@k=v,...   select every instance of a stage, or one instance (repeatable)
  --downstream         also run everything downstream of the selection
  --force              rerun the selection even when fresh
  --dry-run            print the plan (every instance's reasons, per stage counts, an ETA), run nothing
  -v, --verbose        on a terminal, print every instance's reasons too, not only one line per stage
  --verify             re-execute cache hits and compare outputs byte for byte
  --jobs N             run up to N instances at once
  --keep-going         keep running independent instances after a failure
  --job-timeout S      stop any instance's run after S seconds (overrides every stage's timeout:)
  --executor E         local (default, in-process) | local-process | docker | kubernetes | aws-batch
  --estimate           (with --dry-run, and on status) compute, time and cost of what would run
  --device D           estimate on device class D: cpu-core | t4 | a10g | l4 | a100 | h100
  --price USD          estimate at USD per device-hour instead of the table's on-demand price

container flags (run with --executor docker|kubernetes, and export):
  --image IMAGE        the stage image (default cusp:gpu; see Dockerfile); status and why
                       --image IMAGE: fresh for instances run in that image (after a cluster run)?
  --namespace NS       Kubernetes namespace (default 'default')
  --secret NAME        Kubernetes Secret with the S3 credentials (AWS_* keys)
  --job-queue Q        AWS Batch job queue (--executor aws-batch)
  --job-role ARN       IAM role of the Batch jobs (default: the compute environment's instance role)
  --yes                submit without asking even when the estimate is above --confirm-above
  --confirm-above USD  ask before an aws-batch run estimated above USD (default 10)

common flags:
  --file PATH          the pipeline file (default ./pipeline.yaml)
  --profile P          apply profile P from the pipeline file
  --set stage.param=value   override a param (repeatable)
  --store PATH|s3://bucket/prefix   artifact store (default $CUSP_STORE, else <project>/artifacts)
  --backend B          the engine backend of the science stages (auto, or a backend name)
  --json               machine-readable output (one JSON object per line)
  --help               print this text

exit codes: 0 success, 1 a stage failed (or --verify found non-determinism), 2 invalid pipeline or usage`

const common = {
  file: { type: 'string' },
  profile: { type: 'string' },
  set: { type: 'string', multiple: true },
  store: { type: 'string' },
  json: { type: 'boolean' },
  stage: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
  backend: { type: 'string' },
} as const satisfies ParseArgsConfig['options']

const runOnly = {
  downstream: { type: 'boolean' },
  force: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  verify: { type: 'boolean' },
  jobs: { type: 'string', short: 'j' },
  'keep-going': { type: 'boolean', short: 'k' },
  verbose: { type: 'boolean', short: 'v' },
  executor: { type: 'string' },
  'job-queue': { type: 'string' },
  'job-role': { type: 'string' },
  'job-timeout': { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  'confirm-above': { type: 'string' },
} as const satisfies ParseArgsConfig['options']

const estimateOnly = {
  estimate: { type: 'boolean' },
  device: { type: 'string' },
  price: { type: 'string' },
} as const satisfies ParseArgsConfig['options']

const remoteOnly = {
  image: { type: 'string' },
  namespace: { type: 'string' },
  secret: { type: 'string' },
} as const satisfies ParseArgsConfig['options']

const ownFlags = {
  expect: { type: 'string' },
  repair: { type: 'boolean' },
  'quarantine-unsigned': { type: 'boolean' },
  format: { type: 'string' },
} as const satisfies ParseArgsConfig['options']

/** Which command each command-specific flag belongs to. */
const FLAG_COMMANDS: Record<string, readonly string[]> = {
  ...Object.fromEntries(Object.keys(runOnly).map((f) => [f, f === 'dry-run' ? ['run', 'gc'] : ['run']])),
  ...Object.fromEntries(Object.keys(remoteOnly).map((f) => [f, ['run', 'export']])),
  ...Object.fromEntries(Object.keys(estimateOnly).map((f) => [f, ['run', 'status']])),
  image: ['run', 'export', 'status', 'why'],
  expect: ['run-stage'],
  format: ['export', 'dag'],
  ...Object.fromEntries(Object.keys(DAG_OPTIONS).map((f) => [f, ['dag']])),
  repair: ['fsck'],
  'quarantine-unsigned': ['fsck'],
}

const usage = (message: string): Result<Command, Failure> => fail({ reason: 'usage', message: `${message} (see --help)` })

/** Parse argv (without `node` and the script). Never throws: a bad command line is a `usage` Failure. */
export function parseCli(argv: readonly string[]): Result<Command, Failure> {
  let parsed: { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] }
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...common, ...runOnly, ...remoteOnly, ...estimateOnly, ...ownFlags, ...DAG_OPTIONS },
      strict: true,
      allowPositionals: true,
    })
  } catch (e: unknown) {
    const msg = e instanceof Error ? e.message : String(e)
    return usage(msg.split('\n')[0]?.replace(/\. To specify a positional argument.*$/, '') ?? msg)
  }
  // The command is the first positional (flags may come before it, as in `--file x status`).
  const first = parsed.positionals[0]
  const isCommand = first !== undefined && (COMMANDS as readonly string[]).includes(first)
  if (first !== undefined && !isCommand && parsed.positionals.length === 1 && !first.includes('@')) {
    return usage(`unknown command '${first}'; expected one of ${COMMANDS.join(', ')} (to select a stage: --stage ${first})`)
  }
  const kind = isCommand ? (first as (typeof COMMANDS)[number]) : 'run'
  const pos = isCommand ? parsed.positionals.slice(1) : parsed.positionals
  for (const [flag, kinds] of Object.entries(FLAG_COMMANDS)) {
    if (parsed.values[flag] !== undefined && !kinds.includes(kind))
      return usage(`'--${flag}' is a flag of '${kinds.join("' and '")}', not of '${kind}'`)
  }
  const v = parsed.values
  if (v.help === true) return ok({ kind: 'help', topic: kind })

  const flags: CommonFlags = {
    file: str(v.file),
    profile: str(v.profile),
    overrides: strs(v.set),
    store: str(v.store),
    json: v.json === true,
    selectors: strs(v.stage),
    backend: undefined,
    image: str(v.image),
  }
  const b = str(v.backend)
  if (b !== undefined) {
    if (b === '') return usage('--backend needs a non-empty value')
    flags.backend = b
  }
  const remote: RemoteFlags = { image: str(v.image), namespace: str(v.namespace), secret: str(v.secret) }
  for (const name of ['image', 'namespace', 'secret'] as const) {
    if (remote[name] === '') return usage(`--${name} needs a non-empty value`)
  }
  const est: EstimateFlags = { estimate: v.estimate === true, device: str(v.device), price: undefined }
  const priceText = str(v.price)
  if (priceText !== undefined) {
    if (!/^[0-9]+(\.[0-9]+)?$/.test(priceText)) return usage(`--price expects USD per device-hour, e.g. 4.10, got '${priceText}'`)
    est.price = Number(priceText)
  }
  for (const o of flags.overrides) {
    if (!/^[^.=\s]+\.[^=\s]+=/.test(o)) return usage(`--set expects stage.param=value, got '${o}'`)
  }
  for (const s of flags.selectors) if (s.trim() === '') return usage('--stage needs a stage name or an instance id')
  for (const name of ['file', 'profile', 'store'] as const) {
    if (flags[name] === '') return usage(`--${name} needs a non-empty value`)
  }

  switch (kind) {
    case 'run': {
      if (pos.length > 0) return usage(`unexpected argument '${pos[0]}'; to select a stage or instance use --stage ${pos[0]}`)
      let jobs: number | undefined
      const j = str(v.jobs)
      if (j !== undefined) {
        if (!/^[1-9][0-9]*$/.test(j)) return usage(`--jobs expects a positive integer, got '${j}'`)
        jobs = Number(j)
      }
      const e = str(v.executor) ?? 'local'
      if (!(EXECUTORS as readonly string[]).includes(e)) return usage(`--executor expects one of ${EXECUTORS.join(', ')}, got '${e}'`)
      const batch: BatchFlags = {
        jobQueue: str(v['job-queue']),
        jobRole: str(v['job-role']),
        jobTimeout: undefined,
        yes: v.yes === true,
        confirmAbove: 10,
      }
      const jt = str(v['job-timeout'])
      if (jt !== undefined) {
        if (!/^[1-9][0-9]*$/.test(jt)) return usage(`--job-timeout expects seconds (a positive integer), got '${jt}'`)
        batch.jobTimeout = Number(jt)
      }
      const ca = str(v['confirm-above'])
      if (ca !== undefined) {
        if (!/^[0-9]+(\.[0-9]+)?$/.test(ca)) return usage(`--confirm-above expects USD, e.g. 25, got '${ca}'`)
        batch.confirmAbove = Number(ca)
      }
      if (e === 'aws-batch' && (batch.jobQueue ?? '') === '')
        return usage('--executor aws-batch needs --job-queue QUEUE (the Batch job queue the jobs go to)')
      for (const f of ['job-queue', 'job-role', 'yes', 'confirm-above'] as const) {
        if (v[f] !== undefined && e !== 'aws-batch') return usage(`--${f} is a flag of --executor aws-batch`)
      }
      return ok({
        kind,
        ...flags,
        ...remote,
        ...est,
        ...batch,
        executor: e as ExecutorKind,
        downstream: v.downstream === true,
        force: v.force === true,
        dryRun: v['dry-run'] === true,
        verify: v.verify === true,
        jobs,
        keepGoing: v['keep-going'] === true,
        verbose: v.verbose === true,
      })
    }
    case 'run-stage': {
      const [instance, extra] = pos
      if (instance === undefined) return usage(`'run-stage' needs an instance id, e.g. run-stage train@eta=0.1`)
      if (extra !== undefined) return usage(`'run-stage' runs one instance, got also '${extra}'`)
      return ok({ kind, ...flags, instance, expect: str(v.expect) })
    }
    case 'export': {
      if (pos.length > 0) return usage(`'export' takes no arguments, got '${pos[0]}'`)
      const f = str(v.format) ?? 'argo'
      if (f !== 'argo') return usage(`--format expects argo, got '${f}'`)
      return ok({ kind, ...flags, ...remote, format: f })
    }
    case 'status':
      if (pos.length > 0) return usage(`'${kind}' takes no arguments, got '${pos[0]}'`)
      return ok({ kind, ...flags, ...est })
    case 'push':
    case 'pull':
      if (pos.length > 0) return usage(`'${kind}' takes no arguments, got '${pos[0]}'`)
      return ok({ kind, ...flags })
    case 'gc':
      if (pos.length > 0) return usage(`'gc' takes no arguments, got '${pos[0]}'`)
      return ok({ kind, ...flags, dryRun: v['dry-run'] === true })
    case 'open':
      if (pos.length > 0) return usage(`'open' takes no arguments, got '${pos[0]}'`)
      return ok({ kind, ...flags })
    case 'fsck':
      if (pos.length > 0) return usage(`'fsck' takes no arguments, got '${pos[0]}'`)
      return ok({ kind, ...flags, repair: v.repair === true, quarantineUnsigned: v['quarantine-unsigned'] === true })
    case 'dag': {
      const dag = parseDagFlags(pos, v)
      return dag.ok ? ok({ kind, ...flags, ...dag.value }) : dag
    }
    case 'artifacts':
      if (pos.length > 1) return usage(`'artifacts' takes at most one instance, got ${pos.length}`)
      return ok({ kind, ...flags, instance: pos[0] })
    case 'why':
    case 'show': {
      const [instance, extra] = pos
      if (instance === undefined) return usage(`'${kind}' needs an instance id, e.g. ${kind} train@eta=0.1`)
      if (extra !== undefined) return usage(`'${kind}' takes one instance, got also '${extra}'`)
      return ok({ kind, ...flags, instance })
    }
  }
}

const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined)
const strs = (x: unknown): string[] => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : [])
