#!/usr/bin/env bash
# Packs the GPU check for a machine that has a GPU but no network, no Node and no npm packages:
#   scripts/gpu-pack.sh [OUT]        (default OUT: dist/gpu-check; needs `npm ci` done here)
# OUT then holds, well under 64 MiB:
#   gpu-check.sh              the same one command (it sees it is packed and uses what is here)
#   node.xz                   this machine's node binary, xz-compressed (unpacked on first run)
#   gpu-oracles.mjs, bench-webgpu.mjs   the engine + oracle subset and the webgpu bench, bundled by esbuild
#   webgpu-adapter.mjs        prints the adapter
#   node_modules/webgpu/      Dawn's loader and the linux-x64 dawn.node only (native: not bundled;
#                             xz-compressed as dawn.node.xz, unpacked on first run)
#   node_modules/@tensorflow/tfjs-backend-wasm/   package.json, its entry and .wasm files (the wasm
#                             baseline resolves them by package name; the code itself is bundled)
#   lib/libvulkan.so.1        the Vulkan loader, for a host that has NVIDIA's driver but not the loader
#   bench/peers/torch_hessian.py        the PyTorch peer
# Copy OUT to the GPU machine and run `bash OUT/gpu-check.sh` there.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist/gpu-check}"
# Compressing node takes minutes: keep a node.xz made from the same node binary by an earlier pack.
stamp="$(node --version) $(stat -c '%s %Y' "$(command -v node)")"
saved=""
if [ -f "$out/node.xz" ] && [ "$(cat "$out/node.stamp" 2>/dev/null)" = "$stamp" ]; then
  saved="$(mktemp -t cusp-node.XXXXXX)"
  mv "$out/node.xz" "$saved"
fi
rm -rf "$out"
mkdir -p "$out/lib" "$out/bench/peers" "$out/node_modules/webgpu/dist/linux-x64" "$out/node_modules/@tensorflow/tfjs-backend-wasm/dist" "$out/node_modules/@tensorflow/tfjs-backend-webgpu"

node --input-type=module - "$out" <<'JS'
import * as esbuild from 'esbuild'
const out = process.argv[2]
const common = {
  bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning', legalComments: 'none',
  // native or absent packages load at run time from OUT/node_modules (or not at all)
  external: ['webgpu', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
  // bundled CommonJS (tfjs) may call require(): give the ESM bundle one
  // and the __dirname / __filename that emscripten's wasm loader reads
  banner: {
    js: [
      "import { createRequire as __cuspRequire } from 'node:module'; const require = __cuspRequire(import.meta.url);",
      "import { fileURLToPath as __cuspPath } from 'node:url'; import { dirname as __cuspDir } from 'node:path';",
      'const __filename = __cuspPath(import.meta.url); const __dirname = __cuspDir(__filename);',
    ].join(' '),
  },
}
await esbuild.build({ ...common, entryPoints: ['scripts/gpu-oracles.ts'], outfile: `${out}/gpu-oracles.mjs` })
await esbuild.build({
  ...common,
  stdin: { contents: "import { benchWebgpu } from './bench/support/hvp-webgpu.ts'; await benchWebgpu(process.argv.slice(2))", resolveDir: process.cwd(), loader: 'ts', sourcefile: 'bench-webgpu.ts' },
  outfile: `${out}/bench-webgpu.mjs`,
})
JS

cp scripts/gpu-check.sh scripts/webgpu-adapter.mjs "$out/"
cp bench/peers/torch_hessian.py "$out/bench/peers/"
cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$out/node_modules/webgpu/"
xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node >"$out/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
cp node_modules/@tensorflow/tfjs-backend-webgpu/package.json "$out/node_modules/@tensorflow/tfjs-backend-webgpu/"
cp node_modules/@tensorflow/tfjs-backend-wasm/package.json "$out/node_modules/@tensorflow/tfjs-backend-wasm/"
cp node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.node.js node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$out/node_modules/@tensorflow/tfjs-backend-wasm/dist/"
loader=$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1 .*x86-64/ {print $NF; exit}')
if [ -n "$loader" ]; then cp -L "$loader" "$out/lib/libvulkan.so.1"; else echo "gpu-pack: no libvulkan.so.1 here (apt-get install libvulkan1); the GPU host must have its own" >&2; fi
if [ -n "$saved" ]; then mv "$saved" "$out/node.xz"; else xz -T2 -6 -c "$(command -v node)" >"$out/node.xz"; fi
echo "$stamp" >"$out/node.stamp"
size=$(du -sb "$out" | cut -f1)
echo "gpu-pack: $out, $((size / 1048576)) MiB ($(node --version) for $(uname -m))"
[ "$size" -lt $((64 * 1048576)) ] || { echo "gpu-pack: $out is over 64 MiB" >&2; exit 1; }
