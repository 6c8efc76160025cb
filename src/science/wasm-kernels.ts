/**
 * cusp's kernel replacements for the tfjs wasm backend (docs/architecture.md "Engine facts"): the missing
 * Conv2DBackpropFilter, correct MaxPoolGrad and BatchMatMul (the shipped ones are silently wrong
 * for non-positive window maxima and for reshaped right operands), fast transposed BatchMatMul and
 * stride-1 Conv2DBackpropInput (composed from XNNPACK's Conv2D and matmul), a faster AvgPoolGrad
 * that refuses padded windows, copy-free Identity / same-dtype Cast (the tape's clones of saved
 * tensors), and bias-gradient sums through average pooling (faster and more accurate); and three
 * of cusp's own, a fused conv + bias + relu layer for first-order passes, its mask, and that mask
 * fused with an average pool's gradient (the hand-written conv passes, conv-hvp.ts). Each is
 * registered under its tfjs kernel name for backend 'wasm', so model code (tf.conv2d, tf.matMul,
 * tf.grad) is unchanged and other backends (cpu, tfjs-node) are untouched.
 * The parts live in ./wasm/. (A JS leading-axes Sum and an axis-merging Transpose were tried and
 * dropped: no faster than the shipped kernels once measured in CPU time with fresh inputs.)
 */
import { getKernel, registerKernel, unregisterKernel } from '@tensorflow/tfjs'
import type { KernelConfig } from '@tensorflow/tfjs'
import { batchMatMulConfig } from './wasm/batch-mat-mul.ts'
import { conv2DBackpropFilterConfig, conv2DBackpropInputConfig, conv2DConfig } from './wasm/conv-backprop.ts'
import {
  avgPoolReluMaskConfig,
  convBiasActConfig,
  convBiasActPoolConfig,
  registerConvBiasActGrad,
  reluMaskConfig,
} from './wasm/conv-relu.ts'
import { cuspColSumConfig, cuspDenseConfig } from './wasm/dense-fused.ts'
import { originals, WASM } from './wasm/kernel-calls.ts'
import { avgPoolGradConfig, maxPoolGradConfig } from './wasm/pool-grads.ts'
import { castConfig, identityConfig } from './wasm/shared-data.ts'
import { sumConfig } from './wasm/sum.ts'

/** The kernels cusp registers on wasm (names as in tfjs-core). */
export const replacedWasmKernels: readonly string[] = [
  'BatchMatMul',
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'Conv2D',
  'MaxPoolGrad',
  'AvgPoolGrad',
  'Identity',
  'Cast',
  'Sum',
]

const replacements: KernelConfig[] = [
  batchMatMulConfig,
  conv2DBackpropFilterConfig,
  conv2DBackpropInputConfig,
  conv2DConfig,
  maxPoolGradConfig,
  avgPoolGradConfig,
  identityConfig,
  castConfig,
  sumConfig,
  // cusp's own kernels (no shipped kernel of these names): the fused conv layer of the loss and
  // gradient paths (wasm/conv-relu.ts).
  convBiasActConfig,
  reluMaskConfig,
  avgPoolReluMaskConfig,
  convBiasActPoolConfig,
  // the fused dense layer and column sums of the MLP's hand-written passes (wasm/dense-fused.ts).
  cuspDenseConfig,
  cuspColSumConfig,
]

let installed = false
/** On each registered replacement: another instance of this module (a warm stage worker's next job) finds them installed. */
const MARK = Symbol.for('cusp.wasm-kernel')

/**
 * Register cusp's wasm kernel replacements. Safe to call more than once, before or after the wasm
 * backend is initialised (a replaced kernel's setup, e.g. its cwrap, is carried over so a
 * later backend initialisation still prepares the shipped kernel it delegates to).
 */
export function installWasmKernels(): void {
  if (installed) return
  const first = getKernel(replacements[0]!.kernelName, WASM) as (KernelConfig & { [MARK]?: true }) | undefined
  if (first?.[MARK] === true) return // registered by an earlier job's instance of this module, which they use
  for (const config of replacements) {
    const shipped = getKernel(config.kernelName, WASM)
    if (shipped !== undefined) {
      originals.set(config.kernelName, shipped)
      unregisterKernel(config.kernelName, WASM)
    }
    const setupFunc = shipped?.setupFunc
    const disposeFunc = shipped?.disposeFunc
    const marked: KernelConfig & { [MARK]: true } = {
      ...config,
      ...(setupFunc !== undefined ? { setupFunc } : {}),
      ...(disposeFunc !== undefined ? { disposeFunc } : {}),
      [MARK]: true,
    }
    registerKernel(marked)
  }
  registerConvBiasActGrad()
  installed = true
}

/** Put the shipped wasm kernels back (for before/after benchmarks and tests). */
export function uninstallWasmKernels(): void {
  if (!installed) return
  for (const config of replacements) {
    unregisterKernel(config.kernelName, WASM)
    const shipped = originals.get(config.kernelName)
    if (shipped !== undefined) registerKernel(shipped)
  }
  installed = false
}
