/**
 * Eigenvectors matched across probes by overlap, not by rank (C2, paper §5.2 / Figure 4): between
 * two probes of one run, h_i of the earlier is paired with the h'_j of the later that it overlaps
 * most, |<h_i, h'_j>| (vectors normalised first, so a seeded random sketch S h of each works as well
 * as the vectors themselves). Greedy on the overlap matrix: the largest remaining |overlap| is paired
 * first, each vector at most once; a pair below `minOverlap` is not a match (the direction left the
 * measured top-k, or a near-degenerate pair rotated too far to say which is which). Ranks swap when
 * two eigenvalues cross; following the rank then splices two directions' d_i = h_i . g together.
 */

const norm = (v: readonly number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0))

/** |<a, b>| / (|a| |b|); 0 when either is zero or the lengths differ. */
export function absCosine(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return 0
  const na = norm(a)
  const nb = norm(b)
  if (!(na > 0 && nb > 0)) return 0
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!
  return Math.abs(s) / (na * nb)
}

/** For each vector of `from`, the index in `to` it is matched to (-1: none) and the overlap of the pair. */
export interface Matching {
  index: number[]
  overlap: number[]
}

/** Greedy maximum-|overlap| matching of `from` onto `to`; pairs below minOverlap are left unmatched. */
export function matchByOverlap(from: readonly (readonly number[])[], to: readonly (readonly number[])[], minOverlap: number): Matching {
  const pairs: { i: number; j: number; o: number }[] = []
  from.forEach((a, i) => to.forEach((b, j) => pairs.push({ i, j, o: absCosine(a, b) })))
  // Ties broken by index so the matching is the same on every run.
  pairs.sort((x, y) => y.o - x.o || x.i - y.i || x.j - y.j)
  const index = from.map(() => -1)
  const overlap = from.map(() => 0)
  const used = new Set<number>()
  for (const { i, j, o } of pairs) {
    if (o < minOverlap) break
    if (index[i] !== -1 || used.has(j)) continue
    index[i] = j
    overlap[i] = o
    used.add(j)
  }
  return { index, overlap }
}

/** One direction followed through a run: its eigen-index at each probe (-1: lost) and the overlap that linked it. */
export interface Track {
  /** The rank (0-based) of the direction at the reference probe. */
  rank: number
  index: number[]
  overlap: number[]
}

/**
 * Follows the top `nTop` eigenvectors of probe `ref` backwards and forwards through `vectors`
 * (one set per probe, in time order), matching each probe to its neighbour. A direction lost at a
 * probe (no match above minOverlap) stays lost further from the reference.
 */
export function trackByOverlap(
  vectors: readonly (readonly (readonly number[])[])[],
  ref: number,
  nTop: number,
  minOverlap: number,
): Track[] {
  const n = vectors.length
  const tracks: Track[] = Array.from({ length: Math.min(nTop, vectors[ref]?.length ?? 0) }, (_, r) => ({
    rank: r,
    index: new Array<number>(n).fill(-1),
    overlap: new Array<number>(n).fill(0),
  }))
  for (const tr of tracks) {
    tr.index[ref] = tr.rank
    tr.overlap[ref] = 1
  }
  for (const step of [-1, 1]) {
    for (let j = ref + step; j >= 0 && j < n; j += step) {
      const prev = vectors[j - step]!
      const m = matchByOverlap(prev, vectors[j]!, minOverlap)
      for (const tr of tracks) {
        const at = tr.index[j - step]!
        if (at < 0) continue
        tr.index[j] = m.index[at]!
        tr.overlap[j] = m.overlap[at]!
      }
    }
  }
  return tracks
}

/** Rank-order tracks (h_i is the i-th eigenvector at every probe): what the audit falls back to without vectors. */
export function trackByRank(probes: number, nTop: number): Track[] {
  return Array.from({ length: nTop }, (_, r) => ({
    rank: r,
    index: new Array<number>(probes).fill(r),
    overlap: new Array<number>(probes).fill(NaN),
  }))
}
