/**
 * A `--root` one user made under umask 077 and then opened at its top folder only (`chmod 777`),
 * used by another user: the probe file went into the top folder, so the root passed, and the run
 * failed at its experiment's folder (TrackingError EACCES, exit 1), `cairn plan` at the first
 * cache entry (CacheBackendError, exit 1), where README lists "a --root that is not a folder
 * Cairn can use" as exit 2. Now the folders Cairn keeps in the root are checked too: exit 2,
 * naming the folder, the user, and how to open it up.
 */
import { chmod, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const NOBODY = 65534;
const ok = join(repo, "test/fixtures/ok.flow.ts");

/** Every folder under `dir` (itself too) set to `mode`, every file to `mode & 0o666`: what umask 077 leaves. */
async function chmodTree(dir: string, mode: number): Promise<void> {
  await chmod(dir, mode);
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if ((await stat(path)).isDirectory()) await chmodTree(path, mode);
    else await chmod(path, mode & 0o666);
  }
}

// As root every folder is usable: the commands run as `nobody`, for whom root's folders are not.
describe.skipIf(process.platform === "win32" || process.getuid?.() !== 0)("a --root whose top folder alone another user may write", () => {
  let cwd: string;
  let root: string;
  beforeAll(async () => {
    cwd = await tmp("cairn-cli-shared-root-");
    await chmod(cwd, 0o755);
    root = join(cwd, "shared", "c");
    const made = await cairn(["run", ok, "--root", "shared/c", "--no-report"], { cwd });
    expect(made.code, made.stderr).toBe(0);
    await chmodTree(join(cwd, "shared"), 0o700);
    await chmod(join(cwd, "shared"), 0o755);
    await chmod(root, 0o777);
  });
  afterAll(async () => {
    if (cwd) await chmodTree(join(cwd, "shared"), 0o755);
  });

  const asNobody = (args: string[]) => start(process.execPath, [cairnBin, ...args], { cwd, env: childEnv(), uid: NOBODY }).done;

  it("run: refused before it starts, exit 2, the error event naming the folder, the user and the fix", async () => {
    const r = await asNobody(["run", ok, "--root", "shared/c", "--json"]);
    expect(r.code, r.stderr).toBe(2);
    const event = JSON.parse(r.stdout.trim()) as { type: string; exitCode: number; error: { name: string; message: string } };
    expect(event).toMatchObject({ type: "error", exitCode: 2, error: { name: "UsageError" } });
    expect(event.error.message).toContain(`Expected --root to be a folder Cairn can make and write to, got shared/c: ${join(root, "experiments")} cannot be written to by this user (nobody, uid 65534) (EACCES: permission denied; it is uid 0's, mode 0700)`);
    expect(event.error.message).toContain("`chmod -R a+rwX` the root");
    expect(r.stderr).not.toMatch(/TrackingError|Cannot create experiment/);
  });

  it("plan: refused as a root it cannot read, exit 2", async () => {
    const r = await asNobody(["plan", ok, "--root", "shared/c"]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`Expected --root to be a folder Cairn can read, got shared/c: ${join(root, "experiments")} cannot be read by this user (nobody, uid 65534)`);
    expect(r.stderr).toContain("`chmod -R a+rX` the root");
    expect(r.stderr).not.toMatch(/CacheBackendError/);
  });

  it("once opened up as the message says, both work for that user", async () => {
    await chmodTree(root, 0o777);
    const plan = await asNobody(["plan", ok, "--root", "shared/c"]);
    expect(plan.code, plan.stderr).toBe(0);
    const run = await asNobody(["run", ok, "--root", "shared/c", "--no-report"]);
    expect(run.code, run.stderr).toBe(0);
  });
});
