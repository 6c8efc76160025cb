/**
 * The one rule for names that become path components (output names, dep names, stage
 * implementations, matrix values inside instance ids): letters, digits, `.`, `_`, `-`,
 * starting with a letter or digit and never containing `..`. Such a name cannot escape the
 * directory it is joined onto, cannot be absolute, and means the same on every OS.
 */

const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** True when `name` can be joined onto a directory without escaping it. */
export function isSafeName(name: string): boolean {
  return SAFE.test(name) && !name.includes('..') && name.length <= 128
}

/** Why `name` is not safe, in words a user can act on; undefined when it is safe. */
export function unsafeNameReason(name: string): string | undefined {
  if (isSafeName(name)) return undefined
  if (name === '') return 'is empty'
  if (name.startsWith('/') || /^[A-Za-z]:[\\/]/.test(name)) return 'is an absolute path'
  if (name.split(/[\\/]/).includes('..')) return "climbs out of its directory with '..'"
  if (/[\\/]/.test(name)) return "contains a path separator ('/' or '\\')"
  if (name.includes('..')) return "contains '..'"
  if (name.length > 128) return 'is longer than 128 characters'
  return 'must match [A-Za-z0-9][A-Za-z0-9._-]*'
}
