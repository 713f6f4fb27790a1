// @ts-check
/**
 * The packed packages' entry points, bundled: after tsc has compiled a package into dist/ (one
 * module per source file), each entry its package.json exports name (publishConfig) is bundled
 * with esbuild into dist/bundle/ with the package's other modules (shared ones in chunks), so
 * an installed `cairn run` loads ~40 modules instead of ~125 (BENCHMARKS.md, "Installed
 * start"). Imports of other packages (Cairn's own included) stay imports: each
 * package is one copy, shared by all that use it. tsc's files stay beside the bundles: their
 * .d.ts are the types, and each bundled module keeps its `import.meta.url`, the URL of its
 * tsc file, so that it finds its neighbours (Python helpers, templates, package.json) as before.
 *
 * No source maps: a stack frame inside Cairn names its bundle file (readable, names kept), which
 * a map would trade for ~ms of every start that reads it (source maps are on under `cairn`).
 *
 *   node scripts/bundle-dist.mjs            # the second half of `pnpm build` (after tsc)
 */
import { readFileSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadEsbuild } from "../packages/cli/bin/esbuild.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PACKAGES = ["cache", "core", "dsl", "process", "mlflow", "report", "worker", "cli", "cairn"];
/** Modules loaded by path rather than through exports: the `cairn` command's (bin/cairn.mjs). */
const EXTRA_ENTRIES = { cli: { main: "dist/main.js" } };
const BUNDLE_EXPORT = /^\.\/dist\/bundle\/([\w-]+)\.js$/;
const TYPES_EXPORT = /^\.\/(dist\/.+)\.d\.ts$/;

const esbuild = loadEsbuild();
for (const name of PACKAGES) {
  const dir = join(root, "packages", name);
  const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  /** @type {Record<string, string>} */
  const entries = {};
  for (const [subpath, target] of Object.entries(manifest.publishConfig?.exports ?? {})) {
    if (typeof target !== "object") continue;
    const bundled = BUNDLE_EXPORT.exec(target.import);
    const typed = TYPES_EXPORT.exec(target.types);
    if (!bundled || !typed || target.default !== target.import) {
      throw new Error(`packages/${name}/package.json: publishConfig.exports["${subpath}"] should name ./dist/bundle/NAME.js (import and default) and ./dist/PATH.d.ts (types).`);
    }
    entries[bundled[1]] = join(dir, `${typed[1]}.js`);
  }
  for (const [entry, file] of Object.entries(EXTRA_ENTRIES[name] ?? {})) entries[entry] = join(dir, file);
  const outdir = join(dir, "dist", "bundle");
  rmSync(outdir, { recursive: true, force: true }); // no chunk of an earlier build ships
  await esbuild.build({
    entryPoints: entries,
    outdir,
    entryNames: "[name]",
    chunkNames: "chunk-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // Every bare import (Cairn's other packages, dependencies, Node's built-ins) stays one.
    packages: "external",
    // Error classes and functions keep their names (messages and `describeValue` print them).
    keepNames: true,
    logLevel: "warning",
    plugins: [
      {
        name: "cairn-module-url",
        setup(build) {
          build.onLoad({ filter: /\.js$/ }, async (args) => {
            const text = readFileSync(args.path, "utf8");
            if (!text.includes("import.meta")) return undefined;
            // The module's own URL, the tsc file's, made from the bundle's at run time: the
            // package may be installed anywhere. `define` replaces the expression only, not
            // the words inside a string or comment; esbuild renames the constant if it clashes.
            const { code } = await esbuild.transform(text, { loader: "js", format: "esm", sourcefile: args.path, define: { "import.meta.url": "__cairnModuleUrl" } });
            const own = JSON.stringify(relative(outdir, args.path).split("\\").join("/"));
            return { contents: `const __cairnModuleUrl = new URL(${own}, import.meta.url).href;\n${code}`, loader: "js", resolveDir: dirname(args.path) };
          });
        },
      },
    ],
  });
}
