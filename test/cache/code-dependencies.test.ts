/**
 * A function task's key covers the code it uses beyond its own text, found without being
 * declared: an edited helper of its module, or an edited module it imports from (however
 * deep), re-runs exactly the tasks that use it; `cairn explain` names what changed; comments
 * and types change nothing. Real `cairn run` processes, and one through tsx.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, repo, start } from "./helpers.ts";
import { hasVenv, VENV_PYTHON } from "../kinds/helpers.ts";

const tsx = join(repo, "node_modules/.bin/tsx");
let dir: string;

beforeAll(async () => {
  // Inside the workspace, so that `@cairn/dsl` resolves as it does for the examples.
  dir = await mkdtemp(join(repo, "test", ".code-deps-"));
  await mkdir(join(dir, "lib"));
  await writeFile(join(dir, "lib", "base.ts"), `export const base = 0;\n`);
  await writeFile(join(dir, "lib", "shape.ts"), `import { base } from "./base.ts";\nexport const scale = (n: number): number => n * 3 + base;\n`);
  await writeFile(join(dir, "lib", "other.ts"), `export const unrelated = 1;\n`);
  await writeFile(
    join(dir, "flow.ts"),
    [
      `import { flow, task } from "cairn-dag";`,
      `import { scale } from "./lib/shape.ts";`,
      `import { unrelated } from "./lib/other.ts";`,
      ``,
      `const OFFSET = 1;`,
      `function bump(n: number) {`,
      `  return n + OFFSET;`,
      `}`,
      ``,
      `const triple = task("triple").input<{ n: number }>().run(({ n }) => ({ n: scale(n) }));`,
      `const plus = task("plus").input<{ n: number }>().run(({ n }) => ({ n: bump(n) }));`,
      `const alone = task("alone").input<{ n: number }>().run(({ n }) => ({ n: n * 2 + unrelated }));`,
      ``,
      `export default flow("deps").build(() => {`,
      `  const t = triple({ n: 2 });`,
      `  const p = plus({ n: 10 });`,
      `  const a = alone({ n: t.n });`,
      `  return { t: t.n, p: p.n, a: a.n };`,
      `});`,
    ].join("\n"),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const root = () => join(dir, ".cairn");
const env = () => childEnv({ CAIRN_NO_AUTORUN: "0" });
const cairn = (...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", root()], { cwd: dir, env: env() }).done;
/** Task -> succeeded | cached, from a run's summary table. */
const statuses = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(triple|plus|alone)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));

async function edit(file: string, from: string, to: string): Promise<void> {
  const path = join(dir, file);
  const text = await readFile(path, "utf8");
  expect(text).toContain(from);
  await writeFile(path, text.replace(from, to));
}

