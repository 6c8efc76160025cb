/**
 * Output relayed from remote runners is redacted (executors/relay-redact.ts): a container's
 * progress and log lines and stderr tail (Docker, through a fake docker CLI), and a failed pod's
 * log and status message (Kubernetes, against the fake API server). Sentinel secrets (a secret
 * environment value, URL credentials, a withheld secret param) and terminal escapes never reach
 * an event or a failure; the rest of the text does.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KubeConfig } from '@kubernetes/client-node'
import t, { type Test } from 'tap'
import { DockerRunner } from '../../src/harness/executors/docker.ts'
import { KubernetesRunner } from '../../src/harness/executors/kubernetes.ts'
import { withhold } from '../../src/harness/redact.ts'
import type { Fingerprint, StageInstance } from '../../src/harness/types.ts'
import { startFakeKube } from './fixtures/fake-kube.ts'

const FP = 'ab'.repeat(32) as Fingerprint
const inst = {
  id: 'prepare',
  stage: 'prepare',
  impl: 'stages/prepare',
  matrix: {},
  params: {},
  deps: [],
  outputs: [],
  resources: { cpu: 1, memory: '1Gi', gpu: 0 },
} as StageInstance
const ENV_SECRET = 'SENTINEL-ENV-SECRET-4242'
const URL_PASS = 'SENTINEL-URL-PASS'
const PARAM_SECRET = 'SENTINEL-PARAM-SECRET-77'
withhold([PARAM_SECRET])
/** A hostile line: every kind of secret plus a screen-clearing escape and a bell. */
const HOSTILE = `key ${ENV_SECRET} url https://bob:${URL_PASS}@example.com/x param ${PARAM_SECRET} \u001b[2J\u001b]0;title\u0007 end`

function clean(t: Test, text: string, what: string): void {
  t.notMatch(text, /SENTINEL/, `${what}: no sentinel secret`)
  // eslint-disable-next-line no-control-regex
  t.notMatch(text, /[\u001b\u0007]/, `${what}: no terminal control characters`)
}

t.test('docker: relayed progress, log and stderr lines are redacted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cusp-relay-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fake = join(dir, 'docker')
  const progress = JSON.stringify({ type: 'progress', instance: 'prepare', fraction: 0.5, message: HOSTILE })
  writeFileSync(fake, `#!/bin/sh\necho '${progress}'\necho '${HOSTILE}'\necho 'stderr ${HOSTILE}' >&2\nexit 3\n`)
  chmodSync(fake, 0o755)
  const events: unknown[] = []
  const runner = new DockerRunner({
    image: 'cusp:cpu',
    spec: { store: 's3://b/p' },
    pipelineName: 'p',
    env: { PATH: process.env.PATH, AWS_SECRET_ACCESS_KEY: ENV_SECRET },
    docker: fake,
    attempt: () => '',
  })
  const r = await runner.run({ instance: inst, fingerprint: FP, emit: (e) => events.push(e) })
  t.equal(events.length, 2, 'a progress event and a log event')
  clean(t, JSON.stringify(events), 'events')
  t.match(JSON.stringify(events), /key \*\*\* url https:\/\/\*\*\*@example\.com\/x param \*\*\* .*end/, 'the rest of the line is kept')
  t.notOk(r.ok)
  if (!r.ok) {
    t.match(r.failure, { reason: 'stage-failed', exitCode: 3, stderrTail: /stderr key \*\*\*/ })
    clean(t, JSON.stringify(r.failure), 'the failure')
  }
})

t.test("kubernetes: a failed pod's log and message are redacted", async (t) => {
  const fake = await startFakeKube(() => Promise.resolve({ exitCode: 2, log: `line one\n${HOSTILE}\n`, reason: `Error ${PARAM_SECRET}` }))
  t.teardown(() => fake.close())
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: fake.url, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'c', cluster: 'fake', user: 'u', namespace: 'ml' }],
    currentContext: 'c',
  })
  const events: unknown[] = []
  const runner = new KubernetesRunner({
    image: 'cusp:cpu',
    spec: { store: 's3://b/p' },
    pipelineName: 'toy',
    namespace: 'ml',
    kubeConfig: kc,
    podPollMs: 30,
    attempt: () => '',
    env: { AWS_SECRET_ACCESS_KEY: ENV_SECRET },
  })
  const r = await runner.run({ instance: inst, fingerprint: FP, emit: (e) => events.push(e) })
  t.notOk(r.ok)
  if (!r.ok) {
    t.match(r.failure, { reason: 'stage-failed', stderrTail: /line one[\s\S]*key \*\*\* url https:\/\/\*\*\*@example\.com/ })
    clean(t, JSON.stringify(r.failure), 'the failure')
  }
  clean(t, JSON.stringify(events), 'events')
})
