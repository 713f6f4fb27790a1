// @ts-check
/**
 * Cairn's own sources bundled for a fast start. `cairn` runs from TypeScript sources through
 * tsx when it must, but tsx costs ~0.3 s a process before the first line of a flow runs
 * (its loader thread, then every module through it). The bundle (packages/cli/.bundle/<id>/,
 * one file per public entry plus shared chunks, each package's dependencies inside) loads
 * with plain Node in a few tens of milliseconds.
 *
 * It exists in this workspace only: an installed package runs from its compiled dist/ (tsc),
 * and nothing is written into node_modules. The bundle is built on first use and again
 * whenever one of its inputs changes: `.bundle/manifest.json` lists Cairn's source files and the workspace's lockfile (it changes
 * with any dependency) with their mtimes and sizes, ~80 stats a start. A new build goes to a new folder, and the manifest is swapped in by rename, so a
 * process still running an older build keeps its lazily loaded chunks.
 *
 *   node packages/cli/bin/bundle.mjs     # build now (`pnpm bundle`); prints where
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadEsbuild } from "./esbuild.mjs";

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PACKAGES = dirname(CLI);
const DIST = join(CLI, ".bundle");
const MANIFEST = join(DIST, "manifest.json");
/** Bumped when ENTRIES or the shape of a build changes, so that an older build is not used. */
const FORMAT = 3;
const PACKAGE_NAMES = ["cairn", "cli", "worker", "report", "mlflow", "process", "dsl", "core", "cache"];
/** Builds kept besides the newest: a process started on one of them may still load its chunks. */
const KEEP_OLD_BUILDS = 2;

/** The public entry points, by the source file each package's `exports` names. */
const ENTRIES = {
  cairn: "cairn/src/index.ts",
  "cairn-current-task": "cairn/src/current-task.ts",
  "cairn-kind": "cairn/src/kind.ts",
  cli: "cli/src/main.ts",
  "cli-index": "cli/src/index.ts",
  "cli-autorun": "cli/src/autorun.ts",
  worker: "worker/src/index.ts",
  "worker-register": "worker/src/register.ts",
  "worker-errors": "worker/src/errors.ts",
  mlflow: "mlflow/src/index.ts",
  "mlflow-tracker": "mlflow/src/tracker/index.ts",
  "mlflow-register": "mlflow/src/register.ts",
  process: "process/src/index.ts",
  "process-spawn": "process/src/spawn/index.ts",
  "process-current-task": "process/src/current-task.ts",
  dsl: "dsl/src/index.ts",
  "dsl-kind": "dsl/src/kind.ts",
  core: "core/src/index.ts",
  "core-errors": "core/src/errors.ts",
  report: "report/src/index.ts",
  "report-errors": "report/src/errors.ts",
  cache: "cache/src/index.ts",
};

/**
 * @typedef {{ id: string, dir: string, files: Record<string, string>, sources: Record<string, string>, packageDirs: string[], loadEsbuild: typeof loadEsbuild }} Bundle
 * `files`: entry name -> file: URL of its bundle. `sources`: real path of each entry's source -> its bundle URL.
 * `packageDirs`: the folders of Cairn's packages. `loadEsbuild`: see below (flows are compiled with it too).
 */

/** The current build, rebuilt first if any input changed. */
export async function ensureBundle() {
  const fresh = currentBundle();
  if (fresh) return fresh;
  return buildBundle();
}

/** The current build when it is up to date, else undefined. */
export function currentBundle() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(MANIFEST, "utf8"));
  } catch {
    return undefined;
  }
  if (manifest.format !== FORMAT || manifest.node !== process.versions.node.split(".")[0]) return undefined;
  for (const [file, [mtimeMs, size]] of Object.entries(manifest.inputs)) {
    try {
      const s = statSync(file);
      if (s.mtimeMs !== mtimeMs || s.size !== size) return undefined;
    } catch {
      return undefined;
    }
  }
  return describe(manifest.id);
}

