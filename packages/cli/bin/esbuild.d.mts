/** See esbuild.mjs. */
export const TSX_MISSING: "CAIRN_TSX_MISSING";
export function loadEsbuild(): typeof import("esbuild");
export function installTsxCommand(env?: NodeJS.ProcessEnv): string;
