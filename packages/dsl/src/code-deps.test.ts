/**
 * The code a function task reaches beyond its own text: helpers of its module and the
 * project's modules it imports from, read from files on disk (no loader involved).
 */
import { spawnSync } from "node:child_process";
import { chmod, link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENV_READ_ENTRY } from "@cairn/cache";
import { RunScope } from "@cairn/core";
import { functionDependencies } from "./code-deps.ts";

let dir: string;
const newRun = () => new RunScope();
/** A new flow run each call: files are read again. */
const deps = (file: string, fnText: string) => functionDependencies(join(dir, file), fnText, newRun());

async function files(tree: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(tree)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), text);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-code-deps-"));
  await files({
    "lib/base.ts": `export const base: number = 0;\n`,
    "lib/shape.ts": `import { base } from "./base.js";\nexport const scale = (n: number): number => n * 3 + base;\nexport type Shape = { n: number };\n`,
    "lib/index.ts": `export * from "./shape.ts";\nexport { other } from "./other";\n`,
    "lib/other.ts": `export const other = 1;\n`,
    "flow.ts": [
      `import { task } from "@cairn/dsl";`,
      `import type { Shape } from "./lib/shape.ts";`,
      `import { scale } from "./lib/shape.ts";`,
      `import * as all from "./lib";`,
      `const OFFSET = 1, UNUSED = 2;`,
      `const { a: [FIRST] } = { a: [5] };`,
      `function bump(n: number): number { return n + OFFSET; }`,
      `export const plus = task("plus").run(({ n }: Shape) => ({ n: bump(n) }));`,
      `export const triple = task("triple").run(({ n }: Shape) => ({ n: scale(n) }));`,
      `export const viaIndex = task("via").run(() => ({ n: all.other + FIRST }));`,
    ].join("\n"),
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("functionDependencies", () => {
  it("follows same-module helpers, and what they use, by name", async () => {
    const found = await deps("flow.ts", "({ n }) => ({ n: bump(n) })");
    expect(Object.keys(found).sort()).toEqual(["flow.ts#OFFSET,UNUSED", "flow.ts#bump"]);
  });

  it("follows an imported module whole, with the project's modules it imports (./base.js names base.ts)", async () => {
    const found = await deps("flow.ts", "({ n }) => ({ n: scale(n) })");
    expect(Object.keys(found).sort()).toEqual(["lib/base.ts", "lib/shape.ts"]);
  });

  it("reaches modules through a folder's index, re-exports and an extensionless specifier; destructured names count", async () => {
    const found = await deps("flow.ts", "() => ({ n: all.other + FIRST })");
    expect(Object.keys(found).sort()).toEqual(["flow.ts#FIRST", "lib/base.ts", "lib/index.ts", "lib/other.ts", "lib/shape.ts"]);
  });

  it("finds nothing for a function that uses only its inputs, nor for a package's module", async () => {
    // Its record says what it reads from process.env (nothing), under a symbol: no name of the record.
    expect(await deps("flow.ts", "({ n }) => ({ n: n * 2 })")).toEqual({ [ENV_READ_ENTRY]: { names: [], unnamed: false } });
    await files({ "node_modules/pkg/index.ts": `const helper = 1;\n` });
    expect(await deps("node_modules/pkg/index.ts", "() => helper")).toEqual({});
  });

  it("a change to a used helper or module changes its digest; comments and types do not", async () => {
    const before = await deps("flow.ts", "({ n }) => ({ n: bump(n) + scale(n) })");
    await files({ "lib/base.ts": `// the base\nexport const base: number = 0 as number;\n` });
    expect(await deps("flow.ts", "({ n }) => ({ n: bump(n) + scale(n) })")).toEqual(before);
    await files({ "lib/base.ts": `export const base = 1;\n` });
    const after = await deps("flow.ts", "({ n }) => ({ n: bump(n) + scale(n) })");
    expect(after["lib/base.ts"]).not.toBe(before["lib/base.ts"]);
    expect({ ...after, "lib/base.ts": "" }).toEqual({ ...before, "lib/base.ts": "" });
  });

  it("a module it cannot parse counts whole", async () => {
    await files({ "broken.ts": `const helper = (;\nexport const t = 1;\n` });
    const found = await deps("broken.ts", "() => helper");
    expect(Object.keys(found)).toEqual(["broken.ts"]);
  });

  it("top-level code that changes a helper counts with it (an assignment, a namespace's body)", async () => {
    await files({
      "mutated.ts": [
        `const CFG = { add: 0 };`,
        `CFG.add = 1;`,
        `export namespace NS { export const k = 2; }`,
        `console.log("loaded");`,
      ].join("\n"),
    });
    const before = await deps("mutated.ts", "() => CFG.add + NS.k");
    expect(Object.keys(before).sort()).toEqual(["mutated.ts#CFG", "mutated.ts#NS"]);
    await files({ "mutated.ts": `const CFG = { add: 0 };\nCFG.add = 5;\nexport namespace NS { export const k = 3; }\nconsole.log("loaded");` });
    const after = await deps("mutated.ts", "() => CFG.add + NS.k");
    expect(after["mutated.ts#CFG"]).not.toBe(before["mutated.ts#CFG"]);
    expect(after["mutated.ts#NS"]).not.toBe(before["mutated.ts#NS"]);
  });

  it("top-level code that changes a helper through a function it calls counts with it; so do the modules the task's module imports for their side effects", async () => {
    await files({
      "lib/registry.ts": `export const scorers: Record<string, (x: number) => number> = {};\n`,
      "lib/plugins.ts": `import { scorers } from "./registry.ts";\nscorers.double = (x) => x * 2;\n`,
      "init.ts": [
        `import "./lib/plugins.ts";`,
        `import { scorers } from "./lib/registry.ts";`,
        `const CFG = { scale: 1 };`,
        `function init() { CFG.scale = 2; }`,
        `init();`,
        `export const other = 1;`,
        `export const score = ({ x }: { x: number }) => ({ y: x * CFG.scale + scorers.double(x) });`,
      ].join("\n"),
    });
    const before = await deps("init.ts", "({ x }) => ({ y: x * CFG.scale + scorers.double(x) })");
    expect(Object.keys(before).sort()).toEqual(["init.ts#CFG", "init.ts#init", "lib/plugins.ts", "lib/registry.ts"]);
    await files({ "init.ts": (await readFile(join(dir, "init.ts"), "utf8")).replace("CFG.scale = 2", "CFG.scale = 3") });
    expect((await deps("init.ts", "({ x }) => ({ y: x * CFG.scale + scorers.double(x) })"))["init.ts#init"]).not.toBe(before["init.ts#init"]);
    // A task that uses none of it still counts the side-effect import (it may register anything), and nothing else.
    expect(Object.keys(await deps("init.ts", "() => ({ v: other })")).sort()).toEqual(["init.ts#other", "lib/plugins.ts", "lib/registry.ts"]);
  });

  it("top-level code that changes a constant through a method, or hands it to a call, counts with it; so does a declaration whose initialiser calls a function that changes it", async () => {
    const text = [
      `const CFG: Record<string, number> = {};`,
      `function setDefaults() { Object.assign(CFG, { scale: 2 }); }`,
      `setDefaults();`,
      `const plugins = new Map<string, (x: number) => number>();`,
      `function register(name: string, f: (x: number) => number) { plugins.set(name, f); }`,
      `register("double", (x) => x * 2);`,
      `const LIMITS = { max: 1 };`,
      `function setup() { LIMITS.max = 3; return true; }`,
      `export const ready = setup();`,
      `const order: string[] = [];`,
      `export const size = order.push("a");`,
      `console.log("loaded");`,
    ].join("\n");
    await files({ "writers.ts": text });
    const uses = { CFG: "() => CFG.scale", plugins: `() => plugins.get("double")(1)`, LIMITS: "() => LIMITS.max", order: "() => order.length" };
    const before = Object.fromEntries(await Promise.all(Object.entries(uses).map(async ([k, fn]) => [k, await deps("writers.ts", fn)] as const)));
    expect(Object.keys(before.CFG!).sort()).toEqual(["writers.ts#CFG", "writers.ts#setDefaults"]);
    expect(Object.keys(before.plugins!).sort()).toEqual(["writers.ts#plugins", "writers.ts#register"]);
    expect(Object.keys(before.LIMITS!).sort()).toEqual(["writers.ts#LIMITS", "writers.ts#ready", "writers.ts#setup"]);
    expect(Object.keys(before.order!).sort()).toEqual(["writers.ts#order", "writers.ts#size"]);
    for (const [name, from, to] of [["CFG", "scale: 2", "scale: 3"], ["plugins", "x * 2", "x * 5"], ["LIMITS", "max = 3", "max = 7"], ["order", `push("a")`, `push("b")`]] as const) {
      await files({ "writers.ts": text.replace(from, to) });
      expect(await deps("writers.ts", uses[name]), name).not.toEqual(before[name]);
    }
  });

  it("code that only reads a constant, or hands it to a call that changes nothing, does not become part of it: tasks sharing a registry, a schema or a wrapper stay apart", async () => {
    const lines = [
      `import { task } from "@cairn/dsl";`,
      `import { z } from "zod";`,
      `import { join, relative } from "node:path";`,
      `const plugins = new Map<string, (x: number) => number>([["double", (x) => x * 2]]);`,
      `const Row = z.object({ y: z.number() });`,
      `const Other = z.object({ z: z.number() });`,
      `const ROOT = "/data";`,
      `const DATA = join(ROOT, "in");`,
      `function timed<I, R>(f: (i: I) => R) { return (i: I) => f(i); }`,
      `function train({ x }: { x: number }) { return { y: x }; }`,
      `export const names = JSON.stringify([...plugins.keys()]);`,
      `export const a = task("a").output(Row).run(({ x }: { x: number }) => ({ y: plugins.get("double")!(x) + ROOT.length }));`,
      `export const b = task("b").output(Row).run(({ x }: { x: number }) => ({ y: plugins.get("double")!(x) * 2 }));`,
      `export const c = task("c").run(timed(train));`,
      `export const d = task("d").run(timed(train));`,
    ];
    const text = lines.join("\n");
    await files({ "readers.ts": text });
    const at = (line: number) => ({ line, column: lines[line - 1]!.lastIndexOf(".run(") + 2 });
    const depsAt = (fn: string, line: number) => functionDependencies(join(dir, "readers.ts"), fn, newRun(), at(line));
    const aFn = `({ x }) => ({ y: plugins.get("double")(x) + ROOT.length })`;
    const before = { a: await depsAt(aFn, 12), c: await depsAt("(i) => f(i)", 14) };
    expect(Object.keys(before.a).sort()).toEqual(["readers.ts#ROOT", "readers.ts#Row", "readers.ts#a", "readers.ts#plugins"]);
    expect(Object.keys(before.c).sort()).toEqual(["readers.ts#c", "readers.ts#timed", "readers.ts#train"]);
    // Another task's declaration, another schema, what a constant is read into: none of it counts.
    let edited = text;
    for (const [from, to] of [["(x) * 2 }", "(x) * 3 }"], ["z: z.number()", "z: z.string()"], [`"in"`, `"out"`], [`task("d")`, `task("d").retries(2)`]] as const) {
      expect(edited).toContain(from);
      edited = edited.replace(from, to);
    }
    await files({ "readers.ts": edited });
    expect(await depsAt(aFn, 12)).toEqual(before.a);
    expect(await depsAt("(i) => f(i)", 14)).toEqual(before.c);
  });

  it("top-level code of the task's module that changes an imported name counts with it, beside the module it comes from", async () => {
    const text = [
      `import { CFG, LIMITS, unrelated } from "./lib/config.ts";`,
      `import { settings } from "some-package";`,
      `CFG.scale = 3;`,
      `Object.assign(LIMITS, { max: 2 });`,
      `settings.factor = 4;`,
      `console.log(unrelated, CFG);`,
    ].join("\n");
    await files({ "lib/config.ts": `export const CFG = { scale: 2 };\nexport const LIMITS = { max: 1 };\nexport const unrelated = 0;\n`, "override.ts": text });
    const fn = "() => CFG.scale * LIMITS.max * settings.factor";
    const before = await deps("override.ts", fn);
    expect(Object.keys(before).sort()).toEqual(["lib/config.ts", "override.ts#CFG", "override.ts#LIMITS", "override.ts#settings"]);
    for (const [from, to] of [["scale = 3", "scale = 7"], ["max: 2", "max: 5"], ["factor = 4", "factor = 8"]] as const) {
      await files({ "override.ts": text.replace(from, to) });
      expect(await deps("override.ts", fn), from).not.toEqual(before);
    }
    // Reading an imported name changes nothing: a task that uses `unrelated` counts its module alone.
    expect(Object.keys(await deps("override.ts", "() => unrelated"))).toEqual(["lib/config.ts"]);
  });

  it("a top-level call that runs the flow (pipeline.run(), main()) does not tie each task to the others' code", async () => {
    const text = [
      `import { flow, task } from "@cairn/dsl";`,
      `function helpA(x: number) { return x + 1; }`,
      `function helpB(x: number) { return x * 2; }`,
      `const a = task("a").run(() => ({ v: helpA(1) }));`,
      `const b = task("b").run(() => ({ v: helpB(1) }));`,
      `const pipeline = flow("p").build(() => ({ a: a().v, b: b().v }));`,
      `async function main() { await pipeline.run(); }`,
      `pipeline.run();`,
      `main();`,
    ].join("\n");
    await files({ "runs.ts": text });
    const lines = text.split("\n");
    const at = { line: 4, column: lines[3]!.indexOf(".run(") + 2 };
    const before = await functionDependencies(join(dir, "runs.ts"), "() => ({ v: helpA(1) })", newRun(), at);
    expect(Object.keys(before).sort()).toEqual(["runs.ts#a", "runs.ts#helpA"]);
    await files({ "runs.ts": text.replace("x * 2", "x * 3") });
    expect(await functionDependencies(join(dir, "runs.ts"), "() => ({ v: helpA(1) })", newRun(), at)).toEqual(before);
  });

  it("names as property keys or after a dot are not references: another task's variable is not a helper", async () => {
    await files({
      "keys.ts": [
        `import { task } from "@cairn/dsl";`,
        `export const train = task("train").run(() => ({ model: 1 }));`,
        `export const split = task("split").run(({ n }: { n: number }) => ({ train: n, test: n }));`,
      ].join("\n"),
    });
    expect(Object.keys(await deps("keys.ts", "({ n }) => ({ train: n, test: n, x: ctx.train })"))).toEqual([]);
    expect(Object.keys(await deps("keys.ts", "() => ({ t: train })"))).toEqual(["keys.ts#train"]);
  });

  it("follows import() and require() of a literal path, and data files such as JSON", async () => {
    await files({
      "lib/split.ts": `export const z = 5;\n`,
      "cfg.json": `{ "factor": 1 }\n`,
      "dyn.ts": [
        `import cfg from "./cfg.json";`,
        `export const load = () => require("./lib/other.ts");`,
        `export const t = async () => (await import("./lib/split.ts")).z * cfg.factor + load().other;`,
      ].join("\n"),
    });
    const found = await deps("dyn.ts", `async () => (await import("./lib/split.ts")).z * cfg.factor + load().other`);
    expect(Object.keys(found).sort()).toEqual(["cfg.json", "dyn.ts#load", "lib/other.ts", "lib/split.ts"]);
    await files({ "cfg.json": `{ "factor": 5 }\n` });
    expect((await deps("dyn.ts", `async () => (await import("./lib/split.ts")).z * cfg.factor + load().other`))["cfg.json"]).not.toBe(found["cfg.json"]);
  });

  it("an import cycle back into the task's module: the names taken from it count as helpers", async () => {
    await files({
      "cycle/flow.ts": `import { h } from "./lib.ts";\nexport const K = 1;\nexport const t = () => h();\n`,
      "cycle/lib.ts": `import { K } from "./flow.ts";\nexport const h = () => K + 1;\n`,
    });
    const before = await deps("cycle/flow.ts", "() => h()");
    expect(Object.keys(before).sort()).toEqual(["flow.ts#K", "lib.ts"]);
    await files({ "cycle/flow.ts": `import { h } from "./lib.ts";\nexport const K = 2;\nexport const t = () => h();\n` });
    expect((await deps("cycle/flow.ts", "() => h()"))["flow.ts#K"]).not.toBe(before["flow.ts#K"]);
  });

  it("applies the nearest tsconfig.json (parameter decorators), and still follows the imports of a module it cannot parse", async () => {
    await files({
      "deco/tsconfig.json": `{\n  // as tsx reads it\n  "compilerOptions": { "experimentalDecorators": true },\n}\n`,
      "deco/lib.ts": `export const Inj = () => (..._: unknown[]) => {};\nexport const w = 1;\n`,
      "deco/svc.ts": `import { Inj, w } from "./lib.ts";\nexport class S { constructor(@Inj() readonly x: number) {} }\nexport const weight = w;\n`,
      "deco/bad.ts": `import { w } from "./lib.ts";\nconst helper = (;\n`,
    });
    expect(Object.keys(await deps("deco/svc.ts", "() => new S(weight)")).sort()).toEqual(["lib.ts", "svc.ts#S", "svc.ts#weight"]);
    expect(Object.keys(await deps("deco/bad.ts", "() => helper")).sort()).toEqual(["bad.ts", "lib.ts"]);
  });

  it("a task declared inside a function counts the top-level statement holding it (a factory, a callback, the build function)", async () => {
    const lines = [
      `import { flow, task } from "@cairn/dsl";`,
      `import { scale } from "./lib/shape.ts";`,
      `export function makeScaler(k: number) {`,
      `  const bias = 0;`,
      `  return task("scaler").run(({ n }: { n: number }) => ({ n: scale(n) * k + bias }));`,
      `}`,
      `export const other = task("other").run(() => ({}));`,
      `export const many = [2, 3].map((k) => { const off = 1; return task(\`m-\${k}\`).run(() => ({ v: k + off })); });`,
      `export default flow("f").build(() => { const local = 1; const inner = task("inner").run(() => ({ v: local })); return { v: inner().v + other().v + many.length }; });`,
    ];
    const text = lines.join("\n");
    await files({ "factory.ts": text });
    /** Where the stack puts a `.run(` call: its line, and the 1-based column of `run`. */
    const runAt = (line: number, nth = 0) => ({ line, column: lines[line - 1]!.split(".run(").slice(0, nth + 1).join(".run(").length + 2 });
    const deps = (fnText: string, line: number) => functionDependencies(join(dir, "factory.ts"), fnText, newRun(), runAt(line));
    const scaler = "({ n }) => ({ n: scale(n) * k + bias })";
    const before = await deps(scaler, 5);
    expect(Object.keys(before).sort()).toEqual(["factory.ts#makeScaler", "lib/base.ts", "lib/shape.ts"]);
    // A task declared at the top level: its declaring statement counts (its builder chain).
    expect(Object.keys(await deps("() => ({})", 7))).toEqual(["factory.ts#other"]);
    expect(Object.keys(await deps("() => ({ v: k + off })", 8))).toEqual(["factory.ts#many"]);
    // Inside the build function: all of it counts, with what it names (the other tasks too: errs towards running).
    expect(Object.keys(await deps("() => ({ v: local })", 9)).sort()).toEqual(["factory.ts#default", "factory.ts#many", "factory.ts#other"]);
    // The build function names `other` and `many`: it does not become part of them.
    const many = await deps("() => ({ v: k + off })", 8);
    await files({ "factory.ts": text.replace("const local = 1", "const local = 2") });
    expect(await deps("() => ({ v: k + off })", 8)).toEqual(many);
    expect(Object.keys(await deps("() => ({ t: other })", 7))).toEqual(["factory.ts#other"]);
    await files({ "factory.ts": text.replace("bias = 0", "bias = 5") });
    expect((await deps(scaler, 5))["factory.ts#makeScaler"]).not.toBe(before["factory.ts#makeScaler"]);
  });

  it("a task declared at the top level counts its declaring statement: an output schema in its chain, a schema it names, a wrapper its function is handed through", async () => {
    const lines = [
      `import { task } from "@cairn/dsl";`,
      `const Out = { y: (v: number) => v * 10 };`,
      `function timed<I, R>(f: (i: I) => R) { return (i: I) => f(i); }`,
      `export const inline = task("inline").output({ y: (v: number) => v + 1 } as never).run(({ x }: { x: number }) => ({ y: x }));`,
      `export const named = task("named").output(Out as never).run(({ x }: { x: number }) => ({ y: x }));`,
      `export const wrapped = task("wrapped").run(timed(({ x }: { x: number }) => ({ y: x * 2 })));`,
      `export const plain = task("plain").run(({ x }: { x: number }) => ({ y: x }));`,
    ];
    const text = lines.join("\n");
    await files({ "top.ts": text });
    const runAt = (line: number) => ({ line, column: lines[line - 1]!.indexOf(".run(") + 2 });
    const deps = (line: number, fnText: string) => functionDependencies(join(dir, "top.ts"), fnText, newRun(), runAt(line));
    const inner = "(i) => f(i)"; // what fn.toString() gives for the wrapped task: the wrapper's arrow
    const before = { inline: await deps(4, "({ x }) => ({ y: x })"), named: await deps(5, "({ x }) => ({ y: x })"), wrapped: await deps(6, inner) };
    expect(Object.keys(before.inline)).toEqual(["top.ts#inline"]);
    expect(Object.keys(before.named).sort()).toEqual(["top.ts#Out", "top.ts#named"]);
    expect(Object.keys(before.wrapped).sort()).toEqual(["top.ts#timed", "top.ts#wrapped"]);
    await files({ "top.ts": text.replace("v + 1", "v + 2").replace("v * 10", "v * 100").replace("x * 2", "x * 3") });
    expect(await deps(4, "({ x }) => ({ y: x })")).not.toEqual(before.inline);
    expect(await deps(5, "({ x }) => ({ y: x })")).not.toEqual(before.named);
    expect(await deps(6, inner)).not.toEqual(before.wrapped);
    // A task whose statement did not change keeps its digest.
    await files({ "top.ts": text });
    const plain = await deps(7, "({ x }) => ({ y: x })");
    await files({ "top.ts": text.replace("v * 10", "v * 100") });
    expect(await deps(7, "({ x }) => ({ y: x })")).toEqual(plain);
  });

  it("reads each module once per flow run", async () => {
    await files({ "lib/base.ts": `export const base = 2;\n` });
    const sameRun = newRun();
    const first = await functionDependencies(join(dir, "flow.ts"), "() => scale(1)", sameRun);
    await files({ "lib/base.ts": `export const base = 3;\n` });
    expect(await functionDependencies(join(dir, "flow.ts"), "() => scale(1)", sameRun)).toEqual(first);
    expect(await functionDependencies(join(dir, "flow.ts"), "() => scale(1)", newRun())).not.toEqual(first);
  });

  it("keeps each flow run's reads apart when two runs share the process", async () => {
    await files({ "lib/base.ts": `export const base = 2;\n` });
    const a = newRun();
    const first = await functionDependencies(join(dir, "flow.ts"), "() => scale(1)", a);
    await files({ "lib/base.ts": `export const base = 4;\n` });
    const b = newRun();
    const second = await functionDependencies(join(dir, "flow.ts"), "() => scale(1)", b);
    expect(second).not.toEqual(first);
    // Run b's reads did not replace run a's: a still sees what it read first.
    expect(await functionDependencies(join(dir, "flow.ts"), "() => scale(1)", a)).toEqual(first);
    expect(await functionDependencies(join(dir, "flow.ts"), "() => scale(1)", b)).toEqual(second);
  });
});

describe("a package's exports as Node matches them in this process: the user's --conditions (command line, NODE_OPTIONS), node-addons, module-sync", () => {
  let root: string;
  const FN = "() => ({ v: which + s + n })";
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "cairn-conditions-"));
    const imports = [`import { which } from "lib";`, `import { s } from "sync";`, `import { n } from "native";`, `export const fn = ${FN};`].join("\n");
    const tree: Record<string, string> = {
      // A monorepo's package: its sources under --conditions=development, else what it built.
      "packages/lib/package.json": `{ "name": "lib", "type": "module", "exports": { ".": { "development": "./src/index.ts", "default": "./dist/index.js" } } }\n`,
      "packages/lib/src/index.ts": `export const which: string = "src";\n`,
      "packages/lib/dist/index.js": `export const which = "dist";\n`,
      "packages/sync/package.json": `{ "name": "sync", "exports": { ".": { "module-sync": "./sync.mjs", "import": "./import.mjs", "require": "./require.cjs" } } }\n`,
      "packages/sync/sync.mjs": `export const s = "sync";\n`,
      "packages/sync/import.mjs": `export const s = "import";\n`,
      "packages/sync/require.cjs": `exports.s = "require";\n`,
      "packages/native/package.json": `{ "name": "native", "type": "module", "exports": { "node-addons": "./addons.js", "default": "./plain.js" } }\n`,
      "packages/native/addons.js": `export const n = "addons";\n`,
      "packages/native/plain.js": `export const n = "plain";\n`,
      "app/package.json": `{ "name": "app", "type": "module" }\n`,
      "app/flow.ts": imports,
      "app/where.mjs": `export const where = (name) => import.meta.resolve(name);\n`,
      "cjsapp/package.json": `{ "name": "cjsapp" }\n`,
      "cjsapp/flow.ts": imports,
    };
    for (const [name, text] of Object.entries(tree)) {
      await mkdir(join(root, name, ".."), { recursive: true });
      await writeFile(join(root, name), text);
    }
    for (const app of ["app", "cjsapp"]) {
      await mkdir(join(root, app, "node_modules"));
      for (const name of ["lib", "sync", "native"]) await symlink(`../../packages/${name}`, join(root, app, "node_modules", name));
    }
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /**
   * In a Node started with `args` and `NODE_OPTIONS`: the keys of both apps' task, then again
   * after an edit of lib's src/, then after an edit of its dist/ (each restored after); and the
   * files Node itself loads there (import from the ES module app, require from the CommonJS one).
   */
  function keysUnder(args: string[], nodeOptions?: string) {
    const code = `
      import { writeFileSync } from "node:fs";
      import { createRequire } from "node:module";
      import { fileURLToPath, pathToFileURL } from "node:url";
      import { RunScope } from "@cairn/core";
      import { functionDependencies } from ${JSON.stringify(join(import.meta.dirname, "code-deps.ts"))};
      const root = ${JSON.stringify(root)};
      const keys = async () => ({
        app: await functionDependencies(root + "/app/flow.ts", ${JSON.stringify(FN)}, new RunScope()),
        cjsapp: await functionDependencies(root + "/cjsapp/flow.ts", ${JSON.stringify(FN)}, new RunScope()),
      });
      const edit = (file, text) => writeFileSync(root + "/packages/lib/" + file, text);
      const before = await keys();
      edit("src/index.ts", 'export const which: string = "src, edited";\\n');
      const srcEdited = await keys();
      edit("dist/index.js", 'export const which = "dist, edited";\\n');
      const distEdited = await keys();
      edit("src/index.ts", 'export const which: string = "src";\\n');
      edit("dist/index.js", 'export const which = "dist";\\n');
      const { where } = await import(pathToFileURL(root + "/app/where.mjs").href);
      const required = createRequire(root + "/cjsapp/flow.ts");
      const node = {
        app: ["lib", "sync", "native"].map((name) => fileURLToPath(where(name))),
        cjsapp: ["lib", "sync", "native"].map((name) => required.resolve(name)),
      };
      console.log(JSON.stringify({ before, srcEdited, distEdited, node }));
    `;
    const child = spawnSync(process.execPath, [...args, "--import", "tsx", "--input-type=module", "-e", code], {
      cwd: import.meta.dirname,
      encoding: "utf8",
      env: { ...process.env, NODE_OPTIONS: nodeOptions },
    });
    expect(child.stderr).toBe("");
    type Keys = Record<"app" | "cjsapp", Record<string, string>>;
    return JSON.parse(child.stdout) as { before: Keys; srcEdited: Keys; distEdited: Keys; node: Record<"app" | "cjsapp", string[]> };
  }
  const SRC = "../packages/lib/src/index.ts";
  const DIST = "../packages/lib/dist/index.js";

  it("with --conditions=development the key follows lib's src/ (an edit there changes it, one of dist/ does not), as Node loads src/", () => {
    for (const found of [keysUnder(["--conditions=development"]), keysUnder(["-C", "development"]), keysUnder([], `--no-warnings -C "development"`)]) {
      for (const app of ["app", "cjsapp"] as const) {
        expect(found.node[app][0]).toBe(join(root, "packages/lib/src/index.ts"));
        expect(Object.keys(found.before[app])).toContain(SRC);
        expect(Object.keys(found.before[app])).not.toContain(DIST);
        expect(found.srcEdited[app][SRC]).not.toBe(found.before[app][SRC]);
        expect(found.distEdited[app]).toEqual(found.srcEdited[app]);
      }
    }
  });

  it("without it the key follows lib's dist/ (an edit of src/ changes nothing, one of dist/ does), as Node loads dist/", () => {
    const found = keysUnder([]);
    for (const app of ["app", "cjsapp"] as const) {
      expect(found.node[app][0]).toBe(join(root, "packages/lib/dist/index.js"));
      expect(Object.keys(found.before[app])).toContain(DIST);
      expect(Object.keys(found.before[app])).not.toContain(SRC);
      expect(found.srcEdited[app]).toEqual(found.before[app]);
      expect(found.distEdited[app][DIST]).not.toBe(found.srcEdited[app][DIST]);
    }
  });

  it("names the very files Node loads: module-sync (this Node can require() an ES module) and node-addons match, from an ES module and a CommonJS one; not node-addons with --no-addons", () => {
    for (const [args, native] of [[[], "addons.js"], [["--no-addons"], "plain.js"]] as const) {
      const found = keysUnder([...args]);
      for (const app of ["app", "cjsapp"] as const) {
        const named = found.node[app].map((file) => relative(join(root, app), file)).sort();
        expect(Object.keys(found.before[app]).sort()).toEqual(named);
        expect(named).toContain(`../packages/native/${native}`);
        if (process.features.require_module) expect(named).toContain("../packages/sync/sync.mjs");
      }
    }
  });
});

