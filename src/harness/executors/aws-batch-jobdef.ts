/**
 * The pure half of the AWS Batch executor: the shapes it sends, and how it reads what comes back.
 * A job definition is registered once per image and resource shape (vCPU, memory, GPU) and found
 * again by a content tag (`cusp:content`, a SHA-256 of its canonical spec), so reruns reuse it;
 * the per-instance part (the `run-stage` arguments, the store location, the timeout) goes in the
 * SubmitJob call. Credentials never appear in either: the job gets them from its job role (or the
 * instance role), and only non-secret S3 settings (region, endpoint) are passed by value, with
 * any `user:pass@` dropped from a URL (an endpoint URL with credentials).
 * Retries: the definition's retry strategy retries an attempt only when its host went away (a Spot
 * reclaim or an EC2 host failure: status reason "Host EC2...", no container exit code), never a
 * stage that exited non-zero; `classifyFailure` says which of the two ended a FAILED job.
 */
import { createHash } from 'node:crypto'
import type { JobDetail, RegisterJobDefinitionRequest, SubmitJobRequest } from '@aws-sdk/client-batch'
import { canonicalJson } from '../canonical-json.ts'
import { stripUrlCredentials } from '../redact.ts'
import type { Fingerprint, JsonValue, StageInstance } from '../types.ts'
import { memoryBytes, nameFragment, runStageArgv, shortHash, type PipelineSpec } from './runner.ts'

/** The settings of one Batch job definition (everything but the instance). */
export interface JobDefShape {
  image: string
  vcpus: number
  /** MiB, as Batch wants it. */
  memoryMiB: number
  gpus: number
  /** Attempts in all (1 + retries after a lost host). */
  attempts: number
  jobRoleArn?: string
}

/** Non-secret variables copied into the job's environment by value when set here. */
export const BATCH_FORWARD_ENV = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'CUSP_DEBUG'] as const

/** Never sent, whatever a caller passes: credentials come from the job role. */
const SECRET_ENV = /^(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_SECURITY_TOKEN)$/

/** Batch job statuses in which a job can still run (a job with our name in one of them is waited for). */
export const LIVE_STATUSES = ['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING'] as const

/** The status reason prefix Batch gives attempts whose EC2 host went away (Spot reclaim, host failure). */
export const HOST_FAILURE = 'Host EC2*'

/** The job-definition shape for an instance's declared resources (memory rounded up to whole MiB). */
export function shapeFor(inst: StageInstance, o: { image: string; attempts?: number; jobRoleArn?: string }): JobDefShape {
  const bytes = memoryBytes(inst.resources.memory) ?? 2 * 2 ** 30
  return {
    image: o.image,
    vcpus: inst.resources.cpu,
    memoryMiB: Math.max(1, Math.ceil(bytes / 2 ** 20)),
    gpus: inst.resources.gpu,
    attempts: o.attempts ?? 3,
    ...(o.jobRoleArn !== undefined ? { jobRoleArn: o.jobRoleArn } : {}),
  }
}

/** The content tag of a shape: the SHA-256 of its canonical JSON (first 32 hex digits). */
export function contentTag(shape: JobDefShape): string {
  return createHash('sha256')
    .update(canonicalJson(shape as unknown as JsonValue))
    .digest('hex')
    .slice(0, 32)
}

/** The definition's name: readable (image, shape) and unique per content tag. */
export function jobDefinitionName(shape: JobDefShape): string {
  const gpu = shape.gpus > 0 ? `-${shape.gpus}gpu` : ''
  return `cusp-${nameFragment(shape.image, 60)}-${shape.vcpus}cpu-${shape.memoryMiB}m${gpu}-${contentTag(shape).slice(0, 8)}`.replace(
    /[^A-Za-z0-9_-]/g,
    '-',
  )
}

/** RegisterJobDefinition's input for a shape (pure; tested field by field). */
export function registerInput(shape: JobDefShape): RegisterJobDefinitionRequest {
  const resourceRequirements = [
    { type: 'VCPU' as const, value: String(shape.vcpus) },
    { type: 'MEMORY' as const, value: String(shape.memoryMiB) },
    ...(shape.gpus > 0 ? [{ type: 'GPU' as const, value: String(shape.gpus) }] : []),
  ]
  return {
    jobDefinitionName: jobDefinitionName(shape),
    type: 'container',
    platformCapabilities: ['EC2'],
    containerProperties: {
      image: shape.image,
      // The image's entrypoint is `cusp run-stage`; each job overrides this with its arguments.
      command: ['--help'],
      resourceRequirements,
      ...(shape.jobRoleArn !== undefined ? { jobRoleArn: shape.jobRoleArn } : {}),
    },
    retryStrategy: {
      attempts: shape.attempts,
      // First match wins: a lost host is retried, anything else (a stage's own exit) is final.
      evaluateOnExit: [
        { onStatusReason: HOST_FAILURE, action: 'RETRY' },
        { onReason: '*', action: 'EXIT' },
      ],
    },
    propagateTags: true,
    tags: { 'cusp:content': contentTag(shape), 'cusp:managed-by': 'cusp' },
  }
}

