/**
 * Faults of a real `mlflow server` that only a proxy in front of it can show on cue: artifact
 * reads refused with a 500 while writes work (an S3 bucket without s3:ListBucket), a request
 * answered 503 with a Retry-After. The flows run in this process against the proxy.
 */
import { readFile, writeFile } from "node:fs/promises";
import type http from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "@cairn/mlflow/register";
import { type Artifact, flow, task } from "@cairn/dsl";
import { removeIndexEntries } from "@cairn/core";
import { MlflowTracker } from "@cairn/mlflow/tracker";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { runCollect, tmp } from "../cache/helpers.ts";
import { startProxy } from "./helpers.ts";

let server: MlflowServer;
beforeAll(async () => {
  server = await startMlflowServer();
});
afterAll(async () => {
  await server?.stop();
});

/** A short retry policy: 3 tries, 0.2 s then 0.4 s apart. */
const QUICK = { MLFLOW_HTTP_REQUEST_MAX_RETRIES: "2", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR: "0.2", MLFLOW_HTTP_REQUEST_BACKOFF_JITTER: "0" };

function refuse(res: http.ServerResponse, status: number, headers: Record<string, string> = {}): true {
  res.writeHead(status, { "content-type": "text/html", ...headers }).end("<html><body><h1>Internal Server Error</h1></body></html>");
  return true;
}

const three = (name: string) => {
  const step = (n: number) => task(`step${n}`).input<{ x: number }>().run(({ x }) => ({ y: x + n }));
  return flow(name).build(() => ({ a: step(1)({ x: 1 }).y, b: step(2)({ x: 2 }).y, c: step(3)({ x: 3 }).y }));
};

