/**
 * The one place text is made safe to print or store. Three rules, applied by the reporter,
 * the failure printer, the lock and run records, the stage environment and the exports:
 *
 * - Credentials in URLs (`https://user:pass@host/...`) become `https://***@host/...`.
 * - Values known to be secret (params marked `"x-cusp-secret": true` in a params schema, and
 *   the values of secret-looking environment variables) are replaced by `***` wherever they
 *   occur in a text.
 * - Terminal control characters (ESC sequences, every other C0 control but tab and newline, DEL
 *   and the C1 controls U+0080-U+009F, e.g. U+009B, a CSI introducer on many terminals) are
 *   removed before a stage's output or a record's, lock's or store's field reaches a terminal
 *   (`stripControl`; `terminalJson` for JSON output), and over-long lines are clipped, so a
 *   hostile input cannot rewrite the screen or flood it. Every printer of such fields uses these.
 */

/** What replaces a secret. */
export const REDACTED = '***'

/** `scheme://user[:pass]@` in any text: the userinfo part of a URL. */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]+@/gi

/** ANSI escape sequences (CSI, OSC, two-byte ESC forms). */
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b(?:\[[0-?]*[ -/]*[@-~]|\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[@-Z\\-_])/g
/** Every control character but \t and \n: C0, DEL, C1. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g
/** The same with \t and \n: for one-line output. */
// eslint-disable-next-line no-control-regex
const CONTROL_ONE_LINE = /[\u0000-\u001f\u007f-\u009f]/g
/** What JSON.stringify leaves raw of them: DEL and C1 (it escapes C0 itself). */
const JSON_RAW_CONTROL = /[\u007f-\u009f]/g

/** Environment variables whose values are secret by their name. */
const SECRET_ENV = /(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|_KEY_ID$|^AWS_SESSION|HMAC|SIGNING_KEY|RECORD_KEY|API_KEY)/i

/** Whether `text` holds a URL with credentials (`scheme://user[:pass]@`). */
export function hasUrlCredentials(text: string): boolean {
  URL_USERINFO.lastIndex = 0
  const found = URL_USERINFO.test(text)
  URL_USERINFO.lastIndex = 0
  return found
}

/** `text` with URL credentials replaced by `***`. */
export function redactUrls(text: string): string {
  return text.replace(URL_USERINFO, `$1${REDACTED}@`)
}

/** `text` with the credentials of every URL dropped (`https://user:pass@host/` becomes `https://host/`), for a value that must still work as a URL. */
export function stripUrlCredentials(text: string): string {
  return text.replace(URL_USERINFO, '$1')
}

/**
 * Values withheld from every text this process redacts: secret params (secret-params.ts), added
 * when a pipeline is analysed. Longest first, so a secret that contains another is replaced whole.
 */
const withheld = new Set<string>()

/** Withhold these values (of 4 or more characters) from every later `redact`/`printable` of this process. */
export function withhold(values: Iterable<string>): void {
  for (const v of values) if (v.length >= 4) withheld.add(v)
}

/**
 * `text` with URL credentials replaced, then every occurrence of each secret (of 4 or more
 * characters) in `secrets` and in the withheld values.
 */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = redactUrls(text)
  const all = withheld.size === 0 ? secrets : [...secrets, ...withheld].sort((a, b) => b.length - a.length)
  for (const s of all) if (s.length >= 4) out = out.split(s).join(REDACTED)
  return out
}

/** How `stripControl` treats what it removes. */
export interface StripOptions {
  /** Replace each control character by this (e.g. `?`, so the reader sees something was there) instead of removing escape sequences whole. */
  mark?: string
  /** Treat tab and newline as controls too (a field printed inside one line). */
  oneLine?: boolean
}

/**
 * `text` without terminal control characters: C0 (tab and newline kept unless `oneLine`), DEL and
 * C1 (U+0080-U+009F). By default ESC sequences go whole; with `mark` each control character is
 * replaced by it. The one definition every printer of untrusted text uses.
 */
export function stripControl(text: string, opts: StripOptions = {}): string {
  const controls = opts.oneLine === true ? CONTROL_ONE_LINE : CONTROL
  if (opts.mark !== undefined) return text.replace(controls, opts.mark)
  return text.replace(ANSI, '').replace(controls, '')
}

/**
 * `JSON.stringify(value)` safe for a terminal: JSON.stringify escapes C0 controls but leaves DEL
 * and C1 raw, so those are written as `\u00XX` escapes too. The text parses to the same value.
 */
export function terminalJson(value: unknown, space?: number): string {
  return JSON.stringify(value, null, space).replace(JSON_RAW_CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** At most `max` characters of `text`, saying how much was cut. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length - max} more characters)`
}

/** What may be printed of a line that came from outside (a stage, a record, a file): redacted, no controls, clipped. */
export function printable(text: string, secrets: readonly string[] = [], max = 4000): string {
  return clip(stripControl(redact(text, secrets)), max)
}

/** The values of secret-looking variables in `env` (by name), for `redact`. */
export function envSecrets(env: Record<string, string | undefined>): string[] {
  return Object.entries(env)
    .filter(([k, v]) => SECRET_ENV.test(k) && typeof v === 'string' && v.length >= 4)
    .map(([, v]) => v as string)
}

/** True for a variable whose value must never reach a stage or be printed (by its name). */
export function isSecretEnvName(name: string): boolean {
  return SECRET_ENV.test(name)
}

/**
 * A deep copy of JSON data with URL credentials redacted in every string and every value at a
 * path in `secretPaths` (dotted, e.g. `auth.token`) replaced by `***`: the form of params that is
 * printed, stored in a lock or run record, or exported.
 */
export function redactJson<T>(value: T, secretPaths: ReadonlySet<string> = new Set(), path = ''): T {
  if (path !== '' && secretPaths.has(path)) return REDACTED as T
  if (typeof value === 'string') return redactUrls(value) as T
  if (Array.isArray(value)) return value.map((v, i) => redactJson(v, secretPaths, path === '' ? String(i) : `${path}.${i}`)) as T
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) {
      const child = redactJson(v, secretPaths, path === '' ? k : `${path}.${k}`)
      if (k === '__proto__') Object.defineProperty(out, k, { value: child, enumerable: true, writable: true, configurable: true })
      else out[k] = child
    }
    return out as T
  }
  return value
}
