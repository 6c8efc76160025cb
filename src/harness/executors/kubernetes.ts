/**
 * The Kubernetes runner (`--executor kubernetes`): one batch/v1 Job per ready instance, created
 * through `@kubernetes/client-node` with the stage image, the run-stage arguments, the
 * instance's resource requests as requests AND limits (`nvidia.com/gpu` for GPU stages),
 * `backoffLimit` (default 0: a failed stage is a failure to report, not to retry blindly),
 * `ttlSecondsAfterFinished`, labels carrying the pipeline and instance (label-safe fragments;
 * exact ids in annotations), and the S3 credentials from a named Secret (`envFrom`). The
 * harness stays the scheduler: it creates a Job only when the instance's upstream is settled,
 * then watches that Job to completion. On failure it reads the Job's pods and says why (the
 * container's termination reason and exit code, or a waiting reason such as ImagePullBackOff)
 * with the tail of the pod log; a container that can never start (ImagePullBackOff, a missing
 * Secret) fails its instance instead of waiting forever. A Job deleted by someone else fails its instance; `cancelAll`
 * (Ctrl-C) deletes every Job this runner created, with its pods.
 */
import { randomBytes } from 'node:crypto'
import type * as k8s from '@kubernetes/client-node'
import type { Fingerprint, StageInstance } from '../types.ts'
import {
  nameFragment,
  remoteFailure,
  runStageArgv,
  shortHash,
  timedOut,
  type InstanceRunner,
  type PipelineSpec,
  type RunnerOutcome,
  type RunnerRequest,
} from './runner.ts'
import { redactedRun } from './relay-redact.ts'

export interface KubernetesOptions {
  image: string
  spec: PipelineSpec
  pipelineName: string
  namespace: string
  /** A Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...) become the container's env. */
  secret?: string
  /** This process's environment, for the secret values redacted from relayed pod logs (default process.env). */
  env?: Record<string, string | undefined>
  backoffLimit?: number
  ttlSecondsAfterFinished?: number
  /** Default: `loadFromDefault()` (KUBECONFIG, ~/.kube/config, or in-cluster). */
  kubeConfig?: k8s.KubeConfig
  /** Lines of pod log shown for a failure (default 40). */
  logLines?: number
  /** How often the Job's pods are checked for a container that can never start (default 15 s). */
  podPollMs?: number
  /** The attempt tag of each new Job (default: random, attemptTag); tests pass a fixed one. */
  attempt?: () => string
}

/**
 * Waiting reasons after which a container never starts by itself: the Job would wait forever
 * (backoffLimit counts failed pods, not pods that never ran), so the runner fails it instead.
 */
export const FATAL_WAITING = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
])

/**
 * The Job's name: DNS-1123, at most 63 characters, from the instance, the fingerprint and the
 * attempt (a random tag per run, so a kept failed Job of an earlier attempt never blocks a rerun).
 */
export function jobName(inst: StageInstance, fingerprint: Fingerprint, attempt = ''): string {
  return attempt === ''
    ? `cusp-${nameFragment(inst.id, 48)}-${shortHash(fingerprint)}`
    : `cusp-${nameFragment(inst.id, 41)}-${shortHash(fingerprint)}-${attempt}`
}

/** A fresh attempt tag: 6 lowercase hex characters. */
export function attemptTag(): string {
  return randomBytes(3).toString('hex')
}

/** Labels of a Job and its pods (values label-safe). */
export function jobLabels(pipelineName: string, inst: StageInstance, fingerprint: Fingerprint): Record<string, string> {
  return {
    'app.kubernetes.io/managed-by': 'cusp',
    'cusp.dev/pipeline': nameFragment(pipelineName),
    'cusp.dev/stage': nameFragment(inst.stage),
    'cusp.dev/instance': nameFragment(inst.id),
    'cusp.dev/fingerprint': shortHash(fingerprint),
  }
}

