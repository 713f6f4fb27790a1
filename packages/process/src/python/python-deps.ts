/**
 * The project's own files a script or notebook loads, found without the user declaring them.
 *
 * Python: the modules it imports, `import common`, `from pkg.sub import x`, `from . import
 * helpers`, however deep, resolved as Python resolves them from the script's folder (its
 * `sys.path[0]`; a notebook's working directory). Imports are read by their look (regular
 * expressions over the text), not by executing or parsing Python: an import inside a function or
 * an `if` counts, and so does one in a string that names a file of the project. Modules outside
 * the folder (the standard library, the venv's packages, PYTHONPATH) do not count: their versions
 * are the environment's.
 *
 * A notebook's cells also run files by IPython's magics: `%run helper.py` (from the kernel's
 * working directory, as IPython finds it, with what that file imports), and shell lines (`!python
 * tool.py`) and `%%bash` cells, whose words are read as a shell script's are (see shell-paths.ts).
 * A shell script (`script("run.sh")`) counts the project's files its words name, and a `.py` or
 * shell script among them is followed in turn.
 *
 * Each file counts whole, named by its path from the script's folder (`common.py`, `pkg/sub.py`),
 * so editing `common.py` re-runs every step that loads it.
 */
import { readFile } from "node:fs/promises";
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { digestFile, editedSince, readStamped, type ReadFile, sha256 } from "@cairn/cache";
import { scopeKey, type RunScope } from "@cairn/core";
import { isDir, isFile, projectRoot } from "@cairn/dsl/kind";
import { shellPaths } from "../shell-paths.ts";