/** The job's name: one per pipeline, instance and fingerprint, so a resubmission finds it (<= 128 chars). */
export function batchJobName(pipelineName: string, inst: StageInstance, fingerprint: Fingerprint): string {
  return `cusp-${nameFragment(pipelineName, 24)}-${nameFragment(inst.id, 80)}-${shortHash(fingerprint)}`
}

/** SubmitJob's input for one instance (pure; tested field by field). */
export function submitInput(o: {
  jobQueue: string
  jobDefinitionArn: string
  pipelineName: string
  spec: PipelineSpec
  inst: StageInstance
  fingerprint: Fingerprint
  env: Record<string, string | undefined>
  timeoutSeconds?: number
}): SubmitJobRequest {
  // Job definitions and SubmitJob inputs are readable by whoever can describe jobs: no URL credentials.
  const environment = [{ name: 'CUSP_STORE', value: o.spec.store }]
  for (const name of BATCH_FORWARD_ENV) {
    const v = o.env[name]
    if (v !== undefined && v !== '' && !SECRET_ENV.test(name)) environment.push({ name, value: stripUrlCredentials(v) })
  }
  return {
    jobName: batchJobName(o.pipelineName, o.inst, o.fingerprint),
    jobQueue: o.jobQueue,
    jobDefinition: o.jobDefinitionArn,
    containerOverrides: {
      // After the entrypoint `cusp run-stage`: the instance, the store, the expected fingerprint.
      command: [...runStageArgv(o.spec, o.inst.id, o.fingerprint).slice(1), '--json'],
      environment,
    },
    // Batch's minimum attempt duration is 60 s.
    ...(o.timeoutSeconds !== undefined ? { timeout: { attemptDurationSeconds: Math.max(60, Math.round(o.timeoutSeconds)) } } : {}),
    propagateTags: true,
    tags: { 'cusp:instance': o.inst.id.slice(0, 256), 'cusp:fingerprint': o.fingerprint, 'cusp:pipeline': o.pipelineName.slice(0, 256) },
  }
}

/** Why a FAILED job failed: its host went away on the last attempt (infrastructure) or the stage failed. */
export type FailureKind =
  | { kind: 'host'; attempts: number; reason: string }
  | { kind: 'timeout'; reason: string }
  | { kind: 'stage'; exitCode: number | null; reason: string }

/** The status reason Batch gives an attempt it terminated at its `attemptDurationSeconds`. */
export const TIMEOUT_REASON = 'Job attempt duration exceeded timeout'

/**
 * Reads a FAILED job: the last attempt with no container exit code and a "Host EC2..." status
 * reason is a lost host (Batch already retried it as often as the definition allows); "Job
 * attempt duration exceeded timeout" is the instance's time limit (never retried); anything
 * else is the stage's own failure (exit code and reason from the last attempt or the container).
 */
export function classifyFailure(job: JobDetail): FailureKind {
  const attempts = job.attempts ?? []
  const last = attempts.at(-1)
  const exitCode = last?.container?.exitCode ?? job.container?.exitCode
  const statusReason = last?.statusReason ?? job.statusReason ?? ''
  const hostLost = exitCode === undefined && /^Host EC2/i.test(statusReason)
  if (hostLost) return { kind: 'host', attempts: attempts.length, reason: statusReason }
  if (statusReason.startsWith(TIMEOUT_REASON) || (job.statusReason ?? '').startsWith(TIMEOUT_REASON))
    return { kind: 'timeout', reason: statusReason || (job.statusReason ?? '') }
  const reason = [job.statusReason, last?.container?.reason ?? job.container?.reason]
    .filter((s): s is string => s !== undefined && s !== '')
    .join('; ')
  return { kind: 'stage', exitCode: exitCode ?? null, reason: reason || 'no reason reported' }
}

/** The log stream of a job's last attempt (where its CloudWatch log tail is). */
export function logStreamOf(job: JobDetail): string | undefined {
  return job.attempts?.at(-1)?.container?.logStreamName ?? job.container?.logStreamName
}

/** The CloudWatch log group of a job: its awslogs-group option, else Batch's default. */
export function logGroupOf(job: JobDetail): string {
  return job.container?.logConfiguration?.options?.['awslogs-group'] ?? '/aws/batch/job'
}
