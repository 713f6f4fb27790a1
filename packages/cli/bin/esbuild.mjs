// @ts-check
import { createRequire } from "node:module";

/** @type {typeof import("esbuild") | undefined} */
let esbuildModule;

/**
 * esbuild, the very copy tsx (a peer dependency of @cairn/dsl) uses: what Cairn compiles with it
 * reads as it does through tsx. Loaded on first use. Shared by the bundle's build
 * (bundle.mjs), the flow compiler and the code-dependency analysis.
 */
export function loadEsbuild() {
  const tsx = createRequire(import.meta.url).resolve("tsx/package.json");
  return (esbuildModule ??= /** @type {typeof import("esbuild")} */ (createRequire(tsx)("esbuild")));
}
