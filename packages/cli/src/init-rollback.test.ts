/**
 * A write that fails after the checks passed (a full disk, a file system gone read-only) takes
 * back what `cairn init` had written, so that running it again once the cause is fixed works.
 * The failure is simulated: node:fs's writeFileSync fails for package.json in this file.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";

const failing = vi.hoisted(() => ({ name: undefined as string | undefined }));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const writeFileSync: typeof fs.writeFileSync = (path, ...rest) => {
    if (failing.name && String(path).endsWith(failing.name)) {
      throw Object.assign(new Error(`ENOSPC: no space left on device, open '${String(path)}'`), { code: "ENOSPC" });
    }
    return fs.writeFileSync(path, ...rest);
  };
  return { ...fs, default: { ...fs, writeFileSync }, writeFileSync };
});

const { initProject } = await import("./init.ts");

const dirs: string[] = [];
afterEach(() => {
  failing.name = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const init = (dir: string, template: "ts" | "python" = "ts") =>
  initProject({ dir, template, install: false, cairnVersion: "0.1.0", stdout: new PassThrough(), stderr: new PassThrough(), env: {} });

describe("cairn init whose write fails midway", () => {
  it("removes the files and folders it made, gives package.json and .gitignore back their text, and can run again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-init-"));
    dirs.push(dir);
    writeFileSync(join(dir, "package.json"), '{ "name": "mine" }\n');
    writeFileSync(join(dir, ".gitignore"), "secrets/\n");
    failing.name = ".gitignore"; // the last write: tsconfig.json, flow.ts, steps/ and package.json are written by then
    await expect(init(dir, "python")).rejects.toThrow(
      new RegExp(`^cairn init could not write ${join(dir, ".gitignore")}: ENOSPC \\(no space left on device\\); what it had written in ${dir} is taken back\\. Fix that, then run cairn init again\\.$`),
    );
    expect(readdirSync(dir).sort()).toEqual([".gitignore", "package.json"]);
    expect(readFileSync(join(dir, "package.json"), "utf8")).toBe('{ "name": "mine" }\n');
    expect(readFileSync(join(dir, ".gitignore"), "utf8")).toBe("secrets/\n");

    failing.name = undefined;
    await init(dir, "python");
    expect(readdirSync(dir).sort()).toEqual([".gitignore", "flow.ts", "package.json", "steps", "tsconfig.json"]);
  });

  it("in a folder it made, removes the folder", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cairn-init-"));
    dirs.push(parent);
    failing.name = "package.json";
    await expect(init(join(parent, "new", "project"))).rejects.toThrow(/could not write .*package\.json: ENOSPC/);
    expect(readdirSync(parent)).toEqual([]);
  });
});
