/** Types for scripts/cli-bundle.mjs (plain JavaScript: it runs before anything is built). */

/** The repository root (parent of scripts/). */
export const REPO: string
/** Where the bundle and its manifest live for a repository root (default: this one). */
export function bundlePaths(root?: string): { dir: string; bundle: string; manifest: string; codeCache: string }
/** Whether the bundle under `root` must be rebuilt (missing, or any input's mtime/size changed). */
export function isStale(root?: string): boolean
/** Bundle `entry` (default src/main.ts) into `<root>/.cusp/build/cli.cjs`; resolves to its path. */
export function build(root?: string, entry?: string): Promise<string>
/** The bundle's path, rebuilt first when stale. */
export function ensureBundle(root?: string): Promise<string>
/** The exports of the bundle at `path`, compiled with V8's code cache (`<path>.v8cache`); `codeCache: false` uses require. */
export function loadBundle(path: string, opts?: { codeCache?: boolean }): unknown
