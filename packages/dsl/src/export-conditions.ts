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
 * Read once, as the module loads: Node reads its options as it starts, and a flow that later
 * sets NODE_OPTIONS for its child processes changes nothing in this one.
 */
import type { ModuleFormat } from "./module-format.ts";

/** Conditions from the options Node started with: the user's, and whether `node-addons` matches. */
export interface ConditionOptions {
  user: string[];
  addons: boolean;
}

/**
 * The conditions the options `execArgv` and `nodeOptions` (NODE_OPTIONS) give, as Node reads
 * them: both count, NODE_OPTIONS first; the last of `--addons` and `--no-addons` wins.
 */
export function conditionOptions(execArgv: readonly string[], nodeOptions: string | undefined): ConditionOptions {
  const args = [...nodeOptionsArgs(nodeOptions ?? ""), ...execArgv];
  const user: string[] = [];
  let addons = true;
  args.forEach((arg, i) => {
    const value = arg === "--conditions" || arg === "-C" ? args[i + 1] : arg.startsWith("--conditions=") ? arg.slice("--conditions=".length) : undefined;
    if (value !== undefined && !user.includes(value)) user.push(value);
    if (arg === "--no-addons" || arg === "--addons") addons = arg === "--addons";
  });
  return { user, addons };
}

/** The words of NODE_OPTIONS as Node splits it: at white space, but not inside double quotes, where a backslash keeps the next character. */
function nodeOptionsArgs(text: string): string[] {
  return (text.match(/(?:[^\s"]|"(?:\\.|[^"\\])*")+/g) ?? []).map((arg) => arg.replace(/"((?:\\.|[^"\\])*)"/g, (_, inner: string) => inner.replace(/\\(.)/g, "$1")));
}

const STARTED_WITH = conditionOptions(process.execArgv, process.env.NODE_OPTIONS);
const ADDONS = STARTED_WITH.addons ? ["node-addons"] : [];
const MODULE_SYNC = process.features.require_module === true ? ["module-sync"] : [];

/**
 * The conditions Node matches in this process besides `import`, `require` and `default`, which
 * esbuild adds itself by the kind of import: what the CLI compiles a flow with.
 * @internal
 */
export const NODE_CONDITIONS: readonly string[] = [...STARTED_WITH.user, "node", ...ADDONS, ...MODULE_SYNC];

/**
 * The options that give a child Node process (a script task's `.ts`/`.js` file) the conditions
 * this one resolves with: its key follows the files this process resolves, so the child must load
 * those. Conditions in NODE_OPTIONS reach a child by its environment, but those on this
 * process's command line (`node -C development cairn run`) do not, nor NODE_OPTIONS' when the
 * task's own env replaces it: without these, the child loaded `dist/` while its key followed `src/`.
 * A kind that runs a module by Node and keys it by `moduleDependencies` passes them too.
 */
export const CHILD_CONDITION_ARGS: readonly string[] = [...STARTED_WITH.user.map((c) => `--conditions=${c}`), ...(STARTED_WITH.addons ? [] : ["--no-addons"])];

// In Node's order, though the order decides nothing: Node takes the first key of an `exports` object that is one of them.
const IMPORT_CONDITIONS: readonly string[] = [...STARTED_WITH.user, "node", ...ADDONS, "import", ...MODULE_SYNC, "default"];
const REQUIRE_CONDITIONS: readonly string[] = [...STARTED_WITH.user, "node", ...ADDONS, "require", ...MODULE_SYNC, "default"];

/** The conditions Node resolves an import with from a module of `format` in this process (see the module's header). */
export function exportConditions(format: ModuleFormat): readonly string[] {
  return format === "cjs" ? REQUIRE_CONDITIONS : IMPORT_CONDITIONS;
}
