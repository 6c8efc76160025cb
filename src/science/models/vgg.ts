/**
 * VGG-16 without normalisation (paper §4: "non-normalized VGG-16s [21]"), configuration D of Simonyan
 * & Zisserman: 3x3 'same' convs 64,64,M,128,128,M,256,256,256,M,512,512,512,M,512,512,512,M (each conv
 * followed by the activation, M = maxpool 2), flatten, then the CIFAR head linear 512 -> 512, act,
 * 512 -> 512, act, 512 -> classes (no dropout: training is full-batch GD). At 32x32x3 with 10 classes:
 * 14,714,688 conv parameters + 530,442 head parameters = 15,245,130 (asserted in the tests). Inputs
 * must be at least 32x32 for the five pools.
 */
import { scaled } from './cnn.ts'
import { featureShape } from './layer-shape.ts'
import type { Layer } from './layers.ts'

const CONFIG_D: (number | 'M')[] = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']

/** Layers of VGG-16 (D); `width` scales every conv channel count and the head's hidden width (512). */
export function vggLayers(inputShape: [number, number, number], classes: number, width: number): Layer[] {
  const body: Layer[] = []
  let cin = inputShape[2]
  let i = 0
  for (const v of CONFIG_D) {
    if (v === 'M') {
      body.push({ kind: 'pool', op: 'max', size: 2 })
      continue
    }
    const cout = scaled(v, width)
    body.push({ kind: 'conv', name: `conv${++i}`, kernel: 3, stride: 1, pad: 1, cin, cout }, { kind: 'act' })
    cin = cout
  }
  const [h, w, c] = featureShape(body, inputShape)
  const hidden = scaled(512, width)
  return [
    ...body,
    { kind: 'flatten', order: 'chw' },
    { kind: 'dense', name: 'fc1', in: h * w * c, out: hidden },
    { kind: 'act' },
    { kind: 'dense', name: 'fc2', in: hidden, out: hidden },
    { kind: 'act' },
    { kind: 'dense', name: 'fc3', in: hidden, out: classes },
  ]
}
