/**
 * The quickstart and the CLI against a real mlflow server, read back with MLflow's
 * own Python client: what a user sees in the MLflow UI.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Artifact, flow, task } from "cairn-dag";
import { readWithMlflow } from "../packages/mlflow/test/mlflow-read.ts";
import { type MlflowServer, startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const repo = resolve(import.meta.dirname, "..");
const bin = join(repo, "packages/cli/bin/cairn.mjs");

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

function cairn(args: string[], onStdout?: (out: string, child: ChildProcess) => void, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise(async (done, fail) => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-e2e-"));
    const child = spawn(process.execPath, [bin, ...args], {
      cwd,
      env: { ...process.env, MLFLOW_TRACKING_URI: server.uri, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      onStdout?.(stdout, child);
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

const flowRunIdOf = (stdout: string) => (JSON.parse(stdout.split("\n")[0]!) as { runId: string }).runId;

describe("the quickstart in a real MLflow server", () => {
  it("records one parent run per flow run and one child run per task, as MlflowClient reads them", async () => {
    const r = await cairn(["run", join(repo, "examples/quickstart/flow.ts"), "--json", "-p", "rows=400", "--experiment", "quickstart-e2e"]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const runId = flowRunIdOf(r.stdout);

    const [experiment, parent, children, parentArtifacts] = await readWithMlflow(server.uri, [
      { op: "experiment_by_name", name: "quickstart-e2e" },
      { op: "get_run", run_id: runId },
      { op: "search_runs", experiment_of_run: runId, filter: `tags.mlflow.parentRunId = '${runId}'` },
      { op: "list_artifacts", run_id: runId, path: "cairn" },
    ]);
    expect(parent).toMatchObject({ run_name: "quickstart", status: "FINISHED", experiment_id: experiment.experiment_id });
    expect(parent.params).toMatchObject({ rows: "400", lr: "0.5", epochs: "200" });
    expect(parent.tags).toMatchObject({ "mlflow.source.type": "LOCAL", "cairn.flow": "quickstart" });
    expect(parent.tags["mlflow.user"]).toBeTruthy();
    expect(parent.metrics.accuracy).toBeGreaterThan(0.5);

    expect(children.map((c: { run_name: string }) => c.run_name).sort()).toEqual(["evaluate", "load", "report", "split", "stats", "stats-2", "stats-3", "train"]);
    for (const child of children) expect(child.status).toBe("FINISHED");
    // cairn/report.html: every `cairn run` logs its report (issue 18).
    expect(parentArtifacts.map((a: { path: string }) => a.path).sort()).toEqual(["cairn/graph.json", "cairn/graph.mmd", "cairn/report.html"]);

    const train = children.find((c: { run_name: string }) => c.run_name === "train");
    expect(train.params).toMatchObject({ lr: "0.5", epochs: "200" });
    expect(train.tags).toMatchObject({ "cairn.task": "train", "cairn.node_id": "train", "cairn.attempts": "1" });
    expect(train.tags["cairn.cache_key"]).toMatch(/^[0-9a-f]{64}$/);
    const dest = await mkdtemp(join(tmpdir(), "cairn-e2e-dl-"));
    const [loss, trainArtifacts, downloaded] = await readWithMlflow(server.uri, [
      { op: "metric_history", run_id: train.run_id, key: "loss" },
      { op: "list_artifacts", run_id: train.run_id, path: null },
      { op: "download_artifact", run_id: train.run_id, path: "cairn/outputs.json", dst: dest },
    ]);
    expect(loss.map((p: { step: number }) => p.step)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180, 190, 199]);
    expect(trainArtifacts.map((a: { path: string }) => a.path).sort()).toEqual(["cairn", "model.json"]);
    const manifest = JSON.parse(await readFile(downloaded.local_path, "utf8"));
    expect(manifest.values.model).toMatchObject({ kind: "cairn.artifact", artifactPath: "model.json", digest: expect.stringMatching(/^[0-9a-f]{64}$/) });

    // The second run reuses everything, and says so in MLflow.
    const again = await cairn(["run", join(repo, "examples/quickstart/flow.ts"), "--json", "-p", "rows=400", "--experiment", "quickstart-e2e"]);
    expect(again.code).toBe(0);
    const secondId = flowRunIdOf(again.stdout);
    const [second] = await readWithMlflow(server.uri, [
      { op: "search_runs", experiment_ids: [experiment.experiment_id], filter: `tags.mlflow.parentRunId = '${secondId}'` },
    ]);
    expect(second).toHaveLength(8);
    const cachedTrain = second.find((c: { run_name: string }) => c.run_name === "train");
    expect(cachedTrain.status).toBe("FINISHED");
    expect(cachedTrain.tags["cairn.cached_from"]).toBe(train.run_id);
  });

  it("a failed flow ends FAILED, its failed task FAILED", async () => {
    const r = await cairn(["run", join(repo, "test/fixtures/fails.flow.ts"), "--json"]);
    expect(r.code).toBe(1);
    const runId = flowRunIdOf(r.stdout);
    const [parent, children] = await readWithMlflow(server.uri, [
      { op: "get_run", run_id: runId },
      { op: "search_runs", experiment_of_run: runId, filter: `tags.mlflow.parentRunId = '${runId}'` },
    ]);
    expect(parent.status).toBe("FAILED");
    expect(Object.fromEntries(children.map((c: { run_name: string; status: string }) => [c.run_name, c.status]))).toEqual({ ok: "FINISHED", bad: "FAILED" });
  });

  /** Runs `cairn run ARGS`, sends SIGTERM once `ready(stdout)`, and reads back the flow run and its children. */
  async function stoppedRun(args: string[], ready: (stdout: string) => boolean, env: NodeJS.ProcessEnv = {}) {
    let sentAt = 0;
    const r = await cairn(["run", ...args], (out, child) => {
      if (!sentAt && ready(out)) {
        sentAt = Date.now();
        child.kill("SIGTERM");
      }
    }, env);
    expect(sentAt).toBeGreaterThan(0);
    expect(r.code).toBe(130);
    const runId = flowRunIdOf(r.stdout);
    const [parent, children] = await readWithMlflow(server.uri, [
      { op: "get_run", run_id: runId },
      { op: "search_runs", experiment_of_run: runId, filter: `tags.mlflow.parentRunId = '${runId}'` },
    ]);
    return { sentAt, stderr: r.stderr, parent, children: children as Array<{ status: string; end_time: number; tags: Record<string, string> }> };
  }

  it("SIGTERM ends the flow and its running tasks KILLED", async () => {
    const { parent, children } = await stoppedRun(
      [join(repo, "test/fixtures/slow.flow.ts"), "--json", "--no-cache"],
      (out) => (out.match(/"status":"running","runId":"[0-9a-f]+","task"/g) ?? []).length >= 2,
    );
    expect(parent.status).toBe("KILLED");
    expect(children.map((c) => c.status)).toEqual(["KILLED", "KILLED"]);
  });

  it("SIGTERM while cache hits are being recorded: the hits' runs under way are recorded FINISHED before the process exits, the others get none and are counted", async () => {
    const file = join(repo, "test/fixtures/hits-then-slow.flow.ts");
    const experiment = ["--experiment", `hits-sigterm-${Date.now()}`];
    expect((await cairn(["run", file, "--json", ...experiment])).code).toBe(0);
    // A slow server (one worker) records the 60 hits two requests each, off the tasks' path:
    // the signal comes as soon as the hits are done, before their runs are all recorded.
    const { stderr, parent, children } = await stoppedRun(
      [file, "--json", "-p", "waitMs=60000", ...experiment],
      (out) => (out.match(/"status":"cached"/g) ?? []).length >= 60,
      { CAIRN_MLFLOW_TRACE: "1" },
    );
    expect(parent.status).toBe("KILLED");
    const byStatus: Record<string, number> = {};
    for (const c of children) byStatus[`${c.status}/${c.tags["cairn.status"]}`] = (byStatus[`${c.status}/${c.tags["cairn.status"]}`] ?? 0) + 1;
    // A run is FINISHED whole or not there: none is left RUNNING, and the ones not sent are said.
    const { "FINISHED/cached": finished = 0, ...others } = byStatus;
    expect(others).toEqual({ "KILLED/cancelled": 1 });
    const unsent = Number(/(\d+) cached tasks?'s? runs? (?:were|was) not recorded: the run was cancelled first/.exec(stderr)?.[1] ?? 0);
    expect(finished + unsent, stderr).toBe(60);
  });

  /** A flow of `n` hits (a map over a param, and the task after it), cold then warm, in its own experiment; the warm run's output. */
  async function warmMap(n: number, onStdout?: (out: string, child: ChildProcess) => void) {
    const args = ["run", join(repo, "test/cli/fixtures/param-map.flow.ts"), "-p", `items=${JSON.stringify(Array.from({ length: n }, (_, i) => `i${i}`))}`, "--no-report", "--experiment", `big-map-${n}-${Date.now()}`];
    const cold = await cairn(args);
    expect(cold.code, cold.stderr).toBe(0);
    return cairn(args, onStdout);
  }

  it("after a map of hits, while their runs are still being recorded, the flow says so and how many are left, then succeeds", async () => {
    const r = await warmMap(150);
    expect(r.code, r.stderr).toBe(0);
    // Before, nothing was said from the last hit to "Flow succeeded" (minutes, for thousands of hits).
    const lines = r.stdout.split("\n");
    const recording = lines.findIndex((l) => /^\[flow\] recording 151 cached tasks' runs in MLflow \(\d+ left\)$/.test(l));
    expect(recording, r.stdout).toBeGreaterThan(lines.findIndex((l) => /cached +reduce/.test(l)));
    expect(recording).toBeLessThan(lines.findIndex((l) => l.startsWith("Flow succeeded in")));
  }, 240_000);

  it("SIGINT while a map of hits' runs are being recorded: the flow is cancelled, its run KILLED with its reason, exit 130, and the hits not sent are counted", async () => {
    let sentAt = 0;
    const r = await warmMap(150, (out, child) => {
      // The last hit: the flow now only waits for the hits' runs.
      if (!sentAt && /cached +reduce/.test(out)) {
        sentAt = Date.now();
        child.kill("SIGINT");
      }
    });
    expect(sentAt).toBeGreaterThan(0);
    // Before: "Flow succeeded" and exit 130, the flow run FINISHED with no reason, after every hit's run was sent.
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/Flow cancelled in /);
    expect(r.stdout).not.toMatch(/Flow succeeded/);
    const runId = /run ([0-9a-f]{32})/.exec(r.stdout)![1]!;
    // The items' runs are the map run's children: the experiment's hits are this run's (the cold run had none).
    const [parent, found] = await readWithMlflow(server.uri, [
      { op: "get_run", run_id: runId },
      { op: "search_runs", experiment_of_run: runId, filter: "tags.`cairn.status` = 'cached'" },
    ]);
    expect(parent.status).toBe("KILLED");
    expect(parent.tags["cairn.cancel_reason"]).toBe("SIGINT");
    const hits = found as Array<{ status: string }>;
    expect(hits.length).toBeGreaterThan(0);
    expect(hits.every((c) => c.status === "FINISHED")).toBe(true);
    const unsent = Number(/(\d+) cached tasks?'s? runs? (?:were|was) not recorded/.exec(r.stdout)?.[1] ?? 0);
    expect(hits.length + unsent, r.stdout).toBe(151);
  }, 240_000);

  it("CAIRN_MLFLOW_TRACE=1 prints one line per request; 0 (or false, or empty) prints none", async () => {
    const file = join(repo, "test/fixtures/ok.flow.ts");
    const experiment = ["--experiment", `trace-${Date.now()}`];
    const on = await cairn(["run", file, ...experiment], undefined, { CAIRN_MLFLOW_TRACE: "1" });
    expect(on.code, on.stderr).toBe(0);
    expect(on.stderr).toMatch(/POST runs\/update -> 200/);
    // Before, any value turned it on: CAIRN_MLFLOW_TRACE=0 traced every request.
    for (const value of ["0", "false", ""]) {
      const off = await cairn(["run", file, ...experiment], undefined, { CAIRN_MLFLOW_TRACE: value });
      expect(off.code, off.stderr).toBe(0);
      expect(off.stderr, `CAIRN_MLFLOW_TRACE=${value}`).not.toMatch(/ -> \d{3}/);
    }
  });

  it("an unreachable server is a clear error before any task runs", async () => {
    const cwd = await mkdtemp(join(tmpdir(), "cairn-e2e-"));
    const r = await new Promise<{ code: number | null; stderr: string; stdout: string }>((done) => {
      const child = spawn(process.execPath, [bin, "run", join(repo, "test/fixtures/ok.flow.ts")], {
        cwd,
        env: { ...process.env, MLFLOW_TRACKING_URI: "http://127.0.0.1:9", NO_COLOR: "1" },
      });
      let stderr = "";
      let stdout = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d));
      child.stdout.on("data", (d: Buffer) => (stdout += d));
      child.on("close", (code) => done({ code, stderr, stdout }));
    });
    expect(r.stderr).toMatch(/TrackerUnreachableError: Cannot reach the MLflow tracking server at http:\/\/127\.0\.0\.1:9/);
    expect(r.stdout).not.toMatch(/running/);
    expect(r.code).toBe(3);
  });

  it("a sqlite: tracking URI says how to start a server", async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = spawn(process.execPath, [bin, "run", join(repo, "test/fixtures/ok.flow.ts")], {
        env: { ...process.env, MLFLOW_TRACKING_URI: "sqlite:///mlflow.db", NO_COLOR: "1" },
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d));
      child.on("close", (code) => done({ code, stderr }));
    });
    expect(r.stderr).toMatch(/mlflow server --backend-store-uri sqlite:\/\/\/mlflow\.db/);
    expect(r.code).toBe(2);
  });

  it("a second machine with an empty local cache gets hits through the server, and downloads artifacts it reads", async () => {
    let produced = 0;
    const produce = task("produce")
      .input<{ n: number }>()
      .run(async ({ n }, ctx) => (produced++, { data: await ctx.artifacts.write("data.txt", "x".repeat(n)) }));
    const measure1 = task("measure").input<{ data: Artifact }>().run(async ({ data }) => ({ size: (await readFile(data.path, "utf8")).length }));
    const measure2 = task("measure").input<{ data: Artifact }>().run(async ({ data }) => ({ size: (await readFile(data.path, "utf8")).length * 10 }));
    const build = (measure: typeof measure1) => () => ({ size: measure({ data: produce({ n: 42 }).data }).size });
    const env = { MLFLOW_TRACKING_URI: server.uri };
    const machineA = await mkdtemp(join(tmpdir(), "cairn-machine-a-"));
    const first = await (await flow("shared-by-server").build(build(measure1)).run({ root: machineA, env })).wait();
    expect(first.status).toBe("succeeded");

    // Machine B: nothing local; the same server.
    const machineB = await mkdtemp(join(tmpdir(), "cairn-machine-b-"));
    const same = await (await flow("shared-by-server").build(build(measure1)).run({ root: machineB, env })).wait();
    expect(Object.fromEntries(Object.entries(same.tasks).map(([k, t]) => [k, t.status]))).toEqual({ produce: "cached", measure: "cached" });
    expect(same.tasks.produce!.cachedFrom).toBe(first.tasks.produce!.runId);
    expect(produced).toBe(1);

    // Machine C: measure's code changed, so it runs and reads produce's artifact, downloaded from the server.
    const machineC = await mkdtemp(join(tmpdir(), "cairn-machine-c-"));
    const changed = await (await flow("shared-by-server").build(build(measure2)).run({ root: machineC, env })).wait();
    expect(changed.tasks.produce!.status).toBe("cached");
    expect(changed.tasks.measure!.status).toBe("succeeded");
    expect(changed.outputs).toEqual({ size: 420 });
    expect(produced).toBe(1);
    const [hit] = await readWithMlflow(server.uri, [{ op: "get_run", run_id: changed.tasks.produce!.runId }]);
    expect(hit.tags["cairn.cached_from"]).toBe(first.tasks.produce!.runId);
  });
});
