/**
 * What a function task's code reaches beyond its own text, found without the user declaring
 * it: the top-level declarations of its module that the function uses (helpers, constants,
 * and what those use in turn), and the project's own modules it imports names from, with
 * every module those import. Each enters the cache key as a code file named
 * `flow.ts#readJson` (a declaration) or `lib/shape.ts` (a module, relative to the task's
 * module), so editing a helper re-runs the tasks that use it and `cairn explain` names it.
 *
 * Modules are compared as esbuild strips them (types and comments gone): a comment or a type
 * annotation changes nothing. What a module is made of (its top-level declarations, the
 * names each uses, its relative imports) is worked out once per content, with esbuild and
 * acorn, and kept under `$TMPDIR/cairn-<uid>/code-deps/`; a run only reads and hashes files.
 *
 * It errs on the side of re-running: a name counts wherever it appears in the function's
 * text (a property with a helper's name too), and a module that cannot be parsed counts
 * whole (for the tasks it declares too). Not followed: packages (the lockfile versions them), `import()` of a computed path,
 * files a task reads at run time (declare those with `.codeFiles()`).
 */
import { readFile } from "node:fs/promises";
import { existsSync, statSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { basename, dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256, writeFileAtomic } from "@cairn/cache";
import { loadEsbuild } from "../bin/esbuild.mjs";

/** Bumped when the shape below or the way it is worked out changes. */
const SHAPE_VERSION = 1;

/** A module as the analysis sees it. */
interface ModuleShape {
  /** sha256 of the module's text as esbuild strips it; of its raw text when it cannot be parsed. */
  digest: string;
  /** Set when it cannot be parsed: then it counts whole, also for the tasks it declares. */
  opaque?: true;
  /** Top-level declarations: the names each declares, the sha256 of its text, the module's top-level names it uses. */
  decls: Array<{ names: string[]; digest: string; uses: string[] }>;
  /** Relative imports and re-exports: the local names bound (none for a re-export) and the specifier. */
  imports: Array<{ locals: string[]; from: string }>;
}

const IDENTIFIER = /[A-Za-z_$][\w$]*/g;
const LOADERS: Record<string, "ts" | "tsx" | "js" | "jsx"> = {
  ".ts": "ts",
  ".mts": "ts",
  ".cts": "ts",
  ".tsx": "tsx",
  ".js": "js",
  ".mjs": "js",
  ".cjs": "js",
  ".jsx": "jsx",
};

/** Shapes by content, worked out in this process. */
const shapes = new Map<string, Promise<ModuleShape>>();
/** Shapes by path, read in the current flow run: its tasks share their modules' reads. */
const readsOf = { flowRunId: "", shapes: new Map<string, Promise<ModuleShape | undefined>>() };

/**
 * The code dependencies of a function declared in `file`, whose text is `fnText`: code-file
 * name -> digest. Empty when `file` is not a module of the project (a package, a REPL).
 */
export async function functionDependencies(file: string, fnText: string, flowRunId: string): Promise<Record<string, string>> {
  if (!LOADERS[extname(file)] || isPackageFile(file)) return {};
  if (flowRunId !== readsOf.flowRunId) {
    readsOf.flowRunId = flowRunId;
    readsOf.shapes.clear();
  }
  try {
    return await collect(file, fnText);
  } catch {
    // Not expected; if it happens, the whole module counts rather than nothing.
    const source = await readFile(file, "utf8").catch(() => undefined);
    return source === undefined ? {} : { [basename(file)]: sha256(source) };
  }
}

async function collect(file: string, fnText: string): Promise<Record<string, string>> {
  const deps: Record<string, string> = {};
  const own = await shapeOf(file);
  if (!own) return deps;
  if (own.opaque) return { [basename(file)]: own.digest };
  const base = dirname(file);
  const byName = new Map<string, ModuleShape["decls"][number]>();
  for (const decl of own.decls) for (const name of decl.names) byName.set(name, decl);
  const importOf = new Map<string, string>();
  for (const imp of own.imports) for (const local of imp.locals) importOf.set(local, imp.from);

  const modules: string[] = [];
  const seen = new Set<unknown>();
  const names = identifiers(fnText);
  while (names.length) {
    const name = names.pop()!;
    const decl = byName.get(name);
    if (decl && !seen.has(decl)) {
      seen.add(decl);
      deps[`${basename(file)}#${decl.names.join(",")}`] = decl.digest;
      names.push(...decl.uses);
    }
    const from = importOf.get(name);
    if (from !== undefined) {
      const path = resolveImport(base, from);
      if (path && path !== file && !seen.has(path)) {
        seen.add(path);
        modules.push(path);
      }
    }
  }
  // A module imported from counts whole, with everything it imports from the project.
  while (modules.length) {
    const path = modules.pop()!;
    const shape = await shapeOf(path);
    if (!shape) continue; // gone since it was imported: the import fails on its own
    deps[relative(base, path).split(sep).join("/")] = shape.digest;
    for (const imp of shape.imports) {
      const next = resolveImport(dirname(path), imp.from);
      if (next && next !== file && !seen.has(next)) {
        seen.add(next);
        modules.push(next);
      }
    }
  }
  return deps;
}

/** The identifiers of a text, as a stack of unique names. */
function identifiers(text: string): string[] {
  return [...new Set(text.match(IDENTIFIER) ?? [])];
}

function isPackageFile(file: string): boolean {
  return file.includes(`${sep}node_modules${sep}`);
}

/** A relative specifier as Node, tsx and TypeScript resolve it to a project file; undefined for packages and misses. */
function resolveImport(fromDir: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../") && !specifier.startsWith("/") && !specifier.startsWith("file:")) return undefined;
  const target = specifier.startsWith("file:") ? fileURLToPath(specifier) : resolve(fromDir, specifier.split(/[?#]/)[0]!);
  const ext = extname(target);
  const stem = target.slice(0, target.length - ext.length);
  const candidates = [target];
  // TypeScript's convention: "./shape.js" names shape.ts.
  if (ext === ".js" || ext === ".jsx") candidates.push(`${stem}.ts`, `${stem}.tsx`);
  if (ext === ".mjs") candidates.push(`${stem}.mts`);
  if (ext === ".cjs") candidates.push(`${stem}.cts`);
  if (!LOADERS[ext]) {
    for (const e of [".ts", ".tsx", ".mts", ".js", ".mjs", ".jsx"]) candidates.push(`${target}${e}`);
    for (const e of [".ts", ".tsx", ".js", ".mjs"]) candidates.push(join(target, `index${e}`));
  }
  for (const candidate of candidates) {
    if (!LOADERS[extname(candidate)] || isPackageFile(candidate) || !existsSync(candidate)) continue;
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Gone between the two calls.
    }
  }
  return undefined;
}

/** The shape of a module in this flow run; undefined when it cannot be read. */
function shapeOf(path: string): Promise<ModuleShape | undefined> {
  let shape = readsOf.shapes.get(path);
  if (!shape) {
    shape = readShape(path);
    readsOf.shapes.set(path, shape);
  }
  return shape;
}

async function readShape(path: string): Promise<ModuleShape | undefined> {
  let source: string;
  try {
    source = await readFile(path, "utf8");
  } catch {
    return undefined;
  }
  const loader = LOADERS[extname(path)] ?? "ts";
  const id = sha256(`${SHAPE_VERSION}\0${loader}\0${source}`);
  let shape = shapes.get(id);
  if (!shape) {
    shape = fromDisk(id).then((kept) => kept ?? analyse(source, loader, path, id));
    shapes.set(id, shape);
  }
  return shape;
}

const DISK = join(tmpdir(), `cairn-${userInfo().uid}`, "code-deps");

async function fromDisk(id: string): Promise<ModuleShape | undefined> {
  try {
    const kept = JSON.parse(await readFile(join(DISK, `${id}.json`), "utf8")) as ModuleShape;
    return typeof kept.digest === "string" && Array.isArray(kept.decls) && Array.isArray(kept.imports) ? kept : undefined;
  } catch {
    return undefined; // not worked out yet, or torn: worked out again
  }
}

async function analyse(source: string, loader: "ts" | "tsx" | "js" | "jsx", path: string, id: string): Promise<ModuleShape> {
  let shape: ModuleShape;
  try {
    shape = await parseShape(source, loader, path);
  } catch {
    // Syntax this analysis cannot read: the module counts whole, every declaration of it too.
    shape = { digest: sha256(source), opaque: true, decls: [], imports: [] };
  }
  await writeFileAtomic(DISK, `${id}.json`, JSON.stringify(shape)).catch(() => {});
  return shape;
}

async function parseShape(source: string, loader: "ts" | "tsx" | "js" | "jsx", path: string): Promise<ModuleShape> {
  const [esbuild, acorn] = await Promise.all([loadEsbuild(), import("acorn")]);
  // es2022: syntax newer than acorn reads (decorators, `using`) is lowered first.
  const { code } = await esbuild.transform(source, { loader, format: "esm", target: "es2022", sourcefile: path });
  const program = acorn.parse(code, { ecmaVersion: "latest", sourceType: "module" }) as unknown as { body: AcornNode[] };
  const decls: Array<{ names: string[]; text: string }> = [];
  const imports: ModuleShape["imports"] = [];
  for (const statement of program.body) {
    const text = code.slice(statement.start, statement.end);
    switch (statement.type) {
      case "ImportDeclaration":
        imports.push({ locals: (statement.specifiers ?? []).map((s) => s.local!.name!), from: String(statement.source!.value) });
        break;
      case "ExportAllDeclaration":
        imports.push({ locals: [], from: String(statement.source!.value) });
        break;
      case "ExportNamedDeclaration":
      case "ExportDefaultDeclaration":
        if (statement.source) imports.push({ locals: [], from: String(statement.source.value) });
        else if (statement.declaration) {
          const names = declaredNames(statement.declaration);
          if (names.length) decls.push({ names, text });
        }
        break;
      default: {
        const names = declaredNames(statement);
        if (names.length) decls.push({ names, text });
      }
    }
  }
  const topLevel = new Set([...decls.flatMap((d) => d.names), ...imports.flatMap((i) => i.locals)]);
  return {
    digest: sha256(code),
    decls: decls.map((d) => ({
      names: d.names,
      digest: sha256(d.text),
      uses: identifiers(d.text).filter((n) => topLevel.has(n) && !d.names.includes(n)),
    })),
    imports,
  };
}

interface AcornNode {
  type: string;
  start: number;
  end: number;
  id?: AcornNode | null;
  name?: string;
  local?: AcornNode;
  specifiers?: AcornNode[];
  source?: { value: unknown } | null;
  declaration?: AcornNode | null;
  declarations?: AcornNode[];
  properties?: AcornNode[];
  elements?: Array<AcornNode | null>;
  key?: AcornNode;
  value?: AcornNode;
  left?: AcornNode;
  argument?: AcornNode;
}

/** The names a top-level statement declares: functions, classes, and every name a `const`/`let`/`var` pattern binds. */
function declaredNames(node: AcornNode): string[] {
  if ((node.type === "FunctionDeclaration" || node.type === "ClassDeclaration") && node.id?.name) return [node.id.name];
  if (node.type === "VariableDeclaration") return (node.declarations ?? []).flatMap((d) => patternNames(d.id ?? undefined));
  return [];
}

function patternNames(node: AcornNode | undefined | null): string[] {
  if (!node) return [];
  switch (node.type) {
    case "Identifier":
      return [node.name!];
    case "ObjectPattern":
      return (node.properties ?? []).flatMap((p) => patternNames(p.type === "RestElement" ? p.argument : p.value));
    case "ArrayPattern":
      return (node.elements ?? []).flatMap((e) => patternNames(e));
    case "AssignmentPattern":
      return patternNames(node.left);
    case "RestElement":
      return patternNames(node.argument);
    default:
      return [];
  }
}
