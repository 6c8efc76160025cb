/**
 * Choosing a store from the user's spec (the `--store` flag, else `CUSP_STORE`; the CLI picks
 * which and passes it here). No spec means the embedded store at `<projectRoot>/artifacts`; a
 * filesystem path (absolute, or relative to the project root so the answer does not depend on
 * the working directory) or `file://` URL means a local store there; `s3://bucket/prefix[?opts]`
 * is the shared S3 store behind the embedded one as a local cache (a `TieredStore`: reads local
 * first, writes both; options and endpoint/region from the environment as in s3-config.ts,
 * credentials from the AWS chain). Opening does no I/O beyond one stat: the directory (or the
 * first connection) waits for the first use. Every layer gets one `RecordTrust`: the declared
 * outputs of the pipeline's stages (when the caller gives them) and the record signing keys
 * from `env` (record-trust.ts).
 */
import { statSync } from 'node:fs'
import { ioFailure } from '../failures.ts'
import { isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fail, ok, type ArtifactStore, type Failure, type Result } from '../types.ts'
import { LocalStore } from './local-store.ts'
import { signingFromEnv, warnOnceTo, type RecordTrust } from './record-trust.ts'
import { parseS3Spec, type S3Options } from './s3-config.ts'
import { S3Store } from './s3-store.ts'
import { TieredStore } from './tiered-store.ts'

/**
 * The store for `spec` (see the module comment), or a `store-error` saying what is wrong. `env`
 * supplies the AWS endpoint/region variables for an `s3://` spec (default: this process's);
 * `s3Options` are S3 options from elsewhere (a `store:` object in pipeline.yaml), under the URL's;
 * `given` the declared outputs and where a refused record's warning goes (`cliTrust`).
 */
export function openStore(
  spec: string | undefined,
  projectRoot: string,
  env: Record<string, string | undefined> = process.env,
  s3Options: S3Options = {},
  given: Pick<RecordTrust, 'outputsOf' | 'warn'> = {},
): Result<ArtifactStore, Failure> {
  const signing = signingFromEnv(env)
  if (!signing.ok) return fail({ reason: 'store-error', message: signing.message })
  const trust: RecordTrust = { ...given, ...signing.trust }
  const local = (dir: string) => localAt(dir, trust)
  const s = spec?.trim()
  if (s === undefined || s === '') return local(join(resolve(projectRoot), 'artifacts'))
  if (s.startsWith('s3://')) {
    const cfg = parseS3Spec(s, env, s3Options)
    if (!cfg.ok) return cfg
    const cache = local(join(resolve(projectRoot), 'artifacts'))
    if (!cache.ok) return cache
    return ok(new TieredStore(cache.value as LocalStore, new S3Store(cfg.value, env, {}, trust)))
  }
  if (s.startsWith('file://')) {
    try {
      return local(fileURLToPath(s))
    } catch (e) {
      return fail({ reason: 'store-error', message: `invalid store URL '${s}': ${(e as Error).message}` })
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
    return fail({
      reason: 'store-error',
      message: `unknown store scheme in '${s}': use a directory path, file://... or s3://bucket/prefix`,
    })
  }
  return local(isAbsolute(s) ? s : resolve(projectRoot, s))
}

function localAt(dir: string, trust: RecordTrust): Result<ArtifactStore, Failure> {
  let st
  try {
    st = statSync(dir, { throwIfNoEntry: false })
  } catch (e: unknown) {
    // A file where a parent directory should be (ENOTDIR), an unreadable parent (EACCES): one line, exit 2.
    const io = ioFailure(e, { op: 'use', path: dir, subject: 'the store', stack: false })
    if (io !== undefined) return fail(io)
    throw e
  }
  if (st !== undefined && !st.isDirectory()) {
    return fail({ reason: 'store-error', message: `store path ${dir} exists and is not a directory` })
  }
  return ok(new LocalStore(dir, trust))
}

/** The declared outputs of every stage of `instances` (for `openStore`'s `declared`). */
export function declaredOutputs(
  instances: Iterable<{ stage: string; outputs: readonly { name: string; kind: 'file' | 'dir' }[] }>,
): Pick<RecordTrust, 'outputsOf'> {
  const byStage = new Map<string, readonly { name: string; kind: 'file' | 'dir' }[]>()
  for (const i of instances) byStage.set(i.stage, i.outputs)
  return { outputsOf: (stage) => byStage.get(stage) }
}

/**
 * What the CLI opens its store with: the declared outputs of `instances`, and record warnings
 * (an unsigned or badly signed record) written once each to `stderr`, the CLI's own stream.
 */
export function cliTrust(
  instances: Iterable<{ stage: string; outputs: readonly { name: string; kind: 'file' | 'dir' }[] }>,
  stderr: { write(s: string): unknown },
): Pick<RecordTrust, 'outputsOf' | 'warn'> {
  return { ...declaredOutputs(instances), warn: warnOnceTo(stderr) }
}
