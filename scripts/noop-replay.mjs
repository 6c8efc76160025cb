/**
 * The no-op replay of `npm run pipeline` (scripts/pipeline.mjs), in plain node so that a no-op
 * rerun need not load the CLI bundle at all (docs/architecture.md, "No-op replay").
 *
 * Recording (`startRecording`, on the full path): while the CLI runs, every path it reads,
 * stats, lists or resolves through node:fs (sync, callback and promise forms) is stat'ed before
 * the call (dev, ino, mode, size, mtime and ctime in ns, or "missing"), and everything it writes
 * to stdout and stderr is kept in order. Any write to the file system, any other fd write, any
 * `import()` of a package, any `process.kill` (a liveness check), any read under /proc, /sys or
 * /dev, and any fs call whose path cannot be told disqualifies the run. The CLI itself says when
 * a run is one it may replay (`offer`, called through a global by src/harness/noop-replay.ts:
 * a plain local `run`, every instance fresh, nothing published anew, a local store). At exit,
 * with code 0 and nothing disqualifying, every stat is taken again and must be unchanged and
 * older than the run's start by a margin (a change in the same clock tick could leave a stamp
 * as it was), and the record is written atomically to `<project>/.cusp/replay/<hash of argv, cwd>.json`: the
 * argv, the cwd and its real path, node version, arch, exec argv, uid/gid, host name, CPU count,
 * TTY-ness of stdout/stderr, the sha256 of the environment (all of it but IGNORED_ENV), the
 * stats of every path read plus the CLI bundle, its manifest and every input the manifest
 * stamps (sources, these scripts, bundled packages), and the output chunks.
 *
 * Replaying (`tryReplay`, first thing on every start): the record next to the project the argv
 * names (`--file`, else the cwd) is used only when every key above is equal and every stat is
 * identical; then its chunks are written to the same fds and the process exits with the recorded
 * code, without loading anything else. Anything else, any error, stdout on a terminal, or
 * `CUSP_NO_REPLAY=1` runs the CLI as before. `CUSP_DEBUG_REPLAY=1` prints one line on stderr
 * saying what happened (it is left out of the environment's digest and is never recorded).
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism, hostname } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { isatty } from 'node:tty'

/** Bump when the record's layout or what it keys on changes. */
const FORMAT = 1
/**
 * Variables no run reads, which differ between shells and `npm run` for the same command.
 * Everything else in the environment is in the digest, so a changed CUSP_*, AWS_*, NO_COLOR,
 * TERM, PATH or any other variable is a miss.
 */
const IGNORED_ENV = new Set(['_', 'OLDPWD', 'SHLVL', 'CUSP_DEBUG_REPLAY'])
/** Stamps at least this much older than the run's start cannot hide a later change (ns). */
const MARGIN_NS = 100_000_000n
/** Where a file system keeps whole-millisecond stamps (coarse granularity), a wider margin (ns). */
const COARSE_MARGIN_NS = 2_000_000_000n
const RECORDS = join('.cusp', 'replay')
/** Records kept per project (one per argv and cwd); the oldest beyond this are removed. */
const KEEP = 8

/** The record's path for this argv and cwd under `project`. */
function recordPath(project, argv) {
  const name = createHash('sha256')
    .update(JSON.stringify([argv, process.cwd()]))
    .digest('hex')
    .slice(0, 16)
  return join(project, RECORDS, `${name}.json`)
}

const debugOn = () => process.env.CUSP_DEBUG_REPLAY === '1'

