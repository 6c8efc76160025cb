/**
 * `npm run bench -- <name> [args...]` runs `bench/<name>.ts` with the remaining arguments.
 * Benchmarks are never tests: each one measures ours against a peer in the same run and ends by
 * printing one JSON line with its figures.
 */
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execaNode } from 'execa'

const here = dirname(fileURLToPath(import.meta.url))
const available = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -3))
  .sort()

const [name, ...args] = process.argv.slice(2)
if (name === undefined || !available.includes(name)) {
  const what = name === undefined ? 'no benchmark named' : `unknown benchmark '${name}'`
  console.error(`bench: ${what}; choose one of: ${available.join(', ') || '(none yet)'}`)
  console.error('usage: npm run bench -- <name> [args...]')
  process.exit(2)
}
const file = join(here, `${name}.ts`)
if (!existsSync(file)) process.exit(2)
const child = await execaNode(file, args, { nodeOptions: ['--import', 'tsx'], stdio: 'inherit', reject: false })
process.exit(child.exitCode ?? 1)
