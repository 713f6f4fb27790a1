/**
 * `--root DIR` checked where it enters, before a flow is loaded or a store opened: the engine's
 * check of its state folder (`rootProblem`), said in the engine's words (`rootRefusal`) with the
 * flag's name (a UsageError naming `--root` and the path, exit 2). `cairn run` checks it as run()
 * does (`checkRunRoot`), and gives run() the root so checked (`ROOT_CHECKED`), which does not probe
 * it again: one probe, one wording.
 */
import { rmdir, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { checkRunRoot, OptionError, rootProblem, rootRefusal, type RootUse, type RunOptions } from "@cairn/core";
import { UsageError } from "./usage-error.ts";

/**
 * Checks the folder `--root` names, or the default `.cairn` when `given` is undefined (see
 * `rootProblem`), and resolves to its absolute path: a `.cairn` this user may only read is refused
 * up front as `--root .cairn` is, not part-way through a command that writes there.
 */
export async function checkRoot(given: string | undefined, use: RootUse): Promise<string> {
  const root = resolve(given ?? ".cairn");
  const why = await rootProblem(root, use);
  if (why === undefined) return root;
  throw new UsageError(rootRefusal({ given, root, use, why }, "--root"));
}

/**
 * `--root DIR` of a command that only reads what runs left there (`runs`, `show`, `report`,
 * `cache ls`, `explain`, `runs prune`), checked as {@link checkRoot} does, and refused when it does
 * not exist: a typo (`--root ./.cairnn`) listed "No flow runs yet" or an empty cache, exit 0, as an
 * empty history does. `reads` says what the command would have read there ("runs", "cache
 * entries"). The default `.cairn` (`given` undefined) may be missing: a project with no run yet.
 */
export async function checkRootToRead(given: string | undefined, reads: string): Promise<string> {
  const root = await checkRoot(given, "read");
  if (given === undefined) return root;
  const exists = await stat(root).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== "ENOENT",
  );
  if (exists) return root;
  throw new UsageError(
    `Expected --root to name the folder a run used (the one that holds its cache/ and experiments/), got ${JSON.stringify(given)}: ${root} does not exist, so there are no ${reads} there. ` +
      "cd to the project folder and leave --root out for its .cairn, or pass --root the folder a run was given (cairn run --root DIR).",
  );
}

/** A root `cairn run` checked: its absolute path, and how to take back the folders the check made. */
export interface CheckedRunRoot {
  root: string;
  /**
   * Removes the folders the check made, deepest first, each only while it is empty: a run that
   * does not start (its flow file does not load) leaves nothing behind, as before the check came
   * first. A folder that was there before, or that something wrote into since, stays.
   */
  unmake(): Promise<void>;
}

/**
 * `cairn run --root DIR` checked as run() checks its root, before the flow is loaded: a bad root
 * was said only once the flow had loaded (compiled, imported, its module's code run), after a
 * broken flow file. Resolves to the absolute root, for run()'s `ROOT_CHECKED`.
 */
export async function checkRunRootFlag(given: string, options: Pick<RunOptions, "tracker" | "cache">): Promise<CheckedRunRoot> {
  const missing = await missingFolders(resolve(given));
  const root = await checkRunRoot({ root: given, ...options }).catch((error: unknown) => {
    throw rootFlagError(error, given);
  });
  return {
    root,
    unmake: async () => {
      for (const folder of missing) if (!(await rmdir(folder).then(() => true, () => false))) return;
    },
  };
}

/** The folders of `root` and its parents that do not exist yet, deepest first: what a check that makes it makes. */
async function missingFolders(root: string): Promise<string[]> {
  const missing: string[] = [];
  for (let dir = root; !(await stat(dir).then(() => true, () => false)); dir = dirname(dir)) {
    missing.push(dir);
    if (dirname(dir) === dir) break;
  }
  return missing;
}

/**
 * What run() threw, with its refusal of the root `--root` gave it said in the flag's words (as
 * `checkRoot` says it for the other commands); anything else as it was.
 */
export function rootFlagError(thrown: unknown, given: string): unknown {
  if (!OptionError.is(thrown) || thrown.option !== "root" || thrown.reason === undefined) return thrown;
  // run() makes its root (also one only a task writes to, when it records nothing): worded as `make`, as run() words it.
  return new UsageError(rootRefusal({ given, root: resolve(given), use: "make", why: thrown.reason }, "--root"), { cause: thrown });
}
