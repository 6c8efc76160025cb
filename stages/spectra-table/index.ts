/**
 * Stage `spectra-table`: every spectrum-probe result as one tidy table a researcher loads in pandas
 * or R (`spectra.csv`, `spectra.json`: one row per probe instance x eigenvalue, with the instance's
 * coordinates; table.ts). Its deps are the probe stages' probe.json outputs (`all: true`), so the
 * table is content-addressed like any output and published by pipeline.yaml's `publish:` block.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { defineStage, type StageContext } from '../../src/harness/stage-api.ts'
import { spectraRows, toCsv, toJson, type ProbeFile } from './table.ts'

export interface SpectraTableResult {
  rows: number
  probes: number
  absent: string[]
}

export default defineStage(async (ctx: StageContext<Record<string, never>>): Promise<SpectraTableResult> => {
  const files: ProbeFile[] = []
  for (const dep of Object.keys(ctx.inputs).sort()) {
    const inputs = [...(ctx.inputs[dep] ?? [])].sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0))
    for (const input of inputs) {
      if (input.output !== 'probe.json')
        throw new Error(`input ${dep}/${input.instance}/${input.output}: spectra-table reads probe.json outputs only`)
      files.push({ input, text: await readFile(input.path, 'utf8') })
    }
  }
  const { rows, absent } = spectraRows(files)
  await writeFile(join(ctx.outDir, 'spectra.csv'), toCsv(rows))
  await writeFile(join(ctx.outDir, 'spectra.json'), toJson(rows))
  ctx.log(`${rows.length} rows from ${files.length - absent.length} probes (${absent.length} of checkpoints never reached)`)
  return { rows: rows.length, probes: files.length, absent }
})
