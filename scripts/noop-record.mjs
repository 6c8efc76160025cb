/**
 * Recording a no-op for scripts/noop-replay.cjs (which says what is recorded and how it is
 * replayed): loaded only on the full path, so a replay never pays for it.
 */
import childProcess from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import workerThreads from 'node:worker_threads'
import { dirname, isAbsolute, join, resolve, sep } from 'node:path'
import replay from './noop-replay.cjs'

const { debug, keyOf, probe, projectOf, recordPath } = replay

/** Stamps at least this much older than the run's start cannot hide a later change (ns). */
const MARGIN_NS = 100_000_000n
/** Where a file system keeps whole-millisecond stamps (coarse granularity), a wider margin (ns). */
const COARSE_MARGIN_NS = 2_000_000_000n
/** Records kept per project (one per argv and cwd); the oldest beyond this are removed. */
const KEEP = 8

/** fs functions whose first argument is a path that is read (stat'ed before the call). */
const READS = [
  'access',
  'exists',
  'lstat',
  'open',
  'opendir',
  'readdir',
  'readFile',
  'readlink',
  'realpath',
  'stat',
  'statfs',
  'createReadStream',
  'openAsBlob',
  'watch',
  'watchFile',
]
/** fs functions that change the file system or write through an fd: any call disqualifies. */
const WRITES = [
  'appendFile',
  'chmod',
  'chown',
  'copyFile',
  'cp',
  'createWriteStream',
  'fchmod',
  'fchown',
  'fdatasync',
  'fsync',
  'ftruncate',
  'futimes',
  'lchmod',
  'lchown',
  'link',
  'lutimes',
  'mkdir',
  'rename',
  'rm',
  'rmdir',
  'symlink',
  'truncate',
  'unlink',
  'utimes',
  'write',
  'writeFile',
  'writev',
]

/** Writes naming a source and a destination; of those, the copies read their source. */
const TWO_PATHS = new Set(['rename', 'link', 'symlink', 'copyFile', 'cp'])
const COPIES = new Set(['copyFile', 'cp'])

/**
 * Starts recording this process as a candidate no-op. `bundle` is the CLI bundle about to run
 * and `manifest` its manifest (scripts/cli-bundle.mjs): both, and every input the manifest
 * stamps, become dependencies. The record is written (or not) at exit; `disqualify(why)` on
 * what it returns rules this run out.
 */
