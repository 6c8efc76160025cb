/** The artifact stores: the interface lives in `../types.ts`; implementations and helpers here. */
export { LocalStore } from './local-store.ts'
export { openStore } from './open-store.ts'
export { checkRunRecord, StoreError } from './run-record-check.ts'
export { encodeListing, isSafeRelativePath, normaliseMode, parseListing, type DirEntry } from './dir-listing.ts'
