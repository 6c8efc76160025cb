/**
 * `npm run pipeline -- open`: open the published report (the first published .html target,
 * published.ts `openTarget`) in a browser. The opener: `$BROWSER` when set, else `open` on macOS,
 * `start` on Windows, `xdg-open` on Linux and the BSDs when a display is there (DISPLAY or
 * WAYLAND_DISPLAY) and xdg-open is on PATH. Where none exists (a server, a container, CI) it says so
 * in one line and prints the path, exit 0: the result is there, only the browser is not. Exit 2
 * when nothing is declared or published yet (run the pipeline first), 1 when the opener failed.
 */
import { spawn as nodeSpawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import type { OutputSink } from './reporter.ts'
import { openTarget, readManifest } from './published.ts'
import type { PublishEntry } from './types.ts'

/** Starts the opener detached; resolves to an error message, or undefined once it has started. */
export type Launch = (command: string, args: string[]) => Promise<string | undefined>

export interface OpenOptions {
  root: string
  entries: readonly PublishEntry[]
  env: Record<string, string | undefined>
  stdout: OutputSink
  stderr: OutputSink
  platform?: NodeJS.Platform
  launch?: Launch
}

/** The command that opens `file` here, or undefined when this machine has no browser to open it in. */
export function opener(file: string, platform: NodeJS.Platform, env: Record<string, string | undefined>): [string, string[]] | undefined {
  const browser = env.BROWSER?.trim()
  if (browser) return [browser, [file]]
  if (platform === 'darwin') return ['open', [file]]
  if (platform === 'win32') return ['cmd', ['/c', 'start', '""', file]]
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined
  const onPath = (env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, 'xdg-open')))
  return onPath ? ['xdg-open', [file]] : undefined
}

const launchDetached: Launch = (command, args) =>
  new Promise((resolve) => {
    const child = nodeSpawn(command, args, { detached: true, stdio: 'ignore' })
    child.once('error', (e) => resolve(e.message))
    child.once('spawn', () => {
      child.unref()
      resolve(undefined)
    })
  })

/** Runs `open`; returns the exit code. */
export async function openCommand(o: OpenOptions): Promise<number> {
  const target = openTarget(o.entries)
  if (target === undefined) {
    o.stderr.write(
      'open: pipeline.yaml publishes no file (add a publish: block, e.g. results/report.html: { stage: figures, output: report.html })\n',
    )
    return 2
  }
  const manifest = await readManifest(o.root)
  const file = join(o.root, ...target.target.split('/'))
  if (manifest.files[target.target] === undefined || !existsSync(file)) {
    o.stderr.write(`open: ${target.target} is not published yet: run \`npm run pipeline\` (or \`pull\`) first\n`)
    return 2
  }
  const how = opener(file, o.platform ?? process.platform, o.env)
  if (how === undefined) {
    o.stdout.write(`no browser here (no $BROWSER, no display); open it yourself: ${file}\n`)
    return 0
  }
  const failed = await (o.launch ?? launchDetached)(how[0], how[1])
  if (failed !== undefined) {
    o.stderr.write(`open: ${how[0]} failed (${failed}); the file is ${file}\n`)
    return 1
  }
  o.stdout.write(`opened ${target.target}\n`)
  return 0
}