describe("code a function task uses, found without .codeFiles()", () => {
  it("re-runs exactly the tasks whose helpers or imported modules changed, and explain names them", async () => {
    let r = await cairn("run", "flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(statuses(r.stdout)).toEqual({ triple: "succeeded", plus: "succeeded", alone: "succeeded" });

    // A constant that bump() uses, in the flow's own module.
    await edit("flow.ts", "const OFFSET = 1;", "const OFFSET = 2;");
    const why = await cairn("explain", "flow.ts", "plus");
    expect(why.stdout).toContain("helper `OFFSET` of flow.ts changed");
    r = await cairn("run", "flow.ts");
    expect(statuses(r.stdout)).toEqual({ triple: "cached", plus: "succeeded", alone: "cached" });
    expect(r.stdout).toContain(`"p":12`);

    // A module two imports away: triple re-runs; alone re-runs only because its input changed.
    await edit("lib/base.ts", "base = 0", "base = 1");
    expect((await cairn("explain", "flow.ts", "triple")).stdout).toContain("code file `lib/base.ts` changed");
    r = await cairn("run", "flow.ts");
    expect(statuses(r.stdout)).toEqual({ triple: "succeeded", plus: "cached", alone: "succeeded" });

    // A module only alone uses.
    await edit("lib/other.ts", "unrelated = 1", "unrelated = 5");
    r = await cairn("run", "flow.ts");
    expect(statuses(r.stdout)).toEqual({ triple: "cached", plus: "cached", alone: "succeeded" });
  });

  it("a task made by a factory function counts the factory: editing its local variable re-runs the task", async () => {
    await writeFile(
      join(dir, "lib", "factory.ts"),
      [
        `import { task } from "cairn-dag";`,
        `export function makeScaler(k: number) {`,
        `  const bias = 0;`,
        `  return task("scaler").input<{ n: number }>().run(({ n }) => ({ n: n * k + bias }));`,
        `}`,
      ].join("\n"),
    );
    await writeFile(
      join(dir, "factory.flow.ts"),
      `import { flow } from "@cairn/dsl";\nimport { makeScaler } from "./lib/factory.ts";\nconst scaler = makeScaler(3);\nexport default flow("factory").build(() => ({ n: scaler({ n: 2 }).n }));\n`,
    );
    const scaler = (stdout: string) => /^scaler\s+(succeeded|cached)\s/m.exec(stdout)?.[1];
    let r = await cairn("run", "factory.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(scaler(r.stdout)).toBe("succeeded");
    await edit("lib/factory.ts", "bias = 0", "bias = 5");
    r = await cairn("run", "factory.flow.ts");
    expect(scaler(r.stdout)).toBe("succeeded");
    expect(r.stdout).toContain(`"n":11`);
    expect(scaler((await cairn("run", "factory.flow.ts")).stdout)).toBe("cached");
  });

  it("a task declared at the top level counts its whole declaration: an edited output schema, or a function handed through a wrapper, re-runs it", async () => {
    await writeFile(
      join(dir, "chain.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `import { z } from "zod";`,
        `function timed<I, R>(f: (i: I) => R) {`,
        `  return (i: I) => f(i);`,
        `}`,
        `const shaped = task("shaped").input<{ x: number }>().output(z.object({ y: z.number().transform((v) => v + 1) })).run(({ x }) => ({ y: x }));`,
        `const wrapped = task("wrapped").input<{ x: number }>().run(timed(({ x }: { x: number }) => ({ y: x * 2 })));`,
        `export default flow("chain").build(() => ({ s: shaped({ x: 1 }).y, w: wrapped({ x: 5 }).y }));`,
      ].join("\n"),
    );
    const status = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(shaped|wrapped)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));
    let r = await cairn("run", "chain.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`{"s":2,"w":10}`);
    await edit("chain.flow.ts", "v + 1", "v + 2");
    expect((await cairn("explain", "chain.flow.ts", "shaped")).stdout).toContain("the declaration of task `shaped` in chain.flow.ts changed (its settings or builder chain, not its function)");
    r = await cairn("run", "chain.flow.ts");
    expect(status(r.stdout)).toEqual({ shaped: "succeeded", wrapped: "cached" });
    expect(r.stdout).toContain(`{"s":3,"w":10}`);
    await edit("chain.flow.ts", "x * 2", "x * 3");
    r = await cairn("run", "chain.flow.ts");
    expect(status(r.stdout)).toEqual({ shaped: "cached", wrapped: "succeeded" });
    expect(r.stdout).toContain(`{"s":3,"w":15}`);
  });

  it("explain calls a task's own declaration and the build function it is declared in by those names, and one edit of its function one change", async () => {
    await writeFile(
      join(dir, "decl.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `const down = task("down").input<{ x: number }>().retries(0).run(({ x }) => ({ y: x + 1 }));`,
        `export default flow("decl").build(() => {`,
        `  const inner = task("inner").run(() => ({ z: 1 }));`,
        `  return { y: down({ x: 1 }).y, z: inner().z };`,
        `});`,
      ].join("\n"),
    );
    const since = async (node: string) => {
      const out = (await cairn("explain", "decl.flow.ts", node)).stdout;
      return out.slice(out.indexOf("Since then:") + "Since then:".length).trim().split("\n").map((l) => l.trim());
    };
    let r = await cairn("run", "decl.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    await edit("decl.flow.ts", "x + 1", "x + 2");
    expect(await since("down")).toEqual(["- the function of task `down` changed (in its declaration in decl.flow.ts)"]);
    expect((await cairn("run", "decl.flow.ts")).code).toBe(0);
    await edit("decl.flow.ts", ".retries(0)", ".retries(1)");
    expect(await since("down")).toEqual(["- the declaration of task `down` in decl.flow.ts changed (its settings or builder chain, not its function)"]);
    expect((await cairn("run", "decl.flow.ts")).code).toBe(0);
    await edit("decl.flow.ts", "down({ x: 1 })", "down({ x: 1 + 0 })");
    expect(await since("inner")).toEqual(["- the flow's build function in decl.flow.ts changed (task `inner` is declared in it)"]);
  });

  it("top-level setup that changes what a task uses re-runs it: a method call, Object.assign, `const ready = setup()`, an imported config overridden in the flow", async () => {
    await mkdir(join(dir, "conf"));
    await writeFile(join(dir, "conf", "config.ts"), `export const SHARED = { scale: 2 };\n`);
    await writeFile(
      join(dir, "setup.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `import { SHARED } from "./conf/config.ts";`,
        `SHARED.scale = 3;`,
        `const CFG: Record<string, number> = {};`,
        `function setDefaults() { Object.assign(CFG, { scale: 2 }); }`,
        `setDefaults();`,
        `const plugins = new Map<string, (x: number) => number>();`,
        `function register(name: string, f: (x: number) => number) { plugins.set(name, f); }`,
        `register("double", (x) => x * 2);`,
        `const LIMITS = { max: 1 };`,
        `function setup() { LIMITS.max = 3; return true; }`,
        `export const ready = setup();`,
        `console.log("loaded");`,
        `const assigned = task("assigned").input<{ x: number }>().run(({ x }) => ({ y: x * CFG.scale! }));`,
        `const registered = task("registered").input<{ x: number }>().run(({ x }) => ({ y: plugins.get("double")!(x) }));`,
        `const limited = task("limited").input<{ x: number }>().run(({ x }) => ({ y: x * LIMITS.max }));`,
        `const overridden = task("overridden").input<{ x: number }>().run(({ x }) => ({ y: x * SHARED.scale }));`,
        `const plain = task("plain").input<{ x: number }>().run(({ x }) => ({ y: x + 1 }));`,
        `export default flow("setup").build(() => ({`,
        `  a: assigned({ x: 10 }).y, r: registered({ x: 10 }).y, l: limited({ x: 10 }).y, o: overridden({ x: 10 }).y, p: plain({ x: 10 }).y,`,
        `}));`,
      ].join("\n"),
    );
    const status = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(assigned|registered|limited|overridden|plain)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));
    let r = await cairn("run", "setup.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`{"a":20,"r":20,"l":30,"o":30,"p":11}`);
    await edit("setup.flow.ts", "scale: 2 }", "scale: 3 }");
    await edit("setup.flow.ts", "x * 2);", "x * 5);");
    await edit("setup.flow.ts", "max = 3", "max = 7");
    await edit("setup.flow.ts", "SHARED.scale = 3", "SHARED.scale = 7");
    expect((await cairn("explain", "setup.flow.ts", "overridden")).stdout).toContain("helper `SHARED` of setup.flow.ts changed");
    r = await cairn("run", "setup.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(status(r.stdout)).toEqual({ assigned: "succeeded", registered: "succeeded", limited: "succeeded", overridden: "succeeded", plain: "cached" });
    expect(r.stdout).toContain(`{"a":30,"r":50,"l":70,"o":70,"p":11}`);
    // An unrelated top-level statement re-runs none of them.
    await edit("setup.flow.ts", `console.log("loaded");`, `console.log("loaded!");`);
    r = await cairn("run", "setup.flow.ts");
    expect(status(r.stdout)).toEqual({ assigned: "cached", registered: "cached", limited: "cached", overridden: "cached", plain: "cached" });
  });

  it("a module loaded by a literal call of createRequire's require (JSON, .cjs) counts, compiled and through tsx: editing it re-runs the task", async () => {
    await mkdir(join(dir, "req"));
    await writeFile(join(dir, "req", "j2.json"), `{ "k": 1 }\n`);
    await writeFile(join(dir, "req", "factor.cjs"), `module.exports = { factor: 2 };\n`);
    await writeFile(
      join(dir, "require.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `import { createRequire } from "node:module";`,
        `const require = createRequire(import.meta.url);`,
        `const json = task("json").run(() => ({ k: (require("./req/j2.json") as { k: number }).k }));`,
        `const cjs = task("cjs").run(() => ({ f: (require("./req/factor.cjs") as { factor: number }).factor }));`,
        `export default flow("require").build(() => ({ k: json({}).k, f: cjs({}).f }));`,
      ].join("\n"),
    );
    const status = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(json|cjs)\s+(runs|cached)\s/gm)].map((m) => [m[1], m[2]]));
    for (const loader of ["cairn", "tsx"]) {
      const run = (...args: string[]) =>
        start(process.execPath, [cairnBin, ...args, "--root", join(dir, `.cairn-require-${loader}`)], { cwd: dir, env: { ...env(), ...(loader === "tsx" ? { CAIRN_LOADER: "tsx" } : {}) } }).done;
      const r = await run("run", "require.flow.ts");
      expect(r.code, r.stderr).toBe(0);
      await edit("req/j2.json", `"k": 1`, `"k": 2`);
      await edit("req/factor.cjs", "factor: 2", "factor: 3");
      const plan = (await run("plan", "require.flow.ts")).stdout;
      expect(status(plan), `${loader}: ${plan}`).toEqual({ json: "runs", cjs: "runs" });
      expect(plan).toContain("code file `req/j2.json` changed");
      expect(plan).toContain("code file `req/factor.cjs` changed");
      await edit("req/j2.json", `"k": 2`, `"k": 1`);
      await edit("req/factor.cjs", "factor: 3", "factor: 2");
    }
  });

  it("top-level code that changes an object through another name (`const alias = G; alias.k = 10`) or in a class's static block re-runs the tasks that read it", async () => {
    await writeFile(
      join(dir, "alias.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `const G = { k: 1 };`,
        `const alias = G;`,
        `alias.k = 10;`,
        `const E = { k: 1 };`,
        `class X { static { E.k = 10; } }`,
        `const viaAlias = task("viaAlias").run(() => ({ k: G.k }));`,
        `const viaStatic = task("viaStatic").run(() => ({ k: E.k }));`,
        `const other = task("other").run(() => ({ k: 0 }));`,
        `export default flow("alias").build(() => ({ a: viaAlias({}).k, s: viaStatic({}).k, o: other({}).k }));`,
      ].join("\n"),
    );
    const status = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(viaAlias|viaStatic|other)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));
    let r = await cairn("run", "alias.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`{"a":10,"s":10,"o":0}`);
    await edit("alias.flow.ts", "alias.k = 10", "alias.k = 11");
    await edit("alias.flow.ts", "E.k = 10", "E.k = 12");
    expect((await cairn("explain", "alias.flow.ts", "viaStatic")).stdout).toContain("helper `E` of alias.flow.ts changed");
    r = await cairn("run", "alias.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(status(r.stdout)).toEqual({ viaAlias: "succeeded", viaStatic: "succeeded", other: "cached" });
    expect(r.stdout).toContain(`{"a":11,"s":12,"o":0}`);
  });

  it("a worker thread's module given as a literal new URL(..., import.meta.url) counts: editing it re-runs the task", async () => {
    await mkdir(join(dir, "work"));
    await writeFile(join(dir, "work", "worker.mjs"), `import { parentPort } from "node:worker_threads";\nparentPort.postMessage(1);\n`);
    await writeFile(
      join(dir, "worker.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `import { Worker } from "node:worker_threads";`,
        `const threaded = task("threaded").run(async () => {`,
        `  const worker = new Worker(new URL("./work/worker.mjs", import.meta.url));`,
        `  const n = await new Promise<number>((done) => worker.once("message", done));`,
        `  await worker.terminate();`,
        `  return { n };`,
        `});`,
        `export default flow("worker").build(() => ({ n: threaded({}).n }));`,
      ].join("\n"),
    );
    let r = await cairn("run", "worker.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`{"n":1}`);
    await edit("work/worker.mjs", "postMessage(1)", "postMessage(2)");
    expect((await cairn("plan", "worker.flow.ts")).stdout).toMatch(/^threaded\s+runs\s.*code file `work\/worker\.mjs` changed/m);
    r = await cairn("run", "worker.flow.ts");
    expect(r.stdout).toContain(`{"n":2}`);
  });

  it("a module loaded by a literal import() is named by its source in plan and explain, not by the file cairn compiled it into", async () => {
    await mkdir(join(dir, "dyn"));
    await writeFile(join(dir, "dyn", "dyn.ts"), `export const v = 1;\n`);
    await writeFile(
      join(dir, "dyn.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `const loaded = task("loaded").run(async () => ({ v: (await import("./dyn/dyn.ts")).v }));`,
        `export default flow("dyn").build(() => ({ v: loaded({}).v }));`,
      ].join("\n"),
    );
    const r = await cairn("run", "dyn.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    await edit("dyn/dyn.ts", "v = 1", "v = 2");
    const plan = (await cairn("plan", "dyn.flow.ts")).stdout;
    expect(plan).toMatch(/^loaded\s+runs\s+no cache entry for these inputs and code: code file `dyn\/dyn\.ts` changed$/m);
    const why = (await cairn("explain", "dyn.flow.ts", "loaded")).stdout;
    expect(why).toContain("code file `dyn/dyn.ts` changed");
    expect(why).not.toMatch(/\.mjs|cairn-\d+\/flows/);
  });

  it("a Python script counts the project's modules it imports: editing one re-runs the script, and explain names it", async () => {
    await mkdir(join(dir, "py"));
    await writeFile(join(dir, "py", "common.py"), `FACTOR = 2\n`);
    await writeFile(join(dir, "py", "step.py"), `import json, os\nfrom common import FACTOR\njson.dump({"v": FACTOR}, open(os.environ["CAIRN_OUTPUTS"], "w"))\n`);
    await writeFile(
      join(dir, "script.flow.ts"),
      `import { flow, script } from "cairn-dag";\nconst step = script("step", { file: "./py/step.py" });\nexport default flow("py").build(() => ({ v: step({}).v }));\n`,
    );
    const step = (stdout: string) => /^step\s+(succeeded|cached)\s/m.exec(stdout)?.[1];
    const py = (...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", root()], { cwd: dir, env: { ...env(), CAIRN_PYTHON: "python3" } }).done;
    let r = await py("run", "script.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(step(r.stdout)).toBe("succeeded");
    expect(step((await py("run", "script.flow.ts")).stdout)).toBe("cached");
    await edit("py/common.py", "FACTOR = 2", "FACTOR = 3");
    expect((await py("explain", "script.flow.ts", "step")).stdout).toContain("code file `common.py` changed");
    r = await py("run", "script.flow.ts");
    expect(step(r.stdout)).toBe("succeeded");
    expect(r.stdout).toContain(`"v":3`);
    // The script's own file: named, not a bare "code changed".
    await edit("py/step.py", `{"v": FACTOR}`, `{"v": FACTOR + 1}`);
    const why = (await py("explain", "script.flow.ts", "step")).stdout;
    expect(why).toContain("script `step.py` changed (its content, or its options: args, interpreter, cwd, env)");
    expect(why).not.toContain("code changed");
  });

  it.skipIf(!hasVenv)("a notebook counts the file a cell runs with %run and what that imports: editing it re-runs the notebook, and plan names it", async () => {
    await mkdir(join(dir, "nb"));
    await writeFile(join(dir, "nb", "nbhelper.py"), `from nbconst import BASE\nVALUE = BASE * 2\n`);
    await writeFile(join(dir, "nb", "nbconst.py"), `BASE = 1\n`);
    const cell = ["%run nbhelper.py\n", "import cairn_task\n", "cairn_task.set_outputs({'v': VALUE})\n"];
    const nb = { cells: [{ cell_type: "code", execution_count: null, metadata: {}, outputs: [], source: cell }], metadata: { kernelspec: { name: "python3", display_name: "Python 3", language: "python" } }, nbformat: 4, nbformat_minor: 5 };
    await writeFile(join(dir, "nb", "report.ipynb"), JSON.stringify(nb));
    await writeFile(
      join(dir, "nb.flow.ts"),
      `import { flow, notebook } from "cairn-dag";\nconst report = notebook("report", "./nb/report.ipynb", { html: false });\nexport default flow("nb").build(() => ({ v: report({}).v }));\n`,
    );
    const status = (stdout: string) => /^report\s+(succeeded|cached)\s/m.exec(stdout)?.[1];
    const nbCairn = (...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", root()], { cwd: dir, env: { ...env(), CAIRN_PYTHON: VENV_PYTHON } }).done;
    let r = await nbCairn("run", "nb.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`"v":2`);
    expect(status((await nbCairn("run", "nb.flow.ts")).stdout)).toBe("cached");
    await edit("nb/nbhelper.py", "BASE * 2", "BASE * 3");
    expect((await nbCairn("plan", "nb.flow.ts")).stdout).toMatch(/report\s+runs\s.*code file `nbhelper\.py` changed/);
    r = await nbCairn("run", "nb.flow.ts");
    expect(status(r.stdout)).toBe("succeeded");
    expect(r.stdout).toContain(`"v":3`);
    // What the %run file imports counts too.
    await edit("nb/nbconst.py", "BASE = 1", "BASE = 2");
    expect((await nbCairn("plan", "nb.flow.ts")).stdout).toMatch(/report\s+runs\s.*code file `nbconst\.py` changed/);
  }, 120_000);

  it("a shell script counts the project's Python file it runs from its own folder, and what that imports: editing one re-runs the script, and plan names it", async () => {
    await mkdir(join(dir, "steps"));
    await writeFile(join(dir, "steps", "run.sh"), `#!/usr/bin/env bash\nset -euo pipefail\npython3 "$(dirname "$0")/helper.py"\n`);
    await writeFile(join(dir, "steps", "helper.py"), `import json, os\nfrom shconst import N\njson.dump({"n": N}, open(os.environ["CAIRN_OUTPUTS"], "w"))\n`);
    await writeFile(join(dir, "steps", "shconst.py"), `N = 1\n`);
    await writeFile(
      join(dir, "sh.flow.ts"),
      `import { flow, script } from "cairn-dag";\nconst step = script("shstep", { file: "./steps/run.sh" });\nexport default flow("sh").build(() => ({ n: step({}).n }));\n`,
    );
    const status = (stdout: string) => /^shstep\s+(succeeded|cached)\s/m.exec(stdout)?.[1];
    let r = await cairn("run", "sh.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`"n":1`);
    expect(status((await cairn("run", "sh.flow.ts")).stdout)).toBe("cached");
    await edit("steps/helper.py", `{"n": N}`, `{"n": N + 10}`);
    expect((await cairn("plan", "sh.flow.ts")).stdout).toMatch(/shstep\s+runs\s.*code file `helper\.py` changed/);
    r = await cairn("run", "sh.flow.ts");
    expect(status(r.stdout)).toBe("succeeded");
    expect(r.stdout).toContain(`"n":11`);
    await edit("steps/shconst.py", "N = 1", "N = 2");
    expect((await cairn("plan", "sh.flow.ts")).stdout).toMatch(/shstep\s+runs\s.*code file `shconst\.py` changed/);
    r = await cairn("run", "sh.flow.ts");
    expect(r.stdout).toContain(`"n":12`);
  });

  it("a shell script's outputs named as words (--out model.bin, tee log.txt, -o out.json) stay out of its key: its second and third runs hit, and an edit of the .py it runs still re-runs it", async () => {
    await mkdir(join(dir, "outs"));
    // It runs in its own folder (as the reviewer's did), so the files it writes are where its words name them from.
    await writeFile(join(dir, "outs", "rev.sh"), [`#!/usr/bin/env bash`, `set -euo pipefail`, `cd "$(dirname "$0")"`, `date +%s%N > model.bin; python3 -c "print(1)" --out model.bin`, `python3 train.py --out weights.bin -o out.json | tee log.txt`, ``].join("\n"));
    await writeFile(
      join(dir, "outs", "train.py"),
      `import json, os, time\nstamp = str(time.time_ns())\nfor name in ("weights.bin", "out.json"):\n    open(name, "w").write(stamp)\nprint(stamp)\njson.dump({"n": 1}, open(os.environ["CAIRN_OUTPUTS"], "w"))\n`,
    );
    await writeFile(
      join(dir, "outs.flow.ts"),
      `import { flow, script } from "cairn-dag";\nconst step = script("revstep", { file: "./outs/rev.sh" });\nexport default flow("outs").build(() => ({ n: step({}).n }));\n`,
    );
    const status = (stdout: string) => /^revstep\s+(succeeded|cached)\s/m.exec(stdout)?.[1];
    const r = await cairn("run", "outs.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(status(r.stdout)).toBe("succeeded");
    for (const name of ["model.bin", "weights.bin", "out.json", "log.txt"]) await readFile(join(dir, "outs", name)); // the script wrote them: they exist now
    expect(status((await cairn("run", "outs.flow.ts")).stdout)).toBe("cached");
    expect(status((await cairn("run", "outs.flow.ts")).stdout)).toBe("cached");
    await edit("outs/train.py", `{"n": 1}`, `{"n": 2}`);
    expect((await cairn("plan", "outs.flow.ts")).stdout).toMatch(/revstep\s+runs\s.*code file `train\.py` changed/);
    const edited = await cairn("run", "outs.flow.ts");
    expect(status(edited.stdout)).toBe("succeeded");
    expect(edited.stdout).toContain(`"n":2`);
    expect(status((await cairn("run", "outs.flow.ts")).stdout)).toBe("cached");
  });

  it("comments, types and other tasks' code change nothing; tsx and cairn read the same dependencies", async () => {
    await edit("lib/base.ts", "export const base = 1;", "// the base\nexport const base: number = 1;");
    await edit("flow.ts", "({ n: n * 2 + unrelated })", "({ n: n * 2 + unrelated + 0 })");
    let r = await cairn("run", "flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(statuses(r.stdout)).toEqual({ triple: "cached", plus: "cached", alone: "succeeded" });
    // The same entries through tsx: the analysis reads the files, not what the loader made of them.
    r = await start(tsx, ["flow.ts", "--root", root()], { cwd: dir, env: env() }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(statuses(r.stdout)).toEqual({ triple: "cached", plus: "cached", alone: "cached" });
  });
});

describe("a function task that reads process.env through another name", () => {
  const forms = { r3a: "R3A", r3a2: "R3A2", r3b: "R3B", r3scale: "R3SCALE", r3local: "R3LOCAL" };
  const flowFile = [
    `import { env } from "node:process";`,
    `import { env as penv } from "process";`,
    `import * as proc from "node:process";`,
    `import { flow, task } from "cairn-dag";`,
    `const aliased = process.env;`,
    `const r3a = task("r3a").run(() => ({ v: env.R3A ?? "-" }));`,
    `const r3a2 = task("r3a2").run(() => ({ v: penv.R3A2 ?? "-" }));`,
    `const r3b = task("r3b").run(() => ({ v: proc.env.R3B ?? "-" }));`,
    `const r3scale = task("r3scale").run(() => ({ v: aliased.R3SCALE ?? "-" }));`,
    `const r3local = task("r3local").run(() => {`,
    `  const e = process.env;`,
    `  return { v: e.R3LOCAL ?? "-" };`,
    `});`,
    `export default flow("env-forms").build(() => ({ a: r3a().v, a2: r3a2().v, b: r3b().v, scale: r3scale().v, local: r3local().v }));`,
  ].join("\n");
  const withValue = (value: string) => childEnv({ CAIRN_NO_AUTORUN: "0", ...Object.fromEntries(Object.values(forms).map((name) => [name, value])) });
  const cairnWith = (value: string, ...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", join(dir, ".cairn-env")], { cwd: dir, env: withValue(value) }).done;
  const formStatuses = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(r3\w+)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));
  const all = (status: string) => Object.fromEntries(Object.keys(forms).map((task) => [task, status]));

  it("keys each variable it reads by a literal name (an env imported from node:process, process's namespace, an alias): changed, the plan and explain name it and the task runs again", async () => {
    await writeFile(join(dir, "env-forms.flow.ts"), flowFile);
    let r = await cairnWith("1", "run", "env-forms.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(formStatuses(r.stdout)).toEqual(all("succeeded"));
    r = await cairnWith("1", "run", "env-forms.flow.ts");
    expect(formStatuses(r.stdout)).toEqual(all("cached"));
    const plan = await cairnWith("2", "plan", "env-forms.flow.ts");
    for (const [task, name] of Object.entries(forms)) {
      expect(plan.stdout).toMatch(new RegExp(`^${task}\\s+runs\\s.*environment variable \`${name}\` changed value`, "m"));
      expect((await cairnWith("2", "explain", "env-forms.flow.ts", task)).stdout).toContain(`environment variable \`${name}\` changed value`);
    }
    r = await cairnWith("2", "run", "env-forms.flow.ts");
    expect(formStatuses(r.stdout)).toEqual(all("succeeded"));
    expect(r.stdout).toContain(`{"a":"2","a2":"2","b":"2","scale":"2","local":"2"}`);
    expect(formStatuses((await cairnWith("2", "run", "env-forms.flow.ts")).stdout)).toEqual(all("cached"));
    // tsx gives the functions' text as cairn's build does.
    r = await start(tsx, ["env-forms.flow.ts", "--root", join(dir, ".cairn-env")], { cwd: dir, env: withValue("3") }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(formStatuses(r.stdout)).toEqual(all("succeeded"));
    // And as it gives them from a package without "type": "module", compiled to CommonJS (`import_node_process.env.R3A`).
    await mkdir(join(dir, "cjs"), { recursive: true });
    await writeFile(join(dir, "cjs", "package.json"), `{ "name": "env-forms-cjs", "private": true }\n`);
    await writeFile(join(dir, "cjs", "env-forms.flow.ts"), flowFile);
    const tsxCjs = (value: string) => start(tsx, ["env-forms.flow.ts", "--root", join(dir, ".cairn-env-cjs")], { cwd: join(dir, "cjs"), env: withValue(value) }).done;
    r = await tsxCjs("1");
    expect(r.code, r.stderr).toBe(0);
    expect(formStatuses(r.stdout)).toEqual(all("succeeded"));
    expect(formStatuses((await tsxCjs("1")).stdout)).toEqual(all("cached"));
    expect(formStatuses((await tsxCjs("2")).stdout)).toEqual(all("succeeded"));
  });

  it("keys a variable its function reads, not one its strings only mention: a changed value of the mentioned one changes nothing in plan or run", async () => {
    await writeFile(
      join(dir, "env-mention.flow.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `const mention = task("mention").run((_, ctx) => {`,
        `  ctx.logger.info("set process.env.R3DEBUG=1 for more");`,
        "  return { v: `see process.env['R3DEBUG2'] and process.env` };",
        `});`,
        `const real = task("real").run(() => ({ v: process.env.R3REAL ?? "-" }));`,
        `export default flow("env-mention").build(() => ({ m: mention().v, r: real().v }));`,
      ].join("\n"),
    );
    const with_ = (debug: string, real: string) => childEnv({ CAIRN_NO_AUTORUN: "0", R3DEBUG: debug, R3DEBUG2: debug, R3REAL: real });
    const cairnAt = (debug: string, real: string, ...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", join(dir, ".cairn-mention")], { cwd: dir, env: with_(debug, real) }).done;
    const mentionStatuses = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(mention|real)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));
    let r = await cairnAt("1", "1", "run", "env-mention.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(mentionStatuses(r.stdout)).toEqual({ mention: "succeeded", real: "succeeded" });
    const plan = await cairnAt("2", "2", "plan", "env-mention.flow.ts");
    expect(plan.stdout).toMatch(/^real\s+runs\s.*environment variable `R3REAL` changed value/m);
    expect(plan.stdout).not.toMatch(/^mention\s+runs/m);
    expect(plan.stdout).not.toContain("R3DEBUG");
    r = await cairnAt("2", "2", "run", "env-mention.flow.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(mentionStatuses(r.stdout)).toEqual({ mention: "cached", real: "succeeded" });
  });

  it("does not warn of a function whose strings only mention process.env when the run's env gives a declared variable another value", async () => {
    await writeFile(
      join(dir, "env-said.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        "const said = task(\"said\").env(\"R3W\").run((_, ctx) => ({ v: `${ctx.env(\"R3W\")}: not read from process.env` }));",
        `const f = flow("env-said").build(() => ({ v: said().v }));`,
        `const run = await f.run({ env: { ...process.env, R3W: "run's" }, root: process.argv[2] });`,
        `run.on((e) => { if (e.type === "log" && e.level === "warn") console.log("WARN " + e.message); });`,
        `console.log(JSON.stringify(await run.outputs()));`,
      ].join("\n"),
    );
    const r = await start(tsx, ["env-said.ts", join(dir, ".cairn-said")], { cwd: dir, env: childEnv({ R3W: "process's" }) }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`{"v":"run's: not read from process.env"}`);
    expect(r.stdout).not.toContain("WARN");
  });

  it("warns of a read whose names cannot be known (env[name], env imported from node:process) when the run's env gives a declared variable another value", async () => {
    await writeFile(
      join(dir, "env-unnamed.ts"),
      [
        `import { env } from "node:process";`,
        `import { flow, task } from "cairn-dag";`,
        `const pick = task("pick").env("R3C").input<{ name: string }>().run(({ name }) => ({ v: env[name] ?? "-" }));`,
        `const f = flow("env-unnamed").build(() => ({ v: pick({ name: "R3C" }).v }));`,
        `const run = await f.run({ env: { ...process.env, R3C: "run's" }, root: process.argv[2] });`,
        `run.on((e) => { if (e.type === "log" && e.level === "warn") console.log("WARN " + e.message); });`,
        `await run.wait();`,
      ].join("\n"),
    );
    const r = await start(tsx, ["env-unnamed.ts", join(dir, ".cairn-unnamed")], { cwd: dir, env: childEnv({ R3C: "process's" }) }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`WARN task "pick" reads process.env by a name its text does not show (a computed one, a destructuring) and declares R3C with .env()`);
  });
});

describe("a package installed from a registry that a task's code imports", () => {
  const minidep = async (version: string, factor: number) => {
    await mkdir(join(dir, "node_modules", "minidep"), { recursive: true });
    await writeFile(join(dir, "node_modules", "minidep", "package.json"), `{ "name": "minidep", "version": "${version}", "type": "module", "main": "index.js" }\n`);
    await writeFile(join(dir, "node_modules", "minidep", "index.js"), `export const scale = (x) => x * ${factor};\n`);
  };
  const cairnPkg = (...args: string[]) => start(process.execPath, [cairnBin, ...args, "--root", join(dir, ".cairn-pkg")], { cwd: dir, env: env() }).done;
  const pkgStatuses = (stdout: string) => Object.fromEntries([...stdout.matchAll(/^(base|other)\s+(succeeded|cached)\s/gm)].map((m) => [m[1], m[2]]));

  it("re-runs the tasks that use it when its version changes, and explain names the versions", async () => {
    await minidep("1.0.0", 2);
    await writeFile(
      join(dir, "pkg.ts"),
      [
        `import { flow, task } from "cairn-dag";`,
        `import { scale } from "minidep";`,
        `const base = task("base").run(() => ({ v: scale(21) }));`,
        `const other = task("other").run(() => ({ v: 1 }));`,
        `export default flow("pkg").build(() => ({ v: base().v, o: other().v }));`,
      ].join("\n"),
    );
    let r = await cairnPkg("run", "pkg.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(pkgStatuses(r.stdout)).toEqual({ base: "succeeded", other: "succeeded" });
    expect(r.stdout).toContain(`"v":42`);

    // `npm install minidep@2`: before, base was cached with the old output.
    await minidep("2.0.0", 3);
    const why = await cairnPkg("explain", "pkg.ts", "base");
    expect(why.stdout).toContain("package `minidep` 1.0.0 → 2.0.0");
    r = await cairnPkg("run", "pkg.ts");
    expect(r.code, r.stderr).toBe(0);
    expect(pkgStatuses(r.stdout)).toEqual({ base: "succeeded", other: "cached" });
    expect(r.stdout).toContain(`"v":63`);
  });
});
