/**
 * A function of a module that tsc compiled counts as its TypeScript source, when tsc wrote a
 * source map and the sources are as it compiled them: the same place, text and code
 * dependencies as tsx gives from the source. Compiled by the workspace's tsc, run by plain node
 * and by tsx, as real processes.
 */
import { execFileSync } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { RunScope } from "@cairn/core";
import { asWritten, functionDependencies } from "./code-deps.ts";

const repo = resolve(import.meta.dirname, "../../..");
let dir: string;

/** What `declare(fn)` saw of a function: where it was declared (the caller's stack frame) and its text. */
interface Declared {
  place: { file: string; line: number; column: number };
  fnText: string;
}

const FLOW = [
  `import { scale } from "./lib/shape.ts";`,
  `import { declare } from "./declare.ts";`,
  ``,
  `type In = { n: number };`,
  `/** A helper. */`,
  `function bump(n: number): number {`,
  `  return n + 1;`,
  `}`,
  ``,
  `export const triple = declare(async ({ n }: In) => {`,
  `  const m: number = bump(n);`,
  `  return { n: scale(m) };`,
  `});`,
  `export const plain = declare(({ n }: In) => ({ n }));`,
  ``,
].join("\n");

const DECLARE = [
  `export function declare(fn: (...args: any[]) => unknown) {`,
  `  const frame = /\\((.*):(\\d+):(\\d+)\\)$|at (.*):(\\d+):(\\d+)$/.exec(new Error().stack!.split("\\n")[2]!.trim())!;`,
  `  const [file, line, column] = frame[1] ? [frame[1], frame[2], frame[3]] : [frame[4], frame[5], frame[6]];`,
  `  return { place: { file: file!.replace("file://", ""), line: Number(line), column: Number(column) }, fnText: fn.toString() };`,
  `}`,
  ``,
].join("\n");

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    skipLibCheck: true,
    verbatimModuleSyntax: true,
    rewriteRelativeImportExtensions: true,
    types: [],
    outDir: "dist",
    sourceMap: true,
  },
  include: ["*.ts", "lib/*.ts"],
};

async function write(tree: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(tree)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), text);
  }
}

