/**
 * The report of a run recorded in a real MLflow server: `cairn run` logs it on the flow run as
 * `cairn/report.html` (before the run ends) and prints where it is in MLflow's UI; MLflow's own
 * client and the server's artifact download (what its artifact view fetches) give back the very
 * file that `cairn report RUN_ID` writes from the server's record, with task runs linked to
 * their pages in MLflow's UI.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { type EndingFlowRun, TrackingError } from "@cairn/core";
import * as v from "valibot";
import { readWithMlflow } from "../../mlflow/test/mlflow-read.ts";
import { type MlflowServer, startMlflowServer } from "../../mlflow/test/mlflow-server.ts";
import { flow, grid, max, sweep, task } from "cairn-dag";
import { buildReport, logReport, readReportData, type ReportData } from "../src/index.ts";
import { reportFlow } from "./report-flow.ts";

const repo = resolve(import.meta.dirname, "../../..");
const cairnBin = join(repo, "packages/cli/bin/cairn.mjs");
const flowFile = join(import.meta.dirname, "fixtures/demo.flow.ts");

/** A report's tasks without the reasons given for them, to compare two reads of one run. */
const withoutWhy = (data: ReportData) => data.tasks.map(({ why: _, ...task }) => task);

let server: MlflowServer;
let cwd: string;

async function cairn(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [cairnBin, ...args], { cwd, env: { ...process.env, MLFLOW_TRACKING_URI: server.uri, NO_COLOR: "1" } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  server = await startMlflowServer();
  cwd = await mkdtemp(join(tmpdir(), "cairn-report-mlflow-"));
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await rm(cwd, { recursive: true, force: true });
});

