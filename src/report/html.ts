/**
 * report.html: one self-contained page (no network, no script) with every figure inline (SVG as a
 * data: URI image, so each figure's ids stay private to it), the claims audit (per claim the central
 * test and its verdict, our number with its uncertainty beside the paper's, what the design could
 * detect, its limits, the side checks), the transient rule, Table 1 as the paper prints it (and with
 * the edge set as the top), every threshold taken from the audit (claims.yaml), and provenance: for each figure the
 * instances that fed it with the sha256 of each output (and the instance fingerprint when the
 * harness provides it), the engine backend and versions, the datasets and the profile. Pure: text in,
 * text out.
 */
import type { EnvRecord } from '../harness/types.ts'
import type { AuditRecord } from './audit.ts'
import type { FigureSpec } from './figure-specs.ts'
import type { ProvenanceEntry } from './gather.ts'
import { fmt } from './stats.ts'
import type { Table1Row } from './table1.ts'

/** What the page shows. */
export interface ReportInput {
  figures: { figure: FigureSpec; svg: string; png: string }[]
  /** The audit (audit.json): verdicts, rules, Table 1. Without it the page says so. */
  audit: AuditRecord | undefined
  provenance: ProvenanceEntry[]
  engine: EnvRecord
  profile: string
  dataset: string
  /** The "Pipeline" section (src/report/dag-section.ts: the stage graph, inline SVG), or absent. */
  dag?: string
}

/** Escapes text for HTML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

const CSS = `
body { font-family: "DejaVu Sans", sans-serif; margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.supported { background: #e3f4e1; } .not-supported { background: #fbe1e1; } .inconclusive { background: #fdf3d8; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
details { font-size: 0.85em; margin-top: 0.4em; } code { font-size: 0.95em; word-break: break-all; }
.omitted { color: #888; }
ul.limits { margin: 0.3em 0 0 1em; padding: 0; } .side { font-size: 0.9em; color: #333; }
`

function b64(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64')
}

function auditTable(a: AuditRecord | undefined): string {
  if (a === undefined) return '<p>No audit was given to the report.</p>'
  const rows = a.claims.map((c) => {
    const sides = c.checks
      .filter((k) => k.role === 'side')
      .map((k) => `<li>${esc(k.name)}: <b>${esc(k.verdict)}</b>. ${esc(k.detail)}</li>`)
    const limits = c.limits.map((l) => `<li>${esc(l)}</li>`).join('')
    return `<tr class="${c.verdict.replace(' ', '-')}"><td>${esc(c.id)}</td><td><b>${esc(c.title)}</b><br><i>${esc(c.sentence)}</i></td><td><b>${esc(c.verdict)}</b><br>${esc(c.reason)}<details><summary>central test</summary>${esc(c.central)}</details></td><td>${esc(c.ours)}</td><td>${esc(c.paper)}</td><td>${esc(c.power)}<details><summary>design limits</summary><ul class="limits">${limits}</ul></details></td><td class="side">${sides.length > 0 ? `<ul class="limits">${sides.join('')}</ul>` : '—'}</td><td>${esc(c.profile)}<br>${esc(c.dataset)}</td></tr>`
  })
  return `<table id="audit"><tr><th>claim</th><th>the paper says</th><th>verdict (central test)</th><th>our number (uncertainty)</th><th>the paper's number</th><th>what the design could detect</th><th>side checks (not in the verdict)</th><th>profile, data</th></tr>${rows.join('')}</table>
<p>${esc(`Initial transient: ${a.rules.transient_text}; ${a.excluded.length} probe(s) excluded. Intervals are two-sided ${a.rules.level * 100}%; detection statements at power ${a.rules.power}.`)}</p>`
}

function table1Html(id: string, rows: Table1Row[], a: AuditRecord, none: string): string {
  if (rows.length === 0) return `<p>${esc(none)}</p>`
  const pct = `${a.rules.level * 100}%`
  const cell = (m: number | null, s: number | null): string => (m === null ? '—' : `${fmt(m)} (${fmt(s)})`)
  const ci = (r: Table1Row): string => (r.diffMean === null ? '—' : `${fmt(r.diffMean)} [${fmt(r.diffLo)}, ${fmt(r.diffHi)}]`)
  const body = rows.map(
    (r) =>
      `<tr${r.included ? '' : ' class="omitted"'}><td class="num">${r.eta}</td><td>${esc(`${r.arch}-${r.activation}`)}</td><td class="num">${r.nData ?? '—'}</td><td class="num">${r.classes}</td><td class="num">${cell(r.topMean, r.topStd)}</td><td class="num">${cell(r.bulkMean, r.bulkStd)}</td><td class="num">${ci(r)}</td><td class="num">${r.detectable === null ? '—' : `±${fmt(r.detectable)}`}</td><td class="num">${r.atEdge} / ${r.probes}${r.omitted === null ? '' : ` (omitted: ${esc(r.omitted)})`}</td></tr>`,
  )
  return `<table id="${id}"><tr><th>η</th><th>architecture</th><th>n_D</th><th>n_c</th><th>mean ΔL from P_top g (std)</th><th>mean ΔL from P_bulk g (std)</th><th>top − bulk, paired (${pct} CI)</th><th>detectable difference</th><th>probes at the edge / all</th></tr>${body.join('')}</table>`
}

function table1Section(a: AuditRecord | undefined): string {
  if (a === undefined) return '<p>No audit was given to the report: Table 1 is computed by the audit.</p>'
  const t = a.rules.table1
  return `<p>${esc(`Mean and standard deviation (n − 1) of the change in the training loss from one η-step along −P_top g and along −P_bulk g, over probes after the initial transient with ρ_(n_c−1) > ${t.rho_threshold}; combinations with fewer than ${t.min_iterations} such probes are omitted (greyed, with the reason). The paired column is top − bulk on the same probe; a positive interval means the bulk step lowered the loss more. "Detectable difference": the smallest mean top − bulk this row would detect.`)}</p>
${table1Html('table-1', a.table1, a, 'No main-grid probes: no Table 1.')}
<h3>The same with the edge set as the top</h3>
${table1Html('table-1-edge', a.table1_edge, a, 'Not measured: the probes carry no edge-set step changes (top = {i : ρ_i ≥ threshold}).')}`
}

/** The paper's Table 1 as printed (eta, architecture, top mean (std), bulk mean (std)), for comparison. */
export const PAPER_TABLE1: readonly (readonly [string, string, string, string])[] = [
  ['0.003', 'AlexNet-ReLU', '0.0043 (0.0172)', '-0.0041 (0.0010)'],
  ['0.001', 'AlexNet-ReLU', '0.0064 (0.0133)', '-0.0014 (0.0007)'],
  ['0.0003', 'AlexNet-ReLU', '-0.0001 (0.0046)', '-0.0003 (0.0001)'],
  ['0.0001', 'AlexNet-ReLU', '-0.0012 (0.0043)', '-0.0001 (0.000)'],
  ['0.001', 'AlexNet-Tanh', '0.0025 (0.0048)', '-0.0017 (0.0010)'],
  ['0.0003', 'AlexNet-Tanh', '0.0007 (0.0031)', '-0.0004 (0.0001)'],
  ['0.003', 'VGG-16-ReLU', '0.0710 (0.0645)', '-0.0256 (0.0111)'],
  ['0.001', 'VGG-16-ReLU', '0.0208 (0.0142)', '-0.0072 (0.0035)'],
  ['0.0001', 'VGG-16-ReLU', '0.0011 (0.0064)', '-0.0008 (0.0006)'],
]

