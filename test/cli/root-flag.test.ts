/**
 * `--root DIR` is checked before the flow is loaded, by every command that takes it (README,
 * "Flags"): a file there started the run and failed its first task with a bare ENOTDIR (plan and
 * cache: CacheBackendError, exit 1), and a folder under /proc sent Node's recursive mkdir into a
 * loop no signal stopped. Now either is a UsageError naming the flag and the path, exit 2.
 */
import { existsSync, watch } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { cairn, repo, tmp } from "./helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");

describe("--root that is not a folder Cairn can use: exit 2 naming it, before the flow runs", () => {
  let cwd: string;
  beforeAll(async () => {
    cwd = await tmp("cairn-cli-root-");
    await writeFile(join(cwd, "afile"), "x");
  });

  it.each([
    ["run", ["run", ok, "--no-tracking"], "make and write to"],
    ["plan", ["plan", ok], "read"],
    ["explain", ["explain", ok, "double"], "read"],
    ["cache ls", ["cache", "ls"], "read"],
    ["cache clear", ["cache", "clear"], "write to"],
    ["runs", ["runs"], "read"],
  ])("cairn %s --root afile", async (_, args, can) => {
    const r = await cairn([...args, "--root", "afile"], { cwd });
    expect(r.stderr).toContain(`UsageError: Expected --root to be a folder Cairn can ${can}, got afile: it is a file, not a folder. Pass --root`);
    expect(r.code).toBe(2);
    expect(r.stdout).not.toMatch(/succeeded|failed/);
  });

  it("a folder below a file is named by the file", async () => {
    const r = await cairn(["run", ok, "--root", "afile/state"], { cwd });
    expect(r.stderr).toContain(`got afile/state: ${join(cwd, "afile")} is a file, not a folder`);
    expect(r.code).toBe(2);
  });

  it.runIf(existsSync("/proc/self"))("a folder that cannot be made under /proc is said at once (it sent Node's recursive mkdir into a loop no signal stopped)", async () => {
    const started = start(process.execPath, [cairnBin, "run", ok, "--root", "/proc/cairn-nope"], { cwd, env: childEnv() });
    const killer = setTimeout(() => started.child.pid && process.kill(-started.child.pid, "SIGKILL"), 20_000);
    try {
      const r = await started.done;
      expect(r.signal).toBeNull();
      expect(r.stderr).toMatch(/UsageError: Expected --root to be a folder Cairn can make and write to, got \/proc\/cairn-nope: \/proc\/cairn-nope cannot be made \((ENOENT|EACCES)/);
      expect(r.code).toBe(2);
    } finally {
      clearTimeout(killer);
    }
  }, 30_000);
});

describe("--root that does not exist, given to a command that reads: exit 2 naming it, not an empty history", () => {
  // Before: `cairn runs --root ./.cairnn` said "No flow runs yet in .../.cairnn." and `cache ls`
  // "The cache at ... is empty.", exit 0: a typo read as a project with no runs.
  let cwd: string;
  beforeAll(async () => {
    cwd = await tmp("cairn-cli-root-missing-");
    expect((await cairn(["run", ok], { cwd })).code).toBe(0);
  });

  it.each([
    ["runs", ["runs"], "runs"],
    ["show", ["show", "0123abcd"], "runs"],
    ["report", ["report"], "runs"],
    ["cache ls", ["cache", "ls"], "cache entries"],
    ["explain", ["explain", ok, "double"], "cache entries or runs"],
    ["runs prune", ["runs", "prune", "--older-than", "1d"], "runs or local copies"],
    ["runs prune --dry-run", ["runs", "prune", "--older-than", "1d", "--dry-run"], "runs or local copies"],
  ])("cairn %s --root ./.cairnn", async (_, args, reads) => {
    const r = await cairn([...args, "--root", "./.cairnn"], { cwd });
    expect(r.stderr).toContain(
      `UsageError: Expected --root to name the folder a run used (the one that holds its cache/ and experiments/), got "./.cairnn": ${join(cwd, ".cairnn")} does not exist, so there are no ${reads} there. ` +
        "cd to the project folder and leave --root out for its .cairn, or pass --root the folder a run was given (cairn run --root DIR).",
    );
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(existsSync(join(cwd, ".cairnn"))).toBe(false);
  });

  it("the default .cairn may be missing (a project with no run yet), and plan takes a --root a first run will make", async () => {
    const empty = await tmp("cairn-cli-root-none-");
    const runs = await cairn(["runs"], { cwd: empty });
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stdout).toMatch(/^No flow runs yet in /);
    const plan = await cairn(["plan", ok, "--root", "./state"], { cwd: empty });
    expect(plan.code, plan.stderr).toBe(0);
    // The folder that is there reads as before.
    expect((await cairn(["runs", "--root", ".cairn"], { cwd })).code).toBe(0);
  });

  it("explain takes a --root not made yet when its runs and indexes are on an MLflow server, as plan does", async () => {
    // A fresh CI checkout: no state folder yet, the history on the server (here none answers: what is said is the server's, not the root's).
    const fresh = await tmp("cairn-cli-root-server-");
    const r = await cairn(["explain", ok, "double", "--root", "./state"], { cwd: fresh, env: { MLFLOW_TRACKING_URI: "http://127.0.0.1:9" } });
    expect(r.stderr).not.toContain("does not exist, so there are no");
    expect(r.stderr).toContain("127.0.0.1:9");
    expect(r.code).toBe(3);
  });
});

