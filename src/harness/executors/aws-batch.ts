/**
 * The AWS Batch runner (`--executor aws-batch --job-queue Q --image I`): one Batch job per ready
 * instance, submitted with `@aws-sdk/client-batch` (the standard credential chain and region;
 * `AWS_ENDPOINT_URL_BATCH` / `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` are honoured by the SDK). The
 * harness stays the scheduler: it submits a job only when the instance's upstream is settled and
 * follows it to SUCCEEDED or FAILED, reporting each status change (SUBMITTED, RUNNABLE, STARTING,
 * RUNNING, ...) as a log event of the instance (live view and `--json`). While a job runs, its
 * CloudWatch log stream is read on each poll and its `run-stage --json` lines become the instance's
 * progress and log events, as from a local child.
 * - Job definitions: one per image and resource shape, found by its content tag or registered
 *   once (aws-batch-jobdef.ts); vCPU, memory and GPUs come from the stage's `resources`.
 * - Idempotent resubmission: the job's name is fixed by pipeline, instance and fingerprint; before
 *   submitting, a live job of that name (and that fingerprint tag) in the queue is looked for and,
 *   if found, waited for instead, so a scheduler killed and restarted never runs an instance twice.
 * - Retries: Batch retries an attempt whose host went away (Spot reclaim); a stage's own non-zero
 *   exit is not retried. A FAILED job is reported with which of the two it was, the exit code and
 *   the tail of its CloudWatch log stream.
 * - No capacity: a job still RUNNABLE after `runnableLimitMs` (default 30 min) is terminated and
 *   reported (the queue's compute environment cannot place it), not waited on forever.
 * - Throttling: the SDK's standard retry mode (exponential backoff with jitter) with more attempts
 *   than its default; status polling is one DescribeJobs per 100 live jobs per interval.
 * - Ctrl-C: `cancelAll` terminates every job this runner submitted or adopted.
 */
import type { BatchClient, JobDetail } from '@aws-sdk/client-batch'
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs'
import type { StageInstance } from '../types.ts'
import {
  batchJobName,
  classifyFailure,
  contentTag,
  LIVE_STATUSES,
  logGroupOf,
  logStreamOf,
  registerInput,
  shapeFor,
  submitInput,
  type JobDefShape,
} from './aws-batch-jobdef.ts'
import { cloudWatchTail, type LogTailSource } from './aws-batch-logs.ts'
import { forwardEvent } from './local.ts'
import { remoteFailure, timedOut, type InstanceRunner, type PipelineSpec, type RunnerOutcome, type RunnerRequest } from './runner.ts'

export interface AwsBatchOptions {
  image: string
  spec: PipelineSpec
  pipelineName: string
  jobQueue: string
  /** This process's environment: non-secret S3 settings are copied into the job's (see BATCH_FORWARD_ENV). */
  env: Record<string, string | undefined>
  /** The job role the containers run as (its policy grants the bucket); default: the instance role. */
  jobRoleArn?: string
  /** Attempts per job, counting the first (retries happen only after a lost host); default 3. */
  attempts?: number
  /** Interval between status polls (default 10 s). */
  pollMs?: number
  /** A job RUNNABLE for longer than this is terminated and reported (default 30 min). */
  runnableLimitMs?: number
  /** Lines of the CloudWatch log shown for a failure (default 40). */
  logLines?: number
  /** Clients (tests inject ones pointed at a fake); default: from the SDK's standard configuration. */
  batch?: BatchClient
  logs?: CloudWatchLogsClient
}

type End =
  { kind: 'succeeded' } | { kind: 'failed'; job: JobDetail } | { kind: 'stuck'; waited: string } | { kind: 'lost'; message: string }

/** How many attempts the SDK makes per call (throttling, 5xx) before a call fails. */
const SDK_ATTEMPTS = 10

/** A runner that runs each instance as an AWS Batch job and follows it to the end. */
export class AwsBatchRunner implements InstanceRunner {
  readonly name = 'aws-batch'
  readonly needsSharedStore = true
  /** jobId -> job name, for every job in flight (submitted or adopted). */
  private readonly live = new Map<string, string>()
  private readonly watched = new Map<string, (d: JobDetail | undefined) => void>()
  /** jobId -> the log stream of its running attempt, read on each poll (the `run-stage --json` lines). */
  private readonly streams = new Map<string, { group: string; stream: string; token: string | undefined; line: (l: string) => void }>()
  private readonly defs = new Map<string, Promise<string>>()
  private polling: Promise<void> | undefined
  private pollFailures = 0
  private cancelled = false
  private batchClient: Promise<BatchClient> | undefined
  private logsClient: Promise<CloudWatchLogsClient> | undefined
  private readonly logTail: LogTailSource
  constructor(private readonly o: AwsBatchOptions) {
    this.logTail = cloudWatchTail(() => this.logs())
  }

