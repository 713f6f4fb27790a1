/**
 * How the CLI imports a flow file (or an `--import` module) through `import()`, in a process
 * that may import it more than once: an app calling `cli(["run", "flow.ts"])` again after an
 * edit. Node keeps every module it loaded under its URL, so a second `import()` of an edited
 * file would answer the first one's code, and that stale code would run under the edited
 * code's cache key. An entry file whose content changed since this process first loaded it is
 * imported under a URL that names its content (`flow.ts?cairn-content=<digest>`), which Node
 * loads anew. The modules it imports keep their URLs and Node cannot drop them: when one of
 * them (or a package's version) changed since this process loaded it, or the entry is CommonJS
 * (Node's `require` cache answers it whatever the URL), the import is refused with the file
 * named, rather than run stale. That holds for every import after the process's first, of any
 * flow file: a module one flow loaded is the one Node gives the next flow importing it.
 *
 * Knowing what an import loaded takes parsing its module graph. The `cairn` command imports its
 * flow once and ends, so it imports through `importOnce`, which parses nothing; should code it
 * runs import a flow again (cli() in a task), what the first import loaded is recorded then.
 *
 * The state here is the process's, as Node's module map it mirrors is: not a run's.
 */
import { statSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { digestFileSync } from "@cairn/cache";
import { RunScope } from "@cairn/core";
import { moduleFormatOf } from "@cairn/dsl";
import { moduleDependencies } from "@cairn/dsl/kind";
import { FlowFileError, type FlowImporter } from "./flow-file-error.ts";

/**
 * Each module this process loaded under its plain URL (absolute path, or `package <name>`) -> its
 * digest then: the entries imported and the modules they import, for every entry of any flow.
 */
const loaded = new Map<string, string>();

/** What `loaded` holds for a module changed since before an unrecorded import of it: no digest equals it. */
const EDITED = "edited since this process loaded it";
/** Entries `importOnce` imported without recording their modules, with the time it began. */
const unrecorded: Array<{ path: string; since: number }> = [];

/** The project's modules (absolute paths) and packages (`package zod`) `path` loads, with their digests as on disk now. */
async function codeOf(path: string): Promise<Map<string, string>> {
  const deps = await moduleDependencies(path, new RunScope());
  return new Map(Object.entries(deps).map(([name, digest]) => [name.startsWith("package ") ? name : resolve(dirname(path), name), digest]));
}

/**
 * The error for a flow file (`path`) some of whose modules (`changed`: absolute paths, or
 * `package <name>`) changed since this process loaded them, which Node cannot load anew.
 */
export function staleModules(path: string, changed: readonly string[]): FlowFileError {
  const named = changed.map((name) => (name.startsWith("package ") ? `${name} (another version)` : relative(process.cwd(), name) || name));
  return new FlowFileError(
    `Expected the code this process loaded for ${relative(process.cwd(), path) || path} to be as it is on disk, but ${named.join(", ")} changed since this process loaded ${changed.length === 1 ? "it" : "them"}; ` +
      `Node keeps a module it loaded (an imported module, or a CommonJS one), so the old code would run. Start a new process to run the edited code.`,
    path,
  );
}

/**
 * Imports the module at `path` (absolute) for a process that acts as the `cairn` command: it
 * imports its flow (and `--import` modules) for one command, then ends, so what they load is not
 * recorded, which would parse the whole module graph. Should something in it import a flow
 * again (its code calls cli()), `importFresh` records them then: a module whose file changed
 * since this import began counts as changed.
 */
export const importOnce: FlowImporter = async (path) => {
  // A second import in this process (cli() called again: its first went through here too) is checked as any is.
  if (loaded.size > 0 || unrecorded.length > 0) return importFresh(path);
  // A file dated from this moment on was written after the import read it; one saved just before
  // (an editor's save, a code generator, then `cairn run`) is what the import read, and is no change.
  unrecorded.push({ path, since: Date.now() });
  return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
};

/** Records the modules of the entries `importOnce` imported, with their digests now where their files are older than that import. */
async function recordUnrecorded(): Promise<void> {
  for (const { path, since } of unrecorded.splice(0)) {
    const modules = [[path, digestFileSync(path)] as const, ...(await codeOf(path))];
    for (const [name, now] of modules) {
      if (loaded.has(name)) continue;
      // A package is named by its version, which has no file to date: taken as it is now.
      loaded.set(name, name.startsWith("package ") || modifiedBefore(name, since) ? now : EDITED);
    }
  }
}

function modifiedBefore(file: string, time: number): boolean {
  try {
    return statSync(file).mtimeMs < time;
  } catch {
    return false;
  }
}

/** Imports the module at `path` (absolute) as its content is now; see the module comment. */
export const importFresh: FlowImporter = async (path) => {
  if (unrecorded.length > 0) await recordUnrecorded();
  const digest = digestFileSync(path);
  const deps = await codeOf(path);
  // Checked on every import, whichever entry loaded a module first: `b.flow.ts`, new to the
  // process, imports the `lib.ts` that `a.flow.ts` loaded before lib.ts was edited.
  const changed = [...deps].filter(([name, now]) => name !== path && loaded.has(name) && loaded.get(name) !== now).map(([name]) => name);
  const before = loaded.get(path);
  if (before !== undefined && before !== digest && moduleFormatOf(path).format === "cjs") changed.unshift(path);
  if (changed.length > 0) throw staleModules(path, changed);
  for (const [name, now] of deps) if (!loaded.has(name)) loaded.set(name, now);
  if (before === undefined) loaded.set(path, digest);
  const url = pathToFileURL(path).href;
  return (await import(before === undefined || before === digest ? url : `${url}?cairn-content=${digest.slice(0, 16)}`)) as Record<string, unknown>;
};
