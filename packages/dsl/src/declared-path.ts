/**
 * Paths given where a task is declared (a script, a notebook, extra code files) resolve
 * like an import: against the folder of the module that declared the task, else the
 * working directory; a kind of the project's own also looks next to itself. Absolute paths
 * and file: URLs are taken as they are. Also where, on the stack, the user's code is: the
 * declaring module, and the project frames that build a kind's task.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { OptionError, TaskFileError } from "@cairn/core";

/**
 * This package's sources, its compiled dist/, those of the packages beside it that a task's
 * function calls into or is called from (the engine, the cache, the CLI), the CLI's workspace
 * bundle (packages/cli/.bundle/, which holds a copy of them) and its bin/ (the `cairn` script,
 * which imports the flow): stack frames inside them are Cairn's own, not the user's. An
 * installed copy runs from dist/bundle/ (scripts/bundle-dist.mjs), whose frames name those
 * files, under dist/; installed, the packages beside it are in node_modules, whose frames are
 * never the user's own code either.
 */
const PACKAGE_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
const OWN_DIRS = ["src", "dist", "../cli/.bundle", "../cli/bin", ...["core", "cache", "cli"].flatMap((p) => [`../${p}/src`, `../${p}/dist`])].map(
  (d) => join(PACKAGE_DIR, d) + sep,
);

/**
 * Adds a kind package's own folders to those whose stack frames are not the user's: call it
 * from a module at `<package>/src/*.ts` (or `dist/*.js`) with its `import.meta.url`.
 */
export function registerOwnDir(moduleUrl: string): void {
  const pkg = dirname(dirname(fileURLToPath(moduleUrl)));
  for (const d of ["src", "dist"].map((d) => join(pkg, d) + sep)) if (!OWN_DIRS.includes(d)) OWN_DIRS.push(d);
}

/** What {@link resolveTaskFile} takes beyond the task name and the file. */
export interface ResolveTaskFileOptions {
  /**
   * Further modules of the kind (their `import.meta.url`). No longer needed: every module on
   * the stack between the declaring module and `resolveTaskFile()` counts as the kind's. Still
   * checked (a module's file: URL), so that code passing it keeps working.
   * @deprecated
   */
  from?: string | URL | ReadonlyArray<string | URL>;
}

/**
 * A file a task of a kind names (a script, a notebook, a query): an absolute path or a file:
 * URL as it is. A relative path, for a kind of the project's own (the module calling
 * `resolveTaskFile()` is not Cairn's nor a package's), is looked for in the folder of the
 * module that declares the task, then in the folder of the module that calls
 * `resolveTaskFile()` (the kind's), then in the working directory. The declaring module is the
 * outermost of the project's modules on the stack: the flow file for a task declared at its
 * top level or in its build(), the module whose top-level code calls the kind's function
 * otherwise; every module between it and `resolveTaskFile()` (a helper, a kind the kind wraps)
 * counts as the kind's, and a kind used in its own module has only its own folder. A path
 * found next to both the declaring module and the kind, with different contents, is refused
 * (TaskFileError naming both): a kind's own files are meant to be passed as
 * `new URL("./helper.sh", import.meta.url)`. Cairn's kinds and packages' look next to the
 * first module outside Cairn and packages, then in the working directory. Throws
 * TaskFileError, listing the places it looked, when there is no such file.
 * @example
 * export const sqlFile = (name: string, options: { file: string }) => {
 *   const path = resolveTaskFile(name, options.file); // next to the flow that calls sqlFile()
 *   const helper = resolveTaskFile(name, new URL("./helper.sh", import.meta.url)); // next to this module
 *   return kindTask({ definition: { ... } });
 * };
 */
export function resolveTaskFile(taskName: string, file: string | URL, options: ResolveTaskFileOptions = {}): string {
  const site = captureStack(resolveTaskFile);
  const from = options.from === undefined ? [] : Array.isArray(options.from) ? options.from : [options.from as string | URL];
  for (const m of from) {
    if (!(m instanceof URL) && (typeof m !== "string" || !m.startsWith("file:"))) {
      throw new OptionError(`task "${taskName}" resolveTaskFile() option \`from\``, "a module's file: URL (import.meta.url), or an array of them", m);
    }
  }
  return resolvePath(taskName, file, "file", () => {
    const kind = projectFrames(site.stack ?? "");
    // Cairn's own kinds (script, notebook, the MLflow kinds) and packages' resolve as they always have.
    if (!kind.length) return { folders: [dirOf(firstForeignFrame(site.stack ?? "", true))], oneOnly: false };
    return { folders: [dirname(kind.at(-1)!.file), dirname(kind[0]!.file)], oneOnly: true };
  });
}