/** A uid with no passwd entry (a container's `docker run --user 54321`), when this test can switch to one: root, with util-linux's setpriv. */
const uidWithoutPasswd = ((): number | undefined => {
  if (process.getuid?.() !== 0 || spawnSync("setpriv", ["--version"]).status !== 0) return undefined;
  for (let uid = 54321; uid < 54400; uid++) if (spawnSync("getent", ["passwd", String(uid)]).status === 2) return uid;
  return undefined;
})();

describe("a package of the project: a workspace package, a file: or link: dependency (its real folder outside node_modules)", () => {
  /** A workspace laid out as npm (hoisted links in the root's node_modules) and pnpm (links in the package's own) make it. */
  async function workspace(): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), "cairn-workspace-"));
    const tree: Record<string, string> = {
      "package.json": `{ "private": true, "workspaces": ["packages/*"] }\n`,
      "packages/tslib/package.json": `{ "name": "tslib", "type": "module", "exports": "./src/index.ts" }\n`,
      "packages/tslib/src/index.ts": `export { triple } from "./triple.ts";\n`,
      "packages/tslib/src/triple.ts": `export const triple = (x: number): number => 3 * x;\n`,
      // pnpm's workspace: link, with conditional exports and a subpath
      "packages/shapes/package.json": `{ "name": "@acme/shapes", "type": "module", "exports": { ".": { "types": "./src/index.d.ts", "import": "./src/index.ts", "require": "./dist/index.cjs" }, "./units/*": "./src/units/*.ts" } }\n`,
      "packages/shapes/src/index.ts": `export const square = (x: number): number => x * x;\n`,
      "packages/shapes/src/units/cm.ts": `export const cm = 100;\n`,
      // registry packages: pnpm's store (a link into node_modules/.pnpm) and npm's plain folder
      "node_modules/.pnpm/stored@1.0.0/node_modules/stored/package.json": `{ "name": "stored", "version": "1.0.0", "exports": "./index.js" }\n`,
      "node_modules/.pnpm/stored@1.0.0/node_modules/stored/index.js": `export const s = 1;\n`,
      "node_modules/plain/package.json": `{ "name": "plain", "version": "2.1.0", "main": "index.js" }\n`,
      "node_modules/plain/index.js": `export const p = 1;\n`,
      "packages/flows/package.json": `{ "name": "flows", "type": "module" }\n`,
      "packages/flows/flow.ts": [
        `import { triple } from "tslib";`,
        `import { square } from "@acme/shapes";`,
        `import { cm } from "@acme/shapes/units/cm";`,
        `import { s } from "stored";`,
        `import { p } from "plain";`,
        `export const fn = () => ({ v: triple(5) + square(2) + cm + s + p });`,
      ].join("\n"),
    };
    for (const [name, text] of Object.entries(tree)) {
      await mkdir(join(root, name, ".."), { recursive: true });
      await writeFile(join(root, name), text);
    }
    await symlink("../packages/tslib", join(root, "node_modules/tslib")); // as npm links a workspace package
    await symlink(".pnpm/stored@1.0.0/node_modules/stored", join(root, "node_modules/stored"));
    await mkdir(join(root, "packages/flows/node_modules/@acme"), { recursive: true });
    await symlink("../../../shapes", join(root, "packages/flows/node_modules/@acme/shapes")); // as pnpm links it
    return root;
  }
  const FN = "() => ({ v: triple(5) + square(2) + cm + s + p })";

  it("follows it as the project's own files: editing it changes the task's code key; a registry package counts by its version, not followed", async () => {
    const root = await workspace();
    try {
      const flow = join(root, "packages/flows/flow.ts");
      const before = await functionDependencies(flow, FN, newRun());
      expect(Object.keys(before).sort()).toEqual(["../shapes/src/index.ts", "../shapes/src/units/cm.ts", "../tslib/src/index.ts", "../tslib/src/triple.ts", "package plain", "package stored"]);
      expect([before["package plain"], before["package stored"]]).toEqual(["2.1.0", "1.0.0"]);
      await writeFile(join(root, "packages/tslib/src/triple.ts"), `export const triple = (x: number): number => 4 * x;\n`);
      const after = await functionDependencies(flow, FN, newRun());
      expect(after["../tslib/src/triple.ts"]).not.toBe(before["../tslib/src/triple.ts"]);
      expect({ ...after, "../tslib/src/triple.ts": "" }).toEqual({ ...before, "../tslib/src/triple.ts": "" });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("a package installed from a registry: its version counts, its files are not followed", () => {
  let root: string;
  async function tree(files: Record<string, string>): Promise<void> {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(root, name, ".."), { recursive: true });
      await writeFile(join(root, name), text);
    }
  }
  const minidep = (version: string, factor: number) => ({
    "node_modules/minidep/package.json": `{ "name": "minidep", "version": "${version}", "type": "module", "main": "index.js" }\n`,
    "node_modules/minidep/index.js": `import { inner } from "innerdep";\nexport const scale = (x) => x * ${factor} + inner;\n`,
  });
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "cairn-registry-package-"));
    await tree({
      ...minidep("1.0.0", 2),
      "node_modules/innerdep/package.json": `{ "name": "innerdep", "version": "0.1.0", "type": "module", "main": "index.js" }\n`,
      "node_modules/innerdep/index.js": `export const inner = 0;\n`,
      "node_modules/@scope/units/package.json": `{ "name": "@scope/units", "version": "3.0.0", "exports": { "./cm": "./cm.js" } }\n`,
      "node_modules/@scope/units/cm.js": `export const cm = 100;\n`,
      "lib/shape.ts": `import { cm } from "@scope/units/cm";\nexport const size = (n: number): number => n * cm;\n`,
      "flow.ts": [
        `import { readFile } from "node:fs/promises";`,
        `import { task } from "cairn-dag";`,
        `import { scale } from "minidep";`,
        `import { size } from "./lib/shape.ts";`,
        `export const base = task("base").run(() => ({ v: scale(21) }));`,
        `export const sized = task("sized").run(() => ({ v: size(2) }));`,
        `export const plain = task("plain").run(async () => ({ v: (await readFile("x")).length }));`,
      ].join("\n"),
    });
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const depsOf = (fn: string) => functionDependencies(join(root, "flow.ts"), fn, newRun());

  it("records name -> version of a package the function imports, not what that package imports; a bump changes it", async () => {
    expect(await depsOf("() => ({ v: scale(21) })")).toEqual({ "package minidep": "1.0.0", [ENV_READ_ENTRY]: { names: [], unnamed: false } });
    await tree(minidep("2.0.0", 3));
    expect((await depsOf("() => ({ v: scale(21) })"))["package minidep"]).toBe("2.0.0");
  });

  it("records a package a module of the project imports (a subpath names its package); a builtin or an unused import none", async () => {
    const sized = await depsOf("() => ({ v: size(2) })");
    expect(Object.keys(sized).sort()).toEqual(["lib/shape.ts", "package @scope/units"]);
    expect(sized["package @scope/units"]).toBe("3.0.0");
    expect(Object.keys(await depsOf(`async () => ({ v: (await readFile("x")).length })`))).toEqual([]);
  });
});

