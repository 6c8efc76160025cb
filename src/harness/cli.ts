/**
 * The entry point of `npm run pipeline -- ...`. Everything happens in `main(argv, io)`, which
 * takes its streams, working directory and environment as arguments and returns the exit code,
 * so tests drive it in-process as well as through a real child process. Order matters for
 * safety: arguments are parsed and the pipeline is analysed before the store is opened or the
 * lock is touched, so an invalid pipeline or command line writes nothing anywhere. Exit codes:
 * 0 success, 1 a stage failed (or --verify found non-determinism), 2 invalid pipeline or usage.
 * Any exception reaching `main` is caught here once and printed as one line (with its stack only
 * when `CUSP_DEBUG=1`). What is specific to the science (environments, backend names, the closing
 * summary) comes in as a `Host` (host.ts); src/main.ts is the entry that wires it.
 */
import { availableParallelism } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { analyze, nodeReader } from './analyzer.ts'
import { parseCli, USAGE, type Command } from './cli-args.ts'
import { execute, plan, type ExecEvent } from './run-pipeline.ts'
import { formatFailure, ioFailure } from './failures.ts'
import { artifactsView, showView } from './registry.ts'
import { terminalJson } from './redact.ts'
import { createReporter, type OutputSink } from './reporter.ts'
import { etaFeed } from './eta-history.ts'
import { statusJson, statusText, whyText } from './plan-views.ts'
import { cliTrust, openStore } from './store/open-store.ts'
import { syncCommand } from './sync.ts'
import { fsckCommand } from './store/fsck.ts'
import { resolveInstance, resolveSelectors } from './targets.ts'
import { pipelineNameOf } from './executors/docker.ts'
import { runOne, runOneExitCode } from './executors/run-stage-command.ts'
import { DEFAULT_IMAGE, pipelineSpec, secretOverrideFailure, selectExecutor } from './executors/select.ts'
import { bareHost, type Host } from './host.ts'
import { exportArgo } from './export-argo.ts'
import { dagOutput } from './dag-command.ts'
import { openCommand } from './open-command.ts'
import { closingLines, publishAfter, publishedStatusLines } from './published-cli.ts'
import { offerReplay } from './noop-replay.ts'
import type { ArtifactStore, Failure, ValidPipeline } from './types.ts'
import type { RunOptions } from './run-types.ts'
import type { InstanceRunner } from './executors/runner.ts'

/** What `main` may touch: injected so tests can run it in-process. */
export interface CliIo {
  stdout: OutputSink
  stderr: OutputSink
  cwd: string
  env: Record<string, string | undefined>
}

/** Failure reasons that mean "the input was wrong" (exit 2) rather than "a run went wrong" (exit 1). */
const USER_ERRORS = new Set<Failure['reason']>([
  'yaml-syntax',
  'schema-violation',
  'params-invalid',
  'unknown-stage-impl',
  'bad-stage-schema',
  'dangling-dep',
  'duplicate-instance-id',
  'cycle',
  'bad-matrix',
  'unsafe-path',
  'unknown-profile',
  'bad-override',
  'unknown-target',
  'usage',
  'lock-invalid',
])

/** Exit code for a set of failures: 2 when every one is a user error, else 1. */
export function exitCodeFor(failures: readonly Failure[]): 1 | 2 {
  return failures.length > 0 && failures.every((f) => USER_ERRORS.has(f.reason)) ? 2 : 1
}

/** Run the CLI on `argv` (without node and the script); resolves to the process exit code. */
export async function main(argv: readonly string[], io: CliIo, host: Host = bareHost): Promise<number> {
  try {
    const parsed = parseCli(argv)
    if (!parsed.ok) return report(io, [parsed.error])
    const cmd = parsed.value
    if (cmd.kind === 'help') {
      io.stdout.write(`${USAGE}\n`)
      return 0
    }
    return await dispatch(cmd, io, host)
  } catch (e: unknown) {
    const debug = io.env.CUSP_DEBUG === '1'
    // An expected file-system error (EACCES, ENOSPC, ENOTDIR, ...) that got this far is one line, not a bug.
    const failure: Failure = ioFailure(e, { stack: false }) ?? { reason: 'unexpected', message: e instanceof Error ? e.message : String(e) }
    const hint = debug || failure.reason !== 'unexpected' ? '' : ' (CUSP_DEBUG=1 shows the stack)'
    io.stderr.write(`${oneLine(formatFailure(failure))}${hint}\n`)
    if (debug && e instanceof Error && e.stack) io.stderr.write(`${e.stack}\n`)
    return 1
  }
}

