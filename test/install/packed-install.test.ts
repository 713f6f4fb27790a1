/**
 * Cairn as a user installs it: every package packed with `pnpm pack` (scripts/pack.sh), the
 * tarballs installed with npm into projects in a temp folder outside the workspace, then
 * `cairn init`, `cairn run`, `tsx`, `tsc`, a plain-Node app and a compiled TypeScript app,
 * Python script steps, all against the installed files only. Every process records the
 * modules it resolves (an ESM resolve hook given with NODE_OPTIONS); none may come from the
 * workspace, and none may write into node_modules.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Exit, start } from "../cache/helpers.ts";

const repo = resolve(import.meta.dirname, "../..");
const VENV_PYTHON = join(repo, ".venv/bin/python");

let work: string;
let packed: string;
let env: NodeJS.ProcessEnv;
let loads: string;

type Ran = Pick<Exit, "code" | "stdout" | "stderr">;

/** Runs a command of the user's shell in `cwd` (see `env`), collecting its output. */
function sh(command: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return start(command, args, { cwd, env: { ...env, ...extraEnv } }).done;
}

/** Like sh, but fails the test with the process's output when it exits non-zero. */
async function ok(command: string, args: string[], cwd: string, extraEnv?: NodeJS.ProcessEnv): Promise<Ran> {
  const ran = await sh(command, args, cwd, extraEnv);
  if (ran.code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${ran.code} in ${cwd}\n${ran.stdout}\n${ran.stderr}`);
  return ran;
}

/** Task statuses from `--json` events: node id -> last status. */
function statuses(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    const e = JSON.parse(line) as { type: string; task?: string; status: string };
    if (e.type === "task" && e.task) out[e.task] = e.status;
  }
  return out;
}

/** A project folder with the packed tarballs installed by npm (into `packageJson`, when given; with `npmFlags`). */
async function installedProject(name: string, { packageJson, npmFlags = [] }: { packageJson?: object; npmFlags?: string[] } = {}): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir);
  if (packageJson) writeFileSync(join(dir, "package.json"), `${JSON.stringify(packageJson, null, 2)}\n`);
  const tarballs = readdirSync(packed).filter((f) => f.endsWith(".tgz")).map((f) => join(packed, f));
  await ok("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", ...npmFlags, ...tarballs], dir);
  return dir;
}

/** Files under `dir` changed since `since` (ms). */
function changedSince(dir: string, since: number): string[] {
  const changed: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile() && statSync(p).mtimeMs > since) changed.push(p);
    }
  };
  walk(dir);
  return changed;
}

beforeAll(async () => {
  // os.tmpdir() is the test run's folder under /tmp (test/global-setup.ts): outside the workspace.
  work = await mkdtemp(join(tmpdir(), "cairn-install-"));
  expect(work.startsWith(repo)).toBe(false);
  packed = join(work, "packed");
  loads = join(work, "resolved-modules.txt");
  writeFileSync(join(work, "record-hooks.mjs"), `import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
  const found = await next(specifier, context);
  appendFileSync(${JSON.stringify(loads)}, found.url + "\\n");
  return found;
}
`);
  writeFileSync(join(work, "record-loads.mjs"), `import { register } from "node:module";\nregister("./record-hooks.mjs", import.meta.url);\n`);
  // A user's shell: none of pnpm's npm_* variables, and no workspace bin folder on PATH.
  env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("npm_") && !k.startsWith("PNPM_") && !k.startsWith("VITEST") && k !== "NODE_OPTIONS"));
  env.PATH = (process.env.PATH ?? "").split(delimiter).filter((p) => !p.startsWith(repo)).join(delimiter);
  env.NO_COLOR = "1";
  const pack = await sh("bash", [join(repo, "scripts/pack.sh"), packed], repo);
  if (pack.code !== 0) throw new Error(`scripts/pack.sh failed:\n${pack.stdout}\n${pack.stderr}`);
  env.NODE_OPTIONS = `--import=${pathToFileURL(join(work, "record-loads.mjs")).href}`;
}, 300_000);

afterAll(async () => {
  if (work && process.env.CAIRN_KEEP_TMP !== "1") await rm(work, { recursive: true, force: true });
});

describe("the packed packages", () => {
  it("hold compiled JavaScript, .d.ts and the Python helpers, real version ranges, and no sources or tests", async () => {
    const tarballs = readdirSync(packed).filter((f) => f.endsWith(".tgz")).sort();
    expect(tarballs).toEqual([
      "cairn-cache-0.1.0.tgz",
      "cairn-cli-0.1.0.tgz",
      "cairn-core-0.1.0.tgz",
      "cairn-dag-0.1.0.tgz",
      "cairn-dsl-0.1.0.tgz",
      "cairn-mlflow-0.1.0.tgz",
      "cairn-process-0.1.0.tgz",
      "cairn-report-0.1.0.tgz",
      "cairn-worker-0.1.0.tgz",
    ]);
    const list = async (tarball: string) => (await ok("tar", ["tzf", join(packed, tarball)], work)).stdout.trim().split("\n");
    const dsl = await list("cairn-dsl-0.1.0.tgz");
    expect(dsl).toEqual(expect.arrayContaining(["package/dist/index.js", "package/dist/index.d.ts", "package/dist/kind.d.ts"]));
    const processKinds = await list("cairn-process-0.1.0.tgz");
    expect(processKinds).toEqual(expect.arrayContaining(["package/dist/index.js", "package/dist/spawn/index.d.ts", "package/python/cairn_task.py", "package/python/cairn_preload.py"]));
    const mlflow = await list("cairn-mlflow-0.1.0.tgz");
    expect(mlflow).toEqual(expect.arrayContaining(["package/dist/index.js", "package/dist/tracker/index.d.ts", "package/dist/register.js"]));
    const cli = await list("cairn-cli-0.1.0.tgz");
    expect(cli).toEqual(expect.arrayContaining(["package/dist/main.js", "package/dist/index.d.ts", "package/bin/cairn.mjs", "package/templates/ts/flow.ts"]));
    // No source maps either: they would point at the sources, which are not shipped.
    for (const tarball of tarballs) expect((await list(tarball)).filter((f) => /\.test(-d)?\.|\/src\/|tsbuildinfo|\/test\/|\.bundle|\.map$/.test(f))).toEqual([]);
    // Every compiled module has its source: nothing left in dist/ by a file moved or deleted since.
    for (const tarball of tarballs) {
      const dir = tarball.startsWith("cairn-dag-") ? "cairn" : tarball.slice("cairn-".length, -"-0.1.0.tgz".length);
      const orphans = (await list(tarball))
        .filter((f) => /^package\/dist\/.*\.js$/.test(f) && !f.startsWith("package/dist/bundle/"))
        .map((f) => f.replace(/^package\/dist\//, "").replace(/\.js$/, ".ts"))
        .filter((rel) => !existsSync(join(repo, "packages", dir, "src", rel)));
      expect(orphans).toEqual([]);
    }
    for (const tarball of tarballs) {
      const manifest = await ok("tar", ["xzf", join(packed, tarball), "-O", "package/package.json"], work);
      expect(manifest.stdout).not.toMatch(/workspace:|catalog:|\.\/src\//);
      // What the exports name is there: each entry point bundled (scripts/bundle-dist.mjs), its types beside tsc's modules.
      const files = await list(tarball);
      for (const target of Object.values(JSON.parse(manifest.stdout).exports as Record<string, string | Record<string, string>>)) {
        for (const file of typeof target === "string" ? [target] : Object.values(target)) expect(files, `${tarball}: ${file}`).toContain(`package/${file.slice(2)}`);
        if (typeof target !== "string") expect(target.import).toMatch(/^\.\/dist\/bundle\/[\w-]+\.js$/);
      }
    }
  });
});

describe("a TypeScript project made by `cairn init`", () => {
  let project: string;
  let installedAt: number;

  beforeAll(async () => {
    project = await installedProject("ts-project");
    const init = await ok("npx", ["cairn", "init"], project);
    expect(init.stdout).toContain("Created tsconfig.json, flow.ts");
    installedAt = Date.now();
  }, 300_000);

  it("scaffolds flow.ts, a strict tsconfig, scripts, .gitignore and the dev tools, and refuses to run twice", async () => {
    const pkg = JSON.parse(readFileSync(join(project, "package.json"), "utf8"));
    expect(pkg.type).toBe("module");
    expect(pkg.scripts).toMatchObject({ flow: "cairn run flow.ts", typecheck: "tsc --noEmit" });
    expect(Object.keys(pkg.devDependencies).sort()).toEqual(["@types/node", "tsx", "typescript"]);
    expect(JSON.parse(readFileSync(join(project, "tsconfig.json"), "utf8")).compilerOptions).toMatchObject({ strict: true, sourceMap: true });
    expect(readFileSync(join(project, ".gitignore"), "utf8")).toContain(".cairn/");
    const again = await sh("npx", ["cairn", "init", "--no-install"], project);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("cairn init would overwrite tsconfig.json, flow.ts");
    const badTemplate = await sh("npx", ["cairn", "init", "elsewhere", "--template", "rust", "--no-install"], project);
    expect(badTemplate.code).toBe(2);
    expect(badTemplate.stderr).toContain('Expected --template to be one of ts, python, got "rust"');
  });

  it("runs with `cairn run` (cold, then every task cached), `tsx` and `npm run flow`, from the installed files only", async () => {
    writeFileSync(loads, "");
    const cold = await ok("npx", ["cairn", "run", "flow.ts", "--json"], project);
    expect(statuses(cold.stdout)).toEqual({ "make-data": "succeeded", fit: "succeeded", report: "succeeded" });
    const warm = await ok("npx", ["cairn", "run", "flow.ts", "--json"], project);
    expect(statuses(warm.stdout)).toEqual({ "make-data": "cached", fit: "cached", report: "cached" });
    // tsx compiles the flow the way `cairn` does: its function tasks hit the same entries.
    const viaTsx = await ok("npx", ["tsx", "flow.ts", "--json", "-p", "rows=50"], project);
    expect(statuses(viaTsx.stdout)).toEqual({ "make-data": "succeeded", fit: "succeeded", report: "succeeded" });
    const again = await ok("npx", ["tsx", "flow.ts", "--json"], project);
    expect(statuses(again.stdout)).toEqual({ "make-data": "cached", fit: "cached", report: "cached" });
    const script = await ok("npm", ["run", "--silent", "flow"], project);
    expect(script.stdout).toMatch(/Outputs: \{"slope":3\.\d+/);
    // The run's report, from the installed @cairn/report (and its layout library).
    const logged = /Report: (\S+report\.html)/.exec(script.stdout)?.[1];
    expect(logged, script.stdout).toBeDefined();
    expect(readFileSync(logged!, "utf8")).toContain("<svg");
    await ok("npx", ["cairn", "report", "latest", "--out", "latest-report.html"], project);
    expect(readFileSync(join(project, "latest-report.html"), "utf8")).toContain("<svg");

    const resolved = readFileSync(loads, "utf8").trim().split("\n");
    expect(resolved).toContain(pathToFileURL(join(project, "node_modules/@cairn/cli/dist/bundle/main.js")).href);
    // The bundles, not tsc's one module per source file (their neighbours' files are found from tsc's paths).
    expect(resolved.filter((url) => /node_modules\/(@cairn\/\w+|cairn-dag)\/dist\/(?!bundle\/)/.test(url))).toEqual([]);
    expect(resolved.filter((url) => url.startsWith(pathToFileURL(repo).href))).toEqual([]);
    expect(changedSince(join(project, "node_modules"), installedAt)).toEqual([]);
  });

  it("`cairn --version` names the commit the tarballs were packed from, so that two packs of one version tell apart", async () => {
    const head = (await ok("git", ["rev-parse", "--short", "HEAD"], repo)).stdout.trim();
    const shown = await ok("npx", ["cairn", "--version"], project);
    expect(shown.stdout).toMatch(new RegExp(`^0\\.1\\.0\\+${head}(-dirty)?\n$`));
    // Every tarball carries it: the one users install (cairn-dag) differs between two commits' packs.
    const stamp = await ok("tar", ["xzf", join(packed, "cairn-dag-0.1.0.tgz"), "-O", "package/dist/build.json"], work);
    expect(JSON.parse(stamp.stdout)).toEqual({ commit: shown.stdout.trim().slice("0.1.0+".length) });
  });

  it("loads the queue's package (BullMQ) from the installed files: cairn workers against a Redis that is not there says so", async () => {
    const r = await sh("npx", ["cairn", "workers", "--queue", "redis://127.0.0.1:1"], project);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("QueueUnreachableError: The queue at redis://127.0.0.1:1 did not answer");
  });

  it("type-checks with the scaffold's standard tsconfig, and a mis-wired flow fails at the user's line", async () => {
    await ok("npx", ["tsc", "--noEmit"], project);
    mkdirSync(join(project, "miswired"));
    const source = readFileSync(join(project, "flow.ts"), "utf8").replace("report({ slope: line.slope,", "report({ slope: data.data,");
    writeFileSync(join(project, "miswired/flow.ts"), source);
    const line = source.split("\n").findIndex((l) => l.includes("slope: data.data")) + 1;
    const tsc = await sh("npx", ["tsc", "--noEmit"], project);
    await rm(join(project, "miswired"), { recursive: true });
    expect(tsc.code).toBe(2);
    expect(tsc.stdout).toContain(`miswired/flow.ts(${line},`);
    expect(tsc.stdout).toContain("error TS2322: Type 'Ref<Artifact>' is not assignable to type 'Wire<number>'.");
    // Every error is in the user's file, none in Cairn's.
    expect(tsc.stdout.split("\n").filter((l) => /error TS/.test(l) && !l.startsWith("miswired/flow.ts"))).toEqual([]);
  });

  it("embeds in a plain Node app (no tsx, no loader) and in a TypeScript app compiled by tsc", async () => {
    writeFileSync(
      join(project, "app.mjs"),
      `import { flow, task } from "cairn-dag";
const double = task("double").run(async ({ x }) => ({ y: x * 2 }));
const demo = flow("embedded").build(() => ({ y: double({ x: 21 }).y }));
const run = await demo.run({ tracker: false, cache: false });
const result = await run.wait();
console.log(JSON.stringify({ status: result.status, outputs: await run.outputs() }));
`,
    );
    const plain = await ok("node", ["app.mjs"], project);
    expect(JSON.parse(plain.stdout)).toEqual({ status: "succeeded", outputs: { y: 42 } });

    writeFileSync(
      join(project, "app.ts"),
      // As the README's Embedding writes it: the scaffold's tsconfig rewrites "./flow.ts" to "./flow.js" when tsc emits.
      // queueDispatcher and logReport as README imports them: from cairn-dag's own entries (under pnpm, @cairn/* cannot be imported).
      `import demo from "./flow.ts";
import { queueDispatcher } from "cairn-dag/queue";
import { logReport } from "cairn-dag/report";
const run = await demo.run({ params: { rows: 40, seed: 3 } });
const { slope, rmse } = await run.outputs();
const typed: number = slope + rmse;
const entries: Array<typeof queueDispatcher | typeof logReport> = [queueDispatcher, logReport];
console.log(JSON.stringify({ status: (await run.wait()).status, finite: Number.isFinite(typed), entries: entries.map((f) => f.name) }));
`,
    );
    await ok("npx", ["tsc"], project);
    const compiled = await ok("node", ["dist/app.js"], project);
    expect(JSON.parse(compiled.stdout)).toEqual({ status: "succeeded", finite: true, entries: ["queueDispatcher", "logReport"] });
    // The compiled flow is not the entry point: importing it ran nothing on its own.
    expect(compiled.stdout.trim().split("\n")).toHaveLength(1);
  });

  it('type-checks and runs a TypeScript app compiled to CommonJS ("module": "commonjs", whose moduleResolution node10 reads no exports) that imports cairn-dag and its subpaths', async () => {
    // node10 finds types through `types` and `typesVersions` only: without them every import is TS2307.
    const dir = join(project, "cjs-app");
    mkdirSync(dir);
    writeFileSync(join(dir, "package.json"), `${JSON.stringify({ type: "commonjs" })}\n`);
    const options = { module: "commonjs", target: "ES2022", strict: true, esModuleInterop: true, outDir: "dist", types: ["node"], skipLibCheck: false };
    writeFileSync(join(dir, "tsconfig.json"), `${JSON.stringify({ compilerOptions: options, include: ["*.ts"] }, null, 2)}\n`);
    cpSync(join(project, "flow.ts"), join(dir, "flow.ts"));
    writeFileSync(
      join(dir, "app.ts"),
      `import demo from "./flow";
import { flow, task } from "cairn-dag";
import { queueDispatcher } from "cairn-dag/queue";
import { logReport } from "cairn-dag/report";
import { MlflowTracker } from "cairn-dag/mlflow-tracker";
import { currentTask } from "cairn-dag/current-task";
import { kindTask } from "cairn-dag/kind";
import type { TrackerComplianceOptions } from "cairn-dag/testing";
type Unused = TrackerComplianceOptions | typeof currentTask | typeof kindTask | typeof MlflowTracker | typeof queueDispatcher | typeof logReport;
const double = task("double").input<{ x: number }>().run(async ({ x }) => ({ y: x * 2 }));
const small = flow("small").build(() => ({ y: double({ x: 21 }).y }));
async function main(): Promise<void> {
  const run = await demo.run({ params: { rows: 40, seed: 3 } });
  const { slope } = await run.outputs();
  const typed: number = slope;
  const { y } = await (await small.run({ tracker: false, cache: false })).outputs();
  const unused: Unused[] = [];
  console.log(JSON.stringify({ finite: Number.isFinite(typed), y: y + unused.length }));
}
void main();
`,
    );
    try {
      await ok("npx", ["tsc", "-p", "cjs-app"], project);
      const ran = await ok("node", ["cjs-app/dist/app.js"], project);
      expect(JSON.parse(ran.stdout)).toEqual({ finite: true, y: 42 });
    } finally {
      // The project's own tsconfig takes every .ts file in it: the later tests' `tsc` must not see these CommonJS ones.
      await rm(dir, { recursive: true });
    }
  });

  it("a TypeScript app compiled by tsc (the scaffold's tsconfig writes source maps) hits what `cairn run` stored, and runs again what an edit changed once compiled", async () => {
    mkdirSync(join(project, "deployed"));
    cpSync(join(project, "flow.ts"), join(project, "deployed/flow.ts"));
    writeFileSync(
      join(project, "deployed/app.ts"),
      `import demo from "./flow.ts";
const run = await demo.run({ params: { rows: 500 } });
const result = await run.wait();
console.log(JSON.stringify(Object.fromEntries(Object.entries(result.tasks).map(([id, t]) => [id, t.status]))));
`,
    );
    const all = (status: string) => ({ "make-data": status, fit: status, report: status });
    const cli = await ok("npx", ["cairn", "run", "deployed/flow.ts", "-p", "rows=500", "--json"], project);
    expect(statuses(cli.stdout)).toEqual(all("succeeded"));
    await ok("npx", ["tsc"], project);
    const app = await ok("node", ["dist/deployed/app.js"], project);
    expect(JSON.parse(app.stdout)).toEqual(all("cached"));
    expect(app.stderr).toBe("");
    // Node showing stack frames at the sources changes nothing.
    const mapped = await ok("node", ["--enable-source-maps", "dist/deployed/app.js"], project);
    expect(JSON.parse(mapped.stdout)).toEqual(all("cached"));

    // Edited after compiling: what runs is the compiled code, which counts as the JavaScript it is (its source no longer says what it does).
    const source = readFileSync(join(project, "deployed/flow.ts"), "utf8");
    writeFileSync(join(project, "deployed/flow.ts"), source.replace("const slope = sxy / sxx;", "const slope = (sxy / sxx) * 2;"));
    const stale = await ok("node", ["dist/deployed/app.js"], project);
    expect(JSON.parse(stale.stdout)).toEqual(all("succeeded"));
    expect(stale.stderr).toContain("CairnCompiledSourceWarning: dist/deployed/flow.js counts in cache keys as the JavaScript it is, not as its source deployed/flow.ts: deployed/flow.ts was changed after");
    // The same under --enable-source-maps, where Node shows the edited source: what ran counts.
    const staleMapped = await ok("node", ["--enable-source-maps", "dist/deployed/app.js"], project);
    expect(JSON.parse(staleMapped.stdout)).toEqual(all("cached"));
    // Compiled again: only the edited task and the one its new outputs feed run; `cairn run` then hits them all.
    await ok("npx", ["tsc"], project);
    const edited = await ok("node", ["dist/deployed/app.js"], project);
    expect(JSON.parse(edited.stdout)).toEqual({ "make-data": "cached", fit: "succeeded", report: "succeeded" });
    expect(edited.stderr).toBe("");
    const after = await ok("npx", ["cairn", "run", "deployed/flow.ts", "-p", "rows=500", "--json"], project);
    expect(statuses(after.stdout)).toEqual(all("cached"));
  });
  it("lets the project write a task kind with cairn-dag/kind: typed, run, cached, and re-run when the kind's code changes", async () => {
    mkdirSync(join(project, "kinds"));
    mkdirSync(join(project, "kinded"));
    writeFileSync(
      join(project, "kinds/shout.ts"),
      `import { checkName, configDigest, kindTask, NO_RETRY, runProcess, type KindTask } from "cairn-dag/kind";
export function shout(name: string, options: { word: string }): KindTask<Record<string, never>, { text: string }> {
  checkName(name);
  return kindTask({
    definition: {
      name, kind: "shout", code: configDigest({ word: options.word }), retry: NO_RETRY, cache: {}, env: [],
      run: async (inputs, ctx) => {
        const r = await runProcess({ command: "echo", args: [options.word.toUpperCase() + "!"], inputs, captureStdout: true }, ctx);
        return { text: (r.stdout ?? "").trim() };
      },
    },
  });
}
`,
    );
    writeFileSync(
      join(project, "kinded/flow.ts"),
      `import { flow } from "cairn-dag";
import { shout } from "../kinds/shout.ts";
const hello = shout("hello", { word: "hi" });
export default flow("kinded").build(() => ({ text: hello().text }));
`,
    );
    await ok("npx", ["tsc", "--noEmit"], project);
    const cold = await ok("npx", ["cairn", "run", "kinded/flow.ts", "--json"], project);
    expect(statuses(cold.stdout)).toEqual({ hello: "succeeded" });
    expect(statuses((await ok("npx", ["cairn", "run", "kinded/flow.ts", "--json"], project)).stdout)).toEqual({ hello: "cached" });
    writeFileSync(join(project, "kinds/shout.ts"), readFileSync(join(project, "kinds/shout.ts"), "utf8").replace(`+ "!"`, `+ "?"`));
    const edited = await ok("npx", ["cairn", "run", "kinded/flow.ts"], project);
    expect(edited.stdout).toContain('Outputs: {"text":"HI?"}');
    // Compiled by tsc, an app running that flow hits the entry: the kind's code counts as its source too.
    writeFileSync(
      join(project, "kinded/app.ts"),
      `import kinded from "./flow.ts";
const result = await (await kinded.run()).wait();
console.log(JSON.stringify(result.tasks.hello?.status));
`,
    );
    await ok("npx", ["tsc"], project);
    expect((await ok("node", ["dist/kinded/app.js"], project)).stdout.trim()).toBe('"cached"');
    expect((await ok("node", ["--enable-source-maps", "dist/kinded/app.js"], project)).stdout.trim()).toBe('"cached"');
  });

  it("lets the project plug in a tracker of its own from cairn-dag alone: its flow records there, and `cairn runs --import` lists it", async () => {
    mkdirSync(join(project, "plugged"));
    writeFileSync(
      join(project, "plugged/tracker.ts"),
      `import { fileURLToPath } from "node:url";
import { LocalStore, registerTrackerScheme, type RunRecord, type TrackerFactory } from "cairn-dag";
export type Listed = RunRecord[];
const open: TrackerFactory = async (uri) => new LocalStore({ root: fileURLToPath(uri.replace(/^jsonfile:/, "file:")) });
registerTrackerScheme(["jsonfile"], open);
`,
    );
    writeFileSync(
      join(project, "plugged/flow.ts"),
      `import "./tracker.ts";
import { flow, task } from "cairn-dag";
const t = task("t").run(() => ({ v: 1 }));
export default flow("plugged").build(() => ({ v: t().v }));
`,
    );
    await ok("npx", ["tsc", "--noEmit"], project);
    const env = { MLFLOW_TRACKING_URI: pathToFileURL(join(project, "plugged/records")).href.replace(/^file:/, "jsonfile:") };
    await ok("npx", ["cairn", "run", "plugged/flow.ts"], project, env);
    const listed = await ok("npx", ["cairn", "runs", "--import", "plugged/tracker.ts"], project, env);
    expect(listed.stdout).toContain("plugged");
  });
});

describe("a Python project made by `cairn init --template python`", () => {
  let project: string;

  beforeAll(async () => {
    project = await installedProject("py-project");
    await ok("npx", ["cairn", "init", "--template", "python"], project);
  }, 300_000);

  it("runs its script steps with the shipped cairn_task helper, then from the cache; editing a shared module re-runs its importers", async () => {
    writeFileSync(loads, "");
    const cold = await ok("npx", ["cairn", "run", "flow.ts", "--json"], project);
    expect(statuses(cold.stdout)).toEqual({ prepare: "succeeded", train: "succeeded", evaluate: "succeeded" });
    const final = JSON.parse(cold.stdout.trim().split("\n").at(-1)!) as { status: string };
    expect(final.status).toBe("succeeded");
    const warm = await ok("npx", ["cairn", "run", "flow.ts", "--json"], project);
    expect(statuses(warm.stdout)).toEqual({ prepare: "cached", train: "cached", evaluate: "cached" });
    writeFileSync(join(project, "steps/common.py"), `${readFileSync(join(project, "steps/common.py"), "utf8")}\nSCALE = 1\n`);
    const edited = await ok("npx", ["cairn", "run", "flow.ts", "--json"], project);
    expect(statuses(edited.stdout)).toEqual({ prepare: "cached", train: "succeeded", evaluate: "succeeded" });
    expect(readFileSync(loads, "utf8").split("\n").filter((url) => url.startsWith(pathToFileURL(repo).href))).toEqual([]);
  });

  it("finds the helper, the warm Python and a shell step inside node_modules", async () => {
    mkdirSync(join(project, "extra"));
    writeFileSync(
      join(project, "extra/where.py"),
      `import cairn_task, os\ncairn_task.set_outputs(helper=os.path.realpath(cairn_task.__file__))\n`,
    );
    writeFileSync(
      join(project, "extra/flow.ts"),
      `import { flow, script, shell } from "cairn-dag";
const where = script("where", { file: "where.py", preload: ["json"] }).output<{ helper: string }>();
const echo = shell("echo", "echo {word}").input<{ word: string }>();
export default flow("extra").build(() => ({ helper: where({}).helper, said: echo({ word: "it's here" }).stdout }));
`,
    );
    const ran = await ok("npx", ["cairn", "run", "extra/flow.ts", "--no-cache"], project);
    expect(ran.stdout).toContain(`"helper":${JSON.stringify(join(project, "node_modules/@cairn/process/python/cairn_task.py"))}`);
    expect(ran.stdout).toContain(`"said":"it's here"`);
  });

  it.skipIf(!existsSync(VENV_PYTHON))("runs a notebook and an MLflow project entry point from the installed package", async () => {
    // The Python with papermill and mlflow is the test venv's; everything of Cairn's is the installed copy.
    mkdirSync(join(project, "more"));
    cpSync(join(repo, "test/kinds/fixtures/report.ipynb"), join(project, "more/report.ipynb"));
    cpSync(join(repo, "test/kinds/fixtures/mlproject"), join(project, "more/mlproject"), { recursive: true });
    writeFileSync(
      join(project, "more/flow.ts"),
      `import { flow, mlflowProject, notebook } from "cairn-dag";
const report = notebook("report", "report.ipynb").input<{ title: string; factor: number }>().output<{ total: number; title: string }>();
const step = mlflowProject("step", { uri: "mlproject", entryPoint: "main" }).output<{ alpha: number; label: string }>();
export default flow("more").build(() => ({ title: report({ title: "installed", factor: 2 }).title, alpha: step({ alpha: 0.25 }).alpha }));
`,
    );
    const ran = await ok("npx", ["cairn", "run", "more/flow.ts", "--json"], project, { CAIRN_PYTHON: VENV_PYTHON });
    expect(statuses(ran.stdout)).toEqual({ report: "succeeded", step: "succeeded" });
    const last = JSON.parse(ran.stdout.trim().split("\n").at(-1)!) as { status: string };
    expect(last.status).toBe("succeeded");
    const human = await ok("npx", ["cairn", "run", "more/flow.ts"], project, { CAIRN_PYTHON: VENV_PYTHON });
    expect(human.stdout).toContain('Outputs: {"title":"installed","alpha":0.25}');
  });
});

describe("a CommonJS project (npm init -y writes \"type\": \"commonjs\") with a flow.ts and no cairn init", () => {
  let project: string;

  beforeAll(async () => {
    project = await installedProject("cjs-project", { packageJson: { name: "cjs-project", version: "1.0.0", type: "commonjs" } });
  }, 300_000);

  it("runs a flow that imports the project's CommonJS module, as tsx does", async () => {
    writeFileSync(join(project, "helper.js"), "exports.factor = 3;\n");
    writeFileSync(
      join(project, "flow.ts"),
      `import { flow, task } from "cairn-dag";
import { factor } from "./helper.js";
const t = task("t").input<{ x: number }>().run(async ({ x }) => ({ y: x * factor }));
export default flow("jsdep").build(() => ({ y: t({ x: 10 }).y }));
`,
    );
    const ran = await ok("npx", ["cairn", "run", "flow.ts", "--no-cache"], project);
    expect(ran.stdout).toContain(`Outputs: {"y":30}`);
  });

  it("gives a module of a CommonJS package its __dirname under cairn, as tsx does", async () => {
    writeFileSync(
      join(project, "dir.flow.ts"),
      `import { flow, task } from "cairn-dag";
const where = __dirname;
const t = task("t").run(async () => ({ where, file: __filename }));
export default flow("dir").build(() => ({ where: t().where, file: t().file }));
`,
    );
    const outputs = `Outputs: {"where":${JSON.stringify(project)},"file":${JSON.stringify(join(project, "dir.flow.ts"))}}`;
    const compiled = await ok("npx", ["cairn", "run", "dir.flow.ts", "--no-cache"], project);
    expect(compiled.stdout).toContain(outputs);
    const viaTsx = await ok("npx", ["cairn", "run", "dir.flow.ts", "--no-cache"], project, { CAIRN_LOADER: "tsx" });
    expect(viaTsx.stdout).toContain(outputs);
  });
});

describe("a project installed without the peer dependency tsx (npm install --legacy-peer-deps)", () => {
  let project: string;

  beforeAll(async () => {
    project = await installedProject("no-peers", { packageJson: { name: "no-peers", version: "1.0.0", type: "module" }, npmFlags: ["--legacy-peer-deps"] });
    expect(existsSync(join(project, "node_modules/tsx"))).toBe(false);
  }, 300_000);

  it("cairn run and cairn plan of a TypeScript flow say that tsx is missing and how to install it, not that the flow's code threw", async () => {
    writeFileSync(
      join(project, "flow.ts"),
      `import { flow, task } from "cairn-dag";
const one = task("one").run(async () => ({ v: 1 }));
export default flow("no-peers").build(() => ({ v: one().v }));
`,
    );
    for (const command of ["run", "plan"]) {
      const r = await sh("npx", ["cairn", command, "flow.ts"], project);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain("cairn: FlowFileError: Cannot load flow.ts: cairn compiles TypeScript flow files with the esbuild of tsx, a peer dependency of cairn-dag, and tsx is not installed");
      expect(r.stderr).toContain("Install it in the project: npm install --save-dev tsx");
      expect(r.stderr).not.toContain("module code threw");
    }
    // Started through pnpm (pnpm exec cairn), where npm crashes on pnpm.overrides: pnpm's command.
    const pnpm = { npm_config_user_agent: "pnpm/10.34.9 npm/? node/v20.20.2 linux x64" };
    const r = await sh(join(project, "node_modules/.bin/cairn"), ["run", "flow.ts"], project, pnpm);
    expect(r.stderr).toContain("Install it in the project: pnpm add -D tsx");
    const viaTsx = await sh(join(project, "node_modules/.bin/cairn"), ["run", "flow.ts"], project, { ...pnpm, CAIRN_LOADER: "tsx" });
    expect(viaTsx.stderr).toContain("and tsx is not installed. Install it: pnpm add -D tsx\n");
  });

  it("a .ts script task in an app fails saying that tsx is missing and how to install it", async () => {
    writeFileSync(join(project, "step.ts"), `console.log("step");\n`);
    writeFileSync(
      join(project, "app.mjs"),
      `import { flow, script } from "cairn-dag";
const step = script("step", { file: "step.ts" });
const demo = flow("embedded").build(() => { step({}); return {}; });
const run = await demo.run({ tracker: false, cache: false });
const result = await run.wait();
console.log(JSON.stringify({ status: result.status, error: result.tasks.step?.error }));
`,
    );
    const r = await ok("node", ["app.mjs"], project);
    const { status, error } = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { status: string; error: { name: string; message: string } };
    expect(status).toBe("failed");
    expect(error.name).toBe("ProcessStartError");
    expect(error.message).toContain(`Task "step" could not start \`tsx ${join(project, "step.ts")}\`. A .ts script runs with tsx, a peer dependency of cairn-dag, and tsx is not installed`);
    expect(error.message).toContain("Install it in the project: npm install --save-dev tsx; or give the task an `interpreter`.");
    // An app started by `pnpm start` is told pnpm's command.
    const pnpm = await ok("node", ["app.mjs"], project, { npm_config_user_agent: "pnpm/10.34.9 npm/? node/v20.20.2 linux x64" });
    expect(pnpm.stdout).toContain("Install it in the project: pnpm add -D tsx; or give the task an `interpreter`.");
  });
});

describe("the install section of the README", () => {
  it("names the commands this test runs", () => {
    const readme = readFileSync(join(repo, "README.md"), "utf8");
    const install = readme.slice(readme.indexOf("## Install"), readme.indexOf("\n## ", readme.indexOf("## Install") + 1));
    for (const command of ["npm install", "npx cairn init", "npx cairn run flow.ts", "npx tsc --noEmit", "--template python"]) expect(install).toContain(command);
    expect(existsSync(join(repo, "scripts/pack.sh"))).toBe(true);
  });
});
