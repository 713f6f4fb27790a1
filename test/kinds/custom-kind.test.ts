/**
 * A task kind written in the user's project with `cairn-dag/kind` (README "Writing a task
 * kind"): its own code enters its tasks' keys as a function task's does (editing the kind, or a
 * module it imports, re-runs its tasks; explain names the file), while Cairn's own kinds keep
 * their keys; and `resolveTaskFile()` in it resolves against the folder of the flow that declares
 * the task, not the kind's. Real `cairn run` processes.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, repo, start } from "../cache/helpers.ts";

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
    expect((await cairn("explain", "flows/helpers.flow.ts", "u")).stdout).toContain("helper `run` of kind upper changed");
    expect(await runIt()).toEqual({ statuses: { u: "succeeded", t: "cached" }, outputs: `{"w":"hi","y":10}` });

    // A constant of the kind's module, the kind being built by a helper in another module.
    await edit("kinds/times.ts", "factor = 2", "factor = 3");
    expect((await cairn("explain", "flows/helpers.flow.ts", "t")).stdout).toContain("helper `factor` of times.ts changed");
    expect(await runIt()).toEqual({ statuses: { u: "cached", t: "succeeded" }, outputs: `{"w":"hi","y":15}` });

    // Nothing changed: the keys are stable from one process to the next.
    expect(await runIt()).toEqual({ statuses: { u: "cached", t: "cached" }, outputs: `{"w":"hi","y":15}` });
  });

  it("resolveTaskFile() in it resolves against the folder of the flow that declares the task, and says where it looked", async () => {
    await writeFile(join(dir, "kinds", "q.txt"), "the kind's folder (wrong)\n");
    await writeFile(join(dir, "flows", "sub", "q.txt"), "the flow's folder\n");
    let r = await cairn("run", "flows/sub/read.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`"text":"the flow's folder"`);

    await rm(join(dir, "flows", "sub", "q.txt"));
    r = await cairn("run", "flows/sub/read.flow.ts");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`TaskFileError: Task "q": the file "./q.txt" does not exist (looked at "${join(dir, "flows", "sub", "q.txt")}", "${join(dir, "q.txt")}")`);
  });
});
