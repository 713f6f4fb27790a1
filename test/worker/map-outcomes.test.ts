/**
 * The items of a map on queue workers end as they did there, whatever the coordinator met on
 * the way (a review's findings, with real processes: redis-server, an MLflow server, `cairn
 * worker`, and the coordinator as a process): an item that ended on its worker before a cancel
 * reached it keeps its end; a job Redis lost keeps the run its worker made, and its outputs.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { cairnRun, tmp, tsxScript } from "../cache/helpers.ts";
import { startWorker, useQueueServers } from "./helpers.ts";

/** A real redis-server and mlflow server for the file; the workers a test starts are killed after it. */
const servers = useQueueServers();
const { workers } = servers;

/** Env of one test: its own flow name (its own queues) and experiment. */
const testEnv = (name: string, extra: NodeJS.ProcessEnv = {}) => ({ FLOW_NAME: name, MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: name, ...extra });

/** Resolves once `check` holds, polling. */
async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The task runs of experiment `name` as the MLflow server has them (its REST API). */
async function taskRuns(name: string): Promise<Array<{ runId: string; status: string; tags: Record<string, string> }>> {
  const post = async (path: string, body: unknown) => (await fetch(`${servers.mlflow.uri}/api/2.0/mlflow/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })).json();
  const got = (await (await fetch(`${servers.mlflow.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=${name}`)).json()) as { experiment?: { experiment_id: string } };
  if (!got.experiment) return [];
  const found = (await post("runs/search", { experiment_ids: [got.experiment.experiment_id], max_results: 1000 })) as { runs?: Array<{ info: { run_id: string; status: string }; data: { tags?: Array<{ key: string; value: string }> } }> };
  return (found.runs ?? []).map((r) => ({ runId: r.info.run_id, status: r.info.status, tags: Object.fromEntries((r.data.tags ?? []).map((t) => [t.key, t.value])) }));
}

describe("an item that ended on its worker before the cancel reached it", () => {
  // Before: both were removed from the queue as if never run, and said cancelled ("work[1] cancelled"), while their runs said FAILED or FINISHED.
  it("under fail-fast, an item that failed on its own is failed with its own error, and one that succeeded is succeeded, though the coordinator had not read their end yet", async () => {
    const env = testEnv("map-late-end");
    const file = join(import.meta.dirname, "fixtures/late-end.flow.ts");
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp(), "--concurrency", "3"], env));
    const app = join(import.meta.dirname, "fixtures/app-late-end.ts");
    const r = await tsxScript(app, [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp(), HOLD_EXCEPT: "item fail failed", HOLD_MS: "4000" }).done;
    expect(r.code, r.stderr).toBe(0);
    const { status, tasks } = r.json.at(-1) as { status: string; tasks: Record<string, { status: string; error?: string }> };
    expect(status).toBe("failed");
    expect(tasks["item[0]"]).toMatchObject({ status: "failed", error: expect.stringContaining("item fail failed on its own") });
    expect(tasks["item[1]"]).toMatchObject({ status: "succeeded" });
    expect(tasks["item[2]"]).toMatchObject({ status: "failed", error: expect.stringContaining("item bad failed on its own") });
  }, 120_000);
});

describe("many jobs in flight", () => {
  // Before: "MaxListenersExceededWarning: Possible EventEmitter memory leak detected. 11 closing listeners added to [Queue]" (BullMQ's waitUntilFinished adds one per job).
  it("--concurrency 12 with 12 items in flight on a worker that takes 12: no MaxListenersExceededWarning, and every item's outputs", async () => {
    const env = testEnv("map-wide");
    const file = join(import.meta.dirname, "fixtures/wide-map.flow.ts");
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp(), "--concurrency", "12"], env));
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "--concurrency", "12"], env).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { ys: [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22].map((y) => ({ y })) } });
    expect(r.stderr).not.toContain("MaxListenersExceededWarning");
  }, 120_000);
});

describe("a Redis restarted without its data while items ran", () => {
  // Before: each item whose job Redis lost failed with QueueJobLostError ("The queue no longer has the job") though its worker's run was FINISHED,
  // and the items cancelled after it got a second, KILLED run the coordinator made.
  it("items that finished on their worker meanwhile succeed from their worker's run, with its outputs, and each item has that one run", async () => {
    const own = await startRedisServer();
    let again: ReturnType<typeof spawn> | undefined;
    try {
      const holdFile = join(await tmp(), "go");
      const env = testEnv("map-lost-finished", { HOLD_FILE: holdFile, CAIRN_QUEUE_DOWN_MS: "60000" });
      const file = join(import.meta.dirname, "fixtures/held-map.flow.ts");
      workers.push(await startWorker(file, own.url, ["--root", await tmp(), "--concurrency", "2"], env));
      const run = cairnRun(file, await tmp(), ["--queue", own.url], env);
      const items = async () => (await taskRuns("map-lost-finished")).filter((t) => t.tags["cairn.node_id"]?.startsWith("held["));
      await until(async () => (await items()).length === 2, "both items to start on the worker");
      // Redis goes, with its data; the items finish on the worker meanwhile; Redis comes back empty on its port.
      await own.stop();
      await writeFile(holdFile, "");
      await until(async () => (await items()).filter((t) => t.status === "FINISHED").length === 2, "both items' runs to finish");
      again = spawn("redis-server", ["--port", String(own.port), "--save", "", "--appendonly", "no"], { stdio: "ignore" });
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { ys: [{ y: "A" }, { y: "B" }] } });
      const runs = await items();
      expect(runs.map((t) => [t.tags["cairn.node_id"], t.status]).sort()).toEqual([
        ["held[0]", "FINISHED"],
        ["held[1]", "FINISHED"],
      ]);
      for (const t of runs) expect(r.json.find((e) => e.type === "task" && e.task === t.tags["cairn.node_id"] && e.status === "succeeded")).toMatchObject({ taskRunId: t.runId });
    } finally {
      again?.kill("SIGKILL");
      await own.stop().catch(() => {});
    }
  }, 180_000);

  // Before: the cancel found no job to take back, waited CAIRN_QUEUE_DOWN_MS, and the coordinator made a second, KILLED run for each item beside its worker's.
  it("Ctrl-C once it is back: items still running on their worker are cancelled with their worker's run, and the coordinator makes no second run", async () => {
    const own = await startRedisServer();
    let again: ReturnType<typeof spawn> | undefined;
    try {
      const env = testEnv("map-lost-cancel", { HOLD_FILE: join(await tmp(), "never"), CAIRN_QUEUE_DOWN_MS: "20000" });
      const file = join(import.meta.dirname, "fixtures/held-map.flow.ts");
      workers.push(await startWorker(file, own.url, ["--root", await tmp(), "--concurrency", "2"], env));
      const run = cairnRun(file, await tmp(), ["--queue", own.url], env);
      const items = async () => (await taskRuns("map-lost-cancel")).filter((t) => t.tags["cairn.node_id"]?.startsWith("held["));
      await until(async () => (await items()).length === 2, "both items to start on the worker");
      await own.stop();
      again = spawn("redis-server", ["--port", String(own.port), "--save", "", "--appendonly", "no"], { stdio: "ignore" });
      run.child.kill("SIGINT");
      const r = await run.done;
      expect(r.code, r.stderr).toBe(130);
      const runs = await items();
      expect(runs.map((t) => t.tags["cairn.node_id"]).sort()).toEqual(["held[0]", "held[1]"]);
      for (const t of runs) expect(r.json.find((e) => e.type === "task" && e.task === t.tags["cairn.node_id"] && e.status === "cancelled")).toMatchObject({ taskRunId: t.runId });
    } finally {
      again?.kill("SIGKILL");
      await own.stop().catch(() => {});
    }
  }, 180_000);
});
