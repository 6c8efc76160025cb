#!/usr/bin/env bash
# The GPU check, one command:   scripts/gpu-check.sh [bench flags...]
# 1. prints the WebGPU adapter Dawn finds (Vulkan: the GPU's driver; refuses to go on without one),
# 2. runs the webgpu oracle subset (scripts/gpu-oracles.ts: agreement with cpu, a quadratic, finite
#    differences, eigenvalues, determinism, flat memory),
# 3. runs `npm run bench -- hvp --backend webgpu` on the reference CNN (1,000 images) and AlexNet-CIFAR
#    (5,000 images) against PyTorch on CUDA when PyTorch sees a GPU (CUSP_PYTHON picks the python),
# and ends with the bench's JSON line. Extra flags go to the bench (e.g. --rounds 5 --chunk 1000).
# Works in a checkout (after `npm ci`) and in the folder scripts/gpu-pack.sh makes for a machine with
# no Node and no network (then the bundled engine, node.xz and lib/libvulkan.so.1 from that folder are used).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
log="$(mktemp -t cusp-gpu-check.XXXXXX)"
trap 'rm -f "$log"' EXIT

if [ -f "$here/gpu-oracles.mjs" ]; then # packed
  cd "$here"
  node=node
  if ! command -v node >/dev/null 2>&1 || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
    [ -x "$here/node" ] || { xz -dc "$here/node.xz" >"$here/node.tmp" && chmod +x "$here/node.tmp" && mv "$here/node.tmp" "$here/node"; }
    node="$here/node"
  fi
  dawn="$here/node_modules/webgpu/dist/linux-x64/dawn.node"
  [ -f "$dawn" ] || { xz -dc "$dawn.xz" >"$dawn.tmp" && mv "$dawn.tmp" "$dawn"; }
  oracles=("$node" gpu-oracles.mjs)
  bench=("$node" bench-webgpu.mjs)
  adapter=("$node" webgpu-adapter.mjs)
  # The Vulkan loader: the host's when it has one, else the one packed here.
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; fi
else # a checkout
  cd "$here/.."
  oracles=(node --import tsx scripts/gpu-oracles.ts)
  bench=(npm run -s bench -- hvp --backend webgpu)
  adapter=(node scripts/webgpu-adapter.mjs)
fi

# NVIDIA's Vulkan driver without its ICD manifest (a driver installed for compute only): point the
# loader at libGLX_nvidia.so.0, which carries the Vulkan driver, when nothing else is registered.
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ] && ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
  glx=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0 / {print $NF; exit}')
  if [ -n "$glx" ]; then
    icd="$(mktemp -t nvidia_icd.XXXXXX.json)"
    printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3"}}\n' "$glx" >"$icd"
    export VK_ICD_FILENAMES="$icd" VK_DRIVER_FILES="$icd"
    echo "gpu-check: no Vulkan ICD manifest registered; using $glx"
  fi
fi

echo "== adapter"
if ! "${adapter[@]}" 2>/dev/null; then
  echo "gpu-check: Dawn found no WebGPU adapter: install the Vulkan loader (libvulkan1) and the GPU's Vulkan driver (NVIDIA: the driver's Vulkan ICD; in a container NVIDIA_DRIVER_CAPABILITIES must include graphics)" >&2
  exit 1
fi
echo "== oracles (webgpu vs cpu and exact references)"
oracle_status=0
"${oracles[@]}" 2> >(grep -v 'artificially reduced' >&2) || oracle_status=$?
echo "== bench: hvp --backend webgpu"
"${bench[@]}" --n-cnn 1000 --n-alexnet 5000 "$@" 2> >(grep -v 'artificially reduced' >&2) | tee "$log"
[ "$oracle_status" -eq 0 ] || echo "gpu-check: the oracle subset FAILED (see above)" >&2
tail -n 1 "$log"
exit "$oracle_status"