  /** The Batch client, loaded on first use (importing the SDK costs a local run nothing). */
  private batch(): Promise<BatchClient> {
    this.batchClient ??=
      this.o.batch !== undefined
        ? Promise.resolve(this.o.batch)
        : import('@aws-sdk/client-batch').then((m) => new m.BatchClient({ maxAttempts: SDK_ATTEMPTS }))
    return this.batchClient
  }

  private logs(): Promise<CloudWatchLogsClient> {
    this.logsClient ??=
      this.o.logs !== undefined
        ? Promise.resolve(this.o.logs)
        : import('@aws-sdk/client-cloudwatch-logs').then((m) => new m.CloudWatchLogsClient({ maxAttempts: SDK_ATTEMPTS }))
    return this.logsClient
  }

  async run(req: RunnerRequest): Promise<RunnerOutcome> {
    const inst = req.instance
    const id = inst.id
    const fail = (message: string, exitCode: number | null = null): RunnerOutcome => ({
      ok: false,
      failure: remoteFailure(id, exitCode, this.cancelled ? 'SIGINT' : null, message),
    })
    if (this.cancelled) return fail('cancelled before its Batch job was submitted')
    const name = batchJobName(this.o.pipelineName, inst, req.fingerprint)
    let jobId: string
    try {
      const found = await this.findLive(name, req.fingerprint)
      if (found !== undefined) {
        jobId = found.jobId
        req.emit({
          type: 'log',
          instance: id,
          message: `Batch job ${name} (${jobId}) from an earlier run is ${found.status}: waiting for it instead of submitting again`,
        })
      } else {
        const shape = shapeFor(inst, {
          image: this.o.image,
          ...(this.o.attempts !== undefined ? { attempts: this.o.attempts } : {}),
          ...(this.o.jobRoleArn !== undefined ? { jobRoleArn: this.o.jobRoleArn } : {}),
        })
        const def = await this.jobDefinition(shape)
        if (this.cancelled) return fail('cancelled before its Batch job was submitted')
        // The instance's time limit (stage `timeout:` or --job-timeout) as the attempt timeout (Batch's minimum: 60 s).
        const timeoutSeconds = req.timeout?.seconds
        const input = submitInput({
          jobQueue: this.o.jobQueue,
          jobDefinitionArn: def,
          pipelineName: this.o.pipelineName,
          spec: this.o.spec,
          inst,
          fingerprint: req.fingerprint,
          env: this.o.env,
          ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
        })
        const { SubmitJobCommand } = await import('@aws-sdk/client-batch')
        const out = await (await this.batch()).send(new SubmitJobCommand(input))
        if (out.jobId === undefined) return fail(`SubmitJob for ${name} returned no job id`)
        jobId = out.jobId
        req.emit({ type: 'log', instance: id, message: `Batch job ${name} (${jobId}) submitted to ${this.o.jobQueue}` })
      }
    } catch (e: unknown) {
      return fail(`cannot submit Batch job ${name} to queue ${this.o.jobQueue}: ${sdkMessage(e)}`)
    }
    this.live.set(jobId, name)
    try {
      const end = await this.follow(jobId, name, id, req)
      switch (end.kind) {
        case 'succeeded':
          return { ok: true }
        case 'lost':
          return fail(end.message)
        case 'stuck':
          await this.terminate(jobId, `cusp: RUNNABLE for ${end.waited} without capacity`)
          return fail(
            `Batch job ${name} (${jobId}) stayed RUNNABLE for ${end.waited} in queue ${this.o.jobQueue} and was terminated: no compute ` +
              `environment of the queue can place it (check its max vCPUs, instance types with enough vCPU/memory/GPUs, and the account's EC2 quotas)`,
          )
        case 'failed':
          return await this.failedReport(end.job, name, fail, req)
      }
    } finally {
      this.live.delete(jobId)
    }
  }

