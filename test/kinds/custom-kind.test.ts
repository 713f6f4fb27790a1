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
