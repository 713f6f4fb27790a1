/**
 * `cairn cache clear`, `cache prune` and `runs prune` without `--root` check the default `.cairn`
 * as `--root .cairn` does: for a user who may read but not write it, `clear` started deleting and
 * failed part-way (CacheBackendError EACCES, exit 1), `prune --older-than 1d` passed unchecked
 * (exit 0), and `runs prune` failed at its lock (TrackingError, exit 1), where `--root .cairn` was
 * refused up front. Now each is a UsageError, exit 2, nothing touched; `cache ls` and
 * `runs prune --dry-run` still read it, and a working folder without `.cairn` gets none made.
 */
import { chmodSync, existsSync, readdirSync } from "node:fs";
import { chmod, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** `cairn ...args` in `cwd` as a user who may not write `.cairn` (`nobody` when the tests run as root). */
function cairnAsReader(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return start(process.execPath, [cairnBin, ...args], { cwd, env: childEnv(), ...(asRoot ? { uid: NOBODY } : {}) }).done;
}

/** Every folder and file under `dir` (itself too) set to `mode` for folders, `mode & 0o666` for files. */
async function chmodTree(dir: string, mode: number): Promise<void> {
  await chmod(dir, mode);
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await stat(path)).isDirectory()) await chmodTree(path, mode);
    else await chmod(path, mode & 0o666);
  }
}

describe.skipIf(process.platform === "win32")("cache clear, cache prune and runs prune without --root check the default .cairn", () => {
  let cwd: string;
  let entries: () => string[];
  beforeAll(async () => {
    cwd = await tmp("cairn-cli-default-root-");
    chmodSync(cwd, 0o755);
    const run = await cairn(["run", join(repo, "test/fixtures/ok.flow.ts"), "-p", "rows=5", "--no-report"], { cwd });
    expect(run.code, run.stderr).toBe(0);
    entries = () => readdirSync(join(cwd, ".cairn", "cache", "entries"));
    expect(entries().length).toBeGreaterThan(0);
    // Readable by anyone, writable by no one but root, whom the commands do not run as.
    await chmodTree(join(cwd, ".cairn"), 0o555);
  });
  afterAll(async () => {
    if (cwd) await chmodTree(join(cwd, ".cairn"), 0o755);
  });

  it.each([
    ["cache clear", ["cache", "clear"]],
    ["cache clear --task", ["cache", "clear", "--task", "double"]],
    ["cache prune --older-than 1d", ["cache", "prune", "--older-than", "1d"]],
    ["cache prune --max-size 1B", ["cache", "prune", "--max-size", "1B"]],
    ["runs prune --older-than 1ms", ["runs", "prune", "--older-than", "1ms"]],
  ])("%s: refused up front as with --root .cairn, exit 2, no entry removed", async (_, args) => {
    const before = entries();
    const r = await cairnAsReader(args, cwd);
    expect(r.stderr).toContain(
      `UsageError: Expected Cairn's state folder (\`root\`), by default .cairn in the working directory, to be a folder Cairn can write to, got ${join(cwd, ".cairn")}: a file cannot be written in it (EACCES: permission denied). Pass --root a folder this user can write to`,
    );
    expect(r.stderr).not.toContain("CacheBackendError");
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(entries()).toEqual(before);
  });

  it("cache ls only reads: it lists the entries", async () => {
    const r = await cairnAsReader(["cache", "ls"], cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("double");
  });

  it("runs prune --dry-run only reads: it says what would go", async () => {
    const r = await cairnAsReader(["runs", "prune", "--older-than", "1ms", "--dry-run"], cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain("UsageError");
  });

  it("in a folder with no .cairn, cache clear removes nothing and makes no .cairn", async () => {
    const empty = await tmp("cairn-cli-default-root-");
    chmodSync(empty, 0o777);
    const r = await cairnAsReader(["cache", "clear"], empty);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Removed 0 cache entries from ${join(empty, ".cairn", "cache")}.`);
    expect(existsSync(join(empty, ".cairn"))).toBe(false);
  });
});
