/**
 * What checking a `.codeFiles()` folder walks: never what its digest leaves out (`node_modules/`,
 * `.git/`), in the listings that let a hit skip reading the folder too, nor the run's own state
 * folder when `root` is inside the declared folder, which the run writes while the task runs. The
 * folders this process reads the entries of are counted by path (everything else is real).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { flow, task } from "@cairn/dsl";
import { runCollect, statuses, tmp } from "./helpers.ts";

/** Folders this process read the entries of with their types (readdir withFileTypes: a folder walk) since the last reset. */
const walks = vi.hoisted(() => [] as string[]);
vi.mock("node:fs/promises", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs/promises")>();
  const readdir = ((path: unknown, ...rest: unknown[]) => {
    if ((rest[0] as { withFileTypes?: boolean } | undefined)?.withFileTypes) walks.push(resolve(String(path)));
    return (fs.readdir as (...a: unknown[]) => unknown)(path, ...rest);
  }) as typeof fs.readdir;
  return { ...fs, default: { ...fs, readdir }, readdir };
});

beforeEach(() => {
  walks.length = 0;
});

/** Walks of the folder at `path` or below it. */
const walksIn = (path: string) => walks.filter((p) => p === resolve(path) || p.startsWith(`${resolve(path)}/`));

/** A code folder `lib/` (one file) with a `node_modules/` of `packages` packages and a `.git/` beside the code. */
async function codeFolder(packages = 20): Promise<string> {
  const dir = join(await tmp(), "lib");
  await mkdir(join(dir, ".git", "objects"), { recursive: true });
  await writeFile(join(dir, "helpers.py"), "def rows():\n    return 3\n");
  for (let i = 0; i < packages; i++) {
    await mkdir(join(dir, "node_modules", `pkg${i}`, "lib"), { recursive: true });
    await writeFile(join(dir, "node_modules", `pkg${i}`, "lib", "index.js"), `module.exports = ${i};\n`);
  }
  return dir;
}

function codeFlow(name: string, dir: string) {
  const calls = { n: 0 };
  const t = task(`${name}-t`).codeFiles(dir).run(async () => (calls.n++, { v: 1 }));
  return { calls, f: flow(name).build(() => ({ v: t({}).v })) };
}

describe("checking a .codeFiles() folder", () => {
  it("walks none of node_modules/ or .git/, and walks the folder once for its digest and once to trust it", async () => {
    const dir = await codeFolder();
    const root = await tmp();
    const { calls, f } = codeFlow("cf-walks", dir);
    const first = await runCollect(f, { root });
    expect(statuses(first.result)).toEqual({ "cf-walks-t": "succeeded" });
    expect(walksIn(join(dir, "node_modules"))).toEqual([]);
    expect(walksIn(join(dir, ".git"))).toEqual([]);

    walks.length = 0;
    const again = await runCollect(f, { root });
    expect(statuses(again.result)).toEqual({ "cf-walks-t": "cached" });
    expect(calls.n).toBe(1);
    expect(again.warnings.filter((w) => w.includes("changed since the flow was loaded"))).toEqual([]);
    expect(walksIn(join(dir, "node_modules"))).toEqual([]);
    expect(walksIn(join(dir, ".git"))).toEqual([]);
    // The key's digest (whose walk is the listing before), the listing after it, and the hit's
    // check that the folder is still what the key counted: three walks of the folder, no digest again.
    expect(walksIn(dir)).toEqual([dir, dir, dir]);
  });

  it("a file edited under node_modules/ is no miss; one of the code is", async () => {
    const dir = await codeFolder(2);
    const root = await tmp();
    const { calls, f } = codeFlow("cf-nm-edit", dir);
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ "cf-nm-edit-t": "succeeded" });
    await writeFile(join(dir, "node_modules", "pkg0", "lib", "index.js"), "module.exports = 'edited';\n");
    await writeFile(join(dir, ".git", "HEAD"), "ref: refs/heads/other\n");
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ "cf-nm-edit-t": "cached" });
    await writeFile(join(dir, "helpers.py"), "def rows():\n    return 4\n");
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ "cf-nm-edit-t": "succeeded" });
    expect(calls.n).toBe(2);
  });

  it("a file of the folder edited while the task runs is still seen (its result is not stored); one under node_modules/ is not", async () => {
    const dir = await codeFolder(1);
    const root = await tmp();
    let edit = join(dir, "node_modules", "pkg0", "lib", "index.js");
    const t = task("cf-edit-t")
      .codeFiles(dir)
      .run(async () => (await writeFile(edit, `edited ${Date.now()}\n`), { v: 1 }));
    const f = flow("cf-edit").build(() => ({ v: t({}).v }));
    const nm = await runCollect(f, { root });
    expect(nm.warnings.filter((w) => w.includes("edited while the task ran"))).toEqual([]);
    edit = join(dir, "helpers.py");
    // Stored: a hit, though the task would edit the code again.
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ "cf-edit-t": "cached" });
    await writeFile(join(dir, "new.py"), "y = 2\n");
    const code = await runCollect(f, { root });
    expect(statuses(code.result)).toEqual({ "cf-edit-t": "succeeded" });
    expect(code.warnings.filter((w) => w.includes("edited while the task ran"))).toHaveLength(1);
    // Not stored: the next run runs it again.
    expect(statuses((await runCollect(f, { root })).result)).toEqual({ "cf-edit-t": "succeeded" });
  });

  it("leaves out the run's root inside the declared folder: the task is cached, and the root is never walked", async () => {
    const dir = await codeFolder(0);
    // A state folder by any name (not `.cairn`, which is left out by name), as `--root lib/.state` gives.
    const root = join(dir, ".state");
    const { calls, f } = codeFlow("cf-root-inside", dir);
    const first = await runCollect(f, { root });
    expect(statuses(first.result)).toEqual({ "cf-root-inside-t": "succeeded" });
    expect(first.warnings.filter((w) => w.includes("changed since the flow was loaded"))).toEqual([]);

    for (let i = 0; i < 2; i++) {
      walks.length = 0;
      const again = await runCollect(f, { root });
      expect(again.warnings.filter((w) => w.includes("changed since the flow was loaded"))).toEqual([]);
      expect(statuses(again.result)).toEqual({ "cf-root-inside-t": "cached" });
      // Nothing else of the run walks its root: any walk there would be the code folder's. The root
      // check lists two of its folders, one level (each experiment's, each index namespace's folder is checked).
      const rootCheck = (path: string) => path === join(root, "experiments") || path === join(root, "cache", "index");
      expect(walksIn(root).filter((path) => !rootCheck(path))).toEqual([]);
      expect(walksIn(dir).filter((path) => !rootCheck(path))).toEqual([dir, dir, dir]);
    }
    expect(calls.n).toBe(1);
  });
});
