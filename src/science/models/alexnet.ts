/**
 * AlexNet for CIFAR-10 (paper §4: "We train AlexNets [10]"), in the common CIFAR adaptation:
 * conv11x11/4 pad 5 ->64, act, maxpool 2, conv5x5 pad 2 ->192, act, maxpool 2, conv3x3 pad 1 ->384,
 * act, conv3x3 ->256, act, conv3x3 ->256, act, maxpool 2, flatten, linear -> classes. At 32x32x3 the
 * feature map is 1x1x256 and the network has 2,472,266 parameters with 10 classes (asserted in the
 * tests). Inputs must be at least 32x32 for the strides and three pools to leave a pixel.
 */
import { scaled } from './cnn.ts'
import { featureShape } from './layer-shape.ts'
import type { Layer } from './layers.ts'

/** Layers of CIFAR AlexNet; `width` scales every channel count (1 = 64/192/384/256/256). */
export function alexnetLayers(inputShape: [number, number, number], classes: number, width: number): Layer[] {
  const [c1, c2, c3, c4, c5] = [64, 192, 384, 256, 256].map((c) => scaled(c, width)) as [number, number, number, number, number]
  const body: Layer[] = [
    { kind: 'conv', name: 'conv1', kernel: 11, stride: 4, pad: 5, cin: inputShape[2], cout: c1 },
    { kind: 'act' },
    { kind: 'pool', op: 'max', size: 2 },
    { kind: 'conv', name: 'conv2', kernel: 5, stride: 1, pad: 2, cin: c1, cout: c2 },
    { kind: 'act' },
    { kind: 'pool', op: 'max', size: 2 },
    { kind: 'conv', name: 'conv3', kernel: 3, stride: 1, pad: 1, cin: c2, cout: c3 },
    { kind: 'act' },
    { kind: 'conv', name: 'conv4', kernel: 3, stride: 1, pad: 1, cin: c3, cout: c4 },
    { kind: 'act' },
    { kind: 'conv', name: 'conv5', kernel: 3, stride: 1, pad: 1, cin: c4, cout: c5 },
    { kind: 'act' },
    { kind: 'pool', op: 'max', size: 2 },
  ]
  const [h, w, c] = featureShape(body, inputShape)
  return [...body, { kind: 'flatten', order: 'chw' }, { kind: 'dense', name: 'fc', in: h * w * c, out: classes }]
}
