/**
 * Where an S3 store lives and how to reach it: parses `s3://bucket/prefix?option=value...` (the
 * `--store` flag or `CUSP_STORE`), fills the endpoint and region from the standard AWS
 * environment (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`; `AWS_REGION`, then
 * `AWS_DEFAULT_REGION`), and redacts secrets from any text that may reach a log, an error, the
 * lock or a report. Credentials are never parsed or held here: the S3 client takes them from the
 * AWS default chain (environment, shared config/credentials files, SSO, container/instance
 * roles). Pure: the environment is an argument, nothing is read or written.
 *
 * Options (query parameters, or the same keys in a `store:` object): `endpoint` (an http(s) URL,
 * for MinIO, Ceph RGW, R2, ...), `region`, `path_style` (true/false; default true when a custom
 * endpoint is set, since most S3-compatible servers have no wildcard DNS), `part_size_mb`
 * (multipart part size, 5..5120, default 16), `max_attempts` (per request, incl. retries, 1..20,
 * default 6).
 */
import { fail, ok, type Failure, type Result } from '../types.ts'

/** A validated S3 store location plus client options. `prefix` has no leading/trailing `/`. */
export interface S3StoreConfig {
  bucket: string
  prefix: string
  /** Custom endpoint (no credentials in it), or undefined for AWS itself. */
  endpoint: string | undefined
  /** undefined: let the SDK's chain decide (env, shared config), us-east-1 for custom endpoints. */
  region: string | undefined
  forcePathStyle: boolean
  partSizeBytes: number
  maxAttempts: number
}

/** Option keys accepted in the URL query or a `store:` object. */
export const S3_OPTIONS = ['endpoint', 'region', 'path_style', 'part_size_mb', 'max_attempts'] as const
type OptionKey = (typeof S3_OPTIONS)[number]
/** S3 options given as an object (e.g. a `store:` block in pipeline.yaml) rather than in the URL. */
export type S3Options = Partial<Record<OptionKey, string | number | boolean>>

const storeError = (message: string): { ok: false; error: Failure } => fail({ reason: 'store-error', message })

/**
 * The config for `spec` (`s3://bucket[/prefix][?k=v&...]`), with `extra` (e.g. a `store:` object
 * from pipeline.yaml) under the URL's own options, and the environment under both. A malformed
 * URL, bucket name, prefix or option is a `store-error` saying which and what is allowed.
 */
