/**
 * The manifest written beside a prepared dataset: everything needed to say what the tensors
 * are and to check that two runs chose the same examples, without opening the tensors. The
 * source is named by the digest of its bytes (the archive, the IDX files, or the synthetic spec),
 * the chosen examples by the sha256 of their indices (as little-endian int32) into the source
 * split, so "same data?" is a comparison of two short strings.
 */
import { createHash } from 'node:crypto'
import type { ChannelStats, Normalisation } from './normalise.ts'

/** Which kind of source a dataset was prepared from. */
export type SourceKind = 'cifar10' | 'idx' | 'synthetic'

/** What a prepared dataset is (written as `manifest.json`). */
export interface DatasetManifest {
  schema: 1
  source: {
    kind: SourceKind
    /** `sourceDigest` of the source files (archive; IDX images, labels), or sha256 of the synthetic spec's JSON. */
    digest: string
    /** Which split of the source ('train' / 'test'), when it has several. */
    split: string
  }
  classes: {
    /** Names of the new labels 0..n_c-1. */
    names: string[]
    /** The source's class id of each new label. */
    sourceIds: number[]
  }
  /** Shape of `x`: [n, height, width, channels]. */
  shape: number[]
  /** Examples of each new label. */
  labelCounts: number[]
  indices: {
    count: number
    /** sha256 of the chosen source indices as little-endian int32, in ascending order. */
    digest: string
  }
  normalisation: { kind: Normalisation } & ChannelStats
  seed: number
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex')

/** sha256 (hex) of `indices` as little-endian int32 bytes. */
export function indicesDigest(indices: Int32Array): string {
  const bytes = new Uint8Array(indices.length * 4)
  const view = new DataView(bytes.buffer)
  indices.forEach((v, i) => view.setInt32(i * 4, v, true))
  return sha256(bytes)
}

/**
 * The source digest of one or more files: for one file, the sha256 of its bytes (the same as
 * its artifact-store digest); for several (IDX images, labels), the sha256 of their sha256s
 * joined by newlines, so file boundaries cannot be confused.
 */
export function sourceDigest(...files: Uint8Array[]): string {
  if (files.length === 1) return sha256(files[0]!)
  return sha256(files.map(sha256).join('\n'))
}
