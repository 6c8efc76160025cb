// The environment a stage process gets (spawn-stage.ts stageEnv): the allow-list, never a secret,
// not even the run-record signing keys that only the harness needs to check what it restores.
import t from 'tap'
import { stageEnv } from '../../src/harness/spawn-stage.ts'

t.test('stage processes get the allow-list, never the store or record secrets', async (t) => {
  const env = stageEnv({
    PATH: '/usr/bin',
    HOME: '/root',
    OMP_NUM_THREADS: '2',
    CUSP_THREADS: '1',
    AWS_ACCESS_KEY_ID: 'AKIA-sentinel',
    AWS_SECRET_ACCESS_KEY: 'sentinel-secret',
    CUSP_RECORD_KEY: 'sentinel-hmac-key-0123456789',
    CUSP_RECORD_SIGNING_KEY: 'sentinel-pem',
    UNRELATED: 'x',
    CUSP_STAGE_ENV: 'UNRELATED,AWS_SECRET_ACCESS_KEY',
  })
  t.same(Object.keys(env).sort(), ['CUSP_STAGE_ENV', 'CUSP_THREADS', 'HOME', 'OMP_NUM_THREADS', 'PATH', 'UNRELATED'])
  t.notOk(
    Object.values(env).some((v) => v.includes('sentinel')),
    'no sentinel secret reaches the stage, even when listed',
  )
})
