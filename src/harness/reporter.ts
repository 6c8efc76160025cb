/**
 * The human view of a run: turns executor events into terminal output. On a TTY it keeps a live
 * block at the bottom, one line per running instance with its elapsed time and the stage's own
 * latest progress message, redrawn in place (finished instances scroll above it as permanent
 * lines). Elsewhere (a pipe, a CI log) it prints plain lines only, with progress throttled so logs
 * stay readable. Colour is used only on a TTY and never when `NO_COLOR` is set. `--json` does not
 * come here: the CLI prints events as JSON lines itself.
 */
import type { PlanStep, RerunReason } from './types.ts'
import { describeReason } from './reasons.ts'

/** Where output goes: a stream's `write`, plus what a TTY tells us about itself. */
export interface OutputSink {
  write(chunk: string): unknown
  isTTY?: boolean
  columns?: number
}

/** An executor event as the reporter reads it; fields it does not know are ignored. */
export interface ReporterEvent {
  type: string
  instance?: string
  [key: string]: unknown
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
}

export interface Reporter {
  onEvent(event: ReporterEvent): void
  /** Stop the redraw timer and clear the live block. Idempotent. */
  close(): void
}

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
  let timer: ReturnType<typeof setInterval> | undefined

  const width = (): number => Math.max(20, (opts.out.columns ?? 100) - 1)
  const clip = (s: string): string => (s.length > width() ? `${s.slice(0, width() - 1)}…` : s)

  function clearLive(): void {
    if (drawn > 0) opts.out.write(`\x1b[${drawn}F\x1b[J`)
    drawn = 0
  }
  function drawLive(): void {
    if (!opts.live) return
    const lines = [...running].map(([id, r]) => {
      const secs = ((now() - r.started) / 1000).toFixed(1)
      return clip(`  ${paint.cyan('⠿')} ${id}  ${paint.dim(`${secs}s`)}${r.message ? `  ${r.message}` : ''}`)
    })
    if (lines.length > 0) opts.out.write(`${lines.join('\n')}\n`)
    drawn = lines.length
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

  function onEvent(e: ReporterEvent): void {
    const id = e.instance ?? '?'
    switch (e.type) {
      case 'plan': {
        const steps = Array.isArray(e.steps) ? (e.steps as PlanStep[]) : []
        const n = (a: string): number => steps.filter((s) => s.action === a).length
        emit(`plan: ${steps.length} instances: ${n('run')} to run, ${n('restore')} to restore, ${n('fresh')} fresh`)
        for (const s of steps.filter((x) => x.action === 'run')) {
          emit(paint.dim(`  run ${s.instance}: ${s.reasons.map(reasonText).join('; ') || 'selected'}`))
        }
        return
      }
      case 'start':
        running.set(id, { started: now(), message: '', lastPlain: now() })
        if (opts.live) {
          ensureTimer()
          redraw()
        } else emit(`start  ${id}`)
        return
      case 'progress': {
        const r = running.get(id)
        const message = oneLine(e.message ?? e.text ?? '')
        if (r === undefined) return
        r.message = message
        if (opts.live) redraw()
        else if (now() - r.lastPlain >= every) {
          r.lastPlain = now()
          emit(`       ${id}: ${message}`)
        }
        return
      }
      case 'log':
        emit(paint.dim(`  [${id}] ${oneLine(e.line ?? e.message ?? e.text ?? '')}`))
        return
      case 'done': {
        const r = running.get(id)
        running.delete(id)
        const action = typeof e.action === 'string' ? e.action : 'run'
        const ms = typeof e.durationMs === 'number' ? e.durationMs : r ? now() - r.started : undefined
        const took = ms === undefined ? '' : paint.dim(` (${fmtMs(ms)})`)
        const verb = action === 'restore' ? 'restored' : action === 'fresh' ? 'fresh' : 'done'
        emit(`${paint.green('✓')} ${verb.padEnd(8)} ${id}${took}`)
        return
      }
      case 'failed': {
        running.delete(id)
        const why = oneLine(e.message ?? (e.failure as { reason?: string } | undefined)?.reason ?? 'failed')
        emit(`${paint.red('✗')} failed   ${id}: ${why}`)
        return
      }
      case 'skipped': {
        running.delete(id)
        const why = oneLine(e.reason ?? e.message ?? '')
        emit(`${paint.yellow('-')} skipped  ${id}${why ? `: ${why}` : ''}`)
        return
      }
      case 'verify': {
        const same = e.identical ?? e.ok ?? e.same
        const detail = oneLine(e.message ?? '')
        if (same === true) emit(`${paint.green('=')} verified ${id}: identical`)
        else emit(`${paint.red('≠')} verify   ${id}: outputs differ${detail ? ` (${detail})` : ''}`)
        return
      }
      default:
        return
    }
  }

  return {
    onEvent,
    close(): void {
      if (timer !== undefined) clearInterval(timer)
      timer = undefined
      if (opts.live) clearLive()
      running.clear()
    },
  }
}

/** A plan reason in words, as `status` and the plan header print it. */
export function reasonText(r: RerunReason): string {
  return describeReason(r)
}

function oneLine(x: unknown): string {
  const s = typeof x === 'string' ? x : JSON.stringify(x) ?? ''
  return s.replace(/\s*\n\s*/g, ' ').trim()
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
