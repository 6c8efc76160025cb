/**
 * The pure core of the prepare-data stage: from a full labelled image set to the prepared
 * tensors and their manifest. Classes are chosen and relabelled (subset.ts), n_D examples drawn
 * class-balanced from a seed, gathered as float32 NHWC, normalised per channel on the subset
 * (normalise.ts), and described by a manifest (manifest.ts). The stage adapter only reads the
 * source and writes the outputs around this function.
 */
import type { ImageSet } from './image-set.ts'
import { indicesDigest, type DatasetManifest, type SourceKind } from './manifest.ts'
import { normalise, type Normalisation } from './normalise.ts'
import { balancedIndices, gatherSubset, labelCounts, selectClasses, type ClassSpec } from './subset.ts'

/** What to prepare from a source (the stage's params, less the source). */
export interface PrepareSpec {
  classes: ClassSpec
  /** Number of examples, class-balanced. */
  nD: number
  seed: number
  normalisation: Normalisation
}

/** A prepared dataset: `x` [n, h, w, c] float32, `y` [n] int32 in 0..n_c-1, and its manifest. */
export interface PreparedDataset {
  x: Float32Array
  y: Int32Array
  indices: Int32Array
  manifest: DatasetManifest
}

/** Prepares `spec` from `set`; `source` names where `set` came from (for the manifest). */
export function prepareDataset(
  set: ImageSet,
  spec: PrepareSpec,
  source: { kind: SourceKind; digest: string; split: string },
): PreparedDataset {
  const selection = selectClasses(set.classNames, spec.classes)
  const indices = balancedIndices(set.labels, selection.sourceIds, spec.nD, spec.seed)
  const { x, y } = gatherSubset(set, indices, selection.sourceIds) // [n, h, w, c], [n]
  const stats = normalise(x, set.channels, spec.normalisation)
  const manifest: DatasetManifest = {
    schema: 1,
    source,
    classes: { names: selection.names, sourceIds: selection.sourceIds },
    shape: [indices.length, set.height, set.width, set.channels],
    labelCounts: labelCounts(y, selection.sourceIds.length),
    indices: { count: indices.length, digest: indicesDigest(indices) },
    normalisation: { kind: spec.normalisation, ...stats },
    seed: spec.seed,
  }
  return { x, y, indices, manifest }
}
