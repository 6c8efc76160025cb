/**
 * The flags of `dag` (the command is dag-command.ts), parsed by cli-args.ts's one strict parser:
 * `--format mermaid|dot|svg|text` (default text), `--instances` (the instance graph instead of
 * the stage graph), `--state` (colour by plan state, planned read-only as `--dry-run` does) and
 * `--events FILE` (the JSON lines of a `run --json`: instances that failed are coloured failed;
 * implies `--state`). Pure: nothing here touches the file system.
 */
import type { ParseArgsConfig } from 'node:util'
import { fail, ok, type Failure, type Result } from './types.ts'

export const DAG_FORMATS = ['text', 'mermaid', 'dot', 'svg'] as const
export type DagFormat = (typeof DAG_FORMATS)[number]

export interface DagFlags {
  format: DagFormat
  instances: boolean
  state: boolean
  /** `--events FILE`, as given (relative to the working directory). */
  events: string | undefined
}

/** parseArgs options only `dag` accepts (`--format` is shared with export, declared by cli-args.ts). */
export const DAG_OPTIONS = {
  instances: { type: 'boolean' },
  state: { type: 'boolean' },
  events: { type: 'string' },
} as const satisfies ParseArgsConfig['options']

/** `dag`'s own flags from parseArgs values and the positionals after the command. */
export function parseDagFlags(pos: readonly string[], v: Record<string, unknown>): Result<DagFlags, Failure> {
  const usage = (message: string) => fail<Failure>({ reason: 'usage', message: `${message} (see --help)` })
  if (pos.length > 0) return usage(`'dag' takes no arguments, got '${pos[0]}'`)
  const format = typeof v.format === 'string' ? v.format : 'text'
  if (!(DAG_FORMATS as readonly string[]).includes(format))
    return usage(`--format expects one of ${DAG_FORMATS.join(', ')}, got '${format}'`)
  const events = typeof v.events === 'string' ? v.events : undefined
  if (events === '') return usage('--events needs a file (the JSON lines of `run --json`)')
  return ok({ format: format as DagFormat, instances: v.instances === true, state: v.state === true || events !== undefined, events })
}
