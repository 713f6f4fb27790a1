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
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { cairnBin, cairnRun, childEnv, start, tmp } from "../cache/helpers.ts";
import { markers, spreadFlow, type StartedWorker, startWorker, timesRun, useQueueServers } from "./helpers.ts";

const clockStep = new URL("../../packages/cache/test/fixtures/skew-clock.mjs", import.meta.url).pathname;

/** A real redis-server and mlflow server for the file; the workers a test starts are killed after it. */
const servers = useQueueServers();
const { workers } = servers;

/** Env of one test: its own flow name (its own queues), experiment and markers. */
async function testEnv(name: string, extra: NodeJS.ProcessEnv = {}) {
  const markerDir = await tmp("cairn-dispatch-marks-");
  return { markerDir, env: { FLOW_NAME: name, MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: name, MARKER_DIR: markerDir, ...extra } };
}

async function spawnWorkers(n: number, env: NodeJS.ProcessEnv, file = spreadFlow, url = servers.redis.url): Promise<StartedWorker[]> {
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
  runId: string;
  name: string;
  status: string;
  tags: Record<string, string>;
}
async function mlflowRuns(experiment: string): Promise<MlflowRun[]> {
  const got = (await (await fetch(`${servers.mlflow.uri}/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(experiment)}`)).json()) as { experiment: { experiment_id: string } };
  const found = (await (
    await fetch(`${servers.mlflow.uri}/api/2.0/mlflow/runs/search`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ experiment_ids: [got.experiment.experiment_id], max_results: 1000 }) })
  ).json()) as { runs?: Array<{ info: { run_id: string; run_name: string; status: string }; data: { tags?: Array<{ key: string; value: string }> } }> };
  return (found.runs ?? []).map((r) => ({ runId: r.info.run_id, name: r.info.run_name, status: r.info.status, tags: Object.fromEntries((r.data.tags ?? []).map((t) => [t.key, t.value])) }));
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
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "--secrets", secrets], env).done;
    expect(r.code, r.stderr).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.task === "leak" && e.status === "failed") as { error: { name: string; message: string } } | undefined;
    expect(failed?.error.name, JSON.stringify(r.json)).toBe("SecretLeakError");
    expect(failed?.error.message).toContain(`Task "leak"`);
    expect(failed?.error.message).toContain(`"API_TOKEN"`);
    expect(r.json.at(-1)).toMatchObject({ type: "flow", status: "failed" });
    expect(r.stdout + r.stderr).not.toContain(secret);
  }, 120_000);

  it("a finished run leaves none of its jobs (inputs, outputs) in Redis, and the queue's events stream is kept short", async () => {
    const { env } = await testEnv("dispatch-clean");
    await spawnWorkers(1, env);
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { total: 37 } });
    expect(await jobKeys(servers.redis.url, "dispatch-clean")).toEqual([]);
    expect(await redisCli(servers.redis.url, "HGET", "bull:cairn.dispatch-clean.default:meta", "opts.maxLenEvents")).toBe('"1000"');
    // Why each task missed, as the coordinator's lookup saw it, is on the run the worker recorded.
    const ran = (await mlflowRuns("dispatch-clean")).filter((t) => t.tags["cairn.ran_because"] === "miss");
    expect(ran.length).toBeGreaterThan(0);
    for (const t of ran) expect(JSON.parse(t.tags["cairn.miss_reason"] ?? "{}"), t.name).toMatchObject({ kind: "new" });
  }, 120_000);
});

