/**
 * How `cairn` loads a TypeScript flow without tsx: the flow file and the TypeScript modules
 * it imports are compiled one file each, by the copy of esbuild that tsx uses and with tsx's
 * options (so a function task's source text, its code fingerprint, is the same either way),
 * into a per-user temp folder, and imported by plain Node. Imports of `@cairn/*` point at
 * Cairn's bundle (the one the CLI runs from: one engine per process); packages and
 * JavaScript files are imported where they are. The compiled files are reused until one of
 * the sources changes (its content: an edit that keeps the size and the mtime, as `cp -p`,
 * `rsync -a` or `tar x` make, is still an edit; a stale compile would store the old code's
 * result under the new code's cache key), or until a package they import resolves elsewhere or
 * changes its package.json (an `npm install` of another version: the compiled import names the old
 * version's file). They live in a folder of this user's that no one else can write to: a compiled
 * file is imported, so one planted in a shared temp folder would run as the user.
 *
 * Inside a compiled module `import.meta.url`, `.filename` and `.dirname` are the source's,
 * and stack traces (with source maps on) name the source file and line: paths that tasks
 * declare resolve as they do under tsx. A module tsx runs as CommonJS (a .ts file of a package
 * without "type": "module", a .cts file) is not compiled here: tsx turns each imported name in
 * it into `import_<module>.<name>`, so a task's function has another text, another code
 * fingerprint, than compiled as an ES module, and `cairn run` would miss what `tsx flow.ts`
 * cached (and a coordinator's workers would find its code stale). Such a flow loads through tsx.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { CairnError, digestFileSync, privateTempDir, sha256, writeFileAtomic } from "@cairn/cache";
import { installCommand } from "@cairn/core";
import { NODE_CONDITIONS, registerCompiledFlowDir } from "@cairn/dsl";
import type * as Esbuild from "esbuild";
import { staleModules } from "./fresh-import.ts";
import { cairnNotInstalled, isCairnPackage } from "./install-advice.ts";
import { commonJsScope, FlowFileError } from "./load-flow.ts";

/** Cairn's bundle, as packages/cli/bin/bundle.mjs describes it, or the installed package's compiled dist/. */
export interface CairnBundle {
  /** Changes with every build: compiled flows are kept per build. */
  id: string;
  /** Real path of each public entry's source -> file: URL of its bundle. */
  sources: Record<string, string>;
  /** Cairn's package folders (…/packages/dsl/ etc.): a module inside one that is not an entry cannot be compiled apart. */
  packageDirs: string[];
  /** The esbuild tsx depends on, which built the bundle: the same text as tsx gives. */
  loadEsbuild: () => typeof Esbuild;
}

/** Thrown when a flow imports one of Cairn's modules that is not a public entry: only tsx can load that with one engine. */
export class NeedsTsxError extends CairnError {
  static override readonly code: string = "CAIRN_NEEDS_TSX";
  override name = "NeedsTsxError";
  readonly needsTsx = true;
}

interface Manifest {
  /** Source path -> sha256 of its content when compiled. */
  sources: Record<string, string>;
  /**
   * The tsconfig.json and jsconfig.json files esbuild may have read for the sources (every one
   * from a source's folder up, and what they extend) -> sha256, or null where there was none:
   * their `paths` say where an import resolves. Also the package.json files from a source's
   * folder up to the first there: its "type" says whether tsx runs the source as CommonJS.
   */
  configs?: Record<string, string | null>;
  /** The packages the sources import by name, as Node found them when compiled. */
  packages?: PackageFound[];
  entry: string;
}

/** Where a bare import (`zod`, `@scope/pkg/sub`) found its package, from the folder of the module importing it. */
interface PackageFound {
  from: string;
  name: string;
  /** The first `node_modules/<name>` up from `from` (what Node takes), and its real path. */
  at: string;
  real: string;
  /** sha256 of its package.json: another version, or other `exports`, is another file to import. */
  digest: string;
}

