/**
 * How `cairn` loads a TypeScript flow without tsx: the flow file and the TypeScript modules
 * it imports are compiled one file each, by the copy of esbuild that tsx uses and with tsx's
 * options (so a function task's source text, its code fingerprint, is the same either way),
 * into a per-user temp folder, and imported by plain Node. Imports of `@cairn/*` point at
 * Cairn's bundle (the one the CLI runs from: one engine per process); packages and
 * JavaScript files are imported where they are. The compiled files are reused until one of
 * the sources changes (its content: an edit that keeps the size and the mtime, as `cp -p`,
 * `rsync -a` or `tar x` make, is still an edit; a stale compile would store the old code's
 * result under the new code's cache key).
 *
 * Inside a compiled module `import.meta.url`, `.filename` and `.dirname` are the source's,
 * and stack traces (with source maps on) name the source file and line: paths that tasks
 * declare resolve as they do under tsx.
 */
import { readFileSync, realpathSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { tmpdir, userInfo } from "node:os";
import { basename, dirname, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { CairnError, sha256, writeFileAtomic } from "@cairn/cache";
import type * as Esbuild from "esbuild";
import { FlowFileError } from "./load-flow.ts";

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
  entry: string;
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
  const dir = join(tmpdir(), `cairn-${userInfo().uid}`, "flows", bundle.id);
  const manifestPath = `${sha256(real)}.json`;
  const entry = upToDate(join(dir, manifestPath)) ?? (await compile(real, dir, manifestPath, bundle));
  // Stack traces name the TypeScript source: task files resolve against its folder.
  process.setSourceMapsEnabled(true);
  return import(pathToFileURL(entry).href);
}

function upToDate(manifestPath: string): string | undefined {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    for (const [file, digest] of Object.entries(manifest.sources)) if (typeof digest !== "string" || sha256(readFileSync(file)) !== digest) return undefined;
    statSync(manifest.entry);
  } catch {
    return undefined;
  }
  return manifest.entry;
}

/** Compiles `entry` and the TypeScript it imports into `dir`; `manifest` is the name of its manifest there. */
async function compile(entry: string, dir: string, manifest: string, bundle: CairnBundle): Promise<string> {
  const esbuild = bundle.loadEsbuild();
  const nameOf = (source: string) => `${sha256(source).slice(0, 16)}-${basename(source).replace(TS, "")}.mjs`;
  const outOf = (source: string) => join(dir, nameOf(source));
  const sources: Manifest["sources"] = {};
  const queue = [entry];
  const skip = Symbol("resolving");
  for (let source = queue.pop(); source !== undefined; source = queue.pop()) {
    if (sources[source]) continue;
    // Read before esbuild reads it: an edit in between makes the next run compile again.
    sources[source] = sha256(readFileSync(source));
    const url = pathToFileURL(source).href;
    const out = outOf(source);
    let result: Esbuild.BuildResult & { outputFiles: Esbuild.OutputFile[] };
    try {
      result = await esbuild.build({
        entryPoints: [source],
        outfile: out,
        write: false,
        bundle: true,
        // tsx's options for a module: the same esbuild gives the same text for each function.
        format: "esm",
        platform: "node",
        target: `node${process.versions.node}`,
        sourcemap: "inline",
        minifyWhitespace: true,
        keepNames: true,
        // As Node resolves: no `module` condition or field.
        conditions: ["node"],
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
                if (target.includes(`${sep}node_modules${sep}`)) return { path: pathToFileURL(target).href, external: true };
                // A JavaScript module of the project may import @cairn/* itself (and be CommonJS):
                // tsx loads such a flow as it always did.
                if (SCRIPT.test(target)) throw new NeedsTsxError(`${args.importer} imports ${args.path}, a JavaScript module of the project.`);
                if (!TS.test(target)) return { path: pathToFileURL(target).href, external: true };
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
      const fix = missing.length
        ? `${missing.length === 1 ? "That package is" : "Those packages are"} not installed where the flow is: npm install ${missing.join(" ")} (in the project beside ${basename(source)}).`
        : `Fix the TypeScript above; \`tsx ${source}\` reports the same.`;
      throw new FlowFileError(`Could not compile ${source}:\n${where.join("\n") || String(error)}\n${fix}`, entry);
    }
    await writeFileAtomic(dir, nameOf(source), result.outputFiles[0]!.text);
  }
  const written: Manifest = { sources, entry: outOf(entry) };
  await writeFileAtomic(dir, manifest, JSON.stringify(written));
  return written.entry;
}
