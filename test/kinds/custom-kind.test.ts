/**
 * A task kind written in the user's project with `cairn-dag/kind` (README "Writing a task
 * kind"): its own code enters its tasks' keys as a function task's does (editing the kind, a
 * helper it is built through, or a module it imports, re-runs its tasks; explain names the
 * file), while Cairn's own kinds keep their keys; and `resolveTaskFile()` in it looks for a
 * relative file next to the module that declares the task, then next to the kind, then in the
 * working directory, refusing a name found next to both with different contents. Real `cairn
 * run` processes.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, repo, start, tsxScript } from "../cache/helpers.ts";

let dir: string;

beforeAll(async () => {
  // Inside the workspace, so that `cairn-dag` resolves as it does for the examples.
  dir = await mkdtemp(join(repo, "test", ".custom-kind-"));
  await mkdir(join(dir, "kinds", "lib"), { recursive: true });
  await mkdir(join(dir, "flows", "sub"), { recursive: true });
  await writeFile(join(dir, "kinds", "lib", "fmt.ts"), `export const fmt = (s: string): string => s.toUpperCase();\n`);
  await writeFile(
    join(dir, "kinds", "shout.ts"),
    [
      `import { checkName, configDigest, kindTask, NO_RETRY, type KindTask } from "cairn-dag/kind";`,
      `import { fmt } from "./lib/fmt.ts";`,
      ``,
      `export function shout(name: string, options: { word: string }): KindTask<Record<string, never>, { text: string }> {`,
      `  checkName(name);`,
      `  return kindTask({`,
      `    definition: {`,
      `      name,`,
      `      kind: "shout",`,
      `      code: configDigest({ word: options.word }),`,
      `      retry: NO_RETRY,`,
      `      cache: {},`,
      `      env: [],`,
      `      run: () => ({ text: fmt(options.word) + "!" }),`,
      `    },`,
      `  });`,
      `}`,
    ].join("\n"),
  );
  await writeFile(
    join(dir, "kinds", "read-file.ts"),
    [
      `import { readFileSync } from "node:fs";`,
      `import { checkName, kindTask, NO_RETRY, resolveTaskFile, type KindTask } from "cairn-dag/kind";`,
      ``,
      `export function readFile(name: string, options: { file: string }): KindTask<Record<string, never>, { text: string }> {`,
      `  checkName(name);`,
      `  const path = resolveTaskFile(name, options.file);`,
      `  return kindTask({`,
      `    definition: { name, kind: "read-file", code: path, retry: NO_RETRY, cache: false, env: [], run: () => ({ text: readFileSync(path, "utf8").trim() }) },`,
      `  });`,
      `}`,
    ].join("\n"),
  );
  await writeFile(
    join(dir, "flows", "flow.ts"),
    [
      `import { flow, shell } from "cairn-dag";`,
      `import { shout } from "../kinds/shout.ts";`,
      ``,
      `const LABEL = "one";`,
      `const hello = shout("hello", { word: "hi" });`,
      `const echo = shell("echo", "echo built-in");`,
      ``,
      `export default flow("custom").build(() => ({ text: hello().text, out: echo().stdout, label: LABEL }));`,
    ].join("\n"),
  );
  await writeFile(
    join(dir, "flows", "sub", "read.flow.ts"),
    `import { flow } from "cairn-dag";\nimport { readFile } from "../../kinds/read-file.ts";\nconst q = readFile("q", { file: "./q.txt" });\nexport default flow("read").build(() => ({ text: q().text }));\n`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const root = () => join(dir, ".cairn");
const cairn = (...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", root()], { cwd: dir, env: childEnv({ CAIRN_NO_AUTORUN: "0" }) }).done;
/** Task -> succeeded | cached, from a run's summary table. */
const statuses = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(hello|echo)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));
/** Every task -> succeeded | cached, from a run's summary table. */
const taskStatuses = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(?!Flow\s)(\S+)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));

async function edit(file: string, from: string, to: string): Promise<void> {
  const path = join(dir, file);
  const text = await readFile(path, "utf8");
  expect(text).toContain(from);
  await writeFile(path, text.replace(from, to));
}