const TS = /\.(?:ts|mts|tsx)$/;
const SCRIPT = /\.(?:js|mjs|cjs|jsx|cts)$/;

/** Imports the flow module at `path` (absolute), compiling it first when a source changed. */
export async function importCompiledFlow(path: string, bundle: CairnBundle): Promise<Record<string, unknown>> {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return import(pathToFileURL(path).href); // the CLI says the file does not exist
  }
  if (!TS.test(real)) throw new NeedsTsxError(`${path} is not TypeScript: JavaScript flow files load through tsx as before.`);
  const dir = inTemp(path, tmpdir(), () => privateTempDir(join("flows", compiledFolderName(bundle))) ?? ownFolder());
  const manifestPath = `${sha256(real)}.json`;
  const manifest = upToDate(dir, join(dir, manifestPath)) ?? (await compile(real, dir, manifestPath, bundle));
  // Stack traces name the TypeScript source: task files resolve against its folder, and tasks count there, as under tsx.
  process.setSourceMapsEnabled(true);
  registerCompiledFlowDir(dir);
  // A compiled file is named by its source's path, not its content: imported again in this process
  // after an edit (an app's second cli()), Node would answer the first compile's module. The entry
  // is imported anew under a URL that names its content; a changed module it imports cannot be.
  const digest = manifest.sources[real]!;
  const first = importedSources.get(real);
  const changed = Object.entries(manifest.sources).filter(([source, now]) => source !== real && importedSources.has(source) && importedSources.get(source) !== now);
  if (changed.length > 0) throw staleModules(real, changed.map(([source]) => source));
  for (const [source, now] of Object.entries(manifest.sources)) if (!importedSources.has(source)) importedSources.set(source, now);
  const url = pathToFileURL(manifest.entry).href;
  return import(first === undefined || first === digest ? url : `${url}?cairn-content=${digest.slice(0, 16)}`);
}

/** Each source this process imported compiled -> the sha256 it was compiled from (the state is the process's, as Node's module map is). */
const importedSources = new Map<string, string>();

/**
 * The folder of compiled flows for this bundle and the export conditions of this process (the
 * user's `--conditions` too): a compiled module names the files they resolve its imports to,
 * and runs with other conditions, maybe at the same time, need other files.
 */
function compiledFolderName(bundle: CairnBundle): string {
  return `${bundle.id}-${sha256(NODE_CONDITIONS.join("\n")).slice(0, 12)}`;
}

/**
 * Runs a step of writing the compiled flow into `dir` (under $TMPDIR). Its file system failure
 * (a full or read-only TMPDIR, no file descriptors left) is Cairn's, not the flow code's: a
 * FlowFileError that names the folder and says what to change.
 */
function inTemp<T>(flowFile: string, dir: string, step: () => T): T {
  try {
    const result = step();
    return result instanceof Promise ? (result.catch((error: unknown) => tempFailure(flowFile, dir, error)) as T) : result;
  } catch (error) {
    return tempFailure(flowFile, dir, error);
  }
}

/** The FlowFileError for a failed step of {@link inTemp}; Cairn's own errors, and errors without a code, as they are. */
function tempFailure(flowFile: string, dir: string, error: unknown): never {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (CairnError.is(error) || typeof code !== "string") throw error;
  const fix =
    code === "EMFILE" || code === "ENFILE"
      ? "The process ran out of file descriptors: raise the limit (ulimit -n) and run again."
      : code === "ENOSPC" || code === "EDQUOT"
        ? "Free space there, or point TMPDIR at a folder with room."
        : "Point TMPDIR at a folder you can write to, or make that one writable.";
  const message = (error as Error).message.replace(/\.$/, "");
  throw new FlowFileError(`Cairn could not compile ${flowFile} into ${dir} (its folder for compiled flows, in TMPDIR): ${message}. ${fix}`, flowFile);
}

