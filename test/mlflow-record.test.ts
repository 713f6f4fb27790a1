/**
 * What a flow run leaves in MLflow for MLflow's users, in the embedded store and in a real
 * server read back with MLflow's own MlflowClient: MLflow's source tags on every run, named
 * after the flow file; every flow output on the flow run (`outputs.json`, numbers also as
 * metrics); cache hits a search tells apart and follows to their source (`cairn.status`,
 * `cairn.cached_from`, `cairn.cached_from.name`), whose metrics `cairn show` reads; the run's
 * page printed as MLflow's clients print it; and, from `plan`, `explain` and `run`, cache
 * entries whose source runs live in another tracker, named as such.
 */
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flow, LocalStore, OptionError, task } from "cairn-dag";
import { readWithMlflow } from "../packages/mlflow/test/mlflow-read.ts";
import { type MlflowServer, startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";
import { cairn, repo, tmp } from "./cli/helpers.ts";
import { cairnBin, childEnv, start } from "./cache/helpers.ts";
import { hasVenv, VENV_PYTHON } from "./kinds/helpers.ts";

const ok = join(repo, "test/fixtures/ok.flow.ts");
const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: repo, encoding: "utf8" }).trim();

interface Run {
  runId: string;
  experimentId: string;
  name: string;
  status: string;
  params: Record<string, string>;
  metrics: Record<string, number>;
  tags: Record<string, string>;
  cachedFrom?: { runId: string; name: string; metrics: Record<string, number>; params: Record<string, string> };
}
interface Shown {
  run: Run;
  tasks: Run[];
}
type Event = { type: string; status?: string; runId?: string; url?: string };

const events = (stdout: string) => stdout.trim().split("\n").map((l) => JSON.parse(l) as Event);
const flowRunIdOf = (stdout: string) => events(stdout)[0]!.runId!;
const show = async (runId: string, options: { cwd: string; env?: NodeJS.ProcessEnv }) => JSON.parse((await cairn(["show", runId, "--json"], options)).stdout) as Shown;

/** MLflow's source tags as a flow run of `ok.flow.ts` from this checkout records them. */
const SOURCE_TAGS = { "mlflow.source.type": "LOCAL", "mlflow.source.name": ok, "mlflow.source.git.commit": head };

