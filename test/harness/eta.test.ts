/**
 * The plan's ETA (src/harness/eta.ts) against schedules computed by hand: list scheduling on job
 * slots, first come first served with the head of the queue blocking (as slots.ts does), the
 * critical path of a DAG, instances already running, and the duration model (median, the fitted
 * line a + b x size with its constraints, no extrapolation from a single size). No clocks.
 */
import t from 'tap'
import {
  estimateMs,
  etaLine,
  etaPlan,
  fitLine,
  fmtEta,
  remainingText,
  schedule,
  type EtaTask,
  type PastRun,
} from '../../src/harness/eta.ts'

const task = (id: string, ms: number | undefined, deps: string[] = [], weight = 1): EtaTask => ({ id, ms, deps, weight })

t.test('list scheduling: independent tasks on 1 and 2 slots, and a chain beside a short task', async (t) => {
  const three = [task('a', 10), task('b', 20), task('c', 30)]
  t.equal(schedule(three, 1), 60, 'one slot: the sum')
  // 2 slots: a 0-10, b 0-20; c starts at 10 on a's slot, ends 40.
  t.equal(schedule(three, 2), 40)
  t.equal(schedule(three, 3), 30, 'as many slots as tasks: the longest')
  // a 0-10 then b 10-30 (needs a); c 0-5 beside them.
  t.equal(schedule([task('a', 10), task('b', 20, ['a']), task('c', 5)], 2), 30)
})

t.test('the critical path of a diamond, whatever the slots beyond its width', async (t) => {
  // a(5) -> b(10), c(1) -> d(2): 5 + 10 + 2 = 17 on 2 or more slots.
  const diamond = [task('a', 5), task('b', 10, ['a']), task('c', 1, ['a']), task('d', 2, ['b', 'c'])]
  t.equal(schedule(diamond, 2), 17)
  t.equal(schedule(diamond, 8), 17)
  // One slot: 5 + 10 + 1 + 2 = 18.
  t.equal(schedule(diamond, 1), 18)
})

t.test('weights: a 2-CPU task takes both slots, and the head of the queue blocks those behind it', async (t) => {
  // x (weight 2) 0-10 alone; y and z 10-20 side by side.
  t.equal(schedule([task('x', 10, [], 2), task('y', 10), task('z', 10)], 2), 20)
  // y 0-10 takes one slot; x (head, needs 2) waits; z waits behind x: x 10-20, z 20-30.
  t.equal(schedule([task('y', 10), task('x', 10, [], 2), task('z', 10)], 2), 30)
  t.equal(schedule([task('big', 10, [], 8)], 2), 10, 'a weight above the slots is clamped, not a deadlock')
})

t.test('running tasks hold their slots for their remaining time; unknown durations count as zero', async (t) => {
  // a running with 3 ms left, b (4) after it: 7.
  t.equal(schedule([task('a', 10), task('b', 4, ['a'])], 2, new Map([['a', 3]])), 7)
  // one slot held by a for 5 more ms: c (2) after it, 7.
  t.equal(schedule([task('a', 10), task('c', 2)], 1, new Map([['a', 5]])), 7)
  t.equal(schedule([task('a', undefined), task('b', 4, ['a'])], 1), 4)
  t.equal(schedule([], 4), 0)
  t.equal(schedule([task('b', 4, ['settled-elsewhere'])], 1), 4, 'a dep outside the tasks is already settled')
})

const past = (stage: string, ms: number, size?: number): PastRun => ({ stage, ms, size })

