/**
 * Reads the figures and audit stages' inputs (StageContext.inputs) into `StageResults`, the one
 * place these stages touch the filesystem for science outputs. Inputs are classified by output
 * name (probe.json, telemetry.jsonl, scan.json, manifest) and, for probes and telemetry, by the
 * dep's local name: a probe dep whose name contains `classes` is the class sweep (C1), one containing
 * `dense` a densely probed run (C2; e.g. `probes-dense`, `probes-dense-cnn`), any other the eta grid
 * and Table 1 (`probes`, `probes-cnn`); telemetry deps named `flow*` are the gradient-flow runs (C4),
 * any other telemetry a gradient-descent run. Each input also yields a provenance line with the sha256 of its
 * bytes (the store's object digest) and, when the harness provides one, its instance fingerprint.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { StageInput } from '../harness/stage-api.ts'
import { parseManifest, parseProbe, parseScan, parseTelemetry, type ProbeRole, type StageResults } from './records.ts'

/** One input behind the report: which instance, which output, and its digest(s). */
export interface ProvenanceEntry {
  dep: string
  instance: string
  output: string
  /** sha256 of the output's bytes (equal to the store's object digest of the file). */
  digest: string
  /** The producing instance's fingerprint, when the harness passes it in the job (StageInput.fingerprint). */
  fingerprint?: string
  /** The producer's `backend` param (auto / wasm / cpu / tensorflow), when it has one. */
  backend?: string
}

function probeRole(dep: string): ProbeRole {
  if (dep.includes('classes')) return 'classes'
  if (dep.includes('dense')) return 'dense'
  return 'grid'
}

/** Reads and parses every input; the audit.json input (figures only) is returned as text. */
export async function gatherResults(
  inputs: Record<string, StageInput[]>,
): Promise<{ results: StageResults; provenance: ProvenanceEntry[]; auditText?: string }> {
  const results: StageResults = { probes: [], absentProbes: [], runs: [], flows: [], scans: [], datasets: [] }
  const provenance: ProvenanceEntry[] = []
  let auditText: string | undefined
  for (const dep of Object.keys(inputs).sort()) {
    for (const input of inputs[dep] ?? []) {
      const bytes = await readFile(input.path)
      const text = bytes.toString('utf8')
      const entry: ProvenanceEntry = {
        dep,
        instance: input.instance,
        output: input.output,
        digest: createHash('sha256').update(bytes).digest('hex'),
      }
      const fp = input.fingerprint
      if (typeof fp === 'string') entry.fingerprint = fp
      if (typeof input.params.backend === 'string') entry.backend = input.params.backend
      provenance.push(entry)
      const out = input.output
      if (out === 'probe.json') {
        const p = parseProbe(text, input.instance, input.params, probeRole(dep))
        if (p === undefined) results.absentProbes.push(input.instance)
        else results.probes.push(p)
      } else if (out === 'telemetry.jsonl') {
        const run = parseTelemetry(text, input.instance, input.params)
        if (dep.startsWith('flow')) results.flows.push(run)
        else results.runs.push(run)
      } else if (out === 'scan.json') {
        results.scans.push(parseScan(text, input.instance, input.params))
      } else if (out === 'manifest' || out === 'manifest.json') {
        results.datasets.push(parseManifest(text, input.instance))
      } else if (out === 'audit.json') {
        auditText = text
      } else {
        throw new Error(`input ${dep}/${input.instance}/${out}: the figures and audit stages do not know output ${JSON.stringify(out)}`)
      }
    }
  }
  return auditText === undefined ? { results, provenance } : { results, provenance, auditText }
}