describe("artifact reads refused while writes work", () => {
  // A 1-task flow took 8 min 20 s in silence: each lookup waited out the listing's retries, then its index document's.
  it("the first lookup read that fails its retries stops the others, said once; a later run gets no hit it cannot check", async () => {
    let gets = 0;
    const proxy = await startProxy(server.uri, (req, res) => {
      if (req.method !== "GET" || !req.url!.startsWith("/api/2.0/mlflow-artifacts/")) return false;
      gets++;
      req.resume();
      return refuse(res, 500);
    });
    try {
      const env = { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "reads-refused", ...QUICK };
      const first = await runCollect(three("reads-refused"), { root: await tmp(), env, concurrency: 1 });
      expect(first.result.status).toBe("succeeded");
      // One listing's three tries; no task read its index document afterwards.
      expect(gets).toBe(3);
      const said = first.warnings.filter((w) => w.startsWith("Cache lookups cannot read the artifacts"));
      expect(said).toHaveLength(1);
      expect(said[0]).toContain("its cache index (cairn-index/): ");
      expect(said[0]).toContain("lookups search the runs by their cairn.cache_key tag instead");
      expect(said[0]).toContain("s3:ListBucket");

      // Another machine (an empty root): the first run found by tag has a manifest that cannot be
      // read either; the others are not read: the tasks run, no hit it could not check.
      gets = 0;
      const second = await runCollect(three("reads-refused"), { root: await tmp(), env, concurrency: 1 });
      expect(second.result.status).toBe("succeeded");
      expect(Object.values(second.result.tasks).map((t) => t.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
      // The index's listing, then the manifests of the lookups already under way (made together) once each: 3 + 3 × 3 tries.
      expect(gets).toBeLessThanOrEqual(12);
      const manifests = second.warnings.filter((w) => w.startsWith("Cache lookups cannot read the artifacts") && w.includes("cairn/manifest.json"));
      expect(manifests).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

describe("the index unreadable after an entry was removed", () => {
  // The tag search that stands in for the index saw the removed entry's FINISHED run and hit it again.
  it("a lookup by tag search does not hit an entry that cache clear removed", async () => {
    let refuseIndex = false;
    const proxy = await startProxy(server.uri, (req, res) => {
      if (!refuseIndex || req.method !== "GET" || !req.url!.includes("cairn-index")) return false;
      req.resume();
      return refuse(res, 500);
    });
    try {
      const env = { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "removed-then-unreadable", ...QUICK };
      const first = await runCollect(three("removed-then-unreadable"), { root: await tmp(), env, concurrency: 1 });
      expect(first.result.status).toBe("succeeded");
      // What `cairn cache clear --task step1` does on the server.
      const cleanups = await removeIndexEntries(MlflowTracker.fromEnv({}, server.uri), new Set(), { taskName: "step1" });
      expect(cleanups.find((c) => c.experiment === "removed-then-unreadable")?.removed).toBe(1);

      // Another machine (an empty root) that cannot read the index: step1 runs, the others are still hits.
      refuseIndex = true;
      const second = await runCollect(three("removed-then-unreadable"), { root: await tmp(), env, concurrency: 1 });
      expect(second.result.status).toBe("succeeded");
      expect(second.warnings.filter((w) => w.startsWith("Cache lookups cannot read the artifacts"))).toHaveLength(1);
      expect(Object.fromEntries(Object.entries(second.result.tasks).map(([id, t]) => [id, t.status]))).toEqual({ step1: "succeeded", step2: "cached", step3: "cached" });
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

describe("the index unreadable after an entry was evicted", () => {
  // Only `cache clear` was shown to tag the run of an entry it removes; an eviction that forgot
  // to would let the tag search that stands in for the index hit the evicted entry again.
  it("a lookup by tag search does not hit an entry a download that did not match its digest evicted", async () => {
    let refuseIndex = false;
    const proxy = await startProxy(server.uri, (req, res) => {
      if (!refuseIndex || req.method !== "GET" || !req.url!.includes("cairn-index")) return false;
      req.resume();
      return refuse(res, 500);
    });
    try {
      const name = "evicted-then-unreadable";
      const env = { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: name, ...QUICK };
      const produce = task(`${name}-produce`).run(async (_, ctx) => ({ data: await ctx.artifacts.write("data.txt", "value-1\n") }));
      const consume = task(`${name}-consume`)
        .input<{ data: Artifact }>()
        .run(async ({ data }) => ({ text: (await readFile(data.path, "utf8")).trim() }));
      const flowA = flow(name).build(() => ({ data: produce().data }));
      const flowB = flow(name).build(() => ({ text: consume({ data: produce().data }).text }));

      // Machine A computes produce; the server's copy of its artifact then changes (same size).
      const a = await runCollect(flowA, { root: await tmp(), env, concurrency: 1 });
      expect(a.result.status).toBe("succeeded");
      const source = (await MlflowTracker.fromEnv({}, server.uri).getRun(a.result.tasks[`${name}-produce`]!.runId!))!;
      await writeFile(join(server.dir, "artifacts", source.experimentId, source.runId, "artifacts", "data.txt"), "TAMPERD\n");

      // Machine B hits produce through the index; consume's download does not match: the entry is evicted.
      const b = await runCollect(flowB, { root: await tmp(), env, concurrency: 1 });
      expect(b.result.tasks[`${name}-consume`]!.error!.message).toMatch(/The cache entry that holds it \(task "evicted-then-unreadable-produce", key [0-9a-f]{12}\) was evicted/);

      // Machine C cannot read the index: produce's FINISHED run still carries the key's tag, and must not be hit.
      refuseIndex = true;
      const c = await runCollect(flowB, { root: await tmp(), env, concurrency: 1 });
      expect(Object.fromEntries(Object.entries(c.result.tasks).map(([id, t]) => [id, t.status]))).toEqual({ [`${name}-produce`]: "succeeded", [`${name}-consume`]: "succeeded" });
      expect(c.result.outputs).toEqual({ text: "value-1" });
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

describe("a request retried for long", () => {
  // A full server disk: 8 PUTs over about 4 minutes, with nothing on screen.
  it("is said as it is retried, one info line per retry, through the run's events", async () => {
    let refused = false;
    const proxy = await startProxy(server.uri, (req, res) => {
      if (refused || !req.url!.endsWith("/runs/log-batch")) return false;
      refused = true;
      req.resume();
      return refuse(res, 503, { "retry-after": "5" });
    });
    try {
      const env = { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "retried-long", ...QUICK };
      const run = await runCollect(three("retried-long"), { root: await tmp(), env, concurrency: 1 });
      expect(run.result.status).toBe("succeeded");
      const lines = run.events.filter((e) => e.type === "log" && / retry \d+ of \d+ in \d+ s$/.test(e.message));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: "info" });
      expect((lines[0] as { message: string }).message).toMatch(new RegExp(`^MLflow POST runs/log-batch \\(run \\w+\\) at ${proxy.uri} answered HTTP 503; retry 1 of 2 in 5 s$`));
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

describe("a create that times out while the server still has it queued", () => {
  // The client searched for its create id (nothing yet), sent it again, and the server made both: two runs for one create, one RUNNING for good.
  it("ends the run the first try made as KILLED, tagged a duplicate of the one used, before the flow reports", async () => {
    let held = false;
    const proxy = await startProxy(server.uri, (req) => {
      if (held || !req.url!.endsWith("/runs/create")) return false;
      held = true;
      // Held past the client's 1 s timeout, then carried out: the answer goes nowhere.
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        setTimeout(() => {
          void fetch(`${server.uri}${req.url}`, { method: "POST", headers: { "content-type": "application/json" }, body: Buffer.concat(chunks) });
        }, 1500);
      });
      return true;
    });
    try {
      const env = { MLFLOW_TRACKING_URI: proxy.uri, MLFLOW_EXPERIMENT_NAME: "create-twice", MLFLOW_HTTP_REQUEST_TIMEOUT: "1", ...QUICK };
      const slow = task("slow").run(async () => (await new Promise((r) => setTimeout(r, 2500)), { done: true }));
      const run = await runCollect(flow("create-twice").build(() => ({ done: slow({}).done })), { root: await tmp(), env });
      expect(run.result.status).toBe("succeeded");
      const flowRunId = run.result.runId;
      const experiment = (await (await fetch(`${server.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=create-twice`)).json()) as { experiment: { experiment_id: string } };
      const all = (await (
        await fetch(`${server.uri}/api/2.0/mlflow/runs/search`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ experiment_ids: [experiment.experiment.experiment_id], run_view_type: "ALL" }),
        })
      ).json()) as { runs: { info: { status: string } }[] };
      // The flow's run twice (the held create was carried out), the task's once; none left RUNNING.
      expect(all.runs.map((r) => r.info.status).sort()).toEqual(["FINISHED", "FINISHED", "KILLED"]);
      const found = (await (
        await fetch(`${server.uri}/api/2.0/mlflow/runs/search`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ experiment_ids: [experiment.experiment.experiment_id], filter: "tags.`cairn.duplicate_of` LIKE '%'", run_view_type: "ALL" }),
        })
      ).json()) as { runs?: { info: { run_id: string; status: string }; data: { tags: { key: string; value: string }[] } }[] };
      expect(found.runs).toHaveLength(1);
      const duplicate = found.runs![0]!;
      expect(duplicate.info.run_id).not.toBe(flowRunId);
      expect(duplicate.info.status).toBe("KILLED");
      expect(duplicate.data.tags.find((t) => t.key === "cairn.duplicate_of")?.value).toBe(flowRunId);
      expect(run.warnings.some((w) => w.startsWith(`Run ${duplicate.info.run_id} was a duplicate of run ${flowRunId}`))).toBe(true);
    } finally {
      await proxy.close();
    }
  }, 120_000);
});
