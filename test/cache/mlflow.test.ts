/**
 * The cache with a real mlflow server (one for this file): a second machine with an
 * empty root gets hits through the experiment's index (cairn-index/<key>.json in its
 * artifact location) and downloads the artifacts a running task reads; entries are
 * checked against the server.
 * "Machines" are temp roots; the first machine's root is deleted before the second
 * runs, so nothing can be read from its disk.
 */
import { readFile, rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Artifact, flow, task } from "@cairn/dsl";
import { type MlflowServer, startMlflowServer } from "../../packages/core/test/mlflow-server.ts";
import { entryFiles, runCollect, sleep, statuses, tmp } from "./helpers.ts";

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
});