export function startRecording({ bundle, manifest, scripts }) {
  const none = { disqualify: () => undefined }
  if (process.env.CUSP_NO_REPLAY === '1') return none
  const startNs = BigInt(Date.now()) * 1_000_000n
  const argv = process.argv.slice(2)
  // What the replay will compare: the process as it started (the CLI may set variables later).
  const key = keyOf(argv)
  const original = new Map()
  const deps = new Map()
  const out = []
  let disqualified
  let offered
  let inStreamWrite = false
  const ignored = new Set([bundle, `${bundle}.v8cache`, `${bundle}.map`, manifest])
  const statSync = fs.statSync
  const disqualify = (why) => (disqualified ??= why)
  const lstatSync = fs.lstatSync
  const isMissing = (p) => lstatSync(p, { throwIfNoEntry: false }) === undefined
  const isDir = (p) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true

  const unwrapped = { statSync, lstatSync, realpathSync: fs.realpathSync, accessSync: fs.accessSync }
  /** Directories this run made with mkdtemp: private to it, so neither inputs nor outputs (they must be gone at exit). */
  const scratch = new Set()
  const absolute = (p) => {
    if (typeof p === 'string') return resolve(p)
    if (p instanceof URL && p.protocol === 'file:') return resolve(decodeURIComponent(p.pathname))
    if (Buffer.isBuffer(p)) return resolve(p.toString())
    return undefined
  }
  const inScratch = (p) => {
    const abs = absolute(p)
    if (abs === undefined) return false
    for (const d of scratch) if (abs === d || abs.startsWith(`${d}${sep}`)) return true
    return false
  }
  const note = (p, kind = 's') => {
    if (disqualified !== undefined) return
    if (p === 0) return disqualify('reads stdin')
    if (typeof p === 'number') return // an fd: what was opened was noted at open
    const abs = absolute(p)
    if (abs === undefined) return disqualify('fs call on an unknown path')
    if (ignored.has(abs) || inScratch(abs)) return
    if (/^\/(proc|sys|dev)(\/|$)/.test(abs)) return disqualify(`reads ${abs}`)
    depend(abs, kind)
  }
  const depend = (abs, kind = 's') => {
    const dep = `${kind}${abs}`
    if (deps.has(dep)) return
    const now = probe(dep, unwrapped)
    if (now === undefined) return disqualify(`cannot stat ${abs}`)
    deps.set(dep, now)
  }
  const wrap = (obj, name, check) => {
    const fn = obj[name]
    if (typeof fn !== 'function') return
    original.set(`${obj === fs.promises ? 'p' : obj === fs ? 'f' : 'c'}:${name}`, [obj, name, fn])
    const wrapped = function (...args) {
      check(args)
      return fn.apply(this, args)
    }
    for (const k of Object.keys(fn)) wrapped[k] = fn[k] // realpath.native, promisify.custom
    if (fn.native !== undefined) {
      wrapped.native = function (...args) {
        check(args)
        return fn.native.apply(this, args)
      }
    }
    obj[name] = wrapped
  }
  const opensForWrite = (flags) => (typeof flags === 'string' && /[wa+]/.test(flags)) || (typeof flags === 'number' && (flags & 3) !== 0)
  for (const obj of [fs, fs.promises]) {
    for (const base of READS) {
      for (const name of [base, `${base}Sync`]) {
        wrap(obj, name, (args) => {
          if (base === 'open' && opensForWrite(args[1]) && !inScratch(args[0])) disqualify(`opens ${String(args[0])} for writing`)
          else if (base === 'createReadStream' && args[1]?.fs !== undefined) disqualify('read stream with its own fs')
          // A recursive listing depends on every directory below: not traced, so not replayed.
          else if ((base === 'readdir' || base === 'opendir') && args[1]?.recursive === true)
            disqualify(`lists ${String(args[0])} recursively`)
          note(args[0], base === 'lstat' || base === 'readlink' ? 'l' : base === 'realpath' ? 'r' : 's')
        })
      }
    }
    for (const base of WRITES) {
      for (const name of [base, `${base}Sync`]) {
        wrap(obj, name, (args) => {
          // `mkdir -p` of an existing directory changes nothing: a dependency, not a write.
          if (base === 'mkdir' && args[1]?.recursive === true && typeof args[0] === 'string' && isDir(args[0])) note(args[0])
          // `rm -f` of nothing changes nothing either: it depends on the path staying absent.
          else if (base === 'rm' && args[1]?.force === true && typeof args[0] === 'string' && isMissing(args[0])) note(args[0])
          // A stream on a file or /dev/null writes its chunks with fs.writeSync: already captured.
          else if ((base === 'write' || base === 'writev') && inStreamWrite && (args[0] === 1 || args[0] === 2)) return
          // Inside a scratch directory: the source of a copy is read, the rest is private.
          else if (
            TWO_PATHS.has(base) ? inScratch(args[1]) && (COPIES.has(base) || base === 'symlink' || inScratch(args[0])) : inScratch(args[0])
          ) {
            if (COPIES.has(base)) note(args[0])
          } else disqualify(`${name} ${String(args[0])}`)
        })
      }
    }
    // mkdtemp: a new private directory (its parent must stay a writable directory).
    const mkdtemp = obj.mkdtemp
    original.set(`${obj === fs ? 'f' : 'p'}:mkdtemp`, [obj, 'mkdtemp', mkdtemp])
    const made = (dir) => (scratch.add(resolve(dir)), dir)
    obj.mkdtemp =
      obj === fs
        ? function (...args) {
            disqualify('mkdtemp with a callback')
            return mkdtemp.apply(this, args)
          }
        : function (prefix, ...rest) {
            const parent = dirname(resolve(String(prefix)))
            if (!inScratch(parent)) depend(parent, 'w')
            return mkdtemp.call(this, prefix, ...rest).then(made)
          }
    if (obj === fs) {
      const mkdtempSync = fs.mkdtempSync
      original.set('f:mkdtempSync', [fs, 'mkdtempSync', mkdtempSync])
      fs.mkdtempSync = function (prefix, ...rest) {
        const parent = dirname(resolve(String(prefix)))
        if (!inScratch(parent)) depend(parent, 'w')
        return made(mkdtempSync.call(this, prefix, ...rest))
      }
    }
  }
  // process.stdin (a prompt, a terminal's keys) is not an fs read: touching it at all disqualifies.
  const stdin = Object.getOwnPropertyDescriptor(process, 'stdin')
  if (stdin?.configurable === true && stdin.get !== undefined) {
    Object.defineProperty(process, 'stdin', {
      ...stdin,
      get() {
        disqualify('uses process.stdin')
        return stdin.get.call(process)
      },
    })
  }
  const kill = process.kill
  process.kill = function (...args) {
    disqualify('checks a process')
    return kill.apply(this, args)
  }
  // Relative paths are resolved against the cwd in the key: a run that moves elsewhere is not traced.
  const chdir = process.chdir
  process.chdir = function (...args) {
    disqualify('changes directory')
    return chdir.apply(this, args)
  }
  // What another process or thread reads is not traced: starting one disqualifies the run.
  for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
    wrap(childProcess, name, () => disqualify(`starts a process (${name})`))
  }
  const Worker = workerThreads.Worker
  workerThreads.Worker = class extends Worker {
    constructor(...args) {
      disqualify('starts a worker thread')
      super(...args)
    }
  }
  const host = Symbol.for('cusp.cli-bundle.host')
  globalThis[host] ??= {
    import: (s) => {
      disqualify(`imports ${s}`)
      return import(s)
    },
    resolve: (s) => import.meta.resolve(s),
  }
  for (const [fd, stream] of [
    [1, process.stdout],
    [2, process.stderr],
  ]) {
    const write = stream.write
    stream.write = function (chunk, encoding, cb) {
      if (typeof chunk === 'string') out.push([fd, Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8')])
      else if (chunk instanceof Uint8Array) out.push([fd, Buffer.from(chunk)])
      else disqualify('writes a non-byte chunk')
      inStreamWrite = true
      try {
        return write.call(this, chunk, encoding, cb)
      } finally {
        inStreamWrite = false
      }
    }
  }

  // The CLI (src/harness/noop-replay.ts) says when this run is one a replay may stand for.
  globalThis[Symbol.for('cusp.noop-replay')] = {
    offer: (root) => void (offered = root),
  }

  // The code that runs: the bundle, its manifest, every input it stamps, and these scripts.
  for (const p of [bundle, manifest, ...scripts]) depend(resolve(p))
  try {
    for (const p of Object.keys(JSON.parse(fs.readFileSync(manifest, 'utf8')).inputs ?? {})) depend(resolve(p))
  } catch {
    disqualify('no bundle manifest')
  }

  process.once('exit', (code) => {
    for (const [obj, name, fn] of original.values()) obj[name] = fn
    if (stdin?.configurable === true && stdin.get !== undefined) Object.defineProperty(process, 'stdin', stdin)
    process.kill = kill
    process.chdir = chdir
    workerThreads.Worker = Worker
    if (offered === undefined) return debug('not recorded (not a plain all-fresh run)')
    if (code !== 0) return debug(`not recorded (exit ${code})`)
    if (disqualified !== undefined) return debug(`not recorded (${disqualified})`)
    try {
      if (resolve(offered) !== resolve(projectOf(argv))) return debug('not recorded (project is not where --file points)')
      for (const d of scratch) if (!isMissing(d)) return debug(`not recorded (left ${d} behind)`)
      for (const path of Object.keys(createRequire(import.meta.url).cache)) if (isAbsolute(path)) note(path)
      if (disqualified !== undefined) return debug(`not recorded (${disqualified})`)
      // A terminal resized during the run: which size the output was drawn for is not known.
      if (JSON.stringify(keyOf(argv).tty) !== JSON.stringify(key.tty)) return debug('not recorded (terminal resized during the run)')
      for (const [dep, st] of deps) {
        const path = dep.slice(1)
        if (probe(dep, unwrapped) !== st) return debug(`not recorded (changed during the run: ${path})`)
        if (st === 'missing' || dep[0] === 'r' || dep[0] === 'w') continue
        const ctime = BigInt(st.split(':')[5])
        const mtime = BigInt(st.split(':')[4])
        const margin = ctime % 1_000_000n === 0n ? COARSE_MARGIN_NS : MARGIN_NS
        if (ctime > startNs - margin || mtime > startNs - margin) return debug(`not recorded (changed just before the run: ${path})`)
      }
      const record = {
        key,
        code,
        deps: [...deps],
        out: out.map(([fd, b]) => [fd, b.toString('base64')]),
      }
      const file = recordPath(offered, argv, key.tty)
      fs.mkdirSync(dirname(file), { recursive: true })
      const tmp = `${file}.tmp-${process.pid}`
      fs.writeFileSync(tmp, `${JSON.stringify(record)}\n`)
      fs.renameSync(tmp, file)
      prune(dirname(file))
      debug(`recorded ${deps.size} paths`)
    } catch (e) {
      debug(`not recorded (${e instanceof Error ? e.message : String(e)})`)
    }
  })
  return { disqualify }
}

/** Removes all but the KEEP newest records in `dir` (best effort: a concurrent writer may race). */
function prune(dir) {
  const records = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ f, t: fs.statSync(join(dir, f), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
    .sort((a, b) => b.t - a.t)
  for (const { f } of records.slice(KEEP)) fs.rmSync(join(dir, f), { force: true })
}
