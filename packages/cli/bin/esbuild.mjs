// @ts-check
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** @type {typeof import("esbuild") | undefined} */
let esbuildModule;

/** `code` of the error loadEsbuild throws when tsx is not installed (load-flow.ts says it as the flow file's FlowFileError). */
export const TSX_MISSING = "CAIRN_TSX_MISSING";

/**
 * esbuild, the very copy tsx (a peer dependency of @cairn/dsl) uses: what Cairn compiles with it
 * reads as it does through tsx. Loaded on first use. Shared by the bundle's build
 * (bundle.mjs), the flow compiler and the code-dependency analysis. Without tsx (a peer
 * dependency npm leaves out with --legacy-peer-deps), the error says so and what to install.
 */
export function loadEsbuild() {
  if (esbuildModule) return esbuildModule;
  const require = createRequire(import.meta.url);
  let tsx;
  try {
    tsx = require.resolve("tsx/package.json");
  } catch (error) {
    throw Object.assign(
      new Error(
        `cairn compiles TypeScript flow files with the esbuild of tsx, a peer dependency of cairn-dag, and tsx is not installed (Node did not find it from ${dirname(fileURLToPath(import.meta.url))}). ` +
          "Install it in the project: npm install --save-dev tsx",
        { cause: error },
      ),
      { code: TSX_MISSING },
    );
  }
  return (esbuildModule = /** @type {typeof import("esbuild")} */ (createRequire(tsx)("esbuild")));
}
