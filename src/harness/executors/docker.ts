/**
 * The Docker runner (`--executor docker`): one `docker run --rm` of the stage image per ready
 * instance, with the instance's resource requests from pipeline.yaml as limits (`--cpus`,
 * `--memory`, `--gpus N` for GPU stages), the store as a URL, and the S3 settings passed by
 * name (`-e AWS_ACCESS_KEY_ID`: docker copies the value from this process's environment, so
 * secrets never appear on a command line). The image's entrypoint is `cusp run-stage`, so the
 * arguments are `<instance-id> --store <url> --expect <fp> ...`. `dockerRunArgs` is pure, so
 * the exact command lines are unit-tested; a real container runs only where an engine exists.
 */
import { basename } from 'node:path'
import type { Fingerprint, StageInstance } from '../types.ts'
import { attemptTag } from './kubernetes.ts'
import { runStreaming } from './local.ts'
import { redactedRun } from './relay-redact.ts'
import {
  memoryBytes,
  nameFragment,
  runStageArgv,
  shortHash,
  type InstanceRunner,
  type PipelineSpec,
  type RunnerOutcome,
  type RunnerRequest,
} from './runner.ts'

/** Environment variables a stage container needs to reach an S3-compatible store (forwarded when set). */
export const STORE_ENV = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_ENDPOINT_URL',
  'AWS_ENDPOINT_URL_S3',
  'CUSP_DEBUG',
] as const

export interface DockerOptions {
  image: string
  spec: PipelineSpec
  /** A name for the pipeline (labels, container names); default the project directory's name. */
  pipelineName: string
  /** Names of variables to forward (`-e NAME`); default those of STORE_ENV that are set in `env`. */
  forward?: string[]
  /** `--network`, e.g. `host` for a store on the host's loopback. */
  network?: string
  /** The docker CLI (default `docker`). */
  docker?: string
  env: Record<string, string | undefined>
  /** The attempt tag of each new container (default: random); tests pass a fixed one. */
  attempt?: () => string
}

/**
 * The container's name for an instance at a fingerprint and attempt (a valid docker name; the
 * attempt tag makes it unique per run, so an orphaned container of a killed run never blocks
 * the rerun with "name already in use").
 */
export function containerName(pipelineName: string, inst: StageInstance, fingerprint: string, attempt = ''): string {
  return `cusp-${nameFragment(pipelineName, 20)}-${nameFragment(inst.id, 40)}-${shortHash(fingerprint)}${attempt === '' ? '' : `-${attempt}`}`
}

/** An image reference docker accepts as one: `[host[:port]/]name[:tag][@digest]`, never an option. */
const IMAGE_REF =
  /^[a-z0-9][a-z0-9._-]*(?::[0-9]+)?(?:\/[a-z0-9._-]+)*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?$/

/** Why `image` cannot be a stage image (it starts with '-' so docker would read it as a flag, ...), or undefined. */
export function imageRefProblem(image: string): string | undefined {
  if (image.startsWith('-'))
    return `--image ${JSON.stringify(image)} starts with '-', so docker would read it as an option; give an image reference such as cusp:gpu or ghcr.io/org/cusp:1.0`
  if (image.length > 512 || !IMAGE_REF.test(image))
    return `--image ${JSON.stringify(image.slice(0, 100))} is not a valid image reference ([registry[:port]/]name[:tag][@sha256:digest], lowercase name)`
  return undefined
}

/** The arguments of `docker` for one instance (pure; see the module comment). */
export function dockerRunArgs(o: Omit<DockerOptions, 'docker'>, inst: StageInstance, fingerprint: Fingerprint, attempt = ''): string[] {
  const args = ['run', '--rm', '--name', containerName(o.pipelineName, inst, fingerprint, attempt)]
  args.push(
    '--label',
    `cusp.pipeline=${o.pipelineName}`,
    '--label',
    `cusp.instance=${inst.id}`,
    '--label',
    `cusp.fingerprint=${fingerprint}`,
  )
  args.push('--cpus', String(inst.resources.cpu))
  const mem = memoryBytes(inst.resources.memory)
  if (mem !== undefined) args.push('--memory', String(mem))
  if (inst.resources.gpu > 0) args.push('--gpus', String(inst.resources.gpu))
  if (o.network !== undefined) args.push('--network', o.network)
  const forward = o.forward ?? STORE_ENV.filter((n) => (o.env[n] ?? '') !== '')
  for (const name of forward) args.push('-e', name)
  // The entrypoint already is `cusp run-stage`: pass what follows it.
  args.push(o.image, ...runStageArgv(o.spec, inst.id, fingerprint).slice(1), '--json')
  return args
}

/** The default pipeline name: the project directory's name. */
export function pipelineNameOf(root: string): string {
  return basename(root) || 'pipeline'
}

/** A runner that runs each instance in its own container through the docker CLI. */
export class DockerRunner implements InstanceRunner {
  readonly name = 'docker'
  readonly needsSharedStore = true
  private readonly live = new Set<string>()
  constructor(private readonly o: DockerOptions) {}

  async run(req: RunnerRequest): Promise<RunnerOutcome> {
    const bad = imageRefProblem(this.o.image)
    if (bad !== undefined) return { ok: false, failure: { reason: 'usage', message: bad } }
    const attempt = (this.o.attempt ?? attemptTag)()
    const name = containerName(this.o.pipelineName, req.instance, req.fingerprint, attempt)
    this.live.add(name)
    try {
      // What the container prints is relayed redacted (relay-redact.ts).
      const r = await redactedRun(req, this.o.env, (q) =>
        runStreaming(
          this.o.docker ?? 'docker',
          dockerRunArgs(this.o, q.instance, q.fingerprint, attempt),
          { env: this.o.env, executor: this.name },
          q,
          new Set(),
        ),
      )
      // Past the time limit the docker CLI was stopped (it passes the signal on); make sure the container is too.
      if (!r.ok && r.failure.reason === 'timed-out') await this.kill([name])
      return r
    } finally {
      this.live.delete(name)
    }
  }

  async cancelAll(): Promise<void> {
    await this.kill([...this.live])
  }

  private async kill(names: string[]): Promise<void> {
    if (names.length === 0) return
    const { execa } = await import('execa')
    await execa(this.o.docker ?? 'docker', ['kill', ...names], { env: this.o.env, extendEnv: false, reject: false })
  }
}
