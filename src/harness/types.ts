/**
 * The harness's shared vocabulary: branded digests, the validated pipeline graph, the
 * artifact store interface, the lock, the plan, and errors as values. Every other harness
 * module imports from here; nothing here has effects.
 *
 * Phases are types (after wireit): the planner and executor accept only a `ValidPipeline`,
 * which only the analyzer can produce, so an unvalidated graph cannot run.
 */

// ---------------------------------------------------------------------------------------
// JSON values and results

// (the shared vocabulary lives in src/core/vocabulary.ts; re-exported here for harness modules)
import type { EnvRecord, JsonObject, JsonValue, Result as CoreResult } from '../core/vocabulary.ts'
export type { EnvRecord, JsonObject, JsonPrimitive, JsonValue } from '../core/vocabulary.ts'
export { fail, ok, unreachable } from '../core/vocabulary.ts'

/** Errors are values. `ok: false` carries every failure found, not only the first. */
export type Result<T, E = Failure> = CoreResult<T, E>

// ---------------------------------------------------------------------------------------
// Digests (branded so a file digest cannot be passed where a fingerprint is expected)

/** Lowercase hex sha256 of an object's bytes (a file, or a directory's canonical listing). */
export type ObjectDigest = string & { readonly __brand: 'object-digest' }
/** Lowercase hex sha256 of a stage instance's canonical fingerprint record. */
export type Fingerprint = string & { readonly __brand: 'fingerprint' }

// ---------------------------------------------------------------------------------------
// Failures: one discriminated union, formatted in exactly one place (failures.ts)

/** Where in a source file something is; line and column are 1-based. */
export interface SourceLocation {
  file: string
  line: number
  column: number
  /** JSON-pointer-ish path of the offending node, e.g. `stages.train.params.eta`. */
  path: string
}

export type Failure =
  | { reason: 'yaml-syntax'; location: SourceLocation; message: string }
  | { reason: 'schema-violation'; location: SourceLocation; message: string }
  | { reason: 'params-invalid'; location: SourceLocation; stage: string; message: string }
  | { reason: 'unknown-stage-impl'; location: SourceLocation; impl: string }
  /** A stage's params schema (`file`, relative to the root) is missing, not JSON, or not a valid JSON Schema. */
  | { reason: 'bad-stage-schema'; location: SourceLocation; file: string; message: string }
  | { reason: 'dangling-dep'; location: SourceLocation; from: string; to: string; message: string }
  | { reason: 'duplicate-instance-id'; location: SourceLocation; id: string }
  | { reason: 'cycle'; location: SourceLocation; trail: string[] }
  | { reason: 'bad-matrix'; location: SourceLocation; message: string }
  | { reason: 'unsafe-path'; location: SourceLocation; value: string }
  | { reason: 'unknown-profile'; location: SourceLocation; profile: string; known: string[] }
  | { reason: 'bad-override'; override: string; message: string }
  | { reason: 'unknown-target'; target: string; known: string[] }
  | { reason: 'usage'; message: string }
  | { reason: 'lock-invalid'; file: string; message: string }
  | { reason: 'stage-failed'; instance: string; exitCode: number | null; signal: string | null; stderrTail: string }
  /** The instance ran past its time limit (`limit`, and where that limit was set) and was stopped by `executor`. */
  | { reason: 'timed-out'; instance: string; limit: JobTimeout; executor: string; stderrTail: string }
  | { reason: 'outputs-mismatch'; instance: string; missing: string[]; unexpected: string[] }
  | { reason: 'result-invalid'; instance: string; message: string }
  | { reason: 'digest-mismatch'; instance: string; path: string; expected: ObjectDigest; actual: ObjectDigest }
  | { reason: 'store-error'; message: string }
  /**
   * An expected file-system error (errno `code`: EACCES, ENOSPC, ENOTDIR, ...) while doing `op` on
   * `path` (`subject` says what the path is, e.g. "the lock file"); `stack` only for CUSP_DEBUG=1.
   */
  | { reason: 'io-error'; op: string; path: string; code: string; subject?: string; stack?: string }
  /** Another live run owns this instance's resume directory (resume-dir.ts). */
  | { reason: 'busy'; instance: string; message: string }
  | { reason: 'unexpected'; message: string; stack?: string }

