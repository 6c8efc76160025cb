/**
 * Command-line parsing for `npm run pipeline -- ...`: turns argv into one typed `Command`, or a
 * `usage` Failure. Parsing is strict (node:util parseArgs): an unknown flag, a missing value or a
 * stray positional is a usage error, never silently ignored. Each command accepts the common
 * flags (which pipeline, profile, overrides, store, JSON output); only `run` accepts the run
 * flags. Nothing here touches the file system, so every rule is testable as a pure function.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { fail, ok, type Failure, type Result } from './types.ts'

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
}

export interface RunFlags {
  downstream: boolean
  force: boolean
  dryRun: boolean
  verify: boolean
  jobs: number | undefined
  keepGoing: boolean
}

export type Command =
  | { kind: 'help'; topic: string | undefined }
  | ({ kind: 'run' } & CommonFlags & RunFlags)
  | ({ kind: 'status' } & CommonFlags)
  | ({ kind: 'why'; instance: string } & CommonFlags)
  | ({ kind: 'artifacts'; instance: string | undefined } & CommonFlags)
  | ({ kind: 'show'; instance: string } & CommonFlags)

export const COMMANDS = ['run', 'status', 'why', 'artifacts', 'show'] as const

/** The text `--help` prints (and a usage error points to). */
export const USAGE = `usage: npm run pipeline -- [command] [flags]

commands:
  run (default)        bring the selected instances (default: all) up to date
  status               per instance: fresh / would restore / would run, with reasons
  why <instance>       what changed since the lock: param / input / code / env, old -> new
  artifacts [<inst>]   the registry: every stored output, its digest, size, producer and fingerprints
  show <instance>      an instance's result JSON and where its files are in the store

run flags:
  --stage NAME | NAME@k=v,...   select every instance of a stage, or one instance (repeatable)
  --downstream         also run everything downstream of the selection
  --force              rerun the selection even when fresh
  --dry-run            print the plan, run nothing
  --verify             re-execute cache hits and compare outputs byte for byte
  --jobs N             run up to N instances at once
  --keep-going         keep running independent instances after a failure

common flags:
  --file PATH          the pipeline file (default ./pipeline.yaml)
  --profile P          apply profile P from the pipeline file
  --set stage.param=value   override a param (repeatable)
  --store PATH|s3://bucket/prefix   artifact store (default $CUSP_STORE, else <project>/artifacts)
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
} as const satisfies ParseArgsConfig['options']

const runOnly = {
  downstream: { type: 'boolean' },
  force: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  verify: { type: 'boolean' },
  jobs: { type: 'string', short: 'j' },
  'keep-going': { type: 'boolean', short: 'k' },
} as const satisfies ParseArgsConfig['options']

const usage = (message: string): Result<Command, Failure> =>
  fail({ reason: 'usage', message: `${message} (see --help)` })

/** Parse argv (without `node` and the script). Never throws: a bad command line is a `usage` Failure. */
export function parseCli(argv: readonly string[]): Result<Command, Failure> {
  let parsed: { values: Record<string, string | boolean | string[] | boolean[] | undefined>; positionals: string[] }
  try {
    parsed = parseArgs({ args: [...argv], options: { ...common, ...runOnly }, strict: true, allowPositionals: true })
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
  if (kind !== 'run') {
    const runFlag = Object.keys(runOnly).find((f) => parsed.values[f] !== undefined)
    if (runFlag !== undefined) return usage(`'--${runFlag}' is a flag of 'run', not of '${kind}'`)
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
      return ok({
        kind,
        ...flags,
        downstream: v.downstream === true,
        force: v.force === true,
        dryRun: v['dry-run'] === true,
        verify: v.verify === true,
        jobs,
        keepGoing: v['keep-going'] === true,
      })
    }
    case 'status':
      if (pos.length > 0) return usage(`'status' takes no arguments, got '${pos[0]}'`)
      return ok({ kind, ...flags })
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
