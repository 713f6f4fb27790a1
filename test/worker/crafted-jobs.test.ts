/**
 * Jobs a coordinator of this Cairn did not make, put on a queue with BullMQ's own Queue.add (as
 * anyone who reaches the queue's Redis can): one whose cache key is another input's is refused,
 * and nothing is stored under that key; one whose data lacks fields or has wrong types fails with
 * a QueueJobDataError that the worker's log names. Real redis-server, MLflow server, `cairn run
 * --queue` and `cairn worker` processes.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Queue as BullQueue } from "../../packages/worker/node_modules/bullmq/dist/esm/index.js";
import { cairnRun, killGroup, tmp } from "../cache/helpers.ts";
import { startWorker, timesRun, useQueueServers } from "./helpers.ts";

// BullMQ is the worker package's dependency, not the workspace root's: the worker's own copy.
const { Queue } = createRequire(join(import.meta.dirname, "../../packages/worker/package.json"))("bullmq") as { Queue: typeof BullQueue };
type Queue = BullQueue;

const servers = useQueueServers();
const oneFlow = join(import.meta.dirname, "fixtures/one.flow.ts");

/** Resolves once `check` holds, polling. */
async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = await check();
    if (got !== undefined) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The data of the job a real `cairn run --queue -p n=N` sends (no worker takes it; the coordinator is killed once it is sent). */
async function realJobData(queue: Queue, n: number, env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const run = cairnRun(oneFlow, await tmp("cairn-crafted-root-"), ["--queue", servers.redis.url, "-p", `n=${n}`], env);
  try {
    const job = await until(async () => (await queue.getJobs(["wait"])).find((j) => (j.data as { inputs: { n: number } }).inputs.n === n), `the job of n=${n}`);
    await job.remove();
    return job.data as Record<string, unknown>;
  } finally {
    killGroup(run.child);
    await run.done;
  }
}

describe("jobs no coordinator of this Cairn made", () => {
  it("a job whose cache key is another input's is refused, and no result is stored under that key", async () => {
    const markerDir = await tmp("cairn-crafted-marks-");
    const env = { FLOW_NAME: "crafted-key", MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "crafted-key", MARKER_DIR: markerDir };
    const queue = new Queue("cairn.crafted-key.default", { connection: { url: servers.redis.url } });
    try {
      const [seven, thousand] = [await realJobData(queue, 7, env), await realJobData(queue, 1000, env)];
      // The job of n=1000, under the key of n=7.
      const forged = { ...thousand, key: seven.key };
      expect((forged.key as { key: string }).key).not.toBe((thousand.key as { key: string }).key);
      await queue.add("only", forged, { jobId: "forged-1" });
      const worker = await startWorker(oneFlow, servers.redis.url, ["--root", await tmp("cairn-crafted-worker-")], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "300" });
      servers.workers.push(worker);
      const done = await until(async () => {
        const job = await queue.getJob("forged-1");
        return job && (await job.isCompleted()) ? job : undefined;
      }, "the forged job to end");
      const outcome = done.returnvalue as { ok: boolean; error?: { name: string; message: string } };
      expect(outcome.ok).toBe(false);
      expect(outcome.error?.name).toBe("CacheKeyMismatchError");
      expect(outcome.error?.message).toContain(`expected cache key ${(thousand.key as { key: string }).key} for the inputs its job carries`);
      expect(outcome.error?.message).toContain(`the job says ${(seven.key as { key: string }).key} (its record differs in input "n")`);
      expect(outcome.error?.message).toContain("altered in the queue's Redis");
      expect(await timesRun(markerDir, "only")).toBe(0);
      expect(worker.log()).toMatch(/task only refused: the cache key its inputs make here \(\w+\) is not the job's/);
      // The user's own run of n=7 finds nothing under its key: it runs the task, and gets 7.
      const mine = await cairnRun(oneFlow, await tmp("cairn-crafted-root-"), ["-p", "n=7"], env).done;
      expect(mine.code, mine.stderr).toBe(0);
      expect(mine.json.filter((e) => e.type === "task" && e.task === "only").map((e) => e.status)).not.toContain("cached");
      expect(mine.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded", outputs: { n: 7 } });
      expect(await timesRun(markerDir, "only")).toBe(1);
    } finally {
      await queue.close();
    }
  }, 180_000);

  it("a job with missing or mistyped fields fails with a QueueJobDataError naming them, said on the worker's log", async () => {
    const env = { FLOW_NAME: "crafted-shape", MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "crafted-shape" };
    const queue = new Queue("cairn.crafted-shape.default", { connection: { url: servers.redis.url } });
    try {
      const real = await realJobData(queue, 3, env);
      const { tracker: _, ...noTracker } = real;
      await queue.add("only", noTracker, { jobId: "no-tracker" });
      await queue.add("only", { ...real, code: null }, { jobId: "code-null" });
      await queue.add("only", { ...real, nodeId: 5, inputs: [] }, { jobId: "wrong-types" });
      const worker = await startWorker(oneFlow, servers.redis.url, ["--root", await tmp("cairn-crafted-worker-")], env);
      servers.workers.push(worker);
      const reasons: Record<string, string> = {};
      for (const id of ["no-tracker", "code-null", "wrong-types"]) {
        reasons[id] = await until(async () => {
          const job = await queue.getJob(id);
          return job && (await job.isFailed()) ? job.failedReason : undefined;
        }, `job ${id} to fail`);
      }
      expect(reasons["no-tracker"]).toContain("Expected job no-tracker of queue cairn.crafted-shape.default to be a task that `cairn run --queue` of Cairn");
      expect(reasons["no-tracker"]).toContain("`tracker` is missing, expected an object { kind, uri } of strings");
      expect(reasons["code-null"]).toContain("`code` is null, expected an object { code: string, taskVersion: string or null, ... }");
      expect(reasons["wrong-types"]).toContain("`nodeId` is a number, expected a non-empty string; `inputs` is an array, expected an object");
      for (const id of ["no-tracker", "code-null", "wrong-types"]) {
        expect(worker.log()).toContain(`job ${id} of cairn.crafted-shape.default refused: Expected job ${id} `);
      }
      expect(worker.log()).not.toContain("TypeError");
    } finally {
      await queue.close();
    }
  }, 180_000);
});
