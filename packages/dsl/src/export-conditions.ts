/**
 * The conditions Node matches a package's `exports` and `imports` with in this process, so that
 * a task's code key follows the file Node loads, and `cairn` compiles a flow with the files Node
 * would import: the user's own (`--conditions=development`, `--conditions development`,
 * `-C development`, on the command line or in NODE_OPTIONS; `tsx --conditions=development
 * flow.ts` hands them to Node the same way), `node`, `node-addons` (unless `--no-addons`),
 * `import` from an ES module or `require` from a CommonJS one, `module-sync` when this Node
 * can require() an ES module (`process.features.require_module`: Node 20.19+ and 22.12+ unless
 * `--no-experimental-require-module`; then it matches from both), and `default`. Without the
 * user's, a workspace package exporting `{ "development": "./src/index.ts", "default":
 * "./dist/index.js" }` and run with `--conditions=development` would key its tasks by `dist/`,
 * and an edit of `src/`, which is what runs, would hit the old entry.
 *
 * The options themselves are read in @cairn/core (node-conditions.ts), which the worker reads too.
 */
import { NODE_CONDITIONS } from "@cairn/core";
import type { ModuleFormat } from "./module-format.ts";

export { CHILD_CONDITION_ARGS, NODE_CONDITIONS, conditionOptions, type ConditionOptions } from "@cairn/core";

// The order decides nothing: Node takes the first key of an `exports` object that is one of them.
const IMPORT_CONDITIONS: readonly string[] = [...NODE_CONDITIONS, "import", "default"];
const REQUIRE_CONDITIONS: readonly string[] = [...NODE_CONDITIONS, "require", "default"];

/** The conditions Node resolves an import with from a module of `format` in this process (see the module's header). */
export function exportConditions(format: ModuleFormat): readonly string[] {
  return format === "cjs" ? REQUIRE_CONDITIONS : IMPORT_CONDITIONS;
}
