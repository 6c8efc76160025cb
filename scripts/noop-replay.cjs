/**
 * The no-op replay of `npm run pipeline` (scripts/pipeline.cjs, then scripts/pipeline.mjs), in
 * plain node so that a no-op rerun need not load the CLI bundle at all (docs/architecture.md,
 * "No-op replay"). CommonJS, and the entry that runs it too, because a replay is mostly node's own
 * start-up: an ES module entry costs ~7 ms of CPU more (the ESM loader, and `import` of node:fs
 * reads every export, loading node:stream for the lazy `ReadStream`).
 *
 * Recording (`startRecording` in scripts/noop-record.mjs, loaded on the full path only): while
 * the CLI runs, every path it reads, stats, lists or resolves through node:fs (sync, callback and
 * promise forms) is probed just before the call (`probe`: stat, lstat or real path, or
 * "missing"), and what it writes to stdout and stderr is kept in order. Writes to the file system
 * (outside a directory the run made with mkdtemp and removed), fd writes, `import()` of a
 * package, `process.kill` (a liveness check), starting a process or a worker, reading stdin (or
 * any use of process.stdin), /proc, /sys or /dev, recursive listings and paths that cannot be
 * told disqualify the run. The
 * CLI itself says when a run is one it may replay (`offer`, called through a global by
 * src/harness/noop-replay.ts: a plain local `run`, every instance fresh, nothing published anew,
 * a local store). At exit, with code 0 and nothing disqualifying, every probe is taken again and
 * must be unchanged and older than the run's start by a margin (a change in the same clock tick
 * could leave a stamp as it was), and the record is written atomically to
 * `<project>/.cusp/replay/<hash of argv, cwd and tty>.json`: the key (`keyOf`: argv, cwd and its
 * real path, node version, arch, exec path and argv, uid/gid, host name, CPU count, the terminals
 * (`tty`, below), a hash of the environment but IGNORED_ENV), the probes of every path read plus
 * the CLI bundle, its manifest and every input the manifest stamps (sources, these scripts,
 * bundled packages), and the output chunks. The key's `tty` says for stdin whether it is a
 * terminal and for stdout and stderr either `false` or the terminal's [columns, rows]: on a
 * terminal the CLI prints another view (one line per stage, colour unless NO_COLOR or TERM=dumb,
 * lines clipped to the width), so a record made on a terminal stands only for a terminal of the
 * same size (TERM, NO_COLOR, FORCE_COLOR, COLUMNS and the locale are in the environment's hash).
 * The record's name also hashes `tty`, so piped output and each terminal size keep their own.
 *
 * Replaying (`tryReplay`, first thing on every start): the record next to the project the argv
 * names (`--file`, else the cwd) is used only when every key above is equal and every stat is
 * identical; then its chunks are written to the same fds and the process exits with the recorded
 * code, without loading anything else. Anything else, any error, or `CUSP_NO_REPLAY=1` runs the
 * CLI as before. `CUSP_DEBUG_REPLAY=1` prints one line on stderr saying what happened (it is left out of the environment's digest and is never recorded).
 */
'use strict'
const fs = require('node:fs')
const { availableParallelism, hostname } = require('node:os')
const { dirname, join, resolve } = require('node:path')

/** Bump when the record's layout or what it keys on changes. */
const FORMAT = 4
/**
 * Variables no run reads, which differ between shells and `npm run` for the same command.
 * Everything else in the environment is in the digest, so a changed CUSP_*, AWS_*, NO_COLOR,
 * TERM, PATH or any other variable is a miss.
 */
const IGNORED_ENV = new Set(['_', 'OLDPWD', 'SHLVL', 'CUSP_DEBUG_REPLAY'])
const RECORDS = join('.cusp', 'replay')

/** The record's path for this argv, cwd and terminal shape (`keyOf(argv).tty`) under `project`. */
function recordPath(project, argv, tty) {
  return join(project, RECORDS, `${hash106(JSON.stringify([argv, process.cwd(), tty]))}.json`)
}

/**
 * A 106-bit hash of `text` (cyrb53, public domain, with two seeds), in hex. Not a cryptographic
 * hash: it only has to tell one environment or argv from another, and loading node:crypto would
 * cost a replay more CPU (~4 ms) than the whole check.
 */
function hash106(text) {
  const one = (seed) => {
    let h1 = 0xdeadbeef ^ seed
    let h2 = 0x41c6ce57 ^ seed
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      h1 = Math.imul(h1 ^ c, 2654435761)
      h2 = Math.imul(h2 ^ c, 1597334677)
    }
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
    return (4294967296 * (2097151 & h2) + (h1 >>> 0)).toString(16).padStart(14, '0')
  }
  return one(1) + one(2)
}

/** Set once a process has tried to replay (a global: both entries load this module). */
const TRIED = Symbol.for('cusp.noop-replay.tried')

const debugOn = () => process.env.CUSP_DEBUG_REPLAY === '1'