/** The shared folder is not this user's alone (another user made it first): compiled afresh into a folder of this process's own, removed at its exit. */
function ownFolder(): string {
  const dir = mkdtempSync(join(tmpdir(), "cairn-flow-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function upToDate(dir: string, manifestPath: string): Manifest | undefined {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    if (typeof manifest.entry !== "string" || dirname(manifest.entry) !== dir || !Array.isArray(manifest.packages) || !manifest.configs) return undefined;
    for (const [file, digest] of Object.entries(manifest.sources)) if (typeof digest !== "string" || digestFileSync(file) !== digest) return undefined;
    for (const [file, digest] of Object.entries(manifest.configs)) if (digestOrNull(file) !== digest) return undefined;
    for (const found of manifest.packages) {
      const now = findPackage(found.from, found.name);
      if (!now || now.at !== found.at || now.real !== found.real || now.digest !== found.digest) return undefined;
    }
    statSync(manifest.entry);
  } catch {
    return undefined;
  }
  return manifest;
}

/** sha256 of the file's content, or null when there is no such file. */
function digestOrNull(file: string): string | null {
  try {
    return digestFileSync(file);
  } catch {
    return null;
  }
}

/**
 * Records in `configs` the tsconfig.json and jsconfig.json files on the way up from `folder`
 * (present or not: one made later is another compile) and, for those there, what they extend.
 */
function recordConfigs(folder: string, configs: Record<string, string | null>): void {
  const record = (file: string): void => {
    if (file in configs) return;
    const digest = digestOrNull(file);
    configs[file] = digest;
    if (digest === null) return;
    let extended: unknown;
    try {
      // JSON with comments and trailing commas, as TypeScript reads it: what cannot be read counts by its digest alone.
      const text = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|("(?:\\.|[^"\\])*")|\/\/[^\n]*/g, (_, str: string | undefined) => str ?? "").replace(/,(\s*[}\]])/g, "$1");
      extended = (JSON.parse(text) as { extends?: unknown }).extends;
    } catch {
      return;
    }
    for (const name of (Array.isArray(extended) ? extended : [extended]).filter((e): e is string => typeof e === "string")) {
      const base = dirname(file);
      if (/^\.{1,2}(?:\/|$)|^\//.test(name)) {
        const target = resolve(base, name);
        record(target.endsWith(".json") ? target : `${target}.json`);
      } else {
        // A package's config: where Node finds the package counts, and every file the resolver may
        // read there (absent ones too: one made later is another compile).
        const pkg = packageName(name);
        const found = pkg === undefined ? undefined : findPackage(base, pkg);
        if (found) for (const file of packageConfigFiles(found.real, name.slice(pkg!.length))) record(file);
      }
    }
  };
  for (let d = folder; ; d = dirname(d)) {
    record(join(d, "tsconfig.json"));
    record(join(d, "jsconfig.json"));
    if (dirname(d) === d) return;
  }
}

/**
 * Records in `configs` the package.json files from `folder` up to the first there (absent ones
 * too): its "type" says whether tsx runs a module of the folder as CommonJS, so a change of it,
 * or a package.json made nearer, is another compile (or a load through tsx).
 */
function recordPackageScope(folder: string, configs: Record<string, string | null>): void {
  for (let d = folder; ; d = dirname(d)) {
    const file = join(d, "package.json");
    if (!(file in configs)) configs[file] = digestOrNull(file);
    if (configs[file] !== null || dirname(d) === d) return;
  }
}

/**
 * The files `extends: "<package><subpath>"` may be read from, in the package at `real`: a subpath
 * as written, with `.json` added, or as a folder's `tsconfig.json` (`@acme/tsconfig/strict` is
 * `strict.json`); no subpath, the file the package.json's `tsconfig` field names (the package.json
 * too, so a change of that field counts), else its `tsconfig.json`.
 */
function packageConfigFiles(real: string, subpath: string): string[] {
  if (subpath) {
    const target = join(real, subpath);
    return target.endsWith(".json") ? [target] : [target, `${target}.json`, join(target, "tsconfig.json")];
  }
  const files = [join(real, "package.json"), join(real, "tsconfig.json")];
  try {
    const field = (JSON.parse(readFileSync(files[0]!, "utf8")) as { tsconfig?: unknown }).tsconfig;
    if (typeof field === "string") files.push(resolve(real, field));
  } catch {
    // no package.json, or not JSON: its digest alone counts
  }
  return files;
}

