/**
 * Every node of a flow has a task run and exactly one terminal event, whatever happened to it:
 * succeeded, failed (in its attempts or in input validation), skipped (with why and because of
 * which task), cancelled; under fail-fast, continue and cancel. A failed run carries its error as
 * tags and as `cairn/error.txt`, masked. Read back from the embedded store, and from a real
 * MLflow server with MLflow's own client, with the requests each record costs counted.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { LocalStore, type RunRecord, type Tracker } from "@cairn/core";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { readReportData } from "@cairn/report";
import { flow, map, task, type FlowResult, type RunEvent } from "cairn-dag";
import { readWithMlflow } from "../packages/mlflow/test/mlflow-read.ts";
import { cairn } from "./cli/helpers.ts";
import { type MlflowServer, startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const TERMINAL = new Set(["succeeded", "cached", "failed", "skipped", "cancelled"]);
const SECRET = "s3cr3t-token-9876";

const dirs: string[] = [];
const tmp = async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-task-records-"));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Terminal events per node, in order. */
function terminalEvents(events: RunEvent[]): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  for (const e of events) {
    if (e.type !== "task" || !TERMINAL.has(e.status)) continue;
    const list = seen.get(e.task) ?? [];
    list.push(`${e.status}${e.error ? ` (${e.error.name})` : ""}`);
    seen.set(e.task, list);
  }
  return seen;
}

/** Each node ended exactly once, with the status its result has. */
function expectOneTerminalEach(events: RunEvent[], result: FlowResult<unknown>): void {
  const seen = terminalEvents(events);
  for (const [id, r] of Object.entries(result.tasks)) expect([id, seen.get(id)]).toEqual([id, [expect.stringMatching(new RegExp(`^${r.status}`))]]);
  expect([...seen.keys()].sort()).toEqual(Object.keys(result.tasks).sort());
}

async function runCollect(f: { run(options: object): Promise<any> }, options: object, during?: (run: any, events: RunEvent[]) => void) {
  const run = await f.run({ env: {}, ...options });
  const events: RunEvent[] = [];
  run.on((e: RunEvent) => {
    events.push(e);
    during?.(run, events);
  });
  const result = (await run.wait()) as FlowResult<unknown>;
  return { events, result };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });

const positive = task("positive")
  .input(z.object({ n: z.number().positive() }))
  .run(({ n }) => ({ n }));
const boom = task("boom").run((_, ctx) => {
  throw new Error(`auth failed for ${ctx.secret("API_TOKEN")}`);
});
const add = task("add")
  .input<{ a: number }>()
  .run(({ a }) => ({ a: a + 1 }));
const long = task("long").run(async (_, ctx) => {
  await sleep(10_000, ctx.signal);
  return {};
});

/** Two roots whose inputs fail their schema at once, with dependants: the second failure meets the stop of the first. */
const twoBadInputs = flow("two-bad-inputs").build(() => {
  const a = positive({ n: -1 }, { id: "bad-1" });
  const b = positive({ n: -2 }, { id: "bad-2" });
  add({ a: a.n }, { id: "after-1" });
  add({ a: b.n }, { id: "after-2" });
  return {};
});