describe("what a flow run records, in the embedded store", () => {
  let cwd: string;
  let first: Shown;
  let second: Shown;
  let secondRun: { stdout: string; stderr: string };
  beforeAll(async () => {
    cwd = await tmp("cairn-record-");
    const cold = await cairn(["run", ok, "--json"], { cwd });
    expect(cold.code, cold.stderr).toBe(0);
    secondRun = await cairn(["run", ok], { cwd });
    first = await show(flowRunIdOf(cold.stdout), { cwd });
    second = await show(/run ([0-9a-f]{32})/.exec(secondRun.stdout)![1]!, { cwd });
  });

  it("every run, the flow's and each task's, carries MLflow's source tags named after the flow file", () => {
    for (const run of [first.run, ...first.tasks, second.run, ...second.tasks]) {
      expect(run.tags).toMatchObject(SOURCE_TAGS);
      expect(run.tags["mlflow.user"]).toMatch(/\S/);
    }
  });

  it("a hit's run says it is cached, and from which run, by id and by name", () => {
    const sources = new Map(first.tasks.map((t) => [t.name, t]));
    expect(second.tasks).toHaveLength(2);
    for (const hit of second.tasks) {
      const source = sources.get(hit.name)!;
      expect(hit.tags).toMatchObject({ "cairn.status": "cached", "cairn.cached_from": source.runId, "cairn.cached_from.name": source.name });
      // Nothing copied onto the hit's run: its source's params and metrics come with it in `show`.
      expect(hit.metrics).toEqual({});
      expect(hit.cachedFrom).toMatchObject({ runId: source.runId, name: source.name, metrics: source.metrics, params: source.params });
    }
    expect(first.tasks.every((t) => t.tags["cairn.status"] !== "cached")).toBe(true);
  });

  it("cairn show shows a hit's metrics from its source run, in the flow's table and on the hit's own page", async () => {
    const table = (await cairn(["show", second.run.runId], { cwd })).stdout;
    for (const hit of second.tasks) {
      const source = first.tasks.find((t) => t.name === hit.name)!;
      expect(table).toMatch(new RegExp(`^${hit.name}\\s+cached\\s+\\S+\\s+${hit.runId}\\s+${source.runId}\\s+x=${source.metrics.x}$`, "m"));
    }
    const hit = second.tasks[0]!;
    const source = first.tasks.find((t) => t.name === hit.name)!;
    const page = (await cairn(["show", hit.runId], { cwd })).stdout;
    expect(page).toContain(`cached from ${source.runId} (${source.name}, FINISHED)`);
    expect(page).toContain(`metrics (of source run ${source.runId}): x=${source.metrics.x}`);
    expect(page).toMatch(new RegExp(`params \\(of source run ${source.runId}\\): x=${source.params.x}`));
  });

  it("every flow output is on the flow run: outputs.json, and the numbers as metrics", async () => {
    const store = new LocalStore({ root: join(cwd, ".cairn") });
    for (const { run } of [first, second]) {
      const file = await store.downloadArtifact(run.runId, "outputs.json", await tmp("cairn-record-out-"));
      expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ result: 12, label: "none" });
      expect(run.metrics).toMatchObject({ result: 12 });
    }
  });

  it("the flow run counts its tasks, so a fresh run and one served by the cache tell themselves apart", () => {
    expect(first.run.metrics).toEqual({ result: 12, "cairn.tasks": 2, "cairn.succeeded": 2, "cairn.cached": 0, "cairn.failed": 0, "cairn.cancelled": 0, "cairn.skipped": 0 });
    expect(second.run.metrics).toEqual({ result: 12, "cairn.tasks": 2, "cairn.succeeded": 2, "cairn.cached": 2, "cairn.failed": 0, "cairn.cancelled": 0, "cairn.skipped": 0 });
  });

  it("prints no run page with the embedded store", () => {
    expect(secondRun.stdout).not.toContain("View run");
  });

  it("an app names the flow's file with RunOptions.source; outside a git checkout there is no commit tag", async () => {
    const root = await tmp("cairn-record-app-");
    const outside = await tmp("cairn-record-nogit-");
    const f = flow("app").build(() => ({ n: task("one").run(() => 1)({}) }));
    const r = await (await f.run({ root, source: join(outside, "app.flow.ts"), env: {} })).wait();
    expect(r.status).toBe("succeeded");
    const store = new LocalStore({ root });
    const runs = [await store.getRun(r.runId), await store.getRun(r.tasks.one!.runId!)];
    for (const run of runs) {
      expect(run!.tags).toMatchObject({ "mlflow.source.type": "LOCAL", "mlflow.source.name": join(outside, "app.flow.ts") });
      expect(run!.tags["mlflow.source.git.commit"]).toBeUndefined();
    }
  });

  it.each([[""], [42]])("RunOptions.source %j is refused, saying what it expects", async (source) => {
    const f = flow("app").build(() => ({}));
    const run = f.run({ root: await tmp("cairn-record-bad-"), source: source as string, env: {} });
    await expect(run).rejects.toBeInstanceOf(OptionError);
    await expect(run).rejects.toThrow(/source.*the path of the flow's file/);
  });
});

