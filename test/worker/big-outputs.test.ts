/**
 * Outputs too large for the queue's Redis (over INLINE_OUTPUTS_BYTES of JSON) travel beside it:
 * a real `cairn worker` leaves them in the task's run in a real MLflow server, and `cairn run
 * --queue` reads them there, while a real redis-server never holds them (not in a job, not in the
 * events stream that keeps the last outcomes). Small outputs still go through Redis. So do large
 * inputs, the other way: through a file of the flow run, which the coordinator removes after.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { cairnRun, jsonLines, tmp } from "../cache/helpers.ts";
import { startWorker, useQueueServers } from "./helpers.ts";

const servers = useQueueServers();
const flowFile = join(import.meta.dirname, "fixtures/big-out.flow.ts");

/** One command to a test's redis-server (the file's unless `url`), through redis-cli (its answers may be megabytes). */
const redisCli = async (url: string, ...args: string[]) => (await promisify(execFile)("redis-cli", ["-u", url, ...args], { maxBuffer: 256 * 1024 * 1024 })).stdout;

/** The keys of a test's Redis whose values (strings, hashes, streams: what BullMQ keeps) hold `text`. */
async function redisKeysHolding(text: string, url = servers.redis.url): Promise<string[]> {
  const holding: string[] = [];
  for (const key of (await redisCli(url, "--scan")).split("\n").filter(Boolean)) {
    const type = (await redisCli(url, "TYPE", key)).trim();
    const read = { string: ["GET", key], hash: ["HGETALL", key], list: ["LRANGE", key, "0", "-1"], stream: ["XRANGE", key, "-", "+"], zset: ["ZRANGE", key, "0", "-1"], set: ["SMEMBERS", key] }[type];
    if (read && (await redisCli(url, ...read)).includes(text)) holding.push(key);
  }
  return holding;
}

/** The artifacts of run `runId` under `path`, as MLflow lists them. */
async function artifactsOf(runId: string, path: string): Promise<string[]> {
  const listed = (await (await fetch(`${servers.mlflow.uri}/api/2.0/mlflow/artifacts/list?run_id=${runId}&path=${encodeURIComponent(path)}`)).json()) as { files?: Array<{ path: string }> };
  return (listed.files ?? []).map((f) => f.path);
}