/** A file or folder; throws TaskFileError when it does not exist (or is not a file, for `"file"`). */
export function resolveDeclaredPath(taskName: string, path: string | URL, want: "file" | "file or folder"): string {
  return resolvePath(taskName, path, want, () => ({ folders: [callerDir()], oneOnly: false }));
}

/**
 * Where a relative path is looked for before the working directory, in order; with `oneOnly`,
 * a path found in more than one of them must be the same file (the same content) in each.
 */
interface SearchFolders {
  folders: Array<string | undefined>;
  oneOnly: boolean;
}

function resolvePath(taskName: string, path: string | URL, want: "file" | "file or folder", searchIn: () => SearchFolders): string {
  if (path instanceof URL || (typeof path === "string" && path.startsWith("file:"))) {
    return mustExist(taskName, String(path), fileURLToPath(path), want);
  }
  if (typeof path !== "string" || !path) throw new OptionError(`task "${taskName}" file`, "a file path or a file: URL", path);
  if (isAbsolute(path)) return mustExist(taskName, path, path, want);
  const { folders, oneOnly } = searchIn();
  const tried: string[] = [];
  const found: string[] = [];
  for (const base of folders) {
    if (!base) continue;
    const p = resolve(base, path);
    if (tried.includes(p)) continue;
    tried.push(p);
    if (existsSync(p)) found.push(p);
    if (found.length && !oneOnly) break;
  }
  if (found.length > 1 && !sameFiles(found)) {
    throw new TaskFileError(
      taskName,
      path,
      found,
      "is in more than one of the folders it is looked for in (next to the module that declares the task, next to the kind), with different contents",
    );
  }
  if (found.length) return mustExist(taskName, path, found[0]!, want);
  // The working directory comes last, for every kind: a file next to the modules shadows it.
  const p = resolve(process.cwd(), path);
  if (!tried.includes(p)) {
    tried.push(p);
    if (existsSync(p)) return mustExist(taskName, path, p, want);
  }
  throw new TaskFileError(taskName, path, tried);
}

/** True when every path is a file with the same content as the first. */
function sameFiles(paths: readonly string[]): boolean {
  try {
    const [first, ...rest] = paths.map((p) => (statSync(p).isFile() ? p : undefined));
    if (first === undefined || rest.some((p) => p === undefined || statSync(p).size !== statSync(first).size)) return false;
    const content = readFileSync(first);
    return rest.every((p) => readFileSync(p!).equals(content));
  } catch {
    return false; // gone or unreadable since: not known to be the same
  }
}

function mustExist(taskName: string, given: string, p: string, want: "file" | "file or folder"): string {
  let s;
  try {
    s = statSync(p);
  } catch {
    throw new TaskFileError(taskName, given, [p]);
  }
  if (want === "file" && !s.isFile()) throw new TaskFileError(taskName, given, [p], "is not a file");
  return p;
}

/** Folder of the first stack frame outside the DSL and packages: the module that declared the task. */
function callerDir(): string | undefined {
  return dirOf(firstForeignFrame(captureStack().stack ?? "", true));
}

function dirOf(place: SourcePlace | undefined): string | undefined {
  return place === undefined ? undefined : dirname(place.file);
}

/**
 * The project's frames that lead to the call of `fn`, innermost (its caller) first, worked out
 * when first asked, like {@link declaringModule}: the code of a kind that builds its task
 * through helpers (see {@link projectFrames}). Empty when `fn`'s caller is Cairn's or a package's.
 */
export function projectCallersOf(fn: (...args: never[]) => unknown): () => readonly SourcePlace[] {
  const site = captureStack(fn);
  // As in declaringModule: where the JavaScript that ran is, when Node shows its frames at their sources.
  const ran = process.sourceMapsEnabled ? captureStack(fn) : undefined;
  let places: readonly SourcePlace[] | undefined;
  return () => (places ??= withGeneratedFrames(projectFrames(site.stack ?? ""), ran));
}

