/** Types for scripts/cli-bundle.mjs (plain JavaScript: it runs before anything is built). */

/** The repository root (parent of scripts/). */
export const REPO: string
/** Where the bundle and its manifest live for a repository root (default: this one). */
export function bundlePaths(root?: string): { dir: string; bundle: string; manifest: string }
/** Whether the bundle under `root` must be rebuilt (missing, or any input's mtime/size changed). */
export function isStale(root?: string): boolean
/** Bundle `entry` (default src/main.ts) into `<root>/.cusp/build/cli.mjs`; resolves to its path. */
export function build(root?: string, entry?: string): Promise<string>
/** The bundle's path, rebuilt first when stale. */
export function ensureBundle(root?: string): Promise<string>
