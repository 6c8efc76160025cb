/**
 * Helpers for the science-stage tests: a small synthetic classification set written as
 * prepare-data's outputs (dataset.safetensors: x float32 [n, h, w, c], y int32 [n]; manifest.json),
 * and running one stage job through the real stage runner (src/harness/stage-process.ts) in a child
 * process, as the executor does, with an optional resume directory and an optional kill.
 */
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeSafetensors, tensor } from '../../src/data/safetensors.ts'
import { createRng } from '../../src/science/rng.ts'
import { stageCommand, type StageInput } from '../../src/harness/stage-api.ts'
import type { JsonObject } from '../../src/harness/types.ts'

export const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')

/**
 * A throwaway project running this checkout's code: a temp dir (`prefix` + random) whose sources,
 * stages, schemas, data, scripts and node_modules are symlinks to the repository's, with
 * `pipeline` as its pipeline.yaml. The caller removes it.
 */
export async function linkedProject(prefix: string, pipeline: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  for (const f of ['src', 'stages', 'schemas', 'data', 'scripts', 'node_modules', 'package.json', 'package-lock.json'])
    await symlink(join(ROOT, f), join(dir, f))
  await writeFile(join(dir, 'pipeline.yaml'), pipeline)
  return dir
}

/** n images [h, w, 1] of `classes` classes: a class-dependent bright band plus noise (learnable). */
export async function writeToyData(dir: string, n = 64, classes = 3, h = 8, w = 8): Promise<{ dataset: string; manifest: string }> {
  await mkdir(dir, { recursive: true })
  const rng = createRng(7, 'toy-data')
  const x = new Float32Array(n * h * w)
  const y = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const c = i % classes
    y[i] = c
    for (let r = 0; r < h; r++)
      for (let q = 0; q < w; q++) {
        const band = Math.floor((r * classes) / h) === c ? 1 : 0
        x[(i * h + r) * w + q] = band + 0.5 * rng.normal()
      }
  }
  const dataset = join(dir, 'dataset.safetensors')
  const manifest = join(dir, 'manifest.json')
  await writeSafetensors(dataset, { x: tensor.f32([n, h, w, 1], x), y: tensor.i32([n], y) })
  await writeFile(manifest, JSON.stringify({ classNames: Array.from({ length: classes }, (_, i) => `c${i}`), n }))
  return { dataset, manifest }
}

/** Writes job.json for `impl` in `workDir` (out/ inside) and returns the out dir. */
export async function writeJob(
  workDir: string,
  impl: string,
  params: JsonObject,
  inputs: Record<string, StageInput[]>,
  resumeDir?: string,
): Promise<string> {
  const outDir = join(workDir, 'out')
  await mkdir(outDir, { recursive: true })
  const job = {
    schema: 1,
    instance: `${impl}@test`,
    module: join(ROOT, 'stages', impl, 'index.ts'),
    params,
    inputs,
    outDir,
    ...(resumeDir ? { resumeDir } : {}),
  }
  await writeFile(join(workDir, 'job.json'), JSON.stringify(job, null, 2))
  return outDir
}

/** Runs the job in `workDir`; resolves with exit code and stdout lines. `killWhen` kills it (SIGKILL) on the first stdout line it accepts. */
export function runJob(
  workDir: string,
  env: Record<string, string> = {},
  killWhen?: (line: string) => boolean,
): Promise<{ code: number | null; signal: string | null; lines: string[]; stderr: string }> {
  const cmd = stageCommand(workDir)
  return new Promise((resolve, reject) => {
    const child = spawn(cmd.file, cmd.args, {
      cwd: ROOT,
      env: { ...process.env, CUSP_THREADS: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const lines: string[] = []
    let stderr = ''
    let buf = ''
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString()
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        lines.push(line)
        if (killWhen?.(line)) child.kill('SIGKILL')
      }
    })
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, lines, stderr }))
  })
}

export async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
}
