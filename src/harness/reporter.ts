/**
 * The human view of a run: turns executor events into terminal output. On a TTY it keeps a live
 * block at the bottom, one line per running instance with its elapsed time and the stage's own
 * latest progress message, plus a footer counting settled instances, redrawn in place
 * (finished instances scroll above it as permanent lines). Elsewhere (a pipe, a CI log) it prints plain lines only, with progress throttled so logs
 * stay readable. Colour is used only on a TTY and never when `NO_COLOR` is set. `--json` does not
 * come here: the CLI prints events as JSON lines itself.
 */
import { printable } from './redact.ts'
import type { ExecEvent } from './run-pipeline.ts'
import { formatFailure } from './failures.ts'
import { describeReasons } from './reasons.ts'
import { stageLines } from './plan-summary.ts'
import { etaLine, remainingText, type EtaPlan } from './eta.ts'
import { unreachable, type PlanStep } from './types.ts'

/** Where output goes: a stream's `write`, plus what a TTY tells us about itself. */
export interface OutputSink {
  write(chunk: string): unknown
  isTTY?: boolean
  columns?: number
}

export interface ReporterOptions {
  out: OutputSink
  /** Redraw a live block in place (a TTY). */
  live: boolean
  color: boolean
  /** Clock in ms, injectable for tests. */
  now?: () => number
  /** Minimum ms between two plain progress lines of one instance. */
  plainProgressEveryMs?: number
  /** Print each instance that will run with its reasons (default true). */
  instanceReasons?: boolean
  /** Given: also print the plan as one line per stage (plan-summary.ts), the stage of each instance from here. */
  stageOf?: (id: string) => string
}

export interface Reporter {
  onEvent(event: ExecEvent): void
  /** Stop the redraw timer and clear the live block. Idempotent. */
  close(): void
  /** What happened so far in one line: `3 ran, 0 restored, 197 fresh[, 1 failed][, 2 skipped]`. */
  summary(): string
  /** The plan's ETA (eta-history.ts): printed once, then kept current in the live footer. Ignored after close. */
  setEta(plan: EtaPlan | undefined): void
}

/** At most this many running instances get a live line each; the rest are counted. */
const MAX_LIVE = 20

interface Running {
  started: number
  message: string
  lastPlain: number
}

