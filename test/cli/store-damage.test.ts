/**
 * The embedded store (`.cairn`) under damage from outside: files that cannot be read are named,
 * never taken for absent (which would evict the cache entries they back).
 */
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { cairn, repo } from "./helpers.ts";

const made: string[] = [];
/** A folder inside the workspace, where a flow file resolves `cairn-dag` as the examples do. */
const tmp = async () => {
  const dir = await mkdtemp(join(repo, "test", ".store-damage-"));
  made.push(dir);
  return dir;
};
afterAll(async () => {
  for (const dir of made) await rm(dir, { recursive: true, force: true });
});

/** A folder with a one-task flow `damage` that has run once: its flow run and its task's run. */
async function ranOnce(): Promise<{ cwd: string; flowRun: string; taskRun: string }> {
  const cwd = await tmp();
  await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst a = task("a").run(() => ({ v: 1 }));\nexport default flow("damage").build(() => ({ v: a().v }));\n`);
  const run = await cairn(["run", "flow.ts", "--json"], { cwd });
  expect(run.code, run.stderr).toBe(0);
  const flowRun = (JSON.parse(run.stdout.trim().split("\n").at(-1)!) as { runId: string }).runId;
  const taskRun = (await readdir(join(cwd, ".cairn", "runs"))).find((n) => n.endsWith(".json") && !n.startsWith(flowRun))!.slice(0, -".json".length);
  return { cwd, flowRun, taskRun };
}

describe("a run file that cannot be read", () => {
  it("keeps the cache entry it backs (a miss while it cannot be read, a hit again once it can; a run meanwhile replaces it), and show and runs name the file", async () => {
    const { cwd, flowRun, taskRun } = await ranOnce();
    const runFile = join(cwd, ".cairn", "runs", `${taskRun}.json`);
    const saved = join(cwd, "saved.json");
    await rename(runFile, saved);
    // A folder where the run file belongs: reading it fails with EISDIR (as root, modes would not).
    await mkdir(runFile);
    const plan = await cairn(["plan", "flow.ts"], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`${taskRun}.json`);
    expect(plan.stdout).toMatch(/could not be checked/);
    expect(plan.stdout).not.toMatch(/no longer exists/);
    const show = await cairn(["show", taskRun], { cwd });
    expect(show.code).not.toBe(0);
    expect(show.stderr).toContain(`${taskRun}.json`);
    expect(show.stderr).toMatch(/EISDIR/);
    // The flow run's file in its place: the listing names it instead of saying "no flow runs yet".
    const flowFile = join(cwd, ".cairn", "runs", `${flowRun}.json`);
    await rm(flowFile);
    await mkdir(flowFile);
    const runs = await cairn(["runs"], { cwd });
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stderr).toContain(`${flowRun}.json`);
    expect(runs.stdout).toBe(`No flow runs could be listed in ${join(cwd, ".cairn")}: 1 run could not be read, as the warning above says.\n`);
    // Restored: the entry was kept, so the task is a hit again.
    await rm(runFile, { recursive: true });
    await rename(saved, runFile);
    const again = await cairn(["plan", "flow.ts"], { cwd });
    expect(again.stdout).toMatch(new RegExp(`a\\s+cached\\s+from run ${taskRun}`));
    // A run while it cannot be read: the task runs, and its result replaces the entry (same key).
    await rename(runFile, saved);
    await mkdir(runFile);
    const rerun = await cairn(["run", "flow.ts", "--json"], { cwd });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout + rerun.stderr).toMatch(/was not used: .*; the task runs, and its result replaces the entry/);
    expect(rerun.stdout + rerun.stderr).not.toMatch(/it is kept/);
    const [entry] = JSON.parse((await cairn(["cache", "ls", "--json"], { cwd })).stdout) as Array<{ sourceRunId: string }>;
    expect(entry!.sourceRunId).not.toBe(taskRun);
  }, 60_000);
});

describe("an experiment's meta.json damaged or deleted", () => {
  it("runs still lists every experiment's runs, naming the file; the flow's next run writes it again; no MLflow hint without a server", async () => {
    const { cwd, flowRun } = await ranOnce();
    await writeFile(join(cwd, "other.ts"), `import { flow, task } from "cairn-dag";\nconst b = task("b").run(() => ({ v: 2 }));\nexport default flow("other").build(() => ({ v: b().v }));\n`);
    const other = await cairn(["run", "other.ts", "--json"], { cwd });
    expect(other.code, other.stderr).toBe(0);
    const otherRun = (JSON.parse(other.stdout.trim().split("\n").at(-1)!) as { runId: string }).runId;
    const experiments = join(cwd, ".cairn", "experiments");
    const damaged = (await readdir(experiments)).find((id) => readFileSync(join(experiments, id, "meta.json"), "utf8").includes('"damage"'))!;
    const meta = join(experiments, damaged, "meta.json");
    await writeFile(meta, '{"na');
    const runs = await cairn(["runs"], { cwd });
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stdout).toContain(flowRun);
    expect(runs.stdout).toContain(otherRun);
    expect(runs.stderr).toContain(meta);
    // Deleted, as the old message advised: the runs are still there.
    await rm(meta);
    const named = await cairn(["runs", "--experiment", "damage"], { cwd });
    expect(named.code, named.stderr).toBe(0);
    expect(named.stdout).toContain(flowRun);
    const none = await cairn(["runs", "--experiment", "no-such"], { cwd });
    expect(none.stderr).toContain('No experiment named "no-such"');
    expect(none.stderr).not.toMatch(/mlflow/);
    // Damaged again: the next run of the flow writes it whole.
    await writeFile(meta, '{"na');
    expect((await cairn(["run", "flow.ts"], { cwd })).code).toBe(0);
    expect(JSON.parse(readFileSync(meta, "utf8"))).toMatchObject({ experimentId: damaged, name: "damage" });
    expect((await cairn(["runs"], { cwd })).stderr).not.toContain("meta.json");
  }, 60_000);
});

describe("an experiment's meta.json that cannot be read", () => {
  it("leaves its runs out with a warning, and runs says that no runs could be listed, not that there are none yet", async () => {
    const { cwd } = await ranOnce();
    const experiments = join(cwd, ".cairn", "experiments");
    const [id] = await readdir(experiments);
    const meta = join(experiments, id!, "meta.json");
    await rm(meta);
    await mkdir(meta); // EISDIR on read: nothing can be read from it, not even damage
    const runs = await cairn(["runs"], { cwd });
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stderr).toContain(meta);
    expect(runs.stderr).toContain(`the runs of experiment ${id} are not listed`);
    expect(runs.stdout).toBe(`No flow runs could be listed in ${join(cwd, ".cairn")}: the runs of experiment ${id} were left out, as the warning above says.\n`);
    expect(runs.stdout).not.toMatch(/yet/);
    // Asked for by name, the experiment is not said to be missing: its record could not be read.
    const named = await cairn(["runs", "--experiment", "damage"], { cwd });
    expect(named.code).toBe(2);
    expect(named.stderr).toContain(`the runs of experiment ${id} are not listed`);
    expect(named.stderr).toMatch(/there is none by that name among those whose record could be read, and 1 experiment could not be read \(the warning above\)/);
    expect(named.stderr).not.toMatch(/there is none by that name\./);
  }, 60_000);
});

describe("a write of the run's record that fails (a full disk)", () => {
  it("names the file and the run, and the report's failure in the CLI's words (not the engine's beforeEnd)", async () => {
    const cwd = await tmp();
    await writeFile(join(cwd, "flow.ts"), `import { flow, task } from "cairn-dag";\nconst a = task("a").run(() => ({ v: 1 }));\nexport default flow("full").build(() => ({ v: a().v }));\n`);
    // A file size limit of 8 KB (a real EFBIG, as ENOSPC would be): the run's small files fit, its report does not.
    const r = await start("sh", ["-c", `ulimit -f 16 && exec "${process.execPath}" "${cairnBin}" run flow.ts --json`], { cwd, env: childEnv() }).done;
    expect(r.code, r.stderr).toBe(0);
    const flowRun = r.json.find((e) => e.type === "flow")!.runId as string;
    expect(r.stderr).toContain(`could not write the run's report (cairn/report.html): Cannot write ${join(cwd, ".cairn", "artifacts", flowRun, "cairn", "report.html")} of run ${flowRun}`);
    expect(r.stderr).toMatch(/EFBIG/);
    expect(r.stderr).not.toMatch(/beforeEnd/);
  }, 60_000);
});