describe("what a flow run records in an MLflow server, read with MlflowClient", () => {
  let server: MlflowServer;
  let env: NodeJS.ProcessEnv;
  let cwd: string;
  let cold: { stdout: string; stderr: string; code: number | null };
  let warm: { stdout: string; stderr: string; code: number | null };
  beforeAll(async () => {
    server = await startMlflowServer();
    env = { MLFLOW_TRACKING_URI: server.uri };
    cwd = await tmp("cairn-record-mlflow-");
    cold = await cairn(["run", ok, "--json", "--experiment", "record"], { cwd, env });
    warm = await cairn(["run", ok, "--experiment", "record"], { cwd, env });
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("--json puts the run's page on the flow events; the human view prints it at the start and the end", async () => {
    expect(cold.code, cold.stderr).toBe(0);
    const flowEvents = events(cold.stdout).filter((e) => e.type === "flow");
    const runId = flowEvents[0]!.runId!;
    const [run] = await readWithMlflow(server.uri, [{ op: "get_run", run_id: runId }]);
    const url = `${server.uri}/#/experiments/${run.experiment_id}/runs/${runId}`;
    expect(flowEvents.map((e) => [e.status, e.url])).toEqual([
      ["running", url],
      ["succeeded", url],
    ]);
    expect(warm.code, warm.stderr).toBe(0);
    const warmId = /run ([0-9a-f]{32})/.exec(warm.stdout)![1]!;
    const lines = warm.stdout.split("\n").filter((l) => l.startsWith("View run "));
    expect(lines).toEqual([`View run ok at: ${url.replace(runId, warmId)}`, `View run ok at: ${url.replace(runId, warmId)}`]);
  });

  it("source tags on every run, hits a search finds by cairn.status and follows to their source, outputs on the flow run", async () => {
    const coldId = flowRunIdOf(cold.stdout);
    const warmId = /run ([0-9a-f]{32})/.exec(warm.stdout)![1]!;
    const [flowRun] = await readWithMlflow(server.uri, [{ op: "get_run", run_id: coldId }]);
    const exp = [flowRun.experiment_id];
    const [coldTasks, hits, warmRun, outputs, artifacts] = await readWithMlflow(server.uri, [
      { op: "search_runs", experiment_ids: exp, filter: `tags.mlflow.parentRunId = '${coldId}'` },
      { op: "search_runs", experiment_ids: exp, filter: `tags."cairn.status" = 'cached'` },
      { op: "get_run", run_id: warmId },
      { op: "download_artifact", run_id: warmId, path: "outputs.json", dst: await tmp("cairn-record-dl-") },
      { op: "list_artifacts", run_id: coldId, path: null },
    ]);
    for (const run of [flowRun, warmRun, ...coldTasks, ...hits]) {
      expect(run.tags).toMatchObject(SOURCE_TAGS);
      expect(run.tags["mlflow.user"]).toMatch(/\S/);
    }
    expect(coldTasks).toHaveLength(2);
    expect(hits).toHaveLength(2);
    const byName = new Map(coldTasks.map((t: { run_name: string }) => [t.run_name, t]));
    for (const hit of hits) {
      expect(hit.tags["mlflow.parentRunId"]).toBe(warmId);
      const source = byName.get(hit.run_name) as { run_id: string; run_name: string };
      expect(hit.tags).toMatchObject({ "cairn.cached_from": source.run_id, "cairn.cached_from.name": source.run_name });
    }
    expect(JSON.parse(Buffer.from(outputs.base64, "base64").toString("utf8"))).toEqual({ result: 12, label: "none" });
    expect(warmRun.metrics).toMatchObject({ result: 12 });
    expect(artifacts.map((a: { path: string }) => a.path).sort()).toEqual(["cairn", "outputs.json"]);
    // cairn show reads the source's metrics from the server too.
    const shown = await show(warmId, { cwd, env });
    expect(shown.tasks.map((t) => t.cachedFrom?.metrics)).toEqual(shown.tasks.map((t) => ({ x: (byName.get(t.name) as { metrics: { x: number } }).metrics.x })));
  });

  it("a fresh flow run and a fully cached one tell themselves apart: the flow run counts its tasks, in the log-batch it sent anyway", async () => {
    const coldId = flowRunIdOf(cold.stdout);
    const warmId = /run ([0-9a-f]{32})/.exec(warm.stdout)![1]!;
    const [coldRun, warmRun] = await readWithMlflow(server.uri, [
      { op: "get_run", run_id: coldId },
      { op: "get_run", run_id: warmId },
    ]);
    const counts = (succeeded: number, cached: number) => ({ "cairn.tasks": 2, "cairn.succeeded": succeeded, "cairn.cached": cached, "cairn.failed": 0, "cairn.cancelled": 0, "cairn.skipped": 0 });
    expect(coldRun.metrics).toEqual({ result: 12, ...counts(2, 0) });
    expect(warmRun.metrics).toEqual({ result: 12, ...counts(2, 2) });
    // No request of their own (issue 16): the flow run's log-batches are its params' and its outputs', as before.
    const dir = await tmp("cairn-record-counts-");
    const args = ["run", ok, "--no-report", "--experiment", "record-counts"];
    const batches = async () => {
      const traced = await cairn(args, { cwd: dir, env: { ...env, CAIRN_MLFLOW_TRACE: "1" } });
      expect(traced.code, traced.stderr).toBe(0);
      return traced.stderr.split("\n").filter((l) => l.startsWith("[cairn mlflow]") && l.includes("runs/log-batch")).length;
    };
    // Cold: the flow's params and outputs, and one per task; warm: the flow's two (a hit's run is a create and an update).
    expect(await batches()).toBe(4);
    expect(await batches()).toBe(2);
  });

  it("an experiment whose artifacts the server does not proxy is refused when opened, exit 2, before any run is created, saying what to change", async () => {
    // What `mlflow server --default-artifact-root DIR` gives every new experiment: a folder clients write to directly.
    const location = join(server.dir, "direct-artifacts");
    const api = async (path: string, body: object) =>
      (await (await fetch(`${server.uri}/api/2.0/mlflow/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json()) as Record<string, unknown>;
    const created = String((await api("experiments/create", { name: "direct", artifact_location: location })).experiment_id);
    const refused = await cairn(["run", ok, "--experiment", "direct"], { cwd: await tmp("cairn-record-direct-"), env });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`cairn: ArtifactLocationError: MLflow experiment "direct" (id ${created}) keeps its artifacts at "${location}", which Cairn cannot write`);
    expect(refused.stderr).toContain("Start the server with `--artifacts-destination <folder or s3://...>` instead of `--default-artifact-root`");
    expect((await api("runs/search", { experiment_ids: [created], run_view_type: "ALL" })).runs).toBeUndefined();
  });

  // The id was not checked: the flow run was created, and failed at its first artifact (exit 1).
  it("an experiment given by MLFLOW_EXPERIMENT_ID whose artifacts the server does not proxy is refused when opened too, exit 2, before any run is created", async () => {
    const api = async (path: string, body: object) =>
      (await (await fetch(`${server.uri}/api/2.0/mlflow/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json()) as Record<string, unknown>;
    const location = join(server.dir, "direct-by-id");
    const created = String((await api("experiments/create", { name: "direct-by-id", artifact_location: location })).experiment_id);
    const refused = await cairn(["run", ok, "--json"], { cwd: await tmp("cairn-record-direct-id-"), env: { ...env, MLFLOW_EXPERIMENT_ID: created } });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`cairn: ArtifactLocationError: MLflow experiment "direct-by-id" (id ${created}) keeps its artifacts at "${location}", which Cairn cannot write`);
    // No run event: the one line on stdout is the error's.
    expect(refused.json).toEqual([expect.objectContaining({ type: "error", exitCode: 2, error: expect.objectContaining({ name: "ArtifactLocationError" }) })]);
    expect((await api("runs/search", { experiment_ids: [created], run_view_type: "ALL" })).runs).toBeUndefined();
    // Only reading (plan) it is not refused: nothing would be written.
    const plan = await cairn(["plan", ok], { cwd: await tmp("cairn-record-direct-id-"), env: { ...env, MLFLOW_EXPERIMENT_ID: created } });
    expect(plan.code, plan.stderr).toBe(0);
  });

  it("MLFLOW_EXPERIMENT_ID and MLFLOW_EXPERIMENT_NAME that name two experiments are refused, exit 2, as MLflow's client refuses them", async () => {
    const [record] = await readWithMlflow(server.uri, [{ op: "experiment_by_name", name: "record" }]);
    const id = String(record.experiment_id);
    const refused = await cairn(["run", ok], { cwd: await tmp("cairn-record-two-"), env: { ...env, MLFLOW_EXPERIMENT_ID: id, MLFLOW_EXPERIMENT_NAME: "someone-else" } });
    expect(refused.code, refused.stderr).toBe(2);
    expect(refused.stderr).toContain(`MLFLOW_EXPERIMENT_ID is "${id}", the experiment "record", but MLFLOW_EXPERIMENT_NAME is "someone-else": they name two experiments.`);
    const agreeing = await cairn(["run", ok], { cwd: await tmp("cairn-record-two-"), env: { ...env, MLFLOW_EXPERIMENT_ID: id, MLFLOW_EXPERIMENT_NAME: "record" } });
    expect(agreeing.code, agreeing.stderr).toBe(0);
  });

  it("plan, explain and run say when the cache entries live in another tracker, and which", async () => {
    // The entries of `cwd` were made against the server; the embedded store cannot check their runs.
    const plan = await cairn(["plan", ok], { cwd });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`is recorded in another tracker, the MLflow server at ${server.uri}, not in the embedded store at ${join(cwd, ".cairn")}`);
    expect(plan.stdout).toContain(`run with MLFLOW_TRACKING_URI=${server.uri} to reuse it`);
    // Both tasks have entries there, but the second's key is known only once the first runs: not said as one task.
    expect(plan.stdout).toContain(
      `At least 1 task has a cache entry recorded in another tracker (the MLflow server at ${server.uri}), which this command cannot use: \`double\`. ` +
        "1 more task may have one there too: its key is known only once an upstream task runs.",
    );
    const planJson = JSON.parse((await cairn(["plan", ok, "--json"], { cwd })).stdout) as Array<{ foreign?: { tracker: { kind: string; uri: string } } }>;
    expect(planJson[0]!.foreign?.tracker).toEqual({ kind: "mlflow", uri: server.uri });

    const explain = await cairn(["explain", ok, "double"], { cwd });
    expect(explain.stdout).toContain(`double would run: its entry's source run`);
    expect(explain.stdout).toContain(`- nothing: the entry exists, but its source run is recorded in the MLflow server at ${server.uri}, not in the embedded store at ${join(cwd, ".cairn")}.`);
    expect(explain.stdout).not.toContain("was unusable");

    const run = await cairn(["run", ok, "--json"], { cwd });
    expect(run.code, run.stderr).toBe(0);
    const warnings = run.stderr.split("\n").filter((l) => l.includes("recorded in another tracker") || l.includes("Cache entries exist"));
    expect(warnings).toEqual([
      `[flow] Cache entries exist for these tasks' keys (task "double" first), but their source runs are recorded in the MLflow server at ${server.uri}, ` +
        `not in the embedded store at ${join(cwd, ".cairn")} where this run records: they cannot be used here, so those tasks run. ` +
        `To reuse them, run with MLFLOW_TRACKING_URI=${server.uri}.`,
    ]);

    // The other way round: entries of the embedded store (just written), read with the server.
    const back = await cairn(["plan", ok], { cwd, env });
    expect(back.stdout).toContain(`is recorded in another tracker, the embedded store at ${join(cwd, ".cairn")}, not in the MLflow server at ${server.uri}`);
    expect(back.stdout).toContain("run with MLFLOW_TRACKING_URI unset to reuse it");
  }, 120_000);

  it("a first run against the server after the embedded store asks nothing about the embedded store's entries: their runs cannot be on the server", async () => {
    const dir = await tmp("cairn-record-other-kind-");
    const flowFile = join(repo, "test/cli/fixtures/param-map.flow.ts");
    const items = JSON.stringify(Array.from({ length: 8 }, (_, i) => `i${i}`));
    const embedded = await cairn(["run", flowFile, "-p", `items=${items}`, "--no-report"], { cwd: dir });
    expect(embedded.code, embedded.stderr).toBe(0);
    // Before, each entry (the map's 8 items and reduce) cost runs/get that came back 404 before its task ran.
    const served = await cairn(["run", flowFile, "-p", `items=${items}`, "--no-report", "--experiment", "other-kind"], { cwd: dir, env: { ...env, CAIRN_MLFLOW_TRACE: "1" } });
    expect(served.code, served.stderr).toBe(0);
    expect(served.stdout).not.toContain("cached");
    expect(served.stderr.split("\n").filter((l) => l.includes("runs/get"))).toEqual([]);
  }, 120_000);

  it("a warm run of a map over an upstream task's list asks about its items' source runs a batch at a time, not one runs/get each", async () => {
    const dir = await tmp("cairn-record-item-sources-");
    const flowFile = join(repo, "test/cli/fixtures/upstream-map-n.flow.ts");
    const args = ["run", flowFile, "-p", "n=60", "--no-report", "--experiment", "item-sources"];
    const cold = await cairn(args, { cwd: dir, env });
    expect(cold.code, cold.stderr).toBe(0);
    const warm = await cairn(args, { cwd: dir, env: { ...env, CAIRN_MLFLOW_TRACE: "1" } });
    expect(warm.code, warm.stderr).toBe(0);
    expect(warm.stdout.split("\n").filter((l) => /\scached\s+sq\[\d+\]\s/.test(l))).toHaveLength(60);
    const requests = warm.stderr.split("\n").filter((l) => l.startsWith("[cairn mlflow]"));
    // Before, each item's hit read its source run alone: 60 runs/get, a third of the hits' requests. Now
    // those asked while a batch is answered go in the next one (one asked alone still goes by a get).
    const reads = requests.filter((l) => l.includes("runs/get") || l.includes("runs/search"));
    expect(reads.filter((l) => l.includes("runs/get")).length, reads.join("\n")).toBeLessThan(10);
    expect(reads.length, reads.join("\n")).toBeLessThan(45);
  }, 180_000);

  it("explain of one item of a map asks the server about that item, not about every item of the map", async () => {
    const dir = await tmp("cairn-record-explain-item-");
    const flowFile = join(repo, "test/cli/fixtures/param-map.flow.ts");
    const items = ["-p", `items=${JSON.stringify(Array.from({ length: 60 }, (_, i) => `i${i}`))}`];
    const ran = await cairn(["run", flowFile, ...items, "--no-report", "--experiment", "explain-item"], { cwd: dir, env });
    expect(ran.code, ran.stderr).toBe(0);
    const explained = await cairn(["explain", flowFile, "work[30]", ...items, "--experiment", "explain-item"], { cwd: dir, env: { ...env, CAIRN_MLFLOW_TRACE: "1" } });
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toMatch(/^work\[30\] would come from the cache: run [0-9a-f]{32}/);
    // Before, every item was planned: a runs/get per item (60 here, 2001 for a map of 2000).
    const requests = explained.stderr.split("\n").filter((l) => l.startsWith("[cairn mlflow]"));
    expect(requests.length, requests.join("\n")).toBeLessThanOrEqual(5);
  }, 120_000);

  it("tracking through the server, then the embedded store, then the server again: the third run hits from the experiment's index, and so does the embedded store after it", async () => {
    const dir = await tmp("cairn-record-switch-");
    const tracked = await cairn(["run", ok, "--json", "--experiment", "switch"], { cwd: dir, env });
    expect(tracked.code, tracked.stderr).toBe(0);
    const taskEnds = (stdout: string) => events(stdout).filter((e) => e.type === "task" && (e.status === "succeeded" || e.status === "cached"));
    // By task: a task's `succeeded` comes once its run is closed, so a chain's may end out of order.
    const sources = new Map(taskEnds(tracked.stdout).map((e) => [(e as { task?: string }).task, (e as { taskRunId?: string }).taskRunId]));
    expect(taskEnds(tracked.stdout).map((e) => e.status)).toEqual(["succeeded", "succeeded"]);
    // The embedded store cannot check the server's runs: its tasks run, and their entries replace those in the store.
    const embedded = await cairn(["run", ok, "--json"], { cwd: dir });
    expect(taskEnds(embedded.stdout).map((e) => e.status)).toEqual(["succeeded", "succeeded"]);

    // Before, the store's entries (the embedded store's) were all that was read: "recorded in another tracker, ... run with MLFLOW_TRACKING_URI unset".
    const plan = JSON.parse((await cairn(["plan", ok, "--json", "--experiment", "switch"], { cwd: dir, env })).stdout) as Array<{ task: string; action: string; cachedFrom?: string; foreign?: unknown }>;
    expect(plan.map((p) => [p.action, p.cachedFrom, p.foreign])).toEqual(plan.map((p) => ["hit", sources.get(p.task), undefined]));
    expect(plan.map((p) => p.cachedFrom).sort()).toEqual([...sources.values()].sort());
    const again = await cairn(["run", ok, "--json", "--experiment", "switch"], { cwd: dir, env });
    expect(again.code, again.stderr).toBe(0);
    expect(taskEnds(again.stdout).map((e) => e.status)).toEqual(["cached", "cached"]);
    expect(again.stderr).not.toContain("another tracker");
    expect(again.stderr).not.toContain("Cache entries exist");
    // The embedded store's entries stayed for it: switching back hits there too.
    const back = await cairn(["run", ok, "--json"], { cwd: dir });
    expect(taskEnds(back.stdout).map((e) => e.status)).toEqual(["cached", "cached"]);
  }, 180_000);

  it.skipIf(!hasVenv)("examples/multistep registers its model linked to the run that logged it, and puts every output on the flow run", async () => {
    const example = join(repo, "examples/multistep/flow.ts");
    const where = await tmp("cairn-record-multistep-");
    const r = await start(process.execPath, [cairnBin, "run", example, "--json"], { cwd: where, env: childEnv({ ...env, CAIRN_PYTHON: VENV_PYTHON }) }).done;
    expect(r.code, r.stderr).toBe(0);
    const flowRunId = flowRunIdOf(r.stdout);
    const [flowRun] = await readWithMlflow(server.uri, [{ op: "get_run", run_id: flowRunId }]);
    const [tasks, versions, outputs] = await readWithMlflow(server.uri, [
      { op: "search_runs", experiment_ids: [flowRun.experiment_id], filter: `tags.mlflow.parentRunId = '${flowRunId}'` },
      { op: "model_versions", name: "cairn-multistep" },
      { op: "download_artifact", run_id: flowRunId, path: "outputs.json", dst: await tmp("cairn-record-dl-") },
    ]);
    const register = tasks.find((t: { run_name: string }) => t.run_name === "register");
    expect(versions).toHaveLength(1);
    expect(versions[0].run_id).toBe(register.run_id);
    const recorded = JSON.parse(Buffer.from(outputs.base64, "base64").toString("utf8")) as Record<string, unknown>;
    expect(Object.keys(recorded).sort()).toEqual(["best", "modelUri", "modelVersion", "predictions", "report", "rocAuc"]);
    expect(recorded.modelUri).toBe(`models:/cairn-multistep/${versions[0].version}`);
    expect(flowRun.metrics.rocAuc).toBe(recorded.rocAuc);
    expect(flowRun.tags["mlflow.source.name"]).toBe(example);
  }, 300_000);
});
