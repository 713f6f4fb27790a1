/**
 * What a function task's code reaches beyond its own text, found without the user declaring
 * it: the top-level declarations of its module that the function uses (helpers, constants,
 * what those use in turn, and the top-level statements that may change them or a name it
 * imports), and the project's own modules and data files it imports, statically or with a
 * literal `import()` or `require()` (a `require` made by `createRequire()` too), or runs in a
 * worker thread (`new Worker(new URL("./w.mjs", import.meta.url))`), with everything those import. Each enters the cache key as a code file
 * named `flow.ts#readJson` (a declaration) or `lib/shape.ts` (a module, by path from the
 * task's module), so editing a helper re-runs the tasks that use it and `cairn explain`
 * names it.
 *
 * Modules are compared as esbuild strips them (types and comments gone; the nearest
 * tsconfig.json applies, with what it extends, as under tsx): a comment or a type annotation changes nothing.
 * Names count where the code refers to them, not as property keys or after a dot. What a
 * module is made of is worked out once per content, with esbuild and acorn, and kept under
 * `$TMPDIR/cairn-<uid>/code-deps/` (used only when the folder is this user's alone); a flow
 * run reads and hashes each file once.
 *
 * It errs on the side of re-running: a local variable with a helper's name counts as the
 * helper, and a module that cannot be parsed counts whole (its imports are still followed).
 * The top-level statement that declares a task counts, with what it refers to (its builder
 * chain: an output schema, a wrapper its function is handed through). A task declared inside
 * a function (a factory, `makeTrain(model)`; a `.map()` callback; the flow's build function)
 * counts the top-level statement that holds it, with what that refers to; not the arguments
 * a factory is called with. A package whose real folder lies outside every node_modules folder
 * (a workspace package, a `file:` or `link:` dependency, the package importing itself or its
 * `#` imports; pnpm's hard-linked copy of a `file:` dependency too) is the project's code and is
 * followed, resolved as Node does for the importing module's format and with this process's
 * export conditions (`--conditions=development` too: export-conditions.ts), named by path
 * (`../tslib/src/index.ts`). A package installed from a registry counts by its version
 * (`package zod` -> `4.0.1`), not followed: its version stands for its files and what they import.
 * Not followed either: Cairn itself, `import()` of a computed path, tsconfig `paths` aliases, files read at run
 * time, programs started apart (`execFile` of a script) (declare those with `.codeFiles()` or
 * bump `.version()`).
 *
 * What no key can hold is told instead: the names a task's function takes from the function it is
 * declared in (`k` of a factory `scaled(k)`), whose values the closure hides (CAPTURED_ENTRY).
 *
 * A module tsc compiled (with a source map naming its TypeScript file) is read as that source
 * while the JavaScript is what tsc makes of the sources as they are (`asWritten`): the app tsc
 * compiled then has the keys `cairn run` and tsx give the source.
 */
