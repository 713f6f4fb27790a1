/**
 * `cairn run --queue` with `cairn worker` processes, all real: redis-server, an MLflow server,
 * workers as child processes on 127.0.0.1. A flow spread over workers ends as it does in one
 * process, in its outputs and its MLflow record; pools route tasks; a worker killed mid-task
 * costs nothing but time; a coordinator killed is re-run from the cache; a worker whose code
 * differs refuses the task; a cancel reaches a worker's task; and each user error says what to do.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
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

interface Shown {
  run: { status: string; name: string };
  tasks: Array<{ name: string; status: string; params: Record<string, string>; tags: Record<string, string> }>;
}

/** Env of one test: its own flow name (its own queues), experiment and markers. */
async function testEnv(name: string, extra: NodeJS.ProcessEnv = {}) {
  const markerDir = await tmp("cairn-queue-marks-");
  return { markerDir, env: { FLOW_NAME: name, MLFLOW_TRACKING_URI: mlflow.uri, MLFLOW_EXPERIMENT_NAME: name, MARKER_DIR: markerDir, ...extra } };
}

async function spawnWorkers(n: number, env: NodeJS.ProcessEnv, args: string[] = []): Promise<StartedWorker[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startWorker(spreadFlow, redis.url, ["--root", await tmp("cairn-worker-root-"), ...args], env)));
  workers.push(...started);
  return started;
}

const show = async (runId: string, env: NodeJS.ProcessEnv, experiment: string) => {
  const r = await start(process.execPath, [cairnBin, "show", runId, "--json", "--experiment", experiment], { env: childEnv(env) }).done;
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Shown;
};

/** What a run records that does not depend on where it ran: task names, statuses, inputs (an artifact's run id aside). */
const record = (shown: Shown) =>
  shown.tasks
    .map((t) => ({ name: t.name, status: t.status, params: Object.fromEntries(Object.entries(t.params).map(([k, v]) => [k, v.replace(/runs:\/[0-9a-f]+\//, "runs:/<run>/")])) }))
    .sort((a, b) => a.name.localeCompare(b.name));

describe("cairn run --queue", () => {
  it("spreads a flow over 3 workers, with the same outputs and MLflow record as in one process", async () => {
    const { env, markerDir } = await testEnv("queue-spread", { SLEEP_MS: "500" });
    const spawned = await spawnWorkers(3, env);
    const queued = await cairnRun(spreadFlow, await tmp(), ["--queue", redis.url], env).done;
    expect(queued.code, queued.stderr).toBe(0);
    const final = queued.json.at(-1)!;
    expect(final).toMatchObject({ type: "flow", status: "succeeded", outputs: { total: 4 + 9 + 16 + "a=4 b=9\n".length } });

    // Every task ran on a worker, none in the coordinator, and more than one worker took some.
    const ran = await markers(markerDir);
    const workerPids = new Set(spawned.map((w) => w.child.pid!));
    expect(Object.keys(ran).sort()).toEqual(["g1", "hold", "report", "s1", "s2", "sum"]);
    for (const pids of Object.values(ran)) for (const pid of pids) expect(workerPids.has(pid)).toBe(true);
    expect(new Set(Object.values(ran).flat()).size).toBeGreaterThan(1);

    // The same flow in one process, in another experiment: the same outputs and the same record.
    const { env: localEnv } = await testEnv("queue-spread-local", { SLEEP_MS: "0", FLOW_NAME: "queue-spread" });
    const local = await cairnRun(spreadFlow, await tmp(), [], localEnv).done;
    expect(local.code, local.stderr).toBe(0);
    expect(local.json.at(-1)!.outputs).toEqual(final.outputs);
    const queuedShown = await show(String(final.runId), env, "queue-spread");
    const localShown = await show(String(local.json.at(-1)!.runId), localEnv, "queue-spread-local");
    expect(queuedShown.run.status).toBe(localShown.run.status);
    expect(record(queuedShown)).toEqual(record(localShown));
    expect(record(queuedShown).map((t) => t.status)).toEqual(Array(6).fill("FINISHED"));
  }, 180_000);
});