describe("one terminal event per task", () => {
  it("fail-fast, with the cache: a lookup that fails after the flow stopped does not end its task a second time", async () => {
    const root = await tmp();
    const { events, result } = await runCollect(twoBadInputs, { root, concurrency: 4 });
    expect(result.status).toBe("failed");
    expectOneTerminalEach(events, result);
    expect(Object.values(result.tasks).filter((t) => t.status === "failed")).toHaveLength(1);
  });

  it("fail-fast, without the cache: a task that took its slot ends through its run, not skipped by the stop too", async () => {
    const root = await tmp();
    const { events, result } = await runCollect(twoBadInputs, { root, cache: false, concurrency: 4 });
    expect(result.status).toBe("failed");
    expectOneTerminalEach(events, result);
    // Both took their slot: each ends failed, or cancelled when the other's failure stopped the flow first.
    expect(result.tasks["bad-1"]!.status).toMatch(/^(failed|cancelled)$/);
    expect(result.tasks["bad-2"]!.status).toMatch(/^(failed|cancelled)$/);
    expect(Object.values(result.tasks).some((t) => t.status === "failed")).toBe(true);
    expect([result.tasks["after-1"]!.status, result.tasks["after-2"]!.status]).toEqual(["skipped", "skipped"]);
  });

  it("fail-fast with a running task: failed, cancelled and skipped, each once", async () => {
    const root = await tmp();
    const f = flow("ff-running").build(() => {
      long();
      const b = boom();
      add({ a: 1 }, { id: "after", after: [b] });
      return {};
    });
    const { events, result } = await runCollect(f, { root, cache: false, concurrency: 2, secrets: { API_TOKEN: SECRET } });
    expectOneTerminalEach(events, result);
    expect(Object.fromEntries(Object.entries(result.tasks).map(([id, t]) => [id, t.status]))).toEqual({ long: "cancelled", boom: "failed", after: "skipped" });
  });

  it("continue: a failure skips its dependants once each, independent branches finish", async () => {
    const root = await tmp();
    const f = flow("cont").build(() => {
      const b = boom();
      const x = add({ a: 1 }, { id: "x", after: [b] });
      add({ a: x.a }, { id: "y" });
      const ok = add({ a: 2 }, { id: "ok" });
      add({ a: ok.a }, { id: "ok-after" });
      positive({ n: 0 }, { id: "invalid" });
      return {};
    });
    const { events, result } = await runCollect(f, { root, failurePolicy: "continue", secrets: { API_TOKEN: SECRET } });
    expectOneTerminalEach(events, result);
    expect(Object.fromEntries(Object.entries(result.tasks).map(([id, t]) => [id, t.status]))).toEqual({
      boom: "failed",
      x: "skipped",
      y: "skipped",
      ok: "succeeded",
      "ok-after": "succeeded",
      invalid: "failed",
    });
  });

  it("cancel: running tasks and those not started yet end cancelled, once each", async () => {
    const root = await tmp();
    const f = flow("cancel").build(() => {
      const a = long({}, { id: "long-1" });
      long({}, { id: "long-2" });
      add({ a: 1 }, { id: "after-long", after: [a] });
      return {};
    });
    let cancelled = false;
    const { events, result } = await runCollect(f, { root, concurrency: 1 }, (run, seen) => {
      if (!cancelled && seen.some((e) => e.type === "task" && e.status === "running")) {
        cancelled = true;
        void run.cancel("stop now");
      }
    });
    expect(result.status).toBe("cancelled");
    expectOneTerminalEach(events, result);
    for (const t of Object.values(result.tasks)) expect(t.status).toBe("cancelled");
    // The flow's run says why it ended, as a failed task's run does (no tag of failed tasks: none failed).
    const flowRun = (await new LocalStore({ root }).getRun(result.runId))!;
    expect(flowRun).toMatchObject({ status: "KILLED", tags: { "cairn.error.name": "CancelledError", "cairn.error.message": "The flow run was cancelled: stop now." } });
    expect(flowRun.tags["cairn.error.tasks"]).toBeUndefined();
  });
});

/** The task runs of a flow run, by node id. */
async function taskRuns(tracker: Tracker, flowRunId: string): Promise<Map<string, RunRecord>> {
  const flowRun = (await tracker.getRun(flowRunId))!;
  const children = await tracker.searchRuns({ experimentIds: [flowRun.experimentId], parentRunId: flowRunId });
  return new Map(children.map((r) => [r.name, r]));
}

/** A flow with a task of each outcome, under `continue` so that every branch gets its say. */
const everyOutcome = flow("every-outcome").build(() => {
  const b = boom();
  const x = add({ a: 1 }, { id: "skipped-1", after: [b] });
  add({ a: x.a }, { id: "skipped-2" });
  add({ a: 2 }, { id: "fine" });
  positive({ n: -5 }, { id: "invalid" });
  return {};
});

