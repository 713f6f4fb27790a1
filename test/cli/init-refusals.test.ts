/**
 * `cairn init` into a place it cannot scaffold is refused before anything is written, as a
 * usage error (exit 2, one message, no stack), so that fixing the cause and running it again
 * works: a half-written folder would make the second run refuse to overwrite the first's files.
 * Permissions are checked as an unprivileged user (root writes anywhere): as `nobody` when the
 * tests run as root.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { tmp } from "./helpers.ts";

const root = process.getuid?.() === 0;
const NOBODY = 65534;

/** `cairn init ...args --no-install` in `cwd`, as an unprivileged user. */
function init(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return start(process.execPath, [cairnBin, "init", ...args, "--no-install"], { cwd, env: childEnv(), ...(root ? { uid: NOBODY } : {}) }).done;
}

/** A temp folder the unprivileged user can enter (and write in, when `writable`). */
async function place(writable = true): Promise<string> {
  const dir = await tmp("cairn-cli-init-");
  chmodSync(dir, 0o755);
  if (writable && root) chownSync(dir, NOBODY, NOBODY);
  return dir;
}

const noStack = (stderr: string) => expect(stderr).not.toMatch(/\n\s+at /);

describe.skipIf(process.platform === "win32")("cairn init refuses what it cannot scaffold, before writing", () => {
  it("a target that is a file", async () => {
    const cwd = await place();
    writeFileSync(join(cwd, "notflow.txt"), "hello\n");
    const r = await init(["notflow.txt"], cwd);
    expect(r.stderr).toBe(`cairn: UsageError: Expected ${join(cwd, "notflow.txt")} to be a folder, or a path where one can be made, got a file. Nothing was written. Pass a folder: cairn init my-flow.\n`);
    expect(r.code).toBe(2);
  });

  it("a DIR named like a file (cairn init flow.ts): a folder flow.ts/ holding flow.ts was made", async () => {
    const cwd = await place();
    for (const name of ["flow.ts", "train.py", "app.mjs", "x.js"]) {
      const r = await init([name], cwd);
      noStack(r.stderr);
      expect(r.stderr).toContain(`Expected a folder to scaffold in (cairn init [DIR]), got "${name}", which is named like a file: init writes flow.ts itself, in DIR. Nothing was written.`);
      expect(r.stderr).toContain("Run `cairn init` for the working directory, or pass a folder name: cairn init my-flow.");
      expect(r.code).toBe(2);
    }
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("a folder it cannot write into", async () => {
    const cwd = await place();
    const target = join(cwd, "ro");
    mkdirSync(target, { mode: 0o555 });
    if (root) chownSync(target, 0, 0);
    chmodSync(target, 0o555);
    const r = await init(["ro"], cwd);
    noStack(r.stderr);
    expect(r.stderr).toContain(`Expected ${target} (the folder to scaffold into) to be writable, got EACCES (permission denied). Nothing was written.`);
    expect(r.code).toBe(2);
    expect(readdirSync(target)).toEqual([]);
  });

  it("a package.json it cannot write: nothing written, and once it can be, init runs", async () => {
    const cwd = await place();
    const pkg = join(cwd, "package.json");
    writeFileSync(pkg, '{ "name": "x" }\n');
    if (root) chownSync(pkg, 0, 0);
    chmodSync(pkg, 0o444);
    const r = await init([], cwd);
    noStack(r.stderr);
    expect(r.stderr).toContain(`Expected ${pkg} (cairn init adds to it) to be writable, got EACCES (permission denied). Nothing was written.`);
    expect(r.code).toBe(2);
    expect(readdirSync(cwd).sort()).toEqual(["package.json"]);

    chmodSync(pkg, 0o666);
    const again = await init([], cwd);
    expect(again.stderr).toBe("");
    expect(again.code).toBe(0);
    expect(existsSync(join(cwd, "flow.ts"))).toBe(true);
  });
});