/** The Job manifest for one instance (pure; unit-tested field by field). */
export function jobManifest(
  o: Omit<KubernetesOptions, 'kubeConfig'>,
  inst: StageInstance,
  fingerprint: Fingerprint,
  attempt = '',
  timeoutSeconds?: number,
): k8s.V1Job {
  const labels = jobLabels(o.pipelineName, inst, fingerprint)
  const r = inst.resources
  const requests: Record<string, string> = { cpu: String(r.cpu), memory: r.memory }
  const limits: Record<string, string> = { cpu: String(r.cpu), memory: r.memory }
  if (r.gpu > 0) {
    requests['nvidia.com/gpu'] = String(r.gpu)
    limits['nvidia.com/gpu'] = String(r.gpu)
  }
  const container: k8s.V1Container = {
    name: 'stage',
    image: o.image,
    // The image's entrypoint is `cusp run-stage`: only the arguments after it.
    args: [...runStageArgv(o.spec, inst.id, fingerprint).slice(1), '--json'],
    resources: { requests, limits },
    ...(o.secret !== undefined ? { envFrom: [{ secretRef: { name: o.secret } }] } : {}),
  }
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: jobName(inst, fingerprint, attempt),
      namespace: o.namespace,
      labels,
      annotations: { 'cusp.dev/instance-id': inst.id, 'cusp.dev/fingerprint': fingerprint, 'cusp.dev/pipeline': o.pipelineName },
    },
    spec: {
      backoffLimit: o.backoffLimit ?? 0,
      // The instance's time limit: past it Kubernetes stops the pods and fails the Job (DeadlineExceeded).
      ...(timeoutSeconds !== undefined ? { activeDeadlineSeconds: timeoutSeconds } : {}),
      ttlSecondsAfterFinished: o.ttlSecondsAfterFinished ?? 3600,
      template: {
        metadata: { labels },
        spec: {
          restartPolicy: 'Never',
          securityContext: { runAsNonRoot: true },
          containers: [container],
        },
      },
    },
  }
}

type JobEnd =
  { kind: 'succeeded' } | { kind: 'failed'; message: string; deadline?: boolean } | { kind: 'deleted' } | { kind: 'lost'; message: string }

/** A runner that runs each instance as a Kubernetes Job and watches it to completion. */
export class KubernetesRunner implements InstanceRunner {
  readonly name = 'kubernetes'
  readonly needsSharedStore = true
  private readonly live = new Set<string>()
  private cancelled = false
  private api: Promise<{ kc: k8s.KubeConfig; batch: k8s.BatchV1Api; core: k8s.CoreV1Api; mod: typeof k8s }> | undefined
  constructor(private readonly o: KubernetesOptions) {}

  /** The client, loaded on first use (importing it costs CPU a local run should not pay). */
  private client() {
    this.api ??= (async () => {
      const mod = await import('@kubernetes/client-node')
      let kc = this.o.kubeConfig
      if (kc === undefined) {
        kc = new mod.KubeConfig()
        kc.loadFromDefault()
      }
      return { kc, batch: kc.makeApiClient(mod.BatchV1Api), core: kc.makeApiClient(mod.CoreV1Api), mod }
    })()
    return this.api
  }

  /** Runs the Job; pod logs and messages are relayed redacted (relay-redact.ts). */
  async run(req: RunnerRequest): Promise<RunnerOutcome> {
    return redactedRun(req, this.o.env ?? process.env, (r) => this.runJob(r))
  }

