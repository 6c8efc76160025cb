/**
 * The CLI behind `npm run pipeline -- ...` (scripts/pipeline.cjs, which tries the no-op replay first, then loads this): the CLI (src/main.ts, the composition root over src/harness/cli.ts) from its esbuild bundle, run by plain
 * node, rebuilt first when any file in it changed (scripts/cli-bundle.mjs; the check is one
 * stat per input), and loaded with V8's code cache (`loadBundle`). Without tsx's per-module
 * loader hooks a no-op rerun starts in about a third of the CPU time. Should the bundle not build (esbuild missing, read-only checkout), it says so
 * once on stderr and runs the sources through tsx instead, which is slower but the same CLI.
 * `CUSP_DEBUG=1` also maps stack traces back to the sources (and loads the bundle without the code cache).
 */
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

// A no-op rerun whose every input is as it was replays its recorded output (scripts/noop-replay.cjs);
// under scripts/pipeline.cjs it has already tried, and this returns false at once.
if (!createRequire(import.meta.url)('./noop-replay.cjs').tryReplay()) await runCli()

async function runCli() {
  const { bundlePaths, ensureBundle, loadBundle } = await import('./cli-bundle.mjs')
  const { startRecording } = await import('./noop-record.mjs')
  const { bundle, manifest } = bundlePaths()
  const scripts = ['pipeline.cjs', 'pipeline.mjs', 'cli-bundle.mjs', 'noop-replay.cjs', 'noop-record.mjs'].map((f) =>
    fileURLToPath(new URL(f, import.meta.url)),
  )
  const recording = startRecording({ bundle, manifest, scripts })
  const debug = process.env.CUSP_DEBUG === '1'
  if (debug) process.setSourceMapsEnabled(true)
  let cli
  try {
    cli = loadBundle(await ensureBundle(), { codeCache: !debug })
  } catch (e) {
    recording.disqualify('no CLI bundle')
    process.stderr.write(
      `cusp: cannot build the CLI bundle (${e instanceof Error ? e.message : String(e)}); running the sources through tsx\n`,
    )
    const { register } = await import('tsx/esm/api')
    register()
    cli = await import('../src/main.ts')
  }
  await cli.runAsProcess()
}