function paperTable1Html(): string {
  const body = PAPER_TABLE1.map(
    ([eta, arch, top, bulk]) =>
      `<tr><td class="num">${eta}</td><td>${arch}</td><td class="num">${top}</td><td class="num">${bulk}</td></tr>`,
  )
  return `<details><summary>The paper's Table 1 (CIFAR-10), for comparison</summary><table id="paper-table-1"><tr><th>η</th><th>architecture</th><th>mean ΔL from P_top g (std)</th><th>mean ΔL from P_bulk g (std)</th></tr>${body.join('')}</table></details>`
}

function provenanceOf(instances: string[], byInstance: Map<string, ProvenanceEntry[]>): string {
  const items = instances.map((id) => {
    const es = byInstance.get(id) ?? []
    const what = es
      .map(
        (e) =>
          `${esc(e.output)} sha256 <code>${esc(e.digest)}</code>${e.fingerprint !== undefined ? ` fingerprint <code>${esc(e.fingerprint)}</code>` : ''}`,
      )
      .join('; ')
    return `<li><code>${esc(id)}</code>: ${what || 'not an input of this stage'}</li>`
  })
  return `<details><summary>${instances.length} instances fed this figure</summary><ul>${items.join('')}</ul></details>`
}

/** The whole page. */
export function buildReportHtml(r: ReportInput): string {
  const byInstance = new Map<string, ProvenanceEntry[]>()
  for (const p of r.provenance) byInstance.set(p.instance, [...(byInstance.get(p.instance) ?? []), p])
  const figs = r.figures.map(
    ({ figure: f, svg }) =>
      `<figure id="${esc(f.id)}" data-points="${f.points}"><img alt="${esc(f.title)}" src="data:image/svg+xml;base64,${b64(svg)}"><figcaption><b>${esc(f.title)}.</b> ${esc(f.caption)}</figcaption>${provenanceOf(f.instances, byInstance)}</figure>`,
  )
  const versions = Object.entries(r.engine.versions)
    .map(([k, v]) => `${esc(k)} ${esc(v)}`)
    .join(', ')
  const fpNote = r.provenance.some((p) => p.fingerprint !== undefined)
    ? ''
    : ' (instance fingerprints are not passed to stages by this harness version; each output is named by the sha256 of its bytes, its content address in the store)'
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cusp report: There is a Singularity in the Loss Landscape</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<style>${CSS}</style></head><body>
<h1>Reproduction and audit of “There is a Singularity in the Loss Landscape” (Lowell, 2022)</h1>
<p>Profile <b>${esc(r.profile)}</b>; data: ${esc(r.dataset)}; engine backend <b>${esc(r.engine.backend)}</b> (${versions || 'no versions'}).</p>
<h2>Claims audit</h2>
${auditTable(r.audit)}
<h2>Table 1: Learning occurs in the bulk, not the top</h2>
${table1Section(r.audit)}
${paperTable1Html()}
<h2 id="figures">Figures</h2>
${figs.join('\n')}
${r.dag ?? ''}
<h2>Provenance</h2>
<p>Every input of the report${esc(fpNote)}.</p>
<table id="provenance"><tr><th>dep</th><th>instance</th><th>output</th><th>sha256</th><th>fingerprint</th><th>backend param</th></tr>
${r.provenance.map((p) => `<tr><td>${esc(p.dep)}</td><td><code>${esc(p.instance)}</code></td><td>${esc(p.output)}</td><td><code>${esc(p.digest)}</code></td><td><code>${esc(p.fingerprint ?? '—')}</code></td><td>${esc(p.backend ?? '—')}</td></tr>`).join('\n')}
</table>
</body></html>
`
}
