/**
 * A task made by a function (a factory, `scaled(k)`) that uses the function's argument: the
 * argument's value is in no cache key, so `scaled(3)` after `scaled(2)` came from the cache with
 * the result for 2, and `cairn run`, `plan` and `explain` said nothing. Now each warns, once,
 * naming the task and the name; a task that uses only its inputs, its module's top-level names,
 * imports and globals, or says what its key holds, gets no warning.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairn, repo } from "./helpers.ts";

const made: string[] = [];
/** A folder inside the workspace, where a flow file resolves `cairn-dag` as the examples do. */
const tmp = async () => {
  const dir = await mkdtemp(join(repo, "test", ".x-closure-warning-"));
  made.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

const warnings = (stderr: string) => stderr.split("\n").filter((line) => line.includes("CairnClosureWarning"));

describe("a task that uses a name of the function it is declared in", () => {
  it("is warned about at run, plan and explain, once, naming the task and the name and how to fix it (the review's repro)", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\n` +
        `function scaled(k: number) {\n` +
        `  return task("scale").input<{ x: number }>().run(async ({ x }) => ({ y: x * k }));\n` +
        `}\n` +
        `export default flow("factory").build(() => {\n` +
        `  const s = scaled(Number(process.env.K));\n` +
        `  return { y: s({ x: 10 }).y };\n` +
        `});\n`,
    );
    const first = await cairn(["run", "flow.ts", "--no-report"], { cwd, env: { K: "2" } });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('{"y":20}');
    const said = warnings(first.stderr);
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('CairnClosureWarning: Task "scale" (declared at flow.ts:3) uses `k` of the function it is declared in');
    expect(said[0]).toContain("the value of `k` is in no cache key, so when it changes the task still comes from the cache, with the result of the old value");
    expect(said[0]).toContain("Pass it as an input, or put it in the key with `.version(JSON.stringify(k))` or `.cache({ key: JSON.stringify(k) })`, which also silences this warning.");
    // The stale hit the warning is about, now said at every command that reads the key.
    const second = await cairn(["run", "flow.ts", "--no-report"], { cwd, env: { K: "3" } });
    expect(second.stdout).toMatch(/^scale\s+cached/m);
    expect(warnings(second.stderr)).toHaveLength(1);
    const plan = await cairn(["plan", "flow.ts"], { cwd, env: { K: "3" } });
    expect(warnings(plan.stderr)).toHaveLength(1);
    const explain = await cairn(["explain", "flow.ts", "scale"], { cwd, env: { K: "3" } });
    expect(explain.stdout).toContain("would come from the cache");
    expect(warnings(explain.stderr)).toEqual([expect.stringContaining('Task "scale"')]);
  }, 120_000);

  it("is not warned about when it uses only its inputs, its module's top-level names, imports and globals, names whose values the declaring statement writes, or its key holds the name", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "lib.ts"), `const FACTOR = 4;\nfunction inLib(n: number) { return n * FACTOR; }\nexport async function work({ x }: { x: number }) { return { y: inLib(x) }; }\n`);
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\n` +
        `import { join } from "node:path";\n` +
        `import { work } from "./lib.ts";\n` +
        `const TOP = 3;\n` +
        `function topHelper(n: number) { return n + TOP; }\n` +
        `function plain() {\n` +
        `  const factor = 2; // written here: in the key through the factory's text\n` +
        `  return task("plain").input<{ x: number }>().run(async ({ x }, ctx) => {\n` +
        `    const { a, b: [c, ...rest] = [1, 2] } = { a: x, b: undefined as number[] | undefined };\n` +
        `    let sum = 0;\n` +
        `    for (const i of [a, c, ...rest]) sum += i;\n` +
        `    try { JSON.parse("{"); } catch (err) { sum += String(err).length > 0 ? 0 : 1; }\n` +
        `    function inner(q: number) { return q * 2; }\n` +
        `    class Box { v = 1; get() { return this.v; } }\n` +
        `    return { y: inner(sum) + topHelper(1) + Math.max(1, new Box().get()) + join("a").length + factor, id: ctx.nodeId };\n` +
        `  });\n` +
        `}\n` +
        `const MODELS = [{ lr: 1 }, { lr: 2 }];\n` +
        `function locals() {\n` +
        `  // All written in this statement, so in the key through its text: editing one re-runs the task.\n` +
        `  const double = (n: number) => n * 2;\n` +
        `  const cfg = { lr: 1 };\n` +
        `  const list = [1, 2];\n` +
        `  const lr = 3 as number;\n` +
        `  const label = \`v-\${lr}\`;\n` +
        `  const a = 1, b = 2;\n` +
        `  function local(n: number) { return n + a; }\n` +
        `  return task("locals").input<{ x: number }>().run(async ({ x }) => ({ y: double(x) + cfg.lr + list.length + lr + label.length + b + local(0) }));\n` +
        `}\n` +
        `const asInput = () => task("as-input").input<{ x: number; k: number }>().run(async ({ x, k }) => ({ y: x * k }));\n` +
        `const versioned = (k: number) => task("versioned").input<{ x: number }>().run(async ({ x }) => ({ y: x * k })).version(String(k));\n` +
        `const keyed = (k: number) => task("keyed").cache({ key: String(k) }).input<{ x: number }>().run(async ({ x }) => ({ y: x * k }));\n` +
        `const imported = () => task("imported").input<{ x: number }>().run(work);\n` +
        `export default flow("clean").build(() => {\n` +
        `  const named = ["a", "b"].map((item) => task(\`item-\${item}\`).run(async () => ({ v: item }))());\n` +
        `  const fits = MODELS.map((m, i) => task(\`fit-\${i}\`).run(async () => ({ lr: m.lr }))());\n` +
        `  const opts = { scale: 2 };\n` +
        `  const scaledInBuild = task("in-build-object").input<{ x: number }>().run(async ({ x }) => ({ y: x * opts.scale }))({ x: 1 });\n` +
        `  const inBuild = task("in-build").input<{ x: number }>().run(async ({ x }) => ({ y: x + TOP }))({ x: 1 });\n` +
        `  return { p: plain()({ x: 1 }).y, i: asInput()({ x: 1, k: 2 }).y, v: versioned(2)({ x: 1 }).y, k: keyed(2)({ x: 1 }).y, m: imported()({ x: 1 }).y, n: named.length, b: inBuild.y, l: locals()({ x: 1 }).y, f: fits.length, o: scaledInBuild.y };\n` +
        `});\n`,
    );
    const r = await cairn(["run", "flow.ts", "--no-report"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Outputs: {"p":16,"i":2,"v":2,"k":2,"m":4,"n":2,"b":4,"l":14,"f":2,"o":2}');
    expect(warnings(r.stderr)).toEqual([]);
  }, 120_000);

  it("is warned about for a variable of the function computed from its argument, from process.env or from imported code", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\n` +
        `import { readFileSync } from "node:fs";\n` +
        `function derived(k: number) {\n` +
        `  const twice = k * 2;\n` +
        `  return task("derived").run(async () => ({ y: twice }));\n` +
        `}\n` +
        `function fromEnv() {\n` +
        `  const k = Number(process.env.K);\n` +
        `  return task("from-env").run(async () => ({ y: k }));\n` +
        `}\n` +
        `const fromFile = () => {\n` +
        `  const size = readFileSync("flow.ts", "utf8").length;\n` +
        `  return task("from-file").run(async () => ({ y: size > 0 }));\n` +
        `};\n` +
        `export default flow("outside").build(() => ({ d: derived(2)().y, e: fromEnv()().y, f: fromFile()().y }));\n`,
    );
    const r = await cairn(["run", "flow.ts", "--no-report"], { cwd, env: { K: "2" } });
    expect(r.code, r.stderr).toBe(0);
    const said = warnings(r.stderr);
    expect(said).toHaveLength(3);
    expect(said).toEqual(
      expect.arrayContaining([expect.stringContaining('Task "derived" (declared at flow.ts:5) uses `twice`'), expect.stringContaining('Task "from-env" (declared at flow.ts:9) uses `k`'), expect.stringContaining('Task "from-file" (declared at flow.ts:13) uses `size`')]),
    );
  }, 120_000);

  it("is not warned about for a function handed from the flow's module to a wrapper of another module, whose names it does not hold", async () => {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "lib.ts"),
      `import { task } from "cairn-dag";\n` +
        `export const step = (name: string, fn: (inputs: { x: number }) => Promise<{ y: number }>) => task(name).input<{ x: number }>().run(fn);\n`,
    );
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow } from "cairn-dag";\n` +
        `import { step } from "./lib.ts";\n` +
        `const SCALE = 2;\n` +
        `function scaleOf(x: number) { return x * SCALE; }\n` +
        `const scale = step("scale", async ({ x }) => ({ y: scaleOf(x) }));\n` +
        `export default flow("wrap").build(() => ({ y: scale({ x: 10 }).y }));\n`,
    );
    const r = await cairn(["run", "flow.ts", "--no-report"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('{"y":20}');
    expect(warnings(r.stderr)).toEqual([]);
  }, 120_000);
});