/** A reporter writing to `opts.out`; call `close()` when the run ends. */
export function createReporter(opts: ReporterOptions): Reporter {
  const now = opts.now ?? Date.now
  const every = opts.plainProgressEveryMs ?? 2000
  const paint = painter(opts.color)
  const running = new Map<string, Running>()
  let drawn = 0
  const counts: Record<PlanStep['action'], number> = { run: 0, restore: 0, fresh: 0 }
  let failed = 0
  let skipped = 0
  let total: number | undefined
  let lastDraw = -Infinity
  let timer: ReturnType<typeof setInterval> | undefined
  let eta: EtaPlan | undefined
  let closed = false
  /** Instances that settled (any outcome), for the time left. */
  const finished = new Set<string>()

  const width = (): number => Math.max(20, (opts.out.columns ?? 100) - 1)
  const clip = (s: string): string => (s.length > width() ? `${s.slice(0, width() - 1)}…` : s)

  function clearLive(): void {
    if (drawn > 0) opts.out.write(`\x1b[${drawn}F\x1b[J`)
    drawn = 0
  }
  function drawLive(): void {
    if (!opts.live) return
    const shown = [...running].slice(0, MAX_LIVE)
    const lines = shown.map(([id, r]) => {
      const secs = ((now() - r.started) / 1000).toFixed(1)
      return clip(`  ${paint.cyan('⠿')} ${id}  ${paint.dim(`${secs}s`)}${r.message ? `  ${r.message}` : ''}`)
    })
    if (running.size > shown.length) lines.push(`  … and ${running.size - shown.length} more running`)
    if (running.size > 0) {
      const settled = counts.run + counts.restore + counts.fresh + failed + skipped
      const left = eta === undefined ? undefined : remainingText(eta, finished, elapsedNow())
      lines.push(paint.dim(`  [${settled}/${total ?? '?'}] ${running.size} running${left !== undefined ? `  ${left}` : ''}`))
    }
    if (lines.length > 0) opts.out.write(`${lines.join('\n')}\n`)
    drawn = lines.length
    lastDraw = now()
  }
  /** Print permanent lines above the live block. */
  function emit(...lines: string[]): void {
    if (opts.live) clearLive()
    opts.out.write(`${lines.join('\n')}\n`)
    if (opts.live) drawLive()
  }
  function redraw(): void {
    clearLive()
    drawLive()
  }
  function ensureTimer(): void {
    if (!opts.live || timer !== undefined) return
    timer = setInterval(redraw, 250)
    timer.unref?.()
  }

  function elapsedNow(): Map<string, number> {
    return new Map([...running].map(([id, r]) => [id, now() - r.started]))
  }

  function onEvent(e: ExecEvent): void {
    if (e.type === 'done' || e.type === 'failed' || e.type === 'skipped') finished.add(e.instance)
    switch (e.type) {
      case 'plan': {
        total = e.steps.length
        const n = (a: string): number => e.steps.filter((s) => s.action === a).length
        emit(`plan: ${e.steps.length} instances: ${n('run')} to run, ${n('restore')} to restore, ${n('fresh')} fresh`)
        if (opts.instanceReasons ?? true) {
          for (const s of e.steps.filter((x) => x.action === 'run')) {
            emit(paint.dim(`  run ${s.instance}: ${describeReasons(s.reasons).join('; ') || 'selected'}`))
          }
        }
        const table = opts.stageOf === undefined ? [] : stageLines(e.steps, opts.stageOf)
        if (table.length > 0) emit(...table)
        return
      }
      case 'start':
        running.set(e.instance, { started: now(), message: e.action === 'restore' ? 'restoring' : '', lastPlain: now() })
        if (opts.live) {
          ensureTimer()
          redraw()
        } else if (e.action === 'run') emit(`  start    ${e.instance}`)
        return
      case 'progress': {
        const r = running.get(e.instance)
        if (r === undefined) return
        const pct = `${Math.round(Math.min(1, Math.max(0, e.fraction)) * 100)}%`
        r.message = e.message === undefined ? pct : `${pct} ${oneLine(e.message)}`
        if (opts.live) {
          if (now() - lastDraw >= 100) redraw()
        } else if (now() - r.lastPlain >= every) {
          r.lastPlain = now()
          emit(`           ${e.instance}: ${r.message}`)
        }
        return
      }
      case 'log':
        emit(paint.dim(`  [${e.instance}] ${oneLine(e.message)}`))
        return
      case 'done': {
        running.delete(e.instance)
        counts[e.action]++
        if (e.action === 'fresh') {
          if (opts.live) redraw()
          return
        }
        const verb = e.action === 'restore' ? 'restored' : 'done'
        emit(`${paint.green('✓')} ${verb.padEnd(8)} ${e.instance}${paint.dim(` (${fmtMs(e.durationMs)})`)}`)
        return
      }
      case 'failed':
        running.delete(e.instance)
        failed++
        emit(`${paint.red('✗')} failed   ${e.instance}: ${firstLine(formatFailure(e.failure))}`)
        return
      case 'skipped':
        running.delete(e.instance)
        skipped++
        emit(`${paint.yellow('-')} skipped  ${e.instance}: ${oneLine(e.because)}`)
        return
      case 'verify':
        if (e.deterministic) emit(`${paint.green('=')} verified ${e.instance}: outputs identical`)
        else emit(`${paint.red('≠')} verify   ${e.instance}: NOT deterministic, differs in ${e.mismatches.join(', ') || '(unknown)'}`)
        return
      default:
        return unreachable(e)
    }
  }

  return {
    onEvent,
    close(): void {
      closed = true
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      if (opts.live) clearLive()
      running.clear()
    },
    summary(): string {
      const parts = [`${counts.run} ran`, `${counts.restore} restored`, `${counts.fresh} fresh`]
      if (failed > 0) parts.push(paint.red(`${failed} failed`))
      if (skipped > 0) parts.push(`${skipped} skipped`)
      return parts.join(', ')
    },
    setEta(plan: EtaPlan | undefined): void {
      if (closed || plan === undefined) return
      eta = plan
      const line = etaLine(plan)
      if (line !== undefined) emit(line)
    },
  }
}

/** Text from a stage or a record as one printable line: redacted, without control characters, clipped. */
function oneLine(s: string): string {
  return printable(s.replace(/\s*\n\s*/g, ' ').trim(), [], 2000)
}

function firstLine(s: string): string {
  return printable(s.split('\n')[0]?.trim() ?? '', [], 2000)
}

/** `1.2s`, `350ms`, `2m05s`. */
export function fmtMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`
  const m = Math.floor(ms / 60_000)
  const s = Math.round((ms % 60_000) / 1000)
  return `${m}m${String(s).padStart(2, '0')}s`
}

interface Painter {
  green(s: string): string
  red(s: string): string
  yellow(s: string): string
  cyan(s: string): string
  dim(s: string): string
}

/** ANSI colours, or identity functions when colour is off. */
export function painter(color: boolean): Painter {
  const wrap = (code: number, reset: number) => (s: string) => (color ? `\x1b[${code}m${s}\x1b[${reset}m` : s)
  return { green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39), cyan: wrap(36, 39), dim: wrap(2, 22) }
}