t.test('duration model: median without sizes, a fitted line across sizes, nothing from one far size', async (t) => {
  t.equal(estimateMs('s', undefined, [past('s', 10), past('s', 30), past('s', 20), past('other', 999)]), 20, 'median')
  t.equal(estimateMs('s', undefined, [past('s', 10), past('s', 20)]), 15, 'median of an even count')
  t.equal(estimateMs('s', 5, []), undefined, 'no history')
  t.equal(estimateMs('none', 5, [past('s', 10)]), undefined, 'no history of this stage')
  // sizes 1, 2, 3 took 12, 14, 16: ms = 10 + 2 x size, so size 10 takes 30.
  const line = [past('s', 12, 1), past('s', 14, 2), past('s', 16, 3)]
  t.equal(estimateMs('s', 10, line), 30)
  t.same(
    fitLine([
      [1, 12],
      [2, 14],
      [3, 16],
    ]),
    { a: 10, b: 2 },
  )
  // (2, 10), (4, 30): the free fit is -10 + 10 x size; a < 0, so through the origin: b = (20 + 120) / (4 + 16) = 7.
  t.same(
    fitLine([
      [1, 1],
      [3, 13],
    ]),
    { a: 0, b: 4 },
  )
  t.equal(estimateMs('s', 10, [past('s', 1, 1), past('s', 13, 3)]), 40)
  t.equal(estimateMs('s', 10, [past('s', 10, 2), past('s', 30, 4)]), undefined, 'sizes within 2x are one size: no line, no extrapolation')
  // Durations falling with size: no growth, the mean (20 + 10) / 2 = 15 for any size.
  t.same(
    fitLine([
      [1, 20],
      [10, 10],
    ]),
    { a: 15, b: 0 },
  )
  // One size only (1): comparable sizes (within 2x) get its median, a thousandfold one nothing.
  const one = [past('s', 10, 1), past('s', 12, 1), past('s', 20, 1.5)]
  t.equal(estimateMs('s', 1.5, one), 12)
  t.equal(estimateMs('s', 1000, one), undefined)
  t.equal(estimateMs('s', 0.1, one), undefined)
  t.equal(estimateMs('s', undefined, one), 12, 'an instance without a size: the median')
  t.equal(estimateMs('s', 4, [past('s', 8), past('s', 10)]), 9, 'earlier runs without sizes: the median')
})

t.test('the plan line: an estimate on its slots, a lower bound when some are not counted, a fallback', async (t) => {
  const history = [past('train', 60_000), past('train', 60_000), past('probe', 30_000)]
  const runs = [
    { id: 't1', stage: 'train', deps: [], weight: 1 },
    { id: 't2', stage: 'train', deps: [], weight: 1 },
    { id: 'p1', stage: 'probe', deps: ['t1'], weight: 1 },
  ]
  const plan = etaPlan(runs, history, 2)
  t.same(
    plan.tasks.map((x) => x.ms),
    [60_000, 60_000, 30_000],
  )
  // t1, t2 0-60 s; p1 60-90 s.
  t.equal(etaLine(plan), 'eta: ~2 min (an estimate from 3 earlier runs of these stages, on 2 job slots)')
  const partial = etaPlan([...runs, { id: 'f', stage: 'figures', deps: ['p1'], weight: 1 }], history, 2)
  t.equal(partial.untimed, 1)
  t.match(etaLine(partial), /^eta: at least ~2 min .*1 instance without a comparable earlier run not counted\)$/)
  t.equal(etaLine(etaPlan(runs, [], 2)), 'eta: unknown, no earlier runs to estimate from')
  t.equal(etaLine(etaPlan([], history, 2)), undefined, 'nothing runs: no line')
  t.equal(fmtEta(45_000), '~45 s')
  t.equal(fmtEta(720_000), '~12 min')
  t.equal(fmtEta(7_500_000), '~2 h 05 min')
  // While running: t1 done, t2 20 s in (40 s left), p1 (needs t1, done) 30 s: max(40, 30) = 40 s.
  t.equal(remainingText(plan, new Set(['t1']), new Map([['t2', 20_000]])), '~40 s left (estimate)')
  t.equal(remainingText(etaPlan(runs, [], 2), new Set(), new Map()), undefined, 'nothing known: no time left shown')
})
