/**
 * Child process for the kill -9 test of the local store (not a test file itself): publishes
 * the file argv[3] into the store at argv[2], then a run record pointing at it, printing
 * `ready` before it starts writing and `done` when both are published.
 */
import { LocalStore } from '../../src/harness/store/local-store.ts'
import { makeRecord } from './store-contract.ts'

const [root, src, eta] = process.argv.slice(2)
if (root === undefined || src === undefined) throw new Error('usage: store-publish-child.ts <root> <src> <eta>')
const store = new LocalStore(root)
process.stdout.write('ready\n')
const put = await store.putFile(src)
await store.putRun(makeRecord('big', { out: { ...put, kind: 'file' } }, Number(eta ?? 0)))
process.stdout.write('done\n')