/** Each of `places` with where its frame is in the JavaScript that ran (`ran`: the same stack, captured beside it), when that is another file. */
function withGeneratedFrames(places: SourcePlace[], ran: Error | undefined): SourcePlace[] {
  if (ran === undefined || !places.length) return places;
  const generated = projectFrames(unmappedStack(ran));
  if (generated.length !== places.length) return places; // not the same frames: none is paired
  return places.map((place, i) => generatedOf(place, generated[i]!));
}

/**
 * The consecutive frames of the project's own code at the top of `stack`, innermost first: up
 * to the first frame that is Cairn's or a package's, Node's own (the module loader: what is
 * below it imported the module, it did not call this code), or the first `at async` one (an
 * async function of the project that awaited before making this call counts, as the outermost;
 * one of Node's or Cairn's, an importer, ends the list). Empty when the top
 * frame is not the project's (a kind of Cairn's or a package's). The last one is the
 * outermost: the flow file's top level or build function, for a task the flow declares.
 */
function projectFrames(stack: string): SourcePlace[] {
  const found: SourcePlace[] = [];
  for (const frame of stackFrames(stack)) {
    if (frame.node) break;
    if (!frame.place) {
      if (frame.async) break;
      continue; // a native frame (Array.prototype.map): its caller comes next
    }
    if (isCairnOrPackageFile(frame.place.file)) break;
    // An async function of the project that awaited before this call (`const a = await setup()`
    // in the flow): it is the outermost caller the stack still shows, so it counts, and ends it.
    found.push(frame.place);
    if (frame.async) break;
  }
  return found;
}

/** True for a file of Cairn's own packages (or a kind package that registered its folders) or of any package in node_modules. */
export function isCairnOrPackageFile(file: string): boolean {
  return OWN_DIRS.some((d) => file.startsWith(d)) || file.includes(`${sep}node_modules${sep}`);
}

/** A place in a source file: line and column, both 1-based as in stack traces. */
export interface SourcePlace {
  file: string;
  line: number;
  column: number;
  /**
   * Where the frame is in the JavaScript that ran, when Node showed it at another file through a
   * source map (`node --enable-source-maps dist/app.js` shows tsc's `dist/flow.js` as `flow.ts`);
   * asked for with {@link declaringModule}'s `generated`. Absent when the two are one file (tsx,
   * which shows a module at its own file), and for the flows the CLI compiles, which count at their sources.
   */
  generated?: { file: string; line: number; column: number };
}

/**
 * Where a task is being declared (the module and line of the `.run()` call), worked out
 * when first asked: the stack is captured now (a few microseconds) and read only if the
 * task's key is ever made. A frame in a package counts (a task declared by a library is the
 * library's). With `generated`, and source maps on, also where the JavaScript that ran is
 * (see {@link SourcePlace.generated}).
 */
export function declaringModule(options: { generated?: boolean } = {}): () => SourcePlace | undefined {
  const site = captureStack();
  // Node formats a stack through source maps only when the program sets no Error.prepareStackTrace:
  // a second capture, formatted with one of this module's, keeps the places in the JavaScript.
  const ran = options.generated && process.sourceMapsEnabled ? captureStack() : undefined;
  let place: SourcePlace | undefined | null = null;
  return () => (place === null ? (place = withGenerated(firstForeignFrame(site.stack ?? "", false), ran)) : place);
}

/** Folders the CLI compiles flows into: on globalThis, as the CLI's copy of this module and the flow's may be two. */
const CLI_COMPILED = Symbol.for("cairn.cli-compiled-flow-dirs");

/**
 * @internal Called by the CLI for the folder it compiles flow files into (`cairn run`, `cairn
 * worker`): their modules' frames, shown through their source maps at the flow's sources, count
 * there, as they do under tsx.
 */
export function registerCompiledFlowDir(dir: string): void {
  const dirs = ((globalThis as Record<symbol, Set<string> | undefined>)[CLI_COMPILED] ??= new Set());
  dirs.add(dir.endsWith(sep) ? dir : dir + sep);
}

