/**
 * Formatting of every `Failure` variant (failures.ts): located failures start with
 * `file:line:col: path:`, each message carries the variant's specifics and a next step,
 * and unknown variants are a bug (`unreachable`) rather than `[object Object]`. The
 * samples table is typed by reason, so a new variant without a sample fails type-checking.
 */
import t from 'tap'
import { formatFailure, formatFailures } from '../../src/harness/failures.ts'
import type { Failure, ObjectDigest, SourceLocation } from '../../src/harness/types.ts'

const loc: SourceLocation = { file: 'pipeline.yaml', line: 12, column: 7, path: 'stages.train.params.eta' }
const digest = (c: string): ObjectDigest => c.repeat(64) as ObjectDigest

const samples: { [R in Failure['reason']]: [Extract<Failure, { reason: R }>, RegExp[]] } = {
  'yaml-syntax': [
    { reason: 'yaml-syntax', location: loc, message: 'Map keys must be unique' },
    [/invalid YAML: Map keys must be unique\. Fix the syntax/],
  ],
  'schema-violation': [
    { reason: 'schema-violation', location: loc, message: 'must be a number (got "fast"). Write a number here.' },
    [/must be a number \(got "fast"\)/],
  ],
  'params-invalid': [
    { reason: 'params-invalid', location: loc, stage: 'train', message: 'must be a number (got "fast"). Write a number here.' },
    [/got "fast"/],
  ],
  'unknown-stage-impl': [
    { reason: 'unknown-stage-impl', location: loc, impl: 'trainer' },
    [/stages\/trainer\/index\.ts does not exist/, /Create it/],
  ],
  'bad-stage-schema': [
    { reason: 'bad-stage-schema', location: loc, file: 'schemas/stages/x.params.schema.json', message: 'is missing' },
    [/schemas\/stages\/x\.params\.schema\.json is missing/],
  ],
  'dangling-dep': [
    { reason: 'dangling-dep', location: loc, from: 'probe', to: 'trian', message: 'there is no stage named "trian".' },
    [/dep of stage probe on "trian": there is no stage/],
  ],
  'duplicate-instance-id': [
    { reason: 'duplicate-instance-id', location: loc, id: 'train@eta=0.1' },
    [/duplicate instance train@eta=0\.1/, /Remove the duplicate/],
  ],
  cycle: [{ reason: 'cycle', location: loc, trail: ['a', 'b', 'a'] }, [/dependency cycle a -> b -> a/, /Remove one of these deps/]],
  'bad-matrix': [{ reason: 'bad-matrix', location: loc, message: 'has no values.' }, [/has no values/]],
  'unsafe-path': [
    { reason: 'unsafe-path', location: loc, value: '../x' },
    [/"\.\.\/x" is not a safe name: it climbs out of its directory/],
  ],
  'unknown-profile': [
    { reason: 'unknown-profile', location: loc, profile: 'gpu', known: ['cpu', 'smoke'] },
    [/unknown profile "gpu"; profiles defined: cpu, smoke/],
  ],
  'bad-override': [
    { reason: 'bad-override', override: 'train.eta', message: "expected stage.param=value (no '=' found)" },
    [/^--set train\.eta: expected/],
  ],
  'unknown-target': [
    { reason: 'unknown-target', target: 'trian', known: ['train', 'probe'] },
    [/unknown stage or instance "trian"; known: train, probe/],
  ],
  usage: [{ reason: 'usage', message: 'unknown flag --frobnicate' }, [/^unknown flag --frobnicate$/]],
  'lock-invalid': [
    { reason: 'lock-invalid', file: 'pipeline.lock', message: 'schema must be 1' },
    [/^pipeline\.lock: invalid lock file: schema must be 1/],
  ],
  'stage-failed': [
    { reason: 'stage-failed', instance: 'train@eta=0.1', exitCode: 3, signal: null, stderrTail: 'Error: boom\n' },
    [/train@eta=0\.1 exited with code 3/, /stderr:\nError: boom$/],
  ],
  'timed-out': [
    {
      reason: 'timed-out',
      instance: 'train@eta=0.1',
      limit: { seconds: 5400, from: 'stages.train.timeout' },
      executor: 'kubernetes',
      stderrTail: 'epoch 3\n',
    },
    [
      /train@eta=0\.1 ran past its time limit of 90 min \(stages\.train\.timeout\) and was stopped by the kubernetes executor/,
      /--job-timeout/,
      /output:\nepoch 3$/,
    ],
  ],
  'outputs-mismatch': [
    { reason: 'outputs-mismatch', instance: 'probe', missing: ['eigen'], unexpected: ['junk'] },
    [/did not write declared output\(s\) eigen and wrote undeclared output\(s\) junk/],
  ],
  'result-invalid': [
    { reason: 'result-invalid', instance: 'probe', message: '/k must be integer' },
    [/probe wrote an invalid result: \/k must be integer/],
  ],
  'digest-mismatch': [
    { reason: 'digest-mismatch', instance: 'train', path: 'checkpoints/a', expected: digest('a'), actual: digest('b') },
    [/checkpoints\/a has digest aaaaaaaaaaaa\.\.\. expected, bbbbbbbbbbbb\.\.\. found/],
  ],
  'store-error': [{ reason: 'store-error', message: 'disk full' }, [/^artifact store error: disk full$/]],
  'io-error': [
    {
      reason: 'io-error',
      op: 'write',
      path: '/p/pipeline.lock',
      code: 'ENOSPC',
      subject: 'the lock file',
      stack: 'Error: x\n    at y (z.ts:1:2)',
    },
    [
      /^cannot write the lock file \/p\/pipeline\.lock: no space left on the device \(ENOSPC\)\. Free space on that file system, then run again\.$/,
    ],
  ],
  busy: [
    {
      reason: 'busy',
      instance: 'train',
      message:
        'train is already being run by process 7 on h (it owns /p/.cusp/resume/ab); wait for that run to finish, or stop it and run again',
    },
    [/^train is already being run by process 7 on h .*run again\.$/],
  ],
  unexpected: [{ reason: 'unexpected', message: 'x is not a function', stack: 'at y' }, [/internal error .*: x is not a function$/]],
}