describe("a kind written in the project", () => {
  it("re-runs its tasks when the kind's code or a module it imports changes, and explain names it; Cairn's own kinds keep their keys", async () => {
    let r = await cairn("run", "flows/flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(statuses(r.stdout)).toEqual({ hello: "succeeded", echo: "succeeded" });
    expect(r.stdout).toContain(`"text":"HI!"`);

    // The kind's run function: its config (the `code`) is the same.
    await edit("kinds/shout.ts", `fmt(options.word) + "!"`, `fmt(options.word) + "?"`);
    expect((await cairn("explain", "flows/flow.ts", "hello")).stdout).toContain("helper `shout` of shout.ts changed");
    r = await cairn("run", "flows/flow.ts");
    expect(statuses(r.stdout)).toEqual({ hello: "succeeded", echo: "cached" });
    expect(r.stdout).toContain(`"text":"HI?"`);

    // A module the kind imports.
    await edit("kinds/lib/fmt.ts", "s.toUpperCase()", "s.toLowerCase()");
    expect((await cairn("explain", "flows/flow.ts", "hello")).stdout).toContain("code file `lib/fmt.ts` changed");
    r = await cairn("run", "flows/flow.ts");
    expect(statuses(r.stdout)).toEqual({ hello: "succeeded", echo: "cached" });
    expect(r.stdout).toContain(`"text":"hi?"`);

    // The flow's module is not the kind's code, for either kind.
    await edit("flows/flow.ts", `LABEL = "one"`, `LABEL = "two"`);
    r = await cairn("run", "flows/flow.ts");
    expect(statuses(r.stdout)).toEqual({ hello: "cached", echo: "cached" });
  });

  it("re-runs a kind built through a helper, in the kind's module or in another, when the kind's code changes", async () => {
    await writeFile(
      join(dir, "kinds", "upper.ts"),
      [
        `import { checkName, configDigest, kindTask, NO_RETRY, type KindTask, type TaskDefinition } from "cairn-dag/kind";`,
        ``,
        `function make<Out>(name: string, code: string, run: TaskDefinition["run"]): KindTask<Record<string, unknown>, Out> {`,
        `  checkName(name);`,
        `  return kindTask({ definition: { name, kind: "upper", retry: NO_RETRY, cache: {}, env: [], code, run } });`,
        `}`,
        `export function upper(name: string, word: string): KindTask<Record<string, unknown>, { w: string }> {`,
        `  return make(name, configDigest({ word }), async () => ({ w: word.toUpperCase() }));`,
        `}`,
      ].join("\n"),
    );
    await writeFile(
      join(dir, "kinds", "base.ts"),
      [
        `import { kindTask, NO_RETRY, type KindTask, type TaskDefinition } from "cairn-dag/kind";`,
        `export function makeKind<Out>(name: string, kind: string, run: TaskDefinition["run"]): KindTask<Record<string, unknown>, Out> {`,
        `  return kindTask({ definition: { name, kind, code: "v1", retry: NO_RETRY, cache: {}, env: [], run } });`,
        `}`,
      ].join("\n"),
    );
    await writeFile(
      join(dir, "kinds", "times.ts"),
      [
        `import { makeKind } from "./base.ts";`,
        `const factor = 2;`,
        `export const times = (name: string, x: number) => makeKind<{ y: number }>(name, "times", async () => ({ y: x * factor }));`,
      ].join("\n"),
    );
    await writeFile(
      join(dir, "flows", "helpers.flow.ts"),
      [
        `import { flow } from "cairn-dag";`,
        `import { times } from "../kinds/times.ts";`,
        `import { upper } from "../kinds/upper.ts";`,
        `const u = upper("u", "hi");`,
        // Declared inside build(): the kind's frames end at the flow's build function.
        `export default flow("helpers").build(() => ({ w: u({}).w, y: times("t", 5)({}).y }));`,
      ].join("\n"),
    );
    const runIt = async () => {
      const r = await cairn("run", "flows/helpers.flow.ts");
      expect(r.code, r.stderr).toBe(0);
      return { statuses: taskStatuses(r.stdout), outputs: r.stdout.match(/^Outputs: (.*)$/m)?.[1] };
    };
    expect(await runIt()).toEqual({ statuses: { u: "succeeded", t: "succeeded" }, outputs: `{"w":"HI","y":10}` });

    // The run function's body, in a kind built through a helper of its own module.
    await edit("kinds/upper.ts", "word.toUpperCase()", "word.toLowerCase()");
    expect((await cairn("explain", "flows/helpers.flow.ts", "u")).stdout).toContain("the run function of kind `upper` changed");
    expect(await runIt()).toEqual({ statuses: { u: "succeeded", t: "cached" }, outputs: `{"w":"hi","y":10}` });

    // A constant of the kind's module, the kind being built by a helper in another module.
    await edit("kinds/times.ts", "factor = 2", "factor = 3");
    expect((await cairn("explain", "flows/helpers.flow.ts", "t")).stdout).toContain("helper `factor` of times.ts changed");
    expect(await runIt()).toEqual({ statuses: { u: "cached", t: "succeeded" }, outputs: `{"w":"hi","y":15}` });

    // Nothing changed: the keys are stable from one process to the next.
    expect(await runIt()).toEqual({ statuses: { u: "cached", t: "cached" }, outputs: `{"w":"hi","y":15}` });
  });

  it("explain calls the declaration of a task made by kindTask() where it is declared that (not a helper), its run function's edit one change, and its `code` its own", async () => {
    await writeFile(
      join(dir, "flows", "direct.flow.ts"),
      [
        `import { flow } from "cairn-dag";`,
        `import { kindTask, NO_RETRY, type KindTask } from "cairn-dag/kind";`,
        `const direct: KindTask<Record<string, never>, { n: number }> = kindTask({ definition: { name: "direct", kind: "direct", code: "v1", retry: NO_RETRY, cache: {}, env: [], run: () => ({ n: 1 }) } });`,
        `export default flow("direct").build(() => {`,
        `  const inner: KindTask<Record<string, never>, { m: number }> = kindTask({ definition: { name: "inner", kind: "inner", code: "v1", retry: NO_RETRY, cache: {}, env: [], run: () => ({ m: 1 }) } });`,
        `  return { n: direct().n, m: inner().m, k: 0 };`,
        `});`,
      ].join("\n"),
    );
    const since = async (node: string) => {
      const out = (await cairn("explain", "flows/direct.flow.ts", node)).stdout;
      return out.slice(out.indexOf("Since then:") + "Since then:".length).trim().split("\n").map((l) => l.trim());
    };
    const run = async () => expect((await cairn("run", "flows/direct.flow.ts")).code).toBe(0);
    await run();
    // Before: "helper `direct` of direct.flow.ts changed" and "helper `run` of kind direct changed".
    await edit("flows/direct.flow.ts", "({ n: 1 })", "({ n: 2 })");
    expect(await since("direct")).toEqual(["- the function of task `direct` changed (in its declaration in direct.flow.ts)"]);
    await run();
    await edit("flows/direct.flow.ts", `retry: NO_RETRY, cache: {}, env: [], run: () => ({ n: 2 })`, `retry: { ...NO_RETRY }, cache: {}, env: [], run: () => ({ n: 2 })`);
    expect(await since("direct")).toEqual(["- the declaration of task `direct` in direct.flow.ts changed (its settings or builder chain, not its function)"]);
    await run();
    // Before: "code changed" and "helper `direct` of direct.flow.ts changed".
    await edit("flows/direct.flow.ts", `kind: "direct", code: "v1"`, `kind: "direct", code: "v2"`);
    expect(await since("direct")).toEqual(["- the `code` of task `direct` (kind `direct`) changed: what its definition's `code` holds (its options, config or version)"]);
    await run();
    // Declared in the build function. Before: "helper `default` of direct.flow.ts changed".
    await edit("flows/direct.flow.ts", "k: 0", "k: 1");
    expect(await since("inner")).toEqual(["- the flow's build function in direct.flow.ts changed (task `inner` is declared in it)"]);
  });

  it("puts what its run function reads from process.env by name in its tasks' keys, as a function task's, so another value is a miss", async () => {
    await writeFile(
      join(dir, "kinds", "env-mode.ts"),
      [
        `import { checkName, configDigest, kindTask, NO_RETRY, type KindTask } from "cairn-dag/kind";`,
        `export function envMode(name: string, options: { db: string }): KindTask<Record<string, never>, { v: string }> {`,
        `  checkName(name);`,
        `  return kindTask({`,
        `    definition: {`,
        `      name, kind: "env-mode", retry: NO_RETRY, cache: {}, env: [],`,
        `      code: configDigest({ db: options.db }),`,
        `      run: async () => ({ v: process.env.KIND_MODE ?? "none" }),`,
        `    },`,
        `  });`,
        `}`,
      ].join("\n"),
    );
    await writeFile(
      join(dir, "flows", "env.flow.ts"),
      `import { flow } from "cairn-dag";\nimport { envMode } from "../kinds/env-mode.ts";\nconst m = envMode("m", { db: "x" });\nexport default flow("env-kind").build(() => ({ v: m().v }));\n`,
    );
    const withMode = (mode: string | undefined, ...args: string[]) => {
      const env = childEnv({ CAIRN_NO_AUTORUN: "0" });
      if (mode === undefined) delete env.KIND_MODE;
      else env.KIND_MODE = mode;
      return start(process.execPath, [cairnBin, ...args, "--root", root()], { cwd: dir, env }).done;
    };
    const runIt = async (mode: string | undefined) => {
      const r = await withMode(mode, "run", "flows/env.flow.ts");
      expect(r.code, r.stderr).toBe(0);
      return { statuses: taskStatuses(r.stdout), outputs: r.stdout.match(/^Outputs: (.*)$/m)?.[1] };
    };
    expect(await runIt(undefined)).toEqual({ statuses: { m: "succeeded" }, outputs: `{"v":"none"}` });
    // Before: still a hit, with the outputs of the run without it.
    expect((await withMode("fast", "explain", "flows/env.flow.ts", "m")).stdout).toContain("environment variable `KIND_MODE` was set");
    expect(await runIt("fast")).toEqual({ statuses: { m: "succeeded" }, outputs: `{"v":"fast"}` });
    expect(await runIt("fast")).toEqual({ statuses: { m: "cached" }, outputs: `{"v":"fast"}` });
    expect((await withMode("slow", "explain", "flows/env.flow.ts", "m")).stdout).toContain("environment variable `KIND_MODE` changed value");
    expect(await runIt("slow")).toEqual({ statuses: { m: "succeeded" }, outputs: `{"v":"slow"}` });
  });

  it("resolveTaskFile() in it resolves against the folder of the flow that declares the task, and says where it looked", async () => {
    await writeFile(join(dir, "flows", "sub", "q.txt"), "the flow's folder\n");
    let r = await cairn("run", "flows/sub/read.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`"text":"the flow's folder"`);

    await rm(join(dir, "flows", "sub", "q.txt"));
    r = await cairn("run", "flows/sub/read.flow.ts");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      `TaskFileError: Task "q": the file "./q.txt" does not exist (looked at "${join(dir, "flows", "sub", "q.txt")}", "${join(dir, "kinds", "q.txt")}", "${join(dir, "q.txt")}")`,
    );
  });

  it("resolveTaskFile() finds the flow's file when the flow declares the task in an async function after an await", async () => {
    await writeFile(join(dir, "flows", "sub", "q.txt"), "after an await\n");
    // A kind made by an async function that awaits first: the flow's frame is then an `at async` one.
    await writeFile(
      join(dir, "kinds", "read-later.ts"),
      `import { readFile } from "./read-file.ts";\nexport async function readFileLater(name: string, options: { file: string }) {\n  await new Promise((resolve) => setTimeout(resolve, 1));\n  return readFile(name, options);\n}\n`,
    );
    await writeFile(
      join(dir, "flows", "sub", "awaited.flow.ts"),
      [
        `import { flow } from "cairn-dag";`,
        `import { readFileLater } from "../../kinds/read-later.ts";`,
        `async function setup() {`,
        `  return await readFileLater("q", { file: "./q.txt" });`,
        `}`,
        `const q = await setup();`,
        `export default flow("awaited").build(() => ({ text: q().text }));`,
      ].join("\n"),
    );
    try {
      const r = await cairn("run", "flows/sub/awaited.flow.ts");
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`"text":"after an await"`);
    } finally {
      await rm(join(dir, "flows", "sub", "q.txt"));
    }
  });

  it("resolveTaskFile() in a kind defined in the flow file resolves next to the flow, under the workspace CLI and under a dynamic import()", async () => {
    await mkdir(join(dir, "scripts"), { recursive: true });
    await writeFile(
      join(dir, "flows", "self.flow.ts"),
      [
        `import { readFileSync } from "node:fs";`,
        `import { flow } from "cairn-dag";`,
        `import { checkName, kindTask, NO_RETRY, resolveTaskFile, type KindTask } from "cairn-dag/kind";`,
        ``,
        `function cat(name: string, file: string): KindTask<Record<string, never>, { text: string }> {`,
        `  checkName(name);`,
        `  const path = resolveTaskFile(name, file);`,
        `  return kindTask({ definition: { name, kind: "cat", code: path, retry: NO_RETRY, cache: false, env: [], run: () => ({ text: readFileSync(path, "utf8").trim() }) } });`,
        `}`,
        `const top = cat("top", "./a.txt");`,
        `export default flow("self").build(() => ({ top: top().text, inner: cat("inner", "./a.txt")().text }));`,
      ].join("\n"),
    );
    await writeFile(join(dir, "flows", "a.txt"), "next to the flow\n");
    await writeFile(join(dir, "a.txt"), "the working directory (wrong)\n");
    await writeFile(join(dir, "scripts", "a.txt"), "the runner's folder (wrong)\n");
    await writeFile(
      join(dir, "scripts", "run.ts"),
      [
        `const { default: f } = await import("../flows/self.flow.ts");`,
        `const run = await f.run({ root: process.argv[2], cache: false });`,
        `console.log("Outputs: " + JSON.stringify(await run.outputs()));`,
      ].join("\n"),
    );
    try {
      const r = await cairn("run", "flows/self.flow.ts");
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Outputs: {"top":"next to the flow","inner":"next to the flow"}`);

      const d = await tsxScript(join(dir, "scripts", "run.ts"), [join(dir, ".cairn-dyn")]).done;
      expect(d.code, d.stderr).toBe(0);
      expect(d.stdout).toContain(`Outputs: {"top":"next to the flow","inner":"next to the flow"}`);
    } finally {
      await rm(join(dir, "a.txt"));
    }
  });

  it("resolveTaskFile() finds a kind's own file next to the kind, refuses a name found next to both, and sees through a kind that wraps another", async () => {
    await mkdir(join(dir, "kinds", "wrap"), { recursive: true });
    await writeFile(
      join(dir, "kinds", "own-file.ts"),
      [
        `import { readFileSync } from "node:fs";`,
        `import { checkName, kindTask, NO_RETRY, resolveTaskFile, type KindTask } from "cairn-dag/kind";`,
        ``,
        `export function ownFile(name: string): KindTask<Record<string, never>, { text: string }> {`,
        `  checkName(name);`,
        `  const path = resolveTaskFile(name, "./own.txt");`,
        `  return kindTask({ definition: { name, kind: "own-file", code: path, retry: NO_RETRY, cache: false, env: [], run: () => ({ text: readFileSync(path, "utf8").trim() }) } });`,
        `}`,
      ].join("\n"),
    );
    await writeFile(join(dir, "kinds", "own.txt"), "the kind's own file\n");
    // A kind built on another (read-file.ts), in a folder of its own.
    await writeFile(
      join(dir, "kinds", "wrap", "fancy.ts"),
      `import { readFile } from "../read-file.ts";\nexport const fancyRead = (name: string, file: string) => readFile(name, { file });\n`,
    );
    await writeFile(join(dir, "kinds", "wrap", "w.txt"), "the wrapper's folder (wrong)\n");
    await writeFile(join(dir, "flows", "w.txt"), "next to the flow\n");
    await writeFile(
      join(dir, "flows", "files.flow.ts"),
      [
        `import { flow } from "cairn-dag";`,
        `import { ownFile } from "../kinds/own-file.ts";`,
        `import { fancyRead } from "../kinds/wrap/fancy.ts";`,
        `const own = ownFile("own");`,
        `const w = fancyRead("w", "./w.txt");`,
        `export default flow("files").build(() => ({ own: own().text, w: w().text }));`,
      ].join("\n"),
    );
    let r = await cairn("run", "flows/files.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Outputs: {"own":"the kind's own file","w":"next to the flow"}`);

    // The flow's folder holds another file of that name: which one is meant is unclear.
    await writeFile(join(dir, "flows", "own.txt"), "the flow's own.txt\n");
    r = await cairn("run", "flows/files.flow.ts");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`TaskFileError: Task "own": the file "./own.txt" is in more than one of the folders`);
    expect(r.stderr).toContain(`"${join(dir, "flows", "own.txt")}", "${join(dir, "kinds", "own.txt")}"`);
    expect(r.stderr).toContain(`new URL("./file", import.meta.url)`);

    // As the README says: a kind names its own files by URL.
    await edit("kinds/own-file.ts", `resolveTaskFile(name, "./own.txt")`, `resolveTaskFile(name, new URL("./own.txt", import.meta.url))`);
    r = await cairn("run", "flows/files.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Outputs: {"own":"the kind's own file","w":"next to the flow"}`);
  });
});
