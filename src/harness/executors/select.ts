/**
 * From the command line to an `InstanceRunner` and the fingerprint environment that goes with
 * it: `local` is the in-process executor (no runner; env as installed here), `local-process`
 * runs the image's entrypoint command as a child process (env as installed here), `docker` and
 * `kubernetes` run containers of the stage image (env as inside that image: the host's imageEnv) and
 * need a store every container can reach (s3://...). The one place executor names are mapped.
 */
import { relative } from 'node:path'
import type { ExecutorKind } from '../cli-args.ts'
import type { RunOptions } from '../run-types.ts'
import { fail, ok, type Failure, type Result, type ValidPipeline } from '../types.ts'
import { DockerRunner, imageRefProblem, pipelineNameOf } from './docker.ts'
import type { Host } from '../host.ts'
import { AwsBatchRunner } from './aws-batch.ts'
import { KubernetesRunner } from './kubernetes.ts'
import { LocalProcessRunner } from './local.ts'
import type { InstanceRunner, PipelineSpec } from './runner.ts'
import { secretOverrides } from '../secret-params.ts'

/** The default stage image (Dockerfile, gpu target). */
export const DEFAULT_IMAGE = 'cusp:gpu'

export interface ExecutorChoice {
  executor: ExecutorKind
  pipeline: ValidPipeline
  /** The store spec as given (--store / CUSP_STORE); undefined = the embedded local store. */
  store: string | undefined
  profile: string | undefined
  overrides: string[]
  image: string | undefined
  namespace: string | undefined
  secret: string | undefined
  /** --executor aws-batch: the job queue (required there) and job role. */
  jobQueue?: string | undefined
  jobRole?: string | undefined
  /** `--backend`, passed on to run-stage (the scheduler fingerprinted with it). */
  backend?: string | undefined
  env: Record<string, string | undefined>
  /** Where the fingerprint environments come from (src/main.ts wires the science side). */
  host: Pick<Host, 'env' | 'imageEnv'>
}

/** How remote instances must analyse the pipeline (store URL, file, profile, overrides). */
export function pipelineSpec(c: Pick<ExecutorChoice, 'pipeline' | 'store' | 'profile' | 'overrides'>, store: string): PipelineSpec {
  const file = relative(c.pipeline.root, c.pipeline.file)
  return {
    store,
    ...(file !== 'pipeline.yaml' ? { file } : {}),
    ...(c.profile !== undefined ? { profile: c.profile } : {}),
    ...(c.overrides.length > 0 ? { overrides: c.overrides } : {}),
  }
}

/**
 * A usage failure when a `--set` gives a secret param (x-cusp-secret) and `what` (an executor
 * other than the in-process one, or `export`) would copy it into a command line, a job
 * definition or an exported file. Names the params, never their values. The advice is the
 * environment or the in-process executor; never a committed file (pipeline.yaml, a profile).
 */
export function secretOverrideFailure(
  pipeline: Pick<ValidPipeline, 'instances'>,
  overrides: readonly string[],
  what: ExecutorKind | 'export',
): Failure | undefined {
  if (overrides.length === 0) return undefined
  const names = secretOverrides(pipeline.instances.values(), overrides)
  if (names.length === 0) return undefined
  const into =
    what === 'export' ? 'export would write it into the exported workflow' : `--executor ${what} would put it on the stage's command line`
  return {
    reason: 'usage',
    message: `--set ${names.join(', ')}: secret param${names.length > 1 ? 's' : ''} (x-cusp-secret), and ${into}; give the secret to the stage through its environment instead, or run with the default in-process executor (--executor local)`,
  }
}

/** The runner (undefined for in-process) and env function for a choice, or a usage failure. */
export function selectExecutor(
  c: ExecutorChoice,
): Result<{ runner: InstanceRunner | undefined; env: NonNullable<RunOptions['env']> }, Failure> {
  const secretSet = c.executor === 'local' ? undefined : secretOverrideFailure(c.pipeline, c.overrides, c.executor)
  if (secretSet !== undefined) return fail(secretSet)
  const image = c.image ?? DEFAULT_IMAGE
  const remote = c.executor === 'docker' || c.executor === 'kubernetes' || c.executor === 'aws-batch'
  // An empty spec (CUSP_STORE='') means the embedded store, as in openStore.
  const given = c.store?.trim()
  const storeUrl = given !== undefined && given !== '' ? given : `${c.pipeline.root}/artifacts`
  if (remote && !storeUrl.startsWith('s3://')) {
    return fail({
      reason: 'usage',
      message: `--executor ${c.executor} needs a store every container can reach: --store s3://bucket/prefix (or CUSP_STORE)`,
    })
  }
  const badImage = remote ? imageRefProblem(image) : undefined
  if (badImage !== undefined) return fail({ reason: 'usage', message: badImage })
  const spec = { ...pipelineSpec(c, storeUrl), ...(c.backend !== undefined ? { backend: c.backend } : {}) }
  switch (c.executor) {
    case 'local':
      return ok({ runner: undefined, env: c.host.env })
    case 'local-process':
      return ok({ runner: new LocalProcessRunner({ spec, projectRoot: c.pipeline.root, env: c.env }), env: c.host.env })
    case 'docker':
      return ok({
        runner: new DockerRunner({ image, spec, pipelineName: pipelineNameOf(c.pipeline.root), env: c.env }),
        env: c.host.imageEnv(image),
      })
    case 'kubernetes':
      return ok({
        runner: new KubernetesRunner({
          image,
          spec,
          pipelineName: pipelineNameOf(c.pipeline.root),
          namespace: c.namespace ?? 'default',
          ...(c.secret !== undefined ? { secret: c.secret } : {}),
        }),
        env: c.host.imageEnv(image),
      })
    case 'aws-batch': {
      if (c.jobQueue === undefined || c.jobQueue === '')
        return fail({ reason: 'usage', message: '--executor aws-batch needs --job-queue QUEUE' })
      // Tuning by environment: status poll interval, and how long RUNNABLE may last before it is reported.
      const pollMs = positive(c.env.CUSP_BATCH_POLL_MS)
      const runnableS = positive(c.env.CUSP_BATCH_RUNNABLE_LIMIT_S)
      return ok({
        runner: new AwsBatchRunner({
          image,
          spec,
          pipelineName: pipelineNameOf(c.pipeline.root),
          jobQueue: c.jobQueue,
          env: c.env,
          ...(c.jobRole !== undefined ? { jobRoleArn: c.jobRole } : {}),
          ...(pollMs !== undefined ? { pollMs } : {}),
          ...(runnableS !== undefined ? { runnableLimitMs: runnableS * 1000 } : {}),
        }),
        env: c.host.imageEnv(image),
      })
    }
  }
}

/** A positive number from an environment variable, or undefined. */
function positive(v: string | undefined): number | undefined {
  const n = Number(v)
  return v !== undefined && v !== '' && Number.isFinite(n) && n > 0 ? n : undefined
}