function tsc(...args: string[]): void {
  execFileSync(join(repo, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json"), ...args], { encoding: "utf8" });
}

/** The functions `entry` declares, as a real process run by `runner` (node, or tsx) sees them. */
function declared(runner: string, entry: string, flags: string[] = []): { triple: Declared; plain: Declared } {
  const code = `const m = await import(${JSON.stringify(join(dir, entry))}); console.log(JSON.stringify({ triple: m.triple, plain: m.plain }));`;
  return JSON.parse(execFileSync(runner, [...flags, "--input-type=module", "-e", code], { cwd: dir, encoding: "utf8" }));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-compiled-"));
  await write({
    "package.json": `{ "type": "module" }\n`,
    "tsconfig.json": JSON.stringify(TSCONFIG),
    "lib/shape.ts": `export const scale = (n: number): number => n * 3;\n`,
    // The caller's frame, as the DSL's declaringModule() takes it: file, line and column of the call.
    "declare.ts": DECLARE,
    "flow.ts": FLOW,
  });
  tsc();
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe("a function of a module compiled by tsc", () => {
  it("counts as its TypeScript source: the place, the text and the code dependencies tsx gives", async () => {
    const compiled = declared(process.execPath, "dist/flow.js");
    const source = declared(join(repo, "node_modules/.bin/tsx"), "flow.ts");
    expect(compiled.triple.place.file).toBe(join(dir, "dist/flow.js"));
    expect(source.triple.place.file).toBe(join(dir, "flow.ts"));
    expect(compiled.triple.fnText).not.toBe(source.triple.fnText); // tsc's text, not esbuild's
    for (const name of ["triple", "plain"] as const) {
      const written = await asWritten(compiled[name].place, compiled[name].fnText, new RunScope());
      expect(written.place.file).toBe(join(dir, "flow.ts"));
      expect(written.place.line).toBe(source[name].place.line);
      expect(written.fnText).toBe(source[name].fnText);
      const fromSource = await functionDependencies(source[name].place.file, source[name].fnText, new RunScope(), source[name].place);
      expect(await functionDependencies(written.place.file, written.fnText, new RunScope(), written.place)).toEqual(fromSource);
    }
    expect(Object.keys(await functionDependencies(join(dir, "flow.ts"), source.triple.fnText, new RunScope(), source.triple.place)).sort()).toEqual([
      "declare.ts",
      "flow.ts#bump",
      "flow.ts#triple",
      "lib/shape.ts",
    ]);
  });

  it("also when Node showed the frame at the source (--enable-source-maps): from the place in the JavaScript beside it", async () => {
    const compiled = declared(process.execPath, "dist/flow.js");
    const shown = declared(process.execPath, "dist/flow.js", ["--enable-source-maps"]);
    expect(shown.triple.place.file).toBe(join(dir, "flow.ts"));
    const written = await asWritten({ ...shown.triple.place, generated: compiled.triple.place }, compiled.triple.fnText, new RunScope());
    expect(written).toEqual(await asWritten(compiled.triple.place, compiled.triple.fnText, new RunScope()));
    expect(written.place.file).toBe(join(dir, "flow.ts"));
  });

  it("also with the source map inline (inlineSourceMap)", async () => {
    tsc("--sourceMap", "false", "--inlineSourceMap", "--outDir", join(dir, "inline"));
    const compiled = declared(process.execPath, "inline/flow.js");
    const written = await asWritten(compiled.triple.place, compiled.triple.fnText, new RunScope());
    expect(written.place.file).toBe(join(dir, "flow.ts"));
    expect(written.fnText).toBe(declared(join(repo, "node_modules/.bin/tsx"), "flow.ts").triple.fnText);
  });

  it("counts as the JavaScript it is without a source map, or when its sources are not there", async () => {
    tsc("--sourceMap", "false", "--outDir", join(dir, "nomap"));
    const compiled = declared(process.execPath, "nomap/flow.js");
    expect(await asWritten(compiled.triple.place, compiled.triple.fnText, new RunScope())).toEqual(compiled.triple);

    await cp(join(dir, "dist"), join(dir, "moved"), { recursive: true });
    const moved = declared(process.execPath, "moved/flow.js");
    const map = join(dir, "moved/flow.js.map");
    await writeFile(map, (await readFile(map, "utf8")).replace("../flow.ts", "../gone/flow.ts"));
    expect(await asWritten(moved.triple.place, moved.triple.fnText, new RunScope())).toEqual(moved.triple);
  });

  it("counts as the JavaScript it is when a source was edited after tsc compiled it, and says why once", async () => {
    await cp(join(dir, "dist"), join(dir, "stale"), { recursive: true, preserveTimestamps: false });
    const compiled = declared(process.execPath, "stale/flow.js");
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    try {
      // An edit of a module it imports, with an mtime older than the compiled file (as `cp -p` or `git checkout` of an older file leaves).
      await write({ "lib/shape.ts": `export const scale = (n: number): number => n * 4;\n` });
      await utimes(join(dir, "lib/shape.ts"), new Date(2001, 0, 1), new Date(2001, 0, 1));
      expect(await asWritten(compiled.triple.place, compiled.triple.fnText, new RunScope())).toEqual(compiled.triple);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toContain("lib/shape.ts and");
      expect(warn.mock.calls[0]![1]).toBe("CairnCompiledSourceWarning");
      // A comment or a type is no edit of the code.
      await write({ "lib/shape.ts": `// the factor\nexport const scale = (n: number /* any */): number => n * 3;\n` });
      expect((await asWritten(compiled.triple.place, compiled.triple.fnText, new RunScope())).place.file).toBe(join(dir, "flow.ts"));
      // An edit of the task's own module, newer than the compiled file.
      await write({ "flow.ts": FLOW.replace("n + 1", "n + 2") });
      expect(await asWritten(compiled.plain.place, compiled.plain.fnText, new RunScope())).toEqual(compiled.plain);
      expect(await asWritten(compiled.triple.place, compiled.triple.fnText, new RunScope())).toEqual(compiled.triple);
      // Node showing the frame at the edited source (--enable-source-maps): the JavaScript that ran counts, not the source.
      const shown = { ...compiled.triple.place, file: join(dir, "flow.ts"), generated: compiled.triple.place };
      expect(await asWritten(shown, compiled.triple.fnText, new RunScope())).toEqual(compiled.triple);
      // Once per compiled module and process.
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      await write({ "flow.ts": FLOW, "lib/shape.ts": `export const scale = (n: number): number => n * 3;\n` });
    }
  });
});

/** A project of its own (`tree`, with declare.ts), compiled by the workspace's tsc from its tsconfig.json; with `typescript` installed in it, as a devDependency. */
async function compiledProject(tree: Record<string, string>, { typescript = false, links = {} as Record<string, string> } = {}): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "cairn-compiled-"));
  projects.push(root);
  if (typescript) {
    await mkdir(join(root, "node_modules"));
    await symlink(join(repo, "node_modules/typescript"), join(root, "node_modules/typescript"));
  }
  for (const [link, target] of Object.entries(links)) {
    await mkdir(join(root, link, ".."), { recursive: true });
    await symlink(target, join(root, link));
  }
  for (const [name, text] of Object.entries({ "package.json": `{ "type": "module" }\n`, "declare.ts": DECLARE, ...tree })) {
    await mkdir(join(root, name, ".."), { recursive: true });
    await writeFile(join(root, name), text);
  }
  execFileSync(join(repo, "node_modules/.bin/tsc"), ["-p", join(root, "tsconfig.json")], { encoding: "utf8" });
  return root;
}
const projects: string[] = [];
afterAll(async () => {
  for (const root of projects) await rm(root, { recursive: true, force: true });
});

