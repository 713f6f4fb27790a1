/**
 * A write that fails after the checks passed (a full disk, a file system gone read-only) takes
 * back what `cairn init` had written, so that running it again once the cause is fixed works.
 * The failure is simulated as a full disk shows it: node:fs's writeFileSync, for the file named
 * (or a temp sibling of it), writes the first part of the text and then fails, so the file it
 * opened is left cut off (empty for a short text).
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";

const failing = vi.hoisted(() => ({
  name: undefined as string | undefined,
  /** A file whose writes fail too once the write of `name` has failed: the disk is full for the rollback as well. */
  then: undefined as string | undefined,
  tripped: false,
}));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const is = (name: string, file: string | undefined) => file !== undefined && (name === file || name.startsWith(`.${file}.`));
  const writeFileSync: typeof fs.writeFileSync = (path, data, options) => {
    const name = String(path).split(/[\\/]/).pop()!;
    if (is(name, failing.name) || (failing.tripped && is(name, failing.then))) {
      failing.tripped = true;
      fs.writeFileSync(path, String(data).slice(0, Math.floor(String(data).length / 2)), options);
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    }
    return fs.writeFileSync(path, data, options);
  };
  return { ...fs, default: { ...fs, writeFileSync }, writeFileSync };
});

const { initProject } = await import("./init.ts");

const dirs: string[] = [];
afterEach(() => {
  failing.name = undefined;
  failing.then = undefined;
  failing.tripped = false;
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

  it("never cuts off the user's package.json, and removes a new file whose write failed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-init-"));
    dirs.push(dir);
    const mine = `${JSON.stringify({ name: "myapp", version: "1.2.3", scripts: { test: "echo hi" } }, null, 2)}\n`;
    writeFileSync(join(dir, "package.json"), mine);
    chmodSync(join(dir, "package.json"), 0o640);
    failing.name = "package.json";
    await expect(init(dir)).rejects.toThrow(/^cairn init could not write .*package\.json: ENOSPC \(no space left on device\); what it had written in .* is taken back\./);
    expect(readdirSync(dir)).toEqual(["package.json"]);
    expect(readFileSync(join(dir, "package.json"), "utf8")).toBe(mine);

    failing.name = "tsconfig.json"; // the first write, of a file that was not there
    await expect(init(dir)).rejects.toThrow(/could not write .*tsconfig\.json: ENOSPC/);
    expect(readdirSync(dir)).toEqual(["package.json"]);

    failing.name = undefined;
    await init(dir);
    expect(JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))).toMatchObject({ name: "myapp", scripts: { test: "echo hi", flow: "cairn run flow.ts" } });
    expect(statSync(join(dir, "package.json")).mode & 0o777).toBe(0o640);
  });

  it("gives package.json back its text through a temp file: a restore the disk cuts off leaves it whole (the new text), never cut", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-init-"));
    dirs.push(dir);
    const mine = `${JSON.stringify({ name: "myapp", version: "1.2.3", scripts: { test: "echo hi" } }, null, 2)}\n`;
    writeFileSync(join(dir, "package.json"), mine);
    chmodSync(join(dir, "package.json"), 0o640);
    failing.name = ".gitignore"; // written after package.json: the rollback gives package.json back its text...
    failing.then = "package.json"; // ...on a disk that is full for that write too
    await expect(init(dir)).rejects.toThrow(
      new RegExp(`^cairn init could not write ${join(dir, ".gitignore")}: ENOSPC \\(no space left on device\\); it could not take back what it wrote to ${join(dir, "package.json")}\\. Fix that, then run cairn init again\\.$`),
    );
    // Whole, as cairn init wrote it (with its script added), its mode kept; no temp file left beside it.
    const kept = readFileSync(join(dir, "package.json"), "utf8");
    expect(JSON.parse(kept)).toMatchObject({ name: "myapp", version: "1.2.3", scripts: { test: "echo hi", flow: "cairn run flow.ts" } });
    expect(statSync(join(dir, "package.json")).mode & 0o777).toBe(0o640);
    expect(readdirSync(dir).sort()).toEqual(["package.json"]);
  });

  it("keeps package.json's mode whatever the umask (0666 stays 0666), written and given back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cairn-init-"));
    dirs.push(dir);
    writeFileSync(join(dir, "package.json"), '{ "name": "shared" }\n');
    chmodSync(join(dir, "package.json"), 0o666);
    const umask = process.umask(0o022);
    try {
      failing.name = ".gitignore";
      await expect(init(dir)).rejects.toThrow(/could not write .*\.gitignore: ENOSPC/);
      expect(statSync(join(dir, "package.json")).mode & 0o777).toBe(0o666);
      failing.name = undefined;
      await init(dir);
      expect(statSync(join(dir, "package.json")).mode & 0o777).toBe(0o666);
    } finally {
      process.umask(umask);
    }
  });

  it("in a folder it made, removes the folder", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cairn-init-"));
    dirs.push(parent);
    failing.name = "package.json";
    await expect(init(join(parent, "new", "project"))).rejects.toThrow(/could not write .*package\.json: ENOSPC/);
    expect(readdirSync(parent)).toEqual([]);
  });
});
