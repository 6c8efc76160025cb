/**
 * The data layer: readers of the source formats (CIFAR-10 binary archive, IDX), the safetensors
 * tensor format, and the pure functions that turn a labelled image set into a prepared,
 * class-balanced, normalised subset with its manifest. Re-exports only.
 */
export { DataFormatError } from './errors.ts'
export {
  MAX_HEADER_BYTES, decodeSafetensors, encodeSafetensors, readSafetensors, tensor, writeSafetensors,
  type DType, type DTypeArrays, type SafetensorsContents, type Tensor,
} from './safetensors.ts'
export {
  IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, decodeIdx, encodeIdx, idxDataset, isGzip, maybeGunzip, readIdxDataset,
  type IdxArray, type IdxDataset,
} from './idx.ts'
export { readTar } from './tar.ts'
export {
  CIFAR10_MD5, CIFAR10_URL, decodeCifar10Archive, decodeCifar10Batch, downloadCifar10, md5File, readCifar10Archive,
  type Cifar10Split, type DownloadOptions,
} from './cifar10.ts'
export { FASHION_MNIST_CLASSES, checkImageSet, type ImageSet } from './image-set.ts'
export {
  balancedIndices, classQuotas, gatherSubset, labelCounts, selectClasses,
  type ClassSelection, type ClassSpec,
} from './subset.ts'
export { channelStats, normalise, standardise, type ChannelStats, type Normalisation } from './normalise.ts'
export { syntheticImageSet, type SyntheticSpec } from './synthetic.ts'
export { indicesDigest, sourceDigest, type DatasetManifest, type SourceKind } from './manifest.ts'
export { prepareDataset, type PrepareSpec, type PreparedDataset } from './prepare.ts'
export {
  BUNDLED_FASHION_MNIST, DEBIAN_FASHION_MNIST, FASHION_SPLITS, firstPerClass, makeFashionMnistSubset, takeRows,
} from './fashion-mnist-subset.ts'
