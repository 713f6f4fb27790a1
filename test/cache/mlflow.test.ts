/**
 * The cache with a real mlflow server (one for this file): a second machine with an
 * empty root gets hits through the experiment's index (cairn-index/<key>.json in its
 * artifact location) and downloads the artifacts a running task reads; entries are
 * checked against the server.
 * "Machines" are temp roots; the first machine's root is deleted before the second
 * runs, so nothing can be read from its disk.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CacheBackendError, CacheStore, hashValue } from "@cairn/cache";
import { startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { MetricError, TaskCache, cairnBuild, explainTask, openFlowCache, planFlow } from "@cairn/core";
import { type Artifact, flow, map, task } from "@cairn/dsl";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, entryFiles, runCollect, sleep, start, statuses, taskEvents, tmp } from "./helpers.ts";

let server: MlflowServer;
let startMs = 0;
beforeAll(async () => {
  const t0 = performance.now();
  server = await startMlflowServer();
  startMs = Math.round(performance.now() - t0);
});
afterAll(async () => {
  console.info(`[timing] mlflow server start: ${startMs} ms`);
  await server?.stop();
});

const env = () => ({ MLFLOW_TRACKING_URI: server.uri });

async function mlflowPost(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${server.uri}/api/2.0/mlflow/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
}

describe("a second machine on the same mlflow server", () => {
  it("gets hits through the server with an empty root, and downloads the artifact a running task reads", async () => {
    const calls = { produce: 0, measure: 0 };
    const produce = task("produce")
      .input<{ n: number }>()
      .run(async ({ n }, ctx) => (calls.produce++, { data: await ctx.artifacts.write("nested/data.txt", "abc".repeat(n)) }));
    const measureV1 = task("measure")
      .input<{ data: Artifact }>()
      .run(async ({ data }) => (calls.measure++, { size: (await readFile(data.path, "utf8")).length }));
    const measureV2 = task("measure")
      .input<{ data: Artifact }>()
      .run(async ({ data }) => (calls.measure++, { size: (await readFile(data.path, "utf8")).length * 10, text: (await readFile(data.path, "utf8")).slice(0, 6), from: data.path }));
    const make = (measure: typeof measureV1) => flow("two-machines").build(() => ({ m: measure({ data: produce({ n: 5 }).data }).$out }));

    // Machine A computes, then goes away.
    const rootA = await tmp("cairn-machine-a-");
    const a = await runCollect(make(measureV1), { root: rootA, env: env() });
    expect(a.result.status).toBe("succeeded");
    expect(a.run.tracker.kind).toBe("mlflow");
    const sourceProduce = a.result.tasks.produce!.runId!;
    const sourceMeasure = a.result.tasks.measure!.runId!;
    const tagged = await a.run.tracker.getRun(sourceProduce);
    expect(tagged!.tags["cairn.cache_key"]).toMatch(/^[0-9a-f]{64}$/);
    await rm(rootA, { recursive: true, force: true });

    // Machine B: an empty root, the same code: everything comes from the server.
    const rootB = await tmp("cairn-machine-b-");
    const b = await runCollect(make(measureV1), { root: rootB, env: env() });
    expect(statuses(b.result)).toEqual({ produce: "cached", measure: "cached" });
    expect(calls).toEqual({ produce: 1, measure: 1 });
    expect(b.result.outputs).toEqual({ m: { size: 15 } });
    expect(b.warnings).toEqual([]);
    for (const [id, source] of [["produce", sourceProduce], ["measure", sourceMeasure]] as const) {
      expect(b.result.tasks[id]!.cachedFrom).toBe(source);
      const hit = await b.run.tracker.getRun(b.result.tasks[id]!.runId!);
      expect(hit).toMatchObject({ status: "FINISHED", parentRunId: b.result.runId });
      expect(hit!.tags["cairn.cached_from"]).toBe(source);
    }
    // The entries found on the server are now in B's embedded store: later lookups stay local.
    expect(await entryFiles(rootB)).toHaveLength(2);

    // Machine C: measure's code changed, so it runs, and reads produce's artifact from the server.
    const rootC = await tmp("cairn-machine-c-");
    const c = await runCollect(make(measureV2), { root: rootC, env: env() });
    expect(statuses(c.result)).toEqual({ produce: "cached", measure: "succeeded" });
    expect(calls).toEqual({ produce: 1, measure: 2 });
    const m = (c.result.outputs as { m: { size: number; text: string; from: string } }).m;
    expect(m.size).toBe(150);
    expect(m.text).toBe("abcabc");
    expect(m.from.startsWith(rootC)).toBe(true); // downloaded here, not read from machine A's (deleted) disk
    expect(await readFile(m.from, "utf8")).toBe("abc".repeat(5));
    expect(c.result.tasks.produce!.cachedFrom).toBe(sourceProduce);
    const ran = await c.run.tracker.getRun(c.result.tasks.measure!.runId!);
    expect(ran).toMatchObject({ status: "FINISHED" });
    expect(ran!.tags["cairn.cache_key"]).toMatch(/^[0-9a-f]{64}$/);
    expect(ran!.tags["cairn.cached_from"]).toBeUndefined();
  });

  it("finds the entry by one read of the experiment's index, not by searching run tags", async () => {
    let calls = 0;
    const t = task("indexed").input<{ n: number }>().run(({ n }) => (calls++, { twice: n * 2 }));
    const f = flow("indexed").build(() => ({ twice: t({ n: 21 }).twice }));
    const a = await runCollect(f, { root: await tmp(), env: env() });
    const source = a.result.tasks.indexed!.runId!;
    const run = (await a.run.tracker.getRun(source))!;
    const key = run.tags["cairn.cache_key"]!;
    // The index document sits beside the experiment's runs, under its artifact location.
    const doc = await fetch(`${server.uri}/api/2.0/mlflow-artifacts/artifacts/${run.experimentId}/cairn-index/${key}.json`);
    expect(doc.status).toBe(200);
    expect(await doc.json()).toMatchObject({ key, sourceRunId: source, taskName: "indexed", outputs: { values: { twice: 42 } } });
    // Without the tag, a tag search could not find the run; the index still does.
    await mlflowPost("runs/delete-tag", { run_id: source, key: "cairn.cache_key" });
    const b = await runCollect(f, { root: await tmp(), env: env() });
    expect(statuses(b.result)).toEqual({ indexed: "cached" });
    expect(b.result.tasks.indexed!.cachedFrom).toBe(source);
    expect(b.result.outputs).toEqual({ twice: 42 });
    expect(calls).toBe(1);
  });

  it("a failure recorded on the server is no hit for another machine", async () => {
    let calls = 0;
    let fail = true;
    const t = task("sometimes").run(() => {
      calls++;
      if (fail) throw new Error("machine A fails");
      return { ok: true };
    });
    const f = flow("server-failure").build(() => ({ ok: t().ok }));
    expect((await runCollect(f, { root: await tmp(), env: env() })).result.status).toBe("failed");
    fail = false;
    const other = await runCollect(f, { root: await tmp(), env: env() });
    expect(statuses(other.result)).toEqual({ sometimes: "succeeded" });
    expect(calls).toBe(2);
  });
});

describe("plan and explain against the server", () => {
  it("create no experiment: a name with no experiment is planned from the store alone, and stays absent", async () => {
    const t = task("t").run(() => ({ v: 1 }));
    const f = flow("plan-creates-nothing").build(() => ({ v: t({}).v }));
    const experiment = `never-ran-${Date.now()}`;
    const root = await tmp();
    const { tasks, params } = await openFlowCache(f.definition, { root, env: env(), experiment });
    const plan = await planFlow(f.definition, { params, cache: tasks });
    await explainTask(f.definition, "t", { params, cache: tasks }).finally(() => tasks.store.close());
    expect(plan).toMatchObject([{ task: "t", action: "run", reason: `no cache entry for these inputs and code (experiment "${experiment}" does not exist yet)` }]);
    // Before, the plan created the experiment on the server.
    const found = await fetch(`${server.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=${experiment}`);
    expect(found.status).toBe(404);
    expect(((await found.json()) as { error_code: string }).error_code).toBe("RESOURCE_DOES_NOT_EXIST");
  });
});

describe("plan of keys a run failed for, against the server", () => {
  it("says so for each failed item of a map from one search of the experiment's failed runs, not one request per item", async () => {
    const flaky = task("server-flaky")
      .input<{ x: number }>()
      .run(({ x }) => {
        if (x % 10 === 3) throw new Error(`cannot square ${x}`);
        return { y: x * x };
      });
    const f = flow(`plan-failed-items-${Date.now()}`)
      .params<{ items: number[] }>()
      .build(({ params }) => ({ ys: map(flaky, { over: params.items, as: "x" }).outputs }));
    const items = Array.from({ length: 40 }, (_, i) => i);
    const root = await tmp();
    const first = await runCollect(f, { root, env: env(), params: { items }, failurePolicy: "continue" });
    const failed = Object.entries(first.result.tasks).filter(([id, t]) => id.includes("[") && t.status === "failed");
    expect(failed.map(([id]) => id).sort()).toEqual(["server-flaky[13]", "server-flaky[23]", "server-flaky[33]", "server-flaky[3]"]);
    const { tracker, seen } = countingTracker();
    const more = { items: [...items, 40, 41] };
    const { tasks, params } = await openFlowCache(f.definition, { root, env: env(), params: more, tracker });
    const opened = seen.length;
    const plan = await planFlow(f.definition, { params, cache: tasks }).finally(() => tasks.store.close());
    const asked = seen.slice(opened);
    console.info(`[requests] plan of 42 items, 4 failed: ${asked.length} (${count(asked, "POST runs/search")} searches)`);
    for (const [id, t] of failed) {
      const at = new Date(plan.find((p) => p.task === id)!.failed!.startedAt).toISOString();
      expect(plan.find((p) => p.task === id)).toMatchObject({ action: "run", reason: `no cache entry for these inputs and code: a run with this key failed (run ${t.runId}, ${at}); no entry is stored for it`, failed: { runId: t.runId } });
    }
    expect(plan.find((p) => p.task === "server-flaky[40]")!.reason).toBe("no cache entry for these inputs and code: a new item of server-flaky (x = 40): no entry for it yet");
    expect(plan.filter((p) => p.action === "hit")).toHaveLength(36);
    // The failed runs are one search, for the 6 misses together.
    expect(count(asked, "POST runs/search")).toBe(1);
  });
});

describe("plan of keys whose run was cancelled, against the server", () => {
  it("says so, with what stopped them, from the same one search as the failed runs: items cancelled by fail-fast", async () => {
    const slow = task("server-slow-sq")
      .input<{ x: number }>()
      .run(async ({ x }, ctx) => {
        if (x === 3) {
          await sleep(300);
          throw new Error(`cannot square ${x}`);
        }
        await new Promise((_r, j) => ctx.signal.addEventListener("abort", () => j(ctx.signal.reason)));
        return { y: x * x };
      });
    const f = flow(`plan-cancelled-items-${Date.now()}`)
      .params<{ items: number[] }>()
      .build(({ params }) => ({ ys: map(slow, { over: params.items, as: "x" }).outputs }));
    const params = { items: [3, 4, 5] };
    const root = await tmp();
    const first = await runCollect(f, { root, env: env(), params, concurrency: 3 });
    expect(statuses(first.result)).toMatchObject({ "server-slow-sq[0]": "failed", "server-slow-sq[1]": "cancelled", "server-slow-sq[2]": "cancelled" });
    const { tracker, seen } = countingTracker();
    const { tasks, params: parsed } = await openFlowCache(f.definition, { root, env: env(), params, tracker });
    const opened = seen.length;
    const plan = await planFlow(f.definition, { params: parsed, cache: tasks }).finally(() => tasks.store.close());
    const why = 'stopped because task "server-slow-sq[0]" failed and the failure policy is fail-fast';
    for (const id of ["server-slow-sq[1]", "server-slow-sq[2]"]) {
      const runId = first.result.tasks[id]!.runId!;
      const at = new Date(plan.find((p) => p.task === id)!.cancelled!.startedAt).toISOString();
      // Before: "no cache entry for these inputs and code: a new item of server-slow-sq (x = 4): no entry for it yet".
      expect(plan.find((p) => p.task === id)).toMatchObject({ action: "run", reason: `no cache entry for these inputs and code: a run with this key was cancelled (run ${runId}, ${at}): ${why}; no entry is stored for it`, cancelled: { runId, why } });
    }
    expect(plan.find((p) => p.task === "server-slow-sq[0]")).toMatchObject({ failed: { runId: first.result.tasks["server-slow-sq[0]"]!.runId, error: "Error: cannot square 3" } });
    // The failed and the cancelled runs are one search, as the failed ones alone were.
    expect(count(seen.slice(opened), "POST runs/search")).toBe(1);
  });

  it("says so of items that waited for a slot when fail-fast stopped the flow: cancelled before they started", async () => {
    const slow = task("server-waiting-sq")
      .input<{ x: number }>()
      .run(async ({ x }) => {
        await sleep(300);
        throw new Error(`cannot square ${x}`);
      });
    const f = flow(`plan-waiting-items-${Date.now()}`)
      .params<{ items: number[] }>()
      .build(({ params }) => ({ ys: map(slow, { over: params.items, as: "x" }).outputs }));
    const params = { items: [3, 4, 5] };
    const root = await tmp();
    // One slot: x = 4 and x = 5 are looked up (their keys known), then wait while x = 3 fails.
    const first = await runCollect(f, { root, env: env(), params, concurrency: 1 });
    expect(statuses(first.result)).toMatchObject({ "server-waiting-sq[0]": "failed", "server-waiting-sq[1]": "skipped", "server-waiting-sq[2]": "skipped" });
    const { tasks, params: parsed } = await openFlowCache(f.definition, { root, env: env(), params });
    const plan = await planFlow(f.definition, { params: parsed, cache: tasks }).finally(() => tasks.store.close());
    const why = 'stopped because task "server-waiting-sq[0]" failed and the failure policy is fail-fast';
    for (const id of ["server-waiting-sq[1]", "server-waiting-sq[2]"]) {
      const runId = first.result.tasks[id]!.runId!;
      const at = new Date(plan.find((p) => p.task === id)!.cancelled!.startedAt).toISOString();
      // Before: "no cache entry for these inputs and code: a new item of server-waiting-sq (x = 4): no entry for it yet".
      expect(plan.find((p) => p.task === id)).toMatchObject({ action: "run", reason: `no cache entry for these inputs and code: a run with this key was cancelled before it started (run ${runId}, ${at}): ${why}; no entry is stored for it`, cancelled: { runId, why, waiting: true } });
    }
  });
});

describe("plan without a readable index", () => {
  it("finds another machine's entry by its run's tag and reads its manifest without writing into the root", async () => {
    const t = task("t").input<{ n: number }>().run(({ n }) => ({ v: n * 2 }));
    const f = flow(`plan-no-index-${Date.now()}`)
      .params<{ n: number }>()
      .build(({ params }) => ({ v: t({ n: params.n }).v }));
    await runCollect(f, { root: await tmp("cairn-machine-a-"), env: env(), params: { n: 1 } });
    const rootB = await tmp("cairn-machine-b-");
    const { tasks, params } = await openFlowCache(f.definition, { root: rootB, env: env(), params: { n: 1 } });
    // The index cannot be read (a fault the real server shows only when its artifact store fails):
    // the lookup falls back to one search by tag, whose manifest comes from the run's artifacts.
    const reads = vi.spyOn(MlflowTracker.prototype, "readIndexEntry").mockRejectedValue(new Error("index unreadable"));
    try {
      const plan = await planFlow(f.definition, { params, cache: tasks }).finally(() => tasks.store.close());
      expect(plan).toMatchObject([{ task: "t", action: "hit" }]);
      expect(reads).toHaveBeenCalled();
      // Before, the manifest was downloaded into <root>/downloads/<run id>: a write by a command that only reads.
      expect(existsSync(join(rootB, "downloads"))).toBe(false);
    } finally {
      reads.mockRestore();
    }
  });
});

describe("explain on a second machine", () => {
  it("compares a miss with the entries in the experiment's index, as plan finds hits there, and names where it looked", async () => {
    const fit = task("fit").input<{ lr: number }>().run(({ lr }) => ({ score: lr * 2 }));
    const f = flow(`explain-index-${Date.now()}`)
      .params<{ lr: number }>()
      .build(({ params }) => ({ score: fit({ lr: params.lr }).score }));
    await runCollect(f, { root: await tmp("cairn-machine-a-"), env: env(), params: { lr: 0.1 } });
    // Machine B: an empty root; the entry is in the server's index only.
    const rootB = await tmp("cairn-machine-b-");
    const open = (lr: number) => openFlowCache(f.definition, { root: rootB, env: env(), params: { lr } });
    const warm = await open(0.1);
    expect((await planFlow(f.definition, { params: warm.params, cache: warm.tasks }).finally(() => warm.tasks.store.close()))[0]).toMatchObject({ action: "hit" });
    const cold = await open(0.5);
    const why = await explainTask(f.definition, "fit", { params: cold.params, cache: cold.tasks }).finally(() => cold.tasks.store.close());
    // Before: no nearest entry ("it has never succeeded with caching on here").
    expect(why.nearest?.changes.map((c) => c.message)).toEqual(["input `lr` changed from 0.1 to 0.5"]);
    expect(why.planned.reason).toBe("no cache entry for these inputs and code: input `lr` changed from 0.1 to 0.5");
    expect(why.searched).toMatch(new RegExp(`^the cache store at .*cache and the index of experiment \\d+ in ${server.uri}$`));
  });

  it("with more documents in the index than it reads first, still compares with the task's newest entries: those of its newest runs are read too", async () => {
    const fit = task("fit").input<{ lr: number }>().run(({ lr }) => ({ score: lr * 2 }));
    const name = `explain-many-${Date.now()}`;
    const f = flow(name)
      .params<{ lr: number }>()
      .build(({ params }) => ({ score: fit({ lr: params.lr }).score }));
    await runCollect(f, { root: await tmp("cairn-machine-a-"), env: env(), params: { lr: 0.1 } });
    // 600 documents (other tasks' entries, say) whose names come before the entry's in the listing.
    const tracker = MlflowTracker.fromEnv(env());
    const experimentId = (await tracker.listExperiments!()).find((e) => e.name === name)!.experimentId;
    const others = Array.from({ length: 600 }, (_, i) => `00000000${String(i).padStart(56, "0")}.json`);
    for (let i = 0; i < others.length; i += 25) await Promise.all(others.slice(i, i + 25).map((n) => tracker.writeIndexEntry!(experimentId, n, "{}")));
    const cold = await openFlowCache(f.definition, { root: await tmp("cairn-machine-b-"), env: env(), params: { lr: 0.5 } });
    const why = await explainTask(f.definition, "fit", { params: cold.params, cache: cold.tasks }).finally(() => cold.tasks.store.close());
    // Before: no nearest entry, the entry's document being the 601st by name, never read.
    expect(why.nearest?.changes.map((c) => c.message)).toEqual(["input `lr` changed from 0.1 to 0.5"]);
    expect(why.searched).toMatch(/ \(501 of its 601 documents read, 1 of them from the task's newest runs\)$/);
  }, 60_000);
});

describe("a run on a second machine", () => {
  it("records why a task missed as explain says it: the nearest entry in the experiment's index, with an empty store (before: no earlier entry in the store)", async () => {
    const fit = task("fit").input<{ lr: number }>().run(({ lr }) => ({ score: lr * 2 }));
    const f = flow(`run-index-reason-${Date.now()}`)
      .params<{ lr: number }>()
      .build(({ params }) => ({ score: fit({ lr: params.lr }).score }));
    const first = await runCollect(f, { root: await tmp("cairn-machine-a-"), env: env(), params: { lr: 0.1 } });
    // Machine B: an empty root, as a CI job's; the entry is in the server's index only.
    const rootB = await tmp("cairn-machine-b-");
    const cold = await openFlowCache(f.definition, { root: rootB, env: env(), params: { lr: 0.5 } });
    const why = await explainTask(f.definition, "fit", { params: cold.params, cache: cold.tasks }).finally(() => cold.tasks.store.close());
    const after = await runCollect(f, { root: rootB, env: env(), params: { lr: 0.5 } });
    expect(statuses(after.result)).toEqual({ fit: "succeeded" });
    const run = await after.run.tracker.getRun(after.result.tasks.fit!.runId!);
    const reason = JSON.parse(run!.tags["cairn.miss_reason"]!);
    expect(reason).toEqual({ kind: "changed", nearest: { runId: first.result.tasks.fit!.runId, createdAt: why.nearest!.createdAt, changes: ["input `lr` changed from 0.1 to 0.5"] } });
    expect(reason.nearest.changes).toEqual(why.nearest!.changes.map((c) => c.message));
  });

  it("with no earlier entry in either, names both places it looked, in explain's words", async () => {
    const fresh = task("fresh").input<{ n: number }>().run(({ n }) => ({ x: n + 1 }));
    const f = flow(`run-index-new-${Date.now()}`).build(() => ({ x: fresh({ n: 1 }).x }));
    const root = await tmp("cairn-machine-b-");
    const done = await runCollect(f, { root, env: env() });
    const run = await done.run.tracker.getRun(done.result.tasks.fresh!.runId!);
    expect(JSON.parse(run!.tags["cairn.miss_reason"]!)).toEqual({
      kind: "new",
      store: expect.any(String),
      searched: expect.stringMatching(new RegExp(`^the cache store at .*cache and the index of experiment \\d+ in ${server.uri}$`)),
    });
  });
});

describe("plan against a shared index", () => {
  it("reads each index document once for all its tasks' reasons, not once per task", async () => {
    const steps = ["a1", "a2", "a3", "a4"].map((name) => task(name).input<{ n: number }>().run(({ n }) => ({ y: n + 1 })));
    const f = flow(`plan-index-once-${Date.now()}`)
      .params<{ n: number }>()
      .build(({ params }) => Object.fromEntries(steps.map((s, i) => [`y${i}`, s({ n: params.n }).y])));
    for (const n of [1, 2]) await runCollect(f, { root: await tmp("cairn-machine-a-"), env: env(), params: { n } });
    // Machine B (an empty root): every task misses, each compared with the index's entries.
    const { tasks, params } = await openFlowCache(f.definition, { root: await tmp("cairn-machine-b-"), env: env(), params: { n: 3 } });
    const reads = vi.spyOn(MlflowTracker.prototype, "readIndexEntry");
    try {
      const plan = await planFlow(f.definition, { params, cache: tasks }).finally(() => tasks.store.close());
      expect(plan.map((r) => r.reason)).toEqual(steps.map(() => "no cache entry for these inputs and code: input `n` changed from 2 to 3"));
      // 8 documents (4 tasks, 2 runs), each read once; before, each task read all 8 (32).
      expect(reads).toHaveBeenCalledTimes(8);
    } finally {
      reads.mockRestore();
    }
  });
});

describe("entries checked against the server", () => {
  it("an entry past its ttl is recomputed with mlflow too", async () => {
    let calls = 0;
    const t = task("mlflow-ttl").cache({ ttl: 300 }).run(() => (calls++, { ok: true }));
    const f = flow("mlflow-ttl").build(() => ({ ok: t().ok }));
    const root = await tmp();
    await runCollect(f, { root, env: env() });
    await sleep(500);
    const after = await runCollect(f, { root, env: env() });
    expect(calls).toBe(2);
    expect(statuses(after.result)).toEqual({ "mlflow-ttl": "succeeded" });
  });

  it("an entry past its ttl in the experiment's index is said to have expired, on another machine too (before: a plain miss)", async () => {
    const t = task("index-ttl").cache({ ttl: 300 }).run(() => ({ ok: true }));
    const f = flow(`index-ttl-${Date.now()}`).build(() => ({ ok: t().ok }));
    const first = await runCollect(f, { root: await tmp("cairn-machine-a-"), env: env() });
    await sleep(500);
    // Machine B's store is empty: only the index holds the entry, past its ttl.
    const rootB = await tmp("cairn-machine-b-");
    const { tasks, params } = await openFlowCache(f.definition, { root: rootB, env: env() });
    const plan = await planFlow(f.definition, { params, cache: tasks }).finally(() => tasks.store.close());
    const sourceRun = first.result.tasks["index-ttl"]!.runId!;
    expect(plan[0]!.reason).toMatch(new RegExp(`^its entry from run ${sourceRun} expired \\d+ ms ago \\(ttl 300 ms, at \\S+Z\\)$`));
    const after = await runCollect(f, { root: rootB, env: env() });
    expect(statuses(after.result)).toEqual({ "index-ttl": "succeeded" });
    const run = await after.run.tracker.getRun(after.result.tasks["index-ttl"]!.runId!);
    expect(JSON.parse(run!.tags["cairn.miss_reason"]!)).toEqual({ kind: "expired", at: expect.any(Number), seenAt: expect.any(Number), runId: sourceRun, createdAt: expect.any(Number) });
  });

  it("an entry whose source run was deleted in mlflow is recomputed, with a warning", async () => {
    let calls = 0;
    const t = task("deleted-source").run(() => (calls++, { ok: true }));
    const f = flow("mlflow-deleted-source").build(() => ({ ok: t().ok }));
    const root = await tmp();
    const first = await runCollect(f, { root, env: env() });
    await mlflowPost("runs/delete", { run_id: first.result.tasks["deleted-source"]!.runId });
    const again = await runCollect(f, { root, env: env() });
    expect(calls).toBe(2);
    expect(statuses(again.result)).toEqual({ "deleted-source": "succeeded" });
    expect(again.warnings.join("\n")).toMatch(/deleted-source|source run/);
  });

  it("an entry whose source run was marked FAILED in mlflow is recomputed, with a warning", async () => {
    let calls = 0;
    const t = task("failed-source").run(() => (calls++, { ok: true }));
    const f = flow("mlflow-failed-source").build(() => ({ ok: t().ok }));
    const root = await tmp();
    const first = await runCollect(f, { root, env: env() });
    const source = first.result.tasks["failed-source"]!.runId!;
    await mlflowPost("runs/update", { run_id: source, status: "FAILED" });
    const again = await runCollect(f, { root, env: env() });
    expect(calls).toBe(2);
    expect(statuses(again.result)).toEqual({ "failed-source": "succeeded" });
    expect(again.warnings.some((w) => w.includes(`source run ${source} is FAILED, not FINISHED`))).toBe(true);
  });

  it("an entry a run with tracking off wrote over the server's is replaced by the experiment's index entry: a hit, planned and run", async () => {
    let calls = 0;
    const t = task("untracked-over").run(() => (calls++, { ok: true }));
    const f = flow("mlflow-untracked-over").build(() => ({ ok: t().ok }));
    const root = await tmp();
    const first = await runCollect(f, { root, env: env() });
    const source = first.result.tasks["untracked-over"]!.runId!;
    // The app's run without a tracker, forced: its entry, with no source run a server knows, replaces the store's.
    await runCollect(f, { root, env: env(), tracker: false, cache: { refresh: true } });
    expect(calls).toBe(2);
    const { tasks } = await openFlowCache(f.definition, { root, env: env() });
    const plan = await planFlow(f.definition, { params: {}, cache: tasks }).finally(() => tasks.store.close());
    expect(plan).toMatchObject([{ task: "untracked-over", action: "hit", cachedFrom: source }]);
    // Before, the store's entry was "unusable (...never recorded...), evicted and the task runs".
    const again = await runCollect(f, { root, env: env() });
    expect(calls).toBe(2);
    expect(statuses(again.result)).toEqual({ "untracked-over": "cached" });
    expect(again.result.tasks["untracked-over"]!.cachedFrom).toBe(source);
    expect(again.warnings).toEqual([]);
  });

  it("a damaged document in the experiment's index is warned of once per document, naming it, what is wrong and how to remove it; the task runs and its result replaces it (before: a silent miss)", async () => {
    const calls = { json: 0, shape: 0 };
    const cut = task("index-cut").input<{ n: number }>().run(({ n }) => (calls.json++, { n }));
    const shape = task("index-shape").run(() => (calls.shape++, { ok: true }));
    // Two nodes of one key read its document twice: still one warning.
    const f = flow(`damaged-index-${Date.now()}`).build(() => ({ a: cut({ n: 1 }).n, again: cut({ n: 1 }).n, b: shape().ok }));
    const first = await runCollect(f, { root: await tmp("cairn-machine-a-"), env: env() });
    expect(first.result.status).toBe("succeeded");
    const keyOf = async (id: string) => (await first.run.tracker.getRun(first.result.tasks[id]!.runId!))!.tags["cairn.cache_key"]!;
    const [cutKey, shapeKey] = [await keyOf("index-cut"), await keyOf("index-shape")];
    const experimentId = (await first.run.tracker.getRun(first.result.runId))!.experimentId;
    const docUrl = (key: string) => `${server.uri}/api/2.0/mlflow-artifacts/artifacts/${experimentId}/cairn-index/${key}.json`;
    // Damaged through the server's REST API, as a cut-short upload or a hand edit would leave them.
    for (const [key, body] of [[cutKey, '{"key": "'], [shapeKey, JSON.stringify({ key: shapeKey, taskName: "index-shape" })]] as const) {
      const put = await fetch(docUrl(key), { method: "PUT", body });
      expect(put.status).toBe(200);
    }
    const before = { ...calls };

    // Machine B: an empty root, so only the index could give a hit.
    const b = await runCollect(f, { root: await tmp("cairn-machine-b-"), env: env() });
    expect(b.result.status).toBe("succeeded");
    expect(calls.json).toBe(before.json + 1);
    expect(calls.shape).toBe(before.shape + 1);
    const about = (key: string) => b.warnings.filter((w) => w.includes(`${key}.json`));
    expect(about(cutKey)).toHaveLength(1);
    expect(about(shapeKey)).toHaveLength(1);
    const where = (key: string) => `the index document ${key}.json of experiment ${experimentId} on the MLflow server at ${server.uri} is damaged`;
    expect(about(cutKey)[0]).toContain(`${where(cutKey)}: it is not valid JSON (9 bytes that do not parse`);
    expect(about(shapeKey)[0]).toContain(`${where(shapeKey)}: its content is not a Cairn cache entry of this key`);
    for (const w of [...about(cutKey), ...about(shapeKey)]) expect(w).toContain("`cairn cache clear --task <task>` removes it with the task's other entries; the task runs, and its result replaces the entry");
    // The run's miss reason says so too.
    const run = await b.run.tracker.getRun(b.result.tasks["index-shape"]!.runId!);
    expect(JSON.parse(run!.tags["cairn.miss_reason"]!)).toMatchObject({ kind: "unusable", evicted: false, reason: expect.stringContaining(where(shapeKey)) });

    // The runs' results replaced both documents: a third machine hits them, without a warning.
    for (const key of [cutKey, shapeKey]) expect(await (await fetch(docUrl(key))).json()).toMatchObject({ key });
    const c = await runCollect(f, { root: await tmp("cairn-machine-c-"), env: env() });
    expect(statuses(c.result)).toEqual({ "index-cut": "cached", "index-cut-2": "cached", "index-shape": "cached" });
    expect(c.warnings).toEqual([]);
  });
});

describe("an artifact whose copy on the server changed since it was cached", () => {
  /** produce writes data.txt; consume reads it. `flowA` runs produce alone, `flowB` both. */
  function artifactFlows(name: string, n: number) {
    const calls = { produce: 0, consume: 0 };
    const produce = task(`${name}-produce`)
      .input<{ n: number }>()
      .run(async ({ n }, ctx) => (calls.produce++, { data: await ctx.artifacts.write("data.txt", `value-${n}\n`) }));
    const consume = task(`${name}-consume`)
      .input<{ data: Artifact }>()
      .run(async ({ data }) => (calls.consume++, { text: (await readFile(data.path, "utf8")).trim() }));
    const flowA = flow(name).build(() => ({ data: produce({ n }).data }));
    const flowB = flow(name).build(() => ({ text: consume({ data: produce({ n }).data }).text }));
    return { calls, flowA, flowB };
  }

  /** Machine A computes produce, then goes away with its disk; the server's copy of data.txt is then replaced by `bytes`. */
  async function producedThenTampered(f: ReturnType<typeof artifactFlows>, bytes: string) {
    const rootA = await tmp("cairn-tamper-a-");
    const a = await runCollect(f.flowA, { root: rootA, env: env() });
    expect(a.result.status).toBe("succeeded");
    await rm(rootA, { recursive: true, force: true });
    const tracker = MlflowTracker.fromEnv(env());
    const source = (await tracker.getRun(Object.values(a.result.tasks)[0]!.runId!))!;
    const key = source.tags["cairn.cache_key"]!;
    await writeFile(join(server.dir, "artifacts", source.experimentId, source.runId, "artifacts", "data.txt"), bytes);
    return { tracker, source, key };
  }

  it("is hashed when downloaded: a task never reads bytes of another digest, the hit's entry is evicted there and from the index, and the next run computes it", async () => {
    const f = artifactFlows("tamper-same-size", 61);
    // The same size as "value-61\n": the listing's size cannot tell.
    const { tracker, source, key } = await producedThenTampered(f, "TAMPERED\n");

    // Machine B: an empty root; produce is a hit through the index; consume runs and reads its artifact.
    const rootB = await tmp("cairn-tamper-b-");
    const b = await runCollect(f.flowB, { root: rootB, env: env() });
    expect(statuses(b.result)).toEqual({ "tamper-same-size-produce": "cached", "tamper-same-size-consume": "failed" });
    expect(f.calls).toEqual({ produce: 1, consume: 0 }); // consume never ran on the other bytes
    const error = b.result.tasks["tamper-same-size-consume"]!.error!;
    expect(error.name).toBe("ArtifactMismatchError");
    expect(error.message).toContain(`artifact data.txt of run ${source.runId}, downloaded from ${server.uri}, is not the artifact its record names`);
    expect(error.message).toMatch(/The cache entry that holds it \(task "tamper-same-size-produce", key [0-9a-f]{12}\) was evicted: run the flow again/);
    expect(existsSync(join(rootB, "downloads", source.runId, "data.txt"))).toBe(false);
    // Gone from B's store and from the experiment's index, where every machine would find it again.
    expect(await tracker.readIndexEntry!(source.experimentId, `${key}.json`)).toBeUndefined();
    expect(await entryFiles(rootB)).toEqual([]);

    // The next run computes produce, and consume reads what produce wrote.
    const b2 = await runCollect(f.flowB, { root: rootB, env: env() });
    expect(statuses(b2.result)).toEqual({ "tamper-same-size-produce": "succeeded", "tamper-same-size-consume": "succeeded" });
    expect(b2.result.outputs).toEqual({ text: "value-61" });
    expect(f.calls).toEqual({ produce: 2, consume: 1 });

    // Machine C: everything is a hit, and no record holds the other bytes.
    const c = await runCollect(f.flowB, { root: await tmp("cairn-tamper-c-"), env: env() });
    expect(statuses(c.result)).toEqual({ "tamper-same-size-produce": "cached", "tamper-same-size-consume": "cached" });
    expect(c.result.outputs).toEqual({ text: "value-61" });
    for (const name of await tracker.listIndexEntries!(source.experimentId)) {
      expect(await tracker.readIndexEntry!(source.experimentId, name)).not.toContain("TAMPERED");
    }
  });

  it("read by a process that did not decide the hit (a task on a worker): the entry of the run that wrote it is evicted all the same", async () => {
    const f = artifactFlows("tamper-worker", 64);
    const { tracker, source, key } = await producedThenTampered(f, "TAMPERED\n");
    const text = (await tracker.readIndexEntry!(source.experimentId, `${key}.json`))!;
    const data = (JSON.parse(text) as { outputs: { values: { data: Artifact } } }).outputs.values.data;
    const root = await tmp("cairn-tamper-worker-");
    const store = await CacheStore.fromUrl(undefined, { root });
    try {
      // A TaskCache as a worker has it: nothing looked up in it; the input comes from the coordinator.
      const cache = new TaskCache(store, tracker, source.experimentId, root, {});
      const reading = cache.materialize({ data }, "tamper-worker-consume");
      await expect(reading).rejects.toThrow(/^Task "tamper-worker-consume": artifact data\.txt of run [0-9a-f]+, downloaded from .* is not the artifact its record names/);
      await expect(reading).rejects.toThrow(/The cache entry that holds it \(task "tamper-worker-produce", key [0-9a-f]{12}\) was evicted/);
      expect(await tracker.readIndexEntry!(source.experimentId, `${key}.json`)).toBeUndefined();
      expect(existsSync(join(root, "downloads", source.runId, "data.txt"))).toBe(false);
    } finally {
      await store.close();
    }
    const again = await runCollect(f.flowB, { root: await tmp("cairn-tamper-worker-b-"), env: env() });
    expect(statuses(again.result)).toEqual({ "tamper-worker-produce": "succeeded", "tamper-worker-consume": "succeeded" });
    expect(again.result.outputs).toEqual({ text: "value-64" });
  });

  it("of another size than its entry's is an unusable entry at the lookup: the task runs again in the same run", async () => {
    const f = artifactFlows("tamper-other-size", 62);
    const { source } = await producedThenTampered(f, "TAMPERED, and longer\n");
    const b = await runCollect(f.flowB, { root: await tmp("cairn-tamper-d-"), env: env() });
    expect(statuses(b.result)).toEqual({ "tamper-other-size-produce": "succeeded", "tamper-other-size-consume": "succeeded" });
    expect(b.result.outputs).toEqual({ text: "value-62" });
    expect(f.calls).toEqual({ produce: 2, consume: 1 });
    expect(b.warnings.join("\n")).toContain(
      `was unusable: artifact data.txt of run ${source.runId} is 21 bytes on ${server.uri}, not the 9 bytes it was cached with (the server's copy was changed or damaged); it was evicted and the task runs`,
    );
  });

  it("in the flow's outputs is handed over as recorded, not downloaded, and the hit's entry is evicted", async () => {
    const f = artifactFlows("tamper-output", 63);
    const { tracker, source, key } = await producedThenTampered(f, "TAMPERED\n");
    const root = await tmp("cairn-tamper-e-");
    const b = await runCollect(f.flowA, { root, env: env() });
    expect(statuses(b.result)).toEqual({ "tamper-output-produce": "cached" });
    expect(b.warnings.join("\n")).toMatch(/Flow output "data" is handed over as recorded, not downloaded: .*is not the artifact its record names.*was evicted/);
    expect(existsSync(join(root, "downloads", source.runId, "data.txt"))).toBe(false);
    expect(await tracker.readIndexEntry!(source.experimentId, `${key}.json`)).toBeUndefined();
    const again = await runCollect(f.flowA, { root, env: env() });
    expect(statuses(again.result)).toEqual({ "tamper-output-produce": "succeeded" });
    expect(await readFile(((await again.run.outputs()) as { data: Artifact }).data.path, "utf8")).toBe("value-63\n");
  });
});

