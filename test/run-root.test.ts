/**
 * run()'s state folder (`root`, else `.cairn` in the working directory) is checked by the engine
 * before anything is made in it, as `--root` is by the CLI (README, "Embedding"): an app that
 * called run() with a root under /proc hung in Node's recursive mkdir (a loop no signal stopped),
 * and one whose root was a file, or a default `.cairn` it cannot write, failed only when a task
 * wrote an artifact there (ENOTDIR, EACCES from inside the task). Now each is an OptionError
 * naming `root`, the path and why, before any run is recorded or task runs. Each app is a real
 * process (test/fixtures/run-root.ts), killed if it hangs.
 */
import { spawn } from "node:child_process";
import { chmod, mkdir, readdir, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { openFlowCache } from "@cairn/core";
import { flow, task } from "cairn-dag";
import { childEnv, repo, tmp } from "./cache/helpers.ts";

const app = join(repo, "test/fixtures/run-root.ts");
// By its path: `--import tsx` is resolved from the working folder, here outside the workspace.
const tsx = pathToFileURL(join(repo, "node_modules/tsx/dist/loader.mjs")).href;
const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** The app run with `root` in `cwd` (as `nobody` when asked), killed after 20 s: what it printed, parsed. */
async function runApp(root: string, cwd: string, { untracked = false, unprivileged = false } = {}): Promise<{ threw?: string; option?: string; message?: string; status?: string; error?: string }> {
  const child = spawn(process.execPath, ["--import", tsx, app, root, untracked ? "untracked" : "tracked"], {
    cwd,
    env: childEnv(),
    stdio: ["ignore", "pipe", "pipe"],
    ...(unprivileged && asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d));
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const signal = await new Promise<NodeJS.Signals | null>((resolveExit) => child.on("close", (_code, s) => resolveExit(s)));
  clearTimeout(killer);
  expect(signal, `the app hung in run() (killed after 20 s); stderr: ${stderr}`).toBeNull();
  expect(stdout, stderr).not.toBe("");
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as { threw?: string };
}

/** A working folder the unprivileged user can enter. */
async function place(): Promise<string> {
  const cwd = await tmp("cairn-run-root-");
  await chmod(cwd, 0o755);
  return cwd;
}

describe("run() refuses a root it cannot use, up front, as an OptionError naming `root`", () => {
  it.runIf(existsSync("/proc/self"))("a root under /proc is said at once, not a recursive mkdir that never ends", async () => {
    const out = await runApp("/proc/cairn-nope", await place());
    expect(out).toEqual({
      threw: "OptionError",
      option: "root",
      message: expect.stringMatching(/^Expected `root` to be a folder Cairn can make and write to, got "\/proc\/cairn-nope": \/proc\/cairn-nope cannot be made \((ENOENT|EACCES)/),
    });
  }, 30_000);

  it("a root that is a file, though the run records nowhere: refused before its task writes there (it failed with ENOTDIR)", async () => {
    const cwd = await place();
    await writeFile(join(cwd, "afile"), "x");
    expect(await runApp("afile", cwd, { untracked: true })).toEqual({
      threw: "OptionError",
      option: "root",
      message:
        'Expected `root` to be a folder Cairn can make and write to, got "afile": it is a file, not a folder. ' +
        "Pass `root` (`--root DIR` on the command line) a folder this user can write to (it is made when missing), or leave it out for .cairn in the working directory.",
    });
  }, 30_000);

  // As root every folder is writable: the app then runs as `nobody`, for whom the folder is not.
  it("the default .cairn that cannot be written to is probed too: refused before its task wrote there (it failed with EACCES)", async () => {
    const cwd = await place();
    const state = join(cwd, ".cairn");
    await mkdir(state, { mode: 0o555 });
    await chmod(state, 0o555);
    const out = await runApp("-", cwd, { untracked: true, unprivileged: true });
    expect(out).toEqual({
      threw: "OptionError",
      option: "root",
      message:
        `Expected Cairn's state folder (\`root\`), by default .cairn in the working directory, to be a folder Cairn can make and write to, got ${state}: a file cannot be written in it (EACCES: permission denied). ` +
        "Pass `root` (`--root DIR` on the command line) a folder this user can write to, or run from a folder where .cairn can be.",
    });
    expect(await readdir(state)).toEqual([]);
  }, 30_000);

  it("a root that is missing is made, and the run goes on", async () => {
    const cwd = await place();
    expect(await runApp("state/of/cairn", cwd, { untracked: true })).toEqual({ status: "succeeded" });
    expect(await readdir(join(cwd, "state/of/cairn/artifacts"))).toHaveLength(1);
  }, 30_000);

  it("a run that records nothing and writes nothing makes no folder (an app's untracked, uncached run left one behind)", async () => {
    const cwd = await place();
    const pure = flow("no-root").build(() => ({ y: task("t").run(() => ({ y: 1 }))({}).y }));
    const result = await (await pure.run({ root: join(cwd, "state"), tracker: false, cache: false, env: {} })).wait();
    expect(result.status).toBe("succeeded");
    expect(await readdir(cwd)).toEqual([]);
  });

  it("what only reads it (plan, explain: openFlowCache) refuses a root that is a file too", async () => {
    const cwd = await place();
    const file = join(cwd, "afile");
    await writeFile(file, "x");
    const one = flow("reads-root").build(() => ({ y: task("t").run(() => ({ y: 1 }))({}).y }));
    await expect(openFlowCache(one.definition, { root: file, env: {} })).rejects.toMatchObject({
      name: "OptionError",
      option: "root",
      message: expect.stringMatching(/^Expected `root` to be a folder Cairn can read, got ".*afile": it is a file, not a folder\. Pass `root` \(`--root DIR` on the command line\) the folder a run used/),
    });
  });
});