/** What the task `t` of flow.ts counts as in the app tsc compiled, beside what tsx gives from the source, and the warnings said. */
async function compiledAndSource(root: string) {
  const load = (runner: string, entry: string): Declared => {
    const code = `const m = await import(${JSON.stringify(join(root, entry))}); console.log(JSON.stringify(m.t ?? m.default.t));`; // a CommonJS module's exports: m.default
    return JSON.parse(execFileSync(runner, ["--input-type=module", "-e", code], { cwd: root, encoding: "utf8" }));
  };
  const compiled = load(process.execPath, "dist/flow.js");
  const source = load(join(repo, "node_modules/.bin/tsx"), "flow.ts");
  const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
  const written = await asWritten(compiled.place, compiled.fnText, new RunScope());
  const warnings = warn.mock.calls.map((call) => String(call[0]));
  warn.mockRestore();
  return {
    written: { ...written, deps: await functionDependencies(written.place.file, written.fnText, new RunScope(), written.place) },
    source: { ...source, deps: await functionDependencies(source.place.file, source.fnText, new RunScope(), source.place) },
    warnings,
  };
}

const flowWith = (top: string, result: string) => `import { declare } from "./declare.ts";\n${top}\nexport const t = declare(async ({ n }: { n: number }) => ({ n: ${result} }));\n`;

describe("an app tsc compiled from a tsconfig of another shape", () => {
  it("shares entries when its tsconfig extends a base, of the repo or a package, that sets what esbuild reads (verbatimModuleSyntax: an import kept)", async () => {
    const { outDir: _, ...base } = TSCONFIG.compilerOptions;
    const bases = {
      file: { "tsconfig.base.json": JSON.stringify({ compilerOptions: base }) },
      package: {
        "node_modules/@acme/tsconfig/package.json": `{ "name": "@acme/tsconfig", "tsconfig": "node.json" }\n`,
        "node_modules/@acme/tsconfig/node.json": JSON.stringify({ compilerOptions: base }),
      },
    };
    for (const [kind, extended] of [["file", "./tsconfig.base"], ["package", "@acme/tsconfig"]] as const) {
      const root = await compiledProject({
        ...bases[kind],
        "tsconfig.json": `{\n  // the project's own\n  "extends": "${extended}",\n  "compilerOptions": { "outDir": "dist" },\n  "include": ["*.ts", "lib/*.ts"],\n}\n`,
        "lib/setup.ts": `export const unit = 1;\n(globalThis as any).ready = true;\n`,
        "lib/unit.ts": `export const half = 0.5;\n`,
        "flow.ts": flowWith(`import { unit } from "./lib/setup.ts";\nimport { half } from "./lib/unit.ts";`, "n + half"),
      });
      const { written, source, warnings } = await compiledAndSource(root);
      expect(warnings, kind).toEqual([]);
      expect(written, kind).toEqual(source);
      expect(Object.keys(source.deps).sort()).toEqual(["declare.ts", "flow.ts#t", "lib/unit.ts"]);
    }
  });
});

