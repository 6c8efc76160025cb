// report.html in headless Chromium (Debian `chromium`): every figure decodes and is shown, and the
// page logs no console errors or exceptions. Also proves the check can fail: a page with a broken
// image and a script error is caught. Skipped (not failed) when Chromium is absent outside CI.
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CHROMIUM, inspectInChromium } from './support/chromium.ts'
import { syntheticReport } from './support/synthetic-report.ts'

const present = existsSync(CHROMIUM)
if (!present && process.env.CI !== undefined && process.env.CI !== '') t.fail(`${CHROMIUM} is missing (apt-get install chromium)`)

t.test('report.html renders every figure without console errors', { skip: present ? false : `${CHROMIUM} not installed` }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cusp-report-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { html } = await syntheticReport()
  const page = join(dir, 'report.html')
  await writeFile(page, html)
  const r = await inspectInChromium(page, { screenshot: true })
  t.same(r.errors, [], 'no console errors')
  t.equal(r.figures.length, 7)
  for (const f of r.figures)
    t.ok(f.complete && f.width > 100 && f.height > 100 && f.shownWidth > 100, `${f.id} rendered ${f.width}x${f.height}`)
  t.ok(r.screenshot !== undefined && r.screenshot.length > 10_000, 'a screenshot')
  if (process.env.CUSP_REPORT_SCREENSHOT !== undefined && r.screenshot !== undefined)
    await writeFile(process.env.CUSP_REPORT_SCREENSHOT, r.screenshot)

  // The same check on a broken page finds the problems.
  const bad = join(dir, 'bad.html')
  await writeFile(
    bad,
    '<!DOCTYPE html><html><body><figure id="x"><img src="data:image/svg+xml;base64,bm90IGFuIHN2Zw=="></figure><script>console.error("boom"); undefinedFunction()</script></body></html>',
  )
  const b = await inspectInChromium(bad)
  t.ok(b.errors.length >= 2, b.errors.join('\n'))
  t.equal(b.figures[0]?.width, 0, 'the broken image is seen as not rendered')
})