describe("a package of the project as Node resolves it: pnpm's file: copy, a CommonJS importer, pattern order, a self-reference, imports", () => {
  let root: string;
  async function tree(files: Record<string, string>): Promise<void> {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(root, name, ".."), { recursive: true });
      await writeFile(join(root, name), text);
    }
  }
  const keysOf = async (flow: string, fn: string) => Object.keys(await functionDependencies(join(root, flow), fn, newRun())).sort();
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "cairn-package-resolve-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("follows pnpm's copy of a file: dependency (hard links in node_modules/.pnpm/lib@file+..+lib): an in-place edit of ../lib changes the key", async () => {
    const copy = "app/node_modules/.pnpm/lib@file+..+lib/node_modules/lib";
    await tree({
      "lib/package.json": `{ "name": "lib", "version": "1.0.0", "main": "index.js" }\n`,
      "lib/index.js": `export const a = 1;\n`,
      "app/package.json": `{ "name": "app", "type": "module", "dependencies": { "lib": "file:../lib" } }\n`,
      "app/flow.ts": `import { a } from "lib";\nexport const fn = () => ({ v: a });\n`,
    });
    await mkdir(join(root, copy), { recursive: true });
    for (const name of ["package.json", "index.js"]) await link(join(root, "lib", name), join(root, copy, name)); // as pnpm 10 installs it
    await symlink(".pnpm/lib@file+..+lib/node_modules/lib", join(root, "app/node_modules/lib"));
    const before = await functionDependencies(join(root, "app/flow.ts"), "() => ({ v: a })", newRun());
    expect(Object.keys(before)).toContain("node_modules/.pnpm/lib@file+..+lib/node_modules/lib/index.js");
    await writeFile(join(root, "lib/index.js"), `export const a = 2;\n`); // in place: the copy is the same file
    const after = await functionDependencies(join(root, "app/flow.ts"), "() => ({ v: a })", newRun());
    expect(after).not.toEqual(before);
  });

  it("a CommonJS flow (no \"type\": \"module\") follows the package's require target, which tsx runs; an ES module flow its import target", async () => {
    await tree({
      "dual/package.json": `{ "name": "dual", "exports": { ".": { "import": "./esm/index.mjs", "require": "./cjs/index.cjs" } } }\n`,
      "dual/esm/index.mjs": `export const d = 1;\n`,
      "dual/cjs/index.cjs": `exports.d = 1;\n`,
      "cjsapp/package.json": `{ "name": "cjsapp" }\n`,
      "cjsapp/flow.ts": `import { d } from "dual";\nexport const fn = () => ({ v: d });\n`,
      "esmapp/package.json": `{ "name": "esmapp", "type": "module" }\n`,
      "esmapp/flow.ts": `import { d } from "dual";\nexport const fn = () => ({ v: d });\n`,
    });
    for (const app of ["cjsapp", "esmapp"]) {
      await mkdir(join(root, app, "node_modules"), { recursive: true });
      await symlink("../../dual", join(root, app, "node_modules/dual"));
    }
    expect(await keysOf("cjsapp/flow.ts", "() => ({ v: d })")).toEqual(["../dual/cjs/index.cjs"]);
    expect(await keysOf("esmapp/flow.ts", "() => ({ v: d })")).toEqual(["../dual/esm/index.mjs"]);
  });

  it("picks the exports pattern Node picks (the longest before the *), whatever the order; follows a package naming itself, and its imports (#util)", async () => {
    await tree({
      "pat/package.json": `{ "name": "pat", "type": "module", "exports": { "./*": "./src/*.js", "./features/*": "./src/features/*/index.js" } }\n`,
      "pat/src/features/a/index.js": `export const fa = 1;\n`,
      "self/package.json": `{ "name": "@acme/self", "type": "module", "exports": { "./util": "./src/util.ts" }, "imports": { "#internal/*": "./src/internal/*.ts", "#pat": "pat/features/a" } }\n`,
      "self/src/util.ts": `export const u = 1;\n`,
      "self/src/internal/deep.ts": `export const deep = 1;\n`,
      "self/flow.ts": [
        `import { fa } from "pat/features/a";`,
        `import { u } from "@acme/self/util";`,
        `import { deep } from "#internal/deep";`,
        `import { fa as again } from "#pat";`,
        `export const fn = () => ({ v: fa + u + deep + again });`,
      ].join("\n"),
    });
    await mkdir(join(root, "self/node_modules"), { recursive: true });
    await symlink("../../pat", join(root, "self/node_modules/pat"));
    expect(await keysOf("self/flow.ts", "() => ({ v: fa + u + deep + again })")).toEqual(["../pat/src/features/a/index.js", "src/internal/deep.ts", "src/util.ts"]);
  });
});

