/**
 * The items of a map on queue workers end as they did there, whatever the coordinator met on
 * the way (a review's findings, with real processes: redis-server, an MLflow server, `cairn
 * worker`, and the coordinator as a process): an item that ended on its worker before a cancel
 * reached it keeps its end; a job Redis lost keeps the run its worker made, and its outputs.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cairnRun, tmp, tsxScript } from "../cache/helpers.ts";
import { startWorker, useQueueServers } from "./helpers.ts";

/** A real redis-server and mlflow server for the file; the workers a test starts are killed after it. */
const servers = useQueueServers();
const { workers } = servers;

/** Env of one test: its own flow name (its own queues) and experiment. */
const testEnv = (name: string, extra: NodeJS.ProcessEnv = {}) => ({ FLOW_NAME: name, MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: name, ...extra });

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