// ---------------------------------------------------------------------------------------
// The validated pipeline

export interface Resources {
  cpu: number
  /** e.g. "4Gi" */
  memory: string
  gpu: number
}

/** A stage instance's time limit: seconds, and where it was set (`stages.<s>.timeout`, a profile's, or `--job-timeout`). */
export interface JobTimeout {
  seconds: number
  from: string
}

/** One declared output of a stage: a file or a directory, by a safe relative name. */
export interface OutputDecl {
  name: string
  kind: 'file' | 'dir'
}

/**
 * One input edge of an instance: output `output` of instance `instance`, materialised for
 * the consumer at `inputs/<as>/<instance>/<output>` (as = the dep's local name).
 */
export interface InstanceDep {
  as: string
  instance: string
  output: string
}

export interface StageInstance {
  /** Stable readable id: `stage` alone, or `stage@k1=v1,k2=v2` with matrix keys in declared order. */
  id: string
  /** The stage's name in pipeline.yaml. */
  stage: string
  /** Directory of the implementation, relative to the project root: `stages/<impl>`. */
  impl: string
  /** This instance's matrix coordinates (empty for a plain stage). */
  matrix: JsonObject
  /** Params after profile, matrix and --set overrides, validated, defaults filled. */
  params: JsonObject
  deps: InstanceDep[]
  outputs: OutputDecl[]
  resources: Resources
  /** `timeout:` in pipeline.yaml (stage, or its profile entry): the most one run may take. Not part of the fingerprint. */
  timeout?: JobTimeout
  /**
   * `provenance: true` in pipeline.yaml: the stage sees each input's producer fingerprint, so
   * those fingerprints are part of its own (see FingerprintBreakdown.upstream).
   */
  provenance?: true
  /**
   * Dotted paths of the params marked `x-cusp-secret` in the params schema: the stage gets their
   * values, the fingerprint breakdown only their sealed digests (secret-params.ts).
   */
  secrets?: string[]
}

/** One validated `publish:` entry (published-decl.ts): output `output` of `instance` appears at `target`. */
export interface PublishEntry {
  /** Relative to the project root, posix separators, no trailing slash. */
  target: string
  instance: string
  output: string
  kind: 'file' | 'dir'
}

export interface ValidPipeline {
  readonly __valid: true
  /** Absolute path of the pipeline.yaml it came from. */
  file: string
  /** Project root (directory containing pipeline.yaml). */
  root: string
  profile: string | undefined
  /**
   * The file's `store:` as one spec (a directory, file://... or s3://...?options, the object
   * form's S3 options folded into the URL's query), used when neither --store nor CUSP_STORE
   * names one.
   */
  store?: string
  /** The file's `estimate:` (schema-checked): the cost estimate's device class and prices per device-hour. */
  estimate?: { device?: string; prices?: Record<string, number> }
  /** Every instance, keyed by id. */
  instances: ReadonlyMap<string, StageInstance>
  /** Instance ids in a deterministic topological order (deps first, then by id). */
  order: readonly string[]
  /** The file's `publish:` block, validated (published-decl.ts); absent when there is none. */
  publish?: readonly PublishEntry[]
}

// ---------------------------------------------------------------------------------------
// Fingerprints

/** Every field that went into a fingerprint, so "why did this rerun" is a diff of two of these. */
export interface FingerprintBreakdown {
  stage: string
  /** sha256 of the stage's code closure and resolved runtime dependency versions. */
  code: string
  params: JsonObject
  /** `<as>/<instance>/<output>` -> digest, sorted by key. */
  inputs: Record<string, ObjectDigest>
  /** upstream instance id -> its fingerprint, sorted by key. */
  upstream: Record<string, Fingerprint>
  env: EnvRecord
}

export interface FingerprintResult {
  fingerprint: Fingerprint
  breakdown: FingerprintBreakdown
}

// ---------------------------------------------------------------------------------------
// The store