describe("an app that imports a workspace package", () => {
  it("shares entries with the sources: the package's files are the same for both, and count in both keys", async () => {
    const root = await compiledProject(
      {
        "tsconfig.json": JSON.stringify(TSCONFIG),
        "packages/tslib/package.json": `{ "name": "tslib", "type": "module", "exports": "./index.js" }\n`,
        "packages/tslib/index.js": `export const triple = (x) => 3 * x;\n`,
        "packages/tslib/index.d.ts": `export declare const triple: (x: number) => number;\n`,
        "flow.ts": flowWith(`import { triple } from "tslib";`, "triple(n)"),
      },
      { links: { "node_modules/tslib": "../packages/tslib" } }, // as npm links a workspace package
    );
    const { written, source, warnings } = await compiledAndSource(root);
    expect(warnings).toEqual([]);
    expect(written).toEqual(source);
    expect(Object.keys(source.deps)).toContain("packages/tslib/index.js");
  });
});

describe("an app with code tsc writes otherwise than esbuild", () => {
  const tsconfig = JSON.stringify(TSCONFIG);
  const cases: Record<string, { top: string; result: string; helper?: string }> = {
    // tsx writes a member of the module's own enum as its value (Color.Green as 2): the function's text differs too, and holds the value.
    enum: { top: `enum Color { Red = 1, Green }`, result: "n + Color.Green" },
    namespace: { top: `namespace Util { export const k = 2; export function f(n: number) { return n * k; } }`, result: "Util.f(n)", helper: "flow.ts#Util" },
    "parameter properties": { top: `class Box { constructor(public readonly v: number, private w = 2) {} get total() { return this.v * this.w; } }`, result: "new Box(n).total", helper: "flow.ts#Box" },
    decorators: { top: `function logged<T>(v: T, _c: ClassMethodDecoratorContext): T { return v; }\nclass K { @logged f(n: number) { return n; } }`, result: "new K().f(n)", helper: "flow.ts#K" },
  };

  it("shares entries with the sources when the project's TypeScript compiles them to that code (an enum, a namespace, parameter properties, decorators)", async () => {
    for (const [name, { top, result, helper }] of Object.entries(cases)) {
      const root = await compiledProject({ "tsconfig.json": tsconfig, "flow.ts": flowWith(top, result) }, { typescript: true });
      const { written, source, warnings } = await compiledAndSource(root);
      expect(warnings, name).toEqual([]);
      expect(written, name).toEqual(source);
      if (helper) expect(Object.keys(source.deps), name).toContain(helper);
    }
  });

  it("also for such code in a module it imports (an enum of lib/)", async () => {
    const root = await compiledProject(
      { "tsconfig.json": tsconfig, "lib/color.ts": `export enum Color { Red = 1 }\n`, "flow.ts": flowWith(`import { Color } from "./lib/color.ts";`, "n + Color.Red") },
      { typescript: true },
    );
    const { written, source, warnings } = await compiledAndSource(root);
    expect(warnings).toEqual([]);
    expect(written).toEqual(source);
  });

  it("counts as the JavaScript it is when TypeScript is not installed beside the sources, and the warning says to install it", async () => {
    const root = await compiledProject({ "tsconfig.json": tsconfig, "flow.ts": flowWith(cases.enum!.top, cases.enum!.result) });
    const { written, warnings } = await compiledAndSource(root);
    expect(written.place.file).toBe(join(root, "dist/flow.js"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`flow.ts and ${join(root, "dist/flow.js")} differ beyond types and comments, and no \`typescript\` package is installed where the sources are`);
    expect(warnings[0]).toContain("install it beside them (a devDependency is enough)");
  });

  it("counts as the JavaScript it is when the installed TypeScript has no API to ask (TypeScript 7), and the warning says so", async () => {
    const root = await compiledProject({
      "tsconfig.json": tsconfig,
      "flow.ts": flowWith(cases.enum!.top, cases.enum!.result),
      // As typescript@7 is: its main entry exports its version alone.
      "node_modules/typescript/package.json": `{ "name": "typescript", "version": "7.0.2", "exports": { ".": "./lib/version.cjs" } }\n`,
      "node_modules/typescript/lib/version.cjs": `module.exports = { version: "7.0.2" };\n`,
    });
    const { written, warnings } = await compiledAndSource(root);
    expect(written.place.file).toBe(join(root, "dist/flow.js"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("differ beyond types and comments, and tsc cannot be asked whether it compiled the one from the other: TypeScript 7's compiler has no JavaScript API Cairn can use");
    expect(warnings[0]).toContain("install TypeScript 5 or 6 where the sources are");
  });

  it("counts as the JavaScript it is when compiled with other options than its tsconfig's: no entry of the sources is taken for it", async () => {
    const root = await compiledProject({ "tsconfig.json": tsconfig, "flow.ts": flowWith(cases.namespace!.top, cases.namespace!.result) }, { typescript: true });
    // The tsconfig changed since (its target lowered): tsc would no longer write what is in dist/.
    await writeFile(join(root, "tsconfig.json"), JSON.stringify({ ...TSCONFIG, compilerOptions: { ...TSCONFIG.compilerOptions, target: "ES2015" } }));
    const { written, warnings } = await compiledAndSource(root);
    expect(written.place.file).toBe(join(root, "dist/flow.js"));
    expect(warnings[0]).toContain("the project's TypeScript does not compile the one into the other with the options of the tsconfig.json nearest to it");
  });
});

describe("an app of a CommonJS project (no \"type\": \"module\"), compiled by tsc with module nodenext", () => {
  it("shares entries with tsx of the sources for a task using an imported name: both read it as CommonJS (`import_promises.readFile`)", async () => {
    const root = await compiledProject({
      "package.json": `{ "name": "app" }\n`,
      // verbatimModuleSyntax forbids import statements in a CommonJS module.
      "tsconfig.json": JSON.stringify({ ...TSCONFIG, compilerOptions: { ...TSCONFIG.compilerOptions, verbatimModuleSyntax: false } }),
      "lib/node.d.ts": `declare module "node:fs/promises" { export function readFile(path: string, encoding: "utf8"): Promise<string>; }\n`,
      "lib/unit.ts": `export const unit = 1;\n`,
      "flow.ts": flowWith(`import { readFile } from "node:fs/promises";\nimport { unit } from "./lib/unit.ts";`, `(await readFile("package.json", "utf8")).length * 0 + n + unit`),
    }, { typescript: true }); // tsc's CommonJS is not esbuild's: compared with what the project's TypeScript emits

    const { written, source, warnings } = await compiledAndSource(root);
    expect(source.fnText).toContain("import_promises.readFile"); // tsx runs the source as CommonJS
    expect(warnings).toEqual([]);
    // The same text and dependencies: the same code fingerprint. (The column of the call differs within its statement: tsc maps `(0, declare_1.declare)(` elsewhere.)
    expect(written.fnText).toBe(source.fnText);
    expect(written.deps).toEqual(source.deps);
    expect([written.place.file, written.place.line]).toEqual([source.place.file, source.place.line]);
    expect(Object.keys(source.deps).sort()).toEqual(["declare.ts", "flow.ts#t", "lib/unit.ts"]);
  });
});
