// Opens a page in headless Chromium (Debian `chromium`) over the DevTools protocol and reports what a
// reader would see: console errors and uncaught exceptions, each figure image's decoded size, and
// optionally a full-page PNG screenshot. No browser download: the system binary and the `ws` package.
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import WebSocket from 'ws'

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'

export interface PageReport {
  errors: string[]
  figures: { id: string; complete: boolean; width: number; height: number; shownWidth: number }[]
  screenshot?: Buffer
  /** The value of `opts.evaluate` (awaited, returned by value), when given. */
  evaluated?: unknown
}

/** GET without keep-alive (a pooled socket would hold the process open after the browser is gone). */
function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => void (body += d.toString()))
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Loads `htmlPath` (a file) and inspects it; throws when Chromium does not come up within `timeoutMs`. */
export async function inspectInChromium(
  htmlPath: string,
  opts: { screenshot?: boolean; timeoutMs?: number; evaluate?: string } = {},
): Promise<PageReport> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000)
  const profile = await mkdtemp(join(tmpdir(), 'cusp-chromium-'))
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
    `--user-data-dir=${profile}`,
    '--remote-debugging-port=0',
    '--window-size=1280,900',
    'about:blank',
  ]
  const child = spawn(CHROMIUM, flags, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)))
  try {
    let port: number | undefined
    while (port === undefined) {
      if (Date.now() > deadline) throw new Error(`chromium did not open its DevTools port: ${stderr}`)
      if (child.exitCode !== null) throw new Error(`chromium exited with ${child.exitCode}: ${stderr}`)
      const text = await readFile(join(profile, 'DevToolsActivePort'), 'utf8').catch(() => '')
      const p = Number(text.split('\n')[0])
      if (p > 0) port = p
      else await sleep(100)
    }
    const targets = JSON.parse(await httpGet(`http://127.0.0.1:${port}/json/list`)) as { type: string; webSocketDebuggerUrl: string }[]
    const page = targets.find((x) => x.type === 'page')
    if (page === undefined) throw new Error('chromium has no page target')
    const ws = new WebSocket(page.webSocketDebuggerUrl)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    const errors: string[] = []
    const pending = new Map<number, (v: Record<string, unknown>) => void>()
    let loaded: () => void = () => undefined
    const load = new Promise<void>((r) => (loaded = r))
    ws.on('message', (data: WebSocket.RawData) => {
      const m = JSON.parse(data.toString()) as {
        id?: number
        method?: string
        params?: Record<string, unknown>
        result?: Record<string, unknown>
        error?: unknown
      }
      if (m.id !== undefined) return pending.get(m.id)?.(m.error !== undefined ? { error: m.error } : (m.result ?? {}))
      const p = m.params ?? {}
      if (m.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert'))
        errors.push(`console.${String(p.type)}: ${JSON.stringify(p.args)}`)
      if (m.method === 'Runtime.exceptionThrown') errors.push(`exception: ${JSON.stringify(p.exceptionDetails)}`)
      if (m.method === 'Log.entryAdded') {
        const e = p.entry as { level?: string; text?: string; url?: string }
        if (e.level === 'error') errors.push(`log: ${e.text ?? ''} ${e.url ?? ''}`)
      }
      if (m.method === 'Page.loadEventFired') loaded()
    })
    let next = 0
    const send = (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> => {
      const id = ++next
      ws.send(JSON.stringify({ id, method, params }))
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`DevTools ${method} timed out`)), Math.max(1000, deadline - Date.now()))
        pending.set(id, (v) => {
          clearTimeout(timer)
          resolve(v)
        })
      })
    }
    await send('Runtime.enable')
    await send('Log.enable')
    await send('Page.enable')
    await send('Page.navigate', { url: pathToFileURL(htmlPath).href })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      load,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error('the page did not finish loading')), Math.max(0, deadline - Date.now()))),
      ),
    ])
    clearTimeout(timer)
    // Data-URI images decode asynchronously, later than 'load' on a busy machine: wait for each
    // to decode (or fail to: a broken image must still be reported as not rendered).
    await send('Runtime.evaluate', {
      expression: 'Promise.all([...document.images].map((i) => i.decode().catch(() => undefined))).then(() => true)',
      awaitPromise: true,
      returnByValue: true,
    })
    await sleep(300) // late console messages
    const expr = `JSON.stringify([...document.querySelectorAll('figure')].map((f) => { const i = f.querySelector('img'); return { id: f.id, complete: !!i && i.complete, width: i ? i.naturalWidth : 0, height: i ? i.naturalHeight : 0, shownWidth: i ? i.getBoundingClientRect().width : 0 } }))`
    const ev = (await send('Runtime.evaluate', { expression: expr, returnByValue: true })) as { result?: { value?: string } }
    const figures = JSON.parse(ev.result?.value ?? '[]') as PageReport['figures']
    const out: PageReport = { errors, figures }
    if (opts.evaluate !== undefined) {
      const r = (await send('Runtime.evaluate', { expression: opts.evaluate, awaitPromise: true, returnByValue: true })) as {
        result?: { value?: unknown }
        exceptionDetails?: unknown
      }
      out.evaluated = r.exceptionDetails !== undefined ? { exception: r.exceptionDetails } : r.result?.value
    }
    if (opts.screenshot === true) {
      const metrics = (await send('Page.getLayoutMetrics')) as { cssContentSize?: { width: number; height: number } }
      const size = metrics.cssContentSize ?? { width: 1280, height: 900 }
      const shot = (await send('Page.captureScreenshot', {
        format: 'png',
        captureBeyondViewport: true,
        clip: { x: 0, y: 0, width: Math.ceil(size.width), height: Math.ceil(size.height), scale: 1 },
      })) as { data?: string }
      if (shot.data !== undefined) out.screenshot = Buffer.from(shot.data, 'base64')
    }
    await send('Browser.close').catch(() => undefined)
    ws.terminate()
    return out
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    // Chromium's helper processes inherit stderr; stop reading it so they cannot keep this process alive.
    child.stderr.destroy()
    child.unref()
    // Helper processes may still be writing into the profile for a moment after the kill.
    await rm(profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 }).catch(() => undefined)
  }
}