  private async runJob(req: RunnerRequest): Promise<RunnerOutcome> {
    const id = req.instance.id
    if (this.cancelled) return { ok: false, failure: remoteFailure(id, null, 'SIGINT', 'cancelled before its Job was created') }
    const { kc, batch, core, mod } = await this.client()
    const body = jobManifest(this.o, req.instance, req.fingerprint, (this.o.attempt ?? attemptTag)(), req.timeout?.seconds)
    const name = body.metadata?.name ?? ''
    const ns = this.o.namespace
    try {
      await batch.createNamespacedJob({ namespace: ns, body })
    } catch (e: unknown) {
      return { ok: false, failure: remoteFailure(id, null, null, `cannot create Job ${ns}/${name}: ${apiMessage(e)}`) }
    }
    this.live.add(name)
    if (this.cancelled) await this.cancelAll() // Ctrl-C came while the create was in flight: cancelAll missed this Job
    req.emit({ type: 'log', instance: id, message: `Job ${ns}/${name} created` })
    // Read when the watch opens and on every pod poll: a Job that ended or vanished unseen by the
    // watch (before it opened, or while it was silent) is noticed too.
    const current = async (): Promise<JobEnd | undefined> => {
      try {
        return jobEnd(await batch.readNamespacedJob({ name, namespace: ns }))
      } catch (e: unknown) {
        return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === 404 ? { kind: 'deleted' } : undefined
      }
    }
    const watchStop: WatchStop = { end: undefined, kick: () => undefined }
    let stuck: string | undefined
    let watching = true
    let wake: () => void = () => undefined
    const stop = (): void => {
      watching = false
      wake()
    }
    const poll = (async () => {
      const every = this.o.podPollMs ?? 15_000
      while (watching) {
        await new Promise<void>((r) => {
          const timer = setTimeout(r, every)
          wake = () => {
            clearTimeout(timer)
            r()
          }
        })
        if (!watching) return
        const now = await current()
        if (now !== undefined) {
          watchStop.end = now
          watchStop.kick()
          return
        }
        stuck = await this.fatalWaiting(core, ns, name)
        if (stuck !== undefined) {
          await batch.deleteNamespacedJob({ name, namespace: ns, propagationPolicy: 'Background' }).catch(() => undefined)
          return
        }
      }
    })()
    try {
      const end = await watchJob(new mod.Watch(kc), ns, name, current, watchStop)
      stop()
      await poll
      if (end.kind === 'succeeded') return { ok: true }
      const why =
        stuck !== undefined
          ? `Job ${ns}/${name} deleted: its container cannot start (${stuck})`
          : end.kind === 'deleted'
            ? `Job ${ns}/${name} was deleted before it finished${this.cancelled ? ' (cancelled)' : ''}`
            : end.message
      const pods = await this.podReport(core, ns, name)
      if (end.kind === 'failed' && end.deadline && req.timeout !== undefined)
        return { ok: false, failure: timedOut(id, req.timeout, this.name, `${why}\n${pods.text}`) }
      return { ok: false, failure: remoteFailure(id, pods.exitCode, this.cancelled ? 'SIGINT' : null, `${why}\n${pods.text}`) }
    } finally {
      stop()
      this.live.delete(name)
    }
  }

  /** A fatal waiting reason of one of the Job's containers (see FATAL_WAITING), or undefined. */
  private async fatalWaiting(core: k8s.CoreV1Api, ns: string, job: string): Promise<string | undefined> {
    try {
      const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: `job-name=${job}` })).items
      for (const pod of pods) {
        for (const cs of pod.status?.containerStatuses ?? []) {
          const w = cs.state?.waiting
          if (w?.reason !== undefined && FATAL_WAITING.has(w.reason)) return `${w.reason}${w.message !== undefined ? `: ${w.message}` : ''}`
        }
      }
    } catch {
      // the API is unreachable for a moment: the watch decides
    }
    return undefined
  }

  /** Why the Job's pods ended as they did, with each pod's log tail; the last container exit code. */
  private async podReport(core: k8s.CoreV1Api, ns: string, job: string): Promise<{ text: string; exitCode: number | null }> {
    let pods: k8s.V1Pod[]
    try {
      pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: `job-name=${job}` })).items
    } catch (e: unknown) {
      return { text: `(cannot list its pods: ${apiMessage(e)})`, exitCode: null }
    }
    let exitCode: number | null = null
    const lines: string[] = []
    for (const pod of pods) {
      const pname = pod.metadata?.name ?? '?'
      const reasons: string[] = []
      if (pod.status?.reason !== undefined)
        reasons.push(`${pod.status.reason}${pod.status.message !== undefined ? `: ${pod.status.message}` : ''}`)
      for (const cs of pod.status?.containerStatuses ?? []) {
        const t = cs.state?.terminated
        const w = cs.state?.waiting
        if (t !== undefined) {
          exitCode = t.exitCode
          reasons.push(
            `container ${cs.name} terminated: ${t.reason ?? 'unknown reason'}, exit code ${t.exitCode}${t.message !== undefined ? ` (${t.message})` : ''}`,
          )
        } else if (w !== undefined)
          reasons.push(`container ${cs.name} waiting: ${w.reason ?? 'unknown reason'}${w.message !== undefined ? ` (${w.message})` : ''}`)
      }
      lines.push(`pod ${pname} (${pod.status?.phase ?? 'unknown phase'}): ${reasons.join('; ') || 'no reason reported'}`)
      try {
        const log = await core.readNamespacedPodLog({ name: pname, namespace: ns, tailLines: this.o.logLines ?? 40 })
        if (log.trim() !== '') lines.push(`--- last lines of its log ---\n${log.trimEnd()}`)
      } catch {
        // a pod that never started has no log
      }
    }
    if (pods.length === 0) lines.push('(no pods found for it)')
    return { text: lines.join('\n'), exitCode }
  }

  async cancelAll(): Promise<void> {
    this.cancelled = true
    if (this.live.size === 0 || this.api === undefined) return
    const { batch } = await this.client()
    await Promise.all(
      [...this.live].map((name) =>
        batch.deleteNamespacedJob({ name, namespace: this.o.namespace, propagationPolicy: 'Background' }).catch(() => undefined),
      ),
    )
  }
}

