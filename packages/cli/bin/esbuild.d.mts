/** See esbuild.mjs. */
export function loadEsbuild(): typeof import("esbuild");
