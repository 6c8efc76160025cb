// Eigenvectors matched across probes by overlap, not by rank: a known permutation with a rotation
// inside a near-degenerate pair is recovered, a pair rotated past telling apart is left unmatched,
// and in a dense run whose top two eigenvalues cross, overlap tracking keeps each direction's d_i
// while rank tracking splices them into a spurious jump (C2 then reads differently).
import t from 'tap'
import { analyseRun } from '../../src/report/c2.ts'
import { absCosine, matchByOverlap, trackByOverlap, trackByRank } from '../../src/report/overlap.ts'
import type { ProbeRecord } from '../../src/report/records.ts'
import { probe } from './fixtures.ts'

const e = (i: number, n = 5): number[] => Array.from({ length: n }, (_, j) => (j === i ? 1 : 0))
const rot = (a: number[], b: number[], th: number): [number[], number[]] => [
  a.map((x, i) => Math.cos(th) * x + Math.sin(th) * b[i]!),
  a.map((x, i) => -Math.sin(th) * x + Math.cos(th) * b[i]!),
]

t.test('absCosine ignores sign and scale', async (t) => {
  t.equal(absCosine([1, 0], [-3, 0]), 1)
  t.ok(Math.abs(absCosine([1, 1], [1, 0]) - Math.SQRT1_2) < 1e-15)
  t.equal(absCosine([0, 0], [1, 0]), 0)
  t.equal(absCosine([1], [1, 0]), 0)
})

t.test('a permutation with a 30 degree rotation inside a near-degenerate pair is recovered', async (t) => {
  const from = [e(0), e(1), e(2), e(3)]
  // The later probe: ranks permuted (e3, e0, [e1, e2 rotated by 30 degrees], sign flipped on e0).
  const [r1, r2] = rot(e(1), e(2), Math.PI / 6)
  const to = [e(3), e(0).map((x) => -x), r2, r1]
  const m = matchByOverlap(from, to, 0.5)
  t.same(m.index, [1, 3, 2, 0])
  t.ok(Math.abs(m.overlap[1]! - Math.cos(Math.PI / 6)) < 1e-12)
  // Rotated by 60 degrees the pair swaps: greedy still pairs each with the vector it overlaps most.
  const [s1, s2] = rot(e(1), e(2), Math.PI / 3)
  t.same(matchByOverlap([e(1), e(2)], [s1, s2], 0.5).index, [1, 0])
  // At 45 degrees nothing tells them apart: above min_overlap 0.8 they are left unmatched, not guessed.
  const [h1, h2] = rot(e(1), e(2), Math.PI / 4)
  t.same(matchByOverlap([e(1), e(2)], [h1, h2], 0.8).index, [-1, -1])
  // A direction that left the measured set is lost.
  t.same(matchByOverlap([e(0), e(4)], [e(0), e(1)], 0.5).index, [0, -1])
})

t.test('tracks chain through the run from the reference probe, both ways', async (t) => {
  const sets = [
    [e(0), e(1)],
    [e(1), e(0)],
    [e(1), e(0)],
    [e(0), e(1)],
  ]
  const tr = trackByOverlap(sets, 2, 2, 0.5)
  // Rank 0 at the reference (probe 2) is e1: at index 1, 0, 0, 1 of the four probes; rank 1 (e0) the other way.
  t.same(
    tr.map((x) => x.index),
    [
      [1, 0, 0, 1],
      [0, 1, 1, 0],
    ],
  )
  t.same(
    trackByRank(3, 2).map((x) => x.index),
    [
      [0, 0, 0],
      [1, 1, 1],
    ],
  )
})

/** A dense run (3 classes) whose directions A = e0 and B = e1 swap ranks at probe 20: A enters the edge at 10 with |d_A| 1 -> 3, B at 12 with |d_B| 0.5 -> 30. */
function crossingRun(withVectors: boolean): ProbeRecord[] {
  return Array.from({ length: 31 }, (_, j) => {
    const rhoA = j >= 10 ? 1.0 : 0.3 + 0.05 * j
    const rhoB = j >= 20 ? 1.1 : j >= 12 ? 0.95 : 0.2 + 0.04 * j
    const dA = j >= 10 ? 3 : 1
    const dB = j >= 12 ? 30 : 0.5
    const aFirst = rhoA >= rhoB
    const base = probe({ role: 'dense', classes: 3, eta: 0.06, iteration: j * 10, rhoTop: 0.5, rhoBulk: 0.1 })
    const rest = [0.1, 0.09, 0.08]
    return {
      ...base,
      rho: aFirst ? [rhoA, rhoB, ...rest] : [rhoB, rhoA, ...rest],
      d: aFirst ? [dA, dB, 0.1, 0.1, 0.1] : [dB, dA, 0.1, 0.1, 0.1],
      vectors: withVectors ? (aFirst ? [e(0), e(1), e(2), e(3), e(4)] : [e(1), e(0), e(2), e(3), e(4)]) : null,
    }
  }).filter((p) => p.t >= 1)
}

t.test('crossing eigenvalues: overlap keeps each direction, rank splices them', async (t) => {
  const prm = { rhoEdge: 0.9, jumpFactor: 2, tol: 1, minOverlap: 0.5 }
  const byOverlap = analyseRun(crossingRun(true), prm)
  t.equal(byOverlap.method, 'overlap')
  t.same(byOverlap.events.map((x) => [x.entryIteration, x.jumpIteration, x.coincide]).sort(), [
    [100, 100, true],
    [120, 120, true],
  ])
  const byRank = analyseRun(crossingRun(false), prm)
  t.equal(byRank.method, 'rank')
  // Rank 1 is A until 190 and B from 200: its largest |d| ratio is the splice at 200 (3 -> 30), not an entry.
  t.ok(
    byRank.events.some((x) => x.jumpIteration === 200 && !x.coincide),
    JSON.stringify(byRank.events),
  )
})