async function dispatch(cmd: Exclude<Command, { kind: 'help' }>, io: CliIo, host: Host): Promise<number> {
  const file = resolve(io.cwd, cmd.file ?? 'pipeline.yaml')
  const root = dirname(file)
  const analyseWith = (overrides: string[]) => analyze({ file, profile: cmd.profile, overrides, reader: nodeReader(root) })
  let analysed = await analyseWith(cmd.overrides)
  if (!analysed.ok) return report(io, analysed.error)
  if (cmd.backend !== undefined) {
    const { param, names } = host.backend
    if (!names.includes(cmd.backend)) {
      return report(io, [
        { reason: 'usage', message: `--backend expects one of ${names.join(', ') || '(none configured)'}, got '${cmd.backend}'` },
      ])
    }
    // --backend B = `--set S.<param>=B` for every stage S whose params have that param.
    const stages = new Set([...analysed.value.instances.values()].filter((i) => param in i.params).map((i) => i.stage))
    analysed = await analyseWith([...cmd.overrides, ...[...stages].sort().map((st) => `${st}.${param}=${cmd.backend ?? ''}`)])
    if (!analysed.ok) return report(io, analysed.error)
  }
  const pipeline = analysed.value

  const selected = resolveSelectors(pipeline, cmd.selectors)
  if (!selected.ok) return report(io, selected.error)
  const targets = selected.value.length > 0 ? selected.value : undefined

  // Only now, with a valid pipeline and command line, may anything be opened or written.
  // --store, else $CUSP_STORE, else the file's `store:`, else <project>/artifacts.
  const storeSpec = cmd.store ?? (io.env.CUSP_STORE?.trim() || pipeline.store)
  const store = openStore(storeSpec, root, io.env, {}, cliTrust(pipeline.instances.values(), io.stderr))
  if (!store.ok) {
    report(io, [store.error])
    return 2 // the store named by --store / CUSP_STORE cannot be used: a usage problem
  }
  const lockPath = join(root, 'pipeline.lock')
  // The numeric environment (backend, engine versions) of each instance, for its fingerprint.
  const base = { pipeline, store: store.value, lockPath, processEnv: io.env, env: host.env }

  switch (cmd.kind) {
    case 'run': {
      const chosen = selectExecutor({ ...cmd, pipeline, store: storeSpec, env: io.env, host })
      if (!chosen.ok) return report(io, [chosen.error])
      const { runner, env } = chosen.value
      // --estimate, and the cost confirmation before a paid run (wired in src/main.ts: the harness imports no science).
      if (cmd.estimate || (cmd.executor === 'aws-batch' && !cmd.dryRun)) {
        const costs = host.costs
        if (costs === undefined)
          return report(io, [
            { reason: 'usage', message: '--estimate and --executor aws-batch need the cost estimator, which this build does not wire' },
          ])
        const steps = await plan({ ...base, targets, env, force: cmd.force, downstream: cmd.downstream })
        if (!steps.ok) return report(io, steps.error)
        if (cmd.estimate) {
          const out = costs.estimateOutput(pipeline, steps.value, cmd)
          if (!out.ok) return report(io, [{ reason: 'usage', message: out.message }])
          io.stdout.write(out.text)
          if (cmd.dryRun) return 0
        }
        if (cmd.executor === 'aws-batch' && !cmd.dryRun) {
          const interactive = io.stdout.isTTY === true && process.stdin.isTTY === true
          const refused = await costs.confirmRun(pipeline, steps.value, cmd, { interactive, write: (s) => void io.stdout.write(s) })
          if (refused !== undefined) return report(io, [{ reason: 'usage', message: refused }])
        }
      }
      if (runner === undefined) return await runCommand(cmd, io, host, { ...base, targets })
      // Ctrl-C: stop every container or Job in flight, then let the run report and exit.
      const onInt = () => void runner.cancelAll()
      process.once('SIGINT', onInt)
      try {
        return await runCommand({ ...cmd, jobs: cmd.jobs ?? 64 }, io, host, { ...base, targets, env, runner })
      } finally {
        process.off('SIGINT', onInt)
      }
    }
    case 'run-stage': {
      const id = resolveInstance(pipeline, cmd.instance)
      if (!id.ok) return report(io, [id.error])
      const onEvent = cmd.json ? (e: ExecEvent) => void io.stdout.write(`${terminalJson(e)}\n`) : undefined
      const human = onEvent === undefined ? createReporter({ out: io.stdout, live: false, color: false }) : undefined
      let r
      try {
        r = await runOne({
          pipeline,
          store: store.value,
          instance: id.value,
          env: host.env,
          processEnv: io.env,
          onEvent: onEvent ?? ((e) => human?.onEvent(e)),
          ...(cmd.expect !== undefined ? { expect: cmd.expect } : {}),
        })
      } finally {
        human?.close()
      }
      if (!r.ok) report(io, r.error)
      else if (r.value.failures.length > 0) report(io, r.value.failures)
      return runOneExitCode(r)
    }
    case 'export': {
      const secretSet = secretOverrideFailure(pipeline, cmd.overrides, 'export')
      if (secretSet !== undefined) return report(io, [secretSet])
      const image = cmd.image ?? DEFAULT_IMAGE
      const exportSpec = storeSpec ?? join(root, 'artifacts')
      const steps = await plan({ ...base, targets, env: host.imageEnv(image) })
      if (!steps.ok) return report(io, steps.error)
      const spec = {
        ...pipelineSpec({ pipeline, store: exportSpec, profile: cmd.profile, overrides: cmd.overrides }, exportSpec),
        ...(cmd.backend !== undefined ? { backend: cmd.backend } : {}),
      }
      const out = exportArgo({
        pipeline,
        steps: steps.value,
        image,
        spec,
        pipelineName: pipelineNameOf(root),
        ...(cmd.namespace !== undefined ? { namespace: cmd.namespace } : {}),
        ...(cmd.secret !== undefined ? { secret: cmd.secret } : {}),
      })
      const { stringify } = await import('yaml')
      io.stdout.write(cmd.json ? `${JSON.stringify(out.workflow)}\n` : stringify(out.workflow, { lineWidth: 0 }))
      io.stderr.write(`argo: ${out.tasks} tasks, ${out.cached.length} cache hits left out\n`)
      return 0
    }
    case 'push':
    case 'pull':
    case 'gc':
      return await syncCommand(cmd.kind, {
        store: store.value,
        lockPath,
        dryRun: cmd.kind === 'gc' && cmd.dryRun,
        json: cmd.json,
        stdout: io.stdout,
        stderr: io.stderr,
        ...(cmd.kind === 'pull' ? { afterPull: async () => closingLines(await publishAfter(base), pipeline) } : {}),
      })
    case 'open':
      return await openCommand({ root, entries: pipeline.publish ?? [], env: io.env, stdout: io.stdout, stderr: io.stderr })
    case 'fsck':
      return await fsckCommand(store.value, { ...cmd, stdout: io.stdout, stderr: io.stderr })
    case 'status': {
      // --image: the question is "fresh for the cluster?", so fingerprint as inside that image.
      const steps = await plan({ ...base, targets, ...(cmd.image !== undefined ? { env: host.imageEnv(cmd.image) } : {}) })
      if (!steps.ok) return report(io, steps.error)
      const drift = await publishedStatusLines(pipeline)
      io.stdout.write(
        cmd.json
          ? `${terminalJson({ ...statusJson(pipeline, steps.value), ...(pipeline.publish !== undefined ? { published: drift.json } : {}) })}\n`
          : statusText(pipeline, steps.value, color(io)) + drift.text,
      )
      if (cmd.estimate) {
        if (host.costs === undefined)
          return report(io, [{ reason: 'usage', message: '--estimate needs the cost estimator, which this build does not wire' }])
        const out = host.costs.estimateOutput(pipeline, steps.value, cmd)
        if (!out.ok) return report(io, [{ reason: 'usage', message: out.message }])
        io.stdout.write(`${cmd.json ? '' : '\n'}${out.text}`)
      }
      return 0
    }
    case 'dag': {
      const out = await dagOutput(cmd, { ...base, targets }, io.cwd)
      return out.ok ? (io.stdout.write(out.value), 0) : report(io, out.error)
    }
    case 'why': {
      const id = resolveInstance(pipeline, cmd.instance)
      if (!id.ok) return report(io, [id.error])
      const steps = await plan({ ...base, ...(cmd.image !== undefined ? { env: host.imageEnv(cmd.image) } : {}) })
      if (!steps.ok) return report(io, steps.error)
      io.stdout.write(whyText(pipeline, steps.value, id.value, cmd.json))
      return 0
    }
    case 'artifacts':
    case 'show': {
      const id = resolveOptionalInstance(pipeline, cmd.instance)
      if (!id.ok) return report(io, [id.error])
      const view = cmd.kind === 'artifacts' ? artifactsView : showView
      const text = await view({ pipeline, store: store.value, lockPath, instance: id.value, json: cmd.json })
      if (!text.ok) return report(io, [text.error])
      io.stdout.write(text.value)
      return 0
    }
  }
}