/** @internal Whether `file` is one the CLI compiled a flow module into (see {@link registerCompiledFlowDir}). */
export function isCliCompiledFile(file: string): boolean {
  const dirs = (globalThis as Record<symbol, Set<string> | undefined>)[CLI_COMPILED];
  return [...(dirs ?? [])].some((d) => file.startsWith(d));
}

/** `place` with where its frame is in the JavaScript that ran (`ran`, the same stack captured beside it), when that is another file. */
function withGenerated(place: SourcePlace | undefined, ran: Error | undefined): SourcePlace | undefined {
  if (place === undefined || ran === undefined) return place;
  const generated = firstForeignFrame(unmappedStack(ran), false);
  return generated === undefined ? place : generatedOf(place, generated);
}

/** `place` with `generated` as where its frame is in the JavaScript that ran, when that is another file and not one of the CLI's compiled flows. */
function generatedOf(place: SourcePlace, generated: SourcePlace): SourcePlace {
  const cliCompiled = (globalThis as Record<symbol, Set<string> | undefined>)[CLI_COMPILED];
  if (generated.file === place.file || [...(cliCompiled ?? [])].some((d) => generated.file.startsWith(d))) return place;
  return { ...place, generated: { file: generated.file, line: generated.line, column: generated.column } };
}

/** The text of `site`'s stack with each frame at its place in the code that ran, not mapped through source maps. */
function unmappedStack(site: Error): string {
  const prepare = Error.prepareStackTrace;
  Error.prepareStackTrace = (error: Error, frames: NodeJS.CallSite[]) =>
    [error.name, ...frames.map((f) => `    at ${f.isAsync() ? "async " : ""}${f.getFileName() ? `f (${f.getFileName()}:${f.getLineNumber()}:${f.getColumnNumber()})` : "<anonymous>"}`)].join("\n");
  try {
    return site.stack ?? "";
  } finally {
    Error.prepareStackTrace = prepare;
  }
}

/**
 * Where in the user's own code `error` was raised: `file:line:column` of its first stack frame
 * outside Cairn and outside packages (node_modules), or undefined when it has none (an error
 * raised in a library and rethrown without the user's frames). With source maps on (the `cairn`
 * command, tsx) the frame names the user's .ts file and line, also for a compiled flow.
 */
export function errorSource(error: Error): string | undefined {
  let stack: unknown;
  try {
    stack = error.stack;
  } catch {
    return undefined; // a getter of the user's that throws
  }
  if (typeof stack !== "string") return undefined;
  const place = firstForeignFrame(stack, true);
  return place === undefined ? undefined : `${place.file}:${place.line}:${place.column}`;
}

/**
 * Where the user's code is making the call in progress, as {@link errorSource} says a place
 * (`file:line:column`), worked out when first asked; undefined when the stack shows none. The
 * stack is taken now, its text made only when asked: for a place needed only if something fails.
 */
export function callSite(): () => string | undefined {
  const site = captureStack();
  let at: string | undefined | null = null;
  return () => {
    if (at !== null) return at;
    const place = firstForeignFrame(site.stack ?? "", true);
    return (at = place === undefined ? undefined : `${place.file}:${place.line}:${place.column}`);
  };
}

/**
 * Where the user's code is making the call in progress: ` (at flow.ts:4:12)`, the first stack
 * frame outside Cairn and packages, relative to the working directory when inside it; empty
 * when the stack shows none. For build-time errors, which are not a task's (no `error.at`).
 */
export function atUserCode(): string {
  const place = firstForeignFrame(captureStack().stack ?? "", true);
  if (place === undefined) return "";
  return ` (at ${shown(place.file)}:${place.line}:${place.column})`;
}

/** A path as the user would type it: relative to the working directory when inside it. */
export function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

/**
 * An error holding the stack here (from the caller of `above`, when given), deep enough to get
 * past the DSL's own frames; its text is made when `.stack` is read.
 */
function captureStack(above?: (...args: never[]) => unknown): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const site = new Error();
  if (above) Error.captureStackTrace(site, above);
  Error.stackTraceLimit = limit;
  return site;
}

