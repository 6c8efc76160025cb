/**
 * What the CLI loads before it knows the command: every package its bundle (scripts/cli-bundle.mjs,
 * what `npm run pipeline` runs) imports statically is loaded by a no-op rerun too. The heavy ones
 * (tfjs, the AWS SDK, the Kubernetes client, elkjs, vega) must load only where they are used:
 * through `await import(...)`, or the bundler's lazy stand-ins for the S3 client.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { ensureBundle } from '../../scripts/cli-bundle.mjs'

const HEAVY = [/^@tensorflow\//, /^@aws-sdk\//, /^@kubernetes\//, /^elkjs/, /^vega/, /^@resvg\//, /^webgpu/, /^mermaid/]

t.test('the CLI bundle imports no heavy package statically', async (t) => {
  // The bundle is CommonJS (a script with a code cache: scripts/cli-bundle.mjs): a package it
  // loads at once is a `require("...")`; one it loads on use goes through `__cuspHost.import("...")`.
  const text = readFileSync((await ensureBundle()) as string, 'utf8')
  const staticPkgs = [...text.matchAll(/(?<![\w$.])require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!)
  const dynamicPkgs = [...text.matchAll(/\b__cuspHost\.import\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!)
  t.ok(staticPkgs.includes('node:fs'), 'the static imports are read (node:fs is one)')
  t.ok(dynamicPkgs.includes('@aws-sdk/client-batch'), 'the dynamic imports are read (AWS Batch loads on use)')
  t.notMatch(text, /(?<![\w$.])import\(\s*["'][^"'./]/, 'no dynamic import of a package bypasses the host')
  const heavy = staticPkgs.filter((p) => HEAVY.some((h) => h.test(p)))
  t.same(heavy, [], `statically imported: ${[...new Set(staticPkgs)].sort().join(', ')}`)
})
