/**
 * What a remote runner relays (a container's event and log lines, its stderr tail, a pod's log
 * and status messages) is text from outside: before it reaches an event, a failure or a
 * terminal it goes through redact.ts, like a local stage's output (URL credentials, the values
 * of this process's secret-looking environment variables, withheld secret params, terminal
 * control characters). The Docker and Kubernetes runners wrap their run with `redactedRun`.
 */
import { envSecrets, printable } from '../redact.ts'
import type { ExecEvent } from '../run-types.ts'
import type { Failure } from '../types.ts'
import type { RunnerOutcome, RunnerRequest } from './runner.ts'

/** Longest stderr tail kept for a failure (the same order as a local stage's). */
const TAIL_MAX = 16_000

/** Runs `run` with every relayed message and the failure's text redacted with `env`'s secret values. */
export async function redactedRun(
  req: RunnerRequest,
  env: Record<string, string | undefined>,
  run: (req: RunnerRequest) => Promise<RunnerOutcome>,
): Promise<RunnerOutcome> {
  const secrets = envSecrets(env)
  const outcome = await run({ ...req, emit: (e) => req.emit(redactEvent(e, secrets)) })
  return outcome.ok ? outcome : { ok: false, failure: redactFailure(outcome.failure, secrets) }
}

/** A relayed event with its message made printable. */
export function redactEvent(e: ExecEvent, secrets: readonly string[]): ExecEvent {
  if ((e.type === 'log' || e.type === 'progress') && e.message !== undefined) return { ...e, message: printable(e.message, secrets) }
  if (e.type === 'failed') return { ...e, failure: redactFailure(e.failure, secrets) }
  return e
}

/** A failure with every text field made printable (newlines kept). */
export function redactFailure(f: Failure, secrets: readonly string[]): Failure {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(f)) out[k] = typeof v === 'string' && k !== 'reason' ? printable(v, secrets, TAIL_MAX) : v
  return out as Failure
}
