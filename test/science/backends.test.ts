/**
 * The backend list is written once (src/science/backends.ts); the science stages' params schemas
 * (JSON, so they cannot import it) must list exactly the same names, and the CLI's `--backend`
 * takes them from the science host.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BACKEND_CHOICES, isBackendChoice } from '../../src/science/backends.ts'
import { scienceHost } from '../../src/science/host.ts'

const SCHEMAS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'schemas', 'stages')

t.test('every params schema with a backend param lists exactly BACKEND_CHOICES', async (t) => {
  let seen = 0
  for (const f of readdirSync(SCHEMAS).filter((n) => n.endsWith('.params.schema.json'))) {
    const schema = JSON.parse(readFileSync(join(SCHEMAS, f), 'utf8')) as { properties?: { backend?: { enum?: string[] } } }
    const b = schema.properties?.backend
    if (b === undefined) continue
    seen++
    t.same([...(b.enum ?? [])].sort(), [...BACKEND_CHOICES].sort(), f)
  }
  t.ok(seen >= 3, 'train, spectrum-probe and cusp-scan take a backend')
})

t.test('the host hands the same list to the CLI', async (t) => {
  t.same(scienceHost.backend.names, BACKEND_CHOICES)
  t.equal(scienceHost.backend.param, 'backend')
  t.ok(isBackendChoice('wasm'))
  t.notOk(isBackendChoice('webgl'))
  t.notOk(isBackendChoice(undefined))
})