describe("dead workers, as the coordinator sees them", () => {
  it("a worker killed mid-task, then the flow cancelled before another takes the task: its run is closed KILLED with the reason, none stays RUNNING, and explain says its key was interrupted by its worker", async () => {
    const holdFile = join(await tmp(), "never");
    const { env, markerDir } = await testEnv("dispatch-dead-cancel", { HOLD_FILE: holdFile, CAIRN_QUEUE_LOCK_MS: "5000", CAIRN_QUEUE_DOWN_MS: "20000" });
    const [worker] = await spawnWorkers(1, env);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    // Its run is noted on the job before the worker dies (JobProgress.runIds).
    await until(async () => {
      for (const key of await jobKeys(servers.redis.url, "dispatch-dead-cancel")) if ((await redisCli(servers.redis.url, "HGET", key, "progress")).includes("runIds")) return true;
      return false;
    }, "hold's run noted on its job");
    const pid = worker!.child.pid!;
    worker!.kill("SIGKILL");
    await worker!.done;
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code, r.stderr).toBe(130);
    expect(r.json.at(-1)).toMatchObject({ type: "flow", status: "cancelled" });
    const runs = await mlflowRuns("dispatch-dead-cancel");
    expect(runs.filter((t) => t.status === "RUNNING")).toEqual([]);
    const dead = runs.find((t) => t.name === "hold" && t.tags["cairn.abandoned"]);
    expect(dead?.status).toBe("KILLED");
    expect(dead?.tags["cairn.abandoned"]).toMatch(new RegExp(`^Its worker \\(\\S+, pid ${pid} on \\S+\\) stopped answering while it ran task "hold"`));
    expect(dead?.tags["cairn.abandoned"]).toContain("the flow run was cancelled before another worker took the task");
    // One run for the task: the worker's, which the flow run shows, not a second one of the coordinator's.
    expect(runs.filter((t) => t.name === "hold").map((t) => t.runId)).toEqual([dead!.runId]);
    expect(r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "cancelled")).toMatchObject({ taskRunId: dead!.runId });
    // Its key is where plan looks, copied in the write that closed it; explain then says the key
    // was interrupted by its worker's death. Before: no cairn.failed_key, and the key was new.
    expect(dead!.tags["cairn.failed_key"]).toMatch(/^[0-9a-f]{64}$/);
    expect(dead!.tags["cairn.failed_key"]).toBe(dead!.tags["cairn.key"]);
    const explained = await start(process.execPath, [cairnBin, "explain", spreadFlow, "hold", "--root", await tmp()], { env: childEnv(env) }).done;
    expect(explained.code, explained.stderr).toBe(0);
    expect(explained.stdout).toContain(`A run with these inputs and code was interrupted: run ${dead!.runId}, started `);
    expect(explained.stdout).toContain(`; its queue worker ${dead!.tags["cairn.worker"]} stopped without closing it, and the coordinator or another worker closed it; no entry is stored for them.`);
    // The wait for the dead worker's lock is said, not sat through in silence.
    expect(r.stderr).toMatch(/Cancelling: the worker running task "hold" has not stopped yet; waiting for it to, or for its lock to lapse if it died \(CAIRN_QUEUE_LOCK_MS\), 1\d s more at most \(CAIRN_QUEUE_DOWN_MS\)\./);
  }, 120_000);

  it("a dead worker's task is sent again within 1.1 times CAIRN_QUEUE_LOCK_MS of its death, not up to twice the lock", async () => {
    const lockMs = 8000;
    const { env, markerDir } = await testEnv("dispatch-resend-delay", { CAIRN_QUEUE_LOCK_MS: String(lockMs), CAIRN_QUEUE_MAX_DEATHS: "3" });
    // The first worker dies as `hold` starts; the second starts 2 s later, so that its stalled
    // checks (BullMQ's) begin after the death, as on a fleet whose check came just before it.
    const [dying] = await spawnWorkers(1, { ...env, KILL_WORKER: "1" });
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    const died = Date.now();
    await dying!.done;
    await new Promise((r) => setTimeout(r, 2000));
    const [next] = await spawnWorkers(1, env);
    await next!.waitFor(/task hold started/, 60_000);
    const delay = Date.now() - died;
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    // The lock lapses at most lockMs after the death, a check sees it within a tenth of that; the rest is the new worker's start of the task.
    expect(delay).toBeLessThan(lockMs * 1.1 + 1500);
  }, 120_000);

  it("a task whose workers die: the coordinator says the task is sent again, and the run it closes FAILED says why", async () => {
    const { env } = await testEnv("dispatch-poison", { KILL_WORKER: "1", CAIRN_QUEUE_LOCK_MS: "1000", CAIRN_QUEUE_MAX_DEATHS: "2" });
    const spawned = await spawnWorkers(3, env);
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const pids = spawned.map((w) => w.child.pid!);
    // Once: after the first death the task is sent again; after the second it is given up (PoisonTaskError says so).
    const warnings = r.stderr.split("\n").filter((l) => l.includes("stopped answering"));
    expect(warnings, r.stderr).toHaveLength(1);
    expect(warnings[0]).toMatch(/^\[hold\] The worker running task "hold" \(pid (\d+) on \S+\) stopped answering for longer than its lock \(CAIRN_QUEUE_LOCK_MS\), killed or crashed: task "hold" is sent again, to the next worker that takes it\.$/);
    expect(pids).toContain(Number(/pid (\d+)/.exec(warnings[0]!)![1]));
    const holds = (await mlflowRuns("dispatch-poison")).filter((t) => t.name === "hold");
    expect(holds.map((t) => t.status)).toEqual(["FAILED", "FAILED"]);
    const closed = holds.find((t) => t.tags["cairn.abandoned"]?.includes("given up as a poison task"));
    expect(closed?.tags["cairn.abandoned"], JSON.stringify(holds)).toMatch(/^Its worker \(\S+, pid \d+ on \S+\) stopped answering while it ran task "hold" \(killed, crashed, or cut off from Redis for longer than CAIRN_QUEUE_LOCK_MS\), and the task was given up as a poison task \(PoisonTaskError\)\. Closed as FAILED by the coordinator/);
  }, 120_000);
});