describe("the report of a run in an MLflow server", () => {
  it("is the flow run's cairn/report.html, the same through MLflow's artifact API as from cairn report", async () => {
    const args = ["run", flowFile, "--failure-policy", "continue", "--experiment", "report-e2e"];
    expect((await cairn([...args, "-p", "n=1"])).code).toBe(1);
    const r = await cairn([...args, "-p", "n=2"]);
    expect(r.code, r.stderr).toBe(1);
    const [, url, runId] = /^Report: (http:\/\/\S+\/#\/experiments\/\d+\/runs\/([0-9a-f]{32})\/artifactPath\/cairn\/report\.html) /m.exec(r.stdout) ?? [];
    expect(url, r.stdout).toBeDefined();
    expect(r.stdout).toContain(`View run report-demo at: ${server.uri}/#/experiments/`);

    const dst = await mkdtemp(join(cwd, "dl-"));
    const [listed, downloaded, run] = await readWithMlflow(server.uri, [
      { op: "list_artifacts", run_id: runId, path: "cairn" },
      { op: "download_artifact", run_id: runId, path: "cairn/report.html", dst },
      { op: "get_run", run_id: runId },
    ]);
    expect(listed.map((a: { path: string }) => a.path)).toContain("cairn/report.html");
    expect(run.status).toBe("FAILED");
    const viaClient = Buffer.from(downloaded.base64, "base64").toString("utf8");
    // What MLflow's UI fetches to show the file in its artifact view.
    const viaServer = await (await fetch(`${server.uri}/get-artifact?path=cairn/report.html&run_uuid=${runId}`)).text();
    expect(viaServer).toBe(viaClient);

    const out = join(cwd, "local.html");
    const again = await cairn(["report", runId!, "--out", out]);
    expect(again.code, again.stderr).toBe(0);
    const local = await readFile(out, "utf8");
    const strip = (s: string) => s.replace(/Written by cairn report at [^<]*/, "");
    expect(strip(local)).toBe(strip(viaClient));

    // Read from the server: states, reasons (the cache entries are this folder's), links to MLflow's UI.
    expect(local).toContain('data-task="steady" data-state="cached"');
    expect(local).toContain("input `n` changed from 1 to 2");
    // In a new tab: in MLflow's artifact view (a sandboxed frame) a link in the frame would load MLflow's UI in place of the report.
    expect(local).toMatch(new RegExp(`<a href="${server.uri.replace(/[.]/g, "\\.")}/#/experiments/\\d+/runs/[0-9a-f]{32}" target="_blank" rel="noopener" title="[0-9a-f]{32}">`));
    expect(local).toContain("disk &lt;b&gt;full&lt;/b&gt; &amp; more");
  });

  it("at a run's end, asks nothing about its hits' runs or their source runs: the run wrote the ones and read the others", async () => {
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    const options = { tracker, root: await mkdtemp(join(cwd, "api-")), failurePolicy: "continue" as const, experiment: `report-api-${Date.now()}`, env: {} };
    await (await reportFlow.run({ ...options, params: { n: 1 } })).wait();
    const searches: string[] = [];
    tracker.client.http.observe((e) => {
      if (e.phase === "request" && e.url.endsWith("/runs/search")) searches.push(e.url);
    });
    let atEnd = -1;
    let live: ReportData | undefined;
    const run = await reportFlow.run({
      ...options,
      params: { n: 2 },
      beforeEnd: async (ending) => {
        expect([...(ending.sourceRuns?.values() ?? [])].map((r) => r.name)).toContain("steady");
        expect(ending.hits?.map((r) => r.name).sort()).toEqual(["echo", "steady"]);
        const before = searches.length;
        await logReport(ending);
        // The flow run's task runs that are not hits: those whose cairn.status is another, and those without one.
        atEnd = searches.length - before;
        live = await readReportData(ending.tracker, ending.runId, { ending, ...(ending.sourceRuns ? { sourceRuns: ending.sourceRuns } : {}), ...(ending.hits ? { hits: ending.hits } : {}) });
      },
    });
    const result = await run.wait();
    expect(atEnd).toBe(2);
    // What the run took from memory is what the server holds: the same tasks read from the record alone.
    const later = await readReportData(tracker, result.runId);
    expect(withoutWhy(live!)).toEqual(withoutWhy(later));
    expect(live!.tasks.find((t) => t.id === "steady")).toMatchObject({ state: "cached", cachedFrom: { name: "steady" } });
    // The same report from the record alone asks for them: one search more, and shows the same.
    const before = searches.length;
    const fromRecord = await buildReport(tracker, result.runId);
    expect(searches.length - before).toBe(2); // the task runs, and the hits' source runs
    expect(fromRecord).toContain('data-task="steady" data-state="cached"');
  });
  it("at the end of a run whose every task was a hit, reads nothing: the flow run was read with its outputs, no search of its task runs, no graph read back", async () => {
    const load = task("load").input<{ n: number }>().run(({ n }) => ({ rows: n * 10 }));
    const fit = task("fit").input<{ rows: number }>().run(({ rows }) => ({ score: rows / 100 }));
    const f = flow("report-all-hits").params(v.object({ n: v.number() })).build(({ params }) => ({ score: fit({ rows: load({ n: params.n }).rows }).score }));
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    const options = { tracker, root: await mkdtemp(join(cwd, "all-hits-")), experiment: `report-all-hits-${Date.now()}`, env: {}, params: { n: 3 } };
    const first = await (await f.run({ ...options, beforeEnd: async (ending) => expect(ending.onlyHits).toBeUndefined() })).wait();
    expect(first.status).toBe("succeeded");
    const asked: string[] = [];
    tracker.client.http.observe((e) => {
      if (e.phase === "request") asked.push(`${e.method} ${new URL(e.url).pathname}`);
    });
    let told: EndingFlowRun | undefined;
    let atEnd: string[] = [];
    let live: ReportData | undefined;
    const result = await (
      await f.run({
        ...options,
        beforeEnd: async (ending) => {
          told = ending;
          const before = asked.length;
          await logReport(ending, { flowRunAsRead: true });
          atEnd = asked.slice(before);
          live = await readReportData(ending.tracker, ending.runId, {
            ending,
            ...(ending.hits ? { hits: ending.hits } : {}),
            ...(ending.onlyHits ? { onlyHits: true } : {}),
            ...(ending.graph !== undefined ? { graph: ending.graph } : {}),
            ...(ending.flowRun ? { flowRun: ending.flowRun } : {}),
          });
        },
      })
    ).wait();
    expect(Object.values(result.tasks).map((t) => t.status)).toEqual(["cached", "cached"]);
    expect(told?.onlyHits).toBe(true);
    expect(JSON.parse(told!.graph!).nodes.map((n: { id: string }) => n.id)).toEqual(["load", "fit"]);
    // The flow run as read before the end: its params and its output's number as a metric.
    expect(told?.flowRun).toMatchObject({ runId: result.runId, params: { n: "3" }, metrics: { score: 0.3 } });
    // The page written, and nothing sent at the end but it: no read, no search, no metrics left to send.
    expect(atEnd.filter((r) => !r.includes("/mlflow-artifacts/"))).toEqual([]);
    // What the run took from memory is what the server holds.
    const later = await readReportData(tracker, result.runId);
    expect(withoutWhy(live!)).toEqual(withoutWhy(later));
    expect(live!.tasks.map((t) => `${t.id} ${t.state}`)).toEqual(["load cached", "fit cached"]);
  });
  it("made by a hook that writes to the flow run first, reads the flow run again and shows what the hook wrote", async () => {
    const one = task("one").run(() => ({ v: 2 }));
    const f = flow("report-hook-writes").build(() => ({ v: one().v }));
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    let asRead: EndingFlowRun["flowRun"];
    const result = await (
      await f.run({
        tracker,
        root: await mkdtemp(join(cwd, "hook-writes-")),
        experiment: `report-hook-writes-${Date.now()}`,
        env: {},
        beforeEnd: async (ending) => {
          asRead = ending.flowRun;
          await ending.tracker.logBatch(ending.runId, { metrics: [{ key: "cost", value: 3, step: 0, timestamp: Date.now() }] });
          await logReport(ending);
        },
      })
    ).wait();
    expect(result.status).toBe("succeeded");
    // The run's read came before the hook: the output's number is in it, the hook's metric is not.
    expect(asRead?.metrics).toMatchObject({ v: 2, "cairn.tasks": 1 });
    expect(asRead?.metrics).not.toHaveProperty("cost");
    const logged = await readFile(await tracker.downloadArtifact(result.runId, "cairn/report.html", await mkdtemp(join(cwd, "hook-writes-dl-"))), "utf8");
    expect(logged).toContain("<code>cost=3</code>");
    expect(logged).toContain("<code>v=2</code>");
  });
  it("at the end of a run whose graph could not be logged, is not handed the graph (a report then reads the record's)", async () => {
    const one = task("one").run(() => ({ v: 1 }));
    const f = flow("report-no-graph").build(() => ({ v: one().v }));
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    // A fault a real server cannot be made to show on cue: the graph's upload is refused.
    const logText = tracker.logText.bind(tracker);
    tracker.logText = async (runId, path, text) => {
      if (path === "cairn/graph.json") throw new TrackingError("injected: upload refused");
      return logText(runId, path, text);
    };
    let told: EndingFlowRun | undefined;
    const options = { tracker, root: await mkdtemp(join(cwd, "no-graph-")), experiment: `report-no-graph-${Date.now()}`, env: {} };
    const result = await (await f.run({ ...options, beforeEnd: async (ending) => void (told = ending) })).wait();
    expect(result.status).toBe("failed");
    expect(told?.status).toBe("FAILED");
    expect(told?.graph).toBeUndefined();
  });
  it("at a run's end, a sweep's trials that were hits come from the run too, under the sweep's run, as the record has them", async () => {
    const fit = task("fit")
      .input<{ lr: number; depth: number }>()
      .run(({ lr, depth }) => ({ score: Math.round((1 - Math.abs(lr - 0.1)) * depth * 100) / 100 }));
    const f = flow("report-sweep").build(() => {
      const best = sweep(fit, { over: grid({ lr: [0.01, 0.1], depth: [3, 5] }), select: max("score") });
      return { trial: best.trial };
    });
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    const options = { tracker, root: await mkdtemp(join(cwd, "sweep-")), experiment: `report-sweep-${Date.now()}`, env: {} };
    expect((await (await f.run(options)).wait()).status).toBe("succeeded");
    let live: ReportData | undefined;
    let hits: string[] = [];
    const result = await (
      await f.run({
        ...options,
        beforeEnd: async (ending) => {
          hits = (ending.hits ?? []).map((r) => `${r.name} under ${r.parentRunId === ending.runId ? "the flow run" : "another run"}`).sort();
          // Every trial a hit, but the sweep's own run is not one: its task runs are searched for.
          expect(ending.onlyHits).toBeUndefined();
          live = await readReportData(ending.tracker, ending.runId, { ending, ...(ending.sourceRuns ? { sourceRuns: ending.sourceRuns } : {}), ...(ending.hits ? { hits: ending.hits } : {}) });
        },
      })
    ).wait();
    expect(result.status).toBe("succeeded");
    expect(hits).toEqual(["fit[0]", "fit[1]", "fit[2]", "fit[3]"].map((name) => `${name} under another run`));
    const later = await readReportData(tracker, result.runId);
    expect(withoutWhy(live!)).toEqual(withoutWhy(later));
    expect(live!.tasks.filter((t) => t.item).map((t) => t.state)).toEqual(["cached", "cached", "cached", "cached"]);
    expect(live!.tasks.find((t) => t.id === "fit")?.group).toMatchObject({ kind: "sweep", best: "fit[3]" });
  });
  it("at a run's end, reads every task run from the server when a hit's run could not be recorded whole", async () => {
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    const options = { tracker, root: await mkdtemp(join(cwd, "failed-hit-")), failurePolicy: "continue" as const, experiment: `report-failed-hit-${Date.now()}`, env: {} };
    await (await reportFlow.run({ ...options, params: { n: 1 } })).wait();
    // A fault a real server cannot be made to show on cue: one hit's record is refused.
    const recordRun = tracker.recordRun.bind(tracker);
    let refused = 0;
    tracker.recordRun = async (run) => {
      if (run.name === "steady" && !refused++) throw new TrackingError("injected: no answer");
      return recordRun(run);
    };
    let told: { hits?: unknown } | undefined;
    const run = await reportFlow.run({ ...options, params: { n: 2 }, beforeEnd: async (ending) => void (told = ending) });
    const warnings: string[] = [];
    run.on((e) => e.type === "log" && e.level === "warn" && warnings.push(e.message));
    await run.wait();
    expect(refused).toBe(1);
    expect(warnings.join("\n")).toContain("could not record the cache hit's run: injected: no answer");
    expect(told).toBeDefined();
    expect(told!.hits).toBeUndefined();
  });
  it("at a run's end, reads every task run from the server when a hit carries a tag a tracker may cut", async () => {
    const echo = task("echo").input<{ text: string }>().run(({ text }) => ({ length: text.length }));
    // A sweep trial's point is its run's tag cairn.item_key: here over 5,000 characters.
    const f = flow("report-long-tag").build(() => ({ trial: sweep(echo, { over: grid({ text: ["x".repeat(6000)] }), select: max("length") }).trial }));
    const tracker = MlflowTracker.fromEnv({}, server.uri);
    const options = { tracker, root: await mkdtemp(join(cwd, "long-tag-")), experiment: `report-long-tag-${Date.now()}`, env: {} };
    expect((await (await f.run(options)).wait()).status).toBe("succeeded");
    let told: { hits?: unknown } | undefined;
    const result = await (await f.run({ ...options, beforeEnd: async (ending) => void (told = ending) })).wait();
    expect(result.tasks["echo[0]"]?.status).toBe("cached");
    expect(told).toBeDefined();
    expect(told!.hits).toBeUndefined();
  });
});
