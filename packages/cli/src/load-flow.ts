import { existsSync, readdirSync, readFileSync, realpathSync, type Stats, statSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CairnError, closestName, describeValue } from "@cairn/core";
import { compiledFlowSource, errorSource, type Flow, flowBuilderName, isFlow, moduleFormatOf, shownPath } from "@cairn/dsl";
import { FlowFileError, type FlowImporter } from "./flow-file-error.ts";
import { importFresh } from "./fresh-import.ts";
import { cairnNotInstalled, missingCairnPackage } from "./install-advice.ts";

export { FlowFileError, type FlowImporter } from "./flow-file-error.ts";

/** What Node (with tsx) imports as a module. */
const FLOW_EXTENSIONS = new Set([".ts", ".mts", ".cts", ".tsx", ".js", ".mjs", ".cjs", ".jsx"]);


/** `code` of the error the launcher's compiler throws when tsx is not installed (packages/cli/bin/esbuild.mjs). */
const TSX_MISSING = "CAIRN_TSX_MISSING";

/**
 * Why Node (and tsx) take the TypeScript file at `path` for CommonJS, in words, or undefined
 * when it is an ES module: a .cts file, or a .ts/.tsx file whose nearest package.json does not
 * say "type": "module". The very answer the code fingerprints are made with (moduleFormatOf).
 */
export function commonJsScope(path: string): { why: string } | undefined {
  const ext = extname(path);
  if (ext !== ".cts" && ext !== ".ts" && ext !== ".tsx") return undefined;
  const { format, why } = moduleFormatOf(path);
  return format === "cjs" ? { why } : undefined;
}

/**
 * The default export of a module tsx loaded as CommonJS (a .ts file in a CommonJS package):
 * Node gives `module.exports` as the default, where esbuild's translation of the ES module
 * keeps the file's own default export at `.default` beside `__esModule: true`.
 */
export function unwrapCommonJs(exported: unknown): unknown {
  if (typeof exported !== "object" || exported === null || isFlow(exported)) return exported;
  const exports = exported as { __esModule?: unknown; default?: unknown };
  return exports.__esModule === true ? exports.default : exported;
}

/** The file beside `path` whose name is near enough to its name to be a typo (`flwo.ts` for `flow.ts`), if any. */
function nearbyFlowFile(path: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(dirname(path)).filter((name) => FLOW_EXTENSIONS.has(extname(name)));
  } catch {
    return undefined; // the folder is missing too: no file to suggest
  }
  return closestName(basename(path), names);
}

/**
 * The absolute path of `file`. `resolve()` drops `dir/..` as text, where the OS first follows a
 * symlink `dir`: through one (`lnk/../../proj/flow.ts`) the two can name different files, and the
 * shell finds the OS's. So when the text's file does not exist, the OS's is taken (its folder's
 * real path and its name), if that one does.
 */
function absolutePath(file: string): string {
  const path = resolve(file);
  if (existsSync(path) || !file.split(/[\\/]/).includes("..")) return path;
  try {
    // The native one: realpathSync() itself first drops `dir/..` as text.
    const real = join(realpathSync.native(dirname(file)), basename(file));
    return existsSync(real) ? real : path;
  } catch {
    return path; // its folder is missing as the OS sees it too: the text's path is named as missing
  }
}

/**
 * Imports a module file as a flow file is imported (compiled, or through tsx), with the same
 * words for what goes wrong: a flow file, or a module `--import` names (`noun`, `source`).
 */
