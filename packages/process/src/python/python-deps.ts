/**
 * The project's own Python modules a script or notebook imports, found without the user
 * declaring them: `import common`, `from pkg.sub import x`, `from . import helpers`, however
 * deep, resolved as Python resolves them from the script's folder (its `sys.path[0]`; a
 * notebook's working directory). Each counts whole, named by its path from that folder
 * (`common.py`, `pkg/sub.py`), so editing `common.py` re-runs every step that imports it.
 *
 * Imports are read by their look (regular expressions over the text), not by executing or
 * parsing Python: an import inside a function or an `if` counts, and so does one in a string
 * that names a file of the project. Modules outside the folder (the standard library, the
 * venv's packages, PYTHONPATH) do not count: their versions are the environment's.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { sha256 } from "@cairn/cache";
import { scopeKey, type RunScope } from "@cairn/core";
import { isDir, isFile } from "@cairn/dsl/kind";

// At a line's start, or after `;` or `:` (`try: import x`, `import sys; import y`).
const IMPORT = /(?:^|[;:])[ \t]*import[ \t]+([^\n#;]+)/gm;
const FROM_IMPORT = /(?:^|[;:])[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([^\n#;]*))/gm;
/** `importlib.import_module("a.b")`, `__import__("a")` with a literal name. */
const DYNAMIC = /\b(?:import_module|__import__)\(\s*["']([\w.]+)["']/g;

/** Files read at once (a wave of a large package stays under the open-file limit). */
const READS_AT_ONCE = 64;

/** Files read in one flow run, kept on its scope: path -> digest and the files it imports. */
type Reads = Map<string, Promise<{ digest: string; imports: string[] } | undefined>>;
const READS = scopeKey<Reads>("cairn python-deps reads");

/**
 * The project's Python files that `code` (a script's text, a notebook's code cells) imports,
 * however deep, as `sys.path[0] = root` would find them: path from `root` -> sha256. `self`
 * (the script itself) is left out. Files are read once per flow run (`scope`).
 */
export async function pythonDependencies(code: string, root: string, scope: RunScope, self?: string): Promise<Record<string, string>> {
  const reads = scope.state(READS, (): Reads => new Map());
  const deps: Record<string, string> = {};
  let wave = importedFiles(code, root, self ? dirname(self) : root);
  const seen = new Set<string>(self ? [self, ...wave] : wave);
  // One level of imports at a time, its files read together.
  while (wave.length) {
    const files: Awaited<ReturnType<typeof read>>[] = [];
    for (let i = 0; i < wave.length; i += READS_AT_ONCE) files.push(...(await Promise.all(wave.slice(i, i + READS_AT_ONCE).map((path) => read(reads, path, root)))));
    const next: string[] = [];
    for (const [i, file] of files.entries()) {
      if (!file) continue;
      deps[relative(root, wave[i]!).split(sep).join("/")] = file.digest;
      for (const imported of file.imports) {
        if (!seen.has(imported)) {
          seen.add(imported);
          next.push(imported);
        }
      }
    }
    wave = next;
  }
  return deps;
}

function read(reads: Reads, path: string, root: string): Promise<{ digest: string; imports: string[] } | undefined> {
  const key = `${root}\0${path}`;
  let file = reads.get(key);
  if (!file) {
    file = readFile(path, "utf8").then(
      (text) => ({ digest: sha256(text), imports: importedFiles(text, root, dirname(path)) }),
      () => undefined,
    );
    reads.set(key, file);
  }
  return file;
}

/** A backslash at a line's end: the statement goes on on the next line (`from pkg import a, \`). */
const CONTINUED = /\\\r?\n/g;

/**
 * The project files the import statements of `text` load; `here` is the folder of the file the text is in.
 * A text with backslash-continued lines is read twice, as written and with those lines joined:
 * joined, `from pkg import a, \` + `b` names `b`; as written, an import after a comment that ends
 * in a backslash still counts (a comment is not continued, and joining would hide that import).
 */
function importedFiles(text: string, root: string, here: string): string[] {
  const found = new Set<string>();
  if (text.search(CONTINUED) !== -1) addImported(text.replace(CONTINUED, " "), root, here, found);
  addImported(text, root, here, found);
  return [...found];
}

/** Adds to `found` the project files the import statements of `text` load. */
function addImported(text: string, root: string, here: string, found: Set<string>): void {
  for (const m of text.matchAll(DYNAMIC)) for (const f of modulePath(root, m[1]!.split("."))) found.add(f);
  for (const m of text.matchAll(IMPORT)) {
    for (const part of m[1]!.split(",")) {
      const name = part.trim().split(/\s+/)[0];
      if (name && /^[\w.]+$/.test(name)) for (const f of modulePath(root, name.split("."))) found.add(f);
    }
  }
  for (const m of text.matchAll(FROM_IMPORT)) {
    const level = m[1]!.length;
    const parts = m[2] ? m[2].split(".") : [];
    let base = root;
    if (level > 0) {
      base = here;
      for (let i = 1; i < level; i++) base = dirname(base);
    }
    const files = parts.length ? modulePath(base, parts) : [];
    const pkg = join(base, ...parts);
    // Not a module of the project (a namespace package is a folder without __init__.py).
    if (parts.length && !files.length && !isDir(pkg)) continue;
    for (const f of files) found.add(f);
    // `from pkg import sub`: sub may be a module of the package. (Comments stripped: a parenthesised list may have them.)
    for (const item of (m[3] ?? m[4] ?? "").replace(/#[^\n]*/g, "").split(",")) {
      const name = item.trim().split(/\s+/)[0];
      if (name && /^\w+$/.test(name)) for (const f of modulePath(pkg, [name])) found.add(f);
    }
  }
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