/**
 * Whether `chattr +i` makes a folder read-only here (root ignores modes; an immutable folder
 * refuses even root's writes, with EPERM): ext4 and the like, as root. Elsewhere the test is skipped.
 */
function canFreeze(): boolean {
  const dir = mkdtempSync(join(tmpdir(), "cairn-freeze-"));
  const frozen = spawnSync("chattr", ["+i", dir]).status === 0;
  if (frozen) spawnSync("chattr", ["-i", dir]);
  rmSync(dir, { recursive: true, force: true });
  return frozen;
}

describe("a read-only .cairn", () => {
  it.runIf(canFreeze())("plan and explain read it (they write nothing); run says it cannot write there, naming --root", async () => {
    const { cwd, taskRun } = await ranOnce();
    const store = join(cwd, ".cairn");
    expect(spawnSync("chattr", ["-R", "+i", store]).status).toBe(0);
    try {
      const plan = await cairn(["plan", "flow.ts"], { cwd });
      expect(plan.code, plan.stderr).toBe(0);
      expect(plan.stdout).toMatch(new RegExp(`a\\s+cached\\s+from run ${taskRun}`));
      const explain = await cairn(["explain", "flow.ts", "a"], { cwd });
      expect(explain.code, explain.stderr).toBe(0);
      expect(explain.stdout).toContain(`would come from the cache: run ${taskRun}`);
      const run = await cairn(["run", "flow.ts"], { cwd });
      expect(run.code).not.toBe(0);
      // Refused by the engine's check of its state folder, before the store opens (exit 2, a setting).
      expect(run.stderr).toContain(`OptionError: Expected Cairn's state folder (\`root\`), by default .cairn in the working directory, to be a folder Cairn can make and write to, got ${store}: a file cannot be written in it (EPERM`);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("--root");
      // An experiment not in the store yet: plan creates nothing (it tried to, and failed here), and
      // reads the store, whose entry a run in that experiment would hit too.
      const other = await cairn(["plan", "flow.ts"], { cwd, env: { MLFLOW_EXPERIMENT_NAME: "other" } });
      expect(other.code, other.stderr).toBe(0);
      expect(other.stdout).toMatch(new RegExp(`a\\s+cached\\s+from run ${taskRun}`));
      const otherRun = await cairn(["run", "flow.ts"], { cwd, env: { MLFLOW_EXPERIMENT_NAME: "other" } });
      expect(otherRun.code).not.toBe(0);
      expect(otherRun.stderr).toContain(`got ${store}: a file cannot be written in it (EPERM`);
      expect(otherRun.stderr).toContain("--root");
    } finally {
      spawnSync("chattr", ["-R", "-i", store]);
    }
  }, 60_000);

  it.runIf(canMountReadOnly())("on a read-only file system, a run for an experiment not in the store yet names EROFS, not mkdir's ENOENT", async () => {
    const { cwd } = await ranOnce();
    const store = join(cwd, ".cairn");
    // A read-only bind mount of the store, in a mount namespace of its own: only this cairn sees it.
    const script = `mount --bind "${store}" "${store}" && mount -o remount,bind,ro "${store}" && exec "${process.execPath}" "${cairnBin}" run flow.ts`;
    const r = await start("unshare", ["-m", "sh", "-c", script], { cwd, env: childEnv({ MLFLOW_EXPERIMENT_NAME: "other" }) }).done;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`got ${store}: a file cannot be written in it (EROFS: read-only file system)`);
    expect(r.stderr).toContain("--root");
    expect(r.stderr).not.toMatch(/ENOENT/);
  }, 60_000);

  it("cairn runs lists the runs that can be read, and names the one that cannot (another user's file under umask 077), instead of failing whole", async () => {
    const { cwd, flowRun } = await ranOnce();
    const second = await cairn(["run", "flow.ts", "--json"], { cwd });
    const secondRun = (JSON.parse(second.stdout.trim().split("\n").at(-1)!) as { runId: string }).runId;
    const flowFile = join(cwd, ".cairn", "runs", `${flowRun}.json`);
    await rm(flowFile);
    await mkdir(flowFile); // EISDIR on read: as root, modes would not stop a read
    const runs = await cairn(["runs"], { cwd });
    expect(runs.code, runs.stderr).toBe(0);
    expect(runs.stderr).toMatch(new RegExp(`^cairn: Cannot read ${flowFile}.*EISDIR.*; run ${flowRun} is not listed until it can be read\\.\n$`));
    expect(runs.stdout).toContain(secondRun);
    expect(runs.stdout).not.toContain(flowRun);
  });
});