export async function importFlowModule(
  file: string,
  from: { module?: Record<string, unknown> | undefined; importFlow?: FlowImporter | undefined; noun?: string; source?: string } = {},
): Promise<{ mod: Record<string, unknown>; path: string }> {
  const noun = from.noun ?? "flow file";
  const Noun = noun[0]!.toUpperCase() + noun.slice(1);
  /** For a module --import or CAIRN_IMPORT names: where it was given. */
  const given = from.source ? ` (given by ${from.source})` : "";
  const preloaded = from.module;
  const path = absolutePath(file);
  let stat: Stats | undefined;
  if (!preloaded) {
    try {
      stat = statSync(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") {
        const meant = nearbyFlowFile(path);
        throw new FlowFileError(`${Noun} ${file}${given} does not exist (looked at ${path}). Check the path${meant ? `: did you mean ${join(dirname(file), meant)}?` : "."}`, path);
      }
      // A folder on its way this user may not enter (EACCES) is no missing file: say what stopped the look.
      const fix = code === "EACCES" || code === "EPERM" ? " A folder on its way cannot be entered by this user: check its permissions (ls -ld each folder)." : "";
      throw new FlowFileError(`Cannot look at ${noun} ${file}${file === path ? "" : ` (${path})`}${given}: ${(error as Error).message}.${fix}`, path);
    }
  }
  // Said before importing: Node's answer to these ("Directory import ... is not supported") reads as the file's own error.
  if (stat?.isDirectory()) {
    throw new FlowFileError(`Expected a ${noun}, got the folder ${file}${given}. Name the ${noun} in it, e.g. ${join(file, from.source ? "index.ts" : "flow.ts")}.`, path);
  }
  if (!preloaded && !FLOW_EXTENSIONS.has(extname(path))) {
    throw new FlowFileError(`Expected a ${noun} ending in ${[...FLOW_EXTENSIONS].join(", ")}, got ${file}${given}.`, path);
  }
  let mod: Record<string, unknown>;
  try {
    mod = preloaded ?? (await (from.importFlow ?? importFresh)(path));
  } catch (error) {
    // Cairn's own errors (a build error such as an OptionError, the compile's FlowFileError) say what they are.
    if (CairnError.is(error)) throw error;
    // The launcher's compiler (bin/esbuild.mjs) says that tsx, whose esbuild it uses, is not installed: nothing of the flow ran.
    if ((error as { code?: unknown } | undefined)?.code === TSX_MISSING) throw new FlowFileError(`Cannot load ${file}: ${(error as Error).message}`, path);
    // A global `cairn` run where Cairn is not installed, loading through tsx (a CommonJS folder): say what to install.
    const cairnMissing = missingCairnPackage(error);
    if (cairnMissing) throw new FlowFileError(`Importing ${file}${given} failed: ${cairnNotInstalled([cairnMissing], basename(path), process.env)}`, path);
    const what = error instanceof Error ? `${error.name}: ${withSourceNames(error.message)}` : describeValue(error);
    // Loading the flow's imports (a package of many files, such as zod) used up the process's file descriptors: no fault of its code.
    const code = (error as { code?: unknown } | undefined)?.code;
    if (code === "EMFILE" || code === "ENFILE") {
      throw new FlowFileError(`Importing ${file}${given} failed: the process ran out of file descriptors (${what}). Raise the limit (ulimit -n) and run again.`, path);
    }
    // Where in the user's code it was thrown (through the source maps: the .ts file and line); none for an import that did not link.
    const at = error instanceof Error ? errorSource(error) : undefined;
    const where = at === undefined ? "" : ` at ${withSourceNames(shownPlace(at))}`;
    throw new FlowFileError(`Importing ${file}${given} failed: its module code threw ${what}${where}. Fix that code (or what it reads at import); \`tsx ${file}\` shows the same with its stack.`, path);
  }
  return { mod, path };
}

/**
 * `text` with each module the CLI compiled a flow into (a file under its temp folder, as a path or
 * a file: URL; Node's own messages name them, "The requested module 'file:///tmp/cairn-0/flows/...
 * -lib.mjs' does not provide an export named ...") named by its TypeScript source, as the user wrote it.
 */
function withSourceNames(text: string): string {
  return text.replace(/(?:file:\/\/)?\/[^\s'"`()]+?\.mjs\b/g, (found) => {
    const file = found.startsWith("file:") ? fileURLToPath(found) : found;
    const source = compiledFlowSource(file);
    return source === file ? found : shownPath(source);
  });
}

/** `file:line:column` with its file as the user would type it (relative to the working directory when inside it). */
function shownPlace(at: string): string {
  const m = /^(.*):(\d+):(\d+)$/.exec(at);
  return m ? `${shownPath(m[1]!)}:${m[2]}:${m[3]}` : at;
}

/** Imports a flow file (or takes the module already imported) and returns its default-exported flow. */
export async function loadFlow(
  file: string | undefined,
  /** `usage`: the command as the user would type it with a file (`cairn plan flow.ts`), for the error without one. */
  from: { module?: Record<string, unknown> | undefined; importFlow?: FlowImporter | undefined; usage?: string } = {},
): Promise<Flow<any, any>> {
  if (!file) throw new FlowFileError(`Expected a flow file, e.g. \`${from.usage ?? "cairn run flow.ts"}\`; got none.`, "");
  const { mod, path } = await importFlowModule(file, from);
  const exported = unwrapCommonJs(mod.default);
  if (exported === undefined) {
    // Flows exported by name only: the CLI runs the default export, so say which there are and how to pick one.
    const named = Object.keys(mod).filter((name) => name !== "default" && isFlow(mod[name]));
    const pick =
      named.length > 0
        ? ` It exports ${named.length === 1 ? "the flow" : "the flows"} ${named.join(", ")} by name, but the CLI runs the default export: ` +
          (named.length > 1
            ? `pick the one to run with \`export default ${named[0]};\` at its end (or give each flow a file of its own, with its default export).`
            : `add \`export default ${named[0]};\` at its end.`)
        : ` Export the flow to run: \`export default flow("name").build(...)\`.`;
    throw new FlowFileError(`${file} has no default export.${pick}`, path);
  }
  const unbuilt = flowBuilderName(exported);
  if (unbuilt !== undefined) {
    throw new FlowFileError(
      `The default export of ${file} is flow("${unbuilt}") without .build(...), so no flow to run. ` +
        `Export the result of flow("${unbuilt}").build(...), whose function wires the tasks and returns the outputs.`,
      path,
    );
  }
  if (!isFlow(exported)) {
    throw new FlowFileError(
      `The default export of ${file} is ${describeValue(exported)}, not a flow. ` +
        `Export the result of flow("name").build(...).`,
      path,
    );
  }
  return exported;
}