import { readFileSync, realpathSync, type Stats, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isBuiltin, SourceMap } from "node:module";
import { basename, dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { TransformOptions } from "esbuild";
import { DECLARATION_ENTRY, ENV_READ_ENTRY, packageEntry, privateTempDir, sha256, writeFileAtomic } from "@cairn/cache";
import { scopeKey, type RunScope } from "@cairn/core";
import { isCliCompiledFile, shown } from "./declared-path.ts";
import { envReadBy, envReadsIn, type EnvReads, type ProcessNames, processNamesOf, type SyntaxNode } from "./env-read.ts";
import { loadEsbuild } from "./esbuild.ts";
import { exportConditions } from "./export-conditions.ts";
import { memo } from "./memo.ts";
import { type ModuleFormat, tsxFormat } from "./module-format.ts";
import { mappedSource, sourceMapPlace } from "./source-map-comment.ts";
import { tscEmit, type Unusable } from "./tsc-emit.ts";
import { withExtended } from "./tsconfig-extends.ts";

/** Bumped when the shapes below or the way they are worked out change. */
const SHAPE_VERSION = 12;

/** Where a function is in the source: start line, start column, end line, end column (lines 1-based, columns 0-based). */
type Range = [number, number, number, number];

/** What a piece of code refers to: top-level names, and modules by literal specifier. */
interface Refs {
  names: string[];
  modules: string[];
}

/** A module as the analysis sees it. */
interface ModuleShape {
  /** sha256 of the module's text as esbuild strips it; of its raw text when it is not code or cannot be parsed. */
  digest: string;
  /**
   * When the module imports by a TypeScript path (`./shape.ts`): the sha256 of that text with
   * those paths written as tsc's `rewriteRelativeImportExtensions` writes them (`./shape.js`),
   * so that it compares with the module tsc compiled from it. Absent: `digest` compares.
   */
  comparable?: string;
  /** Set when it cannot be parsed: it counts whole, also for the tasks it declares. */
  opaque?: true;
  /**
   * Top-level declarations: the names each declares, the sha256 of its text with the
   * statements that change it, and what those refer to (top-level names, modules); `funcs`:
   * where the functions inside it are in the source, so that a task declared inside one
   * counts the declaration (a factory's local variables, a `.map()` callback's); `span`: where
   * the statement is, so that a task declared by it at the top level counts it too (its
   * builder chain: an output schema, a wrapper around the function).
   */
  decls: Array<{ names: string[]; digest: string; uses: string[]; modules: string[]; funcs?: Range[]; span?: Range }>;
  /** Top-level statements that declare nothing but hold functions (`export default flow(...).build(() => ...)`). */
  blocks?: Array<{ label: string; digest: string; uses: string[]; modules: string[]; funcs: Range[]; span?: Range }>;
  /** Imports and re-exports: local names bound, names taken (`*`: all), and the specifier. */
  imports: Array<{ locals: string[]; taken: string[]; from: string }>;
  /** Top-level names bound to `process` or `process.env` (`import { env } from "node:process"`): a function's reads through them count as `process.env` ones. */
  processNames?: ProcessNames;
  /** Top-level names bound to `createRequire(...)`, as esbuild writes them (`require2`): a literal call of one loads a module. */
  requires?: string[];
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
const CODE_EXTENSIONS = Object.keys(LOADERS);

/** Shapes by content, worked out in this process. */
const shapes = new Map<string, Promise<ModuleShape>>();
/** What a function's text refers to, by its text. */
const functionRefs = new Map<string, Promise<Refs>>();
/** The names a function's text takes from around it, by its text (see freeNamesOf). */
const functionFreeNames = new Map<string, Promise<string[] | undefined>>();
/** What a function's text reads from process.env, by what its module binds to process and its text. */
const functionEnvReads = new Map<string, Promise<EnvReads>>();
/**
 * Reads of one flow run, kept on its scope: its tasks share them; the next run reads again. They
 * describe code this process has loaded, so a scope given the loaded code's (a worker's flow
 * module) keeps them with that code: a file edited or a package upgraded under a running worker
 * is not what it runs, and its keys say the code it runs.
 */
interface Reads {
  texts: Map<string, Promise<string | undefined>>;
  shapes: Map<string, Promise<ModuleShape | undefined>>;
  resolved: Map<string, string | undefined>;
  tsconfigs: Map<string, Promise<string | undefined>>;
  closures: Map<string, Promise<Closure>>;
  sourceMaps: Map<string, Promise<FoundSourceMap | undefined>>;
  compiled: Map<string, Promise<Compiled | undefined>>;
  printed: Map<string, Promise<string | undefined>>;
  /** The registry package a bare specifier names, by the importing module's folder and the package's name. */
  packages: Map<string, RegistryPackage | undefined>;
  /** A registry package's version, by its real folder. */
  versions: Map<string, string>;
}
const READS = scopeKey<Reads>("cairn code-deps reads");
const readsOf = (scope: RunScope): Reads =>
  scope.loadedState(READS, () => ({
    texts: new Map(),
    shapes: new Map(),
    resolved: new Map(),
    tsconfigs: new Map(),
    closures: new Map(),
    sourceMaps: new Map(),
    compiled: new Map(),
    printed: new Map(),
    packages: new Map(),
    versions: new Map(),
  }));

/**
 * The code dependencies of a function declared in `file`, whose text is `fnText`: code-file
 * name -> digest. Empty when `file` is not a module of the project (a package, a REPL).
 * Files are read once per flow run (`scope`).
 */
export async function functionDependencies(
  file: string,
  fnText: string,
  scope: RunScope,
  at?: { line: number; column: number },
): Promise<Record<string, string>> {
  if (!LOADERS[extname(file)] || isPackageFile(file)) return {};
  try {
    return await collect(readsOf(scope), file, fnText, at);
  } catch {
    // esbuild or acorn could not be loaded: the whole module counts rather than nothing.
    const source = await readFile(file, "utf8").catch(() => undefined);
    return source === undefined ? {} : { [basename(file)]: sha256(source) };
  }
}

/**
 * The project's modules and data files that the module `file` loads, however deep, by path
 * from its folder (not `file` itself): the code a script task run by tsx depends on.
 */
export async function moduleDependencies(file: string, scope: RunScope): Promise<Record<string, string>> {
  if (!LOADERS[extname(file)] || isPackageFile(file)) return {};
  const deps: Record<string, string> = {};
  try {
    const closure = await closureOf(readsOf(scope), file, file);
    for (const [dep, digest] of closure.files) if (dep !== file) deps[relative(dirname(file), dep).split(sep).join("/")] = digest;
    Object.assign(deps, packageEntries(closure.packages));
  } catch {
    // esbuild or acorn could not be loaded: the script's own digest still counts.
  }
  return deps;
}

// ------------------------------------------------------------------ modules compiled by tsc

/** A place in a module: line and column 1-based, as in stack traces. */
interface Place {
  file: string;
  line: number;
  column: number;
}

/** A function as the source of its module has it. */
export interface WrittenFunction {
  /** Where it is declared: in the TypeScript source, for a module compiled from one. */
  place: Place;
  /** Its text: as tsx gives it from the source, when it is found there; else as given. */
  fnText: string;
}

/** JavaScript that a compiler may have written, with a source map naming its TypeScript. */
const COMPILED = /\.(?:js|mjs|cjs)$/;
const TYPESCRIPT = /\.(?:ts|mts|cts|tsx)$/;

/**
 * A function declared at `place` (a stack frame's file, line and column; with `generated`, where
 * the JavaScript that ran is, when Node showed the frame through a source map), whose text is
 * `fnText`, as the source of its module has it. When the module that ran is JavaScript compiled
 * by tsc with a source map (`sourceMap`: a `.js.map` beside it; `inlineSourceMap`) that names one
 * TypeScript file, which is there, and every module of the project it loads was compiled from
 * the sources as they are now (each compared as esbuild strips it, with the TypeScript paths of
 * imports as tsc rewrites them, or else with what the project's TypeScript emits for it; each
 * data file the same at its place beside the sources): the
 * place in that file, and the function's text as tsx gives it from there. Its code fingerprint is
 * then the one `cairn run` and tsx make of the source, so an app compiled by tsc shares their
 * cache entries. Otherwise the place in the JavaScript that runs, which is what counts. A module
 * compiled from another version of its sources (edited since) says so in a
 * CairnCompiledSourceWarning, once per module and process.
 */
export async function asWritten(place: Place & { generated?: Place }, fnText: string, scope: RunScope): Promise<WrittenFunction> {
  const ran = place.generated && COMPILED.test(place.generated.file) ? place.generated : place;
  const given = { place: { file: ran.file, line: ran.line, column: ran.column }, fnText };
  if (!COMPILED.test(ran.file) || isPackageFile(ran.file)) return given;
  try {
    const r = readsOf(scope);
    const compiled = await compiledFrom(r, ran.file);
    if (!compiled) return given;
    if ("reason" in compiled) {
      warnOnce(ran.file, compiled.source, compiled.reason, compiled.fix);
      return given;
    }
    const at = compiled.map.findEntry(ran.line - 1, ran.column - 1) as { originalLine?: number; originalColumn?: number };
    if (at.originalLine === undefined || at.originalColumn === undefined) return given;
    const text = (await printedInSource(r, compiled.source, fnText)) ?? (await printedAtPlace(r, ran.file, compiled, fnText));
    return { place: { file: compiled.source, line: at.originalLine + 1, column: at.originalColumn + 1 }, fnText: text ?? fnText };
  } catch (error) {
    // esbuild or acorn could not be loaded, or a check failed: the JavaScript counts as it is, said once, never a silent miss.
    const why = String(error instanceof Error ? error.message : error).split("\n")[0];
    warnOnce(ran.file, undefined, `it could not be checked against its TypeScript source (${why})`, "run the sources with `cairn run` or tsx, or report this error");
    return given;
  }
}

/** A compiled module's source map, when it names one TypeScript file of the project that is there. */
interface FoundSourceMap {
  source: string;
  map: SourceMap;
}

/** A compiled module read as its source (`map`), or why it cannot be (`reason`). */
type Compiled = FoundSourceMap | { source: string; reason: string; fix?: string };

/** Once per flow run for each compiled module that declares tasks. */
function compiledFrom(r: Reads, file: string): Promise<Compiled | undefined> {
  return memo(r.compiled, file, async () => {
    const found = await sourceMapOf(r, file);
    if (!found) return undefined;
    const why = await disagreement(r, file, found.source);
    return why === undefined ? found : { source: found.source, ...(typeof why === "string" ? { reason: why } : why) };
  });
}

function sourceMapOf(r: Reads, file: string): Promise<FoundSourceMap | undefined> {
  return memo(r.sourceMaps, file, async () => {
    const text = await textOf(r, file);
    const place = text === undefined ? undefined : sourceMapPlace(file, text);
    if (!place) return undefined;
    const found = mappedSource(place, place.inline === undefined ? await textOf(r, place.file) : undefined);
    if (!found) return undefined;
    const { payload, source } = found;
    if (!TYPESCRIPT.test(source) || isPackageFile(source) || !isFile(source)) return undefined;
    try {
      return { source, map: new SourceMap(payload as ConstructorParameters<typeof SourceMap>[0]) };
    } catch {
      return undefined; // mappings it cannot read: as without a map
    }
  });
}

/**
 * Why the program `jsFile` loads was not compiled from the sources as they are now; undefined
 * when it was: every module of the project it reaches (itself too) has a source map naming the
 * TypeScript file at the same place in the source tree as it has in the compiled one, the two
 * the same as esbuild strips them; every data file it imports is at its place there, the same.
 * The sources' own imports then lead to those same files.
 */
async function disagreement(r: Reads, jsFile: string, tsFile: string): Promise<string | { reason: string; fix: string } | undefined> {
  const counterpart = (path: string) => resolve(dirname(tsFile), relative(dirname(jsFile), path));
  const closure = await closureOf(r, jsFile, jsFile);
  for (const [path, digest] of closure.files) {
    if (closure.packaged.has(path)) continue; // a workspace package: the sources import the very same file
    if (!LOADERS[extname(path)]) {
      if ((await shapeOf(r, counterpart(path)))?.digest !== digest) return `${shown(counterpart(path))} is not the same as ${shown(path)}, which the compiled code imports`;
      continue;
    }
    const source = path === jsFile ? tsFile : (await sourceMapOf(r, path))?.source;
    if (source === undefined) return `${shown(path)}, which it imports, has no source map naming its TypeScript file`;
    if (withoutExtension(source) !== withoutExtension(counterpart(path))) return `the source map of ${shown(path)} names ${shown(source)}, not a file at its place beside ${shown(tsFile)}`;
    const [compiled, written] = await Promise.all([shapeOf(r, path), shapeOf(r, source)]);
    const same = compiled && written && (compiled.comparable ?? compiled.digest) === (written.comparable ?? written.digest);
    if (!same) {
      const emitted = await emittedByTsc(r, source, path);
      if (emitted !== true) return differs(source, path, emitted);
    }
  }
  return undefined;
}

/**
 * Whether `jsFile` is what the project's own tsc emits for `tsFile` as it is now (the two
 * compared as esbuild strips them): for what tsc writes otherwise than esbuild (an enum, a
 * namespace, parameter properties, decorators, a lower target), where the comparison with the
 * source fails. Undefined when there is no TypeScript where the sources are to ask; `unusable`
 * (why) when there is one that cannot be asked.
 */
async function emittedByTsc(r: Reads, tsFile: string, jsFile: string): Promise<boolean | Unusable | undefined> {
  const [source, compiled] = await Promise.all([textOf(r, tsFile), textOf(r, jsFile)]);
  if (source === undefined || compiled === undefined) return false;
  const emitted = tscEmit(tsFile, source);
  if (typeof emitted !== "string") return emitted;
  const strip = (text: string) =>
    loadEsbuild()
      .transform(text, { loader: "js", format: "esm", target: "es2022", minifyWhitespace: true })
      .then(
        (out) => out.code,
        () => undefined,
      );
  const [a, b] = await Promise.all([strip(emitted), strip(compiled)]);
  return a !== undefined && a === b;
}

function withoutExtension(path: string): string {
  return path.slice(0, path.length - extname(path).length);
}

/** Why a source and the module compiled from it differ, as far as can be told. */
function differs(source: string, compiled: string, emitted: false | Unusable | undefined): string | { reason: string; fix: string } {
  const changedSince = (statOrUndefined(source)?.mtimeMs ?? 0) > (statOrUndefined(compiled)?.mtimeMs ?? Infinity);
  if (changedSince) return `${shown(source)} was changed after ${shown(compiled)} was compiled from it`;
  const pair = `${shown(source)} and ${shown(compiled)} differ beyond types and comments`;
  if (emitted) {
    const reason = `${pair}, and tsc cannot be asked whether it compiled the one from the other: ${emitted.unusable}`;
    return { reason, fix: "install TypeScript 5 or 6 where the sources are (a devDependency is enough), or run the sources with `cairn run` or tsx" };
  }
  return emitted === undefined
    ? `${pair}, and no \`typescript\` package is installed where the sources are to tell whether tsc compiled the one from the other (what tsc writes otherwise than esbuild: an enum, a namespace, parameter properties, decorators, a target below ES2022); install it beside them (a devDependency is enough)`
    : `${pair}, and the project's TypeScript does not compile the one into the other with the options of the tsconfig.json nearest to it (compiled from another version of it, with another tsconfig, or with a const enum of another module inlined)`;
}

/** Compiled modules warned about: once per process, for an app that runs its flow many times. */
const warned = new Set<string>();

function warnOnce(file: string, source: string | undefined, reason: string, fix = "compile again after an edit"): void {
  if (warned.has(file)) return;
  warned.add(file);
  process.emitWarning(
    `${shown(file)} counts in cache keys as the JavaScript it is${source === undefined ? "" : `, not as its source ${shown(source)}`}: ${reason}. ` +
      `Its tasks share no cache entries with \`cairn run\` or tsx of the sources while so: ${fix}.`,
    "CairnCompiledSourceWarning",
  );
}

/**
 * tsx's options for a module (format, target, minifyWhitespace, keepNames): esbuild prints a
 * function as tsx gives its text. `format`: the one tsx compiles the source to (tsxFormat), as
 * a CommonJS module's function names an import `import_promises.readFile`.
 */
function tsxOptions(loader: "ts" | "tsx" | "js" | "jsx", tsconfig: string | undefined, format: ModuleFormat): TransformOptions {
  const options: TransformOptions = { loader, format, target: `node${process.versions.node}`, minifyWhitespace: true, keepNames: true, ...(tsconfig ? { tsconfigRaw: tsconfig } : {}) };
  return format === "cjs" ? { ...options, platform: "node" } : options; // as tsx compiles CommonJS
}

/**
 * `fnText` (the text tsc wrote of a function) as tsx gives it from the TypeScript module `file`:
 * printed by the esbuild tsx uses with tsx's options, and found in that module printed so (it is
 * then that function's text under tsx); undefined when it is not found there (a function of
 * another module, or one tsc wrote otherwise than esbuild reads it). Kept on disk by content.
 */
async function printedInSource(r: Reads, file: string, fnText: string): Promise<string | undefined> {
  const source = await textOf(r, file);
  const loader = LOADERS[extname(file)];
  if (source === undefined || !loader) return undefined;
  const tsconfig = await tsconfigFor(r, dirname(file));
  const format = tsxFormat(file);
  const id = sha256(`${SHAPE_VERSION}\0as-tsx\0${loadEsbuild().version}\0${process.versions.node}\0${loader}\0${format}\0${tsconfig ?? ""}\0${source}\0${fnText}`);
  const kept = await fromDisk<{ text?: unknown }>(`${id}.tsx.json`);
  if (kept && (typeof kept.text === "string" || kept.text === null)) return kept.text ?? undefined;
  const [printed, module] = await Promise.all([printFunction(fnText, tsconfig, format), printedModule(r, file, source, loader, tsconfig, format)]);
  const text = printed !== undefined && module?.includes(printed) ? printed : null;
  await keep(`${id}.tsx`, { text });
  return text ?? undefined;
}

/**
 * `fnText` as tsx gives it, found by where it is: the function that starts in the source where
 * the compiled module's one text of it (`jsFile` holds it once) starts, as the source map says;
 * in the module as tsx prints it, the function that starts there. For a function whose text tsx
 * writes otherwise than tsc (tsx writes an enum's member of the same module as its value,
 * `Color.Red` as `1`): the modules are known to be compiled from the sources as they are, so the
 * place names that very function. Undefined when the place cannot be told.
 */
async function printedAtPlace(r: Reads, jsFile: string, compiled: FoundSourceMap, fnText: string): Promise<string | undefined> {
  const js = await textOf(r, jsFile);
  const at = js?.indexOf(fnText) ?? -1;
  if (js === undefined || at < 0 || js.indexOf(fnText, at + 1) >= 0) return undefined;
  const before = js.slice(0, at).split("\n");
  const [line, column] = [before.length - 1, before.at(-1)!.length];
  const entry = compiled.map.findEntry(line, column) as { generatedLine?: number; generatedColumn?: number; originalLine?: number; originalColumn?: number };
  if (entry.generatedLine !== line || entry.generatedColumn !== column || entry.originalLine === undefined) return undefined;
  const source = await textOf(r, compiled.source);
  const loader = LOADERS[extname(compiled.source)];
  if (source === undefined || !loader) return undefined;
  const tsconfig = await tsconfigFor(r, dirname(compiled.source));
  const [out, acorn] = await Promise.all([loadEsbuild().transform(source, { ...tsxOptions(loader, tsconfig, tsxFormat(compiled.source)), sourcemap: "external", sourcefile: compiled.source }), import("acorn")]);
  const map = new SourceMap(JSON.parse(out.map));
  const found: string[] = [];
  const visit = (n: AcornNode): void => {
    if ((n.type === "FunctionExpression" || n.type === "ArrowFunctionExpression" || n.type === "FunctionDeclaration") && n.loc) {
      const from = map.findEntry(n.loc.start.line - 1, n.loc.start.column) as typeof entry;
      // A mapping of the function's own start (not of a token before it) to the same place.
      const own = from.generatedLine === n.loc.start.line - 1 && from.generatedColumn === n.loc.start.column;
      if (own && from.originalLine === entry.originalLine && from.originalColumn === entry.originalColumn) found.push(out.code.slice(n.start, n.end));
    }
    for (const [, child] of childNodes(n)) visit(child);
  };
  visit(acorn.parse(out.code, { ecmaVersion: "latest", sourceType: "module", locations: true }) as unknown as AcornNode);
  return found.length === 1 ? found[0] : undefined;
}

/** The module as tsx prints it; once per flow run. */
function printedModule(r: Reads, file: string, source: string, loader: "ts" | "tsx" | "js" | "jsx", tsconfig: string | undefined, format: ModuleFormat): Promise<string | undefined> {
  return memo(r.printed, file, () => loadEsbuild()
    .transform(source, tsxOptions(loader, tsconfig, format))
    .then(
      (out) => out.code,
      () => undefined, // what tsx could not compile either
    ));
}

/** A function's text printed on its own as tsx prints it in its module: an arrow or function in parentheses, a method (`run(x) { ... }`) in an object. */
async function printFunction(fnText: string, tsconfig: string | undefined, format: ModuleFormat): Promise<string | undefined> {
  const acorn = await import("acorn");
  for (const [open, close] of [["(", ")"], ["({", "})"]] as const) {
    try {
      const code = (await loadEsbuild().transform(`${open}${fnText}${close};`, tsxOptions("js", tsconfig, format))).code;
      const program = acorn.parse(code, { ecmaVersion: "latest", sourceType: "module" }) as unknown as { body: AcornNode[] };
      const expression = program.body.at(-1)?.expression as AcornNode | undefined;
      const node = open === "(" ? expression : (expression?.properties as AcornNode[] | undefined)?.[0];
      return node ? code.slice(node.start, node.end) : undefined;
    } catch {
      // the other wrapping, then none
    }
  }
  return undefined;
}

/** Reads are shared by the tasks of one flow run; a new run reads again. */

async function collect(r: Reads, file: string, fnText: string, at: { line: number; column: number } | undefined): Promise<Record<string, string>> {
  const deps: Record<string, string> = {};
  const own = await shapeOf(r, file);
  if (!own) return deps;
  const base = dirname(file);
  const byName = new Map<string, ModuleShape["decls"][number]>();
  for (const decl of own.decls) for (const name of decl.names) byName.set(name, decl);
  const importOf = new Map<string, string>();
  for (const imp of own.imports) for (const local of imp.locals) importOf.set(local, imp.from);

  const seen = new Set<unknown>();
  const names: string[] = [];
  const modules: string[] = [];
  const packages: Packages = new Map();
  const addModule = (specifier: string) => {
    const path = resolveImport(r, file, specifier);
    if (path === undefined) addPackage(packages, registryPackage(r, file, specifier));
    if (path && !seen.has(path)) {
      seen.add(path);
      modules.push(path);
    }
  };
  if (own.opaque) {
    deps[basename(file)] = own.digest;
    for (const imp of own.imports) addModule(imp.from);
  }
  // A module the task's module imports for its side effects alone (`import "./plugins.ts"`) may
  // change anything the task uses (a registry it fills): it counts for every task of the module.
  for (const imp of own.imports) if (!imp.locals.length && !imp.taken.length) addModule(imp.from);
  // Only names the module has at its top level can lead anywhere: most functions use none,
  // and are not parsed at all.
  const candidates = new Set(fnText.match(IDENTIFIER) ?? []);
  const requires = own.requires ?? [];
  if ([...candidates].some((n) => byName.has(n) || importOf.has(n) || requires.includes(n)) || /\b(?:import|require|URL)\s*\(/.test(fnText)) {
    const refs = await refsOfFunction(fnText, requires);
    names.push(...refs.names);
    for (const m of refs.modules) addModule(m);
  }
  // The top-level statement that declares the task counts, with what it refers to: its builder
  // chain (an output schema, a wrapper the function is handed through), and, for a task declared
  // inside a function (a factory, a callback), that function's local variables.
  /** The top-level statement that holds the function the task is declared in, if it is declared in one. */
  let enclosing: { span?: Range } | undefined;
  if (at) {
    const inside = (r: Range) => holds(r, at);
    const inFunction = own.decls.find((d) => d.funcs?.some(inside));
    const home = inFunction ?? own.decls.find((d) => d.span && inside(d.span));
    const block = home ? undefined : own.blocks?.find((b) => b.funcs.some(inside) || (b.span && inside(b.span)));
    enclosing = inFunction ?? (block?.funcs.some(inside) ? block : undefined);
    // Named for explain (a symbol: no name of the record, so not in the key).
    if (home) {
      names.push(home.names[0]!);
      Object.assign(deps, { [DECLARATION_ENTRY]: `${basename(file)}#${home.names.join(",")}` });
    }
    if (block) {
      deps[`${basename(file)}#${block.label}`] = block.digest;
      Object.assign(deps, { [DECLARATION_ENTRY]: `${basename(file)}#${block.label}` });
      names.push(...block.uses);
      for (const m of block.modules) addModule(m);
    }
  }
  // What it reads from process.env, also through a name its module binds to it (`env.SCALE`) or
  // one of its own; given even when nothing, as this (from its parsed text) replaces what its
  // definition found by a pattern that also matches strings and comments (envReadsOfTask).
  Object.assign(deps, { [ENV_READ_ENTRY]: await envReadsOfFunction(fnText, own.processNames) });
  // A task declared inside a function may use that function's variables: their values are in no key.
  if (at && enclosing) {
    const captured = await capturedNames(r, file, own, fnText, { byName, importOf, at, span: enclosing.span });
    if (captured.length) Object.assign(deps, { [CAPTURED_ENTRY]: captured });
  }
  while (names.length || modules.length) {
    while (names.length) {
      const name = names.pop()!;
      const decl = byName.get(name);
      if (decl && !seen.has(decl)) {
        seen.add(decl);
        deps[`${basename(file)}#${decl.names.join(",")}`] = decl.digest;
        names.push(...decl.uses);
        for (const m of decl.modules) addModule(m);
      }
      const from = importOf.get(name);
      if (from !== undefined) addModule(from);
    }
    const path = modules.pop();
    if (path === undefined || path === file) continue; // the task's module: only what is named from it counts
    const closure = await closureOf(r, file, path);
    for (const [dep, digest] of closure.files) deps[relative(base, dep).split(sep).join("/")] = digest;
    for (const [name, versions] of closure.packages) for (const version of versions) addPackage(packages, { name, version });
    if (closure.backWhole) deps[basename(file)] = own.digest;
    names.push(...closure.back);
  }
  return Object.assign(deps, packageEntries(packages));
}

/** Whether the place `at` (line 1-based, column 1-based) is inside the range `r`. */
function holds(r: Range, at: { line: number; column: number }): boolean {
  return (r[0] < at.line || (r[0] === at.line && r[1] < at.column)) && (at.line < r[2] || (at.line === r[2] && at.column - 1 <= r[3]));
}

/**
 * The code-dependencies entry (a symbol: not in the key) that lists the names a task's function
 * takes from the function it is declared in (a factory's parameter, `k` of `scaled(k)`): their
 * values are in no cache key, so the task warns (see task()).
 */
export const CAPTURED_ENTRY = Symbol("cairn.code.captured");

/**
 * The names `fnText` uses that it does not declare itself and that are not its module's top-level
 * names or imports, nor globals, nor names a module imported by it declares (a function handed
 * to `.run()` from there): what it can only take from a function around it. Names the compiler
 * makes (`__name`, `import_fs`) and those of a CommonJS module's wrapper are left out.
 */
async function capturedNames(
  r: Reads,
  file: string,
  own: ModuleShape,
  fnText: string,
  where: { byName: ReadonlyMap<string, unknown>; importOf: ReadonlyMap<string, string>; at: { line: number; column: number }; span: Range | undefined },
): Promise<string[]> {
  const { byName, importOf, at } = where;
  const known = (n: string) => byName.has(n) || importOf.has(n) || (own.requires ?? []).includes(n) || isAmbient(n);
  if (!mayTakeNames(fnText, known)) return [];
  const free = (await freeNamesOf(fnText)) ?? [];
  const around = free.filter((n) => !known(n));
  if (!around.length) return around;
  // One the task is named after (`task(\`fit-${model}\`)`) is in its key through its name.
  const text = await textOf(r, file);
  const elsewhere = new Set<string>(namesInTaskName(text, at));
  for (const imp of own.imports) {
    const path = resolveImport(r, file, imp.from);
    const shape = path === undefined ? undefined : await shapeOf(r, path);
    for (const decl of shape?.decls ?? []) for (const n of decl.names) elsewhere.add(n);
    for (const i of shape?.imports ?? []) for (const n of i.locals) elsewhere.add(n);
  }
  const left = around.filter((n) => !elsewhere.has(n));
  if (!left.length) return left;
  // The statement declaring the task is in its key through its text: only a name whose value
  // may come from outside that text is in no key.
  const statement = statementText(text, where.span);
  if (statement === undefined) return [];
  const outside = await valuedFromOutside(statement, LOADERS[extname(file)] ?? "ts", { topLevel: (n) => byName.has(n), imported: (n) => importOf.has(n) || (own.requires ?? []).includes(n) });
  return left.filter((n) => outside.has(n));
}

/**
 * The identifiers in the argument of the last `task(` call before `at` (where `.run()` is called)
 * in the module's source `text`: what the task's name is made of. Read as text, not parsed (the
 * source is TypeScript): a word of a string in it counts too, which errs towards no warning.
 */
function namesInTaskName(text: string | undefined, at: { line: number; column: number }): string[] {
  if (text === undefined) return [];
  let offset = 0;
  for (let line = 1; line < at.line && offset >= 0; line++) offset = text.indexOf("\n", offset) + 1;
  const before = text.slice(0, offset + at.column - 1);
  const call = [...before.matchAll(/\btask\s*\(/g)].at(-1);
  if (!call) return [];
  let depth = 1;
  let end = call.index + call[0].length;
  for (; end < before.length && depth > 0; end++) {
    const c = before[end];
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
  }
  return before.slice(call.index + call[0].length, end - 1).match(IDENTIFIER) ?? [];
}

/** The text of the source `text` in `span` (a top-level statement). */
function statementText(text: string | undefined, span: Range | undefined): string | undefined {
  if (text === undefined || span === undefined) return undefined;
  const lines = text.split("\n").slice(span[0] - 1, span[2]);
  if (!lines.length) return undefined;
  lines[lines.length - 1] = lines.at(-1)!.slice(0, span[3] + 1);
  lines[0] = lines[0]!.slice(span[1]);
  return lines.join("\n");
}

/** Globals whose calls bring values from outside the code: the clock, the network, randomness, a module loaded by a computed name. */
const OUTSIDE_GLOBALS = new Set(["fetch", "require", "Date", "performance", "crypto"]);

/**
 * The names bound in a top-level `statement` (its source) whose value may come from outside its
 * text, so from outside a key that holds the text: a parameter of a function in it other than
 * an inline callback (`function scaled(k)`, `const make = (k) => ...`, which code elsewhere calls
 * with any value; not `MODELS.map((m) => ...)`, called right there over what the key holds), and
 * a variable or local function whose value reads one of those, `process` (`process.env.K`), or
 * the result of a call of imported or unknown code or of `fetch`, `Date` and the like
 * (`readConfig()`). A local helper, object, template or constant written there is in the key
 * through the text. Names are matched by name across the statement (a name bound twice counts as
 * from outside if either binding is). None when the statement does not parse: it errs towards
 * saying nothing. Once per text in a process.
 */
function valuedFromOutside(statement: string, loader: "ts" | "tsx" | "js" | "jsx", module: { topLevel: (n: string) => boolean; imported: (n: string) => boolean }): Promise<Set<string>> {
  return memo(statementOutsiders, `${loader}\0${statement}`, async () => {
    let program: AcornNode;
    try {
      const code = (await loadEsbuild().transform(statement, { loader, format: "esm", target: "es2022" })).code;
      program = (await loadAcorn()).parse(code, { ecmaVersion: "latest", sourceType: "module" }) as unknown as AcornNode;
    } catch {
      return new Set<string>();
    }
    const bindings = bindingsIn(program);
    const verdicts = new Map<string, boolean>();
    const fromOutside = (name: string): boolean => {
      const known = verdicts.get(name);
      if (known !== undefined) return known;
      verdicts.set(name, false); // a cycle (`const a = () => b, b = () => a`) adds nothing
      const verdict = (bindings.get(name) ?? []).some(bindingFromOutside);
      verdicts.set(name, verdict);
      return verdict;
    };
    const isOutsideCall = (call: AcornNode): boolean => {
      const callee = call.callee;
      if (callee?.type === "MemberExpression" && baseName(callee.object as AcornNode, false) === "Math" && (callee.property as AcornNode).name === "random") return true;
      const root = baseName(callee, true);
      if (root === undefined || bindings.has(root)) return false; // a local's value counts through its binding
      if (module.imported(root)) return true;
      if (module.topLevel(root)) return false;
      return isAmbient(root) ? OUTSIDE_GLOBALS.has(root) : true;
    };
    /** Whether evaluating `node` may give a value from outside: a function only through the names it takes from around it (its body runs later, as the task's code). */
    const valueFromOutside = (node: AcornNode | null | undefined): boolean => {
      if (!node) return false;
      if (freeNamesIn(node).some((n) => (bindings.has(n) ? fromOutside(n) : n === "process"))) return true;
      let found = false;
      const visit = (n: AcornNode): void => {
        if (found || n.type === "FunctionExpression" || n.type === "ArrowFunctionExpression" || n.type === "FunctionDeclaration") return;
        if (n.type === "ImportExpression" || ((n.type === "CallExpression" || n.type === "NewExpression") && isOutsideCall(n))) found = true;
        for (const [, child] of childNodes(n)) visit(child);
      };
      if (!isFunction(node) && node.type !== "FunctionDeclaration") visit(node);
      return found;
    };
    const bindingFromOutside = (b: Binding): boolean => {
      switch (b.kind) {
        case "parameter": {
          const call = b.call;
          if (!call) return true; // a function called from elsewhere, with any value
          return valueFromOutside(call.callee === b.fn ? undefined : call.callee) || (call.arguments ?? []).some((a) => a !== b.fn && valueFromOutside(a));
        }
        case "value":
          return valueFromOutside(b.from);
        case "catch":
          return false;
      }
    };
    return new Set([...bindings.keys()].filter(fromOutside));
  });
}

const statementOutsiders = new Map<string, Promise<Set<string>>>();

/**
 * How a name is bound in a statement: a function's parameter (with the call it is an inline
 * callback of, if it is one), a variable, function or class given a value by `from` (its
 * initializer, an assignment, what a `for...of` runs over, the declaration itself), a catch's error.
 */
type Binding = { kind: "parameter"; fn: AcornNode; call: AcornNode | undefined } | { kind: "value"; from: AcornNode | undefined } | { kind: "catch" };

/** Every binding of each name in `root`, at any depth. */
function bindingsIn(root: AcornNode): Map<string, Binding[]> {
  const bindings = new Map<string, Binding[]>();
  const add = (names: string[], binding: Binding) => {
    for (const n of names) bindings.set(n, [...(bindings.get(n) ?? []), binding]);
  };
  const visit = (node: AcornNode, parent: AcornNode | undefined): void => {
    switch (node.type) {
      case "FunctionDeclaration":
      case "FunctionExpression":
      case "ArrowFunctionExpression": {
        const called = parent && (parent.type === "CallExpression" || parent.type === "NewExpression") && (parent.callee === node || parent.arguments?.includes(node));
        add(((node.params as AcornNode[]) ?? []).flatMap(patternNames), { kind: "parameter", fn: node, call: called ? parent : undefined });
        if (node.type === "FunctionDeclaration" && node.id?.name) add([node.id.name], { kind: "value", from: node });
        break;
      }
      case "ClassDeclaration":
        if (node.id?.name) add([node.id.name], { kind: "value", from: node });
        break;
      case "VariableDeclarator":
        add(patternNames(node.id), { kind: "value", from: node.init as AcornNode | undefined });
        break;
      case "ForOfStatement":
      case "ForInStatement":
        add(patternNames((node.left as AcornNode).type === "VariableDeclaration" ? (node.left as AcornNode).declarations?.[0]?.id : (node.left as AcornNode)), { kind: "value", from: node.right as AcornNode });
        break;
      case "AssignmentExpression":
        if ((node.left as AcornNode).type === "Identifier") add([(node.left as AcornNode).name!], { kind: "value", from: node.right as AcornNode });
        break;
      case "CatchClause":
        add(patternNames(node.param as AcornNode | null), { kind: "catch" });
        break;
    }
    for (const [, child] of childNodes(node)) visit(child, node);
  };
  visit(root, undefined);
  return bindings;
}

/** The names `node` refers to that it does not bind itself (at any depth, by name). */
function freeNamesIn(node: AcornNode): string[] {
  const bound = bindingsIn(node);
  return references(node).names.filter((n) => !bound.has(n));
}

/**
 * Whether `fnText` may use a name it does not declare and `known` does not tell, as its words
 * say without parsing it: a word after a dot, an object's key (`{ y: ...`), a keyword, a name in
 * its parameters or after `const`, `let`, `var`, `function` or `class` does not count. Most
 * task functions use only their inputs and known names, and are then not parsed at all.
 */
function mayTakeNames(fnText: string, known: (name: string) => boolean): boolean {
  const params = parameterEnd(fnText);
  const declared = new Set([...fnText.matchAll(/\b(?:const|let|var|function|class)\s+([A-Za-z_$][\w$]*)/g)].map((m) => m[1]!));
  for (const name of fnText.slice(0, params).match(IDENTIFIER) ?? []) declared.add(name);
  for (const m of fnText.matchAll(IDENTIFIER)) {
    const name = m[0];
    if (m.index < params || KEYWORDS.has(name) || declared.has(name) || known(name)) continue;
    const before = charNextTo(fnText, m.index - 1, -1);
    const after = charNextTo(fnText, m.index + name.length, 1);
    if (before === "." || (after === ":" && (before === "{" || before === ","))) continue;
    return true;
  }
  return false;
}

/** The first character of `text` from `i` on, in the direction `step`, that is not white space. */
function charNextTo(text: string, i: number, step: 1 | -1): string | undefined {
  while (i >= 0 && i < text.length && /\s/.test(text[i]!)) i += step;
  return text[i];
}

/** Where a function's parameters end in its text: after the `)` that closes the first `(`, or at an arrow's `=>`. */
function parameterEnd(fnText: string): number {
  const arrow = fnText.indexOf("=>");
  const open = fnText.indexOf("(");
  if (open < 0 || (arrow >= 0 && arrow < open)) return Math.max(arrow, 0);
  let depth = 0;
  for (let i = open; i < fnText.length; i++) {
    if (fnText[i] === "(") depth++;
    else if (fnText[i] === ")" && --depth === 0) return i + 1;
  }
  return 0;
}

const KEYWORDS = new Set(
  (
    "async await break case catch class const continue debugger default delete do else export extends false finally for from function get if import in " +
    "instanceof let new null of return set static super switch this throw true try typeof var void while with yield"
  ).split(" "),
);

/** The wrapper's names of a CommonJS module, which are no globals. */
const MODULE_WRAPPER = new Set(["require", "module", "exports", "__filename", "__dirname", "arguments"]);

/** A global (`Math`, `fetch`, `process`), a CommonJS module's own name, or a name esbuild makes (`__name`, `import_promises`). */
function isAmbient(name: string): boolean {
  return name in globalThis || MODULE_WRAPPER.has(name) || /^(?:__[A-Za-z]+|import_[\w$]+)$/.test(name);
}

/**
 * The names a function's text (`fn.toString()`) refers to and does not bind itself: not its
 * parameters, variables, functions, classes or catch parameters (at any depth; a name bound
 * anywhere inside counts as bound everywhere, so a shadowed name is missed rather than named
 * wrongly). Undefined when the text does not parse. Once per text in a process.
 */
function freeNamesOf(fnText: string): Promise<string[] | undefined> {
  return memo(functionFreeNames, fnText, async () => {
    const program = parseFunctionTextWith(await loadAcorn(), fnText);
    if (!program) return undefined;
    const bound = new Set<string>(["arguments"]);
    const visit = (node: AcornNode): void => {
      switch (node.type) {
        case "FunctionDeclaration":
        case "FunctionExpression":
        case "ArrowFunctionExpression":
          for (const p of (node.params as AcornNode[]) ?? []) for (const n of patternNames(p)) bound.add(n);
          if (node.id?.name) bound.add(node.id.name);
          break;
        case "ClassDeclaration":
        case "ClassExpression":
          if (node.id?.name) bound.add(node.id.name);
          break;
        case "VariableDeclarator":
          for (const n of patternNames(node.id)) bound.add(n);
          break;
        case "CatchClause":
          for (const n of patternNames(node.param as AcornNode | null)) bound.add(n);
          break;
      }
      for (const [, child] of childNodes(node)) visit(child);
    };
    visit(program as unknown as AcornNode);
    return references(program as unknown as AcornNode).names.filter((n) => !bound.has(n));
  });
}

/** What importing `start` brings in, for a task of `file`. */
interface Closure {
  /** Every module and data file reached: path -> digest (a module counts whole). */
  files: Map<string, string>;
  /** Names taken from the task's own module by an import cycle: they count as helpers. */
  back: string[];
  /** An import cycle takes all of the task's module. */
  backWhole: boolean;
  /** The files reached through a package of the project (a workspace package): the same file for a compiled app as for its sources. */
  packaged: Set<string>;
  /** The packages installed from a registry that the modules reached import. */
  packages: Packages;
}

/** Everything `start` imports from the project, however deep; once per flow run for the tasks of `file`. */
function closureOf(r: Reads, file: string, start: string): Promise<Closure> {
  const key = `${file}\0${start}`;
  let closure = r.closures.get(key);
  if (!closure) {
    closure = (async () => {
      const found: Closure = { files: new Map(), back: [], backWhole: false, packaged: new Set(), packages: new Map() };
      const queue = [start];
      const seen = new Set(queue);
      while (queue.length) {
        const path = queue.pop()!;
        const shape = await shapeOf(r, path);
        if (!shape) continue; // gone since it was imported: the import fails on its own
        found.files.set(path, shape.digest);
        for (const imp of shape.imports) {
          const next = resolveImport(r, path, imp.from);
          if (next === undefined) addPackage(found.packages, registryPackage(r, path, imp.from));
          if (next === file) {
            if (imp.taken.includes("*")) found.backWhole = true;
            else found.back.push(...imp.taken);
          } else if (next && !seen.has(next)) {
            seen.add(next);
            queue.push(next);
            if (found.packaged.has(path) || isBareSpecifier(imp.from)) found.packaged.add(next);
          }
        }
      }
      return found;
    })();
    r.closures.set(key, closure);
  }
  return closure;
}

/**
 * Whether `file` is in an installed package (not the project's code): inside a node_modules
 * folder, but for a copy pnpm made of a `file:` dependency (or an injected workspace package),
 * `node_modules/.pnpm/lib@file+..+lib/node_modules/lib/`: its files are hard links to the
 * project's own, which the user edits in place while its version stays, and they are what runs.
 */
function isPackageFile(file: string): boolean {
  const at = file.indexOf(`${sep}node_modules${sep}`);
  if (at < 0) return false;
  const copy = PNPM_FILE_COPY.exec(file.slice(at));
  return copy === null || file.slice(at + copy[0].length).includes(`${sep}node_modules${sep}`);
}

/** The folder pnpm copies a `file:` dependency to: its virtual store's `<name>@file+<path>` (the path from the lockfile's folder, `/` as `+`). */
const PNPM_FILE_COPY = new RegExp(String.raw`^[/\\]node_modules[/\\]\.pnpm[/\\][^/\\]*@file\+[^/\\]*[/\\]node_modules[/\\](?:@[^/\\]+[/\\])?[^/\\]+[/\\]`);

/**
 * A specifier as Node, tsx and TypeScript resolve it from the module `fromFile` to a project
 * file (code, or a data file such as JSON); undefined for installed packages and misses. Once
 * per flow run.
 */
function resolveImport(r: Reads, fromFile: string, specifier: string): string | undefined {
  const key = `${fromFile}\0${specifier}`;
  if (r.resolved.has(key)) return r.resolved.get(key);
  const found = resolveNow(fromFile, specifier);
  r.resolved.set(key, found);
  return found;
}

function isBareSpecifier(specifier: string): boolean {
  return !/^(?:\.\.?\/|\/|file:)/.test(specifier);
}

function resolveNow(fromFile: string, specifier: string): string | undefined {
  if (specifier.startsWith("#")) return resolvePackageImport(fromFile, specifier);
  if (isBareSpecifier(specifier)) return resolveProjectPackage(fromFile, specifier);
  return resolveRelative(dirname(fromFile), specifier);
}

function resolveRelative(fromDir: string, specifier: string): string | undefined {
  const target = specifier.startsWith("file:") ? fileURLToPath(specifier) : resolve(fromDir, specifier.split(/[?#]/)[0]!);
  const ext = extname(target);
  const stem = target.slice(0, target.length - ext.length);
  const candidates = [target];
  // TypeScript's convention: "./shape.js" names shape.ts.
  if (ext === ".js" || ext === ".jsx") candidates.push(`${stem}.ts`, `${stem}.tsx`);
  if (ext === ".mjs") candidates.push(`${stem}.mts`);
  if (ext === ".cjs") candidates.push(`${stem}.cts`);
  if (!LOADERS[ext]) {
    for (const e of CODE_EXTENSIONS) candidates.push(`${target}${e}`);
    for (const e of CODE_EXTENSIONS) candidates.push(join(target, `index${e}`));
  }
  const found = candidates.find((candidate) => !isPackageFile(candidate) && isFile(candidate));
  return found !== undefined && isCliCompiledFile(found) ? compiledSource(found) : found;
}

/** A package name and the path after it: `@acme/lib/util` -> `@acme/lib`, `./util`. */
const BARE = /^((?:@[^/]+\/)?[^/@.#][^/]*)(\/.*)?$/;

/**
 * A bare specifier (`@acme/tslib`, `tslib/util`) as Node resolves it from the module
 * `fromFile`, when the package's real folder (after symlinks) lies outside every node_modules
 * folder: a workspace package of npm, pnpm or yarn, a `file:` or `link:` dependency, or the
 * package `fromFile` is in, named by itself. That is the project's own code, which the user
 * edits, and it counts as the project's own files do; so does pnpm's copy of a `file:`
 * dependency (isPackageFile). A package installed from a registry (its real folder inside
 * node_modules: pnpm's store links too) is not followed: its version is what counts. Nor is
 * Cairn itself (`cairn-dag`, `@cairn/*`): the engine, not the task's code. Resolved with the
 * conditions of the importing module's format (conditionsOf); undefined for what cannot be
 * resolved so, which then is not followed.
 */
function resolveProjectPackage(fromFile: string, specifier: string): string | undefined {
  const [, name, rest] = BARE.exec(specifier.split(/[?#]/)[0]!) ?? [];
  if (name === undefined || isBuiltin(specifier) || isCairn(name)) return undefined;
  const subpath = rest === undefined ? "." : `.${rest}`;
  const scope = packageScope(fromFile);
  if (scope?.manifest.name === name && scope.manifest.exports !== undefined) return resolveTarget(scope.dir, exportTarget(scope.manifest.exports, subpath, conditionsOf(fromFile)));
  const dir = installedPackageDir(dirname(fromFile), name);
  if (dir === undefined || isPackageFile(`${dir}${sep}`)) return undefined;
  const manifest = readPackageJson(dir);
  const target = manifest?.exports === undefined ? (subpath === "." ? `./${manifest?.main ?? "index"}` : subpath) : exportTarget(manifest.exports, subpath, conditionsOf(fromFile));
  return resolveTarget(dir, target);
}

/** A package installed from a registry: its version stands for its files (they are not followed). */
interface RegistryPackage {
  name: string;
  version: string;
}

/** Registry packages by name, with the versions imported (one, unless modules of the project find two installs). */
type Packages = Map<string, Set<string>>;

/**
 * The package installed from a registry that the bare specifier names from the module
 * `fromFile`, as Node finds it (the first `node_modules/<name>` up the tree, its real folder inside
 * node_modules), with its package.json's version; undefined for anything else (the project's
 * code, a builtin, Cairn itself, a package not installed). Once per flow run for a folder and name.
 */
function registryPackage(r: Reads, fromFile: string, specifier: string): RegistryPackage | undefined {
  if (!isBareSpecifier(specifier) || specifier.startsWith("#") || isBuiltin(specifier)) return undefined;
  const [, name] = BARE.exec(specifier.split(/[?#]/)[0]!) ?? [];
  if (name === undefined || isCairn(name)) return undefined;
  const key = `${dirname(fromFile)}\0${name}`;
  if (r.packages.has(key)) return r.packages.get(key);
  const dir = installedPackageDir(dirname(fromFile), name);
  const found = dir !== undefined && isPackageFile(`${dir}${sep}`) ? { name, version: versionOf(r, dir) } : undefined;
  r.packages.set(key, found);
  return found;
}

/** The version a registry package's package.json gives; read once per flow run. */
function versionOf(r: Reads, dir: string): string {
  let version = r.versions.get(dir);
  if (version === undefined) {
    const given = readPackageJson(dir)?.version;
    version = typeof given === "string" && given !== "" ? given : "(no version)";
    r.versions.set(dir, version);
  }
  return version;
}

function addPackage(to: Packages, pkg: RegistryPackage | undefined): void {
  if (pkg === undefined) return;
  const versions = to.get(pkg.name);
  if (versions) versions.add(pkg.version);
  else to.set(pkg.name, new Set([pkg.version]));
}

/** The code-file entries of `packages`: `package zod` -> `4.0.1` (two versions: both, sorted). */
function packageEntries(packages: Packages): Record<string, string> {
  return Object.fromEntries([...packages].map(([name, versions]) => [packageEntry(name), [...versions].sort().join(", ")]));
}

/** Cairn itself (`cairn-dag`, `@cairn/*`): the engine, not the task's code. */
function isCairn(name: string): boolean {
  return name === "cairn-dag" || name.startsWith("@cairn/");
}

/** A specifier of the package's own `imports` (`#util`), as Node resolves it from the module `fromFile`: to a file of the package, or to another package. */
function resolvePackageImport(fromFile: string, specifier: string): string | undefined {
  const scope = packageScope(fromFile);
  const imports = scope?.manifest.imports;
  if (!scope || !imports || typeof imports !== "object" || Array.isArray(imports)) return undefined;
  const target = subpathTarget(imports as Record<string, unknown>, specifier.split("?")[0]!, conditionsOf(fromFile));
  if (target !== undefined && !target.startsWith("./") && !target.startsWith("/")) return resolveProjectPackage(fromFile, target);
  return resolveTarget(scope.dir, target);
}

function resolveTarget(dir: string, target: string | undefined): string | undefined {
  return typeof target === "string" && target.startsWith("./") ? resolveRelative(dir, target) : undefined;
}

/** The package `file` belongs to, as Node finds it: the nearest folder up with a package.json. */
function packageScope(file: string): { dir: string; manifest: PackageJson } | undefined {
  for (let dir = dirname(file); basename(dir) !== "node_modules"; dir = dirname(dir)) {
    const manifest = readPackageJson(dir);
    if (manifest) return { dir, manifest };
    if (dirname(dir) === dir) return undefined;
  }
  return undefined;
}

/** The real folder of the package `name` as Node finds it from `fromDir`: the first `node_modules/<name>` up the tree. */
function installedPackageDir(fromDir: string, name: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    if (basename(dir) !== "node_modules") {
      const candidate = join(dir, "node_modules", name);
      if (isDir(candidate)) {
        try {
          return realpathSync(candidate);
        } catch {
          return undefined; // removed since: the import fails on its own
        }
      }
    }
    if (dirname(dir) === dir) return undefined;
  }
}

interface PackageJson {
  name?: unknown;
  version?: unknown;
  exports?: unknown;
  imports?: unknown;
  main?: string;
}

function readPackageJson(dir: string): PackageJson | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as PackageJson;
  } catch {
    return undefined; // none, or unreadable: Node resolves `index` in the folder
  }
}

/**
 * The conditions Node resolves the imports of `fromFile` with in this process (the user's
 * `--conditions` too: exportConditions): tsx runs a CommonJS module's `import` as `require()`,
 * so a package's `require` target is what runs there, its `import` target in an ES module.
 */
function conditionsOf(fromFile: string): readonly string[] {
  return exportConditions(tsxFormat(fromFile));
}

/**
 * Where a package.json's `exports` send `subpath`: a string; a map of conditions (the first of
 * `conditions` in its own order); a map of subpaths (subpathTarget); an array (its first entry
 * that resolves). Undefined when not exported.
 */
function exportTarget(exports: unknown, subpath: string, conditions: readonly string[]): string | undefined {
  const isSubpathMap = !!exports && typeof exports === "object" && !Array.isArray(exports) && Object.keys(exports).some((k) => k.startsWith("."));
  if (isSubpathMap) return subpathTarget(exports as Record<string, unknown>, subpath, conditions);
  return subpath === "." ? conditionalTarget(exports, conditions) : undefined;
}

/**
 * The target of `subpath` in a map of subpaths (`exports`) or of `#` names (`imports`): its own
 * key, else the `*` pattern Node picks (PATTERN_KEY_COMPARE: the longest part before the `*`,
 * then the longest key), whatever the map's order.
 */
function subpathTarget(map: Record<string, unknown>, subpath: string, conditions: readonly string[]): string | undefined {
  if (!subpath.includes("*") && Object.hasOwn(map, subpath)) return conditionalTarget(map[subpath], conditions);
  let best: { key: string; matched: string } | undefined;
  for (const key of Object.keys(map)) {
    const star = key.indexOf("*");
    if (star < 0 || key.lastIndexOf("*") !== star) continue;
    const base = key.slice(0, star);
    const trailer = key.slice(star + 1);
    if (!subpath.startsWith(base) || subpath === base || subpath.length < key.length || !subpath.endsWith(trailer)) continue;
    if (best === undefined || patternKeyCompare(best.key, key) > 0) best = { key, matched: subpath.slice(star, subpath.length - trailer.length) };
  }
  return best && conditionalTarget(map[best.key], conditions)?.replaceAll("*", best.matched);
}

/** Node's PATTERN_KEY_COMPARE for two keys with one `*`: negative when `a` is the better match. */
function patternKeyCompare(a: string, b: string): number {
  const baseA = a.indexOf("*") + 1;
  const baseB = b.indexOf("*") + 1;
  return baseA !== baseB ? baseB - baseA : b.length - a.length;
}

function conditionalTarget(value: unknown, conditions: readonly string[]): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map((v) => conditionalTarget(v, conditions)).find((t) => t !== undefined);
  if (!value || typeof value !== "object") return undefined;
  for (const [key, inner] of Object.entries(value)) {
    const target = conditions.includes(key) ? conditionalTarget(inner, conditions) : undefined;
    if (target !== undefined) return target;
  }
  return undefined;
}

/**
 * @internal The TypeScript source of `file` when it is a module the CLI compiled a flow into
 * (see registerCompiledFlowDir); `file` itself otherwise: for messages that name a compiled module.
 */
export function compiledFlowSource(file: string): string {
  return isCliCompiledFile(file) ? compiledSource(file) : file;
}

/**
 * The TypeScript source of a module `cairn` compiled into its temp folder, as its source map
 * names it: the compiled flow holds a literal `import("./dyn.ts")` as an import of that file,
 * and the source is what the user edits and what explain should name. The compiled file when
 * its map names no source that is there.
 */
function compiledSource(file: string): string {
  try {
    // The CLI compiles with inline maps: no map file to read, which keeps this import resolution synchronous.
    const place = sourceMapPlace(file, readFileSync(file, "utf8"));
    const source = place?.inline === undefined ? undefined : mappedSource(place)?.source;
    return source !== undefined && isFile(source) ? source : file;
  } catch {
    return file; // gone since it was found: the import fails on its own
  }
}

/** Whether `path` is a file now: one stat; missing, or under a file (ENOTDIR), is false. */
export function isFile(path: string): boolean {
  return statOrUndefined(path)?.isFile() === true;
}

/** Whether `path` is a folder now. */
export function isDir(path: string): boolean {
  return statOrUndefined(path)?.isDirectory() === true;
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/** The shape of a module in this flow run; undefined when it cannot be read. */
function shapeOf(r: Reads, path: string): Promise<ModuleShape | undefined> {
  let shape = r.shapes.get(path);
  if (!shape) {
    shape = readShape(r, path);
    r.shapes.set(path, shape);
  }
  return shape;
}

/** The text of a file in this flow run; undefined when it cannot be read. */
function textOf(r: Reads, path: string): Promise<string | undefined> {
  return memo(r.texts, path, () => readFile(path, "utf8").catch(() => undefined));
}

async function readShape(r: Reads, path: string): Promise<ModuleShape | undefined> {
  const source = await textOf(r, path);
  if (source === undefined) return undefined;
  const loader = LOADERS[extname(path)];
  // A data file (JSON, text) counts as it is.
  if (!loader) return { digest: sha256(source), decls: [], imports: [] };
  const tsconfig = await tsconfigFor(r, dirname(path));
  const id = sha256(`${SHAPE_VERSION}\0${loader}\0${tsconfig ?? ""}\0${source}`);
  let shape = shapes.get(id);
  if (!shape) {
    shape = fromDisk<ModuleShape>(`${id}.json`).then(
      (kept) => (kept && typeof kept.digest === "string" && Array.isArray(kept.decls) && Array.isArray(kept.imports) ? kept : analyse(source, loader, tsconfig, path, id)),
    );
    shapes.set(id, shape);
    shape.catch(() => shapes.delete(id));
  }
  return shape;
}

/** The text of the tsconfig.json nearest to `dir`, as tsx would apply it (with what it extends merged in). */
function tsconfigFor(r: Reads, dir: string): Promise<string | undefined> {
  let found = r.tsconfigs.get(dir);
  if (!found) {
    const file = join(dir, "tsconfig.json");
    found = readFile(file, "utf8").then(
      (text) => withExtended(file, text, (path) => textOf(r, path)),
      () => {
        const parent = dirname(dir);
        return parent === dir || isPackageFile(`${dir}${sep}`) ? undefined : tsconfigFor(r, parent);
      },
    );
    r.tsconfigs.set(dir, found);
  }
  return found;
}

async function analyse(source: string, loader: "ts" | "tsx" | "js" | "jsx", tsconfig: string | undefined, path: string, id: string): Promise<ModuleShape> {
  const [esbuild, acorn] = await Promise.all([loadEsbuild(), import("acorn")]); // a failure here is not kept
  let code: string;
  let map: SourceMap;
  let program: { body: AcornNode[] };
  try {
    // es2022: syntax newer than acorn reads (decorators, `using`) is lowered first.
    const out = await esbuild.transform(source, { loader, format: "esm", target: "es2022", sourcefile: path, sourcemap: "external", ...(tsconfig ? { tsconfigRaw: tsconfig } : {}) });
    code = out.code;
    map = new SourceMap(JSON.parse(out.map));
    program = acorn.parse(code, { ecmaVersion: "latest", sourceType: "module", locations: true }) as unknown as { body: AcornNode[] };
  } catch {
    // Syntax this cannot read: the module counts whole; its imports, found by their look, still count.
    const imports = [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)["']([^"'\n]+)["']/gm)].map((m) => ({ locals: [], taken: ["*"], from: m[1]! }));
    return keep(id, { digest: sha256(source), opaque: true, decls: [], imports });
  }
  /** `refs`: what the statement itself refers to; `runs`: evaluating it runs code (`const ready = setup()`, not `function f() {}`). */
  type Decl = { names: string[]; texts: string[]; uses: Set<string>; modules: Set<string>; funcs: Range[]; span: Range | undefined; writes: string[]; refs?: Refs; runs?: boolean; statics?: { writes: string[] } & Refs };
  const decls: Decl[] = [];
  const blocks: NonNullable<ModuleShape["blocks"]> = [];
  /** Where in the source each function inside `node` is (through esbuild's source map). */
  const functionRanges = (node: AcornNode): Range[] => {
    const ranges: Range[] = [];
    const visit = (n: AcornNode): void => {
      if ((n.type === "FunctionDeclaration" || n.type === "FunctionExpression" || n.type === "ArrowFunctionExpression") && n.loc) {
        const start = map.findEntry(n.loc.start.line - 1, n.loc.start.column) as { originalLine?: number; originalColumn?: number };
        const end = map.findEntry(n.loc.end.line - 1, Math.max(0, n.loc.end.column - 1)) as { originalLine?: number; originalColumn?: number };
        if (start.originalLine !== undefined && end.originalLine !== undefined) {
          ranges.push([start.originalLine + 1, start.originalColumn!, end.originalLine + 1, end.originalColumn!]);
        }
      }
      for (const [, child] of childNodes(n)) visit(child);
    };
    visit(node);
    return ranges;
  };
  /** Where a top-level statement is in the source. */
  const spanOf = (n: AcornNode): Range | undefined => {
    if (!n.loc) return undefined;
    const start = map.findEntry(n.loc.start.line - 1, n.loc.start.column) as { originalLine?: number; originalColumn?: number };
    const end = map.findEntry(n.loc.end.line - 1, Math.max(0, n.loc.end.column - 1)) as { originalLine?: number; originalColumn?: number };
    return start.originalLine !== undefined && end.originalLine !== undefined ? [start.originalLine + 1, start.originalColumn!, end.originalLine + 1, end.originalColumn!] : undefined;
  };
  const others: Array<{ text: string; writes: string[] } & Refs> = [];
  const imports: ModuleShape["imports"] = [];
  // What writtenNames needs first: where each import comes from (imports are hoisted), and
  // which top-level functions change none of their parameters (`timed(train)` leaves train as it is).
  const importFrom = new Map<string, string>();
  for (const statement of program.body) if (statement.type === "ImportDeclaration") for (const s of statement.specifiers ?? []) importFrom.set(s.local!.name!, String(statement.source!.value));
  const keepers = new Set<string>();
  for (const statement of program.body) {
    const node = statement.type === "ExportNamedDeclaration" || statement.type === "ExportDefaultDeclaration" ? statement.declaration : statement;
    const functions: Array<[string, AcornNode]> =
      node?.type === "FunctionDeclaration" && node.id?.name
        ? [[node.id.name, node]]
        : node?.type === "VariableDeclaration"
          ? (node.declarations ?? []).flatMap((d): Array<[string, AcornNode]> => (d.id?.type === "Identifier" && isFunction(d.init as AcornNode | null) ? [[d.id.name!, d.init as AcornNode]] : []))
          : [];
    for (const [name, fn] of functions) if (!changesParameters(fn, { keepers: new Set(), importFrom })) keepers.add(name);
  }
  const context: WriteContext = { keepers, importFrom };
  const requires = new Set(program.body.flatMap((statement) => requireNames(statement)));
  /** Top-level names bound to another top-level object (`const alias = G`, `const sub = G.sub`): a write through one may change the other. */
  const aliasOf = new Map<string, string[]>();
  for (const statement of program.body) {
    const text = code.slice(statement.start, statement.end);
    const declaration = statement.type === "ExportNamedDeclaration" || statement.type === "ExportDefaultDeclaration" ? statement.declaration : statement;
    const declared = declaration ? declaredNames(declaration) : [];
    if (statement.type === "ImportDeclaration") {
      const specifiers = statement.specifiers ?? [];
      imports.push({
        locals: specifiers.map((s) => s.local!.name!),
        taken: specifiers.map((s) => (s.type === "ImportNamespaceSpecifier" ? "*" : s.type === "ImportDefaultSpecifier" ? "default" : nameOf(s.imported))),
        from: String(statement.source!.value),
      });
    } else if (statement.type === "ExportAllDeclaration" || (statement.type === "ExportNamedDeclaration" && statement.source)) {
      const taken = statement.type === "ExportAllDeclaration" ? ["*"] : (statement.specifiers ?? []).map((s) => nameOf(s.local));
      imports.push({ locals: [], taken, from: String(statement.source!.value) });
    } else if (declared.length && declared.some((name) => source.includes(name))) {
      // (Declarations whose names the source never spells are esbuild's helpers, __decorateClass and the like.)
      const refs = references(declaration!, requires);
      for (const d of declaration!.type === "VariableDeclaration" ? (declaration!.declarations ?? []) : []) {
        if (d.id?.type === "Identifier" && d.init) aliasOf.set(d.id.name!, handedNames(d.init as AcornNode));
      }
      const statics = staticCode(declaration!);
      const runs = declaration!.type === "VariableDeclaration" && (declaration!.declarations ?? []).some((d) => d.init && !isFunction(d.init as AcornNode) && (d.init as AcornNode).type !== "Literal");
      decls.push({ names: declared, texts: [text], uses: new Set(refs.names), modules: new Set(refs.modules), funcs: functionRanges(statement), span: spanOf(statement), writes: writtenNames(declaration!, context), refs, runs, ...(statics.length ? { statics: { writes: statics.flatMap((n) => writtenNames(n, context)), ...merged(statics.map((n) => references(n, requires))) } } : {}) });
    } else if (statement.type !== "ExportNamedDeclaration") {
      const refs = references(statement, requires);
      const funcs = functionRanges(statement);
      // esbuild writes `export default <expression>` as `var <file>_default = <expression>`.
      const isDefault = statement.type === "ExportDefaultDeclaration" || declared.some((n) => n.endsWith("_default"));
      if (funcs.length) {
        const digest = sha256(text);
        const span = spanOf(statement);
        blocks.push({ label: isDefault ? "default" : `statement-${digest.slice(0, 8)}`, digest, uses: refs.names, modules: refs.modules, funcs, ...(span ? { span } : {}) });
      }
      // Top-level code that declares nothing (`CFG.add = 1`, a namespace's body, a decorator
      // call): it belongs to every declaration it refers to. (`export default flow(...)` does
      // not: editing the flow's build function is no edit of the helpers it names.)
      if (!isDefault) others.push({ text, writes: writtenNames(statement, context), ...refs });
    }
  }
  // Top-level code belongs to the declarations it names, and to those the functions it names
  // may change: `init()` changes what init() writes (`CFG.scale = 2`), so CFG counts init() and
  // init. (Not to all a function uses: `main()` running the flow would tie every task to all.)
  // An imported name is changed only by code that may write it (`CFG.scale = 3`, CFG imported):
  // each has a declaration of its own here, which holds that code (`flow.ts#CFG`), and counts
  // beside the module it comes from.
  const declOf = new Map<string, Decl>();
  for (const decl of decls) for (const name of decl.names) declOf.set(name, decl);
  const imported = new Set<Decl>();
  for (const local of importFrom.keys()) {
    if (declOf.has(local)) continue;
    const decl: Decl = { names: [local], texts: [], uses: new Set(), modules: new Set(), funcs: [], span: undefined, writes: [] };
    declOf.set(local, decl);
    imported.add(decl);
  }
  /** `names` with what each is bound to, however deep: writing through `alias` may change `G` (`const alias = G`). */
  const throughAliases = (names: string[]): string[] => {
    const all = new Set(names);
    for (const name of all) for (const target of aliasOf.get(name) ?? []) all.add(target);
    return [...all];
  };
  /** The declarations code changes: those it writes, and those the functions it names write (one call deep), each through the names bound to it. */
  const changedBy = (named: Iterable<Decl>, writes: string[]): Set<Decl> => {
    const changed = new Set(throughAliases(writes).flatMap((n) => declOf.get(n) ?? []));
    for (const decl of named) for (const n of throughAliases(decl.writes)) if (declOf.has(n)) changed.add(declOf.get(n)!);
    return changed;
  };
  const attach = (to: Iterable<Decl>, text: string, refs: Refs) => {
    for (const decl of to) {
      decl.texts.push(text);
      for (const n of refs.names) decl.uses.add(n);
      for (const m of refs.modules) decl.modules.add(m);
    }
  };
  for (const other of others) {
    const named = other.names.flatMap((n) => declOf.get(n) ?? []).filter((d) => !imported.has(d));
    attach(new Set([...named, ...changedBy(named, other.writes)]), other.text, other);
  }
  // A declaration whose initialiser runs code belongs to what that code may change
  // (`export const ready = setup()`, `const n = plugins.set(...)`), not to all it names: a task's
  // declaration names its helpers, which do not become part of it.
  for (const decl of decls) {
    if (!decl.runs) continue;
    const changed = changedBy(
      decl.refs!.names.flatMap((n) => declOf.get(n) ?? []).filter((d) => d !== decl),
      decl.writes,
    );
    changed.delete(decl);
    attach(changed, decl.texts[0]!, decl.refs!);
  }
  // A class's static blocks and static fields run where it is declared, as top-level code does
  // (`class X { static { E.k = 10; } }`): the class belongs to what they may change.
  for (const decl of decls) {
    if (!decl.statics) continue;
    const changed = changedBy(
      decl.statics.names.flatMap((n) => declOf.get(n) ?? []).filter((d) => d !== decl),
      decl.statics.writes,
    );
    changed.delete(decl);
    attach(changed, decl.texts[0]!, decl.statics);
  }
  for (const decl of imported) if (decl.texts.length) decls.push(decl);
  // What the module loads with a literal import() or require() counts when the module counts whole.
  for (const from of new Set([...decls.flatMap((d) => [...d.modules]), ...others.flatMap((o) => o.modules)])) imports.push({ locals: [], taken: ["*"], from });
  const topLevel = new Set([...decls.flatMap((d) => d.names), ...imports.flatMap((i) => i.locals)]);
  const comparable = asCompiledImports(code, program as unknown as AcornNode);
  const processNames = processNamesOf(program.body as SyntaxNode[]);
  return keep(id, {
    digest: sha256(code),
    ...(comparable !== code ? { comparable: sha256(comparable) } : {}),
    decls: decls.map((d) => ({
      names: d.names,
      digest: sha256(d.texts.join("\n")),
      uses: [...d.uses].filter((n) => topLevel.has(n) && !d.names.includes(n)),
      modules: [...d.modules],
      ...(d.funcs.length ? { funcs: d.funcs } : {}),
      ...(d.span ? { span: d.span } : {}),
    })),
    ...(blocks.length ? { blocks: blocks.map((b) => ({ ...b, uses: b.uses.filter((n) => topLevel.has(n)) })) } : {}),
    imports,
    ...(processNames ? { processNames } : {}),
    ...(requires.size ? { requires: [...requires] } : {}),
  });
}

/** The names a top-level statement binds to `createRequire(...)` (`const require = createRequire(import.meta.url)`; esbuild writes it `require2`). */
function requireNames(statement: AcornNode): string[] {
  const node = statement.type === "ExportNamedDeclaration" ? statement.declaration : statement;
  if (node?.type !== "VariableDeclaration") return [];
  return (node.declarations ?? []).flatMap((d) => {
    const init = d.init as AcornNode | null | undefined;
    const callee = init?.type === "CallExpression" ? init.callee : undefined;
    const name = callee?.type === "Identifier" ? callee.name : callee?.type === "MemberExpression" && !callee.computed ? (callee.property as AcornNode).name : undefined;
    return name === "createRequire" && d.id?.type === "Identifier" ? [d.id.name!] : [];
  });
}

/** The static blocks and static field values of a class declared by a top-level statement (`class X {}`, `const X = class {}`): code run where it is declared. */
function staticCode(declaration: AcornNode): AcornNode[] {
  const classes =
    declaration.type === "ClassDeclaration"
      ? [declaration]
      : declaration.type === "VariableDeclaration"
        ? (declaration.declarations ?? []).flatMap((d) => ((d.init as AcornNode | null)?.type === "ClassExpression" ? [d.init as AcornNode] : []))
        : [];
  return classes.flatMap((c) =>
    (((c.body as AcornNode | undefined)?.body as AcornNode[] | undefined) ?? []).flatMap((member) =>
      member.type === "StaticBlock" ? [member] : member.type === "PropertyDefinition" && member.static && member.value ? [member.value as AcornNode] : [],
    ),
  );
}

/** Several pieces' references as one. */
function merged(all: Refs[]): Refs {
  return { names: [...new Set(all.flatMap((r) => r.names))], modules: [...new Set(all.flatMap((r) => r.modules))] };
}

/** What tsc's `rewriteRelativeImportExtensions` makes of a relative path to a TypeScript module. */
const TS_IMPORT = /^(\.\.?\/.*)\.(tsx?|mts|cts)$/;
const COMPILED_EXTENSION: Record<string, string> = { ts: ".js", tsx: ".js", mts: ".mjs", cts: ".cjs" };

/** `code` with each import, re-export and literal `import()` of a TypeScript path written as tsc writes it compiled (`./shape.ts` as `./shape.js`). */
function asCompiledImports(code: string, program: AcornNode): string {
  const rewrites: Array<[number, number, string]> = [];
  const visit = (node: AcornNode): void => {
    const source = node.type === "ImportDeclaration" || node.type === "ImportExpression" || node.type === "ExportAllDeclaration" || node.type === "ExportNamedDeclaration" ? node.source : undefined;
    const m = source?.type === "Literal" && typeof source.value === "string" ? TS_IMPORT.exec(source.value) : null;
    if (m) rewrites.push([source!.start, source!.end, JSON.stringify(`${m[1]}${COMPILED_EXTENSION[m[2]!]}`)]);
    for (const [, child] of childNodes(node)) visit(child);
  };
  visit(program);
  let out = code;
  for (const [start, end, text] of rewrites.sort((a, b) => b[0] - a[0])) out = out.slice(0, start) + text + out.slice(end);
  return out;
}

/**
 * The program of a function's text (`fn.toString()`): an arrow or function expression parses in
 * parentheses, a method (`run(x) { ... }`) inside an object; undefined when neither parses.
 */
export async function parseFunctionText(fnText: string): Promise<{ type: "Program"; body: unknown[] } | undefined> {
  return parseFunctionTextWith(await loadAcorn(), fnText);
}

function parseFunctionTextWith(acorn: typeof import("acorn"), fnText: string): { type: "Program"; body: unknown[] } | undefined {
  for (const wrapped of [`(${fnText})`, `({${fnText}})`]) {
    try {
      return acorn.parse(wrapped, { ecmaVersion: "latest", sourceType: "module" }) as unknown as { type: "Program"; body: unknown[] };
    } catch {
      // the other wrapping, then none
    }
  }
  return undefined;
}

let acornLoaded: Promise<typeof import("acorn")> | undefined;

/** acorn, imported once: each task parses its function, and an `import()` costs more than a short parse. */
function loadAcorn(): Promise<typeof import("acorn")> {
  return (acornLoaded ??= import("acorn").catch((error: unknown) => {
    acornLoaded = undefined; // a failure is not kept
    throw error;
  }));
}

/** What a function's text reads from process.env, `bound` being what its module binds to `process` or `process.env`. */
function envReadsOfFunction(fnText: string, bound: ProcessNames | undefined): Promise<EnvReads> {
  // Most functions name neither: not parsed at all.
  const names = [...(bound?.process ?? []), ...(bound?.env ?? [])];
  const mentioned: string[] = fnText.match(IDENTIFIER) ?? [];
  if (!mentioned.includes("process") && !names.some((n) => mentioned.includes(n))) return Promise.resolve(NO_ENV_READS);
  return memo(functionEnvReads, `${JSON.stringify(bound ?? null)}\0${fnText}`, async () => {
    const isEnvReads = (kept: unknown): kept is EnvReads =>
      typeof kept === "object" && kept !== null && isStrings((kept as EnvReads).names) && typeof (kept as EnvReads).unnamed === "boolean";
    return keptAnalysis("env", `${JSON.stringify(bound ?? null)}\0${fnText}`, isEnvReads, async () => {
      const program = await parseFunctionText(fnText);
      // Not parsable on its own: its literal reads, and any mention of a bound name as a read by a name it does not show.
      if (!program) {
        const literal = envReadBy(fnText);
        return { names: literal.names, unnamed: literal.unnamed || names.some((n) => mentioned.includes(n)) };
      }
      const reads = envReadsIn(program as unknown as SyntaxNode, bound);
      return { names: reads.names, unnamed: reads.unnamed };
    });
  });
}

const NO_ENV_READS: EnvReads = Object.freeze({ names: Object.freeze([]), unnamed: false });

/**
 * What a function's text refers to; its text as the loader made it (tsx's esbuild, or Cairn's).
 * `requires`: its module's names bound to `createRequire(...)`.
 */
function refsOfFunction(fnText: string, requires: readonly string[]): Promise<Refs> {
  const memoKey = `${requires.join(",")}\0${fnText}`;
  let refs = functionRefs.get(memoKey);
  if (!refs) {
    const id = sha256(`${SHAPE_VERSION}\0fn\0${requires.join(",")}\0${fnText}`);
    refs = fromDisk<Refs>(`${id}.fn.json`).then(async (kept) => {
      if (kept && Array.isArray(kept.names) && Array.isArray(kept.modules)) return kept;
      const program = await parseFunctionText(fnText);
      if (program) return keep(`${id}.fn`, references(program as unknown as AcornNode, new Set(requires)));
      // Not parsable on its own: every identifier counts.
      return { names: [...new Set(fnText.match(IDENTIFIER) ?? [])], modules: [] };
    });
    functionRefs.set(memoKey, refs);
    refs.catch(() => functionRefs.delete(memoKey));
  }
  return refs;
}

type AcornNode = {
  type: string;
  start: number;
  end: number;
  loc?: { start: { line: number; column: number }; end: { line: number; column: number } };
  name?: string;
  value?: unknown;
  computed?: boolean;
  shorthand?: boolean;
  id?: AcornNode | null;
  local?: AcornNode;
  imported?: AcornNode;
  specifiers?: AcornNode[];
  source?: AcornNode | null;
  declaration?: AcornNode | null;
  declarations?: AcornNode[];
  arguments?: AcornNode[];
  callee?: AcornNode;
} & Record<string, unknown>;

/**
 * The identifiers a piece of code refers to (not property keys, nor names after a dot,
 * nor labels) and the modules it loads by a literal `import("...")` or `require("...")` (or
 * a call of a name in `requires`, bound to `createRequire(...)`), or runs in a worker thread
 * (`new Worker(new URL("./work.mjs", import.meta.url))`).
 */
function references(root: AcornNode, requires: ReadonlySet<string> = new Set()): Refs {
  const names = new Set<string>();
  const modules = new Set<string>();
  const visit = (node: AcornNode): void => {
    switch (node.type) {
      case "Identifier":
        names.add(node.name!);
        return;
      case "ImportExpression":
        if (node.source?.type === "Literal" && typeof node.source.value === "string") modules.add(node.source.value);
        break;
      case "CallExpression": {
        const first = node.arguments?.[0];
        const callee = node.callee?.type === "Identifier" ? node.callee.name! : undefined;
        if (callee !== undefined && (callee === "require" || requires.has(callee)) && first?.type === "Literal" && typeof first.value === "string") modules.add(first.value);
        break;
      }
      case "NewExpression": {
        const worker = workerModule(node);
        if (worker !== undefined) modules.add(worker);
        break;
      }
      case "MetaProperty":
        return;
    }
    for (const [key, child] of childNodes(node)) {
      if (key === "label") continue;
      if (!node.computed && ((key === "property" && node.type === "MemberExpression") || (key === "key" && !node.shorthand && isKeyed(node.type)))) continue;
      visit(child);
    }
  };
  visit(root);
  return { names: [...names], modules: [...modules] };
}

/** The literal path of `new Worker(new URL("./work.mjs", import.meta.url))`: a module run by a worker thread, which is the task's code too. */
function workerModule(node: AcornNode): string | undefined {
  const callee = node.callee;
  const name = callee?.type === "Identifier" ? callee.name : callee?.type === "MemberExpression" && !callee.computed ? (callee.property as AcornNode).name : undefined;
  const url = node.arguments?.[0];
  if (name !== "Worker" || url?.type !== "NewExpression" || url.callee?.type !== "Identifier" || url.callee.name !== "URL") return undefined;
  const [path, base] = url.arguments ?? [];
  const isModuleUrl = base?.type === "MemberExpression" && (base.object as AcornNode).type === "MetaProperty" && (base.property as AcornNode).name === "url";
  return isModuleUrl && path?.type === "Literal" && typeof path.value === "string" ? path.value : undefined;
}

/** What `writtenNames` needs to know of the module: its top-level functions that change none of their parameters, and where each import comes from. */
interface WriteContext {
  keepers: ReadonlySet<string>;
  importFrom: ReadonlyMap<string, string>;
}

/**
 * Methods of built-in objects that change nothing (a Map's `get`, an array's `map`), and a
 * schema's `parse`: calling one on a constant is no change of it, so tasks that only read a
 * registry do not become part of it.
 */
const READING_METHODS = new Set(
  (
    "get has at keys values entries forEach map filter find findIndex findLast findLastIndex some every reduce reduceRight includes indexOf lastIndexOf " +
    "join slice concat flat flatMap toString toLocaleString valueOf toJSON toFixed toPrecision charAt charCodeAt codePointAt startsWith endsWith split " +
    "trim trimStart trimEnd toLowerCase toUpperCase padStart padEnd repeat replace replaceAll match matchAll search substring normalize localeCompare " +
    "toSorted toReversed toSpliced with hasOwnProperty getTime toISOString parse safeParse parseAsync safeParseAsync"
  ).split(" "),
);
/** Globals whose functions change nothing they are given. */
const KEEPING_GLOBALS = new Set(["JSON", "Math", "console", "String", "Number", "Boolean", "structuredClone"]);

/**
 * The names whose value, or a part of it, `root` may change: the root name of each target it
 * assigns to, updates or deletes (`CFG.scale = 2`, `n++`, `delete M.k`); of each object it calls
 * a method on (`plugins.set(...)`, `arr.push(...)`; not a reading method, `plugins.get(...)`, nor
 * a package's function, `z.object(...)`); and of each object it hands to a call that may change
 * what it is given (`Object.assign(CFG, ...)`, `register(CFG)`; not a function of the module that
 * changes none of its parameters, Cairn's builders, Node's modules, `JSON.stringify`). When
 * unsure, a call counts as a change: a needless re-run is better than a stale result.
 */
function writtenNames(root: AcornNode, context: WriteContext): string[] {
  const names = new Set<string>();
  const isPackage = (name: string) => {
    const from = context.importFrom.get(name);
    return from !== undefined && !/^(?:\.\.?\/|\/|file:)/.test(from);
  };
  const keepsArguments = (callee: AcornNode): boolean => {
    if (callee.type === "Identifier" && context.keepers.has(callee.name!)) return true;
    const name = baseName(callee, true);
    if (name === undefined) return false;
    const from = context.importFrom.get(name);
    if (from === undefined) return KEEPING_GLOBALS.has(name);
    return from === "cairn-dag" || from.startsWith("cairn-dag/") || from.startsWith("@cairn/") || isBuiltin(from);
  };
  const visit = (node: AcornNode): void => {
    const target =
      node.type === "AssignmentExpression" ? (node.left as AcornNode) : node.type === "UpdateExpression" || (node.type === "UnaryExpression" && node.operator === "delete") ? (node.argument as AcornNode) : undefined;
    const name = baseName(target, false);
    if (name) names.add(name);
    if ((node.type === "CallExpression" || node.type === "NewExpression") && node.callee) {
      const callee = node.callee;
      if (node.type === "CallExpression" && callee.type === "MemberExpression") {
        const method = callee.computed ? undefined : (callee.property as AcornNode | undefined)?.name;
        const receiver = baseName(callee.object as AcornNode, false);
        if (receiver && !(method && READING_METHODS.has(method)) && !isPackage(receiver)) names.add(receiver);
      }
      if (!keepsArguments(callee)) for (const argument of node.arguments ?? []) for (const handed of handedNames(argument)) names.add(handed);
    }
    for (const [, child] of childNodes(node)) visit(child);
  };
  visit(root);
  return [...names];
}

/** The name at the root of `a.b.c` (and, `throughCalls`, of `a.b().c`); undefined for `this`, a literal, a call's result. */
function baseName(node: AcornNode | undefined, throughCalls: boolean): string | undefined {
  while (node && (node.type === "MemberExpression" || node.type === "ChainExpression" || (throughCalls && node.type === "CallExpression"))) {
    node = (node.type === "MemberExpression" ? node.object : node.type === "ChainExpression" ? node.expression : node.callee) as AcornNode | undefined;
  }
  return node?.type === "Identifier" ? node.name : undefined;
}

/** The names of the objects an argument may hand over: `CFG`, `CFG.sub`, `{ into: CFG }`, `[...list]`, `a ?? B`. */
function handedNames(node: AcornNode | null | undefined): string[] {
  if (!node) return [];
  switch (node.type) {
    case "Identifier":
    case "MemberExpression":
    case "ChainExpression": {
      const name = baseName(node, false);
      return name ? [name] : [];
    }
    case "SpreadElement":
      return handedNames(node.argument as AcornNode);
    case "ObjectExpression":
      return ((node.properties as AcornNode[]) ?? []).flatMap((p) => handedNames((p.type === "SpreadElement" ? p.argument : p.value) as AcornNode));
    case "ArrayExpression":
      return ((node.elements as Array<AcornNode | null>) ?? []).flatMap((e) => handedNames(e));
    case "ConditionalExpression":
      return [...handedNames(node.consequent as AcornNode), ...handedNames(node.alternate as AcornNode)];
    case "LogicalExpression":
      return [...handedNames(node.left as AcornNode), ...handedNames(node.right as AcornNode)];
    case "AssignmentExpression":
      return handedNames(node.right as AcornNode);
    case "SequenceExpression":
      return handedNames((node.expressions as AcornNode[]).at(-1));
    default:
      return [];
  }
}

/**
 * Whether a top-level function may change what it is given: it changes one of its parameters,
 * or `arguments`, as `writtenNames` tells (handing one on to another call counts).
 */
function changesParameters(fn: AcornNode, context: WriteContext): boolean {
  const params = new Set(["arguments", ...((fn.params as AcornNode[]) ?? []).flatMap((p) => patternNames(p))]);
  return writtenNames(fn.body as AcornNode, context).some((n) => params.has(n));
}

/** The syntax nodes directly under `node`, each with the field that holds it. */
function* childNodes(node: AcornNode): Generator<[string, AcornNode]> {
  for (const [key, value] of Object.entries(node)) {
    for (const child of Array.isArray(value) ? value : [value]) {
      if (child && typeof child === "object" && typeof (child as AcornNode).type === "string") yield [key, child as AcornNode];
    }
  }
}

function isFunction(node: AcornNode | null | undefined): boolean {
  return node?.type === "ArrowFunctionExpression" || node?.type === "FunctionExpression" || node?.type === "ClassExpression";
}

function isKeyed(type: string): boolean {
  return type === "Property" || type === "MethodDefinition" || type === "PropertyDefinition";
}

function nameOf(node: AcornNode | undefined): string {
  return node?.type === "Literal" ? String(node.value) : (node?.name ?? "");
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
      return ((node.properties as AcornNode[]) ?? []).flatMap((p) => patternNames((p.type === "RestElement" ? p.argument : p.value) as AcornNode));
    case "ArrayPattern":
      return ((node.elements as Array<AcornNode | null>) ?? []).flatMap((e) => patternNames(e));
    case "AssignmentPattern":
      return patternNames(node.left as AcornNode);
    case "RestElement":
      return patternNames(node.argument as AcornNode);
    default:
      return [];
  }
}

// ------------------------------------------------------------------ kept on disk

let DISK: string | undefined | null = null;

/** The folder, when it is this user's and no one else can write to it (see privateTempDir). */
function disk(): string | undefined {
  if (DISK === null) {
    try {
      DISK = privateTempDir("code-deps");
    } catch {
      // Only a speed-up: without it the analysis is the same, so the keys are too.
      DISK = undefined;
    }
  }
  return DISK;
}

async function fromDisk<T>(name: string): Promise<T | undefined> {
  const dir = disk();
  if (!dir) return undefined;
  try {
    return JSON.parse(await readFile(join(dir, name), "utf8")) as T;
  } catch {
    return undefined; // not worked out yet, or torn: worked out again
  }
}

/** Whether `value` is an array of strings (what a kept analysis holds). */
export function isStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}

/**
 * `work()`, an analysis of a function's text (`input`: the text and whatever else decides the
 * result), kept on disk by a digest of `kind` and `input`, as a function's references are: a
 * warm run's tasks then load no parser for it (acorn, ~200 KB of code a process; BENCHMARKS.md,
 * twenty-ninth session). What cannot be read back as `valid` says is worked out again.
 */
export async function keptAnalysis<T>(kind: string, input: string, valid: (kept: unknown) => kept is T, work: () => Promise<T>): Promise<T> {
  const id = sha256(`${SHAPE_VERSION}\0${kind}\0${input}`);
  const kept = await fromDisk<unknown>(`${id}.${kind}.json`);
  if (valid(kept)) return kept;
  return keep(`${id}.${kind}`, await work());
}

async function keep<T>(id: string, value: T): Promise<T> {
  const dir = disk();
  if (dir) await writeFileAtomic(dir, `${id}.json`, JSON.stringify(value)).catch(() => {});
  return value;
}
