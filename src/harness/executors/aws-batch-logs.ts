/**
 * The tail of a Batch job's CloudWatch log stream, for a failure message. Batch's awslogs driver
 * writes each attempt's stdout and stderr to `/aws/batch/job` (or the definition's
 * `awslogs-group`) under the attempt's `logStreamName`. A missing stream (the container never
 * started) or a denied read is said in one line rather than failing the report.
 */
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs'

export interface LogTailSource {
  /** The last `lines` lines of the stream, oldest first. */
  tail(group: string, stream: string, lines: number): Promise<string>
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
  }
}
