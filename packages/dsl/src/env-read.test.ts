import { parse } from "acorn";
import { describe, expect, it } from "vitest";
import { envReadBy, envReadsIn, processNamesOf, type SyntaxNode } from "./env-read.ts";

/** The top-level statements of `module`. */
const bodyOf = (module: string) => (parse(module, { ecmaVersion: "latest", sourceType: "module" }) as unknown as { body: SyntaxNode[] }).body;
/** What the function `fnText` reads, declared in `module`. */
const readsIn = (module: string, fnText: string) => envReadsIn(parse(`(${fnText})`, { ecmaVersion: "latest" }) as unknown as SyntaxNode, processNamesOf(bodyOf(module)));

describe("envReadBy", () => {
  it("finds the variables a function reads from process.env by a literal name", () => {
    const fn = (n: number) => n * Number(process.env.SCALE ?? "1") + Number(process.env["OFFSET"]) + Number(process.env?.["SHIFT"]) + Number(process.env?.TILT);
    expect(envReadBy(fn.toString())).toEqual({ names: ["OFFSET", "SCALE", "SHIFT", "TILT"], unnamed: false });
  });

  it("does not follow a computed name or a destructuring, but says the function reads by a name its text does not show", () => {
    const name = "SCALE";
    expect(envReadBy(((n: number) => n * Number(process.env[name])).toString())).toEqual({ names: [], unnamed: true });
    expect(envReadBy((() => ({ ...process.env })).toString())).toEqual({ names: [], unnamed: true });
    expect(
      envReadBy(
        ((n: number) => {
          const { SCALE } = process.env;
          return n * Number(SCALE) + Number(process.env.OFFSET);
        }).toString(),
      ),
    ).toEqual({ names: ["OFFSET"], unnamed: true });
  });

  it("finds nothing where none is read", () => {
    expect(envReadBy(((n: number) => ({ env: n })).toString())).toEqual({ names: [], unnamed: false });
    expect(envReadBy(((n: number) => ({ environment: n, at: process.cwd() })).toString())).toEqual({ names: [], unnamed: false });
  });
});

describe("envReadsIn", () => {
  const imports = [
    `import { env, argv } from "node:process";`,
    `import { env as penv } from "process";`,
    `import * as proc from "node:process";`,
    `import p2 from "process";`,
    `export const aliased = process.env;`,
    `const { env: fromProcess, cwd } = proc;`,
  ].join("\n");

  it("knows the names a module binds to process or process.env, and only those", () => {
    expect(processNamesOf(bodyOf(imports))).toEqual({ process: ["import_node_process", "import_process", "proc", "p2"], env: ["env", "penv", "aliased", "fromProcess"] });
    expect(processNamesOf(bodyOf(`import { env } from "./config.ts";\nconst e = config.env;`))).toBeUndefined();
  });

  it("finds each variable read by a literal name through them, or through an alias of the function's own", () => {
    const fn = `() => [env.R3A, penv["R3A2"], proc.env.R3B, p2.env?.R3C, aliased.R3SCALE, fromProcess.R3D, argv[1], cwd(), (() => { const e = process.env; const { env: f } = globalThis.process; return e.R3LOCAL + f.R3F; })()]`;
    expect(readsIn(imports, fn)).toEqual({ names: ["R3A", "R3A2", "R3B", "R3C", "R3D", "R3F", "R3LOCAL", "R3SCALE"], unnamed: false });
    // As esbuild writes them compiling the module to CommonJS (tsx outside a "type": "module" package).
    expect(readsIn(imports, `() => [import_node_process.env.R3A, import_process.env.R3A2]`)).toEqual({ names: ["R3A", "R3A2"], unnamed: false });
  });

  it("says it reads by names it does not show where the names cannot be known: a computed one, spread whole, handed to a helper, destructured", () => {
    for (const fn of [`(name) => env[name]`, `() => ({ ...penv })`, `() => helper(proc.env)`, `() => { const { R3A } = aliased; return R3A; }`, `() => helper(proc)`, `() => ({ env })`]) {
      expect(readsIn(imports, fn), fn).toEqual({ names: [], unnamed: true });
    }
  });

  it("does not take a name of another module, a property or a key for process.env", () => {
    const config = `import { env } from "./config.ts";\nconst proc = { env: {} };`;
    expect(readsIn(config, `() => [env.R3A, proc.env.R3B]`)).toEqual({ names: [], unnamed: false });
    expect(readsIn(imports, `(cfg) => [cfg.env, { env: 1 }, cfg.proc]`)).toEqual({ names: [], unnamed: false });
  });
});