t.test('every variant formats with its specifics', async (t) => {
  for (const [reason, [failure, patterns]] of Object.entries(samples)) {
    const text = formatFailure(failure as Failure)
    if ('location' in failure) t.ok(text.startsWith('pipeline.yaml:12:7: stages.train.params.eta: '), `${reason} is located: ${text}`)
    for (const re of patterns) t.match(text, re, reason)
    t.notMatch(text, /\[object Object\]|undefined/, reason)
  }
})

t.test('a document-level location omits the empty path', async (t) => {
  const f: Failure = {
    reason: 'schema-violation',
    location: { file: 'pipeline.yaml', line: 1, column: 1, path: '(document)' },
    message: 'must be a mapping (got 3).',
  }
  t.equal(formatFailure(f), 'pipeline.yaml:1:1: must be a mapping (got 3).')
})

t.test('stage-failed by signal and with empty stderr', async (t) => {
  const text = formatFailure({ reason: 'stage-failed', instance: 'x', exitCode: null, signal: 'SIGKILL', stderrTail: '' })
  t.equal(text, 'stage instance x was killed by SIGKILL. It wrote nothing to stderr.')
})

t.test('formatFailures joins in order; an unknown reason is a bug, not a message', async (t) => {
  const a = samples.usage[0]
  const b = samples['store-error'][0]
  t.equal(formatFailures([a, b]), `${formatFailure(a)}\n${formatFailure(b)}`)
  t.throws(() => formatFailure({ reason: 'no-such-reason' } as unknown as Failure), /unreachable/)
})
