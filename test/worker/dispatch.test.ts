/**
 * The coordinator's side of `cairn run --queue` (dispatcher.ts, TaskPipeline.dispatch), with
 * real processes: redis-server, an MLflow server, `cairn worker` and `cairn run --queue`. What a
 * worker sends back is checked for the run's secrets; the runs of a dead worker are closed with
 * a reason, also when the flow is cancelled; a worker that died is said on the coordinator; jobs
 * leave Redis once their outcome is in; no false "No live worker" after Redis lost its data; and
 * `cairn worker --healthcheck` fails for a worker that stopped beating.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, cairnRun, childEnv, start, tmp } from "../cache/helpers.ts";
import { markers, spreadFlow, type StartedWorker, startWorker } from "./helpers.ts";

let redis: RedisServer;
let mlflow: MlflowServer;
const workers: StartedWorker[] = [];

beforeAll(async () => {
  [redis, mlflow] = await Promise.all([startRedisServer(), startMlflowServer()]);
}, 180_000);
afterEach(async () => {
  for (const w of workers.splice(0)) {
    w.kill("SIGKILL");
    await w.done;
  }
});
afterAll(async () => {
  await Promise.all([redis?.stop(), mlflow?.stop()]);
});

/** Env of one test: its own flow name (its own queues), experiment and markers. */
async function testEnv(name: string, extra: NodeJS.ProcessEnv = {}) {
  const markerDir = await tmp("cairn-dispatch-marks-");
  return { markerDir, env: { FLOW_NAME: name, MLFLOW_TRACKING_URI: mlflow.uri, MLFLOW_EXPERIMENT_NAME: name, MARKER_DIR: markerDir, ...extra } };
}

async function spawnWorkers(n: number, env: NodeJS.ProcessEnv, file = spreadFlow, url = redis.url): Promise<StartedWorker[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startWorker(file, url, ["--root", await tmp("cairn-worker-root-")], env)));
  workers.push(...started);
  return started;
}

/** Resolves once `check` holds, polling. */
async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One command to the Redis at `url`, through redis-cli (installed with redis-server). */
async function redisCli(url: string, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)("redis-cli", ["-u", url, "--no-raw", ...args]);
  return stdout.trim();
}

/** The keys of the jobs of `flow`'s default queue: `bull:<queue>:<flowRunId>.<digest>`. */
async function jobKeys(url: string, flow: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)("redis-cli", ["-u", url, "--scan", "--pattern", `bull:cairn.${flow}.default:*`]);
  return stdout.split("\n").filter((k) => /:[^:]+\.[0-9a-f]{20}$/.test(k));
}

/** A task run as the MLflow server has it, read from its REST API (not through `cairn show`, which closes a dead process's runs itself). */
interface MlflowRun {
  name: string;
  status: string;
  tags: Record<string, string>;
}
async function mlflowRuns(experiment: string): Promise<MlflowRun[]> {
  const got = (await (await fetch(`${mlflow.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(experiment)}`)).json()) as { experiment: { experiment_id: string } };
  const found = (await (
    await fetch(`${mlflow.uri}/api/2.0/mlflow/runs/search`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ experiment_ids: [got.experiment.experiment_id], max_results: 1000 }) })
  ).json()) as { runs?: Array<{ info: { run_name: string; status: string }; data: { tags?: Array<{ key: string; value: string }> } }> };
  return (found.runs ?? []).map((r) => ({ name: r.info.run_name, status: r.info.status, tags: Object.fromEntries((r.data.tags ?? []).map((t) => [t.key, t.value])) }));
}

describe("what the coordinator does with a worker's answer", () => {
  it("outputs a worker sends back that carry a secret of the coordinator's --secrets file fail the task with SecretLeakError, and the value is never printed", async () => {
    const secret = "tok-9f8e7d6c5b4a";
    const { env } = await testEnv("dispatch-secret");
    const file = join(import.meta.dirname, "fixtures/conf.flow.ts");
    const secrets = join(await tmp(), "secrets.env");
    await writeFile(secrets, `API_TOKEN=${secret}\n`);
    // The worker has the secret in its environment, as the README says to give it; the task never asks for it.
    await spawnWorkers(1, { ...env, API_TOKEN: secret, CONF_VAL: secret }, file);
    const r = await cairnRun(file, await tmp(), ["--queue", redis.url, "--secrets", secrets], env).done;
    expect(r.code, r.stderr).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.task === "leak" && e.status === "failed") as { error: { name: string; message: string } } | undefined;
    expect(failed?.error.name, JSON.stringify(r.json)).toBe("SecretLeakError");
    expect(failed?.error.message).toContain(`Task "leak"`);
    expect(failed?.error.message).toContain(`"API_TOKEN"`);
    expect(r.json.at(-1)).toMatchObject({ type: "flow", status: "failed" });
    expect(r.stdout + r.stderr).not.toContain(secret);
  }, 120_000);
});