describe("a folder artifact with empty folders in it, on another machine", () => {
  /**
   * many writes the folder `ds` (sub/f0.txt, and the folders `empty` names, made empty); count lists
   * what it reads. `flowA` runs both; `flowB` the same with count's code changed, so that count runs
   * on another machine and reads the folder downloaded from the server.
   */
  function folderFlows(name: string, files: string[], empty: string[]) {
    const calls = { many: 0, count: 0 };
    const many = task(`${name}-many`).input<{ files: string[]; empty: string[] }>().run(async ({ files, empty }, ctx) => {
      calls.many++;
      const dir = await ctx.artifacts.path("ds");
      await mkdir(dir, { recursive: true });
      for (const file of files) {
        await mkdir(dirname(join(dir, file)), { recursive: true });
        await writeFile(join(dir, file), "x");
      }
      for (const folder of empty) await mkdir(join(dir, folder), { recursive: true });
      return { ds: ctx.artifacts.file("ds") };
    });
    const countV1 = task(`${name}-count`).input<{ ds: Artifact }>().run(async ({ ds }) => (calls.count++, { listed: await listedIn(ds) }));
    const countV2 = task(`${name}-count`).input<{ ds: Artifact }>().run(async ({ ds }) => (calls.count++, { listed: await listedIn(ds), v: 2 }));
    const make = (count: typeof countV1) =>
      flow(name).build(() => {
        const m = many({ files, empty });
        return { ds: m.ds, listed: count({ ds: m.ds }).listed };
      });
    return { calls, flowA: make(countV1), flowB: make(countV2 as typeof countV1) };
  }

  /** Every entry of the folder artifact, as count lists it. */
  async function listedIn(ds: Artifact): Promise<string[]> {
    return (await readdir(ds.path, { recursive: true })).sort();
  }

  /** Machine A runs flowA and goes away with its disk; what its count listed. */
  async function producedElsewhere(f: ReturnType<typeof folderFlows>) {
    const rootA = await tmp("cairn-emptydir-a-");
    const a = await runCollect(f.flowA, { root: rootA, env: env() });
    expect(a.result.status).toBe("succeeded");
    const listed = (a.result.outputs as { listed: string[] }).listed;
    const manyRun = Object.entries(a.result.tasks).find(([id]) => id.endsWith("-many"))![1].runId!;
    await rm(rootA, { recursive: true, force: true });
    return { listed, manyRun };
  }

  it("is downloaded whole: its empty folders are made again before its digest is checked, so a hit stays a hit (before: every download was a mismatch, evicted and recomputed)", async () => {
    const f = folderFlows("emptydir", ["sub/f0.txt"], ["emptydir", "sub/deep/deeper"]);
    const { listed } = await producedElsewhere(f);
    expect(listed).toEqual(["emptydir", "sub", "sub/deep", "sub/deep/deeper", "sub/f0.txt"]);

    // Machine B: many is a hit through the index; count's code changed, so it runs on the download.
    const rootB = await tmp("cairn-emptydir-b-");
    const b = await runCollect(f.flowB, { root: rootB, env: env() });
    expect(statuses(b.result)).toEqual({ "emptydir-many": "cached", "emptydir-count": "succeeded" });
    expect(b.warnings).toEqual([]);
    expect((b.result.outputs as { listed: string[] }).listed).toEqual(listed);
    const ds = (b.result.outputs as { ds: Artifact }).ds;
    expect(ds.emptyFolders).toEqual(["emptydir", "sub/deep", "sub/deep/deeper"]);
    expect(ds.path.startsWith(join(rootB, "downloads"))).toBe(true);
    expect(await listedIn(ds)).toEqual(listed);
    // Nothing is left half made beside it.
    expect((await readdir(dirname(ds.path))).filter((n) => n.includes(".part-"))).toEqual([]);

    // Machine C: both are hits, and the flow's output is handed over downloaded, whole.
    const c = await runCollect(f.flowB, { root: await tmp("cairn-emptydir-c-"), env: env() });
    expect(statuses(c.result)).toEqual({ "emptydir-many": "cached", "emptydir-count": "cached" });
    expect(c.warnings).toEqual([]);
    expect(await listedIn((c.result.outputs as { ds: Artifact }).ds)).toEqual(listed);
    expect(f.calls).toEqual({ many: 1, count: 2 });
  });

  it("that holds no file at all is a hit too, made from its record: the server has nothing of it to list (before: missing, evicted, and the task ran)", async () => {
    const f = folderFlows("emptyonly", [], ["only/empty"]);
    const { listed } = await producedElsewhere(f);
    expect(listed).toEqual(["only", "only/empty"]);
    const b = await runCollect(f.flowB, { root: await tmp("cairn-emptyonly-b-"), env: env() });
    expect(statuses(b.result)).toEqual({ "emptyonly-many": "cached", "emptyonly-count": "succeeded" });
    expect(b.warnings).toEqual([]);
    expect((b.result.outputs as { listed: string[] }).listed).toEqual(listed);
    const ds = (b.result.outputs as { ds: Artifact }).ds;
    expect(ds.emptyFolders).toEqual([".", "only", "only/empty"]);
    expect(await listedIn(ds)).toEqual(listed); // the flow's output too, made here
    expect(f.calls).toEqual({ many: 1, count: 2 });
  });

  it("recorded by an older Cairn (no emptyFolders) fails as before, evicted, but the message says empty folders may be the only difference, not blaming the server", async () => {
    const f = folderFlows("emptydir-old", ["sub/f0.txt"], ["emptydir"]);
    const { manyRun } = await producedElsewhere(f);
    // The index entry as a Cairn before emptyFolders wrote it: the same digest, without the names.
    const tracker = MlflowTracker.fromEnv(env());
    const source = (await tracker.getRun(manyRun))!;
    const name = `${source.tags["cairn.cache_key"]!}.json`;
    const doc = JSON.parse((await tracker.readIndexEntry!(source.experimentId, name))!) as { outputs: { values: { ds: Record<string, unknown> } }; outputsDigest?: string };
    delete doc.outputs.values.ds.emptyFolders;
    doc.outputsDigest = hashValue(doc.outputs);
    await tracker.writeIndexEntry!(source.experimentId, name, JSON.stringify(doc));

    const b = await runCollect(f.flowB, { root: await tmp("cairn-emptydir-old-b-"), env: env() });
    expect(statuses(b.result)).toEqual({ "emptydir-old-many": "cached", "emptydir-old-count": "failed" });
    const error = b.result.tasks["emptydir-old-count"]!.error!;
    expect(error.name).toBe("ArtifactMismatchError");
    expect(error.message).toContain(
      "It is a folder recorded by an older Cairn, whose digest counted the empty folders in it without naming them, and MLflow's artifact store keeps no empty folder: " +
        "every byte of its files arrived, so if the folder held an empty folder, that alone is the difference and the server's copy is whole",
    );
    expect(error.message).not.toContain("(the server's copy was changed or damaged since)");
    expect(error.message).toMatch(/was evicted/);
    // The next run computes it and records its empty folders: from then on every machine hits.
    const again = await runCollect(f.flowB, { root: await tmp("cairn-emptydir-old-c-"), env: env() });
    expect(statuses(again.result)).toEqual({ "emptydir-old-many": "succeeded", "emptydir-old-count": "succeeded" });
    const d = await runCollect(f.flowB, { root: await tmp("cairn-emptydir-old-d-"), env: env() });
    expect(statuses(d.result)).toEqual({ "emptydir-old-many": "cached", "emptydir-old-count": "cached" });
    expect(d.warnings).toEqual([]);
  });

  it("recorded by an older Cairn (no emptyFolders) holding no file at all: missing on the server, evicted, and the message says its empty folders may be the only difference (before: only \"is missing\")", async () => {
    const f = folderFlows("emptyonly-old", [], ["x"]);
    const { manyRun } = await producedElsewhere(f);
    // The index entry as a Cairn before emptyFolders wrote it: the same digest, without the names.
    const tracker = MlflowTracker.fromEnv(env());
    const source = (await tracker.getRun(manyRun))!;
    const name = `${source.tags["cairn.cache_key"]!}.json`;
    const doc = JSON.parse((await tracker.readIndexEntry!(source.experimentId, name))!) as { outputs: { values: { ds: Record<string, unknown> } }; outputsDigest?: string };
    expect(doc.outputs.values.ds.size).toBe(0);
    delete doc.outputs.values.ds.emptyFolders;
    doc.outputsDigest = hashValue(doc.outputs);
    await tracker.writeIndexEntry!(source.experimentId, name, JSON.stringify(doc));

    const b = await runCollect(f.flowB, { root: await tmp("cairn-emptyonly-old-b-"), env: env() });
    expect(statuses(b.result)).toEqual({ "emptyonly-old-many": "succeeded", "emptyonly-old-count": "succeeded" });
    const warning = b.warnings.find((w) => w.includes("was unusable"));
    expect(warning).toContain(
      `was unusable: artifact ds of run ${manyRun} is missing: it is a folder recorded by an older Cairn that held no file, and whose record does not name the empty folders in it; ` +
        "MLflow's artifact store keeps no empty folder, so the server has nothing of it to list, and that alone may be the whole difference (the server's copy need not be changed or damaged). " +
        "A run of the task now records its empty folders with it, and its entry is a hit on every machine; it was evicted and the task runs",
    );
    // The run records them: from then on every machine hits.
    const c = await runCollect(f.flowB, { root: await tmp("cairn-emptyonly-old-c-"), env: env() });
    expect(statuses(c.result)).toEqual({ "emptyonly-old-many": "cached", "emptyonly-old-count": "cached" });
    expect(c.warnings).toEqual([]);
  });
});

