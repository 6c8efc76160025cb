/**
 * The adapter Dawn would give this machine, found synchronously for the fingerprint's numeric
 * environment (env-record.ts must answer without awaiting or initialising tfjs): one short child
 * Node process asks `requestAdapter()` and prints the adapter's identity. Memoised per process.
 * Kernels differ by GPU vendor and architecture, so those two enter the record; the driver's
 * description (versions, paths) does not, so a driver update alone does not rerun anything.
 */
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

/** `vendor/architecture` of the adapter, or 'none' when Dawn finds none (the run then refuses). */
let cached: string | undefined

/** The script the child runs: prints `{"vendor":...,"architecture":...}` or `null`. */
function probeScript(webgpuUrl: string): string {
  return `const { create, globals } = await import(${JSON.stringify(webgpuUrl)});
Object.assign(globalThis, globals);
const a = await create([]).requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
process.stdout.write(JSON.stringify(a ? { vendor: a.info.vendor, architecture: a.info.architecture, device: a.info.device, description: a.info.description } : null) + '\\n');
process.exit(0);`
}

/** The adapter's full identity as the child saw it, or undefined (none, or webgpu not installed). */
export function probeAdapter(): { vendor: string; architecture: string; device: string; description: string } | undefined {
  let url: string
  try {
    url = pathToFileURL(createRequire(import.meta.url).resolve('webgpu')).href
  } catch {
    return undefined
  }
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probeScript(url)], { encoding: 'utf8', timeout: 60_000 })
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? ''
  try {
    const info = JSON.parse(line) as { vendor?: string; architecture?: string; device?: string; description?: string } | null
    if (info === null) return undefined
    return {
      vendor: info.vendor || 'unknown',
      architecture: info.architecture || 'unknown',
      device: info.device || 'unknown',
      description: info.description || 'unknown',
    }
  } catch {
    return undefined
  }
}

/** `vendor/architecture` for the env record (memoised), 'none' when there is no adapter. */
export function adapterKey(): string {
  if (cached !== undefined) return cached
  const a = probeAdapter()
  cached = a === undefined ? 'none' : `${a.vendor}/${a.architecture}`
  return cached
}
