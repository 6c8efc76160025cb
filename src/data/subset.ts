/**
 * From a full labelled image set to the training subset the paper's experiments use: a choice
 * of classes ("we drop classes in CIFAR-10 to form datasets with 2, 3, or 5 classes", §4.1) and a
 * class-balanced, seeded choice of n_D examples ("subsets of CIFAR-10 of varying size n_D", §4.2).
 * Pure functions over arrays: same inputs, same subset, on every machine.
 *
 * The selection algorithm (stable across versions; changing it changes every prepared dataset):
 * 1. Quotas: class k (k = 0..n_c-1, in the listed order) gets floor(n_D / n_c) examples, plus one
 *    for the first (n_D mod n_c) classes.
 * 2. For each class, its pool is the indices of its examples in ascending order; a partial
 *    Fisher-Yates shuffle of the first q_k positions, driven by the xoshiro128** stream
 *    `createRng(seed, "subset/class/<source class id>")` (j = i + floor(u * (m - i)), u uniform in
 *    (0, 1)), picks the first q_k. Keying the stream by the source class id means the same
 *    examples of a class are chosen whatever the class order, and a larger quota extends a
 *    smaller one (the first q draws do not depend on q).
 * 3. The chosen indices of all classes, sorted ascending, are the subset (so the order of
 *    examples follows the source file, not the class list).
 */
import { createRng } from '../science/rng.ts'
import type { ImageSet } from './image-set.ts'

/** Which classes: the first n, or an explicit list of class ids or names (new labels follow its order). */
export type ClassSpec = number | (number | string)[]

/** The chosen classes: source ids in the order of their new labels 0..n_c-1, and their names. */
export interface ClassSelection {
  sourceIds: number[]
  names: string[]
}

/** Resolves a `ClassSpec` against the source's class names; throws a plain Error saying what is wrong. */
export function selectClasses(classNames: readonly string[], spec: ClassSpec): ClassSelection {
  const k = classNames.length
  let ids: number[]
  if (typeof spec === 'number') {
    if (!Number.isInteger(spec) || spec < 1 || spec > k) throw new Error(`classes: ${spec} is not a number of classes between 1 and ${k}`)
    ids = Array.from({ length: spec }, (_, i) => i)
  } else {
    if (spec.length === 0) throw new Error('classes: the list is empty')
    ids = spec.map((c) => {
      if (typeof c === 'number') {
        if (!Number.isInteger(c) || c < 0 || c >= k) throw new Error(`classes: ${c} is not a class id (0..${k - 1})`)
        return c
      }
      const i = classNames.indexOf(c)
      if (i === -1) throw new Error(`classes: no class named ${JSON.stringify(c)} (known: ${classNames.join(', ')})`)
      return i
    })
    const dup = ids.find((id, i) => ids.indexOf(id) !== i)
    if (dup !== undefined) throw new Error(`classes: class ${dup} (${classNames[dup]}) is listed twice`)
  }
  return { sourceIds: ids, names: ids.map((i) => classNames[i]!) }
}

/** Per-class quotas of n_D examples over n_c classes (step 1 of the module comment). */
export function classQuotas(nD: number, nc: number): number[] {
  const base = Math.floor(nD / nc)
  return Array.from({ length: nc }, (_, k) => base + (k < nD % nc ? 1 : 0))
}

/**
 * Chooses n_D indices into `labels`, class-balanced over `sourceIds`, seeded (the algorithm of
 * the module comment). Throws when n_D < n_c or a class has fewer examples than its quota.
 */
export function balancedIndices(labels: ArrayLike<number>, sourceIds: readonly number[], nD: number, seed: number): Int32Array {
  const nc = sourceIds.length
  if (!Number.isInteger(nD) || nD < nc) throw new Error(`n_D = ${nD} must be an integer of at least one example per class (${nc})`)
  const quotas = classQuotas(nD, nc)
  const pools = new Map<number, number[]>(sourceIds.map((id) => [id, []]))
  for (let i = 0; i < labels.length; i++) pools.get(labels[i]!)?.push(i)
  const chosen: number[] = []
  sourceIds.forEach((id, k) => {
    const pool = pools.get(id)!
    const q = quotas[k]!
    if (pool.length < q) throw new Error(`class ${id} has ${pool.length} examples, fewer than the ${q} that n_D = ${nD} over ${nc} classes needs`)
    const rng = createRng(seed, `subset/class/${id}`)
    for (let i = 0; i < q; i++) {
      const j = i + Math.floor(rng.uniform() * (pool.length - i))
      const t = pool[i]!
      pool[i] = pool[j]!
      pool[j] = t
      chosen.push(pool[i]!)
    }
  })
  return Int32Array.from(chosen).sort()
}

/**
 * Gathers the chosen examples as float32 NHWC images (u8 pixels scaled by 1/255 to [0, 1],
 * float pixels copied) and int32 labels remapped to 0..n_c-1 in `sourceIds` order.
 */
export function gatherSubset(set: ImageSet, indices: Int32Array, sourceIds: readonly number[]): { x: Float32Array; y: Int32Array } {
  const per = set.height * set.width * set.channels
  const remap = new Map(sourceIds.map((id, k) => [id, k]))
  const x = new Float32Array(indices.length * per) // [n, h, w, c]
  const y = new Int32Array(indices.length) // [n]
  const copyRow = rowCopier(set.images, x, per)
  for (let i = 0; i < indices.length; i++) {
    const src = indices[i]!
    const label = remap.get(set.labels[src]!)
    if (label === undefined) throw new Error(`example ${src} has class ${set.labels[src]}, which is not selected`)
    y[i] = label
    copyRow(src, i)
  }
  return { x, y }
}

/** A monomorphic row copy for the pixel type: u8 scaled by 1/255, float32 copied as is. */
function rowCopier(images: Uint8Array | Float32Array, x: Float32Array, per: number): (src: number, dst: number) => void {
  if (images instanceof Float32Array) return (src, dst) => x.set(images.subarray(src * per, (src + 1) * per), dst * per)
  const u8 = images
  return (src, dst) => {
    const from = src * per
    const to = dst * per
    for (let p = 0; p < per; p++) x[to + p] = u8[from + p]! / 255
  }
}

/** Examples per new label 0..n_c-1 (for the manifest and for checks). */
export function labelCounts(y: Int32Array, nc: number): number[] {
  const counts = new Array<number>(nc).fill(0)
  for (const l of y) counts[l]!++
  return counts
}