/** @param {string} id @returns {Bundle} */
function describe(id) {
  const dir = join(DIST, id);
  /** @type {Record<string, string>} */
  const files = {};
  /** @type {Record<string, string>} */
  const sources = {};
  for (const [name, source] of Object.entries(ENTRIES)) {
    files[name] = pathToFileURL(join(dir, `${name}.mjs`)).href;
    sources[join(PACKAGES, source)] = files[name];
  }
  return { id, dir, files, sources, packageDirs: PACKAGE_NAMES.map((p) => join(PACKAGES, p) + sep), loadEsbuild };
}


/** Builds Cairn's sources into a new folder under .bundle/ and makes it the current build. */
export async function buildBundle() {
  const esbuild = loadEsbuild();
  const id = `${Date.now().toString(36)}-${process.pid}`;
  const outdir = join(DIST, id);
  const sourceDirs = PACKAGE_NAMES.map((p) => join(PACKAGES, p, "src") + sep);
  const result = await esbuild.build({
    entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([name, source]) => [name, join(PACKAGES, source)])),
    outdir,
    absWorkingDir: CLI,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: `node${process.versions.node}`,
    // Error classes and functions keep their names (messages and `describeValue` print them).
    keepNames: true,
    minify: process.env.CAIRN_DIST_MINIFY === "1",
    metafile: true,
    logLevel: "silent",
    // Bundled CommonJS dependencies call require() for Node's built-ins.
    banner: { js: 'import { createRequire as __cairnRequire } from "node:module"; const require = __cairnRequire(import.meta.url);' },
    plugins: [
      {
        // Cairn's sources find their neighbours (Python helpers, package.json, a dependency
        // loaded with createRequire) from import.meta.url: it stays the source file's URL.
        name: "cairn-source-url",
        setup(build) {
          build.onLoad({ filter: /\.ts$/ }, async (args) => {
            if (!sourceDirs.some((d) => args.path.startsWith(d))) return undefined;
            const text = readFileSync(args.path, "utf8");
            if (!text.includes("import.meta")) return undefined;
            // `define` replaces the expression only, not the words inside a string or comment.
            const { code } = await esbuild.transform(text, {
              loader: "ts",
              format: "esm",
              sourcefile: args.path,
              define: { "import.meta.url": JSON.stringify(pathToFileURL(args.path).href) },
            });
            return { contents: code, loader: "js", resolveDir: dirname(args.path) };
          });
        },
      },
    ],
  });
  /** @type {Record<string, [number, number]>} */
  const inputs = {};
  const lockfile = findLockfile();
  for (const input of Object.keys(result.metafile.inputs)) {
    const file = resolve(CLI, input);
    // Dependencies change with the lockfile; without one, each of their files is checked.
    if (lockfile && file.includes(`${sep}node_modules${sep}`)) continue;
    const s = statSync(file);
    inputs[file] = [s.mtimeMs, s.size];
  }
  if (lockfile) {
    const s = statSync(lockfile);
    inputs[lockfile] = [s.mtimeMs, s.size];
  }
  const manifest = { format: FORMAT, id, node: process.versions.node.split(".")[0], built: new Date().toISOString(), inputs };
  const temp = `${MANIFEST}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(manifest));
  renameSync(temp, MANIFEST);
  removeOldBuilds(id);
  return describe(id);
}

/** The pnpm lockfile of the workspace Cairn's packages are in, if any. */
function findLockfile() {
  for (let dir = PACKAGES; dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, "pnpm-lock.yaml");
    try {
      statSync(file);
      return file;
    } catch {
      // look further up
    }
  }
  return undefined;
}

/**
 * Removes builds beyond the newest few that are over an hour old: processes that built at
 * the same moment, or started on a build minutes ago, keep theirs.
 * @param {string} current
 */
function removeOldBuilds(current) {
  const hourAgo = Date.now() - 3_600_000;
  const builds = readdirSync(DIST, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== current)
    .map((d) => ({ name: d.name, mtime: statSync(join(DIST, d.name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of builds.slice(KEEP_OLD_BUILDS)) {
    if (old.mtime < hourAgo) rmSync(join(DIST, old.name), { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  mkdirSync(DIST, { recursive: true });
  const started = performance.now();
  const bundle = await buildBundle();
  console.log(`Built Cairn into ${relative(process.cwd(), bundle.dir) || bundle.dir} in ${Math.round(performance.now() - started)} ms.`);
}
