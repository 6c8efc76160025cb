#!/usr/bin/env node
// Prints the WebGPU adapter Dawn (the npm package `webgpu`) finds on this machine, as one JSON line:
// {"adapter":{"vendor","architecture","device","description"},"webgpu":version} or, with none,
// {"adapter":null,...} and exit 1. Used by scripts/gpu-check.sh and inside the `webgpu` image:
//   docker run --rm --gpus all --entrypoint node cusp:webgpu /app/scripts/webgpu-adapter.mjs
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
let dawn
try {
  dawn = await import('webgpu')
} catch (e) {
  console.log(
    JSON.stringify({
      adapter: null,
      error: `Dawn's Node bindings (npm package webgpu) failed to load: ${String(e?.message ?? e).split('\n')[0]}`,
    }),
  )
  process.exit(1)
}
Object.assign(globalThis, dawn.globals)
const adapter = await dawn
  .create([])
  .requestAdapter({ powerPreference: 'high-performance' })
  .catch(() => null)
let version = 'unknown'
try {
  version = require('webgpu/package.json').version
} catch {
  // bundled without its package.json
}
const info = adapter?.info
console.log(
  JSON.stringify({
    adapter: info ? { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description } : null,
    webgpu: version,
  }),
)
process.exit(adapter ? 0 : 1)