describe("cairn run --root: checked before the flow is loaded", () => {
  // run() checked it once the flow had loaded: a broken flow file was said first, and the flow's module code ran.
  it("a bad --root is said before a broken flow file", async () => {
    const cwd = await tmp("cairn-cli-root-first-");
    await writeFile(join(cwd, "afile"), "x");
    await writeFile(join(cwd, "broken.flow.ts"), "export default flow(\"x\"\n  .build(() => {\n");
    const r = await cairn(["run", "broken.flow.ts", "--root", "afile"], { cwd });
    expect(r.stderr).toContain("UsageError: Expected --root to be a folder Cairn can make and write to, got afile: it is a file, not a folder.");
    expect(r.stderr).not.toMatch(/broken\.flow\.ts/);
    expect(r.code).toBe(2);
  });

  // The early check made the folder, and a flow that then failed to load left it behind (before the check came first, nothing was made).
  it("a flow file that does not load leaves no --root folder behind that the check made, and keeps one that was there", async () => {
    const cwd = await tmp("cairn-cli-root-unmade-");
    await writeFile(join(cwd, "broken.flow.ts"), "export default flow(\"x\"\n  .build(() => {\n");
    const r = await cairn(["run", "broken.flow.ts", "--root", "new/state"], { cwd });
    expect(r.stderr).toMatch(/broken\.flow\.ts/);
    expect(r.code).not.toBe(0);
    expect(existsSync(join(cwd, "new"))).toBe(false);
    await mkdir(join(cwd, "kept"));
    const kept = await cairn(["run", "broken.flow.ts", "--root", "kept/state"], { cwd });
    expect(kept.code).not.toBe(0);
    expect(existsSync(join(cwd, "kept"))).toBe(true);
    expect(existsSync(join(cwd, "kept/state"))).toBe(false);
  });

  it.runIf(existsSync("/proc/self"))("none of the flow's code runs for a root that cannot be made", async () => {
    const cwd = await tmp("cairn-cli-root-unrun-");
    const marker = join(cwd, "loaded");
    await writeFile(join(cwd, "marks.flow.ts"), `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(marker)}, "");\nexport default {};\n`);
    const r = await cairn(["run", "marks.flow.ts", "--root", "/proc/cairn-nope"], { cwd });
    expect(r.stderr).toMatch(/UsageError: Expected --root to be a folder Cairn can make and write to, got \/proc\/cairn-nope: \/proc\/cairn-nope cannot be made/);
    expect(r.code).toBe(2);
    expect(existsSync(marker)).toBe(false);
  });
});

describe("cairn run --root DIR is checked once", () => {
  // The CLI probed it, and then run() probed it again: two probe files for one check. Now run() checks it alone.
  it("writes one probe file in it, and runs", async () => {
    const cwd = await tmp("cairn-cli-root-once-");
    const state = join(cwd, "state");
    await mkdir(state);
    const probes = new Set<string>();
    const watcher = watch(state, (_, name) => {
      if (name?.startsWith(".cairn-probe-")) probes.add(name);
    });
    try {
      const r = await cairn(["run", ok, "--no-tracking", "--root", "state"], { cwd });
      expect(r.code, r.stderr).toBe(0);
      await new Promise((settle) => setTimeout(settle, 200)); // the watcher's last events
    } finally {
      watcher.close();
    }
    expect(probes.size).toBe(1);
  });
});
