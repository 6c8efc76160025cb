/**
 * The async side of the planner's store index: fetches exactly the run records and object
 * existence the pure planner asks for (planner.ts `PlanOutput.missing`) and keeps the answers,
 * so planning is a few rounds of cheap lookups (one stat per object, one small read per run
 * record) and never hashes or materialises anything. A run record is fetched together with
 * its objects, since it is useless without them. Directory outputs are checked with the
 * store's optional `hasDir` (listing plus every file, each with its listed size) when it has
 * one. A file output whose size is known (from the record or lock entry beside it) counts as
 * present only when the store's `statObjects` gives that size, so a truncated or grown object
 * is found before a fresh or restore decision relies on it.
 */
import type { StoreIndex } from './planner.ts'
import type { ArtifactStore, Fingerprint, ObjectDigest, RunRecord, StoredOutput } from './types.ts'

/** A store that can say how large its objects are (one stat or HEAD each, no hashing). */
export interface SizedStore {
  statObjects(digests: readonly ObjectDigest[]): Promise<(number | undefined)[]>
}

/** The store's `statObjects`, when it has one (every store in store/ does). */
export function sizesOf(store: ArtifactStore): SizedStore['statObjects'] | undefined {
  const s = store as ArtifactStore & Partial<SizedStore>
  return typeof s.statObjects === 'function' ? s.statObjects.bind(store) : undefined
}

const BATCH = 32

export class StoreLookups {
  readonly runs = new Map<Fingerprint, RunRecord | null>()
  readonly objects = new Map<ObjectDigest, boolean>()
  /** Digests known to be directory listings (from the kind recorded beside them). */
  private readonly dirs = new Set<ObjectDigest>()
  /** The size each file object must have (from the kind and size recorded beside it). */
  private readonly sizes = new Map<ObjectDigest, number>()

  constructor(private readonly store: ArtifactStore) {}

  /** Records which of these outputs are directories (so they get the deep check). */
  note(outputs: Iterable<StoredOutput>): void {
    for (const o of outputs) {
      if (o.kind === 'dir') this.dirs.add(o.digest)
      else this.sizes.set(o.digest, o.size)
    }
  }

  /** The snapshot the planner reads; `complete` makes unlooked-up keys count as absent. */
  index(complete = false): StoreIndex {
    return complete ? { runs: this.runs, objects: this.objects, complete } : { runs: this.runs, objects: this.objects }
  }

  /** Looks up the given run records (with their objects) and objects not yet known, BATCH at a time. */
  async fetch(fps: readonly Fingerprint[], digests: readonly ObjectDigest[]): Promise<void> {
    const tasks: (() => Promise<void>)[] = [
      ...[...new Set(fps)]
        .filter((fp) => !this.runs.has(fp))
        .map((fp) => async () => {
          const rec = (await this.store.getRun(fp)) ?? null
          this.runs.set(fp, rec)
          if (rec === null) return
          const outs = Object.values(rec.outputs)
          this.note(outs)
          await Promise.all(outs.map((o) => this.has(o.digest)))
        }),
      ...[...new Set(digests)].map((d) => async () => void (await this.has(d))),
    ]
    for (let i = 0; i < tasks.length; i += BATCH) await Promise.all(tasks.slice(i, i + BATCH).map((t) => t()))
  }

  private async has(d: ObjectDigest): Promise<boolean> {
    const known = this.objects.get(d)
    if (known !== undefined) return known
    const stat = sizesOf(this.store)
    const want = this.sizes.get(d)
    let present: boolean
    if (this.dirs.has(d) && this.store.hasDir !== undefined) present = await this.store.hasDir(d)
    else if (want !== undefined && stat !== undefined) present = (await stat([d]))[0] === want
    else present = await this.store.hasObject(d)
    this.objects.set(d, present)
    return present
  }
}
