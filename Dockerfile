# syntax=docker/dockerfile:1
# cusp stage image: runs exactly ONE stage instance per container,
#   docker run IMAGE <instance-id> --store s3://bucket/prefix [--file pipeline.yaml] [--expect <fingerprint>]
# which reads the instance's inputs from the store, runs the stage, checks and publishes its
# outputs and run record back to the store, and exits non-zero on failure (cusp run-stage).
#
# Targets: `gpu` (the default, last stage) runs @tensorflow/tfjs-node-gpu; `cpu` runs
# @tensorflow/tfjs-node.   docker build -t cusp:gpu .      docker build --target cpu -t cusp:cpu .
# `webgpu` runs the science stages with `backend: webgpu` (Dawn, from the npm package `webgpu`,
# through Vulkan; any GPU vendor, no CUDA version lock):   docker build --target webgpu -t cusp:webgpu .
#
# Why the tfjs native packages are installed here and not in package.json: their install step
# downloads libtensorflow from storage.googleapis.com. As an optional dependency that download
# fails without access and npm drops the package (measured on a machine with only the npm
# registry: `npm ci` exit 0 in 1 min 29 s), but every other `npm ci` would then fetch
# libtensorflow, and this image would hold both tfjs-node and tfjs-node-gpu, while the
# scheduler's fingerprint (src/science/image-env.ts) predicts exactly one. The engine
# imports them when present (src/science/engine.ts, 'auto': tfjs-node-gpu, then tfjs-node,
# then wasm, then cpu).

ARG NODE_VERSION=20.19.5
ARG TFJS_NODE_VERSION=4.22.0
# tfjs-node-gpu 4.22 links libtensorflow 2.9.1, which is built against CUDA 11.2 and cuDNN 8.1:
# it needs a CUDA 11.x runtime (11.x minor-version compatibility; it will not load CUDA 12's
# libcudart.so.12) and cuDNN 8 (libcudnn.so.8). 11.8 is the last 11.x, with cuDNN 8 runtime
# images, and runs on any driver >= 520; the host driver comes in through the NVIDIA runtime.
ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04

# ---- build: dependencies from the lock file, the native engine, the CLI bundle ----------------
FROM node:${NODE_VERSION}-bookworm AS build-base
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` bundles the CLI, which needs the sources (copied below).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM build-base AS build-gpu
ARG TFJS_NODE_VERSION
RUN npm install --no-save --omit=dev --no-audit --no-fund "@tensorflow/tfjs-node-gpu@${TFJS_NODE_VERSION}"
COPY . .
RUN node scripts/cli-bundle.mjs

FROM build-base AS build-cpu
ARG TFJS_NODE_VERSION
RUN npm install --no-save --omit=dev --no-audit --no-fund "@tensorflow/tfjs-node@${TFJS_NODE_VERSION}"
COPY . .
RUN node scripts/cli-bundle.mjs

# ---- runtime: CPU --------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS cpu
ENV NODE_ENV=production CUSP_IMAGE_VARIANT=cpu
WORKDIR /app
RUN groupadd --system --gid 10001 cusp && useradd --system --uid 10001 --gid cusp --home-dir /app cusp
COPY --from=build-cpu --chown=root:root /app /app
# The local cache of the store (artifacts/) and work directories (.cusp/work) must be writable.
RUN mkdir -p /app/artifacts /app/.cusp/work && chown -R cusp:cusp /app/artifacts /app/.cusp
USER cusp
ENTRYPOINT ["node", "/app/scripts/pipeline.mjs", "run-stage"]
CMD ["--help"]

# ---- runtime: WebGPU (Dawn through Vulkan) -------------------------------------------------------
# The Vulkan loader (libvulkan1) is in the image; the GPU's Vulkan driver (ICD) comes from the host:
# the NVIDIA container runtime mounts it only when the driver capabilities include `graphics`.
# Check the adapter:  docker run --rm --gpus all --entrypoint node cusp:webgpu /app/scripts/webgpu-adapter.mjs
FROM build-base AS build-webgpu
COPY . .
RUN node scripts/cli-bundle.mjs

FROM node:${NODE_VERSION}-bookworm-slim AS webgpu
ENV NODE_ENV=production CUSP_IMAGE_VARIANT=webgpu \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,graphics,utility
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvulkan1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN groupadd --system --gid 10001 cusp && useradd --system --uid 10001 --gid cusp --home-dir /app cusp
COPY --from=build-webgpu --chown=root:root /app /app
RUN mkdir -p /app/artifacts /app/.cusp/work && chown -R cusp:cusp /app/artifacts /app/.cusp
USER cusp
ENTRYPOINT ["node", "/app/scripts/pipeline.mjs", "run-stage"]
CMD ["--help"]

# ---- runtime: GPU (default) ---------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS gpu
ENV NODE_ENV=production CUSP_IMAGE_VARIANT=gpu
# Only the node binary is needed from the Node image (official builds need glibc >= 2.28; 22.04 has 2.35).
COPY --from=build-base /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
RUN groupadd --system --gid 10001 cusp && useradd --system --uid 10001 --gid cusp --home-dir /app cusp
COPY --from=build-gpu --chown=root:root /app /app
RUN mkdir -p /app/artifacts /app/.cusp/work && chown -R cusp:cusp /app/artifacts /app/.cusp
USER cusp
ENTRYPOINT ["node", "/app/scripts/pipeline.mjs", "run-stage"]
CMD ["--help"]