/** One stored output of a run: a file, or a directory stored as a listing object. */
export interface StoredOutput {
  digest: ObjectDigest
  size: number
  kind: 'file' | 'dir'
}

/** What a completed run of one fingerprint produced. Written last: its presence means complete. */
export interface RunRecord {
  schema: 1
  fingerprint: Fingerprint
  instance: string
  stage: string
  breakdown: FingerprintBreakdown
  /** output name -> what was stored */
  outputs: Record<string, StoredOutput>
  durationMs: number
  /** ISO 8601 */
  finishedAt: string
}

/**
 * Content-addressed, immutable storage of objects (by sha256) plus one run record per
 * fingerprint. A miss is `undefined`, never an exception. Writes become visible only when
 * complete; every read verifies the digest.
 */
export interface ArtifactStore {
  readonly description: string
  hasObject(digest: ObjectDigest): Promise<boolean>
  /**
   * Optional: whether a directory listing AND every file object it names are present (existence
   * only, no hashing). The planner uses it for `dir` outputs when available, so deleting one file
   * of a directory output reruns its producer; without it only the listing object is checked.
   */
  hasDir?(digest: ObjectDigest): Promise<boolean>
  /** Optional: re-hash one object; false when missing or corrupt (a corrupt one is discarded). */
  verifyObject?(digest: ObjectDigest): Promise<boolean>
  /** Store a file's bytes; returns its digest and size. Idempotent. */
  putFile(path: string): Promise<{ digest: ObjectDigest; size: number }>
  /** Store a directory tree (files only) as objects plus a listing object; returns the listing's digest. */
  putDir(path: string): Promise<{ digest: ObjectDigest; size: number }>
  /**
   * Write the object to `dest` (file) or recreate the tree (dir), verifying every digest.
   * Returns false on a miss or digest mismatch (a corrupt object is discarded).
   */
  getFile(digest: ObjectDigest, dest: string): Promise<boolean>
  getDir(digest: ObjectDigest, dest: string): Promise<boolean>
  /** Remove an object (used for tests and gc). Missing is fine. */
  deleteObject(digest: ObjectDigest): Promise<void>
  getRun(fingerprint: Fingerprint): Promise<RunRecord | undefined>
  /** Publish a run record; its objects must already be stored. */
  putRun(record: RunRecord): Promise<void>
  /**
   * Optional: mark the run record of `fingerprint` as just used (gc's age signal), before a
   * restore relies on it, so gc spares it and its objects like a new one. False when it is gone.
   */
  touchRun?(fingerprint: Fingerprint): Promise<boolean>
  /**
   * From now on, a write whose object is already stored re-hashes the stored copy and replaces it
   * when it does not hash to its name (`--force`, `--verify`: the runs that repair). A local store
   * always does; an S3 store otherwise trusts an object of the right size (a HEAD, no download).
   */
  reverifyExisting?(): void
  listRuns(): Promise<RunRecord[]>
}

// ---------------------------------------------------------------------------------------
// The lock

export interface LockEntry {
  stage: string
  fingerprint: Fingerprint
  breakdown: FingerprintBreakdown
  outputs: Record<string, StoredOutput>
}

export interface LockFile {
  schema: 1
  /** instance id -> entry, serialised with sorted keys */
  instances: Record<string, LockEntry>
}

// ---------------------------------------------------------------------------------------
// The plan

export type RerunReason =
  | { kind: 'no-lock-entry' }
  | { kind: 'param-changed'; key: string; old: JsonValue | undefined; new: JsonValue | undefined }
  | { kind: 'input-changed'; input: string; old: ObjectDigest | undefined; new: ObjectDigest | undefined }
  | { kind: 'code-changed'; old: string; new: string }
  | { kind: 'env-changed'; old: EnvRecord; new: EnvRecord }
  | { kind: 'output-missing'; output: string }
  | { kind: 'forced' }
  | { kind: 'upstream-changed'; upstream: string }

export type PlanAction = 'fresh' | 'restore' | 'run'

export interface PlanStep {
  instance: string
  action: PlanAction
  reasons: RerunReason[]
}
