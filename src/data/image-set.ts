/**
 * The in-memory form every dataset reader produces and every subset function consumes: a
 * labelled stack of images in NHWC layout (the layout of tfjs and of the `x` tensor in the
 * prepared safetensors file), with the names of the classes the labels index. Raw sources keep
 * their u8 pixels (CIFAR-10 alone is 150 MB as bytes, 600 MB as float32), so conversion to float
 * happens only for the selected subset.
 */

/** A labelled stack of images, [n, height, width, channels], with class names for the labels. */
export interface ImageSet {
  n: number
  height: number
  width: number
  channels: number
  /** [n, height, width, channels] pixels: u8 0..255 from files, float32 for synthetic data. */
  images: Uint8Array | Float32Array
  /** [n] class ids, each < classNames.length. */
  labels: Uint8Array | Int32Array
  /** Name of each class id. */
  classNames: string[]
}

/** The ten Fashion-MNIST class names, in label order (from the dataset's README). */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]

/** Checks the invariants of an ImageSet (sizes agree, labels in range); throws a plain Error. */
export function checkImageSet(s: ImageSet, what: string): void {
  const per = s.height * s.width * s.channels
  if (s.images.length !== s.n * per) throw new Error(`${what}: ${s.images.length} pixel values, expected ${s.n} x ${per}`)
  if (s.labels.length !== s.n) throw new Error(`${what}: ${s.labels.length} labels for ${s.n} images`)
  for (let i = 0; i < s.n; i++) {
    if (s.labels[i]! < 0 || s.labels[i]! >= s.classNames.length) {
      throw new Error(`${what}: label ${s.labels[i]} of image ${i} is not one of the ${s.classNames.length} classes`)
    }
  }
}