/** `dev:ino:mode:size:mtimeNs:ctimeNs` of `path` (following links), `missing`, or undefined on any other error. */
function stamp(path, statSync = fs.statSync) {
  try {
    const st = statSync(path, { bigint: true, throwIfNoEntry: false })
    return st === undefined ? 'missing' : `${st.dev}:${st.ino}:${st.mode}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  } catch (e) {
    return e?.code === 'ENOTDIR' ? 'missing' : undefined
  }
}

function envDigest(env) {
  const h = createHash('sha256')
  for (const k of Object.keys(env).sort()) if (!IGNORED_ENV.has(k)) h.update(`${k}=${env[k]}\0`)
  return h.digest('hex')
}

/** Everything besides the files that a run's output may depend on. */
function keyOf(argv) {
  return {
    format: FORMAT,
    argv,
    cwd: process.cwd(),
    cwdReal: fs.realpathSync.native(process.cwd()),
    node: process.version,
    arch: process.arch,
    platform: process.platform,
    execPath: process.execPath,
    execArgv: process.execArgv,
    uid: process.getuid?.() ?? null,
    gid: process.getgid?.() ?? null,
    host: hostname(),
    cpus: availableParallelism(),
    tty: [isatty(1), isatty(2)],
    env: envDigest(process.env),
  }
}

/** The project directory the argv names: `--file F` / `--file=F` -> dirname(F), else the cwd. */
function projectOf(argv) {
  let file
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--file') file = argv[i + 1]
    else if (argv[i]?.startsWith('--file=')) file = argv[i].slice('--file='.length)
  }
  return file === undefined ? process.cwd() : dirname(resolve(process.cwd(), file))
}

const debug = (line) => {
  if (debugOn()) process.stderr.write(`cusp: replay: ${line}\n`)
}

/**
 * Replays the recorded output of this exact no-op, if there is one and nothing it depended on
 * changed, and returns true: the process exits with the recorded code once the output is
 * flushed. Returns false when the CLI must run.
 */
export function tryReplay(argv = process.argv.slice(2)) {
  if (process.env.CUSP_NO_REPLAY === '1') return false
  let rec
  try {
    rec = JSON.parse(fs.readFileSync(recordPath(projectOf(argv), argv), 'utf8'))
  } catch {
    debug('miss (no record)')
    return false
  }
  const why = mismatch(rec, argv)
  if (why !== undefined) {
    debug(`miss (${why})`)
    return false
  }
  debug('hit')
  // As the CLI does: a reader that went away (`| head`) ends the run quietly.
  process.stdout.on('error', (e) => e.code === 'EPIPE' && process.exit(0))
  // Written through the streams, in the recorded order, then exit once both have drained.
  for (const [fd, b64] of rec.out) (fd === 2 ? process.stderr : process.stdout).write(Buffer.from(b64, 'base64'))
  let waiting = 2
  const done = () => --waiting === 0 && process.exit(rec.code)
  process.stdout.write('', done)
  process.stderr.write('', done)
  return true
}

/** Why `rec` is not a replay of this process, or undefined when it is. */
function mismatch(rec, argv) {
  try {
    if (rec?.key?.format !== FORMAT || !Array.isArray(rec.deps) || !Array.isArray(rec.out)) return 'record format'
    if (rec.key.tty?.[0] !== false) return 'tty'
    const key = keyOf(argv)
    for (const k of Object.keys(key)) {
      if (JSON.stringify(key[k]) !== JSON.stringify(rec.key[k])) return `${k} differs`
    }
    for (const [path, st] of rec.deps) if (stamp(path) !== st) return `changed: ${path}`
    return undefined
  } catch (e) {
    return `error: ${e instanceof Error ? e.message : String(e)}`
  }
}

// ---------------------------------------------------------------------------------------------
// Recording

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
  'mkdtemp',
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

/**
 * Starts recording this process as a candidate no-op. `bundle` is the CLI bundle about to run
 * and `manifest` its manifest (scripts/cli-bundle.mjs): both, and every input the manifest
 * stamps, become dependencies. The record is written (or not) at exit; `disqualify(why)` on
 * what it returns rules this run out.
 */
export function startRecording({ bundle, manifest, scripts }) {
  const none = { disqualify: () => undefined }
  if (process.env.CUSP_NO_REPLAY === '1' || isatty(1)) return none
  const startNs = BigInt(Date.now()) * 1_000_000n
  const argv = process.argv.slice(2)
  const original = new Map()
  const deps = new Map()
  const out = []
  let disqualified
  let offered
  const ignored = new Set([bundle, `${bundle}.v8cache`, `${bundle}.map`, manifest])
  const statSync = fs.statSync
  const disqualify = (why) => (disqualified ??= why)
  const isMissing = (p) => fs.lstatSync(p, { throwIfNoEntry: false }) === undefined
  const isDir = (p) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true

  const note = (p) => {
    if (disqualified !== undefined) return
    let path
    if (typeof p === 'string') path = p
    else if (p instanceof URL && p.protocol === 'file:') path = decodeURIComponent(p.pathname)
    else if (Buffer.isBuffer(p)) path = p.toString()
    else if (typeof p === 'number')
      return // an fd: what was opened was noted at open
    else return disqualify('fs call on an unknown path')
    const abs = resolve(path)
    if (ignored.has(abs)) return
    if (/^\/(proc|sys|dev)(\/|$)/.test(abs)) return disqualify(`reads ${abs}`)
    depend(abs)
  }
  const depend = (abs) => {
    if (deps.has(abs)) return
    const st = stamp(abs, statSync)
    if (st === undefined) return disqualify(`cannot stat ${abs}`)
    deps.set(abs, st)
  }
  const wrap = (obj, name, check) => {
    const fn = obj[name]
    if (typeof fn !== 'function') return
    original.set(`${obj === fs.promises ? 'p' : 'f'}:${name}`, [obj, name, fn])
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
          if (base === 'open' && opensForWrite(args[1])) disqualify(`opens ${String(args[0])} for writing`)
          else if (base === 'createReadStream' && args[1]?.fs !== undefined) disqualify('read stream with its own fs')
          note(args[0])
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
          else disqualify(`${name} ${String(args[0])}`)
        })
      }
    }
  }
  const kill = process.kill
  process.kill = function (...args) {
    disqualify('checks a process')
    return kill.apply(this, args)
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
      return write.call(this, chunk, encoding, cb)
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
    process.kill = kill
    if (offered === undefined) return debug('not recorded (not a plain all-fresh run)')
    if (code !== 0) return debug(`not recorded (exit ${code})`)
    if (disqualified !== undefined) return debug(`not recorded (${disqualified})`)
    try {
      if (resolve(offered) !== resolve(projectOf(argv))) return debug('not recorded (project is not where --file points)')
      for (const path of Object.keys(createRequire(import.meta.url).cache)) if (isAbsolute(path)) note(path)
      if (disqualified !== undefined) return debug(`not recorded (${disqualified})`)
      for (const [path, st] of deps) {
        if (stamp(path, statSync) !== st) return debug(`not recorded (changed during the run: ${path})`)
        if (st === 'missing') continue
        const ctime = BigInt(st.split(':')[5])
        const mtime = BigInt(st.split(':')[4])
        const margin = ctime % 1_000_000n === 0n ? COARSE_MARGIN_NS : MARGIN_NS
        if (ctime > startNs - margin || mtime > startNs - margin) return debug(`not recorded (changed just before the run: ${path})`)
      }
      const record = {
        key: keyOf(argv),
        code,
        deps: [...deps],
        out: out.map(([fd, b]) => [fd, b.toString('base64')]),
      }
      const file = recordPath(offered, argv)
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