  /** A live job named `name` carrying this fingerprint, if one is in the queue. */
  private async findLive(name: string, fingerprint: string): Promise<{ jobId: string; status: string } | undefined> {
    const { ListJobsCommand, DescribeJobsCommand } = await import('@aws-sdk/client-batch')
    const client = await this.batch()
    const candidates: string[] = []
    let nextToken: string | undefined
    do {
      const page = await client.send(
        new ListJobsCommand({
          jobQueue: this.o.jobQueue,
          filters: [{ name: 'JOB_NAME', values: [name] }],
          ...(nextToken !== undefined ? { nextToken } : {}),
        }),
      )
      for (const s of page.jobSummaryList ?? []) {
        if (s.jobName === name && s.jobId !== undefined && (LIVE_STATUSES as readonly string[]).includes(s.status ?? ''))
          candidates.push(s.jobId)
      }
      nextToken = page.nextToken
    } while (nextToken !== undefined)
    if (candidates.length === 0) return undefined
    const described = await client.send(new DescribeJobsCommand({ jobs: candidates.slice(0, 100) }))
    const mine = (described.jobs ?? []).filter(
      (j) => j.tags?.['cusp:fingerprint'] === fingerprint && (LIVE_STATUSES as readonly string[]).includes(j.status ?? ''),
    )
    const first = mine.sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0))[0]
    return first?.jobId !== undefined ? { jobId: first.jobId, status: first.status ?? '?' } : undefined
  }

  /** The ARN of the active definition with this shape's content tag, registered if there is none. */
  private jobDefinition(shape: JobDefShape): Promise<string> {
    const tag = contentTag(shape)
    let p = this.defs.get(tag)
    if (p === undefined) {
      p = this.findOrRegister(shape, tag)
      this.defs.set(tag, p)
      p.catch(() => this.defs.delete(tag))
    }
    return p
  }

  private async findOrRegister(shape: JobDefShape, tag: string): Promise<string> {
    const { DescribeJobDefinitionsCommand, RegisterJobDefinitionCommand } = await import('@aws-sdk/client-batch')
    const client = await this.batch()
    const input = registerInput(shape)
    let nextToken: string | undefined
    do {
      const page = await client.send(
        new DescribeJobDefinitionsCommand({
          jobDefinitionName: input.jobDefinitionName,
          status: 'ACTIVE',
          ...(nextToken !== undefined ? { nextToken } : {}),
        }),
      )
      const hit = (page.jobDefinitions ?? []).find((d) => d.tags?.['cusp:content'] === tag && d.status !== 'INACTIVE')
      if (hit?.jobDefinitionArn !== undefined) return hit.jobDefinitionArn
      nextToken = page.nextToken
    } while (nextToken !== undefined)
    const out = await client.send(new RegisterJobDefinitionCommand(input))
    if (out.jobDefinitionArn === undefined) throw new Error(`RegisterJobDefinition ${input.jobDefinitionName ?? ''} returned no ARN`)
    return out.jobDefinitionArn
  }

  /** Follows one job through the shared poll until it ends, emitting each status change. */
  private follow(jobId: string, name: string, instance: string, req: RunnerRequest): Promise<End> {
    const limit = this.o.runnableLimitMs ?? 30 * 60_000
    let last: string | undefined
    let runnableSince: number | undefined
    let missing = 0
    return new Promise<End>((resolve) => {
      const done = (e: End): void => {
        this.watched.delete(jobId)
        this.streams.delete(jobId)
        resolve(e)
      }
      this.watched.set(jobId, (d) => {
        if (d === undefined) {
          if (++missing >= 3)
            done({
              kind: 'lost',
              message: `Batch job ${name} (${jobId}) is no longer known to Batch${this.lastPollError !== undefined ? ` (last DescribeJobs error: ${this.lastPollError})` : ''}`,
            })
          return
        }
        missing = 0
        const status = d.status ?? 'UNKNOWN'
        if (status !== last) {
          const attempt =
            (d.attempts?.length ?? 0) > 0 && status !== 'SUCCEEDED' && status !== 'FAILED'
              ? ` (attempt ${(d.attempts?.length ?? 0) + 1})`
              : ''
          req.emit({
            type: 'log',
            instance,
            message: `Batch job ${name}: ${status}${attempt}${d.statusReason !== undefined && status !== 'SUCCEEDED' ? ` - ${d.statusReason}` : ''}`,
          })
          last = status
        }
        const stream = status === 'RUNNING' ? logStreamOf(d) : undefined
        if (stream !== undefined && this.streams.get(jobId)?.stream !== stream)
          this.streams.set(jobId, { group: logGroupOf(d), stream, token: undefined, line: (l) => forwardEvent(instance, l, req) })
        if (status === 'RUNNABLE') runnableSince ??= Date.now()
        else runnableSince = undefined
        if (status === 'SUCCEEDED') done({ kind: 'succeeded' })
        else if (status === 'FAILED') done({ kind: 'failed', job: d })
        else if (runnableSince !== undefined && Date.now() - runnableSince > limit)
          done({ kind: 'stuck', waited: limit >= 60_000 ? `${Math.round(limit / 6000) / 10} min` : `${Math.round(limit / 100) / 10} s` })
      })
      this.startPolling()
    })
  }

  /** One loop for every followed job: DescribeJobs in chunks of 100 per interval. */
  private startPolling(): void {
    if (this.polling !== undefined) return
    const every = this.o.pollMs ?? 10_000
    this.polling = (async () => {
      const { DescribeJobsCommand } = await import('@aws-sdk/client-batch')
      const client = await this.batch()
      while (this.watched.size > 0) {
        await new Promise((r) => setTimeout(r, every))
        const ids = [...this.watched.keys()]
        for (let i = 0; i < ids.length; i += 100) {
          const chunk = ids.slice(i, i + 100)
          try {
            const out = await client.send(new DescribeJobsCommand({ jobs: chunk }))
            this.pollFailures = 0
            const byId = new Map((out.jobs ?? []).map((j) => [j.jobId ?? '', j]))
            for (const jid of chunk) this.watched.get(jid)?.(byId.get(jid))
            // The new lines of each running job's log: its progress and log events, as for a local child.
            await Promise.all(chunk.map((jid) => this.pumpLog(jid)))
          } catch (e: unknown) {
            // The SDK already retried (throttling, 5xx); after a run of failed polls, give up on these jobs.
            if (++this.pollFailures >= 5) {
              for (const jid of chunk) this.watched.get(jid)?.(undefined)
              this.lastPollError = sdkMessage(e)
            }
          }
        }
      }
    })().finally(() => {
      this.polling = undefined
      if (this.watched.size > 0) this.startPolling()
    })
  }

  private lastPollError: string | undefined

  private async pumpLog(jobId: string): Promise<void> {
    const s = this.streams.get(jobId)
    if (s === undefined) return
    const r = await this.logTail.since(s.group, s.stream, s.token)
    if (this.streams.get(jobId) !== s) return
    s.token = r.token
    for (const l of r.lines) s.line(l)
  }

  /** The failure for a FAILED job: lost host or stage failure, exit code, log tail. */
  private async failedReport(
    job: JobDetail,
    name: string,
    fail: (m: string, code?: number | null) => RunnerOutcome,
    req: RunnerRequest,
  ): Promise<RunnerOutcome> {
    const c = classifyFailure(job)
    const head =
      c.kind === 'host'
        ? `Batch job ${name} (${job.jobId ?? '?'}) lost its host on each of ${c.attempts} attempt(s) (Spot reclaim or EC2 host failure: ${c.reason}); the stage itself did not fail, rerun to try again`
        : c.kind === 'timeout'
          ? `Batch job ${name} (${job.jobId ?? '?'}) was terminated by Batch at its attempt timeout: ${c.reason}`
          : `Batch job ${name} (${job.jobId ?? '?'}) failed${this.cancelled ? ' (cancelled)' : ''}: ${c.reason}${c.exitCode !== null ? `, exit code ${c.exitCode}` : ''}`
    const stream = logStreamOf(job)
    const log =
      stream === undefined
        ? '(no log stream: the container never started)'
        : `--- last lines of ${logGroupOf(job)}/${stream} ---\n${await this.logTail.tail(logGroupOf(job), stream, this.o.logLines ?? 40)}`
    if (c.kind === 'timeout' && req.timeout !== undefined)
      return { ok: false, failure: timedOut(req.instance.id, req.timeout, this.name, `${head}\n${log}`) }
    return fail(`${head}\n${log}`, c.kind === 'stage' ? c.exitCode : null)
  }

  private async terminate(jobId: string, reason: string): Promise<void> {
    const { TerminateJobCommand } = await import('@aws-sdk/client-batch')
    await (await this.batch()).send(new TerminateJobCommand({ jobId, reason })).catch(() => undefined)
  }

  async cancelAll(): Promise<void> {
    this.cancelled = true
    await Promise.all([...this.live.keys()].map((jobId) => this.terminate(jobId, 'cusp: cancelled (Ctrl-C)')))
  }
}

/** A one-line message of an SDK error (its name says throttling, access denied, ...). */
export function sdkMessage(e: unknown): string {
  if (e instanceof Error) return e.name !== 'Error' && !e.message.startsWith(e.name) ? `${e.name}: ${e.message}` : e.message
  return String(e)
}
