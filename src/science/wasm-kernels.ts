/**
 * Kernel replacements for the tfjs wasm backend (owned by the wasm-kernels work; see DESIGN.md
 * "Engine facts"). Placeholder until that lands: installs nothing.
 */

/** Register cusp's wasm kernel replacements. Safe to call more than once. */
export function installWasmKernels(): void {}