type RunCommand = Extract<Command, { kind: 'run' }>
type Base = {
  pipeline: ValidPipeline
  store: ArtifactStore
  lockPath: string
  processEnv: CliIo['env']
  targets: string[] | undefined
  env: NonNullable<RunOptions['env']>
  runner?: InstanceRunner
}

/**
 * `run`: execute with the live/plain reporter (or JSON lines), then print every failure once,
 * formatted, on stderr. Exit 1 when a stage failed or --verify found non-determinism.
 */
async function runCommand(cmd: RunCommand, io: CliIo, host: Host, base: Base): Promise<number> {
  // On a terminal the plan is one line per stage; --dry-run, -v and every other output list each instance's reasons.
  const tty = io.stdout.isTTY === true
  const human = cmd.json
    ? undefined
    : createReporter({
        out: io.stdout,
        live: tty,
        color: color(io),
        instanceReasons: !tty || cmd.dryRun || cmd.verbose,
        ...(tty ? { stageOf: (id: string) => base.pipeline.instances.get(id)?.stage ?? id } : {}),
      })
  const slots = cmd.jobs ?? availableParallelism()
  const eta = human && etaFeed(human, { ...base, slots, remote: base.runner !== undefined, workSize: host.workSize })
  const onEvent = human
    ? (e: ExecEvent) => (human.onEvent(e), eta?.onEvent(e))
    : (e: ExecEvent) => void io.stdout.write(`${terminalJson(e)}\n`)
  let result
  try {
    result = await execute({
      ...base,
      downstream: cmd.downstream,
      force: cmd.force,
      dryRun: cmd.dryRun,
      verify: cmd.verify,
      ...(cmd.jobs !== undefined ? { jobs: cmd.jobs } : {}),
      keepGoing: cmd.keepGoing,
      jobTimeout: cmd.jobTimeout,
      onEvent,
    })
    if (cmd.dryRun) await eta?.settled()
  } finally {
    human?.close()
    await eta?.settled()
  }
  if (!result.ok) return report(io, result.error)
  const summary = result.value
  if (cmd.json) io.stdout.write(`${terminalJson({ type: 'summary', ok: summary.ok, outcomes: summary.outcomes })}\n`)
  else if (!cmd.dryRun) io.stdout.write(`${human?.summary() ?? ''}\n`)
  if (summary.failures.length > 0) report(io, summary.failures)
  if (!cmd.json && !cmd.dryRun && host.afterRun !== undefined) {
    const closing = await host.afterRun({
      lockPath: base.lockPath,
      store: base.store,
      outcomes: summary.outcomes,
      profile: base.pipeline.profile,
    })
    if (closing !== undefined) io.stdout.write(`\n${closing}`)
  }
  const published = cmd.dryRun ? undefined : await publishAfter(base, summary.outcomes)
  if (!cmd.dryRun && !cmd.json) for (const line of closingLines(published, base.pipeline)) io.stdout.write(`${line}\n`)
  offerReplay({ cmd, remote: base.runner !== undefined, store: base.store, summary, published, root: base.pipeline.root })
  const nondeterministic = Object.entries(summary.outcomes).filter(([, o]) => o.outcome === 'nondeterministic')
  for (const [id, o] of nondeterministic) {
    io.stderr.write(
      `${id}: not deterministic: a re-execution produced different bytes in ${(o.mismatches ?? []).join(', ') || '(unknown)'}\n`,
    )
  }
  return summary.ok ? 0 : 1
}