/**
 * Watches one Job until it succeeds, fails or is deleted. A watch the server closes (they time
 * out) is reopened; each time it opens, the Job is also read (`current`), so an end that came
 * before the watch, including a deletion (which a new watch would never report), is not missed.
 */
async function watchJob(
  w: k8s.Watch,
  ns: string,
  name: string,
  current: () => Promise<JobEnd | undefined>,
  stop: WatchStop,
): Promise<JobEnd> {
  for (let reopen = 0; reopen < 1000; reopen++) {
    let settled: JobEnd | undefined
    if (stop.end !== undefined) return stop.end
    const closed = await new Promise<{ err: unknown }>((resolve) => {
      let ctrl: AbortController | undefined
      stop.kick = () => {
        ctrl?.abort()
        resolve({ err: undefined })
      }
      w.watch(
        `/apis/batch/v1/namespaces/${ns}/jobs`,
        { fieldSelector: `metadata.name=${name}` },
        (phase, obj: k8s.V1Job) => {
          if (settled !== undefined || obj.metadata?.name !== name) return
          if (phase === 'DELETED') settled = { kind: 'deleted' }
          else settled = jobEnd(obj)
          if (settled !== undefined) ctrl?.abort()
        },
        (err: unknown) => resolve({ err }),
      ).then(
        async (c) => {
          ctrl = c
          if (settled === undefined) {
            const now = await current()
            settled ??= now
          }
          if (settled !== undefined) c.abort()
        },
        (err: unknown) => resolve({ err }),
      )
    })
    if (settled !== undefined) return settled
    if (stop.end !== undefined) return stop.end
    if (closed.err !== null && closed.err !== undefined && !isAbort(closed.err)) {
      return { kind: 'lost', message: `watching Job ${ns}/${name} failed: ${apiMessage(closed.err)}` }
    }
  }
  return { kind: 'lost', message: `watching Job ${ns}/${name}: the watch kept closing` }
}

/** Lets the pod poll end a watch that has not reported (e.g. one whose response never started). */
interface WatchStop {
  end: JobEnd | undefined
  kick: () => void
}

/** The end state a Job object shows, or undefined while it is still running. */
export function jobEnd(job: k8s.V1Job): JobEnd | undefined {
  const conds = job.status?.conditions ?? []
  const failed = conds.find((c) => c.type === 'Failed' && c.status === 'True')
  if (failed !== undefined)
    return {
      kind: 'failed',
      message: `Job ${job.metadata?.name ?? ''} failed: ${failed.reason ?? ''}${failed.message !== undefined ? ` (${failed.message})` : ''}`,
      ...(failed.reason === 'DeadlineExceeded' ? { deadline: true } : {}),
    }
  if (conds.some((c) => c.type === 'Complete' && c.status === 'True') || (job.status?.succeeded ?? 0) > 0) return { kind: 'succeeded' }
  return undefined
}

function isAbort(e: unknown): boolean {
  return e instanceof Error && (e.name === 'AbortError' || /aborted/i.test(e.message))
}

/** A readable message of a client error (ApiException carries the Status body). */
function apiMessage(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'code' in e && 'body' in e) {
    const body = (e as { body: unknown }).body
    const msg = typeof body === 'string' ? body : JSON.stringify(body)
    return `HTTP ${String((e as { code: unknown }).code)}: ${msg}`
  }
  return e instanceof Error ? e.message : String(e)
}
