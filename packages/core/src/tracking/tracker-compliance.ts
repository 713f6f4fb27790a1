/**
 * The behaviour every Tracker must show, as a vitest suite. The local store and
 * the MLflow tracker both run it, so switching between them changes nothing a
 * flow can observe: the contract's methods, and the records the engine makes of
 * each task through them (a failed task's error, a skipped or cancelled task's
 * run, what a task logs). It uses only the `Tracker` interface and gives every test its
 * own experiment (random suffix), so it can run against a shared MLflow server.
 *
 * @example
 * trackerComplianceSuite("LocalStore", async () => new LocalStore({ root: await tmp() }));
 */
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { FlowNode } from "../definition/flow-definition.ts";
import { describeValue, MetricError, TrackingError } from "../errors.ts";
import { createTaskRun, finishTaskRun, type RecordScope, recordUnstarted } from "../pipeline/task-run.ts";
import { SecretRegistry } from "../run/secrets.ts";
import { RunRecorder } from "./run-recorder.ts";
import { writeRunFiles } from "./run-files.ts";
import { checkMetric, type MetricPoint, type Tracker } from "./tracker.ts";

/**
 * Checks that `t.logBatch` rejects `metric`, one that no tracker keeps, with the MetricError
 * {@link checkMetric} throws; an assertion that says what was expected when it does not.
 * @internal exported for its own test
 */
export async function expectMetricRejected(t: Tracker, runId: string, metric: MetricPoint): Promise<void> {
  const shown = `{ key: ${JSON.stringify(metric.key)}, value: ${describeValue(metric.value)}, step: ${describeValue(metric.step)} }`;
  const fix = "Call checkMetric(key, value, step) from @cairn/core on each metric of the batch first, and let its MetricError (a TrackingError) reject the call.";
  let error: unknown;
  let resolved = false;
  await t.logBatch(runId, { metrics: [metric] }).then(
    () => (resolved = true),
    (e: unknown) => (error = e),
  );
  expect(resolved, `logBatch took the metric ${shown} without complaint; a tracker must reject it with the MetricError checkMetric() throws. ${fix}`).toBe(false);
  expect(MetricError.is(error), `logBatch rejected the metric ${shown} with ${String(error)}, not a MetricError. ${fix}`).toBe(true);
  expect(error).toBeInstanceOf(TrackingError);
  expect((error as Error).message, `the MetricError's words, as checkMetric() gives them. ${fix}`).toBe(checkedMessage(metric));
}