describe("a Redis that stops answering (SIGSTOP) while tasks run", () => {
  it("the coordinator fails the waiting tasks with QueueUnreachableError once Redis gave no answer for CAIRN_QUEUE_DOWN_MS, while it is still stopped", async () => {
    const own = await startRedisServer();
    try {
      const holdFile = join(await tmp(), "never");
      const { env, markerDir } = await testEnv("dispatch-hung", { HOLD_FILE: holdFile, CAIRN_QUEUE_DOWN_MS: "3000" });
      await spawnWorkers(1, env, spreadFlow, own.url);
      let out = "";
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env, (o) => (out = o));
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      own.signal("SIGSTOP");
      const stopped = Date.now();
      // Its connection stays open: only an unanswered request tells.
      await until(() => /"status":"failed","runId":"[^"]+","task":"hold"/.test(out), "hold to fail while Redis is stopped", 20_000);
      expect(Date.now() - stopped).toBeLessThan(10_000);
      own.signal("SIGCONT");
      const r = await run.done;
      expect(r.code).toBe(1);
      const failed = r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "failed") as { error: { name: string; message: string } };
      expect(failed.error.name).toBe("QueueUnreachableError");
      expect(failed.error.message).toContain("connected, but no answer for 3 s: the server is stopped or hung");
    } finally {
      own.signal("SIGCONT");
      await own.stop().catch(() => {});
    }
  }, 120_000);

  it("a worker whose lock lapsed while Redis did not answer is not said to have died: the message says Redis did not answer", async () => {
    const own = await startRedisServer();
    try {
      const holdFile = join(await tmp(), "go");
      const { env, markerDir } = await testEnv("dispatch-hung-lock", { HOLD_FILE: holdFile, CAIRN_QUEUE_LOCK_MS: "2000", CAIRN_QUEUE_DOWN_MS: "60000" });
      await spawnWorkers(1, env, spreadFlow, own.url);
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env);
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      own.signal("SIGSTOP");
      await new Promise((r) => setTimeout(r, 4000));
      own.signal("SIGCONT");
      await new Promise((r) => setTimeout(r, 3000));
      await writeFile(holdFile, "go");
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      const said = r.stderr.split("\n").filter((l) => l.includes("sent again"));
      expect(said, r.stderr).toHaveLength(1);
      expect(said[0]).toMatch(/^\[hold\] The lock of the worker running task "hold" \(pid \d+ on \S+\) lapsed while the queue's Redis \(redis:\/\/[^)]+\) did not answer for [4-9] s \(stopped, hung or overloaded\), so the worker could not renew it; it may well be alive/);
      expect(r.stderr).not.toContain("killed or crashed");
    } finally {
      own.signal("SIGCONT");
      await own.stop().catch(() => {});
    }
  }, 120_000);
});

describe("a wall clock that steps forward (NTP, a laptop waking) while Redis does not answer", () => {
  it("the coordinator still waits CAIRN_QUEUE_DOWN_MS of elapsed time: the task ends as its worker ran it", async () => {
    const own = await startRedisServer();
    try {
      const dir = await tmp();
      const holdFile = join(dir, "go");
      const stepFile = join(dir, "step");
      const { env, markerDir } = await testEnv("dispatch-clock-step", { HOLD_FILE: holdFile, CAIRN_QUEUE_DOWN_MS: "20000" });
      await spawnWorkers(1, env, spreadFlow, own.url);
      // Only the coordinator's clock steps, by an hour, while Redis is stopped.
      const preload = `${pathToFileURL(clockStep).href}?ms=${3600_000}&file=${encodeURIComponent(stepFile)}`;
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], { ...env, NODE_OPTIONS: `--import ${preload}` });
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      own.signal("SIGSTOP");
      await new Promise((r) => setTimeout(r, 1000));
      await writeFile(stepFile, "");
      await new Promise((r) => setTimeout(r, 4000));
      own.signal("SIGCONT");
      await writeFile(holdFile, "go");
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toContain("QueueUnreachableError");
      expect(r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "succeeded")).toBeDefined();
    } finally {
      own.signal("SIGCONT");
      await own.stop().catch(() => {});
    }
  }, 120_000);
});