export function parseS3Spec(
  spec: string,
  env: Record<string, string | undefined> = {},
  extra: S3Options = {},
): Result<S3StoreConfig, Failure> {
  const m = /^s3:\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/.exec(spec.trim())
  if (m === null) return storeError(`invalid S3 store '${redactUrl(spec)}': expected s3://bucket/prefix`)
  const bucket = m[1] ?? ''
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    return storeError(`invalid S3 bucket name '${bucket}' in '${redactUrl(spec)}': 3-63 characters, lowercase letters, digits, '.' and '-'`)
  }
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '')
  if (prefix !== '' && prefix.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    return storeError(`invalid S3 prefix '${prefix}' in '${redactUrl(spec)}': no empty, '.' or '..' segments`)
  }
  const opts: Partial<Record<OptionKey, string>> = {}
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) opts[k as OptionKey] = String(v)
  for (const [k, v] of new URLSearchParams((m[3] ?? '').slice(1))) {
    if (!(S3_OPTIONS as readonly string[]).includes(k)) {
      return storeError(`unknown S3 store option '${k}' in '${redactUrl(spec)}': known options are ${S3_OPTIONS.join(', ')}`)
    }
    opts[k as OptionKey] = v
  }
  for (const k of Object.keys(opts)) {
    if (!(S3_OPTIONS as readonly string[]).includes(k))
      return storeError(`unknown S3 store option '${k}': known options are ${S3_OPTIONS.join(', ')}`)
  }

  const endpointRaw = nonEmpty(opts.endpoint) ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL)
  let endpoint: string | undefined
  if (endpointRaw !== undefined) {
    let u: URL
    try {
      u = new URL(endpointRaw)
    } catch {
      return storeError(`invalid S3 endpoint '${redactUrl(endpointRaw)}': expected http(s)://host[:port]`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      return storeError(`invalid S3 endpoint '${redactUrl(endpointRaw)}': expected http(s)://host[:port]`)
    if (u.username !== '' || u.password !== '') {
      return storeError(
        `S3 endpoint '${redactUrl(endpointRaw)}' must not carry credentials: use the AWS credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...)`,
      )
    }
    endpoint = u.href.replace(/\/$/, '')
  }
  const region =
    nonEmpty(opts.region) ??
    nonEmpty(env.AWS_REGION) ??
    nonEmpty(env.AWS_DEFAULT_REGION) ??
    (endpoint !== undefined ? 'us-east-1' : undefined)
  if (region !== undefined && !/^[a-z0-9-]{1,40}$/i.test(region)) return storeError(`invalid S3 region '${region}'`)

  const bool = parseBool(opts.path_style)
  if (bool === 'bad') return storeError(`invalid S3 option path_style='${opts.path_style}': expected true or false`)
  const part = parseIntIn(opts.part_size_mb, 5, 5120, 16)
  if (part === undefined) return storeError(`invalid S3 option part_size_mb='${opts.part_size_mb}': an integer from 5 to 5120`)
  const attempts = parseIntIn(opts.max_attempts, 1, 20, 6)
  if (attempts === undefined) return storeError(`invalid S3 option max_attempts='${opts.max_attempts}': an integer from 1 to 20`)
  return ok({
    bucket,
    prefix,
    endpoint,
    region,
    forcePathStyle: bool ?? endpoint !== undefined,
    partSizeBytes: part << 20,
    maxAttempts: attempts,
  })
}

/** `s3://bucket/prefix` (plus ` at <endpoint>` for a custom one): how the store names itself. */
export function describeS3(c: S3StoreConfig): string {
  return `s3://${c.bucket}${c.prefix === '' ? '' : `/${c.prefix}`}${c.endpoint === undefined ? '' : ` at ${c.endpoint}`}`
}

/**
 * `text` with credentials removed: the values of the AWS secret environment variables and any
 * `extraSecrets` (e.g. resolved credentials), userinfo in URLs, and presigned-URL / SigV4
 * `Credential=`, `Signature=` and security-token parameters. Applied to every message an S3
 * store lets out, so a leaked key cannot reach a log, an error, the lock or a report.
 */
export function redact(
  text: string,
  env: Record<string, string | undefined> = {},
  extraSecrets: readonly (string | undefined)[] = [],
): string {
  let out = redactUrl(text)
  const secrets = [env.AWS_SECRET_ACCESS_KEY, env.AWS_SESSION_TOKEN, env.AWS_ACCESS_KEY_ID, ...extraSecrets]
  for (const s of secrets) if (s !== undefined && s.length >= 4) out = out.split(s).join('***')
  return out
    .replace(/((?:X-Amz-)?(?:Credential|Signature|Security-Token)=)[^&\s,"']+/gi, '$1***')
    .replace(/(Authorization:\s*)\S.*$/gim, '$1***')
}

/** URLs with their userinfo (`user:pass@`) replaced by `***@`. */
export function redactUrl(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@')
}

function nonEmpty(s: string | undefined): string | undefined {
  const t = s?.trim()
  return t === undefined || t === '' ? undefined : t
}

function parseBool(s: string | undefined): boolean | undefined | 'bad' {
  if (s === undefined) return undefined
  if (/^(true|1|yes)$/i.test(s)) return true
  if (/^(false|0|no)$/i.test(s)) return false
  return 'bad'
}

function parseIntIn(s: string | undefined, min: number, max: number, dflt: number): number | undefined {
  if (s === undefined) return dflt
  if (!/^[0-9]+$/.test(s)) return undefined
  const n = Number(s)
  return n >= min && n <= max ? n : undefined
}
