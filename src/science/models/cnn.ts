/**
 * The reference CNN of docs/architecture.md "Engine facts" (the measured baseline): conv3x3 'same' c->16, act, pool 2,
 * conv3x3 16->32, act, pool 2, flatten (PyTorch NCHW order), dense -> classes. With 28x28x1 inputs and
 * 10 classes it has 20,490 parameters (160 + 4,640 + 15,690). Average pooling by default (smooth, so
 * finite differences are a valid oracle for tanh); max pooling on request.
 */
import { featureShape } from './layer-shape.ts'
import type { Layer } from './layers.ts'

/** Layers of the reference CNN; `width` scales the channel counts (1 = 16/32). */
export function cnnLayers(inputShape: [number, number, number], classes: number, pool: 'avg' | 'max', width: number): Layer[] {
  const c1 = scaled(16, width)
  const c2 = scaled(32, width)
  const body: Layer[] = [
    { kind: 'conv', name: 'conv1', kernel: 3, stride: 1, pad: 1, cin: inputShape[2], cout: c1 },
    { kind: 'act' },
    { kind: 'pool', op: pool, size: 2 },
    { kind: 'conv', name: 'conv2', kernel: 3, stride: 1, pad: 1, cin: c1, cout: c2 },
    { kind: 'act' },
    { kind: 'pool', op: pool, size: 2 },
  ]
  const [h, w, c] = featureShape(body, inputShape)
  return [...body, { kind: 'flatten', order: 'chw' }, { kind: 'dense', name: 'fc', in: h * w * c, out: classes }]
}

/** Channel count c scaled by width, at least 1. */
export function scaled(c: number, width: number): number {
  if (!(width > 0)) throw new Error(`width must be > 0, got ${width}`)
  return Math.max(1, Math.round(c * width))
}
