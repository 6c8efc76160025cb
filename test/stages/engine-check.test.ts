/**
 * A science stage refuses an engine other than the one in its fingerprint: openObjective
 * (stages/shared/io.ts) with the instance's ctx.env starts the workers, sees which backend they
 * got, and rejects with a one-line reason when it differs; with a matching or `none` env it works.
 */
import t from 'tap'
import { openObjective } from '../../stages/shared/io.ts'
import type { Dataset } from '../../src/science/hvp.ts'
import type { ModelSpec } from '../../src/science/models.ts'

const spec: ModelSpec = { arch: 'mlp', activation: 'relu', inputShape: [2, 2, 1], classes: 2, hidden: [3] }
const data: Dataset = {
  x: Float32Array.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8]),
  y: Int32Array.from([0, 1]),
  n: 2,
  shape: [2, 2, 1],
}
process.env.CUSP_THREADS = '1'

t.test('a different backend is refused', async (t) => {
  await t.rejects(
    openObjective(spec, data, { backend: 'cpu', chunk_size: 8 }, { backend: 'wasm', versions: {} }),
    /backend wasm expected, got cpu/,
  )
})

t.test('the expected backend, or no engine claim, is accepted', async (t) => {
  for (const expected of [{ backend: 'cpu', versions: {} }, { backend: 'none', versions: {} }, undefined]) {
    const o = await openObjective(spec, data, { backend: 'cpu', chunk_size: 8 }, expected)
    t.equal(o.backend, 'cpu')
    await o.dispose()
  }
})