function resolveOptionalInstance(pipeline: ValidPipeline, id: string | undefined) {
  return id === undefined ? ({ ok: true, value: undefined } as const) : resolveInstance(pipeline, id)
}

/** Print each failure as formatted by failures.ts; returns the exit code they call for. */
function report(io: CliIo, failures: readonly Failure[]): number {
  for (const f of failures) io.stderr.write(`${formatFailure(f).trimEnd()}\n`)
  return exitCodeFor(failures)
}

function color(io: CliIo): boolean {
  return io.stdout.isTTY === true && (io.env.NO_COLOR ?? '') === '' && io.env.TERM !== 'dumb'
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim()
}

/**
 * Run as the process: `main` on process.argv with the real streams, then exit with its code.
 * Used by the entry module (src/main.ts), directly or through the bundled CLI (scripts/pipeline.mjs).
 */
export async function runAsProcess(host: Host = bareHost): Promise<never> {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0)
  })
  const code = await main(
    process.argv.slice(2),
    {
      stdout: process.stdout,
      stderr: process.stderr,
      cwd: process.cwd(),
      env: process.env,
    },
    host,
  )
  // A pipe whose reader is slower than us holds output in Node's queue (only the first ~128 KiB
  // go straight to the kernel), so flush both streams before exiting. Exiting explicitly, rather
  // than letting the loop drain, does not wait on handles a library may have left open.
  await Promise.all([flush(process.stdout), flush(process.stderr)])
  process.exit(code)
}

/** Resolves once everything written to `stream` so far has been handed to the OS. */
function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve()
    stream.write('', () => resolve())
  })
}