/** What every tracker must hold of `everyOutcome`'s run. */
async function expectEveryOutcomeRecorded(result: FlowResult<unknown>, runs: Map<string, RunRecord>, errorFile: (runId: string) => Promise<string>, flowRun: RunRecord) {
  expect([...runs.keys()].sort()).toEqual(Object.keys(result.tasks).sort());
  for (const [id, t] of Object.entries(result.tasks)) {
    expect(t.runId, id).toBeDefined();
    expect(runs.get(id)!.runId).toBe(t.runId);
    expect(runs.get(id)!.tags["cairn.status"]).toBe(t.status);
    expect(runs.get(id)!.endTime, id).toBeDefined();
  }
  expect(runs.get("boom")).toMatchObject({ status: "FAILED", tags: { "cairn.error.name": "Error", "cairn.error.message": "auth failed for ***", "cairn.error": "Error: auth failed for ***" } });
  expect(runs.get("invalid")).toMatchObject({ status: "FAILED", tags: { "cairn.error.name": "InputValidationError" } });
  expect(runs.get("invalid")!.tags["cairn.error.message"]).toContain("invalid");
  for (const id of ["skipped-1", "skipped-2"]) {
    expect(runs.get(id)).toMatchObject({ status: "KILLED", tags: { "cairn.status": "skipped", "cairn.skipped.reason": "upstream-failed", "cairn.skipped.because": "boom" } });
  }
  expect(runs.get("fine")).toMatchObject({ status: "FINISHED", tags: { "cairn.status": "succeeded" } });
  // The flow's run says why the flow failed, and which tasks failed, masked as theirs are.
  expect(flowRun).toMatchObject({ status: "FAILED", tags: { "cairn.error.name": "TaskFailed", "cairn.error.tasks": "boom,invalid" } });
  expect(flowRun.tags["cairn.error.message"]).toMatch(/^task "boom" failed: auth failed for \*\*\*; task "invalid" failed: /);
  expect(flowRun.tags["cairn.error"]).toBe(`TaskFailed: ${flowRun.tags["cairn.error.message"]}`);
  expect(JSON.stringify(flowRun)).not.toContain(SECRET);
  const text = await errorFile(result.tasks.boom!.runId!);
  expect(text).toMatch(/^Error: auth failed for \*\*\*\n {4}at /);
  expect(text).toContain("task-records.test.ts");
  expect(await errorFile(result.tasks.invalid!.runId!)).toMatch(/^InputValidationError: /);
  expect(JSON.stringify([...runs.values()]) + text).not.toContain(SECRET);
}

/**
 * A task that logs a metric at step -1 (MLflow keeps it), then, when `step` is not an integer, one
 * no tracker keeps: the task fails at that call, and nothing after it runs.
 */
const baseline = task("baseline")
  .input<{ step: number }>()
  .run(({ step }, ctx) => {
    ctx.log.metric("baseline", 0.1, -1);
    ctx.log.metric("loss", 0.5, step);
    return { r: step };
  });
const metricFlow = flow("metric-steps").build(() => {
  const good = baseline({ step: 0 }, { id: "good" });
  const bad = baseline({ step: 0.5 }, { id: "bad" });
  add({ a: good.r }, { id: "after-good", after: [bad] });
  return {};
});

