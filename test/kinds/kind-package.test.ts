/**
 * A task kind shipped as its own package, linked into a project from a folder that has its own
 * node_modules/cairn-dag (as the kind's author develops it, `pnpm add ../kind-pkg`): two copies
 * of Cairn are loaded, the project's and the kind's. Its tasks, called inside the project's
 * build(), join that flow, and its node handles wire as the project's do; a copy of another
 * build is refused naming both. The kind's copy is a copy of the workspace's packages (their
 * links to each other are relative, so they point inside the copy).
 */
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repo, tsxScript } from "../cache/helpers.ts";

let dir: string;
let kindCopy: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-kind-package-"));
  kindCopy = join(dir, "kind-cairn");
  cpSync(join(repo, "packages"), join(kindCopy, "packages"), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => !/[/\\](\.bundle|dist)$/.test(src),
  });
  symlinkSync(join(repo, "node_modules"), join(kindCopy, "node_modules"));

  const kind = join(dir, "kind-pkg");
  mkdirSync(join(kind, "node_modules"), { recursive: true });
  symlinkSync(join(kindCopy, "packages", "cairn"), join(kind, "node_modules", "cairn-dag"));
  writeFileSync(
    join(kind, "package.json"),
    JSON.stringify({ name: "my-sql-kind", version: "1.0.0", type: "module", exports: { ".": "./index.ts" }, peerDependencies: { "cairn-dag": "*" } }),
  );
  writeFileSync(
    join(kind, "index.ts"),
    [
      `import { checkName, configDigest, kindTask, NO_RETRY } from "cairn-dag/kind";`,
      `export function sql(name: string, options: { query: string }) {`,
      `  checkName(name);`,
      `  return kindTask({ definition: { name, kind: "sql", retry: NO_RETRY, cache: {}, env: [],`,
      `    code: configDigest({ query: options.query, kindVersion: "1.0.0" }),`,
      `    run: async () => ({ rows: [options.query, "ran"] }) } });`,
      `}`,
    ].join("\n"),
  );

  const proj = join(dir, "proj");
  mkdirSync(join(proj, "node_modules"), { recursive: true });
  symlinkSync(join(repo, "packages", "cairn"), join(proj, "node_modules", "cairn-dag"));
  symlinkSync(kind, join(proj, "node_modules", "my-sql-kind"));
  writeFileSync(join(proj, "package.json"), JSON.stringify({ name: "proj", type: "module" }));
  writeFileSync(
    join(proj, "main.ts"),
    [
      `import { flow, task } from "cairn-dag";`,
      `import { sql } from "my-sql-kind";`,
      `const count = task("count").input<{ rows: string[] }>().run(({ rows }) => ({ n: rows.length }));`,
      `const whole = task("whole").input<{ all: { rows: string[] } }>().run(({ all }) => ({ first: all.rows[0] }));`,
      `const f = flow("with-kind").build(() => {`,
      `  const q = sql("q", { query: "select 1" })({});`,
      `  return { n: count({ rows: q.rows }).n, first: whole({ all: q }).first };`,
      `});`,
      `try {`,
      `  const run = await f.run({ root: ${JSON.stringify(join(proj, ".cairn"))}, tracker: false });`,
      `  console.log(JSON.stringify(await run.outputs()));`,
      `} catch (error) {`,
      `  console.log(String(error));`,
      `}`,
    ].join("\n"),
  );
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a kind package linked with its own copy of cairn-dag", () => {
  it("adds its tasks to the project's flow, and its whole node handle wires as a value", async () => {
    const ran = await tsxScript(join(dir, "proj", "main.ts"), []).done;
    expect(ran.stderr).toBe("");
    expect(JSON.parse(ran.stdout.trim())).toEqual({ n: 2, first: "select 1" });
  });

  it("is refused when the two copies are of different builds, naming both", async () => {
    writeFileSync(join(kindCopy, "packages", "core", "src", "build.json"), JSON.stringify({ commit: "abc1234" }));
    const ran = await tsxScript(join(dir, "proj", "main.ts"), []).done;
    // build() runs as the module loads, before main.ts's try: the error is the process's.
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain(`Task "q" comes from a copy of Cairn other than the one building flow "with-kind"`);
    expect(ran.stderr).toContain(`Cairn 0.1.0+abc1234 is loaded from ${join(kindCopy, "packages", "dsl", "src")}${sep}`);
    expect(ran.stderr).toContain(`Cairn 0.1.0+workspace from ${join(repo, "packages", "dsl", "src")}${sep}`);
    expect(ran.stderr).toContain("cairn-dag as a peerDependency");
  });
});