describe("cairn cache clear and prune with the server", () => {
  const cache = (args: string[]) => start(process.execPath, [cairnBin, "cache", ...args], { env: childEnv(env()) }).done;

  it("remove the index entries of the keys they remove, so the next run computes them; ls and a clear elsewhere say what the index keeps", async () => {
    const calls = { n: 0 };
    const first = task("cleared-first").input<{ x: number }>().run(({ x }) => (calls.n++, { y: x + 1 }));
    const second = task("cleared-second").input<{ y: number }>().run(({ y }) => (calls.n++, { z: y * 2 }));
    const f = flow("cache-cleared").build(() => ({ z: second({ y: first({ x: 1 }).y }).z }));
    const root = await tmp("cairn-cleared-");
    const a = await runCollect(f, { root, env: env() });
    expect(a.result.status).toBe("succeeded");
    const tracker = MlflowTracker.fromEnv(env());
    const experimentId = (await tracker.getRun(a.result.runId))!.experimentId;
    expect(await tracker.listIndexEntries!(experimentId)).toHaveLength(2);

    const ls = await cache(["ls", "--root", root]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain(`Entries kept in the experiments' indexes on the MLflow server at ${server.uri} (cairn-index/) are not listed here; a run hits those too`);

    // A clear from another root (an empty store): nothing of the index is removed, and it says what stays.
    const elsewhere = await cache(["clear", "--root", await tmp("cairn-cleared-other-")]);
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    expect(elsewhere.stdout).toContain(
      `2 other entries remain in the index of experiment "cache-cleared" (${experimentId}) on the MLflow server at ${server.uri}, not in this store (recorded through another cache store: another machine's, another --root): ` +
        "a run hits them (shown as cached); to recompute, run with --refresh, or --rerun TASK.",
    );
    expect(await tracker.listIndexEntries!(experimentId)).toHaveLength(2);

    const clear = await cache(["clear", "--root", root]);
    expect(clear.code, clear.stderr).toBe(0);
    expect(clear.stdout).toContain(`Removed 2 entries from the index of experiment "cache-cleared" (${experimentId}) on the MLflow server at ${server.uri}.`);
    expect(await tracker.listIndexEntries!(experimentId)).toEqual([]);
    const b = await runCollect(f, { root, env: env() });
    expect(statuses(b.result)).toEqual({ "cleared-first": "succeeded", "cleared-second": "succeeded" });
    expect(calls.n).toBe(4);

    // clear --task removes that task's entry only, here and in the index.
    const one = await cache(["clear", "--task", "cleared-second", "--root", root]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain(`Removed 1 entry from the index of experiment "cache-cleared" (${experimentId})`);
    expect(await tracker.listIndexEntries!(experimentId)).toHaveLength(1);
    const c = await runCollect(f, { root, env: env() });
    expect(statuses(c.result)).toEqual({ "cleared-first": "cached", "cleared-second": "succeeded" });

    // prune as well: what it removes from the store goes from the index.
    const prune = await cache(["prune", "--older-than", "1ms", "--root", root]);
    expect(prune.code, prune.stderr).toBe(0);
    expect(prune.stdout).toContain(`Removed 2 entries from the index of experiment "cache-cleared" (${experimentId})`);
    expect(await tracker.listIndexEntries!(experimentId)).toEqual([]);
    const d = await runCollect(f, { root, env: env() });
    expect(statuses(d.result)).toEqual({ "cleared-first": "succeeded", "cleared-second": "succeeded" });
    expect(calls.n).toBe(7);
  });

  it("clear --task removes every index entry of that task, also those of keys this store never had (another machine's)", async () => {
    const kept = task("task-kept").input<{ x: number }>().run(({ x }) => ({ y: x + 1 }));
    const gone = task("task-gone").input<{ y: number }>().run(({ y }) => ({ z: y * 2 }));
    const f = flow("cache-cleared-task").params<{ x: number }>().build(({ params }) => ({ z: gone({ y: kept({ x: params.x }).y }).z }));
    // Machine A computes two inputs: two keys of each task in the index.
    const rootA = await tmp("cairn-cleared-task-a-");
    for (const x of [1, 2]) expect((await runCollect(f, { root: rootA, env: env(), params: { x } })).result.status).toBe("succeeded");
    const tracker = MlflowTracker.fromEnv(env());
    const experimentId = (await tracker.listExperiments!()).find((e) => e.name === "cache-cleared-task")!.experimentId;
    expect(await tracker.listIndexEntries!(experimentId)).toHaveLength(4);

    // Machine B, whose store never had them, clears the task: its two entries leave the index, the other task's stay.
    const one = await cache(["clear", "--task", "task-gone", "--root", await tmp("cairn-cleared-task-b-")]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain('Removed 0 cache entries of task "task-gone"');
    expect(one.stdout).toContain(`Removed 2 entries from the index of experiment "cache-cleared-task" (${experimentId}) on the MLflow server at ${server.uri}.`);
    expect(await tracker.listIndexEntries!(experimentId)).toHaveLength(2);
    // A third machine: the cleared task runs, the other one is found in the index.
    const c = await runCollect(f, { root: await tmp("cairn-cleared-task-c-"), env: env(), params: { x: 2 } });
    expect(statuses(c.result)).toEqual({ "task-kept": "cached", "task-gone": "succeeded" });
  });
});

/** A tracker for this file's server that notes every request it sends, as `METHOD path`. */
function countingTracker(): { tracker: MlflowTracker; seen: string[] } {
  const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
  const seen: string[] = [];
  tracker.client.http.observe((e) => {
    if (e.phase !== "request") return;
    const url = new URL(e.url);
    const listed = url.searchParams.get("path");
    seen.push(`${e.method} ${url.pathname.replace(/^\/api\/2\.0\/mlflow\//, "")}${listed !== null ? `?path=${listed}` : ""}`);
  });
  return { tracker, seen };
}

const count = (seen: string[], request: string) => seen.filter((r) => r === request).length;

describe("a cold run against the server", () => {
  it("a fresh task's lookup is answered by one listing of the experiment's index: no read of its own, none after taking its lease", async () => {
    const fresh = task("cold-fresh").input<{ n: number }>().run(({ n }) => ({ x: n + 1 }));
    const f = flow("cold-fresh").build(() => ({ x: fresh({ n: Date.now() }).x }));
    const { tracker, seen } = countingTracker();
    const cold = await runCollect(f, { root: await tmp(), env: env(), tracker });
    expect(cold.result.status).toBe("succeeded");
    expect(statuses(cold.result)).toEqual({ "cold-fresh": "succeeded" });
    const indexReads = seen.filter((r) => r.startsWith("GET ") && r.includes("/cairn-index/"));
    const indexListings = seen.filter((r) => r.startsWith("GET ") && r.endsWith("/cairn-index"));
    const indexWrites = seen.filter((r) => r.startsWith("PUT ") && r.includes("/cairn-index/"));
    expect(indexListings).toHaveLength(1);
    expect(indexReads).toHaveLength(0);
    expect(indexWrites).toHaveLength(1);
    // The task's own run: create, one log-batch, its outputs.json, update (and the flow run's own).
    expect(count(seen, "POST runs/create")).toBe(1 + 1);
    expect(count(seen, "POST runs/log-batch")).toBe(1 + 1);
    expect(count(seen, "POST runs/update")).toBe(1 + 1);
    // Why it missed, as its lookup saw it, goes in that log-batch (the run report reads it).
    const run = await tracker.getRun(cold.result.tasks["cold-fresh"]!.runId!);
    expect(JSON.parse(run!.tags["cairn.miss_reason"]!)).toEqual({ kind: "new", store: expect.any(String), searched: expect.stringContaining("and the index of experiment") });
  });

  it("a task's dependants start while its run is still being closed, and the flow ends once it is", async () => {
    let upStartedAt = 0;
    let downStartedAt = 0;
    const up = task("beside-up").input<{ n: number }>().run(({ n }) => ((upStartedAt = Date.now()), { x: n + 1 }));
    const down = task("beside-down").input<{ x: number }>().run(({ x }) => ((downStartedAt = Date.now()), { y: x * 2 }));
    const n = Date.now();
    const f = flow("beside").build(() => ({ y: down({ x: up({ n }).x }).y }));
    // A slow server, which a real one cannot be made to be on cue: the end of up's run is held
    // until down has started, or for 5 s.
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    const endRun = tracker.endRun.bind(tracker);
    let upRunId = "";
    let heldFor = 0;
    let upEndedAt = 0;
    tracker.endRun = async (runId, status, endTime) => {
      if (runId === upRunId) {
        const t0 = performance.now();
        while (!downStartedAt && performance.now() - t0 < 5000) await sleep(10);
        heldFor = performance.now() - t0;
        await endRun(runId, status, endTime);
        upEndedAt = Date.now();
        return;
      }
      return endRun(runId, status, endTime);
    };
    const createRun = tracker.createRun.bind(tracker);
    tracker.createRun = async (options) => {
      const runId = await createRun(options);
      if (options.name === "beside-up") upRunId = runId;
      return runId;
    };
    const root = await tmp();
    const cold = await runCollect(f, { root, env: env(), tracker });
    expect(statuses(cold.result)).toEqual({ "beside-up": "succeeded", "beside-down": "succeeded" });
    expect(upStartedAt).toBeGreaterThan(0);
    expect(heldFor).toBeLessThan(4000);
    expect(downStartedAt).toBeLessThanOrEqual(upEndedAt);
    // The flow ended after up's run: FINISHED on the server, its entry stored.
    expect(await tracker.getRun(upRunId)).toMatchObject({ status: "FINISHED" });
    const warm = await runCollect(f, { root, env: env() });
    expect(statuses(warm.result)).toEqual({ "beside-up": "cached", "beside-down": "cached" });
  });

  it("a task's run that cannot be closed beside its dependants fails the flow at its end, naming it; it has no entry and runs again", async () => {
    let upCalls = 0;
    const up = task("unclosed-up").input<{ n: number }>().run(({ n }) => (upCalls++, { x: n + 1 }));
    const down = task("unclosed-down").input<{ x: number }>().run(({ x }) => ({ y: x * 2 }));
    const n = Date.now();
    const f = flow("unclosed").build(() => ({ y: down({ x: up({ n }).x }).y }));
    // A fault a real server cannot be made to show on cue: the update that ends up's run FINISHED is refused.
    const { tracker, runIdOf } = refusingEnds("unclosed-up", (status) => status === "FINISHED", "injected: the server refused the update");
    const root = await tmp();
    const cold = await runCollect(f, { root, env: env(), tracker });
    expect(cold.result.status).toBe("failed");
    expect(cold.result.error?.message).toMatch(/The run of task "unclosed-up" could not be closed \(injected: the server refused the update\)/);
    expect(cold.result.error?.message).toMatch(/run the flow again/);
    expect(cold.result.outputs).toBeUndefined();
    expect(statuses(cold.result)).toEqual({ "unclosed-up": "succeeded", "unclosed-down": "succeeded" });
    // Its result says it was not stored, and so does its event, which came once its closing had failed.
    expect(cold.result.tasks["unclosed-up"]!.recorded).toBe(false);
    expect(cold.result.tasks["unclosed-down"]!.recorded).toBeUndefined();
    expect(taskEvents(cold.events, "unclosed-up").find((e) => e.status === "succeeded")).toMatchObject({ recorded: false });
    // Its run is not left RUNNING: ended FAILED with the error that stopped its close.
    expect(await tracker.getRun(runIdOf())).toMatchObject({ status: "FAILED" });
    expect(cold.result.error?.message).toMatch(/is not recorded FINISHED \(it is recorded FAILED\)/);
    // The flow's run says so too: no task failed, and without it the tracker had no word of why.
    const flowRun = (await tracker.getRun(cold.result.runId))!;
    expect(flowRun).toMatchObject({ status: "FAILED", tags: { "cairn.error.name": "TrackingError" } });
    expect(flowRun.tags["cairn.error.message"]).toMatch(/^The run of task "unclosed-up" could not be closed/);
    expect(flowRun.tags["cairn.error.tasks"]).toBeUndefined();
    const again = await runCollect(f, { root, env: env() });
    expect(again.result.status).toBe("succeeded");
    expect(statuses(again.result)).toEqual({ "unclosed-up": "succeeded", "unclosed-down": "cached" });
    expect(upCalls).toBe(2);
  });

  it("a close that Cairn refused for what the task logged does not send the user to the server", async () => {
    const up = task("refused-up").run(() => ({ x: 1 }));
    const down = task("refused-down").input<{ x: number }>().run(({ x }) => ({ y: x * 2 }));
    const f = flow(`refused-${Date.now()}`).build(() => ({ y: down({ x: up().x }).y }));
    // As a tracker that checks a metric only when it sends the run's buffered points, at its close.
    const { tracker } = refusingEnds("refused-up", (status) => status === "FINISHED", new MetricError("loss", "step", 0.5));
    const run = await runCollect(f, { root: await tmp(), env: env(), tracker });
    expect(run.result.status).toBe("failed");
    expect(run.result.error?.message).toMatch(/The run of task "refused-up" could not be closed \(Metric "loss" has step `0.5` \(number\)/);
    expect(run.result.error?.message).toMatch(/Cairn refused what the task logged, not the tracking server: fix what it logs/);
    expect(run.result.error?.message).not.toMatch(/Check the tracking server|that task runs again/);
  });
});

/**
 * A tracker of the test's server whose `endRun` of the run of task `name` throws `message` for the
 * statuses `refuses` picks: a fault a real server cannot be made to show on cue. `runIdOf()` is that run's id.
 */
function refusingEnds(name: string, refuses: (status: string) => boolean, message: string | Error) {
  const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
  const endRun = tracker.endRun.bind(tracker);
  const createRun = tracker.createRun.bind(tracker);
  let runId = "";
  tracker.createRun = async (options) => {
    const id = await createRun(options);
    if (options.name === name) runId = id;
    return id;
  };
  tracker.endRun = async (id, status, endTime) => {
    if (id === runId && refuses(status)) throw typeof message === "string" ? new Error(message) : message;
    return endRun(id, status, endTime);
  };
  return { tracker, runIdOf: () => runId };
}

describe("a task's run that cannot be closed, nor marked FAILED", () => {
  it("is said to stay RUNNING until the next command closes it, not to be FAILED", async () => {
    const up = task("stuck-up").run(() => ({ x: 1 }));
    const down = task("stuck-down").input<{ x: number }>().run(({ x }) => ({ y: x * 2 }));
    const f = flow(`stuck-${Date.now()}`).build(() => ({ y: down({ x: up().x }).y }));
    // The server stops answering the updates of up's run, whatever their status (as a server that died mid-run).
    const { tracker, runIdOf } = refusingEnds("stuck-up", () => true, "injected: the server does not answer");
    const run = await runCollect(f, { root: await tmp(), env: env(), tracker });
    expect(run.result.status).toBe("failed");
    // Before: "it is FAILED", of a run the server still had RUNNING.
    expect(run.result.error?.message).toMatch(/could not be marked FAILED either, so it stays RUNNING until the next cairn command in this experiment closes it as KILLED/);
    expect(run.result.error?.message).not.toMatch(/recorded FAILED/);
    expect(await tracker.getRun(runIdOf())).toMatchObject({ status: "RUNNING" });
  });
});

describe("the flow's outputs against the server", () => {
  it("output metrics that cannot be sent (flushRun refused) fail the flow with the server's error, and its run ends FAILED", async () => {
    const one = task("flush-one").run(() => ({ score: 0.5 }));
    const f = flow("flush-refused").build(() => ({ score: one().score }));
    // A fault a real server cannot be made to show on cue: the log-batch of the flow's metrics is refused.
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    tracker.flushRun = async () => {
      throw new Error("injected: the server refused the flow's metrics");
    };
    let hookCalled = false;
    const run = await runCollect(f, { root: await tmp(), env: env(), tracker, beforeEnd: async () => void (hookCalled = true) });
    expect(run.result.status).toBe("failed");
    expect(run.result.error?.message).toMatch(/injected: the server refused the flow's metrics/);
    expect(hookCalled).toBe(false);
    expect(await tracker.getRun(run.result.runId)).toMatchObject({ status: "FAILED" });
  });
});

describe("a warm run against the server", () => {
  it("checks every source run with one search, and records each hit as a FINISHED child run (create + update) off the chain", async () => {
    let calls = 0;
    const a = task("warm-a").input<{ n: number }>().run(({ n }) => (calls++, { x: n + 1 }));
    const b = task("warm-b").input<{ x: number }>().run(({ x }) => (calls++, { y: x * 2 }));
    const c = task("warm-c").input<{ y: number }>().run(({ y }) => (calls++, { z: y + 3 }));
    const side = task("warm-side").input<{ x: number }>().run(({ x }) => (calls++, { s: -x }));
    const f = flow("warm-chain").build(() => {
      const ax = a({ n: 1 }).x;
      return { z: c({ y: b({ x: ax }).y }).z, s: side({ x: ax }).s };
    });
    const root = await tmp();
    const first = await runCollect(f, { root, env: env() });
    expect(first.result.status).toBe("succeeded");
    expect(calls).toBe(4);

    const { tracker, seen } = countingTracker();
    const warm = await runCollect(f, { root, env: env(), tracker });
    expect(warm.result.status).toBe("succeeded");
    expect(statuses(warm.result)).toEqual({ "warm-a": "cached", "warm-b": "cached", "warm-c": "cached", "warm-side": "cached" });
    expect(calls).toBe(4);
    expect(warm.result.outputs).toEqual({ z: 7, s: -2 });
    expect(warm.warnings).toEqual([]);
    // One search for the four source runs, no GET per hit; two writes per hit.
    expect(count(seen, "POST runs/search")).toBe(1);
    expect(count(seen, "GET runs/get")).toBe(0);
    expect(count(seen, "POST runs/create")).toBe(1 + 4);
    expect(count(seen, "POST runs/update")).toBe(1 + 4);
    // Everything the warm run asks: one experiment lookup (which is the ping too), the flow run,
    // its graph (no params to log), the search, the hits, the flow's outputs and its end.
    expect([...seen].sort()).toEqual(
      [
        "GET experiments/get-by-name",
        "POST runs/create",
        "PUT /api/2.0/mlflow-artifacts/artifacts/" + (await tracker.getRun(warm.result.runId))!.experimentId + `/${warm.result.runId}/artifacts/cairn/graph.json`,
        "PUT /api/2.0/mlflow-artifacts/artifacts/" + (await tracker.getRun(warm.result.runId))!.experimentId + `/${warm.result.runId}/artifacts/cairn/graph.mmd`,
        // Issue 15: every flow output on the flow run, as outputs.json (one upload per flow run, none per task).
        "PUT /api/2.0/mlflow-artifacts/artifacts/" + (await tracker.getRun(warm.result.runId))!.experimentId + `/${warm.result.runId}/artifacts/outputs.json`,
        "POST runs/search",
        ...Array(4).fill(["POST runs/create", "POST runs/update"]).flat(),
        "POST runs/log-batch",
        "POST runs/update",
      ].sort(),
    );

    const hits = await tracker.searchRuns({ experimentIds: [(await tracker.getRun(warm.result.runId))!.experimentId], parentRunId: warm.result.runId });
    expect(hits).toHaveLength(4);
    for (const id of ["warm-a", "warm-b", "warm-c", "warm-side"]) {
      const hit = hits.find((r) => r.runId === warm.result.tasks[id]!.runId)!;
      expect(hit).toMatchObject({ name: id, status: "FINISHED", parentRunId: warm.result.runId });
      expect(hit.tags["cairn.cached_from"]).toBe(first.result.tasks[id]!.runId);
      expect(hit.endTime).toBeGreaterThanOrEqual(hit.startTime);
    }
    expect(await tracker.getRun(warm.result.runId)).toMatchObject({ status: "FINISHED" });
    // The Cairn that ran it, sent in the flow run's create request (counted above: no request more).
    expect((await tracker.getRun(warm.result.runId))!.tags["cairn.version"]).toBe(cairnBuild().id);
  });

  it("asks about the hits' source runs while the flow run is still being created", async () => {
    const a = task("early-a").input<{ n: number }>().run(({ n }) => ({ x: n + 1 }));
    const b = task("early-b").input<{ x: number }>().run(({ x }) => ({ y: x * 2 }));
    const f = flow("early-check").build(() => ({ y: b({ x: a({ n: 1 }).x }).y }));
    const root = await tmp();
    expect((await runCollect(f, { root, env: env() })).result.status).toBe("succeeded");

    // A slow server, which a real one cannot be made to be on cue: the flow run's create is held
    // until the source runs are asked about, or for 5 s.
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    let asked: () => void = () => {};
    const sourcesAsked = new Promise<void>((r) => (asked = r));
    const getRuns = tracker.getRuns.bind(tracker);
    tracker.getRuns = (ids, experiments) => (asked(), getRuns(ids, experiments));
    const createRun = tracker.createRun.bind(tracker);
    let heldFor = 0;
    tracker.createRun = async (options) => {
      if (options.parentRunId === undefined) {
        const t0 = performance.now();
        await Promise.race([sourcesAsked, sleep(5000)]);
        heldFor = performance.now() - t0;
      }
      return createRun(options);
    };
    const warm = await runCollect(f, { root, env: env(), tracker });
    expect(statuses(warm.result)).toEqual({ "early-a": "cached", "early-b": "cached" });
    expect(heldFor).toBeLessThan(4000);
  });

  it("a shared store that fails the look-ahead's peeks is left to the run's own lookups: they still hit", async () => {
    const redis = await startRedisServer();
    const store = await CacheStore.fromUrl(redis.url);
    try {
      const a = task("peek-a").input<{ n: number }>().run(({ n }) => ({ x: n + 1 }));
      const b = task("peek-b").input<{ x: number }>().run(({ x }) => ({ y: x * 2 }));
      const c = task("peek-c").run(() => ({ z: 3 }));
      const f = flow("peek-fails").build(() => ({ y: b({ x: a({ n: 1 }).x }).y, z: c().z }));
      const root = await tmp();
      expect((await runCollect(f, { root, env: env(), cache: { store } })).result.status).toBe("succeeded");
      // A fault a real redis cannot be made to show on cue: its peeks fail as if it were down, its lookups answer.
      let peeks = 0;
      store.peek = async () => {
        peeks++;
        throw new CacheBackendError("redis", redis.url, "peek");
      };
      const lookup = store.lookup.bind(store);
      let lookups = 0;
      store.lookup = (key) => (lookups++, lookup(key));
      const warm = await runCollect(f, { root, env: env(), cache: { store } });
      expect(peeks).toBe(1); // the look-ahead stops asking at the first failure (peek-c is a root it would ask about)
      expect(lookups).toBe(3); // the run still uses the store: it was not taken for down
      expect(statuses(warm.result)).toEqual({ "peek-a": "cached", "peek-b": "cached", "peek-c": "cached" });
      expect(warm.warnings).toEqual([]);
    } finally {
      await store.close();
      await redis.stop();
    }
  });

  it("a deleted source run in the middle of a chain is a miss, and what is below it uses the new outputs, not the old entry's", async () => {
    let bRuns = 0;
    const calls: string[] = [];
    const a = task("mid-a").run(() => (calls.push("a"), { x: 1 }));
    // Each run of b gives a new value: whatever is below it must see the new one.
    const b = task("mid-b").input<{ x: number }>().run(({ x }) => (calls.push("b"), { y: x * 100 + ++bRuns }));
    const c = task("mid-c").input<{ y: number }>().run(({ y }) => (calls.push("c"), { z: y }));
    const f = flow("mid-deleted").build(() => ({ z: c({ y: b({ x: a().x }).y }).z }));
    const root = await tmp();
    const first = await runCollect(f, { root, env: env() });
    expect(first.result.outputs).toEqual({ z: 101 });
    const warm = await runCollect(f, { root, env: env() });
    expect(statuses(warm.result)).toEqual({ "mid-a": "cached", "mid-b": "cached", "mid-c": "cached" });

    await mlflowPost("runs/delete", { run_id: first.result.tasks["mid-b"]!.runId });
    calls.length = 0;
    const { tracker, seen } = countingTracker();
    const after = await runCollect(f, { root, env: env(), tracker });
    expect(statuses(after.result)).toEqual({ "mid-a": "cached", "mid-b": "succeeded", "mid-c": "succeeded" });
    expect(calls).toEqual(["b", "c"]);
    expect(after.result.outputs).toEqual({ z: 102 });
    expect(after.warnings.some((w) => w.includes(`source run ${first.result.tasks["mid-b"]!.runId} no longer exists`))).toBe(true);
    // All three source runs were asked about in the one search ahead; none again one by one.
    expect(count(seen, "POST runs/search")).toBe(1);
    expect(count(seen, "GET runs/get")).toBe(0);
    // The deleted run's entry is gone, the new one is used next time.
    const again = await runCollect(f, { root, env: env() });
    expect(statuses(again.result)).toEqual({ "mid-a": "cached", "mid-b": "cached", "mid-c": "cached" });
    expect(again.result.tasks["mid-b"]!.cachedFrom).toBe(after.result.tasks["mid-b"]!.runId);
    expect(again.result.outputs).toEqual({ z: 102 });
  });

  it("a task whose key is not known ahead (below a task that is not cached) checks its source run on its own", async () => {
    let calls = 0;
    const slow = task("slow-up").cache(false).run(async () => (await sleep(100), { x: 1 }));
    const down = task("late-down").input<{ x: number }>().run(({ x }) => (calls++, { y: x }));
    const f = flow("late-check").build(() => ({ y: down({ x: slow().x }).y }));
    const root = await tmp();
    const first = await runCollect(f, { root, env: env() });
    expect(calls).toBe(1);
    const { tracker, seen } = countingTracker();
    const warm = await runCollect(f, { root, env: env(), tracker });
    expect(statuses(warm.result)).toEqual({ "slow-up": "succeeded", "late-down": "cached" });
    expect(count(seen, "POST runs/search")).toBe(0);
    expect(count(seen, "GET runs/get")).toBe(1);
    // slow-up is not cached, so late-down's key is not known ahead: it is checked on its own, when it is ready.
    await mlflowPost("runs/update", { run_id: first.result.tasks["late-down"]!.runId, status: "FAILED" });
    const after = await runCollect(f, { root, env: env() });
    expect(statuses(after.result)).toEqual({ "slow-up": "succeeded", "late-down": "succeeded" });
    expect(calls).toBe(2);
  });

  it("an answer of the search ahead stands for a source run for seconds, not for the rest of a long flow", async () => {
    const t = task("fresh").run(() => ({ ok: true }));
    const root = await tmp();
    const first = await runCollect(flow("fresh-answer").build(() => ({ ok: t().ok })), { root, env: env() });
    const source = first.result.tasks.fresh!.runId!;
    const { tracker, seen } = countingTracker();
    const store = await CacheStore.fromUrl(undefined, { root });
    const cache = new TaskCache(store, tracker, (await tracker.getRun(source))!.experimentId, root, {});
    const [entry] = await store.list({ taskName: "fresh" });
    expect(entry!.sourceRunId).toBe(source);
    seen.length = 0;
    cache.checkSourceRuns([source]);
    expect((await cache.lookup(entry!.key)).entry?.sourceRunId).toBe(source);
    expect(seen).toEqual(["POST runs/search"]);
    // The source run fails later in a long flow: a lookup then no longer trusts the old answer.
    await mlflowPost("runs/update", { run_id: source, status: "FAILED" });
    const now = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(now + 11_000);
    try {
      const late = await cache.lookup(entry!.key);
      expect(late.entry).toBeUndefined();
      expect(late.bad?.reason).toBe(`its source run ${source} is FAILED, not FINISHED`);
      expect(seen.slice(0, 2)).toEqual(["POST runs/search", "GET runs/get"]);
      // Then the experiment's index, as for a missing key (another machine may have computed the
      // key since); its entry names the same failed run, which is not asked about again.
      expect(seen.slice(2).filter((r) => !r.includes("experiments/get") && !r.includes("/cairn-index"))).toEqual([]);
    } finally {
      clock.mockRestore();
      await store.close();
    }
  });

  it("a run's listing of the index answers misses for seconds, then is listed again and finds what another machine recorded meanwhile", async () => {
    const t = task("listed").run(() => ({ ok: true }));
    const f = flow("listing-fresh").build(() => ({ ok: t().ok }));
    const { tracker, seen } = countingTracker();
    const experimentId = await tracker.ensureExperiment("listing-fresh");
    const rootB = await tmp();
    const store = await CacheStore.fromUrl(undefined, { root: rootB });
    const cache = new TaskCache(store, tracker, experimentId, rootB, {});
    try {
      expect(await cache.lookup("0".repeat(64))).toEqual({});
      expect(seen.filter((r) => r.endsWith("/cairn-index"))).toHaveLength(1);
      // Another machine (its own root) records the task meanwhile.
      const rootA = await tmp();
      await runCollect(f, { root: rootA, env: env() });
      const storeA = await CacheStore.fromUrl(undefined, { root: rootA });
      const [entry] = await storeA.list({ taskName: "listed" });
      await storeA.close();
      seen.length = 0;
      expect((await cache.lookup(entry!.key)).entry).toBeUndefined();
      expect(seen).toEqual([]); // the fresh listing says miss: no request
      const clock = vi.spyOn(Date, "now").mockReturnValue(Date.now() + 11_000);
      try {
        expect((await cache.lookup(entry!.key)).entry?.sourceRunId).toBe(entry!.sourceRunId);
      } finally {
        clock.mockRestore();
      }
      expect(seen.filter((r) => r.endsWith("/cairn-index"))).toHaveLength(1);
      expect(seen.filter((r) => r.startsWith("GET ") && r.includes("/cairn-index/"))).toHaveLength(1);
    } finally {
      await store.close();
    }
  });

  it("when the flow run's params cannot be recorded, the flow fails and leaves no run RUNNING", async () => {
    const t = task("param-fault").input<{ n: number }>().run(async ({ n }) => (await sleep(200), { n }));
    const f = flow("param-fault").params<{ n: number }>().build(({ params }) => ({ n: t({ n: params.n }).n }));
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: server.uri });
    // The one fault injected: the server refuses the flow run's params.
    const logBatch = tracker.logBatch.bind(tracker);
    let flowRunId: string | undefined;
    tracker.logBatch = async (runId, batch) => {
      if (batch.params && "n" in batch.params && runId === flowRunId) throw new Error("injected: params refused");
      return logBatch(runId, batch);
    };
    const createRun = tracker.createRun.bind(tracker);
    tracker.createRun = async (options) => {
      const id = await createRun(options);
      flowRunId ??= id;
      return id;
    };
    const run = await runCollect(f, { root: await tmp(), env: env(), tracker, params: { n: 3 } });
    expect(run.result.status).toBe("failed");
    expect(run.result.error?.message).toContain("injected: params refused");
    const flowRun = await tracker.getRun(run.result.runId);
    expect(flowRun).toMatchObject({ status: "FAILED" });
    const children = await tracker.searchRuns({ experimentIds: [flowRun!.experimentId], parentRunId: run.result.runId });
    for (const child of children) expect(child.status).not.toBe("RUNNING");
  });
});

describe("a shared redis that is down when the run starts", () => {
  it("lookups go to the experiment's index and hit what other machines recorded; new results are recorded there, and the warning says so", async () => {
    const redis = await startRedisServer();
    const calls = { a: 0, b: 0 };
    const make = (n: number) => {
      const a = task("down-a").input<{ n: number }>().run(({ n }) => (calls.a++, { x: n + 1 }));
      const b = task("down-b").input<{ x: number }>().run(({ x }) => (calls.b++, { y: x * 2 }));
      return flow("redis-down-index").build(() => ({ y: b({ x: a({ n }).x }).y }));
    };
    const url = redis.url;
    try {
      // Machine A computes with redis up: its entries are in redis and in the experiment's index.
      const first = await runCollect(make(1), { root: await tmp(), env: env(), cache: { url } });
      expect(statuses(first.result)).toEqual({ "down-a": "succeeded", "down-b": "succeeded" });
    } finally {
      await redis.stop();
    }
    // Machine B, redis down: the index alone answers, and its hits are checked as any.
    const second = await runCollect(make(1), { root: await tmp(), env: env(), cache: { url } });
    expect(statuses(second.result)).toEqual({ "down-a": "cached", "down-b": "cached" });
    expect(calls).toEqual({ a: 1, b: 1 });
    expect(second.warnings).toHaveLength(1);
    expect(second.warnings[0]).toMatch(/without the shared cache: lookups read only the experiment's index in http:\/\/\S+ \(its hits checked as any\), results are recorded there alone, and no single-flight leases are taken/);
    // Machine C, redis still down: a new result is recorded in the index, where machine D finds it.
    const third = await runCollect(make(2), { root: await tmp(), env: env(), cache: { url } });
    expect(statuses(third.result)).toEqual({ "down-a": "succeeded", "down-b": "succeeded" });
    const tracker = third.run.tracker as MlflowTracker;
    const key = (await tracker.getRun(third.result.tasks["down-b"]!.runId!))!.tags["cairn.cache_key"]!;
    const experimentId = (await tracker.getRun(third.result.runId))!.experimentId;
    expect(await tracker.listIndexEntries!(experimentId)).toContain(`${key}.json`);
    const fourth = await runCollect(make(2), { root: await tmp(), env: env(), cache: { url } });
    expect(statuses(fourth.result)).toEqual({ "down-a": "cached", "down-b": "cached" });
    expect(calls).toEqual({ a: 2, b: 2 });
  }, 120_000);
});
