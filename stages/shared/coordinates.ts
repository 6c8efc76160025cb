/**
 * Run coordinates: params of the downstream science stages (spectrum-probe, cusp-scan) that name
 * which train run they read (arch, activation, eta, mode, seed, classes, n_data). They exist so a
 * pipeline.yaml matrix can `match:` a probe to its train instance by those keys (the harness
 * matches deps on params of the same name), and they are CHECKED against the run's checkpoint
 * index, so a mis-wired dep is an error rather than a silently wrong probe. `classes` and
 * `n_data` are also train params, checked against the dataset.
 */
import type { CheckpointIndex } from './io.ts'

/** Optional coordinates; each one given must agree with the run. */
export interface RunCoordinates {
  arch?: string
  activation?: string
  eta?: number
  mode?: string
  seed?: number
  classes?: number
  n_data?: number
}

/** Throws naming the first coordinate that disagrees with the checkpoint index. */
export function checkCoordinates(p: RunCoordinates, index: CheckpointIndex): void {
  const want: [keyof RunCoordinates, unknown][] = [
    ['arch', index.spec.arch],
    ['activation', index.spec.activation],
    ['eta', index.eta],
    ['mode', index.mode],
    ['classes', index.spec.classes],
    ['seed', index.seed],
  ]
  for (const [key, value] of want) {
    const got = p[key]
    if (got !== undefined && got !== value)
      throw new Error(
        `param ${key} = ${JSON.stringify(got)} but the checkpoints come from a run with ${key} = ${JSON.stringify(value)}: check the dep's match/where in pipeline.yaml`,
      )
  }
}

/** Throws when the train params' dataset coordinates disagree with the loaded dataset. */
export function checkDataCoordinates(p: Pick<RunCoordinates, 'classes' | 'n_data'>, classes: number, n: number): void {
  if (p.classes !== undefined && p.classes !== classes)
    throw new Error(`param classes = ${p.classes} but the dataset has ${classes} classes: check the data dep in pipeline.yaml`)
  if (p.n_data !== undefined && p.n_data !== n)
    throw new Error(`param n_data = ${p.n_data} but the dataset has ${n} examples: check the data dep in pipeline.yaml`)
}
