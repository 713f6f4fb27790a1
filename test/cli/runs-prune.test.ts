/**
 * `cairn runs prune`: an operator running a flow from cron saw `.cairn` only grow (runs, their
 * artifacts and report pages, downloads, artifact stamps) and every command slow down with it,
 * and no command removed runs. Real runs in a real `.cairn`, and a real MLflow server for the
 * local copies of its runs' files.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, start } from "../cache/helpers.ts";
import { cairn, fixture, tmp } from "./helpers.ts";

const flowFile = fixture("artifact-output.flow.ts");
const DAY = 86_400_000;

interface Listed {
  runId: string;
}

async function flowRuns(cwd: string, env?: NodeJS.ProcessEnv): Promise<string[]> {
  const r = await cairn(["runs", "--json", "-n", "100"], { cwd, ...(env ? { env } : {}) });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Listed[]).map((run) => run.runId);
}

async function sourceRuns(cwd: string, env?: NodeJS.ProcessEnv): Promise<string[]> {
  const r = await cairn(["cache", "ls", "--json"], { cwd, ...(env ? { env } : {}) });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as Array<{ sourceRunId: string }>).map((e) => e.sourceRunId);
}

/** A file (and its folder) last written `days` ago. */
async function oldFile(path: string, text: string, days: number): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
  const then = new Date(Date.now() - days * DAY);
  await utimes(path, then, then);
  await utimes(join(path, ".."), then, then);
}

const OTHER_RUN = "0123456789abcdef0123456789abcdef";

