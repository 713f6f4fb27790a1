import { createRequire } from "node:module";
import type * as Esbuild from "esbuild";

let esbuildModule: typeof Esbuild | undefined;

/**
 * esbuild, the very copy tsx (a peer dependency) uses: what the code analysis reads with it
 * reads as it does through tsx. Loaded on first use. (The CLI's launcher has the same three
 * lines in plain JavaScript, packages/cli/bin/esbuild.mjs: it runs before any TypeScript can.)
 */
export function loadEsbuild(): typeof Esbuild {
  const tsx = createRequire(import.meta.url).resolve("tsx/package.json");
  return (esbuildModule ??= createRequire(tsx)("esbuild") as typeof Esbuild);
}