/** Whether a read-only bind mount can be made in a mount namespace of its own (root, with unshare). Elsewhere the test is skipped. */
function canMountReadOnly(): boolean {
  const dir = mkdtempSync(join(tmpdir(), "cairn-ro-"));
  const made = spawnSync("unshare", ["-m", "sh", "-c", `mount --bind "${dir}" "${dir}" && mount -o remount,bind,ro "${dir}" && ! touch "${dir}/x" 2>/dev/null`]).status === 0;
  rmSync(dir, { recursive: true, force: true });
  return made;
}

describe("a store that cannot take the flow run's own record", () => {
  /** A folder with a two-task flow `opening` (b reads a) that has run once, so that its store exists. */
  async function ranTwoTasks(): Promise<string> {
    const cwd = await tmp();
    await writeFile(
      join(cwd, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nconst a = task("a").run(() => ({ v: 1 }));\nconst b = task("b").run(({ v }: { v: number }) => ({ w: v + 1 }));\nexport default flow("opening").build(() => ({ w: b({ v: a().v }).w }));\n`,
    );
    const run = await cairn(["run", "flow.ts"], { cwd });
    expect(run.code, run.stderr).toBe(0);
    return cwd;
  }

  /** What a run that could not record itself must show: the flow failed with `error`, no task started, none cancelled, none recorded. */
  async function expectNothingStarted(cwd: string, r: { code: number | null; json: Array<Record<string, unknown>>; stderr: string }, error: RegExp): Promise<void> {
    expect(r.code, r.stderr).toBe(1);
    const tasks = r.json.filter((e) => e.type === "task") as Array<{ task: string; status: string; error?: { name: string; message: string } }>;
    expect(tasks.filter((e) => e.status === "running" || e.status === "cancelled")).toEqual([]);
    const ended = tasks.filter((e) => e.status === "skipped");
    expect(ended.map((e) => e.task).sort()).toEqual(["a", "b"]);
    for (const t of ended) expect(t.error).toEqual({ name: "FlowFailed", message: "Skipped because the flow failed before this task started (the flow's error says why)." });
    const flowEnd = r.json.find((e) => e.type === "flow" && e.status !== "running") as { status: string; runId: string; error: { name: string; message: string } };
    expect(flowEnd.status).toBe("failed");
    expect(flowEnd.error.name).toBe("TrackingError");
    expect(flowEnd.error.message).toMatch(error);
    // The flow run's index line is the only line this run added: its tasks got no runs.
    const [experiment] = await readdir(join(cwd, ".cairn", "experiments"));
    const lines = readFileSync(join(cwd, ".cairn", "experiments", experiment!, "runs.jsonl"), "utf8").trim().split("\n");
    expect(lines.filter((l) => (JSON.parse(l) as { runId: string }).runId === flowEnd.runId)).toHaveLength(1);
    expect(lines.filter((l) => (JSON.parse(l) as { parentRunId?: string }).parentRunId === flowEnd.runId)).toEqual([]);
  }

  it("a file where its artifacts folder belongs: the flow fails before any task starts, naming the path, the error and the fix; its tasks are skipped, not cancelled", async () => {
    const cwd = await ranTwoTasks();
    const artifacts = join(cwd, ".cairn", "artifacts");
    await rm(artifacts, { recursive: true });
    await writeFile(artifacts, "in the way\n");
    const r = await cairn(["run", "flow.ts", "--no-cache", "--json"], { cwd });
    await expectNothingStarted(cwd, r, new RegExp(`^Cannot write ${artifacts}/[0-9a-f]{32}/cairn of run [0-9a-f]{32} in ${join(cwd, ".cairn")}: ENOTDIR: .*; something else stands where Cairn expects it \\(a folder for a file, or a file for a folder\\); move it away or restore what was there\\.$`));
    // The terminal says the same: nothing cancelled, the error once under "Flow failed".
    const plain = await cairn(["run", "flow.ts", "--no-cache"], { cwd });
    expect(plain.code).toBe(1);
    expect(plain.stdout).not.toMatch(/cancelled/);
    expect(plain.stdout).toMatch(/skipped\s+a\s+Skipped because the flow failed before this task started/);
    expect(plain.stdout).toMatch(/Flow failed in .*\nTrackingError: Cannot write .*ENOTDIR.*move it away/);
  }, 60_000);

  it("a file where its runs folder belongs: the flow fails before any task starts, naming it", async () => {
    const cwd = await ranTwoTasks();
    const runs = join(cwd, ".cairn", "runs");
    await rm(runs, { recursive: true });
    await writeFile(runs, "in the way\n");
    const r = await cairn(["run", "flow.ts", "--json"], { cwd });
    await expectNothingStarted(cwd, r, new RegExp(`^LocalStore: cannot write run [0-9a-f]{32} to ${join(cwd, ".cairn")}: ENOTDIR: not a directory, open '${runs}/.*'; something else stands where`));
  }, 60_000);

  it.runIf(canMountReadOnly())("a read-only artifacts folder (the rest of the store writable): refused before any task starts (exit 2), naming EROFS and where to point the store", async () => {
    const cwd = await ranTwoTasks();
    const artifacts = join(cwd, ".cairn", "artifacts");
    // A read-only bind mount of the artifacts folder, in a mount namespace of its own: only this cairn sees it.
    const script = `mount --bind "${artifacts}" "${artifacts}" && mount -o remount,bind,ro "${artifacts}" && exec "${process.execPath}" "${cairnBin}" run flow.ts --no-cache --json`;
    const r = await start("unshare", ["-m", "sh", "-c", script], { cwd, env: childEnv() }).done;
    // Refused by the root's check before the flow starts (each folder Cairn keeps in the root is checked): exit 2, no task event.
    expect(r.code, r.stderr).toBe(2);
    expect(r.json.filter((e) => e.type === "task")).toEqual([]);
    expect(r.stderr).toContain(`${artifacts} cannot be written to (EROFS: read-only file system`);
    expect(r.stderr).toContain("its file system is read-only; point the store at a writable folder");
    expect(r.stderr).not.toContain("chmod");
  }, 60_000);
});