/** What every tracker holds of `metricFlow`'s run: the same outcome, whatever the tracker. */
async function expectMetricsChecked(tracker: Tracker, result: FlowResult<unknown>) {
  expect(result.status).toBe("failed");
  expect(result.tasks.good!.status).toBe("succeeded");
  expect(result.tasks.bad).toMatchObject({ status: "failed", error: { name: "MetricError" } });
  expect(result.tasks.bad!.error!.message).toMatch(/^Metric "loss" has step `0.5` \(number\); expected an integer \(negative ones too, as in MLflow\)/);
  expect(result.tasks["after-good"]!.status).toBe("skipped");
  expect(result.error?.message).not.toMatch(/could not be closed|tracking server/);
  const runs = await taskRuns(tracker, result.runId);
  expect(runs.get("good")).toMatchObject({ status: "FINISHED", params: { step: "0" }, metrics: { baseline: 0.1, loss: 0.5 } });
  expect((await tracker.getMetricHistory(runs.get("good")!.runId, "baseline")).map((p) => p.step)).toEqual([-1]);
  // The failed task keeps its input param and the metric logged before the bad one.
  expect(runs.get("bad")).toMatchObject({ status: "FAILED", params: { step: "0.5" }, metrics: { baseline: 0.1 }, tags: { "cairn.status": "failed", "cairn.error.name": "MetricError" } });
}

/** A flow whose `query` param is longer than a param is logged (500 characters), and `limit`, short. */
const longParamFlow = flow("long-param")
  .params(z.object({ query: z.string(), limit: z.number().default(5) }))
  .build(({ params }) => ({ n: add({ a: params.limit }).a }));
const longQuery = `SELECT id FROM customers WHERE ${Array.from({ length: 60 }, (_, i) => `region = ${i}`).join(" OR ")}`;

/** What every tracker holds of `longParamFlow`'s run: each param, the long one's value whole in cairn/params.json. */
async function expectLongParamKept(tracker: Tracker, result: FlowResult<unknown>, artifact: (runId: string, path: string) => Promise<string>) {
  expect(result.status, JSON.stringify(result.error)).toBe("succeeded");
  expect(longQuery.length).toBeGreaterThan(500);
  expect((await tracker.getRun(result.runId))!.params).toEqual({ query: "(too long for a param: see artifact cairn/params.json)", limit: "5" });
  expect(JSON.parse(await artifact(result.runId, "cairn/params.json"))).toEqual({ query: longQuery, limit: 5 });
}

