/**
 * Installs cusp's second-order gradient registrations (docs/architecture.md "Engine facts"): gradients for the
 * backward kernels tfjs leaves without one (Conv2DBackpropFilter, AvgPoolGrad, MaxPoolGrad), and
 * re-registrations, in terms of saved inputs, of the gradients tfjs writes in terms of saved outputs
 * (Tanh, Exp, Sigmoid, Softmax, Elu, Pow; tfjs issue #3252), and zero gradients for comparisons so
 * where-based gradients can be differentiated again. Registrations are by kernel name, so they
 * apply to every backend (cpu, wasm, tfjs-node). MaxPool's own gradient keeps the saved output: the
 * output enters only MaxPoolGrad's routing, whose derivative is zero (see max-pool-grad.ts).
 */
import * as tf from '@tensorflow/tfjs'
import { registerAvgPoolGradGrad } from './avg-pool-grad.ts'
import { registerComparisonGrads } from './comparisons.ts'
import { registerConv2DBackpropFilterGrad } from './conv2d-backprop-filter.ts'
import { registerEluGrad } from './elu.ts'
import { registerExpGrad } from './exp.ts'
import { registerMaxPoolGradGrad } from './max-pool-grad.ts'
import { registerPowGrad } from './pow.ts'
import { registerSigmoidGrad } from './sigmoid.ts'
import { registerSoftmaxGrad } from './softmax.ts'
import { registerTanhGrad } from './tanh.ts'

let installed = false
/** Marks the engine once they are registered: another instance of this module (a warm stage worker's next job) finds them. */
const MARK = Symbol.for('cusp.gradients-installed')

/** Registers all second-order gradients once per process (or worker); later calls do nothing. */
export function installGradients(): void {
  const engine = tf.engine() as unknown as Record<symbol, boolean | undefined>
  if (installed || engine[MARK] === true) return
  registerConv2DBackpropFilterGrad()
  registerAvgPoolGradGrad()
  registerMaxPoolGradGrad()
  registerTanhGrad()
  registerExpGrad()
  registerSigmoidGrad()
  registerSoftmaxGrad()
  registerEluGrad()
  registerPowGrad()
  registerComparisonGrads()
  installed = true
  engine[MARK] = true
}