describe("a Redis that stops answering for less than CAIRN_QUEUE_DOWN_MS", () => {
  it("a live worker whose lock lapsed meanwhile: its result is taken when it finishes, and no other worker runs the task a second time", async () => {
    const own = await startRedisServer();
    try {
      const holdFile = join(await tmp(), "go");
      const { env, markerDir } = await testEnv("dispatch-frozen-once", { HOLD_FILE: holdFile, CAIRN_QUEUE_LOCK_MS: "2000", CAIRN_QUEUE_DOWN_MS: "60000" });
      // Two: the idle one takes the job as soon as its lock has lapsed, while the first still runs it.
      const spawned = await spawnWorkers(2, env, spreadFlow, own.url);
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env);
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      own.signal("SIGSTOP");
      await new Promise((r) => setTimeout(r, 4000));
      own.signal("SIGCONT");
      // The idle worker takes the job again (its lock lapsed), while the first still runs the task.
      await until(() => spawned.some((w) => /task hold waiting: worker \S+ still runs it \(its lock lapsed\); its outcome is taken when it ends/.test(w.log())) || (markers(markerDir).then((m) => (m.hold?.length ?? 0) > 1)), "hold taken again", 10_000);
      // Put off and taken again meanwhile, more than once.
      await new Promise((r) => setTimeout(r, 5000));
      await writeFile(holdFile, "go");
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      expect(await timesRun(markerDir, "hold"), spawned.map((w) => w.log()).join("\n---\n")).toBe(1);
      const holds = (await mlflowRuns("dispatch-frozen-once")).filter((t) => t.name === "hold");
      expect(holds.map((t) => t.status)).toEqual(["FINISHED"]);
      expect(r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "succeeded")).toMatchObject({ taskRunId: holds[0]!.runId });
      // Handed on by the job's next taker, and gone from Redis once the job completed.
      expect(spawned.map((w) => w.log()).join("\n")).toMatch(/task hold reused: the outcome of worker \S+, which ran it while its lock lapsed/);
      expect(await redisCli(own.url, "--scan", "--pattern", "cairn:outcome:*")).toBe("");
    } finally {
      own.signal("SIGCONT");
      await own.stop().catch(() => {});
    }
  }, 120_000);
});

describe("Redis that loses its data, and --healthcheck", () => {
  it("a task whose job Redis lost fails with QueueJobLostError alone: no warning that no worker takes its pool", async () => {
    const own = await startRedisServer();
    try {
      const holdFile = join(await tmp(), "never");
      const { env, markerDir } = await testEnv("dispatch-lost", { HOLD_FILE: holdFile });
      const [worker] = await spawnWorkers(1, env, spreadFlow, own.url);
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env);
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      // The worker cannot write its heartbeat again before the coordinator looks: as after a restart, before its next beat.
      worker!.kill("SIGSTOP");
      await redisCli(own.url, "FLUSHALL");
      const r = await run.done;
      expect(r.code).toBe(1);
      const failed = r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "failed") as { error: { name: string }; taskRunId?: string };
      expect(failed.error.name).toBe("QueueJobLostError");
      expect(r.stderr).not.toContain("No live worker");
      // The run the worker opened went unnamed with the job: found by its tags, it is the task's one run.
      const holds = (await mlflowRuns("dispatch-lost")).filter((t) => t.name === "hold");
      expect(holds.map((t) => t.runId)).toEqual([failed.taskRunId]);
      expect(holds[0]!.tags["cairn.worker"]).toBeTruthy();
    } finally {
      await own.stop().catch(() => {});
    }
  }, 120_000);

  it("--healthcheck passes while its worker beats, and fails once the worker is stopped, or for a pool it does not take", async () => {
    const { env } = await testEnv("dispatch-health");
    const [worker] = await spawnWorkers(1, env);
    const health = (...args: string[]) => start(process.execPath, [cairnBin, "worker", spreadFlow, "--queue", servers.redis.url, "--healthcheck", ...args], { env: childEnv(env) }).done;
    const ok = await health();
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^ok: flow "dispatch-health" loads, the queue answers, and its worker here beats: \\S+-${worker!.child.pid}-\\S+ \\(`));
    const otherPool = await health("--pool", "gpu");
    expect(otherPool.code).toBe(1);
    expect(otherPool.stderr).toContain(`No live worker of flow "dispatch-health" for pool "gpu" on this host`);
    worker!.kill("SIGSTOP");
    let last = ok;
    await until(async () => (last = await health()).code === 1, "the check to fail for the stopped worker", 30_000);
    expect(last.stderr).toContain(`No live worker of flow "dispatch-health" for pool "default" on this host`);
    expect(last.stderr).toContain("`cairn workers --queue URL` lists the live ones");
  }, 120_000);
});