/** The package a bare import of `name` from a module in `from` resolves to, as Node looks for it; undefined when there is none. */
function findPackage(from: string, name: string): PackageFound | undefined {
  for (let d = from; ; d = dirname(d)) {
    const at = join(d, "node_modules", name);
    if (existsSync(at)) {
      const real = realpathSync(at);
      // A folder without a package.json (Node then looks for index.js): its place still counts.
      return { from, name, at, real, digest: digestOrNull(join(real, "package.json")) ?? "none" };
    }
    if (dirname(d) === d) return undefined;
  }
}

/** The package name of a bare import (`zod/v4` gives `zod`, `@scope/pkg/x` gives `@scope/pkg`); undefined for a path, `#imports` or a URL. */
function packageName(specifier: string): string | undefined {
  if (/^[./#]|^[a-zA-Z][a-zA-Z+.-]*:/.test(specifier)) return undefined;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? (parts.length > 1 ? `${parts[0]}/${parts[1]}` : undefined) : parts[0];
}

/** Compiles `entry` and the TypeScript it imports into `dir`; `manifest` is the name of its manifest there. */
async function compile(entry: string, dir: string, manifest: string, bundle: CairnBundle): Promise<Manifest> {
  const esbuild = bundle.loadEsbuild();
  const nameOf = (source: string) => `${sha256(source).slice(0, 16)}-${basename(source).replace(TS, "")}.mjs`;
  const outOf = (source: string) => join(dir, nameOf(source));
  const sources: Manifest["sources"] = {};
  const configs: NonNullable<Manifest["configs"]> = {};
  const packages = new Map<string, PackageFound>();
  const queue = [entry];
  const skip = Symbol("resolving");
  for (let source = queue.pop(); source !== undefined; source = queue.pop()) {
    if (sources[source]) continue;
    // First: a CommonJS flow (its entry) goes to tsx on every run, before any reading.
    const commonJs = commonJsScope(source);
    if (commonJs) {
      throw new NeedsTsxError(`${source} is CommonJS to tsx (${commonJs.why}): its tasks have tsx's code fingerprints only when tsx compiles it.`);
    }
    // Read before esbuild reads it: an edit in between makes the next run compile again.
    sources[source] = digestFileSync(source);
    recordConfigs(dirname(source), configs);
    recordPackageScope(dirname(source), configs);
    const url = pathToFileURL(source).href;
    const out = outOf(source);
    let result: Esbuild.BuildResult & { outputFiles: Esbuild.OutputFile[] };
    try {
      result = await esbuild.build({
        entryPoints: [source],
        outfile: out,
        write: false,
        metafile: true,
        bundle: true,
        // tsx's options for a module: the same esbuild gives the same text for each function.
        format: "esm",
        platform: "node",
        target: `node${process.versions.node}`,
        sourcemap: "inline",
        minifyWhitespace: true,
        keepNames: true,
        // As Node resolves in this process (`import`, `require` and `default` esbuild adds): the
        // user's --conditions, module-sync; no `module` condition or field.
        conditions: [...NODE_CONDITIONS],
        mainFields: ["main"],
        logLevel: "silent",
        banner: {
          js: `import.meta.url=${JSON.stringify(url)};import.meta.filename=${JSON.stringify(source)};import.meta.dirname=${JSON.stringify(dirname(source))};`,
        },
        plugins: [
          {
            name: "cairn-imports",
            setup(build) {
              build.onResolve({ filter: /.*/ }, async (args) => {
                if (args.kind === "entry-point" || args.pluginData === skip) return undefined;
                if (isBuiltin(args.path)) return { path: args.path, external: true };
                const found = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: skip });
                if (found.errors.length > 0) return { errors: found.errors };
                if (found.external) return { path: args.path, external: true };
                const target = found.path;
                const cairn = bundle.sources[target];
                if (cairn) return { path: cairn, external: true };
                if (bundle.packageDirs.some((d) => target.startsWith(d))) {
                  throw new NeedsTsxError(`${args.importer} imports ${args.path}, a module of Cairn's that is not one of its entries.`);
                }
                // Where a bare import resolves is the package's to say (its package.json, where its
                // link points): recorded for every one, also a workspace package or an `npm link`
                // compiled here as the project's TypeScript.
                const name = packageName(args.path);
                const pkg = name === undefined ? undefined : findPackage(args.resolveDir, name);
                if (pkg) packages.set(`${pkg.from}\0${pkg.name}`, pkg);
                // `require` (of a CommonJS module, above) takes a path, `import` a URL.
                const external = args.kind === "require-call" || args.kind === "require-resolve" ? target : pathToFileURL(target).href;
                if (target.includes(`${sep}node_modules${sep}`)) return { path: external, external: true };
                // A JavaScript module of the project may import @cairn/* itself (and be CommonJS):
                // tsx loads such a flow as it always did.
                if (SCRIPT.test(target)) throw new NeedsTsxError(`${args.importer} imports ${args.path}, a JavaScript module of the project.`);
                if (!TS.test(target)) return { path: external, external: true };
                queue.push(target);
                return { path: pathToFileURL(outOf(target)).href, external: true };
              });
            },
          },
        ],
      });
    } catch (error) {
      const needsTsx = ((error as Esbuild.BuildFailure).errors ?? []).find((e) => NeedsTsxError.is(e.detail));
      if (needsTsx) throw needsTsx.detail;
      const errors = (error as Partial<Esbuild.BuildFailure>).errors ?? [];
      const where = errors.map((e) => (e.location ? `  ${resolve(e.location.file)}:${e.location.line}:${e.location.column}: ${e.text}\n      ${e.location.lineText.trim()}` : `  ${e.text}`));
      // An import that names a package not installed is no TypeScript to fix: say what to install.
      const missing = [...new Set(errors.map((e) => /^Could not resolve "((?:@[^/"]+\/)?[^./"][^/"]*)/.exec(e.text)?.[1]).filter((p): p is string => p !== undefined))];
      const fix = missing.length ? notInstalled(missing, basename(source)) : `Fix the TypeScript above; \`tsx ${source}\` reports the same.`;
      throw new FlowFileError(`Could not compile ${source}:\n${where.join("\n") || String(error)}\n${fix}`, entry);
    }
    // Every import goes through the plugin above and stays its own file. An import() or require()
    // of a template literal (`./plugins/${name}.ts`) does not: esbuild copies each file it may name
    // into this one, where no later edit of theirs (or file added beside them) would be seen, and
    // the function's text is not tsx's. tsx loads such a flow as it always did.
    const copied = Object.keys(result.metafile!.inputs).map((input) => resolve(input)).filter((input) => input !== source);
    if (copied.length > 0) {
      throw new NeedsTsxError(`${source} imports ${copied.join(", ")} through an import() or require() of a computed path, which only tsx loads as written.`);
    }
    const text = result.outputFiles[0]!.text;
    await inTemp(entry, dir, () => writeFileAtomic(dir, nameOf(source), text));
  }
  const written: Manifest = { sources, configs, packages: [...packages.values()], entry: outOf(entry) };
  await inTemp(entry, dir, () => writeFileAtomic(dir, manifest, JSON.stringify(written)));
  return written;
}

/** What to install for the packages a flow imports that are not installed beside it (Cairn's own: see cairnNotInstalled). */
function notInstalled(missing: readonly string[], file: string): string {
  const others = missing.filter((name) => !isCairnPackage(name));
  const cairn = missing.filter(isCairnPackage);
  const said: string[] = [];
  if (others.length) said.push(`${others.length === 1 ? "That package is" : "Those packages are"} not installed where the flow is: ${installCommand(others)} (in the project beside ${file}).`);
  if (cairn.length) said.push(cairnNotInstalled(cairn, file, process.env));
  return said.join("\n");
}
