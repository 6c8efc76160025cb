/** The artifact stores: the interface lives in `../types.ts`; implementations and helpers here. */
export { LocalStore } from './local-store.ts'
export { declaredOutputs, openStore } from './open-store.ts'
export { checkRunRecord, RECORD_LIMITS, StoreError } from './run-record-check.ts'
export { admitRecord, signingFromEnv, type RecordTrust } from './record-trust.ts'
export { fsck, fsckCommand, type FsckLayerReport } from './fsck.ts'
export { encodeListing, isSafeRelativePath, normaliseMode, parseListing, type DirEntry } from './dir-listing.ts'