describe("inputs and outputs too large for the queue's Redis", () => {
  it("a task returning 2 MB on a worker hands its outputs to the coordinator through its MLflow run, never through Redis; a small one's go through Redis", async () => {
    const env = { FLOW_NAME: "big-outputs", MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "big-outputs", BIG_MARK: "big-mark-7c1d", SMALL_MARK: "small-mark-3a9e" };
    servers.workers.push(await startWorker(flowFile, servers.redis.url, ["--root", await tmp()], env));
    const r = await cairnRun(flowFile, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(0);
    const final = r.json.at(-1) as { status: string; outputs: { rows: string[]; count: number; mark: string } };
    expect(final.status).toBe("succeeded");
    expect(final.outputs.count).toBe(20_000);
    expect(final.outputs.rows).toHaveLength(20_000);
    expect(final.outputs.rows[19_999]).toBe(`${"x".repeat(80)}big-mark-7c1d19999`);
    expect(final.outputs.mark).toBe("small-mark-3a9e");
    // The events stream keeps the last outcomes of the queue: the small one's is there, the big one's never was.
    expect(await redisKeysHolding("small-mark-3a9e")).not.toEqual([]);
    expect(await redisKeysHolding("big-mark-7c1d")).toEqual([]);
  }, 180_000);

  it("a task whose inputs are more than Redis takes in one value gets them through its flow run in MLflow, which keeps none of them once the run is over", async () => {
    // Redis's limit, 512 MB by default, lowered to its least (1 MB) for a 2 MB input.
    const redis = await startRedisServer({ args: ["--proto-max-bulk-len", "1mb"] });
    try {
      const env = { FLOW_NAME: "big-inputs", MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "big-inputs", BIG_MARK: "in-mark-5b2e", PASS_ON: "1" };
      servers.workers.push(await startWorker(flowFile, redis.url, ["--root", await tmp()], env));
      const r = await cairnRun(flowFile, await tmp(), ["--queue", redis.url], env).done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { n: 20_000 } });
      // Neither in the job nor in the events stream: the job named the file its inputs were in.
      expect(await redisKeysHolding("in-mark-5b2e", redis.url)).toEqual([]);
      // The file the inputs went through left the flow run once the task's outcome was in.
      expect(await artifactsOf(String(r.json.at(-1)!.runId), "cairn/queued-inputs")).toEqual([]);
    } finally {
      await redis.stop();
    }
  }, 180_000);

  // The file went on every settle, also when the job stayed in Redis: a worker taking it once Redis was back read a 404, and was told to check its reach of MLflow.
  it("a task whose inputs went by reference and whose job may still be in Redis (the coordinator gave it up while Redis was away) keeps its inputs' file", async () => {
    const redis = await startRedisServer();
    try {
      // SECRET_ROWS without a --secrets file: 2 MB of literal rows that carry no secret of the run, so they go by reference. No worker: the jobs wait.
      const env = { FLOW_NAME: "big-inputs-down", MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "big-inputs-down", SECRET_ROWS: "1", SECRET_MARK: "kept-mark", CAIRN_QUEUE_DOWN_MS: "2000" };
      let stdout = "";
      const run = cairnRun(flowFile, await tmp(), ["--queue", redis.url], env, (out) => (stdout = out));
      let runId: string | undefined;
      for (let i = 0; i < 600 && !runId; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const id = jsonLines(stdout).find((e) => e.type === "flow" && typeof e.runId === "string")?.runId as string | undefined;
        if (id && (await artifactsOf(id, "cairn/queued-inputs")).length) runId = id;
      }
      expect(runId, "the inputs file to be written").toBeDefined();
      await redis.stop();
      const r = await run.done;
      expect(r.code).toBe(1);
      // Both tasks wait on the queue: whichever finds it gone first fails, and fail-fast cancels the other (on a loaded machine, either).
      expect(r.json.find((e) => e.type === "task" && e.status === "failed")).toMatchObject({ error: { name: "QueueUnreachableError" } });
      expect(r.json.find((e) => e.type === "task" && e.task === "length" && (e.status === "failed" || e.status === "cancelled"))).toBeDefined();
      expect(await artifactsOf(runId!, "cairn/queued-inputs")).toEqual([expect.stringMatching(/^cairn\/queued-inputs\/length-[0-9a-f]{12}\.json$/)]);
    } finally {
      await redis.stop().catch(() => {});
    }
  }, 180_000);

  it("inputs over Redis's limit that carry a secret of the run are never written to MLflow: the task fails with QueueInputsTooLargeError, which says why they travel in the job", async () => {
    const redis = await startRedisServer({ args: ["--proto-max-bulk-len", "1mb"] });
    try {
      const secret = "sec-mark-8d4f1a";
      const dir = await tmp();
      await writeFile(join(dir, "secrets.env"), `ROW_TOKEN=${secret}\n`);
      const env = { FLOW_NAME: "big-secret-inputs", MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: "big-secret-inputs", SECRET_MARK: secret, SECRET_ROWS: "1" };
      servers.workers.push(await startWorker(flowFile, redis.url, ["--root", await tmp(), "--secrets", join(dir, "secrets.env")], env));
      const r = await cairnRun(flowFile, await tmp(), ["--queue", redis.url, "--secrets", join(dir, "secrets.env")], env).done;
      expect(r.code, r.stderr).toBe(1);
      const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
      expect(failed).toMatchObject({ task: "length", error: { name: "QueueInputsTooLargeError" } });
      expect(failed.error.message).toContain('Task "length" could not be sent to the queue at ');
      expect(failed.error.message).toContain("its inputs carry the value of a secret the run knows, so they travel in its job (never through MLflow");
      expect(failed.error.message).toContain("(its proto-max-bulk-len, 512 MB by default)");
      expect(failed.error.message).toContain("as an artifact (ctx.artifacts.write)");
      expect(await artifactsOf(String(r.json.at(-1)!.runId), "cairn/queued-inputs")).toEqual([]);
    } finally {
      await redis.stop();
    }
  }, 180_000);
});
