/**
 * The command-line side of `--estimate` and of the cost confirmation before an aws-batch run: the
 * table (or one JSON line) for a plan, and the question asked on a terminal. Kept beside the
 * estimator, outside src/harness, so the harness's CLI calls one function and imports no science.
 */
import { createInterface } from 'node:readline/promises'
import type { PlanStep, ValidPipeline } from '../harness/types.ts'
import { checkEstimateOptions, confirmCost, estimate, estimateJson, estimateText, type Estimate, type EstimateOptions } from './estimate.ts'

export interface EstimateFlagsLike {
  device: string | undefined
  price: number | undefined
}

/** The estimate's options: the flags, over pipeline.yaml's `estimate:` block. */
function options(f: EstimateFlagsLike, pipeline: ValidPipeline): EstimateOptions {
  const file = pipeline.estimate
  const device =
    f.device !== undefined
      ? { device: f.device }
      : file?.device !== undefined
        ? { device: file.device, deviceFrom: 'pipeline.yaml estimate.device' }
        : {}
  return { ...device, ...(f.price !== undefined ? { price: f.price } : {}), ...(file?.prices !== undefined ? { prices: file.prices } : {}) }
}

/** The estimate of `steps` as printed text (or a JSON line), or a usage message for bad flags. */
export function estimateOutput(
  pipeline: ValidPipeline,
  steps: readonly PlanStep[],
  f: EstimateFlagsLike & { json: boolean },
): { ok: true; text: string; estimate: Estimate } | { ok: false; message: string } {
  const o = options(f, pipeline)
  const bad = checkEstimateOptions(o)
  if (bad !== undefined) return { ok: false, message: bad }
  const e = estimate(pipeline, steps, o)
  return { ok: true, estimate: e, text: f.json ? `${JSON.stringify(estimateJson(e))}\n` : estimateText(e) }
}

/**
 * Before an aws-batch run: the estimate's total against `--confirm-above` (asked on a terminal,
 * refused elsewhere unless `--yes`). Resolves to undefined to go on, or the one-line refusal.
 */
export async function confirmRun(
  pipeline: ValidPipeline,
  steps: readonly PlanStep[],
  f: EstimateFlagsLike & { yes: boolean; confirmAbove: number },
  io: { interactive: boolean; write: (s: string) => void },
): Promise<string | undefined> {
  const o = options(f, pipeline)
  const bad = checkEstimateOptions(o)
  if (bad !== undefined) return bad
  const e = estimate(pipeline, steps, o)
  if (!f.yes && e.total.usd > f.confirmAbove && io.interactive) io.write(estimateText(e))
  const r = await confirmCost(
    e.total.usd,
    { yes: f.yes, threshold: f.confirmAbove },
    {
      interactive: io.interactive,
      ask: async (q) => {
        const rl = createInterface({ input: process.stdin, output: process.stdout })
        try {
          return await rl.question(q)
        } finally {
          rl.close()
        }
      },
    },
  )
  return r.ok ? undefined : r.message
}
