/**
 * `cairn` runs from Cairn's bundle and compiles flow files itself (no tsx): what a flow file
 * does, imports and declares must come out as under tsx, and a flow compiled here must hit
 * the cache entries written under tsx (the code fingerprint of a function task is its text,
 * with the helpers and modules it uses read from the files).
 */
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "./cache/helpers.ts";

const repo = resolve(import.meta.dirname, "..");
const tsx = join(repo, "node_modules/.bin/tsx");

let dir: string;
beforeAll(async () => {
  // Inside the workspace, so that `@cairn/dsl` and zod resolve as they do for the examples.
  dir = await mkdtemp(join(repo, "test", ".compiled-"));
  await mkdir(join(dir, "lib"));
  await writeFile(join(dir, "lib", "shape.ts"), `export const scale = (n: number): number => n * 3;\nexport type Shape = { n: number };\n`);
  await writeFile(join(dir, "lib", "step.py"), `print("step")\n`);
  await writeFile(
    join(dir, "lib", "steps.ts"),
    [
      `import { script, task } from "cairn-dag";`,
      `import { scale, type Shape } from "./shape.ts";`,
      // A path relative to this module (lib/), not to the flow or the working directory.
      `export const step = script("step", { file: "step.py" });`,
      `export const triple = task("triple").input<Shape>().run(({ n }: Shape) => ({ n: scale(n) }));`,
    ].join("\n"),
  );
  await writeFile(
    join(dir, "flow.ts"),
    [
      `import { flow } from "cairn-dag";`,
      `import { z } from "zod";`,
      `import { step, triple } from "./lib/steps.ts";`,
      `export const where = import.meta.url;`,
      `export default flow("compiled")`,
      `  .params(z.object({ n: z.number().default(2) }))`,
      `  .build(({ params }) => {`,
      `    step({});`,
      `    const t = triple({ n: params.n });`,
      `    return { n: t.n, where };`,
      `  });`,
    ].join("\n"),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...childEnv(), CAIRN_NO_AUTORUN: "0", CAIRN_PYTHON: "python3", ...extra });
const cairn = (args: string[], extra?: NodeJS.ProcessEnv) => start(process.execPath, [cairnBin, ...args], { cwd: dir, env: env(extra) }).done;
const statuses = (stdout: string) => [...stdout.matchAll(/^(step|triple)\s+(succeeded|cached)\s/gm)].map((m) => `${m[1]} ${m[2]}`).sort();

describe("cairn run without tsx", () => {
  it("runs a flow whose modules import each other, with paths and import.meta.url of the sources", async () => {
    const root = join(dir, ".cairn-a");
    const r = await cairn(["run", "flow.ts", "--root", root]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(statuses(r.stdout)).toEqual(["step succeeded", "triple succeeded"]);
    expect(r.stdout).toContain(`"n":6`);
    expect(r.stdout).toContain(`"where":${JSON.stringify(pathToFileURL(join(dir, "flow.ts")).href)}`);
  });

  it("hits what tsx flow.ts recorded, and tsx hits what cairn run recorded: the same code fingerprints", async () => {
    const root = join(dir, ".cairn-b");
    const first = await start(tsx, ["flow.ts", "--root", root], { cwd: dir, env: env() }).done;
    expect(first.code).toBe(0);
    expect(statuses(first.stdout)).toEqual(["step succeeded", "triple succeeded"]);
    const compiled = await cairn(["run", "flow.ts", "--root", root]);
    expect(compiled.code).toBe(0);
    expect(statuses(compiled.stdout)).toEqual(["step cached", "triple cached"]);

    const other = join(dir, ".cairn-c");
    expect((await cairn(["run", "flow.ts", "--root", other])).code).toBe(0);
    const back = await start(tsx, ["flow.ts", "--root", other], { cwd: dir, env: env() }).done;
    expect(statuses(back.stdout)).toEqual(["step cached", "triple cached"]);
  });

  it("recompiles an imported module that changed: the new code runs", async () => {
    const root = join(dir, ".cairn-d");
    expect((await cairn(["run", "flow.ts", "--root", root])).code).toBe(0);
    const shape = join(dir, "lib", "shape.ts");
    const before = await readFile(shape, "utf8");
    try {
      await writeFile(shape, before.replace("n * 3", "n * 5"));
      // A second later: the edit is seen even where mtimes are coarse.
      const later = new Date(Date.now() + 1000);
      await utimes(shape, later, later);
      const fresh = await cairn(["run", "flow.ts", "--root", root, "--no-cache"]);
      expect(fresh.code).toBe(0);
      expect(fresh.stdout).toContain(`"n":10`);
      // The task's own text did not change, but it calls scale() from the edited module:
      // its key covers that module (test/cache/code-dependencies.test.ts), so it runs again.
      const again = await cairn(["run", "flow.ts", "--root", root]);
      expect(statuses(again.stdout)).toEqual(["step cached", "triple succeeded"]);
    } finally {
      await writeFile(shape, before);
    }
  });

  it("recompiles a module edited without a change of size or mtime (cp -p, rsync -a, tar x): the new code runs, and is what the cache stores", async () => {
    const root = join(dir, ".cairn-e");
    expect((await cairn(["run", "flow.ts", "--root", root])).code).toBe(0);
    const shape = join(dir, "lib", "shape.ts");
    const before = await readFile(shape, "utf8");
    const { stat, copyFile } = await import("node:fs/promises");
    const { execFileSync } = await import("node:child_process");
    const was = await stat(shape);
    const ref = join(dir, "shape.ref");
    await copyFile(shape, ref);
    execFileSync("touch", ["-r", shape, ref]);
    try {
      await writeFile(shape, before.replace("n * 3", "n * 7"));
      execFileSync("touch", ["-r", ref, shape]); // the mtime to the nanosecond, as cp -p keeps it
      const after = await stat(shape);
      expect([after.size, after.mtimeMs]).toEqual([was.size, was.mtimeMs]);
      const r = await cairn(["run", "flow.ts", "--root", root]);
      expect(r.code, r.stderr).toBe(0);
      expect(statuses(r.stdout)).toEqual(["step cached", "triple succeeded"]);
      expect(r.stdout).toContain(`"n":14`);
    } finally {
      await writeFile(shape, before);
      await rm(ref, { force: true });
    }
  });

  it("a flow with an import() of a computed path runs through tsx: an edit of a file it may name, or one added beside them, is what runs", async () => {
    const folder = join(dir, "computed");
    await mkdir(join(folder, "plugins"), { recursive: true });
    await writeFile(join(folder, "plugins", "double.ts"), `export const f = (x: number) => x * 2;\n`);
    await writeFile(
      join(folder, "flow.ts"),
      `import { flow, task } from "cairn-dag";\n` +
        `const a = task("a").input<{ x: number; name: string }>().codeFiles("./plugins").run(async ({ x, name }) => ({ y: (await import(\`./plugins/\${name}.ts\`)).f(x) as number }));\n` +
        `export default flow("computed").params<{ name: string }>().build(({ params }) => ({ y: a({ x: 10, name: params.name }).y }));\n`,
    );
    const run = (...args: string[]) => start(process.execPath, [cairnBin, "run", "flow.ts", "--root", join(dir, ".cairn-k"), ...(args.includes("-p") ? [] : ["-p", "name=double"]), ...args], { cwd: folder, env: env() }).done;
    const first = await run();
    expect(first.stderr).toBe("");
    expect(first.stdout).toContain(`Outputs: {"y":20}`);
    // Compiled, esbuild would copy plugins/*.ts into the flow's file: the old code would run, and be stored under the new key.
    await writeFile(join(folder, "plugins", "double.ts"), `export const f = (x: number) => x * 3;\n`);
    const edited = await run();
    expect(edited.stdout).toMatch(/\ba +succeeded/);
    expect(edited.stdout).toContain(`Outputs: {"y":30}`);
    expect((await run("--no-cache")).stdout).toContain(`Outputs: {"y":30}`);
    await writeFile(join(folder, "plugins", "added.ts"), `export const f = (x: number) => x * 7;\n`);
    expect((await run("-p", "name=added")).stdout).toContain(`Outputs: {"y":70}`);
  });

  it("an import() by new URL(..., import.meta.url) loads a JavaScript module compiled, not a TypeScript one, as README says; a literal path or a template literal loads TypeScript", async () => {
    const folder = join(dir, "by-url");
    await mkdir(join(folder, "lib"), { recursive: true });
    await writeFile(join(folder, "lib", "js.mjs"), `export const v = 1;\n`);
    await writeFile(join(folder, "lib", "ts.ts"), `export const v: number = 2;\n`);
    const flowWith = (load: string) =>
      `import { flow, task } from "cairn-dag";\n` +
      `const a = task("a").input<{ name: string }>().run(async ({ name }) => ({ v: (await ${load}).v as number }));\n` +
      `export default flow("by-url").params<{ name: string }>().build(({ params }) => ({ v: a({ name: params.name }).v }));\n`;
    const run = async (load: string) => {
      await writeFile(join(folder, "flow.ts"), flowWith(load));
      return start(process.execPath, [cairnBin, "run", "flow.ts", "--no-cache", "-p", "name=ts", "--root", join(dir, ".cairn-url")], { cwd: folder, env: env() }).done;
    };
    expect((await run(`import(new URL("./lib/js.mjs", import.meta.url).href)`)).stdout).toContain(`Outputs: {"v":1}`);
    expect((await run(`import("./lib/ts.ts")`)).stdout).toContain(`Outputs: {"v":2}`);
    expect((await run("import(`./lib/${name}.ts`)")).stdout).toContain(`Outputs: {"v":2}`);
    const byUrl = await run(`import(new URL("./lib/ts.ts", import.meta.url).href)`);
    expect(byUrl.code).toBe(1);
    expect(byUrl.stdout).toContain(`Unknown file extension ".ts"`);
    // README says so, and no longer recommends new URL(...) for the TypeScript module it cannot load.
    const readme = (await readFile(join(repo, "README.md"), "utf8")).replace(/\s+/g, " ");
    expect(readme).toContain("`import(new URL(\"./lib/x.ts\", import.meta.url).href)` (Node loads that file itself and has no loader for `.ts`: `Unknown file extension \".ts\"`)");
    expect(readme).not.toContain("use a literal path, a template literal (the flow then loads through tsx) or `new URL(..., import.meta.url)`");
  });

  it("compiles anew when a tsconfig's paths (or what it extends) point an import elsewhere, or a tsconfig appears", async () => {
    const folder = join(dir, "paths");
    await mkdir(join(folder, "v1"), { recursive: true });
    await mkdir(join(folder, "v2"));
    await mkdir(join(folder, "v3"));
    await writeFile(join(folder, "v1", "f.ts"), `export const f = (x: number) => x * 2;\n`);
    await writeFile(join(folder, "v2", "f.ts"), `export const f = (x: number) => x * 3;\n`);
    await writeFile(join(folder, "v3", "f.ts"), `export const f = (x: number) => x * 4;\n`);
    await writeFile(join(folder, "f.ts"), `export const f = (x: number) => x * 5;\n`);
    await writeFile(
      join(folder, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nimport { f } from "@impl/f.ts";\n` +
        `const a = task("a").input<{ x: number }>().run(({ x }) => ({ y: f(x) }));\nexport default flow("paths").build(() => ({ y: a({ x: 10 }).y }));\n`,
    );
    const run = () => start(process.execPath, [cairnBin, "run", "flow.ts", "--root", join(dir, ".cairn-l"), "--no-cache"], { cwd: folder, env: env() }).done;
    const paths = (to: string) => JSON.stringify({ compilerOptions: { baseUrl: ".", paths: { "@impl/*": [to] } } });
    // No tsconfig yet: the import does not resolve.
    expect((await run()).code).toBe(2);
    await writeFile(join(folder, "tsconfig.json"), `{ // as tsc writes them\n  "extends": "./tsconfig.base.json",\n}\n`);
    await writeFile(join(folder, "tsconfig.base.json"), paths("./v1/*"));
    expect((await run()).stdout).toContain(`Outputs: {"y":20}`);
    await writeFile(join(folder, "tsconfig.base.json"), paths("./v2/*"));
    expect((await run()).stdout).toContain(`Outputs: {"y":30}`);
    await writeFile(join(folder, "tsconfig.json"), paths("./v3/*"));
    expect((await run()).stdout).toContain(`Outputs: {"y":40}`);
  });

  it("compiles anew when a tsconfig extended through a package name (@tsconfig/node20, a subpath with or without .json, the package.json tsconfig field) changes", async () => {
    const folder = join(dir, "pkg-extends");
    const shared = join(folder, "node_modules", "@acme", "tsconfig");
    await mkdir(shared, { recursive: true });
    for (const v of [1, 2, 3]) {
      await mkdir(join(folder, `v${v}`));
      await writeFile(join(folder, `v${v}`, "f.ts"), `export const f = (x: number) => x * ${v + 1};\n`);
    }
    await writeFile(
      join(folder, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nimport { f } from "@impl/f.ts";\n` +
        `const a = task("a").input<{ x: number }>().run(({ x }) => ({ y: f(x) }));\nexport default flow("pkg-extends").build(() => ({ y: a({ x: 10 }).y }));\n`,
    );
    const run = () => start(process.execPath, [cairnBin, "run", "flow.ts", "--root", join(dir, ".cairn-l"), "--no-cache"], { cwd: folder, env: env() }).done;
    const paths = (to: string) => JSON.stringify({ compilerOptions: { paths: { "@impl/*": [to] } } });
    const project = (base: string) => JSON.stringify({ extends: base, compilerOptions: { baseUrl: "." } });
    await writeFile(join(shared, "package.json"), JSON.stringify({ name: "@acme/tsconfig", version: "1.0.0" }));
    // The package's own tsconfig.json, as `@tsconfig/node20` is extended.
    await writeFile(join(shared, "tsconfig.json"), paths("./v1/*"));
    await writeFile(join(folder, "tsconfig.json"), project("@acme/tsconfig"));
    expect((await run()).stdout).toContain(`Outputs: {"y":20}`);
    await writeFile(join(shared, "tsconfig.json"), paths("./v2/*"));
    expect((await run()).stdout).toContain(`Outputs: {"y":30}`);
    // A file of the package by its path (`@tsconfig/strictest/tsconfig.json`, `@acme/tsconfig/strict.json`).
    await writeFile(join(shared, "strict.json"), paths("./v3/*"));
    await writeFile(join(folder, "tsconfig.json"), project("@acme/tsconfig/strict.json"));
    expect((await run()).stdout).toContain(`Outputs: {"y":40}`);
    await writeFile(join(shared, "strict.json"), paths("./v1/*"));
    expect((await run()).stdout).toContain(`Outputs: {"y":20}`);
    // The same file without `.json`, as TypeScript and esbuild read `@acme/tsconfig/strict`.
    await writeFile(join(folder, "tsconfig.json"), project("@acme/tsconfig/strict"));
    expect((await run()).stdout).toContain(`Outputs: {"y":20}`);
    await writeFile(join(shared, "strict.json"), paths("./v2/*"));
    expect((await run()).stdout).toContain(`Outputs: {"y":30}`);
    // The package.json's `tsconfig` field names the file the package's name extends.
    await writeFile(join(shared, "base.json"), paths("./v3/*"));
    await writeFile(join(shared, "package.json"), JSON.stringify({ name: "@acme/tsconfig", version: "1.0.0", tsconfig: "base.json" }));
    await writeFile(join(folder, "tsconfig.json"), project("@acme/tsconfig"));
    expect((await run()).stdout).toContain(`Outputs: {"y":40}`);
    await writeFile(join(shared, "base.json"), paths("./v1/*"));
    expect((await run()).stdout).toContain(`Outputs: {"y":20}`);
  });

  it("a syntax error names the file, line and column, and exits 2", async () => {
    const bad = join(dir, "bad.flow.ts");
    await writeFile(bad, `import { flow } from "cairn-dag";\nexport default flow("bad").build(() => {\n  const x = ;\n  return {};\n});\n`);
    const r = await cairn(["run", "bad.flow.ts"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/FlowFileError: Could not compile .*bad\.flow\.ts/);
    expect(r.stderr).toContain(`${bad}:3:12: Unexpected ";"\n      const x = ;`);
  });

  it("an import that does not resolve is named with the importing file", async () => {
    const bad = join(dir, "missing.flow.ts");
    await writeFile(bad, `import { flow } from "cairn-dag";\nimport { x } from "./nowhere.ts";\nexport default flow("m").build(() => ({ x }));\n`);
    const r = await cairn(["run", "missing.flow.ts"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:2:18: Could not resolve "./nowhere.ts"`);
    expect(r.stderr).toContain("Fix the TypeScript above");
  });

  it("a flow module that throws at import is a FlowFileError naming the file and the error (exit 2), not a stack through Cairn", async () => {
    const bad = join(dir, "throws.flow.ts");
    await writeFile(bad, `import { flow } from "cairn-dag";
if (!process.env.NEVER_SET_HERE) throw new Error("boom at import");
export default flow("t").build(() => ({}));
`);
    const r = await cairn(["run", "throws.flow.ts"]);
    expect(r.code).toBe(2);
    // Where, in the TypeScript (through the source map), as a task's error says it.
    expect(r.stderr).toContain("cairn: FlowFileError: Importing throws.flow.ts failed: its module code threw Error: boom at import at throws.flow.ts:2:40.");
    expect(r.stderr).not.toMatch(/chunk-|\.bundle/);
  });

  it("an import error names the modules by their sources, never the compiled files, and a throw by the first frame of the user's code", async () => {
    await writeFile(join(dir, "lib.ts"), "export const other = 1;\n");
    await writeFile(join(dir, "helper.ts"), "export function g(): never {\n  throw new Error(\"boom in build\");\n}\n");
    await writeFile(join(dir, "no-export.flow.ts"), `import { nothing } from "./lib.ts";\nimport { flow } from "cairn-dag";\nexport default flow("n").build(() => ({ n: String(nothing) }));\n`);
    await writeFile(join(dir, "in-build.flow.ts"), `import { flow } from "cairn-dag";\nimport { g } from "./helper.ts";\nexport default flow("b").build(() => g());\n`);
    const noExport = await cairn(["run", "no-export.flow.ts"]);
    expect(noExport.code).toBe(2);
    // Node names the module it linked: the compiled copy in the temp folder, which the user never wrote.
    expect(noExport.stderr).toContain("threw SyntaxError: The requested module 'lib.ts' does not provide an export named 'nothing'.");
    expect(noExport.stderr).not.toMatch(/\.mjs|cairn-\d+\/flows/);
    const inBuild = await cairn(["run", "in-build.flow.ts"]);
    expect(inBuild.code).toBe(2);
    expect(inBuild.stderr).toContain("threw Error: boom in build at helper.ts:2:9.");
  });

  it("a TMPDIR it cannot compile into (not a folder; a write cut off by a file size limit) is named as where it failed, not blamed on the flow's code", async () => {
    const file = join(dir, "not-a-folder");
    await writeFile(file, "");
    const notDir = await cairn(["run", "flow.ts", "--root", join(dir, ".cairn-tmp")], { TMPDIR: join(file, "sub") });
    expect(notDir.code).toBe(2);
    expect(notDir.stderr).toContain(
      `cairn: FlowFileError: Cairn could not compile ${join(dir, "flow.ts")} into ${join(file, "sub")} (its folder for compiled flows, in TMPDIR): ENOTDIR: not a directory, mkdtemp`,
    );
    expect(notDir.stderr).toContain("Point TMPDIR at a folder you can write to");
    expect(notDir.stderr).not.toContain("module code threw");

    // ulimit -f counts 512-byte blocks: the compiled flow's write fails part-way with a real EFBIG, as on a full disk.
    const temp = await mkdtemp(join(tmpdir(), "cairn-tmpdir-"));
    const limited = await start("sh", ["-c", `ulimit -f 1 && exec "$0" "$@"`, process.execPath, cairnBin, "run", "flow.ts", "--root", join(dir, ".cairn-tmp")], {
      cwd: dir,
      env: env({ TMPDIR: temp }),
    }).done;
    await rm(temp, { recursive: true, force: true });
    expect(limited.code).toBe(2);
    expect(limited.stderr).toMatch(new RegExp(`Cairn could not compile ${join(dir, "flow.ts")} into ${join(temp, "cairn-\\d+", "flows")}/\\S+ \\(its folder for compiled flows, in TMPDIR\\): EFBIG: file too large, write\\.`));
    expect(limited.stderr).not.toContain("module code threw");
  });

  it("an import of a package that is not installed says what to install, not to fix the TypeScript", async () => {
    const bad = join(dir, "no-package.flow.ts");
    await writeFile(bad, `import { flow } from "cairn-dag";
import pad from "left-pad-not-installed";
import { a } from "@no-scope/not-installed/sub";
export default flow("p").build(() => ({ x: pad + a }));
`);
    const r = await cairn(["run", "no-package.flow.ts"], { npm_config_user_agent: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${bad}:2:16: Could not resolve "left-pad-not-installed"`);
    expect(r.stderr).toContain("Those packages are not installed where the flow is: npm install left-pad-not-installed @no-scope/not-installed (in the project beside no-package.flow.ts).");
    expect(r.stderr).not.toContain("Fix the TypeScript above");
    // Started through pnpm or yarn (`pnpm exec cairn`), it names theirs: npm's crashes on a pnpm project's `pnpm.overrides` (before: npm install).
    for (const [agent, add] of [["pnpm/10.34.9 npm/? node/v22.12.0 linux x64", "pnpm add"], ["yarn/1.22.22 npm/? node/v22.12.0 linux x64", "yarn add"]]) {
      const through = await cairn(["run", "no-package.flow.ts"], { npm_config_user_agent: agent });
      expect(through.code).toBe(2);
      expect(through.stderr).toContain(`Those packages are not installed where the flow is: ${add} left-pad-not-installed @no-scope/not-installed (in the project beside no-package.flow.ts).`);
    }
  });

  it("a flow in a folder without Cairn installed (a global `cairn`) says to install Cairn's tarballs, not `npm install cairn-dag`, which answers 404", async () => {
    const bare = await mkdtemp(join(tmpdir(), "cairn-bare-"));
    try {
      await writeFile(join(bare, "package.json"), `${JSON.stringify({ name: "bare", type: "module" })}\n`);
      await writeFile(join(bare, "f.ts"), `import { flow } from "cairn-dag";\nimport { queueDispatcher } from "cairn-dag/queue";\nimport pad from "left-pad-not-installed";\nexport default flow("p").build(() => ({ x: pad + String(queueDispatcher) }));\n`);
      // A user's shell: no package manager started this cairn (a pnpm test run's user agent would name pnpm).
      const r = await start(process.execPath, [cairnBin, "run", "f.ts"], { cwd: bare, env: env({ npm_config_user_agent: "" }) }).done;
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`${join(bare, "f.ts")}:1:21: Could not resolve "cairn-dag"`);
      expect(r.stderr).toContain("That package is not installed where the flow is: npm install left-pad-not-installed (in the project beside f.ts).");
      expect(r.stderr).toContain(
        'cairn-dag is not installed where the flow is, and Cairn is not on npm yet (`npm install cairn-dag` answers 404): install in the project beside f.ts the tarballs this cairn came from, which `pnpm pack:all DIR` makes in a clone of Cairn (README: "Until it is on npm"): npm install DIR/*.tgz',
      );
      expect(r.stderr).not.toContain("npm install cairn-dag ");
      const pnpm = await start(process.execPath, [cairnBin, "run", "f.ts"], { cwd: bare, env: env({ npm_config_user_agent: "pnpm/10.34.9 npm/? node/v20.20.2 linux x64" }) }).done;
      expect(pnpm.stderr).toContain("(README: \"Until it is on npm\"): pnpm add DIR/cairn-dag-*.tgz   # with pnpm.overrides for the @cairn/* tarballs, as the README shows");
      // A folder without package.json (CommonJS): the flow loads through tsx, and Node's "Cannot find module" says the same.
      await rm(join(bare, "package.json"));
      const cjs = await start(process.execPath, [cairnBin, "run", "f.ts"], { cwd: bare, env: env({ npm_config_user_agent: "" }) }).done;
      expect(cjs.code).toBe(2);
      expect(cjs.stderr).toContain("cairn: FlowFileError: Importing f.ts failed: cairn-dag is not installed where the flow is, and Cairn is not on npm yet");
      expect(cjs.stderr).toContain("npm install DIR/*.tgz");
      expect(cjs.stderr).not.toContain("module code threw");
    } finally {
      await rm(bare, { recursive: true, force: true });
    }
  });

  it("a flow that imports Cairn's internal modules runs through tsx instead, with one engine", async () => {
    const internal = join(dir, "internal.flow.ts");
    const kinds = join(repo, "packages/process/src/index.ts");
    await writeFile(
      internal,
      `import { flow } from "cairn-dag";\nimport { shell } from ${JSON.stringify(kinds)};\n` +
        `const echo = shell("echo", "echo hi");\nexport default flow("internal").build(() => { echo({}); return {}; });\n`,
    );
    const r = await cairn(["run", "internal.flow.ts", "--root", join(dir, ".cairn-e")]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/✓ succeeded\s+echo/);
  });

  it("a JavaScript flow, and a flow importing a JavaScript module of the project, run through tsx as before", async () => {
    await writeFile(join(dir, "js.flow.mjs"), `import { flow, task } from "@cairn/dsl";\nconst one = task("one").run(() => ({ v: 1 }));\nexport default flow("js").build(() => ({ v: one().v }));\n`);
    const js = await cairn(["run", "js.flow.mjs", "--root", join(dir, ".cairn-g")]);
    expect(js.stderr).toBe("");
    expect(js.stdout).toContain(`Outputs: {"v":1}`);
    await writeFile(join(dir, "lib", "helper.mjs"), `import { task } from "@cairn/dsl";\nexport const two = task("two").run(() => ({ v: 2 }));\n`);
    await writeFile(join(dir, "mixed.flow.ts"), `import { flow } from "cairn-dag";\nimport { two } from "./lib/helper.mjs";\nexport default flow("mixed").build(() => ({ v: two().v }));\n`);
    const mixed = await cairn(["run", "mixed.flow.ts", "--root", join(dir, ".cairn-g")]);
    expect(mixed.stderr).toBe("");
    expect(mixed.stdout).toContain(`Outputs: {"v":2}`);
  });

  it("imports a package anew once it resolves elsewhere or its package.json changed (an npm install of another version)", async () => {
    const sub = await mkdtemp(join(dir, "pkg-"));
    const pkg = join(sub, "node_modules", "mylib");
    const version = async (folder: string, v: number, file = `v${v}.js`) => {
      await mkdir(folder, { recursive: true });
      await writeFile(join(folder, "package.json"), JSON.stringify({ name: "mylib", version: `${v}.0.0`, type: "module", exports: `./${file}` }));
      await writeFile(join(folder, file), `export const factor = ${v};\n`);
    };
    await version(pkg, 1);
    await writeFile(
      join(sub, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nimport { factor } from "mylib";\nconst t = task("t").input<{ f: number }>().run(({ f }) => ({ y: 10 * f }));\nexport default flow("pkg").build(() => ({ y: t({ f: factor }).y }));\n`,
    );
    const run = () => start(process.execPath, [cairnBin, "run", "flow.ts"], { cwd: sub, env: env() }).done;
    expect((await run()).stdout).toContain(`Outputs: {"y":10}`);
    // npm installs 2.0.0 over it: the old version's file is still there, and the compiled import named it.
    await version(pkg, 2);
    const upgraded = await run();
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toContain(`Outputs: {"y":20}`);
    // pnpm links node_modules/mylib to another version's folder: the same package.json text, elsewhere.
    const { rename, symlink } = await import("node:fs/promises");
    const store = join(sub, "store");
    await mkdir(store);
    await rename(pkg, join(store, "mylib@2"));
    await version(join(store, "mylib@3"), 2);
    await writeFile(join(store, "mylib@3", "v2.js"), `export const factor = 3;\n`);
    await symlink(join(store, "mylib@3"), pkg);
    expect((await run()).stdout).toContain(`Outputs: {"y":30}`);
  });

  it("imports a linked workspace package anew once its package.json points elsewhere (npm link, a pnpm workspace)", async () => {
    const { symlink } = await import("node:fs/promises");
    const ws = await mkdtemp(join(dir, "ws-"));
    const pkg = join(ws, "mypkg");
    await mkdir(pkg);
    await writeFile(join(pkg, "package.json"), JSON.stringify({ name: "mypkg", type: "module", exports: { ".": "./a.ts" } }));
    await writeFile(join(pkg, "a.ts"), `export const which: string = "A";\n`);
    await writeFile(join(pkg, "b.ts"), `export const which: string = "B";\n`);
    const app = join(ws, "app");
    await mkdir(join(app, "node_modules"), { recursive: true });
    await symlink(pkg, join(app, "node_modules", "mypkg"));
    await writeFile(join(app, "flow.ts"), `import { flow, task } from "cairn-dag";\nimport { which } from "mypkg";\nconst t = task("t").input<{ w: string }>().run(({ w }) => ({ w }));\nexport default flow("linked").build(() => ({ w: t({ w: which }).w }));\n`);
    const run = () => start(process.execPath, [cairnBin, "run", "flow.ts"], { cwd: app, env: env() }).done;
    expect((await run()).stdout).toContain(`Outputs: {"w":"A"}`);
    await writeFile(join(pkg, "package.json"), JSON.stringify({ name: "mypkg", type: "module", exports: { ".": "./b.ts" } }));
    // Before, only packages inside node_modules were followed: the linked one kept its old entry.
    expect((await run()).stdout).toContain(`Outputs: {"w":"B"}`);
  });

  it("a workspace package exporting src/ under --conditions=development and dist/ else: cairn run (conditions in NODE_OPTIONS or on node's command line) and tsx --conditions=development run src/ and key the task by it; without, dist/", async () => {
    const { rename, symlink } = await import("node:fs/promises");
    const ws = await mkdtemp(join(dir, "conds-"));
    const lib = join(ws, "packages", "lib");
    await mkdir(join(lib, "src"), { recursive: true });
    await mkdir(join(lib, "dist"));
    await writeFile(join(lib, "package.json"), JSON.stringify({ name: "lib", type: "module", exports: { ".": { development: "./src/index.ts", default: "./dist/index.js" } } }));
    const src = (which: string) => writeFile(join(lib, "src", "index.ts"), `export const which: string = ${JSON.stringify(which)};\n`);
    const dist = (which: string) => writeFile(join(lib, "dist", "index.js"), `export const which = ${JSON.stringify(which)};\n`);
    await src("src");
    await dist("dist");
    const app = join(ws, "app");
    await mkdir(join(app, "node_modules"), { recursive: true });
    await symlink("../../packages/lib", join(app, "node_modules", "lib"));
    await writeFile(join(app, "package.json"), `{ "name": "app", "type": "module" }\n`);
    await writeFile(join(app, "flow.ts"), `import { flow, task } from "cairn-dag";\nimport { which } from "lib";\nconst t = task("t").run(() => ({ w: which }));\nexport default flow("conds").build(() => ({ w: t({}).w }));\n`);
    const root = ["--root", join(app, ".cairn")];
    const ran = async (done: Promise<{ code: number | null; stdout: string; stderr: string }>, status: string, w: string) => {
      const r = await done;
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^t\\s+${status}\\s`, "m"));
      expect(r.stdout).toContain(`Outputs: {"w":"${w}"}`);
    };
    const plain = () => start(process.execPath, [cairnBin, "run", "flow.ts", ...root], { cwd: app, env: env() }).done;
    const developing = () => start(process.execPath, [cairnBin, "run", "flow.ts", ...root], { cwd: app, env: env({ NODE_OPTIONS: "--conditions=development" }) }).done;
    const onCommandLine = () => start(process.execPath, ["-C", "development", cairnBin, "run", "flow.ts", ...root], { cwd: app, env: env() }).done;
    const viaTsx = () => start(tsx, ["--conditions=development", "flow.ts", ...root], { cwd: app, env: env() }).done;

    await ran(plain(), "succeeded", "dist");
    // Another file runs: another key, not the entry dist/ made.
    await ran(developing(), "succeeded", "src");
    await ran(viaTsx(), "cached", "src");
    await src("src, edited");
    await ran(onCommandLine(), "succeeded", "src, edited");
    await dist("dist, edited");
    await ran(viaTsx(), "cached", "src, edited");
    await ran(developing(), "cached", "src, edited");
    await ran(plain(), "succeeded", "dist, edited");
    // Not built at all: compiled from src/ all the same, as Node would load it.
    await rename(join(lib, "dist"), join(lib, "dist-gone"));
    await ran(developing(), "cached", "src, edited");
  });

  it("a script task's .ts file under `node -C development cairn run` runs with the run's conditions, so an edit of dist/ it never loads is a hit and an edit of src/ a miss", async () => {
    const { symlink } = await import("node:fs/promises");
    const ws = await mkdtemp(join(dir, "conds-script-"));
    const lib = join(ws, "packages", "ws");
    await mkdir(join(lib, "src"), { recursive: true });
    await mkdir(join(lib, "dist"));
    await writeFile(join(lib, "package.json"), JSON.stringify({ name: "ws", type: "module", exports: { ".": { development: "./src/index.js", default: "./dist/index.js" } } }));
    const src = (which: string) => writeFile(join(lib, "src", "index.js"), `export const which = ${JSON.stringify(which)};\n`);
    const dist = (which: string) => writeFile(join(lib, "dist", "index.js"), `export const which = ${JSON.stringify(which)};\n`);
    await src("src");
    await dist("dist");
    const app = join(ws, "app");
    await mkdir(join(app, "node_modules"), { recursive: true });
    await symlink("../../packages/ws", join(app, "node_modules", "ws"));
    await writeFile(join(app, "package.json"), `{ "name": "app", "type": "module" }\n`);
    await writeFile(join(app, "step.ts"), `import { writeFileSync } from "node:fs";\nimport { which } from "ws";\nwriteFileSync(process.env.CAIRN_OUTPUTS!, JSON.stringify({ w: which }));\n`);
    await writeFile(join(app, "flow.ts"), `import { flow, script } from "cairn-dag";\nconst s = script("s", { file: "step.ts" });\nexport default flow("conds-script").build(() => ({ w: s({}).w }));\n`);
    const run = async (status: string, w: string) => {
      const r = await start(process.execPath, ["-C", "development", cairnBin, "run", "flow.ts", "--root", join(app, ".cairn")], { cwd: app, env: env() }).done;
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^s\\s+${status}\\s`, "m"));
      expect(r.stdout).toContain(`Outputs: {"w":"${w}"}`);
    };
    // Before, the child started without -C development and loaded dist/, keyed by src/.
    await run("succeeded", "src");
    await dist("dist, edited");
    await run("cached", "src");
    await src("src, edited");
    await run("succeeded", "src, edited");
  });

  it("a compiled flows' folder of the user's own that its group could write to (made under umask 002) is made private, emptied and used", async () => {
    const { chmod, readdir, stat } = await import("node:fs/promises");
    const tmp = await mkdtemp(join(tmpdir(), "cairn-umask-tmp-"));
    const base = join(tmp, `cairn-${process.getuid!()}`);
    await mkdir(join(base, "flows"), { recursive: true });
    await chmod(base, 0o775);
    await writeFile(join(base, "planted.mjs"), "throw new Error('planted');\n");
    const run = () => cairn(["run", "flow.ts", "--root", join(dir, ".cairn-h")], { TMPDIR: tmp });
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect((await stat(base)).mode & 0o777).toBe(0o700);
    expect(await readdir(base)).not.toContain("planted.mjs");
    // Used, not passed over for a folder of the process's own at every start.
    expect((await readdir(join(base, "flows"))).length).toBe(1);
    expect((await readdir(tmp)).filter((n) => n.startsWith("cairn-flow-"))).toEqual([]);
    expect((await run()).code).toBe(0);
    await rm(tmp, { recursive: true, force: true });
  });

  it("never imports what another user put in the compiled flows' folder", async () => {
    const { chown, chmod, readdir, stat } = await import("node:fs/promises");
    const tmp = await mkdtemp(join(tmpdir(), "cairn-foreign-tmp-"));
    const base = join(tmp, `cairn-${process.getuid!()}`);
    await mkdir(base);
    try {
      await chown(base, 65534, 65534); // nobody's, and anyone's to write in
    } catch {
      console.info("[skip] chown needs root: the foreign folder cannot be made");
      return;
    }
    await chmod(base, 0o777);
    const run = () => cairn(["run", "flow.ts", "--root", join(dir, ".cairn-g")], { TMPDIR: tmp });
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    // Whatever the run made in the foreign folder, its manifests are now planted with code of the other user's.
    const flows = join(base, "flows");
    const planted = join(tmp, "ran");
    for (const id of await readdir(flows).catch(() => [] as string[])) {
      const folder = join(flows, id);
      await writeFile(join(folder, "planted.mjs"), `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(planted)}, "planted code ran");\nexport default undefined;\n`);
      for (const name of (await readdir(folder)).filter((n) => n.endsWith(".json"))) {
        await writeFile(join(folder, name), JSON.stringify({ sources: {}, packages: [], entry: join(folder, "planted.mjs") }));
      }
    }
    const second = await run();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`"n":6`);
    await expect(stat(planted)).rejects.toThrow(/ENOENT/);
    // What it compiled instead went to a folder of its own, gone with it.
    expect((await readdir(tmp)).filter((n) => n.startsWith("cairn-flow-"))).toEqual([]);
    await rm(tmp, { recursive: true, force: true });
  });

  it("in a CommonJS package: a flow runs through tsx, as `tsx flow.ts` runs it: __dirname, __filename, require and module.exports are the module's own", async () => {
    const cjs = join(dir, "cjs");
    await mkdir(join(cjs, "lib"), { recursive: true });
    await writeFile(join(cjs, "package.json"), `{ "name": "cjs-project", "type": "commonjs" }\n`);
    await writeFile(join(cjs, "helper.js"), "exports.factor = 3;\n");
    await writeFile(
      join(cjs, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nimport { factor } from "./helper.js";\n` +
        `const t = task("t").input<{ x: number }>().run(async ({ x }) => ({ y: x * factor }));\nexport default flow("jsdep").build(() => ({ y: t({ x: 10 }).y }));\n`,
    );
    const run = (file: string, extra?: NodeJS.ProcessEnv) => start(process.execPath, [cairnBin, "run", file, "--root", join(dir, ".cairn-h")], { cwd: cjs, env: env(extra) }).done;
    const imported = await run("flow.ts");
    expect(imported.stderr).toBe("");
    expect(imported.stdout).toContain(`Outputs: {"y":30}`);

    // A module of the project in a subfolder: its own folder and file, and a require beside it.
    await writeFile(join(cjs, "lib", "settings.json"), `{ "factor": 4 }\n`);
    await writeFile(
      join(cjs, "lib", "paths.ts"),
      `export const here = __dirname;\nexport const file = __filename;\nexport const factor = (require("./settings.json") as { factor: number }).factor;\n`,
    );
    await writeFile(
      join(cjs, "dir.flow.ts"),
      `import { flow, task } from "cairn-dag";\nimport { here, file, factor } from "./lib/paths";\nconst top = __dirname;\n` +
        `const t = task("t").run(async () => ({ where: { top, inTask: __dirname, file: __filename, here, helper: file, factor } }));\n` +
        `const d = task("d").run(async () => ({ dir: __dirname }));\n` +
        `export default flow("dir").build(() => ({ where: t().where, dir: d().dir }));\n`,
    );
    const where = `${JSON.stringify({ top: cjs, inTask: cjs, file: join(cjs, "dir.flow.ts"), here: join(cjs, "lib"), helper: join(cjs, "lib", "paths.ts"), factor: 4 })},"dir":${JSON.stringify(cjs)}`;
    const compiled = await run("dir.flow.ts");
    expect(compiled.stderr).toBe("");
    expect(compiled.stdout).toContain(`Outputs: {"where":${where}}`);
    const viaTsx = await run("dir.flow.ts", { CAIRN_LOADER: "tsx" });
    expect(viaTsx.stderr).toBe("");
    expect(viaTsx.stdout).toContain(`Outputs: {"where":${where}}`);
    // A task's text names __dirname under both: tsx's run hit what cairn's stored.
    expect(viaTsx.stdout).toMatch(/\bd +cached/);

    // Which format tsx gives the module is its package.json's to say: made an ES module, the flow is compiled again, without them.
    await writeFile(join(cjs, "package.json"), `{ "name": "cjs-project", "type": "module" }\n`);
    const esm = await run("dir.flow.ts");
    expect(esm.code).toBe(2);
    expect(esm.stderr).toContain("ReferenceError: __dirname is not defined in ES module scope");
    await writeFile(join(cjs, "package.json"), `{ "name": "cjs-project", "type": "commonjs" }\n`);

    await writeFile(join(cjs, "exports.flow.ts"), `import { flow, task } from "cairn-dag";\nmodule.exports.extra = 1;\nexport default flow("exp").build(() => ({}));\n`);
    const exportsFlow = await run("exports.flow.ts");
    expect(exportsFlow.stderr).toBe("");
    expect(exportsFlow.code).toBe(0);
  });

  it("in a CommonJS package: tsx flow.ts and cairn run flow.ts hit each other's entries for tasks whose functions use imported names (tsx writes them import_<module>.<name>)", async () => {
    const project = join(dir, "cjs-fingerprints");
    await mkdir(join(project, "lib"), { recursive: true });
    const typed = (type: string) => writeFile(join(project, "package.json"), `{ "name": "cjs-fingerprints", "type": "${type}" }\n`);
    await writeFile(join(project, "lib", "shape.ts"), `export const scale = (n: number): number => n * 3;\nexport default function shift(n: number): number { return n + 1; }\n`);
    await writeFile(
      join(project, "flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `import { readFileSync } from "node:fs";`,
        `import shift, { scale as times } from "./lib/shape.ts";`,
        `const t = task("t").input<{ x: number }>().run(async ({ x }) => ({ y: times(shift(x)) }));`,
        `const u = task("u").input<{ x: number }>().run(async ({ x }) => ({ y: x + Number(typeof readFileSync === "function") }));`,
        `export default flow("cjsfp").build(() => ({ y: t({ x: 1 }).y, z: u({ x: 1 }).y }));`,
      ].join("\n"),
    );
    const viaTsx = (root: string) => start(tsx, ["flow.ts", "--root", join(project, root)], { cwd: project, env: env() }).done;
    const viaCairn = (root: string) => start(process.execPath, [cairnBin, "run", "flow.ts", "--root", join(project, root)], { cwd: project, env: env() }).done;
    const tasks = (stdout: string) => [...stdout.matchAll(/^(t|u)\s+(succeeded|cached)\s/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
    const expectRan = async (ran: Promise<{ code: number | null; stdout: string; stderr: string }>, status: "succeeded" | "cached") => {
      const r = await ran;
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain(`Outputs: {"y":6,"z":2}`);
      expect(tasks(r.stdout)).toEqual([`t ${status}`, `u ${status}`]);
    };

    await typed("commonjs");
    await expectRan(viaTsx(".tsx-first"), "succeeded");
    await expectRan(viaCairn(".tsx-first"), "cached");
    await expectRan(viaCairn(".cairn-first"), "succeeded");
    await expectRan(viaTsx(".cairn-first"), "cached");

    // Compiled as an ES module first: a package.json that then says "commonjs" is seen (the compiled module is not reused).
    await typed("module");
    await expectRan(viaCairn(".esm"), "succeeded");
    await typed("commonjs");
    await expectRan(viaTsx(".flipped"), "succeeded");
    await expectRan(viaCairn(".flipped"), "cached");
  });

  it("CAIRN_LOADER=tsx runs everything through tsx", async () => {
    const r = await cairn(["run", "flow.ts", "--root", join(dir, ".cairn-f")], { CAIRN_LOADER: "tsx" });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`"n":6`);
  });
});

describe("a flow compiled twice in one process (an app driving the compiled CLI), edited between", () => {
  /** Runs the flow twice through Cairn's bundle and importCompiledFlow, as bin/cairn.mjs does, with `edit` in between. */
  async function twice(name: string, edit: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
    const sub = join(dir, name);
    await mkdir(sub);
    await writeFile(join(sub, "lib.ts"), "export const w = 10;\n");
    const flowText = (v: number) =>
      `import { flow, task } from "cairn-dag";\nimport { w } from "./lib.ts";\nconst t = task("t").run(async () => ({ v: ${v}, w }));\nexport default flow("edit").build(() => ({ v: t({}).v, w: t({}).w }));\n`;
    await writeFile(join(sub, "flow.ts"), flowText(1));
    const code = `
      import { writeFileSync } from "node:fs";
      import { ensureBundle } from ${JSON.stringify(pathToFileURL(join(repo, "packages/cli/bin/bundle.mjs")).href)};
      const bundle = await ensureBundle();
      const { main, importCompiledFlow } = await import(bundle.files.cli);
      const io = { importFlow: (path) => importCompiledFlow(path, bundle) };
      const args = ["run", "flow.ts", "--root", ".cairn", "--no-tracking"];
      console.log("[app] first " + await main(args, io));
      ${edit.replace("FLOW2", JSON.stringify(flowText(2)))}
      console.log("[app] second " + await main(args, io));
    `;
    return start(process.execPath, ["--input-type=module", "-e", code], { cwd: sub, env: childEnv() }).done;
  }

  it("runs the edited flow file's code: the compiled entry is imported anew", async () => {
    const exit = await twice("edit-entry", `writeFileSync("flow.ts", FLOW2);`);
    expect(exit.stdout, exit.stderr).toContain(`Outputs: {"v":1,"w":10}`);
    expect(exit.stdout).toContain(`Outputs: {"v":2,"w":10}`);
    expect(exit.stdout).toContain("[app] second 0");
  });

  it("refuses when a module the flow imports was edited, naming it and saying to start a new process", async () => {
    const exit = await twice("edit-lib", `writeFileSync("lib.ts", "export const w = 20;\\n");`);
    expect(exit.stdout, exit.stderr).toContain("[app] first 0");
    expect(exit.stdout.split("Outputs:")).toHaveLength(2);
    expect(exit.stderr).toMatch(/FlowFileError: Expected the code this process loaded for flow\.ts to be as it is on disk, but lib\.ts changed since this process loaded it; .* Start a new process to run the edited code\./);
    expect(exit.stdout).toContain("[app] second 2");
  });
});
