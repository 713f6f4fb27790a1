/**
 * The export conditions this process was started with (`--conditions`, `-C`, `--no-addons`, on
 * Node's command line or in NODE_OPTIONS), and the conditions Node matches from them: what
 * @cairn/dsl resolves a task's imports with (export-conditions.ts), what a script task's child
 * Node is given, and what a queued job carries, so that a worker started with others says so
 * instead of blaming its checkout. Here, not in @cairn/dsl, because the worker reads them too.
 *
 * Read once, as the module loads: Node reads its options as it starts, and a flow that later
 * sets NODE_OPTIONS for its child processes changes nothing in this one.
 */

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
 * esbuild adds itself by the kind of import: what the CLI compiles a flow with, and what a
 * queued job carries for its worker to compare with its own.
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