describe.skipIf(uidWithoutPasswd === undefined)("under a uid with no passwd entry", () => {
  it("works out the same dependencies (the same keys) as under a uid that has one, with its own private temp folder", async () => {
    const uid = uidWithoutPasswd!;
    const code = `
      import { RunScope } from "@cairn/core";
      import { privateTempDir } from "@cairn/cache";
      import { functionDependencies } from ${JSON.stringify(join(import.meta.dirname, "code-deps.ts"))};
      const found = await functionDependencies(${JSON.stringify(join(dir, "flow.ts"))}, "({ n }) => ({ n: bump(n) })", new RunScope());
      console.log(JSON.stringify({ found, temp: privateTempDir("t") }));
    `;
    await chmod(dir, 0o755); // mkdtemp made it for root alone
    const child = spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", process.execPath, "--import", "tsx", "--input-type=module", "-e", code], {
      cwd: import.meta.dirname,
      encoding: "utf8",
      env: { ...process.env, HOME: undefined },
    });
    await rm(join(tmpdir(), `cairn-${uid}`), { recursive: true, force: true });
    await rm(join(tmpdir(), `tsx-${uid}`), { recursive: true, force: true });
    expect(child.stderr).toBe("");
    const { found, temp } = JSON.parse(child.stdout) as { found: Record<string, string>; temp: string };
    expect(temp).toBe(join(tmpdir(), `cairn-${uid}`, "t"));
    // As JSON has it: the record's names (its symbols stay in the process).
    expect(found).toEqual(Object.fromEntries(Object.entries(await deps("flow.ts", "({ n }) => ({ n: bump(n) })"))));
    expect(Object.keys(found).sort()).toEqual(["flow.ts#OFFSET,UNUSED", "flow.ts#bump"]);
  });
});