/** `dev:ino:mode:size:mtimeNs:ctimeNs` of `path` (by `statSync` or `lstatSync`), `missing`, or undefined on any other error. */
function stamp(path, statSync) {
  try {
    const st = statSync(path, { bigint: true, throwIfNoEntry: false })
    return st === undefined ? 'missing' : `${st.dev}:${st.ino}:${st.mode}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  } catch (e) {
    return e?.code === 'ENOTDIR' ? 'missing' : undefined
  }
}

/** `writable` when `path` is a directory this process may create entries in, else `no`. */
function writableDir(path, f) {
  try {
    if (!f.statSync(path).isDirectory()) return 'no'
    f.accessSync(path, fs.constants.W_OK | fs.constants.X_OK)
    return 'writable'
  } catch {
    return 'no'
  }
}

/**
 * What dependency `dep` is now: its first character says how it was read, the rest is the
 * absolute path. `s`: the stamp of what the path leads to (stat); `l`: of the path itself
 * (lstat, readlink); `r`: its real path (realpath), or `missing`. Undefined on an error that
 * does not say "absent"; `w`: whether it is a writable directory (where a temp directory was
 * made). `f`: the fs functions to use (the recorder passes the unwrapped ones).
 */
function probe(dep, f = fs) {
  const path = dep.slice(1)
  if (dep[0] === 'l') return stamp(path, f.lstatSync)
  if (dep[0] === 'w') return writableDir(path, f)
  if (dep[0] !== 'r') return stamp(path, f.statSync)
  try {
    return f.realpathSync.native(path)
  } catch (e) {
    return e?.code === 'ENOENT' || e?.code === 'ENOTDIR' ? 'missing' : undefined
  }
}

/** The environment's hash: every variable but IGNORED_ENV (the values are not kept). */
function envDigest(env) {
  let text = ''
  for (const k of Object.keys(env).sort()) if (!IGNORED_ENV.has(k)) text += `${k}=${env[k]}\0`
  return hash106(text)
}

/**
 * Whether `fd` is a terminal. node:tty (with node:net and node:stream, ~3 ms of CPU) is loaded
 * only for a character device that is not /dev/null: a pipe, a file or `< /dev/null` is no terminal.
 */
function isTTY(fd) {
  try {
    const st = fs.fstatSync(fd)
    if (!st.isCharacterDevice() || st.rdev === fs.statSync('/dev/null', { throwIfNoEntry: false })?.rdev) return false
  } catch {
    return false
  }
  return require('node:tty').isatty(fd)
}

/**
 * What the CLI's output can depend on about `fd`: `false` for anything but a terminal; for a
 * terminal, `true` (stdin) or its [columns, rows] as the CLI's own stream sees them (stdout,
 * stderr: the same tty.WriteStream the full path writes through).
 */
function terminal(fd) {
  if (!isTTY(fd)) return false
  if (fd === 0) return true
  const stream = fd === 1 ? process.stdout : process.stderr
  return [stream.columns ?? null, stream.rows ?? null]
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
    tty: [terminal(0), terminal(1), terminal(2)],
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
function tryReplay(argv = process.argv.slice(2)) {
  // scripts/pipeline.cjs tries first, then loads scripts/pipeline.mjs, which is also an entry.
  if (process.env.CUSP_NO_REPLAY === '1' || globalThis[TRIED] === true) return false
  globalThis[TRIED] = true
  let key
  let rec
  try {
    key = keyOf(argv)
    rec = JSON.parse(fs.readFileSync(recordPath(projectOf(argv), argv, key.tty), 'utf8'))
  } catch {
    debug('miss (no record)')
    return false
  }
  const why = mismatch(rec, key)
  if (why !== undefined) {
    debug(`miss (${why})`)
    return false
  }
  debug('hit')
  replay(rec.out, rec.code)
  return true
}

/**
 * Writes the chunks to their fds in order, then exits with `code`. Plain blocking writes; where
 * an fd is non-blocking and full (EAGAIN), the rest goes through the streams, which wait for it.
 * A reader that went away (EPIPE: `| head`) ends the run quietly, as the CLI does.
 */
function replay(out, code) {
  for (let i = 0; i < out.length; i++) {
    const [fd, b64] = out[i]
    const buf = Buffer.from(b64, 'base64')
    let at = 0
    try {
      while (at < buf.length) at += fs.writeSync(fd, buf, at)
    } catch (e) {
      if (e?.code === 'EPIPE') process.exit(0)
      if (e?.code !== 'EAGAIN') throw e
      process.stdout.on('error', (err) => err.code === 'EPIPE' && process.exit(0))
      const stream = (n) => (n === 2 ? process.stderr : process.stdout)
      stream(fd).write(buf.subarray(at))
      for (const [f, b] of out.slice(i + 1)) stream(f).write(Buffer.from(b, 'base64'))
      let waiting = 2
      const done = () => --waiting === 0 && process.exit(code)
      process.stdout.write('', done)
      process.stderr.write('', done)
      return
    }
  }
  process.exit(code)
}

/** Why `rec` is not a replay of this process, or undefined when it is. */
function mismatch(rec, key) {
  try {
    if (rec?.key?.format !== FORMAT || !Array.isArray(rec.deps) || !Array.isArray(rec.out)) return 'record format'
    for (const k of Object.keys(key)) {
      if (JSON.stringify(key[k]) !== JSON.stringify(rec.key[k])) return `${k} differs`
    }
    for (const [dep, now] of rec.deps) if (probe(dep) !== now) return `changed: ${dep.slice(1)}`
    return undefined
  } catch (e) {
    return `error: ${e instanceof Error ? e.message : String(e)}`
  }
}

module.exports = { FORMAT, debug, hash106, isTTY, keyOf, probe, projectOf, recordPath, terminal, tryReplay }
