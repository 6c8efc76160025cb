/**
 * A Batch job's CloudWatch log stream: its tail for a failure message, and what was written since
 * the last read, streamed while the job runs. Batch's awslogs driver
 * writes each attempt's stdout and stderr to `/aws/batch/job` (or the definition's
 * `awslogs-group`) under the attempt's `logStreamName`. A missing stream (the container never
 * started) or a denied read is said in one line rather than failing the report.
 */
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs'

export interface LogTailSource {
  /** The last `lines` lines of the stream, oldest first. */
  tail(group: string, stream: string, lines: number): Promise<string>
  /**
   * The lines written after `token` (from the start without one) and the token to continue from.
   * Best effort: a stream not created yet, or a failed read, gives no lines and the same token.
   */
  since(group: string, stream: string, token: string | undefined): Promise<{ lines: string[]; token: string | undefined }>
}

/** A LogTailSource over `@aws-sdk/client-cloudwatch-logs` (GetLogEvents, newest page). */
export function cloudWatchTail(client: () => Promise<CloudWatchLogsClient>): LogTailSource {
  return {
    async tail(group, stream, lines) {
      const { GetLogEventsCommand } = await import('@aws-sdk/client-cloudwatch-logs')
      try {
        const out = await (
          await client()
        ).send(new GetLogEventsCommand({ logGroupName: group, logStreamName: stream, limit: lines, startFromHead: false }))
        const text = (out.events ?? []).map((e) => (e.message ?? '').replace(/\n$/, '')).join('\n')
        return text === '' ? `(log stream ${group}/${stream} is empty)` : text
      } catch (e: unknown) {
        return `(cannot read log stream ${group}/${stream}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)})`
      }
    },
    async since(group, stream, token) {
      const { GetLogEventsCommand } = await import('@aws-sdk/client-cloudwatch-logs')
      try {
        const out = await (
          await client()
        ).send(
          new GetLogEventsCommand({
            logGroupName: group,
            logStreamName: stream,
            startFromHead: true,
            ...(token !== undefined ? { nextToken: token } : {}),
          }),
        )
        return { lines: (out.events ?? []).map((e) => (e.message ?? '').replace(/\n$/, '')), token: out.nextForwardToken ?? token }
      } catch {
        return { lines: [], token }
      }
    },
  }
}