describe("a task run for every node, in the embedded store", () => {
  it("a flow param too long for a param is on the flow run, pointing at cairn/params.json, which holds every param whole", async () => {
    const root = await tmp();
    const { result } = await runCollect(longParamFlow, { root, cache: false, params: { query: longQuery } });
    const store = new LocalStore({ root });
    await expectLongParamKept(store, result, async (runId, path) => readFile(await store.downloadArtifact(runId, path, await tmp()), "utf8"));
  });

  it("a long input handed to many tasks is written whole once: the other runs' params point at that run's cairn/inputs.json", async () => {
    // A 20,000-number table wired into 1,000 map items was written 1,000 times (224 KB each).
    const table = task("table").run(() => ({ rows: Array.from({ length: 300 }, (_, i) => i * 7) }));
    const look = task("look")
      .input<{ x: number; rows: number[]; note: string }>()
      .run(({ x, rows }) => ({ y: rows[x]! }));
    const note = "n".repeat(600);
    const f = flow("long-inputs").build(() => {
      const t = table();
      const m = map(look, { over: [1, 2, 3, 4], as: "x", with: { rows: t.rows, note } });
      return { ys: m.outputs };
    });
    const root = await tmp();
    const { result } = await runCollect(f, { root, cache: false });
    expect(result.status, JSON.stringify(result.error)).toBe("succeeded");
    const store = new LocalStore({ root });
    const mapRun = (await taskRuns(store, result.runId)).get("look")!;
    const items = (await store.searchRuns({ experimentIds: [mapRun.experimentId], parentRunId: mapRun.runId })).sort((a, b) => a.name.localeCompare(b.name));
    expect(items.map((r) => r.name)).toEqual(["look[0]", "look[1]", "look[2]", "look[3]"]);
    const files = await Promise.all(
      items.map(async (r) => {
        const path = await store.downloadArtifact(r.runId, "cairn/inputs.json", await tmp()).catch(() => undefined);
        return path === undefined ? undefined : (JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>);
      }),
    );
    // One item wrote both values whole; the others wrote no file, their params name where the values are.
    const writers = items.filter((_, i) => files[i] !== undefined);
    expect(writers).toHaveLength(1);
    const first = writers[0]!;
    expect(files[items.indexOf(first)]).toMatchObject({ rows: Array.from({ length: 300 }, (_, i) => i * 7), note });
    expect(first.params).toMatchObject({ rows: "(too long for a param: see artifact cairn/inputs.json)", note: "(too long for a param: see artifact cairn/inputs.json)" });
    for (const r of items.filter((r) => r !== first)) {
      expect(r.params).toMatchObject({
        rows: `(too long for a param: see input \`rows\` in artifact cairn/inputs.json of run ${first.runId})`,
        note: `(too long for a param: see input \`note\` in artifact cairn/inputs.json of run ${first.runId})`,
      });
      expect(r.params.x).toBe(String(Number(r.name.slice(5, 6)) + 1));
    }
  });

  it("a run that needs cairn/inputs.json for a new long value holds a pointer in place of one written before", async () => {
    const table = task("table").run(() => ({ rows: Array.from({ length: 300 }, (_, i) => i * 7) }));
    const sum = task("sum")
      .input<{ rows: number[]; other?: string }>()
      .run(({ rows }) => ({ n: rows.length }));
    const other = "o".repeat(700);
    const f = flow("long-inputs-mixed").build(() => {
      const t = table();
      const a = sum({ rows: t.rows }, { id: "first" });
      return { n: sum({ rows: t.rows, other }, { id: "second", after: [a] }).n };
    });
    const root = await tmp();
    const { result } = await runCollect(f, { root, cache: false });
    expect(result.status, JSON.stringify(result.error)).toBe("succeeded");
    const store = new LocalStore({ root });
    const runs = await taskRuns(store, result.runId);
    const firstId = runs.get("first")!.runId;
    const file = JSON.parse(await readFile(await store.downloadArtifact(runs.get("second")!.runId, "cairn/inputs.json", await tmp()), "utf8"));
    expect(file).toEqual({ rows: { $sameAs: `runs:/${firstId}/cairn/inputs.json`, input: "rows" }, other });
    expect(runs.get("second")!.params).toEqual({
      rows: `(too long for a param: see input \`rows\` in artifact cairn/inputs.json of run ${firstId})`,
      other: "(too long for a param: see artifact cairn/inputs.json)",
    });
  });

  it("a task cannot change its input's param nor detach its run from the flow: refused at the call, the record keeps Cairn's", async () => {
    const root = await tmp();
    const relog = task("relog")
      .input<{ n: number; how: string }>()
      .run(({ n, how }, ctx) => {
        ctx.log.param("n", n); // the same value: nothing to refuse
        if (how === "param") ctx.log.param("n", n + 1);
        if (how === "tag") ctx.log.tag("mlflow.parentRunId", "0".repeat(32));
        return { n };
      });
    const f = flow("relog").build(() => ({ p: relog({ n: 3, how: "param" }, { id: "by-param" }).n, t: relog({ n: 3, how: "tag" }, { id: "by-tag" }).n }));
    const { result } = await runCollect(f, { root, cache: false, failurePolicy: "continue" });
    expect(result.tasks["by-param"]).toMatchObject({ status: "failed", error: { name: "OptionError" } });
    expect(result.tasks["by-param"]!.error!.message).toMatch(/^Param "n" is the task's input "n", which Cairn logs as it was given/);
    expect(result.tasks["by-tag"]).toMatchObject({ status: "failed", error: { name: "OptionError" } });
    expect(result.tasks["by-tag"]!.error!.message).toMatch(/^Tag "mlflow.parentRunId" is Cairn's/);
    const runs = await taskRuns(new LocalStore({ root }), result.runId);
    expect(runs.get("by-param")!.params.n).toBe("3");
    expect(runs.get("by-tag")!.parentRunId).toBe(result.runId);
  });

  it("a task cannot set the tags Cairn writes itself (cairn.*, mlflow.runName, mlflow.source.*, ...): refused at the call naming the tag, the record keeps Cairn's; tags of its own are kept", async () => {
    const root = await tmp();
    const reserved = ["cairn.task", "cairn.flow", "cairn.kind", "cairn.status", "cairn.cache_key", "mlflow.runName", "mlflow.user", "mlflow.source.name"];
    const tagger = task("tagger")
      .input<{ key: string }>()
      .run(({ key }, ctx) => {
        ctx.log.tag(key, "fake");
        return { key };
      });
    const own = task("own").run((_: {}, ctx) => {
      for (const key of ["cairnish", "my.cairn.task", "mlflow.note", "stage"]) ctx.log.tag(key, `v-${key}`);
      return { ok: true };
    });
    const f = flow("reserved-tags").build(() => ({
      ...Object.fromEntries(reserved.map((key, i) => [`t${i}`, tagger({ key }, { id: `tag-${i}` }).key])),
      ok: own().ok,
    }));
    const { result } = await runCollect(f, { root, cache: false, failurePolicy: "continue" });
    const runs = await taskRuns(new LocalStore({ root }), result.runId);
    for (const [i, key] of reserved.entries()) {
      const id = `tag-${i}`;
      expect(result.tasks[id]).toMatchObject({ status: "failed", error: { name: "OptionError" } });
      expect(result.tasks[id]!.error!.message).toMatch(new RegExp(`^Tag "${key.replaceAll(".", "\\.")}" is Cairn's: .*A task cannot set it with ctx\\.log\\.tag\\(\\); log what you mean under a tag of your own`));
      const run = runs.get(id)!;
      expect(Object.values(run.tags)).not.toContain("fake");
      expect(run.tags).toMatchObject({ "mlflow.runName": id, "cairn.task": "tagger", "cairn.status": "failed" });
    }
    expect(runs.get("own")!.tags).toMatchObject({ cairnish: "v-cairnish", "my.cairn.task": "v-my.cairn.task", "mlflow.note": "v-mlflow.note", stage: "v-stage" });
  });

  it("a metric no tracker keeps fails its task at the call, a negative step is kept", async () => {
    const root = await tmp();
    const { result } = await runCollect(metricFlow, { root, cache: false, failurePolicy: "continue" });
    await expectMetricsChecked(new LocalStore({ root }), result);
  });

  it("failed, failed in validation, skipped and succeeded tasks each have a run that says what happened and why", async () => {
    const root = await tmp();
    const { result } = await runCollect(everyOutcome, { root, failurePolicy: "continue", secrets: { API_TOKEN: SECRET } });
    const store = new LocalStore({ root });
    const runs = await taskRuns(store, result.runId);
    await expectEveryOutcomeRecorded(result, runs, async (runId) => readFile(await store.downloadArtifact(runId, "cairn/error.txt", await tmp()), "utf8"), (await store.getRun(result.runId))!);
  });

  it("a task that logged its inputs itself, spelled its own way (a script's mlflow.log_param), succeeds: its values stand", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    // What a script's own MLflow client does: write the run's params straight to the tracker, as Python spells them.
    const selfLogging = task("self-logging")
      .input<{ flag: boolean; ratio: number }>()
      .run(async ({ flag, ratio }, ctx) => {
        await store.logBatch(ctx.runId, { params: { flag: flag ? "True" : "False", ratio: "1e-07" } });
        return { ok: ratio > 0 };
      });
    const { result } = await runCollect(flow("self-logging").build(() => ({ ok: selfLogging({ flag: true, ratio: 1e-7 }).ok })), { root, tracker: store, cache: false });
    expect(result.status, JSON.stringify(result.error)).toBe("succeeded");
    expect((await taskRuns(store, result.runId)).get("self-logging")).toMatchObject({ status: "FINISHED", params: { flag: "True", ratio: "1e-07" } });
  });

  it("fail-fast: the tasks the stop skipped and cancelled have KILLED runs naming the failed task", async () => {
    const root = await tmp();
    const f = flow("ff-records").build(() => {
      long();
      const b = boom();
      add({ a: 1 }, { id: "after", after: [b] });
      return {};
    });
    const { result } = await runCollect(f, { root, concurrency: 2, secrets: { API_TOKEN: SECRET } });
    const runs = await taskRuns(new LocalStore({ root }), result.runId);
    expect(runs.get("after")).toMatchObject({ status: "KILLED", tags: { "cairn.status": "skipped", "cairn.skipped.reason": "fail-fast", "cairn.skipped.because": "boom" } });
    // Before: the cancelled run did not say what stopped it, nor the key it ran for.
    expect(runs.get("long")).toMatchObject({
      status: "KILLED",
      tags: { "cairn.status": "cancelled", "cairn.error.name": "FailFast", "cairn.error.message": 'Stopped because task "boom" failed and the failure policy is fail-fast.', "cairn.failed_key": expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    expect(runs.get("boom")).toMatchObject({ status: "FAILED", tags: { "cairn.status": "failed" } });
    // The report says what stopped it (it said "the flow run was cancelled" for every cancelled task).
    const report = await readReportData(new LocalStore({ root }), result.runId);
    // In plan's words (one function words both).
    expect(report.tasks.find((t) => t.id === "long")?.why).toContain('cancelled: stopped because task "boom" failed and the failure policy is fail-fast');
  });

  it("a flow whose own record a server refuses while its tasks run: the running task is cancelled, the one not started skipped, neither as if someone cancelled it", async () => {
    const root = await tmp();
    const store = new LocalStore({ root });
    let started!: () => void;
    const longStarted = new Promise<void>((resolve) => (started = resolve));
    let flowRunId: string | undefined;
    // The embedded store, recording as a server does (its flow record sent while the tasks start), that refuses the flow run's params once `long` runs.
    const tracker = new Proxy(store, {
      get(target, key, receiver) {
        if (key === "capabilities") return { ...target.capabilities, remote: true };
        if (key === "createRun") {
          return async (options: Parameters<Tracker["createRun"]>[0]) => {
            const id = await target.createRun(options);
            if (options.parentRunId === undefined) flowRunId ??= id;
            return id;
          };
        }
        if (key === "logBatch") {
          return async (runId: string, batch: Parameters<Tracker["logBatch"]>[1]) => {
            if (runId !== flowRunId || !batch.params) return target.logBatch(runId, batch);
            await longStarted;
            throw new Error("the server refused the params");
          };
        }
        const value = Reflect.get(target, key, receiver) as unknown;
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const watched = task("long").run(async (_, ctx) => {
      started();
      await sleep(10_000, ctx.signal);
      return { a: 1 };
    });
    const f = flow("record-refused").build(() => {
      add({ a: watched().a }, { id: "after" });
      return {};
    });
    const { events, result } = await runCollect(f, { tracker, root, cache: false });
    expectOneTerminalEach(events, result);
    expect(result).toMatchObject({ status: "failed", error: { message: "the server refused the params" } });
    expect(result.tasks.long).toMatchObject({ status: "cancelled", error: { name: "FlowFailed", message: "Stopped because the flow failed: Error: the server refused the params" } });
    expect(result.tasks.after).toMatchObject({ status: "skipped", error: { name: "FlowFailed", message: "Skipped because the flow failed before this task started (the flow's error says why)." } });
    const runs = await taskRuns(store, result.runId);
    expect(runs.get("after")).toMatchObject({ status: "KILLED", tags: { "cairn.status": "skipped", "cairn.skipped.reason": "flow-failed", "cairn.skipped.because": result.runId } });
    expect(runs.get("long")).toMatchObject({ status: "KILLED", tags: { "cairn.status": "cancelled", "cairn.error.name": "FlowFailed", "cairn.error.message": "Stopped because the flow failed: Error: the server refused the params" } });
    // cairn show words it: not an upstream task, the flow.
    const shown = await cairn(["show", result.runId, "--root", root]);
    expect(shown.stdout).toMatch(new RegExp(`after .* skipped: the flow failed before it started \\(its run ${result.runId} says why\\)`));
  });
});

describe("a task run for every node, in a real MLflow server", () => {
  let server: MlflowServer;
  beforeAll(async () => {
    server = await startMlflowServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("a flow param too long for a param is on the flow run, pointing at cairn/params.json, as in the embedded store", async () => {
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    const { result } = await runCollect(longParamFlow, { root: await tmp(), tracker, cache: false, params: { query: longQuery } });
    await expectLongParamKept(tracker, result, async (runId, path) => {
      const [file] = await readWithMlflow(server.uri, [{ op: "download_artifact", run_id: runId, path, dst: await tmp() }]);
      return Buffer.from(file.base64, "base64").toString("utf8");
    });
  });

  it("a metric no tracker keeps fails its task at the call, a negative step is kept, as in the embedded store", async () => {
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    const { result } = await runCollect(metricFlow, { root: await tmp(), tracker, cache: false, failurePolicy: "continue" });
    await expectMetricsChecked(tracker, result);
  });

  it("records what happened to each task, as MLflow's own client reads it, at a stated cost in requests", async () => {
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    const seen: { path: string }[] = [];
    tracker.client.http.observe((e) => {
      if (e.phase === "request") seen.push({ path: `${e.method} ${new URL(e.url).pathname.replace(/^\/api\/2\.0\/mlflow(-artifacts)?\//, "")}` });
    });
    const { result } = await runCollect(everyOutcome, { root: await tmp(), tracker, cache: false, failurePolicy: "continue", secrets: { API_TOKEN: SECRET } });
    const requests = seen.splice(0);
    const runs = await taskRuns(tracker, result.runId);
    await expectEveryOutcomeRecorded(result, runs, async (runId) => {
      const dst = await tmp();
      const [file] = await readWithMlflow(server.uri, [{ op: "download_artifact", run_id: runId, path: "cairn/error.txt", dst }]);
      return Buffer.from(file.base64, "base64").toString("utf8");
    }, (await tracker.getRun(result.runId))!);

    // MLflow's own client agrees: status, and the tags a search can filter on.
    const experimentId = runs.get("boom")!.experimentId;
    const [skipped, failed] = await readWithMlflow(server.uri, [
      { op: "search_runs", experiment_ids: [experimentId], filter: `tags."cairn.status" = 'skipped'` },
      { op: "search_runs", experiment_ids: [experimentId], filter: `tags."cairn.error.name" = 'InputValidationError'` },
    ]);
    expect(skipped.map((r: { run_name: string; status: string }) => [r.run_name, r.status]).sort()).toEqual([
      ["skipped-1", "KILLED"],
      ["skipped-2", "KILLED"],
    ]);
    expect(failed.map((r: { run_name: string; status: string }) => [r.run_name, r.status])).toEqual([["invalid", "FAILED"]]);

    // The cost: a skipped task is one create and one update (MLflow cannot create a run ended); a
    // task failed before its run, create, its error file, update; a failed task's error file is one
    // upload more than before. No read-back: the file goes while the tracker knows the run.
    const skippedIds = new Set([runs.get("skipped-1")!.runId, runs.get("skipped-2")!.runId]);
    expect(skippedIds.size).toBe(2);
    const creates = requests.filter((r) => r.path === "POST runs/create").length;
    const updates = requests.filter((r) => r.path === "POST runs/update").length;
    // Flow run + 5 task runs; each ends with one update.
    expect(creates).toBe(6);
    expect(updates).toBe(6);
    const uploads = requests.filter((r) => r.path.startsWith("PUT artifacts/"));
    expect(uploads.filter((r) => r.path.endsWith("/cairn/error.txt"))).toHaveLength(2);
    expect(requests.filter((r) => r.path === "GET runs/get")).toEqual([]);
  });
});
