/**
 * The WebGPU backend in Node: Dawn's Node bindings (the npm package `webgpu`, a prebuilt dawn.node)
 * give tfjs a `navigator.gpu`, then @tensorflow/tfjs-backend-webgpu registers its 'webgpu' backend on
 * import (it registers only when navigator.gpu exists at that moment, so the order matters). Dawn
 * drives the GPU through Vulkan: a real GPU's driver, or Mesa's software rasteriser lavapipe
 * ('llvmpipe', Mesa >= 25 from Debian bookworm-backports; Debian 12's own 22.3 is refused by Dawn).
 * When no adapter comes back, `loadWebgpu` says in one line what is missing instead of throwing.
 */
import { existsSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { installWebgpuKernels } from './kernels.ts'

/** What identifies the arithmetic of an adapter: its vendor and architecture as Dawn reports them. */
export interface AdapterSummary {
  vendor: string
  architecture: string
  device: string
  description: string
}

/** The webgpu backend's own versions and adapter, once loaded. */
export interface WebgpuInfo {
  adapter: AdapterSummary
  versions: Record<string, string>
}

interface GpuLike {
  requestAdapter(opts?: unknown): Promise<{ info?: Partial<AdapterSummary> } | null>
}

let loading: Promise<WebgpuInfo | string> | undefined

/** Where Vulkan ICD manifests live (the loader's default search path) and a GPU-less hint. */
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']
const LAVAPIPE_HINT = 'apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1 (software Vulkan, Mesa >= 25)'

/** Version of an installed package (its package.json), or 'unknown'. */
function pkgVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url)
    return (require(`${name}/package.json`) as { version?: string }).version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/** True when a Vulkan loader library is present (libvulkan.so.1 in the usual places). */
function vulkanLoaderPresent(): boolean {
  const dirs = [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/usr/lib',
    '/usr/local/lib',
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
  ]
  return dirs.some((d) => existsSync(`${d}/libvulkan.so.1`))
}

/** Vulkan ICD manifests found (driver JSON files), including VK_ICD_FILENAMES / VK_DRIVER_FILES. */
function vulkanDrivers(): string[] {
  const explicit = (process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES ?? '').split(':').filter(Boolean)
  if (explicit.length > 0) return explicit.filter((f) => existsSync(f))
  return ICD_DIRS.flatMap((d) => {
    try {
      return readdirSync(d).filter((f) => f.endsWith('.json'))
    } catch {
      return []
    }
  })
}

/** The one-line reason no adapter came back, naming what is missing. */
export function missingAdapterReason(): string {
  if (!vulkanLoaderPresent())
    return `backend 'webgpu': no Vulkan loader (libvulkan.so.1) on this machine; install libvulkan1 and a Vulkan driver: ${LAVAPIPE_HINT}, or a GPU's driver`
  const drivers = vulkanDrivers()
  const where =
    (process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES) !== undefined
      ? 'VK_DRIVER_FILES / VK_ICD_FILENAMES name no existing manifest'
      : `no ICD manifest in ${ICD_DIRS.join(', ')}`
  if (drivers.length === 0)
    return `backend 'webgpu': no Vulkan driver (${where}); install one: ${LAVAPIPE_HINT}, or a GPU's driver (in a container: NVIDIA_DRIVER_CAPABILITIES must include graphics)`
  return `backend 'webgpu': Dawn found no usable adapter among the Vulkan drivers [${drivers.join(', ')}] (Mesa older than 25 is refused; ${LAVAPIPE_HINT})`
}

/**
 * Installs Dawn's WebGPU globals and the tfjs webgpu backend, once per thread. Resolves with the
 * adapter and versions, or with a one-line string saying why webgpu cannot run here.
 */
export function loadWebgpu(): Promise<WebgpuInfo | string> {
  loading ??= (async (): Promise<WebgpuInfo | string> => {
    let gpu: GpuLike
    try {
      const dawn = (await import('webgpu')) as unknown as { create(flags: string[]): GpuLike; globals: Record<string, unknown> }
      Object.assign(globalThis, dawn.globals)
      gpu = dawn.create([])
    } catch (e: unknown) {
      return `backend 'webgpu': Dawn's Node bindings (npm package webgpu) failed to load: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`
    }
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null)
    if (adapter === null) return missingAdapterReason()
    const info = adapter.info ?? {}
    const summary: AdapterSummary = {
      vendor: info.vendor || 'unknown',
      architecture: info.architecture || 'unknown',
      device: info.device || 'unknown',
      description: info.description || 'unknown',
    }
    const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator
    if (nav === undefined) Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true })
    else Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true })
    await import('@tensorflow/tfjs-backend-webgpu') // registers 'webgpu' now that navigator.gpu exists
    installWebgpuKernels()
    return {
      adapter: summary,
      versions: { webgpu: pkgVersion('webgpu'), 'tfjs-backend-webgpu': pkgVersion('@tensorflow/tfjs-backend-webgpu') },
    }
  })()
  return loading
}