describe("cairn runs prune on the embedded store", () => {
  it("removes old flow runs with their files, keeps the cache's source runs: a hit afterwards is still right", async () => {
    const cwd = await tmp("cairn-cli-runs-prune-");
    for (let i = 0; i < 3; i++) expect((await cairn(["run", flowFile], { cwd })).code).toBe(0);
    const [source] = await sourceRuns(cwd);
    const runs = await flowRuns(cwd);
    expect(runs).toHaveLength(3);
    const root = join(cwd, ".cairn");
    // What nothing refers to: another root's download of a run, and the stamps of a run with no files here.
    await oldFile(join(root, "downloads", OTHER_RUN, "data.csv"), "a,b\n", 40);
    await oldFile(join(root, "artifact-stamps", `${"f".repeat(32)}.json`), "{}", 40);
    await new Promise((r) => setTimeout(r, 20));

    const dry = await cairn(["runs", "prune", "--older-than", "10ms", "--dry-run"], { cwd });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^Would remove 2 flow runs and 2 other runs under them .* [\d.]+ KB of records, logs, artifacts and report pages\.$/m);
    expect(dry.stdout).toMatch(/^Kept 2 older runs of flow runs a cache entry uses a run of as its source, each flow run whole with its tasks: `cairn cache prune` removes entries/m);
    expect(dry.stdout).toMatch(/^Would remove 1 local copy of runs' artifacts \(4 B\) and 1 artifact stamp \(2 B\) that nothing refers to/m);
    expect(dry.stdout).toContain("Nothing was removed (--dry-run).");
    // The same figures as one JSON document, for a cron job to read (before: --json was refused, exit 2).
    const dryJson = await cairn(["runs", "prune", "--older-than", "10ms", "--dry-run", "--json"], { cwd });
    expect(dryJson.code, dryJson.stderr).toBe(0);
    const said = JSON.parse(dryJson.stdout) as { endedBefore: number; tracker: { uri: string }; runs: { freedBytes: number } };
    expect(said).toMatchObject({
      dryRun: true,
      tracker: { kind: "local" },
      runs: { removedRuns: 4, removedFlowRuns: 2, keptForCache: 2, keptRunning: 0 },
      localCopies: { folders: ["downloads", "artifact-stamps"], copies: 1, copyBytes: 4, stamps: 1, stampBytes: 2 },
    });
    expect(said.runs.freedBytes).toBeGreaterThan(0);
    expect(said.endedBefore).toBeLessThan(Date.now());
    expect(dry.stdout).toContain(` from ${said.tracker.uri}: `);
    expect(await flowRuns(cwd)).toEqual(runs);
    expect(existsSync(join(root, "downloads", OTHER_RUN))).toBe(true);

    const r = await cairn(["runs", "prune", "--older-than", "10ms"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Removed 2 flow runs and 2 other runs under them/m);
    expect(r.stdout).toMatch(/^Removed 1 local copy of runs' artifacts \(4 B\) and 1 artifact stamp/m);
    // The first flow run computed the entry's outputs: it stays, with its report page; the others' pages go.
    const [first, ...rest] = [...runs].reverse();
    expect(await flowRuns(cwd)).toEqual([first]);
    expect(existsSync(join(root, "artifacts", first!, "cairn", "report.html"))).toBe(true);
    for (const id of rest) expect(existsSync(join(root, "artifacts", id)), id).toBe(false);
    expect(existsSync(join(root, "downloads", OTHER_RUN))).toBe(false);
    expect(await readdir(join(root, "artifact-stamps"))).toEqual([`${source}.json`]);

    const again = await cairn(["run", flowFile, "--json"], { cwd });
    expect(again.code, again.stderr).toBe(0);
    const events = again.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { type: string; status?: string; outputs?: { report: { path: string }; rows: number } });
    expect(events.find((e) => e.type === "task" && e.status === "cached")).toBeDefined();
    const end = events.at(-1)!;
    expect(end.outputs?.rows).toBe(3);
    expect(readFileSync(end.outputs!.report.path, "utf8")).toBe("rows=3\n");
  });

  it("a failed flow run kept for its cache sources stays whole: show still lists its failed and skipped tasks, and the failed one's error", async () => {
    // Before, only the sources and the flow run stayed: "Removed 0 flow runs and 3 other runs under
    // them", then `cairn show` counted 1 failed and 2 skipped tasks its table no longer listed.
    const cwd = await tmp("cairn-cli-runs-prune-");
    const ran = await cairn(["run", fixture("failing-load.flow.ts")], { cwd });
    expect(ran.code, ran.stderr).toBe(1);
    const [flowRunId] = await flowRuns(cwd);
    const before = await cairn(["show", flowRunId!, "--json"], { cwd });
    const tasks = (JSON.parse(before.stdout) as { tasks: { runId: string; name: string; status: string }[] }).tasks;
    const load = tasks.find((t) => t.name === "load")!;
    expect(load.status).toBe("FAILED");
    await new Promise((r) => setTimeout(r, 20));

    const r = await cairn(["runs", "prune", "--older-than", "10ms"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Removed 0 flow runs and 0 other runs under them/m);
    expect(r.stdout).toMatch(/^Kept 9 older runs of flow runs a cache entry uses a run of as its source, each flow run whole with its tasks/m);
    const shown = await cairn(["show", flowRunId!], { cwd });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^tasks: 8 \(/m);
    for (const name of ["extract", "transform", "validate", "load", "report", "notify"]) expect(shown.stdout).toMatch(new RegExp(`^${name} `, "m"));
    const after = JSON.parse((await cairn(["show", flowRunId!, "--json"], { cwd })).stdout) as { tasks: unknown[] };
    expect(after.tasks).toHaveLength(tasks.length);
    const one = await cairn(["show", load.runId], { cwd });
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain("Error: the warehouse refused the rows");
    expect(existsSync(join(cwd, ".cairn", "artifacts", load.runId, "cairn", "error.txt"))).toBe(true);
  });

  it("once cache prune removed the entry, its source run goes at the next runs prune; cache prune says so", async () => {
    const cwd = await tmp("cairn-cli-runs-prune-");
    expect((await cairn(["run", flowFile], { cwd })).code).toBe(0);
    const [source] = await sourceRuns(cwd);
    const pruned = await cairn(["cache", "prune", "--max-size", "1B"], { cwd });
    expect(pruned.stdout).toContain("`cairn runs prune --older-than DURATION` removes old runs with their files");
    await new Promise((r) => setTimeout(r, 20));
    const r = await cairn(["runs", "prune", "--older-than", "10ms"], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Removed 1 flow run and 1 other run under them/m);
    expect(r.stdout).not.toMatch(/Kept/);
    expect(existsSync(join(cwd, ".cairn", "artifacts", source!))).toBe(false);
    expect(await flowRuns(cwd)).toEqual([]);
  });

  it("a flow run going on while prunes run is unharmed: it ends, is listed, and its results are hits next time", async () => {
    const cwd = await tmp("cairn-cli-runs-prune-");
    for (let i = 0; i < 2; i++) expect((await cairn(["run", flowFile], { cwd })).code).toBe(0);
    const slow = fixture("progress-map.flow.ts");
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const live = start(process.execPath, [cairnBin, "run", slow, "--json"], { cwd, env: childEnv(), onStdout: (out) => out.includes('"status":"running"') && started() });
    await running;
    // Prunes one after another while the flow runs: its runs are young, RUNNING, and created meanwhile.
    let prunes = 0;
    let ended = false;
    void live.done.then(() => (ended = true));
    while (!ended || prunes === 0) {
      const r = await cairn(["runs", "prune", "--older-than", "1ms"], { cwd });
      expect(r.code, r.stderr).toBe(0);
      prunes++;
    }
    const exit = await live.done;
    expect(exit.code, exit.stderr).toBe(0);
    const listed = await cairn(["runs", "--json"], { cwd });
    expect((JSON.parse(listed.stdout) as Array<{ name: string; status: string }>).find((run) => run.name === "progress-map")).toMatchObject({ status: "FINISHED" });
    const again = await cairn(["run", slow], { cwd });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^gen\s+cached/m);
    expect(again.stdout).toMatch(/^total\s+cached/m);
    expect(again.stdout.match(/^sq\[\d+\]\s+cached/gm)).toHaveLength(12);
  });

  it("refuses a limit of zero or none, removing nothing", async () => {
    const cwd = await tmp("cairn-cli-runs-prune-");
    expect((await cairn(["run", flowFile], { cwd })).code).toBe(0);
    for (const args of [["--older-than", "0d"], [], ["--older-than", "30"]]) {
      const r = await cairn(["runs", "prune", ...args], { cwd });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(/Expected `?--older-than/);
    }
    expect(await flowRuns(cwd)).toHaveLength(1);
  });

  it("in a folder with no .cairn (a cron job started elsewhere) removes nothing and makes nothing, exit 0", async () => {
    const cwd = await tmp("cairn-cli-runs-prune-empty-");
    for (const args of [["--older-than", "30d"], ["--older-than", "30d", "--dry-run"]]) {
      const r = await cairn(["runs", "prune", ...args], { cwd });
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/0 flow runs/);
    }
    expect(existsSync(join(cwd, ".cairn"))).toBe(false);
  });
});

describe("cairn runs prune with an MLflow server", () => {
  let server: MlflowServer;
  beforeAll(async () => {
    server = await startMlflowServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("removes only the local copies of runs' files no cache entry names; the server's runs stay", async () => {
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const cwd = await tmp("cairn-cli-runs-prune-mlflow-");
    const ok = await cairn(["run", flowFile, "--no-report"], { cwd, env });
    expect(ok.code, ok.stderr).toBe(0);
    const [source] = await sourceRuns(cwd, env);
    const runs = await flowRuns(cwd, env);
    const root = join(cwd, ".cairn");
    // The files a flow run's tasks wrote here before upload, and an old copy of another run.
    expect(existsSync(join(root, "artifacts", source!, "report.txt"))).toBe(true);
    await oldFile(join(root, "artifacts", OTHER_RUN, "model.bin"), "weights", 40);
    await new Promise((r) => setTimeout(r, 20));
    const r = await cairn(["runs", "prune", "--older-than", "10ms"], { cwd, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`The runs on the MLflow server at ${server.uri} stay`);
    expect(r.stdout).toContain("`mlflow gc`");
    expect(r.stdout).toMatch(/^Removed \d+ local cop(y|ies) of runs' artifacts .* \(artifacts\/, downloads\/, artifact-stamps\/\)\.$/m);
    // With --json: no runs of its own to remove (null), the note on stderr, stdout the document only.
    const said = await cairn(["runs", "prune", "--older-than", "10ms", "--dry-run", "--json"], { cwd, env });
    expect(said.code, said.stderr).toBe(0);
    expect(JSON.parse(said.stdout)).toMatchObject({ dryRun: true, tracker: { kind: "mlflow", uri: server.uri }, runs: null, localCopies: { folders: ["artifacts", "downloads", "artifact-stamps"], copies: 0 } });
    expect(said.stderr).toContain(`The runs on the MLflow server at ${server.uri} stay`);
    expect(existsSync(join(root, "artifacts", OTHER_RUN))).toBe(false);
    expect(existsSync(join(root, "artifacts", source!, "report.txt"))).toBe(true);
    expect(await flowRuns(cwd, env)).toEqual(runs);
    // A hit after it: the entry's files are where they were.
    const again = await cairn(["run", flowFile, "--json", "--no-report"], { cwd, env });
    expect(again.code, again.stderr).toBe(0);
    const end = JSON.parse(again.stdout.trim().split("\n").at(-1)!) as { outputs: { report: { path: string } } };
    expect(readFileSync(end.outputs.report.path, "utf8")).toBe("rows=3\n");
  });
});