/** The first stack frame outside the DSL (and outside packages, with `skipPackages`). */
function firstForeignFrame(stack: string, skipPackages: boolean): SourcePlace | undefined {
  return foreignFrames(stack, skipPackages).next().value ?? undefined;
}

/** The stack frames outside the DSL (and outside packages, with `skipPackages`), innermost first. */
function* foreignFrames(stack: string, skipPackages: boolean): Generator<SourcePlace, undefined> {
  for (const place of frames(stack)) {
    if (OWN_DIRS.some((d) => place.file.startsWith(d))) continue;
    if (skipPackages && place.file.includes(`${sep}node_modules${sep}`)) continue;
    yield place;
  }
  return undefined;
}

/** The stack frames that name a file, innermost first. */
function* frames(stack: string): Generator<SourcePlace, undefined> {
  for (const frame of stackFrames(stack)) if (frame.place) yield frame.place;
  return undefined;
}

/** Every stack frame, innermost first: the file it names (if any), whether it is `at async` and whether it is Node's own (`node:`). */
function* stackFrames(stack: string): Generator<{ place: SourcePlace | undefined; async: boolean; node: boolean }, undefined> {
  for (const line of stack.split("\n").slice(1)) {
    const m = /(?:\(|at )((?:file:\/\/)?\/[^()]*?):(\d+):(\d+)\)?\s*$/.exec(line);
    const place = m ? { file: m[1]!.startsWith("file:") ? fileURLToPath(m[1]!) : m[1]!, line: Number(m[2]), column: Number(m[3]) } : undefined;
    yield { place, async: /^\s*at async /.test(line), node: /(?:\(|at )node:/.test(line) };
  }
  return undefined;
}

/**
 * How an absolute path given where a task is declared (a process task's `cwd`, a code file from
 * `import.meta.dirname`) enters its cache key, so that checkouts of one project at different
 * places share entries: relative to the project's root ({@link projectRoot}), with `/`, when it
 * lies inside it (`.` for the root itself); undefined when it lies outside, or no declaring
 * module is on the stack (it then counts as it is: another folder is another input).
 */
export function projectRelativeName(path: string): string | undefined {
  const module = callerDir();
  if (module === undefined || !isAbsolute(path)) return undefined;
  const rel = relative(projectRoot(module), resolve(path));
  if (rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return rel === "" ? "." : rel.split(sep).join("/");
}

/**
 * The project's root for a folder: the nearest folder at or above it that holds `.git`; without
 * one (a `git archive`, a Docker `COPY` that leaves `.git` out, a tarball), the nearest holding a
 * lockfile, else a `package.json`; else the folder itself. Found once per folder (see
 * {@link projectRelativeName}).
 */
export function projectRoot(moduleDir: string): string {
  let root = projectRoots.get(moduleDir);
  if (root === undefined) {
    root = nearestHolding(moduleDir, [".git"]) ?? nearestHolding(moduleDir, LOCKFILES) ?? nearestHolding(moduleDir, ["package.json"]) ?? moduleDir;
    projectRoots.set(moduleDir, root);
  }
  return root;
}

const projectRoots = new Map<string, string>();

/**
 * A checkout without `.git` still has its lockfile: `npm ci`, `pnpm install --frozen-lockfile`,
 * `yarn install --immutable` and `bun install --frozen-lockfile` need it, and each writes one, at
 * the workspace's root, however many packages it has (a member's own package.json would cut the
 * project short).
 */
const LOCKFILES = ["pnpm-lock.yaml", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "bun.lock", "bun.lockb"];

/** The nearest folder at or above `dir` that holds one of `names`. */
function nearestHolding(dir: string, names: readonly string[]): string | undefined {
  for (; ; dir = dirname(dir)) {
    if (names.some((name) => existsSync(join(dir, name)))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The text a process task's `cwd` adds to its code fingerprint: one inside the project counts
 * by its path from the project's root ({@link projectRelativeName}), so that checkouts at other
 * places share entries; a relative one (which resolves against the working directory) and one
 * outside the project count as written.
 */
export function cwdFingerprint(cwd: string): string {
  const inProject = projectRelativeName(cwd);
  return inProject === undefined ? `cwd=${JSON.stringify(cwd)}` : `cwd=project:${JSON.stringify(inProject)}`;
}
