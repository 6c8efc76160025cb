/**
 * S3 store configuration: `s3://bucket/prefix?options` parsing, the endpoint and region from the
 * standard AWS environment variables (URL options win), path-style defaults, every rejection
 * naming what is wrong, and redaction of secrets from any message.
 */
import t from 'tap'
import { describeS3, parseS3Spec, redact } from '../../src/harness/store/s3-config.ts'

t.test('bucket, prefix, defaults', async (t) => {
  const r = parseS3Spec('s3://my-bucket/team/cache/', {})
  t.same(r, {
    ok: true,
    value: {
      bucket: 'my-bucket',
      prefix: 'team/cache',
      endpoint: undefined,
      region: undefined,
      forcePathStyle: false,
      partSizeBytes: 16 << 20,
      maxAttempts: 6,
    },
  })
  t.match(parseS3Spec('s3://b12', {}), { ok: true, value: { bucket: 'b12', prefix: '' } })
  if (r.ok) t.equal(describeS3(r.value), 's3://my-bucket/team/cache')
})

t.test('endpoint and region: URL option > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL; custom endpoints default to path-style', async (t) => {
  const env = { AWS_ENDPOINT_URL: 'http://generic:1', AWS_ENDPOINT_URL_S3: 'http://minio:9000/', AWS_DEFAULT_REGION: 'eu-west-1' }
  t.match(parseS3Spec('s3://bkt/p', env), { ok: true, value: { endpoint: 'http://minio:9000', region: 'eu-west-1', forcePathStyle: true } })
  t.match(parseS3Spec('s3://bkt/p', { AWS_ENDPOINT_URL: 'http://generic:1' }), {
    ok: true,
    value: { endpoint: 'http://generic:1', region: 'us-east-1' },
  })
  t.match(parseS3Spec('s3://bkt/p?endpoint=https://acct.r2.cloudflarestorage.com&region=auto&path_style=false', env), {
    ok: true,
    value: { endpoint: 'https://acct.r2.cloudflarestorage.com', region: 'auto', forcePathStyle: false },
  })
  t.match(parseS3Spec('s3://bkt/p', { AWS_REGION: 'us-west-2', AWS_DEFAULT_REGION: 'eu-west-1' }), {
    ok: true,
    value: { region: 'us-west-2', endpoint: undefined },
  })
  t.match(
    parseS3Spec('s3://bkt/p', {}, { path_style: true, part_size_mb: 64 }),
    { ok: true, value: { forcePathStyle: true, partSizeBytes: 64 << 20 } },
    'a store: object',
  )
  t.match(parseS3Spec('s3://bkt/p?max_attempts=3', {}), { ok: true, value: { maxAttempts: 3 } })
})

t.test('rejections say what is wrong', async (t) => {
  const cases: [string, RegExp][] = [
    ['s3://', /bucket name ''/],
    ['s3://UPPER/p', /bucket name 'UPPER'/],
    ['s3://ab/p', /bucket name 'ab'/],
    ['s3://bkt/a//b', /prefix 'a\/\/b'/],
    ['s3://bkt/a/../b', /prefix/],
    ['s3://bkt/p?colour=red', /unknown S3 store option 'colour'.*endpoint, region, path_style/],
    ['s3://bkt/p?path_style=maybe', /path_style='maybe'/],
    ['s3://bkt/p?part_size_mb=4', /part_size_mb='4': an integer from 5 to 5120/],
    ['s3://bkt/p?max_attempts=0', /max_attempts/],
    ['s3://bkt/p?endpoint=ftp://x', /invalid S3 endpoint 'ftp:\/\/x'/],
    ['s3://bkt/p?endpoint=not a url', /invalid S3 endpoint/],
  ]
  for (const [spec, msg] of cases) t.match(parseS3Spec(spec, {}), { ok: false, error: { reason: 'store-error', message: msg } }, spec)
})

t.test('credentials never pass through: not in endpoints, redacted from messages', async (t) => {
  const withCreds = parseS3Spec('s3://bkt/p?endpoint=http://AKIAXXXX:supersecretvalue@minio:9000', {})
  t.match(withCreds, { ok: false, error: { message: /must not carry credentials/ } })
  t.notMatch(JSON.stringify(withCreds), /supersecretvalue|AKIAXXXX/, 'the rejection does not repeat them')
  const env = {
    AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    AWS_SESSION_TOKEN: 'FwoGZXIvYXdzEXAMPLETOKEN',
  }
  const leaky = [
    'key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY token FwoGZXIvYXdzEXAMPLETOKEN',
    'GET https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAOTHER%2F20261128&X-Amz-Signature=abcdef0123&X-Amz-Security-Token=tok',
    'Authorization: AWS4-HMAC-SHA256 Credential=AKIAOTHER/2026, Signature=deadbeef',
    'connect to http://user:pw@host:9000 failed',
  ].join('\n')
  const clean = redact(leaky, env, ['resolved-secret-from-file'])
  for (const s of ['AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI', 'FwoGZXIvYXdz', 'AKIAOTHER', 'abcdef0123', 'deadbeef', 'user:pw', '=tok'])
    t.notOk(clean.includes(s), `'${s}' redacted`)
  t.match(clean, /https:\/\/b\.s3\.amazonaws\.com\/k\?X-Amz-Credential=\*\*\*/, 'the rest of the message stays readable')
  t.equal(redact('x resolved-secret-from-file y', {}, ['resolved-secret-from-file']), 'x *** y')
})
