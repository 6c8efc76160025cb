/**
 * What an S3 error means for the store: a miss (404 on a key, never on the bucket), a transient
 * failure worth another try (5xx, throttling, a connection reset or a short read), or an error
 * for the user, turned into a `StoreError` that names the bucket and key and says what to do
 * (a missing bucket, denied access, no credentials) with every secret redacted (s3-config.ts).
 */
import { StoreError } from './run-record-check.ts'
import { redact, type S3StoreConfig } from './s3-config.ts'

/**
 * `e` (from the SDK, or already a StoreError) as a `StoreError` for operation `op` on `key`:
 * a missing bucket, access denied and missing credentials get their own wording and advice.
 */
export function s3StoreError(
  e: unknown,
  op: string,
  key: string,
  config: S3StoreConfig,
  env: Record<string, string | undefined>,
): StoreError {
  if (e instanceof StoreError) return e
  const where = `s3://${config.bucket}/${key}${config.endpoint === undefined ? '' : ` (endpoint ${config.endpoint})`}`
  const name = nameOf(e)
  const status = statusOf(e)
  const raw = e instanceof Error ? e.message : String(e)
  let msg: string
  if (name === 'NoSuchBucket') msg = `S3 bucket '${config.bucket}' does not exist (${op} ${where}): create it, or fix --store / CUSP_STORE`
  else if (
    name === 'AccessDenied' ||
    name === 'InvalidAccessKeyId' ||
    name === 'SignatureDoesNotMatch' ||
    name === 'AllAccessDisabled' ||
    status === 403
  ) {
    msg = `access denied to ${where} (${op}, ${name || status}): check the credentials from the AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ...) and the bucket policy`
  } else if (name === 'CredentialsProviderError')
    msg = `no AWS credentials found for ${where} (${op}): set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY`
  else
    msg = `S3 ${op} ${where} failed: ${name !== '' && !raw.includes(name) ? `${name}: ` : ''}${raw}${status !== undefined ? ` (HTTP ${status})` : ''}`
  return new StoreError(redact(msg, env))
}

/** The SDK error's name (`NoSuchKey`, `AccessDenied`, ...), or ''. */
export function nameOf(e: unknown): string {
  return typeof e === 'object' && e !== null && typeof (e as { name?: unknown }).name === 'string' ? (e as { name: string }).name : ''
}

/** The HTTP status the server answered with, if it answered. */
export function statusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode
}

/** A missing key (not a missing bucket). */
export function isNotFound(e: unknown): boolean {
  const n = nameOf(e)
  if (n === 'NoSuchBucket') return false
  return n === 'NotFound' || n === 'NoSuchKey' || (statusOf(e) === 404 && n !== 'NoSuchUpload')
}

/** A failure worth another try: 5xx, throttling, or a network error / short read (no answer). */
export function isTransient(e: unknown): boolean {
  const status = statusOf(e)
  if (status !== undefined) return status >= 500 || status === 429
  const code = (e as { code?: unknown } | undefined)?.code
  return typeof code === 'string'
    ? /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|ERR_STREAM_PREMATURE_CLOSE|UND_ERR_SOCKET)$/.test(code)
    : /aborted|socket hang up|premature/i.test(String(e))
}
