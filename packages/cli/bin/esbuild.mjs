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
/**
 * The command that installs tsx, in the package manager that started this process (pnpm's
 * `pnpm add -D tsx`: npm's crashes on a pnpm project's `pnpm.overrides`), else npm's. The same
 * lines as @cairn/core's devInstallCommand, which this launcher cannot import.
 * @param {NodeJS.ProcessEnv} [env]
 */
export function installTsxCommand(env = process.env) {
  const agent = env.npm_config_user_agent ?? "";
  if (agent.startsWith("pnpm")) return "pnpm add -D tsx";
  if (agent.startsWith("yarn")) return "yarn add -D tsx";
  return "npm install --save-dev tsx";
}

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
          `Install it in the project: ${installTsxCommand()}`,
        { cause: error },
      ),
      { code: TSX_MISSING },
    );
  }
  return (esbuildModule = /** @type {typeof import("esbuild")} */ (createRequire(tsx)("esbuild")));
}