/** The message of the MetricError that checkMetric throws for `metric`. */
function checkedMessage(metric: MetricPoint): string | undefined {
  try {
    checkMetric(metric.key, metric.value, metric.step);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** How {@link trackerComplianceSuite} treats the tracker. */
export interface TrackerComplianceOptions {
  /**
   * The tracker keeps what it is given (`capabilities.records`). False for a null tracker: the
   * suite then checks that every method is a valid no-op returning what an empty store would,
   * instead of reading records back. @default true
   */
  records?: boolean;
}

/**
 * Registers `describe(name, …)` with one test per promise of the `Tracker` contract, and one per
 * declared capability (what a tracker declares, it does). `makeTracker` is called once per test;
 * a tracker that declares `sharedRuns` must, called twice, give two trackers that see each other's runs.
 */
export function trackerComplianceSuite(name: string, makeTracker: () => Promise<Tracker> | Tracker, options: TrackerComplianceOptions = {}): void {
  const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;
  const tmp = () => mkdtemp(join(tmpdir(), "cairn-compliance-"));
  const records = options.records ?? true;

  describe(`${name}: tracker compliance`, () => {
    it("declares every capability as a boolean, and records as the suite was told", async () => {
      const t = await makeTracker();
      const { capabilities } = t;
      for (const key of ["records", "localArtifacts", "sharedRuns", "mlflowClients", "remote"] as const) expect(typeof capabilities[key]).toBe("boolean");
      expect(capabilities.records).toBe(records);
      expect(typeof t.kind).toBe("string");
      expect(typeof t.uri).toBe("string");
    });

    it("hands out fresh 32-hex-digit run ids, and offers newRunId only when it records nothing", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("ids"));
      const ids = [await t.createRun({ experimentId, name: "a" }), await t.createRun({ experimentId, name: "b" })];
      if (t.recordRun) ids.push(await t.recordRun({ experimentId, name: "c", status: "FINISHED" }));
      if (t.newRunId) {
        expect(t.capabilities.records).toBe(false);
        ids.push(t.newRunId(), t.newRunId());
      }
      for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of ids) await t.endRun(id, "FINISHED");
      await t.flush();
    });

    it("offers artifactDir exactly when it declares localArtifacts, and lists what is written there", async () => {
      const t = await makeTracker();
      expect(typeof t.artifactDir === "function").toBe(t.capabilities.localArtifacts);
      if (!t.capabilities.localArtifacts) return;
      expect(t.capabilities.records).toBe(true);
      const runId = await t.createRun({ experimentId: await t.ensureExperiment(unique("dir")), name: "d" });
      const dir = t.artifactDir!(runId);
      await mkdir(join(dir, "sub"), { recursive: true });
      await writeFile(join(dir, "sub", "written.txt"), "in place");
      expect(await t.listArtifacts(runId, "sub")).toEqual([{ path: "sub/written.txt", isDir: false, size: 8 }]);
      const back = await t.downloadArtifact(runId, "sub/written.txt", await tmp());
      expect(await readFile(back, "utf8")).toBe("in place");
    });

    it("shows one tracker's runs and artifacts to another, when it declares sharedRuns", async () => {
      const t = await makeTracker();
      if (!t.capabilities.sharedRuns) return;
      expect(t.capabilities.records).toBe(true);
      const other = await makeTracker();
      const exp = unique("shared");
      const experimentId = await t.ensureExperiment(exp);
      const runId = await t.createRun({ experimentId, name: "there", tags: { "cairn.cache_key": "k-shared" } });
      const dir = await tmp();
      await writeFile(join(dir, "out.txt"), "shared");
      await t.logArtifact(runId, join(dir, "out.txt"));
      await t.endRun(runId, "FINISHED");
      await t.flush();
      expect(await other.ensureExperiment(exp)).toBe(experimentId);
      expect(await other.getRun(runId)).toMatchObject({ runId, name: "there", status: "FINISHED" });
      expect((await other.searchRuns({ experimentIds: [experimentId], tags: { "cairn.cache_key": "k-shared" } })).map((r) => r.runId)).toEqual([runId]);
      expect(await readFile(await other.downloadArtifact(runId, "out.txt", await tmp()), "utf8")).toBe("shared");
    });

    it("names an MLflow server by an http(s) URL that answers, when it declares mlflowClients or remote", async () => {
      const t = await makeTracker();
      if (t.capabilities.remote || t.capabilities.mlflowClients) expect(new URL(t.uri).protocol).toMatch(/^https?:$/);
      if (!t.capabilities.mlflowClients) return;
      expect(t.capabilities.records).toBe(true);
      // MLflow's own health endpoint, as its clients' first request would reach it.
      const health = await fetch(new URL("health", t.uri.endsWith("/") ? t.uri : `${t.uri}/`));
      expect(health.ok).toBe(true);
    });

    it("writes a text file as a run's artifact from memory, when it offers logText", async () => {
      const t = await makeTracker();
      if (!t.logText || !t.capabilities.records) return;
      const experimentId = await t.ensureExperiment(unique("text"));
      const runId = await t.createRun({ experimentId, name: "text" });
      const text = `{"quote": "it's \\"x\\"", "unicode": "é✓"}`;
      await t.logText(runId, "cairn/notes/a.json", text);
      await t.logText(runId, "top.txt", "top");
      await expect(t.logText(runId, "../escape.txt", "no")).rejects.toThrow(/\.\./);
      await t.endRun(runId, "FINISHED");
      await t.flush();
      expect((await t.listArtifacts(runId, "cairn/notes")).map((a) => a.path)).toEqual(["cairn/notes/a.json"]);
      expect(await readFile(await t.downloadArtifact(runId, "cairn/notes/a.json", await tmp()), "utf8")).toBe(text);
      expect(await readFile(await t.downloadArtifact(runId, "top.txt", await tmp()), "utf8")).toBe("top");
    });

    it("removes a run's artifact file, and resolves for one that is not there, when it offers deleteArtifact", async () => {
      const t = await makeTracker();
      if (!t.deleteArtifact || !t.logText || !t.capabilities.records) return;
      const experimentId = await t.ensureExperiment(unique("delete"));
      const runId = await t.createRun({ experimentId, name: "delete" });
      await t.logText(runId, "cairn/passing/a.json", "{}");
      await t.logText(runId, "cairn/passing/b.json", "{}");
      await t.deleteArtifact(runId, "cairn/passing/a.json");
      await t.deleteArtifact(runId, "cairn/passing/a.json"); // none there: resolves all the same
      expect((await t.listArtifacts(runId, "cairn/passing")).map((a) => a.path)).toEqual(["cairn/passing/b.json"]);
      await t.endRun(runId, "FINISHED");
    });

    it("keeps index documents by name with its experiment, when it offers readIndexEntry and writeIndexEntry", async () => {
      const t = await makeTracker();
      expect(typeof t.readIndexEntry).toBe(typeof t.writeIndexEntry);
      if (!t.readIndexEntry || !t.writeIndexEntry || !t.capabilities.records) return;
      const experimentId = await t.ensureExperiment(unique("index"));
      const other = await t.ensureExperiment(unique("index-other"));
      expect(await t.readIndexEntry(experimentId, "k-1.json")).toBeUndefined();
      await t.writeIndexEntry(experimentId, "k-1.json", '{"a":1}');
      expect(await t.readIndexEntry(experimentId, "k-1.json")).toBe('{"a":1}');
      await t.writeIndexEntry(experimentId, "k-1.json", '{"a":2}');
      expect(await t.readIndexEntry(experimentId, "k-1.json")).toBe('{"a":2}');
      expect(await t.readIndexEntry(other, "k-1.json")).toBeUndefined();
      if (t.listIndexEntries) {
        expect(await t.listIndexEntries(other)).toEqual([]);
        await t.writeIndexEntry(experimentId, "k-2.json", '{"b":1}');
        expect((await t.listIndexEntries(experimentId)).sort()).toEqual(["k-1.json", "k-2.json"]);
      }
      if (t.deleteIndexEntry) {
        await t.deleteIndexEntry(experimentId, "k-1.json");
        await t.deleteIndexEntry(experimentId, "k-1.json"); // none there: resolves all the same
        expect(await t.readIndexEntry(experimentId, "k-1.json")).toBeUndefined();
        if (t.listIndexEntries) expect(await t.listIndexEntries(experimentId)).toEqual(["k-2.json"]);
      }
    });

    if (!records) {
      it("is a null object: every method a no-op that returns what an empty store would", async () => {
        const t = await makeTracker();
        expect(t.capabilities).toMatchObject({ records: false, localArtifacts: false, sharedRuns: false, mlflowClients: false });
        await expect(t.ping()).resolves.toBeUndefined();
        const experimentId = await t.ensureExperiment(unique("null"));
        if (t.openExperiment) expect(await t.openExperiment(unique("null"))).toBe(experimentId);
        const runId = await t.createRun({ experimentId, name: "r", tags: { k: "v" } });
        await expect(t.logBatch(runId, { params: { p: "1" }, metrics: [{ key: "m", value: 1, step: 0, timestamp: 1 }], tags: { t: "x" } })).resolves.toBeUndefined();
        const dir = await tmp();
        await writeFile(join(dir, "a.txt"), "a");
        await expect(t.logArtifact(runId, join(dir, "a.txt"))).resolves.toBeUndefined();
        await expect(t.endRun(runId, "FINISHED")).resolves.toBeUndefined();
        expect(await t.getRun(runId)).toBeUndefined();
        expect(await t.searchRuns({ experimentIds: [experimentId] })).toEqual([]);
        expect(await t.getMetricHistory(runId, "m")).toEqual([]);
        expect(await t.listArtifacts(runId)).toEqual([]);
        await expect(t.downloadArtifact(runId, "a.txt", await tmp())).rejects.toBeInstanceOf(TrackingError);
        if (t.getRuns) expect((await t.getRuns([runId], [experimentId])).get(runId)).toBeUndefined();
        if (t.readIndexEntry) expect(await t.readIndexEntry(experimentId, "k.json")).toBeUndefined();
        if (t.closeAbandonedRuns) expect(await t.closeAbandonedRuns([experimentId])).toEqual([]);
        await expect(t.flush()).resolves.toBeUndefined();
      });
      return;
    }

    /** Where a flow run's task runs go, as the engine records them, with one known secret. */
    const taskScope = async (label: string): Promise<RecordScope & { tracker: Tracker }> => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique(label));
      const flowRunId = await t.createRun({ experimentId, name: "flow" });
      return { tracker: t, experimentId, flowRunId, flowName: "flow", workDir: await tmp(), secrets: new SecretRegistry({ TOKEN: "s3cr3t-value-42" }, {}) };
    };
    const nodeOf = (id: string) => ({ id, task: { name: id, kind: "function" }, inputs: {} }) as unknown as FlowNode;
    const artifactText = async (t: Tracker, runId: string, path: string) => readFile(await t.downloadArtifact(runId, path, await tmp()), "utf8");

    it("records a failed task's run: its status tag, its error's name and message cut to a tag's length, the whole text and stack as cairn/error.txt, secrets masked", async () => {
      const scope = await taskScope("failed");
      const t = scope.tracker;
      const runId = await createTaskRun(scope, nodeOf("boom"));
      const recorder = new RunRecorder(t, runId, scope.secrets);
      recorder.param("token", "s3cr3t-value-42");
      const long = "x".repeat(9000);
      const error = new Error(`auth failed for s3cr3t-value-42; ${long}`, { cause: new TypeError("inner s3cr3t-value-42") });
      await finishTaskRun(scope, runId, recorder, 2, "FAILED", undefined, error);
      await t.flush();
      const run = (await t.getRun(runId))!;
      expect(run).toMatchObject({ status: "FAILED", parentRunId: scope.flowRunId, params: { token: "***" } });
      expect(run.tags).toMatchObject({ "cairn.status": "failed", "cairn.error.name": "Error", "cairn.attempts": "2", "cairn.node_id": "boom" });
      const message = run.tags["cairn.error.message"]!;
      expect(message.length).toBeLessThanOrEqual(8000);
      expect(message).toMatch(/^auth failed for \*\*\*; x+\.\.\. \[9021 characters; the whole text is in artifact cairn\/error\.txt\]$/);
      expect(run.tags["cairn.error"]).toMatch(/^Error: auth failed for \*\*\*; x+\.\.\. \[9028 characters; the whole text is in artifact cairn\/error\.txt\]$/);
      expect(run.tags["cairn.error"]!.length).toBeLessThanOrEqual(4000);
      expect(JSON.stringify(run)).not.toContain("s3cr3t");
      expect((await t.listArtifacts(runId, "cairn")).map((a) => a.path)).toContain("cairn/error.txt");
      const text = await artifactText(t, runId, "cairn/error.txt");
      expect(text.startsWith(`Error: auth failed for ***; ${long}\n    at `)).toBe(true);
      expect(text).toContain("\n\nCaused by:\nTypeError: inner ***\n    at ");
      expect(text).not.toContain("s3cr3t");
    });

    it("records the run of a task that never started in one step, already over: skipped and cancelled KILLED, a failure before its run FAILED with its error", async () => {
      const scope = await taskScope("unstarted");
      const t = scope.tracker;
      const skipped = await recordUnstarted(scope, nodeOf("after-boom"), { status: "skipped", reason: "upstream-failed", because: "boom" });
      const cancelled = await recordUnstarted(scope, nodeOf("never"), { status: "cancelled" });
      const invalid = Object.assign(new Error("input n: expected number, got string"), { name: "InputValidationError" });
      const failed = await recordUnstarted(scope, nodeOf("bad-inputs"), { status: "failed", error: invalid });
      await t.flush();
      const children = await t.searchRuns({ experimentIds: [scope.experimentId], parentRunId: scope.flowRunId });
      expect(children.map((r) => r.runId).sort()).toEqual([skipped, cancelled, failed].sort());
      for (const run of children) {
        expect(run.endTime).toBeGreaterThanOrEqual(run.startTime);
        expect(run.tags["cairn.node_id"]).toBe(run.name);
      }
      const byName = new Map(children.map((r) => [r.name, r]));
      expect(byName.get("after-boom")).toMatchObject({ status: "KILLED", tags: { "cairn.status": "skipped", "cairn.skipped.reason": "upstream-failed", "cairn.skipped.because": "boom" } });
      expect(byName.get("after-boom")!.tags["cairn.error.name"]).toBeUndefined();
      expect(byName.get("never")).toMatchObject({ status: "KILLED", tags: { "cairn.status": "cancelled" } });
      expect(byName.get("bad-inputs")).toMatchObject({
        status: "FAILED",
        tags: { "cairn.status": "failed", "cairn.error.name": "InputValidationError", "cairn.error.message": "input n: expected number, got string" },
      });
      expect(await artifactText(t, failed!, "cairn/error.txt")).toMatch(/^InputValidationError: input n: expected number, got string\n {4}at /);
      // Only a failure has an error file.
      expect(await t.listArtifacts(skipped!)).toEqual([]);
    });

    it("records what a task logs through its run's recorder: params, metrics at steps, tags, log files, its outputs and status", async () => {
      const scope = await taskScope("logs");
      const t = scope.tracker;
      const runId = await createTaskRun(scope, nodeOf("train"));
      const recorder = new RunRecorder(t, runId, scope.secrets);
      recorder.param("lr", "0.1");
      for (let step = 0; step < 3; step++) recorder.metric("loss", 1 / (step + 1), step);
      recorder.tag("stage", "fit with s3cr3t-value-42");
      await writeRunFiles(t, runId, "logs", { "stdout.txt": "epoch 1\nepoch 2\n", "stderr.txt": "" });
      await finishTaskRun(scope, runId, recorder, 1, "FINISHED", { values: { best: 0.33 }, artifacts: [] });
      await t.flush();
      const run = (await t.getRun(runId))!;
      expect(run).toMatchObject({ status: "FINISHED", params: { lr: "0.1" }, metrics: { loss: 1 / 3 }, tags: { stage: "fit with ***", "cairn.status": "succeeded", "cairn.attempts": "1" } });
      expect((await t.getMetricHistory(runId, "loss")).map((p) => p.step)).toEqual([0, 1, 2]);
      expect(await artifactText(t, runId, "logs/stdout.txt")).toBe("epoch 1\nepoch 2\n");
      expect(JSON.parse(await artifactText(t, runId, "cairn/outputs.json"))).toMatchObject({ values: { best: 0.33 } });
      expect(run.tags["cairn.error.name"]).toBeUndefined();
    });

    it("keeps params, metrics and tags named as Object.prototype members (constructor, toString, hasOwnProperty, __proto__) as any others", async () => {
      const scope = await taskScope("proto-keys");
      const t = scope.tracker;
      const runId = await createTaskRun(scope, nodeOf("proto"));
      const recorder = new RunRecorder(t, runId, scope.secrets);
      const names = ["constructor", "toString", "hasOwnProperty", "__proto__"];
      for (const [i, k] of names.entries()) {
        recorder.param(k, `p-${k}`);
        recorder.metric(k, i + 1, 0);
        recorder.tag(k, `t-${k}`);
      }
      await finishTaskRun(scope, runId, recorder, 1, "FINISHED", { values: {}, artifacts: [] });
      await t.flush();
      const run = (await t.getRun(runId))!;
      for (const [i, k] of names.entries()) {
        expect([k, Object.hasOwn(run.params, k) && run.params[k]]).toEqual([k, `p-${k}`]);
        expect([k, Object.hasOwn(run.metrics, k) && run.metrics[k]]).toEqual([k, i + 1]);
        expect([k, Object.hasOwn(run.tags, k) && run.tags[k]]).toEqual([k, `t-${k}`]);
      }
      expect((await t.getMetricHistory(runId, "__proto__")).map((p) => p.value)).toEqual([4]);
    });

    it("pings", async () => {
      const t = await makeTracker();
      await expect(t.ping()).resolves.toBeUndefined();
    });

    it("creates an experiment once, also when two callers race", async () => {
      const t = await makeTracker();
      const exp = unique("exp");
      const [a, b] = await Promise.all([t.ensureExperiment(exp), t.ensureExperiment(exp)]);
      expect(a).toBe(b);
      expect(await t.ensureExperiment(exp)).toBe(a);
      expect(await t.getExperiment(a)).toEqual({ experimentId: a, name: exp });
      expect(await t.ensureExperiment(unique("other"))).not.toBe(a);
    });

    it("opens an experiment as ensureExperiment does, when it offers openExperiment", async () => {
      const t = await makeTracker();
      if (!t.openExperiment) return;
      const exp = unique("open");
      const [a, b] = await Promise.all([t.openExperiment(exp), t.openExperiment(exp)]);
      expect(a).toBe(b);
      expect(await t.ensureExperiment(exp)).toBe(a);
      expect(await t.openExperiment(exp)).toBe(a);
      expect(await t.getExperiment(a)).toEqual({ experimentId: a, name: exp });
    });

    it("opens an experiment by id as getExperiment reads it, when it offers openExperimentById", async () => {
      const t = await makeTracker();
      if (!t.openExperimentById) return;
      const exp = unique("by-id");
      const id = await t.ensureExperiment(exp);
      expect(await t.openExperimentById(id)).toEqual({ experimentId: id, name: exp });
      expect(await t.openExperimentById("987654321")).toBeUndefined();
    });

    it("returns undefined for an unknown experiment", async () => {
      const t = await makeTracker();
      expect(await t.getExperiment("987654321")).toBeUndefined();
    });

    it("creates a RUNNING run and reads it back", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("runs"));
      const before = Date.now();
      const runId = await t.createRun({ experimentId, name: "my-run", tags: { "cairn.kind": "flow" }, startTime: before });
      expect(runId).toMatch(/^[0-9a-f]{32}$/);
      const run = await t.getRun(runId);
      expect(run).toMatchObject({ runId, experimentId, name: "my-run", status: "RUNNING", startTime: before });
      expect(run!.tags["cairn.kind"]).toBe("flow");
      expect(run!.endTime).toBeUndefined();
      expect(await t.getRun("0123456789abcdef0123456789abcdef")).toBeUndefined();
    });

    it("defaults the start time to now", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("now"));
      const before = Date.now();
      const runId = await t.createRun({ experimentId, name: "r" });
      const run = (await t.getRun(runId))!;
      // A server's clock may differ a little from ours.
      expect(Math.abs(run.startTime - before)).toBeLessThan(60_000);
    });

    it("links children to their parent", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("nest"));
      const parent = await t.createRun({ experimentId, name: "flow" });
      const child = await t.createRun({ experimentId, name: "task", parentRunId: parent });
      expect((await t.getRun(child))!.parentRunId).toBe(parent);
      expect((await t.getRun(child))!.tags["mlflow.parentRunId"]).toBe(parent);
      const children = await t.searchRuns({ experimentIds: [experimentId], parentRunId: parent });
      expect(children.map((r) => r.runId)).toEqual([child]);
      const top = await t.searchRuns({ experimentIds: [experimentId], topLevelOnly: true });
      expect(top.map((r) => r.runId)).toEqual([parent]);
    });

    it("keeps only the runs whose id starts with runIdPrefix", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("prefix"));
      const parent = await t.createRun({ experimentId, name: "flow" });
      const child = await t.createRun({ experimentId, name: "task", parentRunId: parent });
      const search = (runIdPrefix: string) => t.searchRuns({ experimentIds: [experimentId], runIdPrefix });
      expect((await search(child.slice(0, 12))).map((r) => r.runId)).toEqual([child]);
      expect((await search(parent)).map((r) => r.runId)).toEqual([parent]);
      // A prefix met inside another id is no match: the child's line holds its parent's id.
      expect(await search(parent.slice(4, 16))).toEqual([]);
    });

    it("records a run that is already over in one step, when it offers recordRun", async () => {
      const t = await makeTracker();
      if (!t.recordRun) return;
      const experimentId = await t.ensureExperiment(unique("whole"));
      const parent = await t.createRun({ experimentId, name: "flow" });
      const ids = await Promise.all(
        ["a", "b", "c"].map((name, i) =>
          t.recordRun!({ experimentId, name, parentRunId: parent, tags: { "cairn.cached_from": `src-${name}` }, status: i === 2 ? "FAILED" : "FINISHED", startTime: 1_700_000_000_000 + i, endTime: 1_700_000_000_500 + i }),
        ),
      );
      expect(new Set(ids).size).toBe(3);
      for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
      expect(await t.getRun(ids[0]!)).toMatchObject({ runId: ids[0], experimentId, name: "a", status: "FINISHED", startTime: 1_700_000_000_000, endTime: 1_700_000_000_500, parentRunId: parent });
      expect((await t.getRun(ids[1]!))!.tags).toMatchObject({ "cairn.cached_from": "src-b", "mlflow.parentRunId": parent });
      const children = await t.searchRuns({ experimentIds: [experimentId], parentRunId: parent });
      expect(children.map((r) => r.runId)).toEqual([...ids].reverse());
      const finished = await t.searchRuns({ experimentIds: [experimentId], status: "FINISHED", tags: { "cairn.cached_from": "src-a" } });
      expect(finished.map((r) => r.runId)).toEqual([ids[0]]);
      // Afterwards it is a run like any other.
      await t.logBatch(ids[0]!, { tags: { later: "yes" } });
      await t.flush();
      expect(await t.getRun(ids[0]!)).toMatchObject({ status: "FINISHED", tags: { later: "yes", "cairn.cached_from": "src-a" } });
      await expect(t.recordRun({ experimentId, name: "x", status: "RUNNING" as never })).rejects.toBeInstanceOf(TrackingError);
    });

    it("sends a run's held-back metrics when asked, when it offers flushRun: another tracker then reads them", async () => {
      const t = await makeTracker();
      if (!t.flushRun || !t.capabilities.sharedRuns) return;
      const experimentId = await t.ensureExperiment(unique("flush-run"));
      const runId = await t.createRun({ experimentId, name: "flushed" });
      await t.logBatch(runId, { metrics: [{ key: "auc", value: 0.75, step: 0, timestamp: Date.now() }] });
      await t.flushRun(runId);
      const other = await makeTracker();
      expect((await other.getRun(runId))?.metrics).toMatchObject({ auc: 0.75 });
      await t.endRun(runId, "FINISHED");
    });

    it("reads several runs at once, when it offers getRuns", async () => {
      const t = await makeTracker();
      if (!t.getRuns) return;
      const experimentId = await t.ensureExperiment(unique("many"));
      const other = await t.ensureExperiment(unique("many-other"));
      const done = await t.createRun({ experimentId, name: "done", tags: { k: "v" } });
      await t.endRun(done, "FINISHED", 1_700_000_000_500);
      const running = await t.createRun({ experimentId, name: "running" });
      const elsewhere = await t.createRun({ experimentId: other, name: "elsewhere" });
      const unknown = "0123456789abcdef0123456789abcdef";
      const found = await t.getRuns([done, running, elsewhere, unknown, done, "not an id!"], [experimentId]);
      expect(found.get(done)).toEqual(await t.getRun(done));
      expect(found.get(done)).toMatchObject({ name: "done", status: "FINISHED", endTime: 1_700_000_000_500, tags: { k: "v" } });
      expect(found.get(running)).toMatchObject({ name: "running", status: "RUNNING" });
      // What it cannot settle it leaves out for getRun, never calls gone.
      for (const id of [elsewhere, unknown, "not an id!"]) expect(found.has(id)).toBe(false);
      expect((await t.getRuns([elsewhere], [experimentId, other])).get(elsewhere)).toMatchObject({ name: "elsewhere" });
      expect((await t.getRuns([], [experimentId])).size).toBe(0);
    });

    it("records params, metrics with steps and tags", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("log"));
      const runId = await t.createRun({ experimentId, name: "r" });
      await t.logBatch(runId, {
        params: { lr: "0.1", rows: "500" },
        metrics: [
          { key: "loss", value: 0.9, step: 0, timestamp: 1000 },
          { key: "loss", value: 0.5, step: 1, timestamp: 1001 },
          { key: "loss", value: 0.2, step: 2, timestamp: 1002 },
        ],
        tags: { team: "a" },
      });
      await t.logBatch(runId, { tags: { team: "b" }, metrics: [{ key: "accuracy", value: 0.8, step: 0, timestamp: 1003 }] });
      await t.flush();
      const run = (await t.getRun(runId))!;
      expect(run.params).toMatchObject({ lr: "0.1", rows: "500" });
      expect(run.metrics).toMatchObject({ loss: 0.2, accuracy: 0.8 });
      expect(run.tags.team).toBe("b");
      const history = await t.getMetricHistory(runId, "loss");
      expect(history.map((p) => [p.step, p.value])).toEqual([
        [0, 0.9],
        [1, 0.5],
        [2, 0.2],
      ]);
      expect(history.map((p) => p.timestamp)).toEqual([1000, 1001, 1002]);
      expect(history.every((p) => p.key === "loss")).toBe(true);
      expect(await t.getMetricHistory(runId, "never-logged")).toEqual([]);
    });

    it("keeps a batch whole when a param or tag value holds half an emoji, which reads back as U+FFFD", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("surrogate"));
      // `slice` cuts 😀 in half: a lone high surrogate. MLflow stored such a param as '' and
      // dropped every tag and metric of its batch, answering 200.
      const cut = "model 😀 best".slice(0, 7);
      const runId = await t.createRun({ experimentId, name: "r", tags: { label: cut } });
      await t.logBatch(runId, {
        params: { title: cut, good: "ok" },
        tags: { note: `\uDE00${cut}`, "cairn.status": "succeeded" },
        metrics: [{ key: "m", value: 1, step: 0, timestamp: 1 }],
      });
      await t.flush();
      const run = (await t.getRun(runId))!;
      const rule = "a param or tag value holding a lone surrogate is stored with U+FFFD in its place (value.toWellFormed()), the rest of its batch kept";
      expect(run.params, `params: ${rule}`).toMatchObject({ title: "model \uFFFD", good: "ok" });
      expect(run.tags, `tags: ${rule}`).toMatchObject({ label: "model \uFFFD", note: "\uFFFDmodel \uFFFD", "cairn.status": "succeeded" });
      expect(run.metrics, `metrics: ${rule}`).toMatchObject({ m: 1 });
    });

    it("keeps the value at the highest step as a metric's latest, as MLflow does", async () => {
      const t = await makeTracker();
      const runId = await t.createRun({ experimentId: await t.ensureExperiment(unique("latest")), name: "r" });
      await t.logBatch(runId, { metrics: [{ key: "m", value: 5, step: 5, timestamp: 2000 }] });
      await t.logBatch(runId, { metrics: [{ key: "m", value: 3, step: 3, timestamp: 3000 }] });
      expect((await t.getRun(runId))!.metrics.m, "getRun(runId).metrics.m: a run's metric is its value at the highest step (MLflow's latest), not the last one logged: step 5's 5, though step 3 came after").toBe(5);
      expect((await t.getMetricHistory(runId, "m")).map((p) => p.step), "getMetricHistory keeps every point, in logging order").toEqual([5, 3]);
    });

    it("stores NaN and ±Infinity metric values", async () => {
      const t = await makeTracker();
      const runId = await t.createRun({ experimentId: await t.ensureExperiment(unique("nan")), name: "r" });
      await t.logBatch(runId, {
        metrics: [
          { key: "odd", value: Number.NaN, step: 0, timestamp: 1 },
          { key: "big", value: Infinity, step: 0, timestamp: 1 },
          { key: "small", value: -Infinity, step: 0, timestamp: 1 },
        ],
      });
      const run = (await t.getRun(runId))!;
      expect(run.metrics.odd).toBeNaN();
      expect(run.metrics.big).toBe(Infinity);
      expect(run.metrics.small).toBe(-Infinity);
      expect((await t.getMetricHistory(runId, "odd"))[0]!.value).toBeNaN();
      expect((await t.getMetricHistory(runId, "small"))[0]!.value).toBe(-Infinity);
    });

    it("keeps negative metric steps, as MLflow does, and rejects a step that is not an integer or a value that is not a number with a MetricError", async () => {
      const t = await makeTracker();
      const runId = await t.createRun({ experimentId: await t.ensureExperiment(unique("step")), name: "r" });
      // "Epoch -1": before training. MLflow's own client logs it.
      await t.logBatch(runId, { params: { p: "1" }, metrics: [{ key: "baseline", value: 0.1, step: -1, timestamp: 1 }, { key: "baseline", value: 0.2, step: 0, timestamp: 2 }] });
      await t.flush();
      expect((await t.getMetricHistory(runId, "baseline")).map((p) => [p.step, p.value])).toEqual([[-1, 0.1], [0, 0.2]]);
      expect((await t.getRun(runId))!.params).toEqual({ p: "1" });
      for (const bad of [{ step: 1.5 }, { value: true as unknown as number }, { value: "1" as unknown as number }]) {
        await expectMetricRejected(t, runId, { key: "m", value: 1, step: 0, timestamp: 1, ...bad });
      }
    });

    it("refuses a metric no tracker keeps where a task logs it, through its recorder, naming what is wrong", async () => {
      const t = await makeTracker();
      const recorder = new RunRecorder(t, await t.createRun({ experimentId: await t.ensureExperiment(unique("recorder")), name: "r" }));
      expect(() => recorder.metric("loss", 0.1, -2)).not.toThrow();
      expect(() => recorder.metric("loss", 0.1, 0.5)).toThrow(/^Metric "loss" has step `0.5` \(number\); expected an integer \(negative ones too, as in MLflow\)/);
      expect(() => recorder.metric("flag", true as unknown as number, 0)).toThrow(/^Metric "flag" has value `true` \(boolean\); expected a number/);
      expect(() => recorder.metric("", 1, 0)).toThrow(/^A metric's key must be a non-empty string, got "" \(string\)/);
    });

    it("overwrites a tag set at creation", async () => {
      const t = await makeTracker();
      const runId = await t.createRun({ experimentId: await t.ensureExperiment(unique("tag")), name: "r", tags: { "cairn.state": "start" } });
      await t.logBatch(runId, { tags: { "cairn.state": "done" } });
      expect((await t.getRun(runId))!.tags["cairn.state"]).toBe("done");
      await t.flush();
      // The tracker stays usable after flush.
      await t.logBatch(runId, { tags: { after: "flush" } });
      expect((await t.getRun(runId))!.tags.after).toBe("flush");
    });

    it("finds runs by dotted tag keys, status, newest first, at most maxResults", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("search"));
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push(await t.createRun({ experimentId, name: `r${i}`, startTime: 1_700_000_000_000 + i * 1000, tags: { "cairn.cache_key": i === 1 ? "k-1" : "k-other" } }));
      }
      await t.endRun(ids[0]!, "FINISHED");
      const byTag = await t.searchRuns({ experimentIds: [experimentId], tags: { "cairn.cache_key": "k-1" } });
      expect(byTag.map((r) => r.runId)).toEqual([ids[1]]);
      expect(await t.searchRuns({ experimentIds: [experimentId], tags: { "cairn.cache_key": "nope" } })).toEqual([]);
      const finished = await t.searchRuns({ experimentIds: [experimentId], status: "FINISHED" });
      expect(finished.map((r) => r.runId)).toEqual([ids[0]]);
      const newest = await t.searchRuns({ experimentIds: [experimentId], maxResults: 2 });
      expect(newest.map((r) => r.runId)).toEqual([ids[2], ids[1]]);
      const all = await t.searchRuns({ experimentIds: [experimentId] });
      expect(all.map((r) => r.runId)).toEqual([ids[2], ids[1], ids[0]]);
      expect(all[2]).toMatchObject({ name: "r0", status: "FINISHED", experimentId });
      expect(all[1]!.tags["cairn.cache_key"]).toBe("k-1");
    });

    it("finds the runs that have a tag, whatever its value (hasTag), with the other conditions", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("has-tag"));
      const tagged = ["k-1", "it's \"odd\"", undefined, "k-2"];
      const ids: string[] = [];
      for (const [i, key] of tagged.entries()) {
        ids.push(await t.createRun({ experimentId, name: `r${i}`, startTime: 1_700_000_000_000 + i * 1000, ...(key !== undefined ? { tags: { "cairn.failed_key": key } } : {}) }));
      }
      for (const id of ids.slice(0, 3)) await t.endRun(id, "FAILED");
      const failed = await t.searchRuns({ experimentIds: [experimentId], status: "FAILED", hasTag: "cairn.failed_key" });
      expect(failed.map((r) => r.name)).toEqual(["r1", "r0"]);
      expect((await t.searchRuns({ experimentIds: [experimentId], hasTag: "cairn.failed_key" })).map((r) => r.name)).toEqual(["r3", "r1", "r0"]);
      expect(await t.searchRuns({ experimentIds: [experimentId], hasTag: "cairn.none" })).toEqual([]);
    });

    it("leaves out the runs whose tag has a value (withoutTag), keeping those without the tag, newest first, at most maxResults", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("without"));
      const parent = await t.createRun({ experimentId, name: "flow" });
      const statuses = ["cached", "succeeded", undefined, "cached", "it's \"quoted\"", "cached-not"];
      const ids: string[] = [];
      for (const [i, status] of statuses.entries()) {
        ids.push(await t.createRun({ experimentId, name: `r${i}`, parentRunId: parent, startTime: 1_700_000_000_000 + i * 1000, ...(status !== undefined ? { tags: { "cairn.status": status } } : {}) }));
      }
      await t.createRun({ experimentId, name: "elsewhere", startTime: 1_700_000_009_000, tags: { "cairn.status": "succeeded" } });
      const withoutTag = { key: "cairn.status", value: "cached" };
      const others = await t.searchRuns({ experimentIds: [experimentId], parentRunId: parent, withoutTag });
      expect(others.map((r) => r.name)).toEqual(["r5", "r4", "r2", "r1"]);
      expect((await t.searchRuns({ experimentIds: [experimentId], parentRunId: parent, withoutTag, maxResults: 2 })).map((r) => r.name)).toEqual(["r5", "r4"]);
      // A value a filter cannot quote exactly is left out all the same.
      const odd = await t.searchRuns({ experimentIds: [experimentId], parentRunId: parent, withoutTag: { key: "cairn.status", value: statuses[4]! } });
      expect(odd.map((r) => r.name)).toEqual(["r5", "r3", "r2", "r1", "r0"]);
    });

    it("searches only the experiments asked for, and several at once", async () => {
      const t = await makeTracker();
      const [e1, e2, e3] = await Promise.all([t.ensureExperiment(unique("s1")), t.ensureExperiment(unique("s2")), t.ensureExperiment(unique("s3"))]);
      const r1 = await t.createRun({ experimentId: e1, name: "one", startTime: 1_700_000_000_000 });
      const r2 = await t.createRun({ experimentId: e2, name: "two", startTime: 1_700_000_001_000 });
      expect((await t.searchRuns({ experimentIds: [e1] })).map((r) => r.runId)).toEqual([r1]);
      expect((await t.searchRuns({ experimentIds: [e1, e2] })).map((r) => r.runId)).toEqual([r2, r1]);
      expect(await t.searchRuns({ experimentIds: [e3] })).toEqual([]);
    });

    it("ends runs with each final status and an end time", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("end"));
      for (const status of ["FINISHED", "FAILED", "KILLED"] as const) {
        const runId = await t.createRun({ experimentId, name: status });
        await t.endRun(runId, status, 1_800_000_000_000);
        const run = (await t.getRun(runId))!;
        expect(run.status).toBe(status);
        expect(run.endTime).toBe(1_800_000_000_000);
      }
    });

    it("stores, lists and returns artifacts: files, folders, nested paths", async () => {
      const t = await makeTracker();
      const experimentId = await t.ensureExperiment(unique("art"));
      const runId = await t.createRun({ experimentId, name: "a" });
      const dir = await tmp();
      await writeFile(join(dir, "model.bin"), Buffer.from([0, 1, 2, 255]));
      await mkdir(join(dir, "report", "img"), { recursive: true });
      await writeFile(join(dir, "report", "index.md"), "# hi");
      await writeFile(join(dir, "report", "img", "plot.svg"), "<svg/>");
      await t.logArtifact(runId, join(dir, "model.bin"));
      await t.logArtifact(runId, join(dir, "report"), "outputs");
      await t.logArtifact(runId, join(dir, "model.bin"), "outputs/copies");

      const root = await t.listArtifacts(runId);
      expect(root.map((a) => [a.path, a.isDir]).sort()).toEqual([
        ["model.bin", false],
        ["outputs", true],
      ]);
      expect(root.find((a) => a.path === "model.bin")!.size).toBe(4);
      const outputs = await t.listArtifacts(runId, "outputs");
      expect(outputs.map((a) => [a.path, a.isDir]).sort()).toEqual([
        ["outputs/copies", true],
        ["outputs/report", true],
      ]);
      const nested = await t.listArtifacts(runId, "outputs/report");
      expect(nested.map((a) => [a.path, a.isDir]).sort()).toEqual([
        ["outputs/report/img", true],
        ["outputs/report/index.md", false],
      ]);
      expect(nested.find((a) => a.path === "outputs/report/index.md")!.size).toBe(4);
      const deepest = await t.listArtifacts(runId, "outputs/report/img");
      expect(deepest).toEqual([{ path: "outputs/report/img/plot.svg", isDir: false, size: 6 }]);

      const dest = await tmp();
      const file = await t.downloadArtifact(runId, "outputs/copies/model.bin", dest);
      expect([...(await readFile(file))]).toEqual([0, 1, 2, 255]);
      const folder = await t.downloadArtifact(runId, "outputs/report", await tmp());
      expect(await readFile(join(folder, "img", "plot.svg"), "utf8")).toBe("<svg/>");
      expect(await readFile(join(folder, "index.md"), "utf8")).toBe("# hi");
      const top = await t.downloadArtifact(runId, "model.bin", await tmp());
      expect([...(await readFile(top))]).toEqual([0, 1, 2, 255]);
    });

    it("round-trips artifact bytes of every value, and rejects a missing artifact with a TrackingError", async () => {
      const t = await makeTracker();
      const runId = await t.createRun({ experimentId: await t.ensureExperiment(unique("bytes")), name: "b" });
      const dir = await tmp();
      const bytes = Buffer.alloc(300_000);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 256;
      await writeFile(join(dir, "data.bin"), bytes);
      await t.logArtifact(runId, join(dir, "data.bin"), "deep/er/path");
      const listed = await t.listArtifacts(runId, "deep/er/path");
      expect(listed).toEqual([{ path: "deep/er/path/data.bin", isDir: false, size: bytes.length }]);
      const back = await t.downloadArtifact(runId, "deep/er/path/data.bin", await tmp());
      expect((await readFile(back)).equals(bytes)).toBe(true);
      await expect(t.downloadArtifact(runId, "no/such/file.txt", await tmp())).rejects.toBeInstanceOf(TrackingError);
    });
  });
}