// At a line's start, or after `;` or `:` (`try: import x`, `import sys; import y`).
const IMPORT = /(?:^|[;:])[ \t]*import[ \t]+([^\n#;]+)/gm;
const FROM_IMPORT = /(?:^|[;:])[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([^\n#;]*))/gm;
/** `importlib.import_module("a.b")`, `__import__("a")` with a literal name. */
const DYNAMIC = /\b(?:import_module|__import__)\(\s*["']([\w.]+)["']/g;
/** IPython's `%run [options] file [args]`, at a line's start. */
const RUN_MAGIC = /^[ \t]*%run[ \t]+([^\n]*)/gm;
/** IPython's shell escape at a line's start, `!python tool.py`, also as `files = !ls` (not `!=`). */
const SHELL_LINE = /^[ \t]*(?:\w+[ \t]*=[ \t]*)?!(?!=)([^\n]*)/gm;
/** A cell that IPython hands to a shell whole: `%%bash`, `%%sh`, `%%script bash`. */
const SHELL_CELL = /^\s*%%(?:bash|sh|script[ \t]+(?:\S*\/)?(?:ba)?sh)[ \t]*(?:\n|$)/;
/** Shell scripts, by extension: their words are read for the project's files they name. */
const SHELL = new Set([".sh", ".bash"]);

/** Files read at once (a wave of a large package stays under the open-file limit). */
const READS_AT_ONCE = 64;

/**
 * A file found, and where a Python file's absolute imports resolve from (its `sys.path`, first
 * first): the folder of the script Python started with, a notebook's working directory.
 */
interface Found {
  path: string;
  roots: readonly string[];
}

/** What one read of a file gave: its digest and the files it loads. */
type FileRead = { digest: string; loads: Found[] } | undefined;
/** Files read in one flow run, kept on its scope. */
type Reads = Map<string, Promise<FileRead>>;
const READS = scopeKey<Reads>("cairn python-deps reads");
/** How each file was read in one flow run (its digest, its stat then), by absolute path: what {@link editedDependencies} checks against. */
const STAMPS = scopeKey<Map<string, ReadFile>>("cairn python-deps stamps");

/**
 * The project's Python files that `code` (a script's text) imports, however deep, as
 * `sys.path[0] = root` would find them: path from `root` -> sha256. `self` (the script itself) is
 * left out. Files are read once per flow run (`scope`).
 */
export async function pythonDependencies(code: string, root: string, scope: RunScope, self?: string): Promise<Record<string, string>> {
  const roots = [root];
  const first = importedFiles(code, roots, self ? dirname(self) : root).map((path) => ({ path, roots }));
  return followFiles(first, root, projectRoot(root), scope, self);
}

/**
 * The project's files a notebook's code cells load, from the kernel's working directory `root`:
 * the Python modules they import, the files `%run` runs, and those their shell lines and `%%bash`
 * cells name; however deep, named by path from `root` -> sha256.
 */
export async function notebookDependencies(cells: readonly string[], root: string, scope: RunScope): Promise<Record<string, string>> {
  const project = projectRoot(root);
  return followFiles(
    cells.flatMap((cell) => cellFiles(cell, root, project)),
    root,
    project,
    scope,
  );
}

/**
 * The project's files a shell script names (see shell-paths.ts), and what those load in turn (a
 * `.py` one's imports, another shell script's words): path from the script's folder -> sha256.
 */
export async function shellDependencies(file: string, scope: RunScope): Promise<Record<string, string>> {
  const here = dirname(file);
  const project = projectRoot(here);
  const text = await readFile(file, "utf8").catch(() => "");
  return followFiles(shellPaths(text, here, project).map(started), here, project, scope, file);
}

/**
 * Reads `first` and every file they load, however deep, one level at a time (its files read
 * together): path from `names` -> sha256; `self` left out.
 */
async function followFiles(first: Found[], names: string, project: string, scope: RunScope, self?: string): Promise<Record<string, string>> {
  const reads = scope.state(READS, (): Reads => new Map());
  const stamps = scope.state(STAMPS, () => new Map<string, ReadFile>());
  const deps: Record<string, string> = {};
  const seen = new Set<string>(self ? [self] : []);
  const unseen = (found: Found) => !seen.has(found.path) && Boolean(seen.add(found.path));
  let wave = first.filter(unseen);
  while (wave.length) {
    const files: FileRead[] = [];
    for (let i = 0; i < wave.length; i += READS_AT_ONCE) files.push(...(await Promise.all(wave.slice(i, i + READS_AT_ONCE).map((found) => read(reads, found, project, stamps)))));
    const next: Found[] = [];
    for (const [i, file] of files.entries()) {
      if (!file) continue;
      deps[relative(names, wave[i]!.path).split(sep).join("/")] = file.digest;
      next.push(...file.loads.filter(unseen));
    }
    wave = next;
  }
  return deps;
}

function read(reads: Reads, found: Found, project: string, stamps: Map<string, ReadFile>): Promise<FileRead> {
  const key = [project, ...found.roots, found.path].join("\0");
  let file = reads.get(key);
  if (!file) {
    file = readLoads(found, project, stamps).catch(() => undefined);
    reads.set(key, file);
  }
  return file;
}

/**
 * A file's digest and what it loads: a `.py` file's imports, a shell script's named files; another
 * file (data, a notebook `%run` runs) counts by its bytes alone. Its stat around the read goes to `stamps`.
 */
async function readLoads({ path, roots }: Found, project: string, stamps: Map<string, ReadFile>): Promise<FileRead> {
  const ext = extname(path).toLowerCase();
  let loads: Found[] = [];
  const read = await readStamped(path, async (p) => {
    if (ext !== ".py" && !SHELL.has(ext)) return digestFile(p);
    const text = await readFile(p, "utf8");
    loads = ext === ".py" ? importedFiles(text, roots, dirname(p)).map((f) => ({ path: f, roots })) : shellPaths(text, dirname(p), project).map(started);
    return sha256(text);
  });
  stamps.set(path, read);
  return { digest: read.digest, loads };
}

/** `path` as a message names it: from the root of the project that holds `near`, with `/`; as it is when outside it. */
export function projectPath(path: string, near: string): string {
  const rel = relative(projectRoot(near), path);
  return rel.startsWith("..") || isAbsolute(rel) ? path : rel.split(sep).join("/");
}

/** A file's digest as {@link readLoads} makes it. */
async function dependencyDigest(path: string): Promise<string> {
  const ext = extname(path).toLowerCase();
  return ext !== ".py" && !SHELL.has(ext) ? digestFile(path) : sha256(await readFile(path, "utf8"));
}

/**
 * Of `found` (a record {@link pythonDependencies}, {@link notebookDependencies} or
 * {@link shellDependencies} gave, its names by path from `root`), the files that no longer hold
 * what was read: absolute paths. One stat a file while it is as it was read (see `editedSince`).
 */
export async function editedDependencies(found: Readonly<Record<string, string>>, root: string, scope: RunScope): Promise<string[]> {
  const stamps = scope.state(STAMPS, () => new Map<string, ReadFile>());
  const edited = await Promise.all(
    Object.entries(found).map(async ([name, digest]) => {
      const path = resolve(root, name);
      const stamp = stamps.get(path);
      return (await editedSince(path, { digest, stamp: stamp?.digest === digest ? stamp.stamp : undefined }, dependencyDigest)) ? [path] : [];
    }),
  );
  return edited.flat();
}

/** A file a command starts: a `.py` one's imports resolve from its own folder (`python3 lib/tool.py`). */
function started(path: string): Found {
  return { path, roots: [dirname(path)] };
}

/** The files a notebook's code cell loads; `root` is the kernel's working directory. */
function cellFiles(cell: string, root: string, project: string): Found[] {
  if (SHELL_CELL.test(cell)) return shellPaths(cell.replace(SHELL_CELL, ""), root, project).map(started);
  const roots = [root];
  const found: Found[] = importedFiles(cell, roots, root).map((path) => ({ path, roots }));
  for (const m of cell.matchAll(RUN_MAGIC)) found.push(...runTargets(m[1]!, root, project));
  for (const m of cell.matchAll(SHELL_LINE)) found.push(...shellPaths(m[1]!, root, project).map(started));
  return found;
}

/** `%run`'s options that take a value (IPython's `nidtN:b:pD:l:rs:T:em:G`). */
const RUN_VALUE_OPTIONS = new Set(["N", "b", "D", "l", "s", "T", "m"]);

/**
 * What `%run <args>` runs, as IPython finds it: `-m mod` a module from the kernel's working
 * directory; else its first argument, a path from that directory, `.py` added when the name
 * without it is no file. Run with its own folder first on `sys.path`, then the kernel's.
 */
function runTargets(args: string, root: string, project: string): Found[] {
  const words = (args.replace(/#.*/, "").match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) => w.replace(/^(["'])(.*)\1$/, "$2"));
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word.startsWith("-") && word.length > 1) {
      const option = word[1]!;
      const value = word.length > 2 ? word.slice(2) : RUN_VALUE_OPTIONS.has(option) ? words[++i] : undefined;
      if (option === "m") return value ? modulePath(root, value.split(".")).map((path) => ({ path, roots: [root] })) : [];
      continue;
    }
    if (/[$*?{]/.test(word)) return []; // IPython expands variables and globs: not a literal path
    const path = resolve(root, word);
    const file = isFile(path) ? path : !path.endsWith(".py") && isFile(`${path}.py`) ? `${path}.py` : undefined;
    return file && !relative(project, file).startsWith("..") ? [{ path: file, roots: [dirname(file), root] }] : [];
  }
  return [];
}

/** A backslash at a line's end: the statement goes on on the next line (`from pkg import a, \`). */
const CONTINUED = /\\\r?\n/g;

/**
 * The project files the import statements of `text` load, from the first of `roots` (its
 * `sys.path`) that holds each; `here` is the folder of the file the text is in.
 * A text with backslash-continued lines is read twice, as written and with those lines joined:
 * joined, `from pkg import a, \` + `b` names `b`; as written, an import after a comment that ends
 * in a backslash still counts (a comment is not continued, and joining would hide that import).
 */
function importedFiles(text: string, roots: readonly string[], here: string): string[] {
  const found = new Set<string>();
  if (text.search(CONTINUED) !== -1) addImported(text.replace(CONTINUED, " "), roots, here, found);
  addImported(text, roots, here, found);
  return [...found];
}

/** Adds to `found` the project files the import statements of `text` load. */
function addImported(text: string, roots: readonly string[], here: string, found: Set<string>): void {
  for (const m of text.matchAll(DYNAMIC)) for (const f of firstModulePath(roots, m[1]!.split("."))) found.add(f);
  for (const m of text.matchAll(IMPORT)) {
    for (const part of m[1]!.split(",")) {
      const name = part.trim().split(/\s+/)[0];
      if (name && /^[\w.]+$/.test(name)) for (const f of firstModulePath(roots, name.split("."))) found.add(f);
    }
  }
  for (const m of text.matchAll(FROM_IMPORT)) {
    const level = m[1]!.length;
    const parts = m[2] ? m[2].split(".") : [];
    let bases = roots;
    if (level > 0) {
      let base = here;
      for (let i = 1; i < level; i++) base = dirname(base);
      bases = [base];
    }
    // The first root that holds the module (a namespace package is a folder without __init__.py); none: not a module of the project.
    const base = parts.length ? bases.find((b) => modulePath(b, parts).length || isDir(join(b, ...parts))) : bases[0];
    if (base === undefined) continue;
    for (const f of parts.length ? modulePath(base, parts) : []) found.add(f);
    const pkg = join(base, ...parts);
    // `from pkg import sub`: sub may be a module of the package. (Comments stripped: a parenthesised list may have them.)
    for (const item of (m[3] ?? m[4] ?? "").replace(/#[^\n]*/g, "").split(",")) {
      const name = item.trim().split(/\s+/)[0];
      if (name && /^\w+$/.test(name)) for (const f of modulePath(pkg, [name])) found.add(f);
    }
  }
}

/** The files `import a.b.c` runs from the first of `roots` that has `a`. */
function firstModulePath(roots: readonly string[], parts: string[]): string[] {
  for (const root of roots) {
    const files = modulePath(root, parts);
    if (files.length) return files;
  }
  return [];
}

/** The files `import a.b.c` runs from `base`: a.py or a/__init__.py, then a/b..., stopping where the project has none. */
function modulePath(base: string, parts: string[]): string[] {
  const files: string[] = [];
  let dir = resolve(base);
  for (const [i, part] of parts.entries()) {
    const module = join(dir, `${part}.py`);
    const pkg = join(dir, part);
    if (isFile(module)) {
      files.push(module);
      if (i < parts.length - 1) break; // a.py has no submodules
      continue;
    }
    if (!isDir(pkg)) break;
    const init = join(pkg, "__init__.py");
    if (isFile(init)) files.push(init);
    dir = pkg;
  }
  return files;
}
