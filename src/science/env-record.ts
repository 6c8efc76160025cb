/**
 * The numeric environment of a science stage, for its fingerprint (src/core/environment.ts says
 * what belongs there): the tfjs backend that `initEngine(choice)` WOULD select, and the versions of
 * the packages that do the arithmetic on it, found WITHOUT importing or initialising tfjs (the
 * planner calls this once per instance, so it must be cheap: a few package.json reads, memoised).
 * A stage run on another backend or engine version then has another fingerprint, so results from
 * different arithmetic never alias in the cache (changing backend changes the bits: docs/architecture.md).
 * The one file under src/science that touches the filesystem: it reads package manifests only.
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { envRecord, harnessEnv } from '../core/environment.ts'
import { unreachable, type EnvRecord } from '../core/vocabulary.ts'
import { isBackendChoice, type BackendChoice } from './backends.ts'

/** What the environment functions read of a stage instance: its validated params. */
export interface InstanceParams {
  params: Readonly<Record<string, unknown>>
}
import { adapterKey } from './webgpu/probe.ts'

const NATIVE = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const
const WASM = '@tensorflow/tfjs-backend-wasm'
const CORE = '@tensorflow/tfjs-core'
const CPU = '@tensorflow/tfjs-backend-cpu'
const WEBGPU = ['@tensorflow/tfjs-backend-webgpu', 'webgpu'] as const

/** Where to look for packages: node_modules folders from this file upwards (Node's own order). */
function moduleDirs(): string[] {
  const dirs: string[] = []
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    dirs.push(join(dir, 'node_modules'))
    const up = dirname(dir)
    if (up === dir) return dirs
    dir = up
  }
}

const versionCache = new Map<string, string | null>()

/** The installed version of `name` (its package.json, found as Node would), or undefined. */
export function installedVersion(name: string): string | undefined {
  const cached = versionCache.get(name)
  if (cached !== undefined) return cached ?? undefined
  let found: string | null = null
  for (const d of moduleDirs()) {
    try {
      const pkg = JSON.parse(readFileSync(join(d, name, 'package.json'), 'utf8')) as { version?: unknown }
      if (typeof pkg.version === 'string') {
        found = pkg.version
        break
      }
    } catch {
      // not in this node_modules: keep looking upwards
    }
  }
  versionCache.set(name, found)
  return found ?? undefined
}

/** The backend `initEngine(choice)` selects, predicted from what is installed (engine.ts `pick`). */
export function predictedBackend(choice: BackendChoice): string {
  switch (choice) {
    case 'cpu':
      return 'cpu'
    case 'wasm':
      return 'wasm'
    case 'tensorflow':
      return 'tensorflow'
    case 'webgpu':
      return 'webgpu'
    case 'auto':
      if (NATIVE.some((n) => installedVersion(n) !== undefined)) return 'tensorflow'
      if (installedVersion(WASM) !== undefined) return 'wasm'
      return 'cpu'
    default:
      return unreachable(choice)
  }
}

/**
 * The EnvRecord of a science stage run with `choice`: `{backend, versions}` where versions holds
 * tfjs-core and the backend's own package (tfjs-backend-cpu, -wasm, the native package, or on webgpu
 * tfjs-backend-webgpu, Dawn's package and the adapter's vendor/architecture), and,
 * for the pure-JS cpu backend, the Node major version (its Math.exp comes from V8).
 */
export function scienceEnv(choice: BackendChoice = 'auto'): EnvRecord {
  const backend = predictedBackend(choice)
  const versions: Record<string, string> = {}
  const add = (name: string): void => {
    const v = installedVersion(name)
    if (v !== undefined) versions[name] = v
  }
  add(CORE)
  if (backend === 'cpu') {
    add(CPU)
    versions.node = process.versions.node.split('.')[0] ?? process.versions.node
  } else if (backend === 'wasm') {
    add(WASM)
  } else if (backend === 'webgpu') {
    for (const n of WEBGPU) add(n) // tfjs's kernels and Dawn (the npm package webgpu)
    versions.adapter = adapterKey() // e.g. 'nvidia/hopper', 'mesa/software'
  } else {
    for (const n of NATIVE) add(n)
  }
  return envRecord(backend, versions)
}

/**
 * The engine backend an instance asks for, or undefined when it is not a science stage. A stage
 * declares that its numbers come from the science engine by having a `backend` param (one of
 * auto | tensorflow | wasm | cpu | webgpu, schema-validated like every knob), not by its name.
 */
export function backendChoice(inst: InstanceParams): BackendChoice | undefined {
  const b = inst.params.backend
  return isBackendChoice(b) ? b : undefined
}

/**
 * The executor's `env` option: scienceEnv(params.backend) for a science stage (one with a
 * `backend` param), harnessEnv() for every other stage. Wire it as
 * `execute({ ..., env: envForInstance })`.
 */
export function envForInstance(inst: InstanceParams): EnvRecord {
  const choice = backendChoice(inst)
  return choice === undefined ? harnessEnv() : scienceEnv(choice)
}

/**
 * Undefined when the engine a stage actually got agrees with the environment in its fingerprint
 * (`expected`, StageContext.env); otherwise a one-line message saying what differs. Compared: the
 * backend name, and each expected package version the engine also reports (tfjs reports
 * `tfjs-core` where the record says `@tensorflow/tfjs-core`). An expected env of `none` (or none
 * given) claims nothing about an engine and always agrees.
 */
export function engineMismatch(
  expected: EnvRecord | undefined,
  got: { backend: string; versions?: Readonly<Record<string, string>> },
): string | undefined {
  if (expected === undefined || expected.backend === 'none') return undefined
  const diffs: string[] = []
  if (got.backend !== expected.backend) diffs.push(`backend ${expected.backend} expected, got ${got.backend}`)
  for (const [name, want] of Object.entries(expected.versions)) {
    const have = got.versions?.[name] ?? got.versions?.[name.replace(/^@tensorflow\//, '')]
    if (have !== undefined && have !== want) diffs.push(`${name} ${want} expected, got ${have}`)
  }
  if (diffs.length === 0) return undefined
  return `the engine differs from the environment in this instance's fingerprint (${diffs.join('; ')}): the fingerprint was planned for another installation; rerun so it is planned here`
}
