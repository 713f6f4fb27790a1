/**
 * `cairn run --queue` with `cairn worker` processes, all real: redis-server, an MLflow server,
 * workers as child processes on 127.0.0.1. A flow spread over workers ends as it does in one
 * process, in its outputs and its MLflow record; pools route tasks; a worker killed mid-task
 * costs nothing but time; a coordinator killed is re-run from the cache; a worker whose code
 * differs refuses the task; a cancel reaches a worker's task; and each user error says what to do.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { cairnBin, cairnRun, childEnv, repo, start, tmp, tsxScript } from "../cache/helpers.ts";
import { startProxy } from "../reliability/helpers.ts";
import { markers, spreadFlow, type StartedWorker, startWorker, timesRun, useQueueServers } from "./helpers.ts";

/** A real redis-server and mlflow server for the file; the workers a test starts are killed after it. */
const servers = useQueueServers();
const { workers } = servers;

interface Shown {
  run: { status: string; name: string };
  tasks: Array<{ name: string; status: string; params: Record<string, string>; tags: Record<string, string> }>;
}

/** Env of one test: its own flow name (its own queues), experiment and markers. */
async function testEnv(name: string, extra: NodeJS.ProcessEnv = {}) {
  const markerDir = await tmp("cairn-queue-marks-");
  return { markerDir, env: { FLOW_NAME: name, MLFLOW_TRACKING_URI: servers.mlflow.uri, MLFLOW_EXPERIMENT_NAME: name, MARKER_DIR: markerDir, ...extra } };
}

async function spawnWorkers(n: number, env: NodeJS.ProcessEnv, args: string[] = []): Promise<StartedWorker[]> {
  const started = await Promise.all(Array.from({ length: n }, async () => startWorker(spreadFlow, servers.redis.url, ["--root", await tmp("cairn-worker-root-"), ...args], env)));
  workers.push(...started);
  return started;
}

/** A started worker's id, as its first log line and `cairn workers` say it. */
const workerId = (w: StartedWorker) => /worker (\S+) ready/.exec(w.log())![1]!;

/** One command to the test's redis-server, through redis-cli; its stdout. */
const redisCli = async (...args: string[]) => (await promisify(execFile)("redis-cli", ["-u", servers.redis.url, ...args])).stdout;

/** The keys of the test's Redis whose values (strings, hashes, lists, streams: whatever BullMQ keeps) hold `text`. */
async function redisKeysHolding(text: string): Promise<string[]> {
  const keys = (await promisify(execFile)("redis-cli", ["-u", servers.redis.url, "--scan"])).stdout.split("\n").filter(Boolean);
  const holding: string[] = [];
  for (const key of keys) {
    const type = (await redisCli("TYPE", key)).trim();
    const read = { string: ["GET", key], hash: ["HGETALL", key], list: ["LRANGE", key, "0", "-1"], stream: ["XRANGE", key, "-", "+"], zset: ["ZRANGE", key, "0", "-1"], set: ["SMEMBERS", key] }[type];
    if (read && (await redisCli(...read)).includes(text)) holding.push(key);
  }
  return holding;
}

/** The files under `dir` whose text holds `text`. */
async function filesHolding(dir: string, text: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if ((await readFile(path, "utf8").catch(() => "")).includes(text)) found.push(path);
  }
  return found;
}

/** The task runs of flow run `flowRunId`, read from MLflow itself (a `cairn` command would close the runs of dead processes first). */
async function taskRuns(experiment: string, flowRunId: string): Promise<Array<{ name: string; status: string; tags: Record<string, string> }>> {
  const api = `${servers.mlflow.uri}/api/2.0/mlflow`;
  const { experiment: e } = (await (await fetch(`${api}/experiments/get-by-name?experiment_name=${encodeURIComponent(experiment)}`)).json()) as { experiment: { experiment_id: string } };
  const found = (await (
    await fetch(`${api}/runs/search`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ experiment_ids: [e.experiment_id], filter: `tags.mlflow.parentRunId = '${flowRunId}'`, max_results: 1000 }),
    })
  ).json()) as { runs?: Array<{ info: { run_name: string; status: string }; data: { tags?: Array<{ key: string; value: string }> } }> };
  return (found.runs ?? []).map((r) => ({ name: r.info.run_name, status: r.info.status, tags: Object.fromEntries((r.data.tags ?? []).map((t) => [t.key, t.value])) }));
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
    const queued = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(queued.code, queued.stderr).toBe(0);
    const final = queued.json.at(-1)!;
    expect(final).toMatchObject({ type: "flow", status: "succeeded", outputs: { total: 4 + 9 + 16 + "a=4 b=9\n".length } });

    // Every task ran on a worker, none in the coordinator, and more than one worker took some.
    const ran = await markers(markerDir);
    const workerPids = new Set(spawned.map((w) => w.child.pid!));
    expect(Object.keys(ran).sort()).toEqual(["g1", "hold", "report", "s1", "s2", "sum"]);
    for (const pids of Object.values(ran)) for (const pid of pids) expect(workerPids.has(pid)).toBe(true);
    expect(new Set(Object.values(ran).flat()).size).toBeGreaterThan(1);
    // A task's log lines reach the coordinator's events, as in one process.
    expect(queued.stderr).toContain(`squaring 2 on pid ${ran.s1![0]}`);

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

/** Alive: the pid exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Resolves once `check` holds, polling. */
async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("pools, dead workers, stale code, cancel", () => {
  it("a flow output written on a worker with its own --root is handed over from the coordinator's downloads, and outlives the worker's cleanup", async () => {
    const { env } = await testEnv("queue-artifact-out");
    const workerRoot = await tmp("cairn-worker-root-");
    workers.push(await startWorker(join(import.meta.dirname, "fixtures/artifact-out.flow.ts"), servers.redis.url, ["--root", workerRoot], env));
    const root = await tmp();
    const r = await cairnRun(join(import.meta.dirname, "fixtures/artifact-out.flow.ts"), root, ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(0);
    const final = r.json.at(-1)! as { outputs: { model: { path: string }; chars: number } };
    expect(final.outputs.chars).toBe("weights v1\n".length);
    // This root's own copy (a hard link on one file system), not the path in the worker's folder.
    expect(final.outputs.model.path.startsWith(join(root, "downloads") + "/"), final.outputs.model.path).toBe(true);
    await rm(workerRoot, { recursive: true, force: true });
    expect(await readFile(final.outputs.model.path, "utf8")).toBe("weights v1\n");
  }, 180_000);

  it("runs the items of a map and the trials of a sweep on the workers, as in one process", async () => {
    const { env, markerDir } = await testEnv("queue-map");
    const mapFlow = join(import.meta.dirname, "fixtures/map.flow.ts");
    const spawned = [
      ...(await Promise.all([0, 1].map(async () => startWorker(mapFlow, servers.redis.url, ["--root", await tmp()], env)))),
    ];
    workers.push(...spawned);
    const r = await cairnRun(mapFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1), JSON.stringify(r.json.at(-1))).toMatchObject({ status: "succeeded", outputs: { ys: [{ y: 1 }, { y: 4 }, { y: 9 }, { y: 16 }], best: 24 } });
    const ran = await markers(markerDir);
    expect(Object.keys(ran).sort()).toEqual(["score_0_", "score_1_", "score_2_", "score_3_", "square_0_", "square_1_", "square_2_", "square_3_"]);
    const pids = new Set(spawned.map((w) => w.child.pid!));
    for (const p of Object.values(ran).flat()) expect(pids.has(p)).toBe(true);
  }, 120_000);

  it("with minSuccess, a failed item's slot in the map's outputs is null for a task on a worker, as in one process", async () => {
    const { env } = await testEnv("queue-map-min");
    const file = join(import.meta.dirname, "fixtures/map-min.flow.ts");
    const expected = { status: "succeeded", outputs: { slots: ["a", "null", "c"], failed: ["work[1]"] } };
    const alone = await cairnRun(file, await tmp(), [], env).done;
    expect(alone.code, alone.stderr).toBe(0);
    expect(alone.json.at(-1), JSON.stringify(alone.json.at(-1))).toMatchObject(expected);
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], env));
    const queued = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.json.at(-1), JSON.stringify(queued.json.at(-1))).toMatchObject(expected);
  }, 120_000);

  it("routes a pool's tasks to the workers of that pool only", async () => {
    const { env, markerDir } = await testEnv("queue-pools", { GPU_POOL: "1" });
    const [plain] = await spawnWorkers(1, env);
    const [gpu] = await spawnWorkers(1, env, ["--pool", "gpu"]);
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(0);
    const ran = await markers(markerDir);
    expect(ran.g1).toEqual([gpu!.child.pid]);
    for (const node of ["s1", "s2", "report", "hold", "sum"]) expect(ran[node]).toEqual([plain!.child.pid]);
  }, 120_000);

  it("a task whose pool no live worker takes: the coordinator warns, naming the pool and how to start a worker, and the task runs once one starts", async () => {
    const { env, markerDir } = await testEnv("queue-unserved", { GPU_POOL: "1" });
    await spawnWorkers(1, env);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    let err = "";
    run.child.stderr!.on("data", (d: Buffer) => (err += d));
    await until(() => err.includes("No live worker"), "the warning", 30_000);
    const [gpu] = await spawnWorkers(1, env, ["--pool", "gpu"]);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      // The flow's file and the queue as the run was given them: a command to paste.
      `[g1] No live worker takes pool "gpu" of flow "queue-unserved" (its workers take "default"): task "g1" waits in the queue until one does. Start one with \`cairn worker ${spreadFlow} --queue ${servers.redis.url} --pool gpu\`; \`cairn workers --queue ${servers.redis.url}\` lists the live ones.`,
    );
    // Once per pool, and none for the pool that has a worker.
    expect(r.stderr.split("No live worker")).toHaveLength(2);
    expect((await markers(markerDir)).g1).toEqual([gpu!.child.pid]);
  }, 120_000);

  it("a worker killed mid-task: another runs the task again, the flow succeeds, the dead attempt's run is closed", async () => {
    const holdFile = join(await tmp(), "go");
    const { env, markerDir } = await testEnv("queue-kill", { HOLD_FILE: holdFile, CAIRN_QUEUE_LOCK_MS: "1500" });
    const spawned = await spawnWorkers(2, env);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    const first = (await markers(markerDir)).hold![0]!;
    spawned.find((w) => w.child.pid === first)!.kill("SIGKILL");
    await writeFile(holdFile, "go");
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { total: 37 } });
    const holds = (await markers(markerDir)).hold!;
    expect(holds).toHaveLength(2);
    expect(holds).toContain(first);
    const shown = await show(String(r.json.at(-1)!.runId), env, "queue-kill");
    const holdRuns = shown.tasks.filter((t) => t.name === "hold").map((t) => t.status).sort();
    expect(holdRuns).toEqual(["FAILED", "FINISHED"]);
    expect(shown.tasks.some((t) => t.status === "RUNNING")).toBe(false);
    // The dead attempt's run says why it failed, naming the worker that died (as a killed coordinator's runs do).
    const dead = shown.tasks.find((t) => t.name === "hold" && t.status === "FAILED")!;
    const deadId = workerId(spawned.find((w) => w.child.pid === first)!);
    expect(dead.tags["cairn.worker"]).toBe(deadId);
    expect(dead.tags["cairn.abandoned"]).toContain(`Its worker (${deadId}, pid ${first} on `);
    expect(dead.tags["cairn.abandoned"]).toContain('stopped answering while it ran task "hold" (killed, crashed, or cut off from Redis for longer than CAIRN_QUEUE_LOCK_MS), and another worker took the task to run it again. Closed as FAILED by worker ');
    expect(dead.tags["cairn.status"]).toBe("failed");
  }, 120_000);

  it("a worker killed mid-task, then Ctrl-C before another took the job: the worker that takes it next closes the dead attempt's run KILLED, saying why", async () => {
    const holdFile = join(await tmp(), "never");
    const { env, markerDir } = await testEnv("queue-kill-cancel", { HOLD_FILE: holdFile, CAIRN_QUEUE_DOWN_MS: "1000" });
    // A lock long enough that the coordinator's cancel finds the dead worker's job still locked (it cannot take it back).
    const [dead] = await spawnWorkers(1, { ...env, CAIRN_QUEUE_LOCK_MS: "10000" });
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    const deadPid = dead!.child.pid!;
    dead!.kill("SIGKILL");
    await dead!.done;
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    const flowRunId = String(r.json.at(-1)!.runId);
    const [next] = await spawnWorkers(1, { ...env, CAIRN_QUEUE_LOCK_MS: "1000" });
    await next!.waitFor(/task hold cancelled/);
    const holds = (await taskRuns("queue-kill-cancel", flowRunId)).filter((t) => t.name === "hold");
    const deadRun = holds.find((t) => t.tags["cairn.owner"]?.split(":")[1] === String(deadPid));
    expect(deadRun?.status).toBe("KILLED");
    expect(deadRun?.tags["cairn.abandoned"]).toContain(`pid ${deadPid} on `);
    expect(holds.filter((t) => t.status === "RUNNING")).toEqual([]);
  }, 120_000);

  it("a task that kills every worker that takes it fails as a poison task", async () => {
    const { env } = await testEnv("queue-poison", { KILL_WORKER: "1", CAIRN_QUEUE_LOCK_MS: "1000", CAIRN_QUEUE_MAX_DEATHS: "2" });
    await spawnWorkers(3, env);
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "failed") as { error: { name: string; message: string } };
    expect(failed.error.name).toBe("PoisonTaskError");
    expect(failed.error.message).toMatch(/Task "hold" was given up: the worker running it died 2 times in a row \(each stopped renewing the task's lock for longer than CAIRN_QUEUE_LOCK_MS, and CAIRN_QUEUE_MAX_DEATHS was reached\)\. /);
    // In Cairn's words, not BullMQ's.
    expect(failed.error.message).not.toContain("allowable");
    const shown = await show(String(r.json.at(-1)!.runId), env, "queue-poison");
    expect(shown.tasks.filter((t) => t.name === "hold").map((t) => t.status)).toEqual(["FAILED", "FAILED"]);
  }, 120_000);

  it("a worker whose checkout has other code refuses the task, naming it and its flow file", async () => {
    const { env } = await testEnv("queue-stale");
    const dir = await tmp("cairn-stale-checkout-");
    const { readFile, symlink } = await import("node:fs/promises");
    const stale = join(dir, "spread.flow.ts");
    await writeFile(stale, (await readFile(spreadFlow, "utf8")).replace("return { y: x * x };", "return { y: x * x + 1 };"));
    await symlink(join(spreadFlow, "../../../../node_modules"), join(dir, "node_modules"));
    // Given as a relative path: the message has the absolute one, which tells two checkouts on one host apart.
    const worker = await startWorker(relative(process.cwd(), stale), servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(worker);
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    // s1 and s2 run the changed task; whichever is refused first fails the flow.
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(["s1", "s2"]).toContain(failed.task);
    expect(failed.error.name).toBe("StaleCodeError");
    expect(failed.error.message).toContain(`Task "${failed.task}" was not run by worker ${workerId(worker)} (on `);
    expect(failed.error.message).toContain(`its code in ${stale} there differs`);
    expect(failed.error.message).toContain("its source");
    expect(failed.error.message).toMatch(/No live worker with the run's code took the task within \d+ s\./);
    // It was handed back before it failed, and the coordinator was told so.
    expect(worker.log()).toMatch(/task s[12] refused: its code here differs \(its source, [^)]*\); handed back to the queue for a worker with the run's code\n/);
    expect(r.stderr).toContain(`Worker ${workerId(worker)} (on `);
  }, 120_000);

  it("a worker with another installed version of a kind's package refuses its task, saying the kind's code differs and to compare the lockfiles", async () => {
    const { env } = await testEnv("queue-kind-version");
    const { symlink } = await import("node:fs/promises");
    // Two checkouts of one flow file, each with the kind's package installed in its node_modules.
    const checkout = async (version: string) => {
      const dir = await tmp("cairn-kind-checkout-");
      await mkdir(join(dir, "node_modules", "sql-kind"), { recursive: true });
      await symlink(join(repo, "packages", "cairn"), join(dir, "node_modules", "cairn-dag"));
      await writeFile(join(dir, "node_modules", "sql-kind", "package.json"), JSON.stringify({ name: "sql-kind", version, type: "module", exports: "./index.js" }));
      await writeFile(
        join(dir, "node_modules", "sql-kind", "index.js"),
        `import { checkName, configDigest, kindTask, NO_RETRY } from "cairn-dag/kind";\n` +
          `export function sql(name) {\n  checkName(name);\n` +
          `  return kindTask({ definition: { name, kind: "sql", retry: NO_RETRY, cache: {}, env: [], code: configDigest({ version: ${JSON.stringify(version)} }), run: async () => ({ rows: 1 }) } });\n}\n`,
      );
      await writeFile(
        join(dir, "flow.ts"),
        `import { flow } from "cairn-dag";\nimport { sql } from "sql-kind";\nexport default flow(process.env.FLOW_NAME ?? "kind").build(() => ({ rows: sql("q")({}).rows }));\n`,
      );
      return join(dir, "flow.ts");
    };
    const [mine, theirs] = await Promise.all([checkout("1.0.0"), checkout("1.1.0")]);
    const worker = await startWorker(theirs, servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(worker);
    const r = await cairnRun(mine, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "q", error: { name: "StaleCodeError" } });
    // Before: "its code in .../flow.ts there differs ... (its source)", and only to update the checkout.
    expect(failed.error.message).toContain("its kind's code there differs from the code the flow run was started with (its kind's code (the `code` of kind sql))");
    expect(failed.error.message).toContain(
      "Kind sql's code (its `code`) differs: is another version of the package it comes from installed there? Compare the lockfiles of the two checkouts (package-lock.json, pnpm-lock.yaml, yarn.lock) and install the coordinator's version there.",
    );
    expect(failed.error.message).not.toContain("its source");
  }, 120_000);

  it("a worker with another installed version of a package the task imports refuses it, naming the package's two versions and saying to install the coordinator's", async () => {
    const { env } = await testEnv("queue-package-version");
    const { symlink } = await import("node:fs/promises");
    // Two checkouts of one flow file, each with its own install of minidep.
    const checkout = async (version: string) => {
      const dir = await tmp("cairn-package-checkout-");
      await mkdir(join(dir, "node_modules", "minidep"), { recursive: true });
      await symlink(join(repo, "packages", "cairn"), join(dir, "node_modules", "cairn-dag"));
      await writeFile(join(dir, "node_modules", "minidep", "package.json"), JSON.stringify({ name: "minidep", version, type: "module", main: "index.js" }));
      await writeFile(join(dir, "node_modules", "minidep", "index.js"), `export const scale = (x) => x * 2;\n`);
      await writeFile(
        join(dir, "flow.ts"),
        `import { flow, task } from "cairn-dag";\nimport { scale } from "minidep";\nconst base = task("base").run(() => ({ v: scale(21) }));\nexport default flow(process.env.FLOW_NAME ?? "pkg").build(() => ({ v: base().v }));\n`,
      );
      return join(dir, "flow.ts");
    };
    const [mine, theirs] = await Promise.all([checkout("1.0.0"), checkout("2.0.0")]);
    const worker = await startWorker(theirs, servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(worker);
    const r = await cairnRun(mine, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "base", error: { name: "StaleCodeError" } });
    expect(failed.error.message).toContain("(package minidep (1.0.0 in the run, 2.0.0 here))");
    expect(failed.error.message).toContain("compare the lockfiles of the two checkouts (package-lock.json, pnpm-lock.yaml, yarn.lock) and install the coordinator's versions there.");
  }, 120_000);

  it("a worker of another Cairn build refuses the task before running anything, naming both builds and the fix; cairn workers shows each worker's build", async () => {
    const { env, markerDir } = await testEnv("queue-other-build");
    // The worker is a real `cairn worker` of this checkout; CAIRN_TEST_BUILD gives it another build's name (a pack of another commit).
    const [other] = await spawnWorkers(1, { ...env, CAIRN_TEST_BUILD: "0000000-other", CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    const listed = await start(process.execPath, [cairnBin, "workers", "--queue", servers.redis.url, "--json"], { env: childEnv(env) }).done;
    expect((JSON.parse(listed.stdout) as Array<{ pid: number; cairn?: string }>).find((w) => w.pid === other!.child.pid)).toMatchObject({ cairn: "0.1.0+0000000-other" });
    const table = await start(process.execPath, [cairnBin, "workers", "--queue", servers.redis.url], { env: childEnv(env) }).done;
    expect(table.stdout).toMatch(/host\s+pid\s+flow\s+pools\s+cairn\s+running/);
    expect(table.stdout).toContain("0.1.0+0000000-other");
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed.error.name).toBe("BuildMismatchError");
    expect(failed.error.message).toContain(`Task "${failed.task}" was not run by worker ${workerId(other!)} (on `);
    expect(failed.error.message).toContain("it runs Cairn 0.1.0+0000000-other, the flow run's coordinator Cairn 0.1.0+workspace");
    expect(failed.error.message).toMatch(/No live worker of the coordinator's Cairn took the task within \d+ s\./);
    expect(failed.error.message).toContain("Install the same Cairn on the coordinator and every worker");
    // Not the message of a checkout that differs: the flow file is the same.
    expect(failed.error.message).not.toContain("checkout");
    expect(other!.log()).toMatch(/task \S+ refused: it runs Cairn 0\.1\.0\+0000000-other, .*; handed back to the queue for a worker of the coordinator's Cairn\n/);
    expect(r.stderr).toContain(`Worker ${workerId(other!)} (on `);
    // Refused before anything ran there.
    expect(Object.values(await markers(markerDir)).flat()).not.toContain(other!.child.pid);
  }, 120_000);

  it("a worker whose code differs hands the task back: a worker with the run's code, started meanwhile, runs it and the flow succeeds", async () => {
    const { env, markerDir } = await testEnv("queue-stale-hand-back");
    const dir = await tmp("cairn-stale-checkout-");
    const { symlink } = await import("node:fs/promises");
    const stale = join(dir, "spread.flow.ts");
    await writeFile(stale, (await readFile(spreadFlow, "utf8")).replace("return { y: x * x };", "return { y: x * x + 1 };"));
    await symlink(join(spreadFlow, "../../../../node_modules"), join(dir, "node_modules"));
    const old = await startWorker(stale, servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "120000" });
    workers.push(old);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await old.waitFor(/task s[12] refused: .*handed back to the queue/);
    const [good] = await spawnWorkers(1, env);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { total: 37 } });
    const ran = await markers(markerDir);
    expect([...ran.s1!, ...ran.s2!]).toEqual([good!.child.pid, good!.child.pid]);
  }, 120_000);

  it("a secret one task read on a worker is known to the run's later tasks there: masked in their logs, refused in their outputs", async () => {
    const secret = "sk-TOPSECRET-12345";
    const { env } = await testEnv("queue-secret");
    const file = join(import.meta.dirname, "fixtures/secret.flow.ts");
    const started = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, API_TOKEN: secret });
    workers.push(started);
    const logged = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(logged.code, logged.stderr).toBe(0);
    expect(logged.stderr).toContain("[leak] env token is *** (18 characters)"); // --json: log lines on stderr
    expect(logged.stdout + logged.stderr).not.toContain(secret);
    // A worker whose `leak` returns the raw value: refused, as in one process.
    started.kill("SIGKILL");
    await started.done;
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, API_TOKEN: secret, LEAK_OUT: "1" }));
    const leaked = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "--no-cache"], env).done;
    expect(leaked.code).toBe(1);
    const failed = leaked.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string } };
    expect(failed).toMatchObject({ task: "leak", error: { name: "SecretLeakError" } });
    expect(leaked.stdout + leaked.stderr).not.toContain(secret);
  }, 120_000);

  it("a secret the coordinator knows from the start is known on the worker before its task runs: an output carrying its value is refused there and written nowhere", async () => {
    const token = "tok-9f8e7d6c5b4a-3e2d";
    const { env } = await testEnv("queue-secret-names");
    const app = join(import.meta.dirname, "fixtures/app-secrets.ts");
    const file = join(import.meta.dirname, "fixtures/secret-names.flow.ts");
    const root = await tmp();
    // CONF_VAL happens to hold the token; the task never asks for the secret.
    const worker = await startWorker(file, servers.redis.url, ["--root", root], { ...env, API_TOKEN: token, CONF_VAL: token });
    workers.push(worker);
    const r = await tsxScript(app, [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp(), APP_TOKEN: token }).done;
    expect(r.code, r.stderr).toBe(1);
    expect(r.json.at(-1)).toMatchObject({ error: { name: "SecretLeakError" } });
    expect(r.stdout + r.stderr + worker.log()).not.toContain(token);
    // Not in the worker's cache entries or files, not in Redis (job hashes, event streams), not in MLflow.
    expect(await filesHolding(root, token)).toEqual([]);
    expect(await redisKeysHolding(token)).toEqual([]);
    const api = `${servers.mlflow.uri}/api/2.0/mlflow`;
    const { experiment } = (await (await fetch(`${api}/experiments/get-by-name?experiment_name=queue-secret-names`)).json()) as { experiment: { experiment_id: string } };
    const runs = await (await fetch(`${api}/runs/search`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ experiment_ids: [experiment.experiment_id] }) })).text();
    expect(runs).toContain("SecretLeakError");
    expect(runs).not.toContain(token);

    // A worker that has no value for it does not run the task, and says which worker and what to set.
    worker.kill("SIGKILL");
    await worker.done;
    const bare = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, CONF_VAL: "plain", CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(bare);
    const missing = await tsxScript(app, [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp(), APP_TOKEN: token, SALT: "1" }).done;
    expect(missing.code, missing.stderr).toBe(1);
    const error = (missing.json.at(-1) as { error: { name: string; message: string } }).error;
    expect(error.name).toBe("SecretNotFoundError");
    expect(error.message).toContain(`Task "leak" was not run by worker ${workerId(bare)} (on `);
    expect(error.message).toContain(`the flow run knows secret "API_TOKEN" from its --secrets file`);
    expect(error.message).toMatch(/No live worker with a value for it took the task within \d+ s\./);
    expect(error.message).toContain("Set the environment variable API_TOKEN for that worker");
    expect(bare.log()).toContain(`task leak refused: it has no value for secret "API_TOKEN"; handed back to the queue for a worker that has one`);
  }, 120_000);

  it("a worker that has no value for a secret of the run hands the task back: a worker that has it, started meanwhile, runs it", async () => {
    const token = "tok-1a2b3c4d5e6f-7a8b";
    const { env } = await testEnv("queue-secret-hand-back");
    const app = join(import.meta.dirname, "fixtures/app-secrets.ts");
    const file = join(import.meta.dirname, "fixtures/secret-names.flow.ts");
    const bare = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, CONF_VAL: "plain" });
    workers.push(bare);
    const run = tsxScript(app, [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp(), APP_TOKEN: token });
    await bare.waitFor(/task leak refused: it has no value for secret "API_TOKEN"; handed back/);
    const good = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, API_TOKEN: token, CONF_VAL: "plain" });
    workers.push(good);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ outputs: { conf: "plain" } });
    expect(good.log()).toMatch(/task leak succeeded/);
  }, 120_000);

  it("a secret one task asked for from the environment on a worker is known to the run's later tasks on other workers: refused in their outputs, masked in their logs, written nowhere", async () => {
    const token = "envtok-5c4b3a2918-7f6e";
    const { env } = await testEnv("queue-asked-secret");
    const file = join(import.meta.dirname, "fixtures/asked-secret.flow.ts");
    const roots = [await tmp(), await tmp()];
    // `ask` runs on the first worker (pool default), `leak` on the second (pool p2): only the job tells the second of the secret.
    const first = await startWorker(file, servers.redis.url, ["--root", roots[0]!], { ...env, ENV_TOK: token });
    const second = await startWorker(file, servers.redis.url, ["--root", roots[1]!, "--pool", "p2"], { ...env, ENV_TOK: token });
    workers.push(first, second);
    const coordinatorRoot = await tmp();
    const r = await cairnRun(file, coordinatorRoot, ["--queue", servers.redis.url], { ...env, ENV_TOK: token }).done;
    expect(r.code, r.stderr).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } } | undefined;
    expect(failed, JSON.stringify(r.json)).toMatchObject({ task: "leak", error: { name: "SecretLeakError" } });
    expect(failed?.error.message).toContain(`"ENV_TOK"`);
    expect(r.stderr).toContain("[leak] leak sees ***"); // --json: log lines on stderr
    expect(second.log()).toMatch(/task leak failed/);
    expect(r.stdout + r.stderr + first.log() + second.log()).not.toContain(token);
    // Not in the workers' or the coordinator's files (cache entries), not in Redis (jobs, results, events), not in MLflow (runs, outputs.json, the cache index).
    for (const dir of [...roots, coordinatorRoot, servers.mlflow.dir]) expect(await filesHolding(dir, token), dir).toEqual([]);
    expect(await redisKeysHolding(token)).toEqual([]);
  }, 120_000);

  it("a worker whose value of a secret of the run's --secrets file differs from the coordinator's refuses the task before it runs, and it fails with SecretMismatchError once no worker with the run's value took it", async () => {
    const token = "tok-current-8d7c6b5a4f3e";
    const rotated = "tok-rotated-1a2b3c4d5e6f";
    const { env } = await testEnv("queue-secret-mismatch");
    const file = join(import.meta.dirname, "fixtures/conf.flow.ts");
    const dir = await tmp();
    const coordinatorSecrets = join(dir, "coordinator.env");
    const workerSecrets = join(dir, "worker.env");
    await writeFile(coordinatorSecrets, `API_TOKEN=${token}\n`);
    await writeFile(workerSecrets, `API_TOKEN=${rotated}\n`);
    const root = await tmp();
    // CONF_VAL happens to hold the run's value, which the worker, knowing another, would not recognise.
    const worker = await startWorker(file, servers.redis.url, ["--root", root, "--secrets", workerSecrets], { ...env, CONF_VAL: token, CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(worker);
    const coordinatorRoot = await tmp();
    const r = await cairnRun(file, coordinatorRoot, ["--queue", servers.redis.url, "--secrets", coordinatorSecrets], env).done;
    expect(r.code, r.stderr).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } } | undefined;
    expect(failed, JSON.stringify(r.json)).toMatchObject({ task: "leak", error: { name: "SecretMismatchError" } });
    expect(failed?.error.message).toContain(`Task "leak" was not run by worker ${workerId(worker)} (on `);
    expect(failed?.error.message).toContain(`its value of secret "API_TOKEN" differs from the one the flow run knows from its --secrets file`);
    expect(failed?.error.message).toMatch(/No live worker with the run's value took the task within \d+ s\./);
    expect(failed?.error.message).toContain("update API_TOKEN=... in the file it is started with (cairn worker --secrets FILE)");
    expect(worker.log()).toContain(`task leak refused: its value for secret "API_TOKEN" differs from the coordinator's; handed back to the queue for a worker with the run's value`);
    expect(worker.log()).not.toMatch(/task leak started/);
    // The coordinator said which worker refused it, and why, while it waited.
    expect(r.stderr).toContain(`did not run task "leak": its value for secret "API_TOKEN" differs from the coordinator's`);
    for (const text of [token, rotated]) {
      expect(r.stdout + r.stderr + worker.log()).not.toContain(text);
      for (const d of [root, coordinatorRoot, servers.mlflow.dir]) expect(await filesHolding(d, text), d).toEqual([]);
      expect(await redisKeysHolding(text)).toEqual([]);
    }
    // No task run of the worker's: nothing FINISHED with the run's value in its outputs.
    const flowRunId = String(r.json.at(-1)!.runId);
    expect((await taskRuns("queue-secret-mismatch", flowRunId)).filter((t) => t.tags["cairn.worker"])).toEqual([]);
  }, 120_000);

  it("a worker whose MLFLOW_TRACKING_URI carries the server's user name and password records with them; one that names another host says so", async () => {
    const password = "s3cret:pw/9";
    const expected = `Basic ${Buffer.from(`alice:${password}`).toString("base64")}`;
    const proxy = await startProxy(servers.mlflow.uri, (req, res) => {
      if (req.headers.authorization === expected) return false;
      req.resume();
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="mlflow"' }).end("You are not authenticated.");
      return true;
    });
    try {
      const host = new URL(proxy.uri).host;
      const uri = `http://alice:${encodeURIComponent(password)}@${host}`;
      const { env } = await testEnv("queue-auth", { MLFLOW_TRACKING_URI: uri });
      const [worker] = await spawnWorkers(1, env);
      const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { total: 37 } });
      expect(r.stdout + r.stderr + worker!.log()).not.toContain(password);

      // The same server under another name: its credentials are not sent there, and the coordinator is told why.
      worker!.kill("SIGKILL");
      await worker!.done;
      const other = `http://alice:${encodeURIComponent(password)}@localhost:${new URL(proxy.uri).port}`;
      const elsewhereWorker = await startWorker(spreadFlow, servers.redis.url, ["--root", await tmp()], { ...env, MLFLOW_TRACKING_URI: other });
      workers.push(elsewhereWorker);
      const elsewhere = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url, "--no-cache"], env).done;
      expect(elsewhere.code).toBe(1);
      expect(elsewhere.stderr).toContain(
        `The MLFLOW_TRACKING_URI of worker ${workerId(elsewhereWorker)} names another server (http://localhost:${new URL(proxy.uri).port}) than the flow run records to (http://${host}): ` +
          `its task runs go to the flow run's server, without the credentials in the worker's URI`,
      );
      expect(elsewhere.stdout + elsewhere.stderr).not.toContain(password);
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it("a worker whose checkout has another helper refuses a task without a cache key too", async () => {
    const { env } = await testEnv("queue-stale-helper");
    const { cp, readFile, symlink } = await import("node:fs/promises");
    const dir = await tmp("cairn-stale-helper-");
    const here = join(import.meta.dirname, "fixtures/helper");
    await cp(here, dir, { recursive: true });
    await writeFile(join(dir, "lib.ts"), (await readFile(join(here, "lib.ts"), "utf8")).replace("x * 2", "x * 3"));
    await symlink(join(spreadFlow, "../../../../node_modules"), join(dir, "node_modules"));
    workers.push(await startWorker(join(dir, "helper.flow.ts"), servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "1000" }));
    const r = await cairnRun(join(here, "helper.flow.ts"), await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "scaled", error: { name: "StaleCodeError" } });
    expect(failed.error.message).toMatch(/lib\.ts/);
  }, 120_000);

  it("a worker whose disk changed since it loaded the flow (a package upgraded, a helper edited) refuses the tasks instead of storing its old code's results under the new code's keys", async () => {
    const { env } = await testEnv("queue-changed-under-worker");
    const { symlink } = await import("node:fs/promises");
    const dir = await tmp("cairn-changed-under-worker-");
    const minidep = join(dir, "node_modules", "minidep");
    await mkdir(minidep, { recursive: true });
    await symlink(join(repo, "packages", "cairn"), join(dir, "node_modules", "cairn-dag"));
    const install = async (version: string, factor: number) => {
      await writeFile(join(minidep, "package.json"), JSON.stringify({ name: "minidep", version, type: "module", main: "index.js" }));
      await writeFile(join(minidep, "index.js"), `export const scale = (x) => x * ${factor};\n`);
    };
    const helper = (factor: number) => writeFile(join(dir, "lib.ts"), `export function triple(x: number): number {\n  return x * ${factor};\n}\n`);
    await install("1.0.0", 2);
    await helper(2);
    await writeFile(
      join(dir, "flow.ts"),
      `import { flow, task } from "cairn-dag";\nimport { scale } from "minidep";\nimport { triple } from "./lib.ts";\n` +
        `const pkg = task("pkg").run(() => ({ v: scale(21) }));\nconst local = task("local").run(() => ({ v: triple(5) }));\n` +
        `export default flow(process.env.FLOW_NAME ?? "changed").build(() => ({ a: pkg().v, b: local().v }));\n`,
    );
    workers.push(await startWorker(join(dir, "flow.ts"), servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "1000" }));
    // Upgraded and edited under the running worker, which runs what it loaded (x * 2).
    await install("2.0.0", 3);
    await helper(3);

    const r = await cairnRun(join(dir, "flow.ts"), await tmp(), ["--queue", servers.redis.url, "--failure-policy", "continue"], env).done;
    expect(r.code, r.stderr).toBe(1);
    const failed = (task: string) => r.json.find((e) => e.type === "task" && e.task === task && e.status === "failed") as { error: { name: string; message: string } } | undefined;
    expect(failed("pkg")?.error.name).toBe("StaleCodeError");
    expect(failed("pkg")?.error.message).toContain("(package minidep (2.0.0 in the run, 1.0.0 here))");
    expect(failed("local")?.error.name).toBe("StaleCodeError");
    expect(failed("local")?.error.message).toMatch(/lib\.ts/);

    // Nothing was stored under the new code's keys: a run on its own computes both with the new code.
    const alone = await cairnRun(join(dir, "flow.ts"), await tmp(), [], env).done;
    expect(alone.code, alone.stderr).toBe(0);
    expect(alone.json.filter((e) => e.type === "task" && (e.status === "succeeded" || e.status === "cached")).map((e) => [e.task, e.status])).toEqual(
      expect.arrayContaining([["pkg", "succeeded"], ["local", "succeeded"]]),
    );
  }, 120_000);

  it("a worker whose checkout has another version of a project's task kind refuses its task", async () => {
    const { env } = await testEnv("queue-stale-kind");
    const { cp, readFile, symlink } = await import("node:fs/promises");
    const dir = await tmp("cairn-stale-kind-");
    const here = join(import.meta.dirname, "fixtures/kind");
    await cp(here, dir, { recursive: true });
    await writeFile(join(dir, "double.ts"), (await readFile(join(here, "double.ts"), "utf8")).replace("x * 2", "x * 3"));
    await symlink(join(spreadFlow, "../../../../node_modules"), join(dir, "node_modules"));
    workers.push(await startWorker(join(dir, "kind.flow.ts"), servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "1000" }));
    const r = await cairnRun(join(here, "kind.flow.ts"), await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "doubled", error: { name: "StaleCodeError" } });
    expect(failed.error.message).toMatch(/double\.ts/);
  }, 120_000);

  it("a worker started with other export conditions than the coordinator says so, not that its checkout is old; started with the same, it runs the task", async () => {
    const { env } = await testEnv("queue-conditions");
    const { mkdir, symlink } = await import("node:fs/promises");
    const dir = await tmp("cairn-conditions-");
    const ws = join(dir, "packages", "ws");
    await mkdir(join(ws, "src"), { recursive: true });
    await mkdir(join(ws, "dist"));
    await writeFile(join(ws, "package.json"), JSON.stringify({ name: "ws", type: "module", exports: { ".": { development: "./src/index.js", default: "./dist/index.js" } } }));
    await writeFile(join(ws, "src", "index.js"), `export const which = "src";\n`);
    await writeFile(join(ws, "dist", "index.js"), `export const which = "dist";\n`);
    const app = join(dir, "app");
    await mkdir(join(app, "node_modules"), { recursive: true });
    await symlink("../../packages/ws", join(app, "node_modules", "ws"));
    await symlink(join(repo, "node_modules", "cairn-dag"), join(app, "node_modules", "cairn-dag"));
    await writeFile(join(app, "package.json"), `{ "name": "app", "type": "module" }\n`);
    const file = join(app, "flow.ts");
    await writeFile(file, `import { flow, task } from "cairn-dag";\nimport { which } from "ws";\nconst t = task("t").run(() => ({ w: which }));\nexport default flow("queue-conditions").build(() => ({ w: t({}).w }));\n`);
    const developing = { NODE_OPTIONS: "--conditions=development" };
    const worker = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, ...developing, CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(worker);
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "t", error: { name: "StaleCodeError" } });
    expect(failed.error.message).toMatch(/The coordinator resolves packages with conditions \[node[^\]]*\], this worker with \[development, node[^\]]*\]: start the worker with the same --conditions \/ NODE_OPTIONS \(the coordinator gives none/);
    expect(failed.error.message).not.toContain("Update that worker's checkout");
    // The coordinator started with the worker's conditions: the same code, and it runs there.
    const ok = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], { ...env, ...developing }).done;
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { w: "src" } });
  }, 120_000);

  it("a worker whose value of a variable the task declares (.env) differs refuses the task, naming it", async () => {
    const { env } = await testEnv("queue-env", { MODE: "cpu-fp32" });
    const file = join(import.meta.dirname, "fixtures/env.flow.ts");
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, MODE: "gpu-fp16", CAIRN_QUEUE_STALE_GRACE_MS: "1000" }));
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "mode", error: { name: "StaleCodeError" } });
    expect(failed.error.message).toContain("its environment there differs from the one the flow run was started with (environment variable MODE");
    expect(failed.error.message).toContain("Give that worker the coordinator's values of the variables the task declares with .env() (MODE;");
    expect(failed.error.message).not.toContain("computed name");
    expect(failed.error.message).not.toContain("gpu-fp16");
  }, 120_000);

  it("a worker whose value of a variable the task's function reads from process.env by name (undeclared) differs refuses the task, naming it, never its value; one with the run's value runs it", async () => {
    const { env } = await testEnv("queue-env-read", { SCALE: "scale-at-coordinator" });
    const file = join(import.meta.dirname, "fixtures/env-read.flow.ts");
    const other = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, SCALE: "scale-at-worker", CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(other);
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "scaled", error: { name: "StaleCodeError" } });
    expect(failed.error.message).toContain("its environment there differs from the one the flow run was started with (environment variable SCALE");
    expect(failed.error.message).toContain("reads from process.env by name (SCALE;");
    // The fix for a per-machine value that does not change what the task computes.
    expect(failed.error.message).toContain("CUDA_VISIBLE_DEVICES");
    expect(failed.error.message).toContain(`read it through a computed name instead (const name = "SCALE"; process.env[name])`);
    expect(`${r.stdout}${r.stderr}${other.log()}`).not.toContain("scale-at-");
    // Nothing was computed with the worker's value: a worker with the run's value computes it, once.
    other.kill("SIGKILL");
    await other.done;
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], env));
    const ok = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { scale: "scale-at-coordinator" } });
  }, 120_000);

  it("an input of -0 reaches a task on a worker as -0, as in one process (JSON would make it 0, while its key is -0's)", async () => {
    const { env } = await testEnv("queue-negative-zero");
    const file = join(import.meta.dirname, "fixtures/negative-zero.flow.ts");
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], env));
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { x: "-0", item: "-0" } });
  }, 120_000);

  it("a worker with the coordinator's Python (the same venv) takes a Python task; with CAIRN_PYTHON_ENV_KEY on, one whose Python has other packages, or whose switch is off, refuses it, saying why", async () => {
    const python = join(repo, ".venv/bin/python");
    const file = join(import.meta.dirname, "fixtures/python.flow.ts");
    const same = await testEnv("queue-python", { CAIRN_PYTHON: python });
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...same.env, RAN_ON: "worker" }));
    const ok = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], same.env).done;
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { ranOn: "worker" } });
    // A coordinator without the workers' Python (a laptop without the venv): CAIRN_PYTHON_ENV_KEY
    // off (the default), the worker takes the task all the same.
    const laptop = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], { ...same.env, CAIRN_PYTHON: "/nonexistent/bin/python3" }).done;
    expect(laptop.code, laptop.stderr).toBe(0);
    expect(laptop.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { ranOn: "worker" } });

    // A virtualenv of the same interpreter with one tiny package: its key differs, so it refuses.
    const venv = join(await tmp("cairn-worker-venv-"), "venv");
    execFileSync(python, ["-m", "venv", "--without-pip", venv]);
    const [lib] = (await readdir(join(venv, "lib"))).filter((n) => n.startsWith("python"));
    await mkdir(join(venv, "lib", lib!, "site-packages", "tinypkg-1.0.dist-info"));
    const other = await testEnv("queue-python-other", { CAIRN_PYTHON: python, CAIRN_PYTHON_ENV_KEY: "1" });
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...other.env, CAIRN_PYTHON: join(venv, "bin/python"), CAIRN_QUEUE_STALE_GRACE_MS: "1000" }));
    const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], other.env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed).toMatchObject({ task: "py-step", error: { name: "StaleCodeError" } });
    expect(failed.error.message).toContain("its environment there differs from the one the flow run was started with (Python environment changed: ");
    // The .venv's packages, which the worker's Python lacks, the first few by name.
    expect(failed.error.message).toMatch(/Python environment changed: [\w-]+ \S+ removed, [^)]* and \d+ more, from the run's to this worker's\)/);
    expect(failed.error.message).toContain("Give that worker a Python with the coordinator's version and packages");

    // A worker with the switch off, the coordinator's on: it cannot check its Python, so it refuses, saying why.
    const mixed = await testEnv("queue-python-switch", { CAIRN_PYTHON: python, CAIRN_PYTHON_ENV_KEY: "1" });
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...mixed.env, CAIRN_PYTHON_ENV_KEY: "0", CAIRN_QUEUE_STALE_GRACE_MS: "1000" }));
    const m = await cairnRun(file, await tmp(), ["--queue", servers.redis.url], mixed.env).done;
    expect(m.code).toBe(1);
    const refused = m.json.find((e) => e.type === "task" && e.status === "failed") as { error: { name: string; message: string } };
    expect(refused.error.name).toBe("StaleCodeError");
    expect(refused.error.message).toContain("(CAIRN_PYTHON_ENV_KEY is on at the coordinator) and not in this worker's (off here)");
  }, 240_000);

  it("a task that throws on a worker fails at the coordinator with its message and its place in the flow file", async () => {
    const { env } = await testEnv("queue-fail");
    const file = join(import.meta.dirname, "fixtures/fail.flow.ts");
    const worker = await startWorker(file, servers.redis.url, ["--root", await tmp()], env);
    workers.push(worker);
    const r = await start(process.execPath, [cairnBin, "run", file, "--root", await tmp(), "--queue", servers.redis.url], { env: childEnv({ ...env, NO_COLOR: "1" }) }).done;
    expect(r.code).toBe(1);
    // As the same flow says it in one process: the message (naming the worker that ran it), then where in the flow file.
    expect(r.stdout).toContain(`boom on the worker (on worker ${workerId(worker)})\n`);
    expect(r.stdout).toMatch(/boom on the worker \(on worker \S+\)\n\s+at \S*fail\.flow\.ts:5:\d+/);
  }, 120_000);

  it("a worker prints a task's warning and error as text, never obeyed, and their further lines under the task's prefix", async () => {
    const { env } = await testEnv("queue-hostile");
    const file = join(import.meta.dirname, "fixtures/hostile.flow.ts");
    const worker = await startWorker(file, servers.redis.url, ["--root", await tmp()], env);
    workers.push(worker);
    const r = await start(process.execPath, [cairnBin, "run", file, "--root", await tmp(), "--queue", servers.redis.url], { env: childEnv(env) }).done;
    expect(r.code).toBe(1);
    await worker.waitFor(/task shout failed/);
    const log = worker.log();
    expect(log).not.toMatch(/[\u001b\u0007]/);
    expect(log).toMatch(/Z shout: warn line \\x1b\]0;PWNED-TITLE\\x07\\x1b\[2J\\x1b\[31mRED\\x1b\[0m\n\[shout\] worker stopped\n/);
    expect(log).toMatch(/Z task shout failed: boom \\x1b\[2J\\x1b\[H\\x1b\[32mfake ok\\x1b\[0m\n\[shout\] worker stopped/);
    expect(log).not.toMatch(/^worker stopped/m);
  }, 120_000);

  it("a worker whose flow has no such task refuses it, saying its checkout differs", async () => {
    const { env } = await testEnv("queue-unknown");
    const dir = await tmp("cairn-unknown-checkout-");
    const { readFile, symlink } = await import("node:fs/promises");
    const other = join(dir, "spread.flow.ts");
    await writeFile(other, (await readFile(spreadFlow, "utf8")).replace(`{ id: "g1" }).y`, `{ id: "g9" }).y`));
    await symlink(join(spreadFlow, "../../../../node_modules"), join(dir, "node_modules"));
    const worker = await startWorker(other, servers.redis.url, ["--root", await tmp()], { ...env, CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    workers.push(worker);
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url, "--failure-policy", "continue"], env).done;
    expect(r.code).toBe(1);
    const failed = r.json.find((e) => e.type === "task" && e.task === "g1" && e.status === "failed") as { error: { name: string; message: string } };
    expect(failed.error.name).toBe("UnknownQueuedTaskError");
    expect(failed.error.message).toContain(`Task "g1" was not run by worker ${workerId(worker)} (on `);
    expect(failed.error.message).toContain(`the flow in its ${other} has no task with that id`);
    expect(failed.error.message).toMatch(/No live worker whose flow has it took the task within \d+ s\./);
    expect(failed.error.message).toContain("another project's flow of the same name on the same Redis");
  }, 120_000);

  it("a worker whose flow has no such task (another project's flow of the same name) hands it back: a worker whose flow has it runs it", async () => {
    const { env, markerDir } = await testEnv("queue-unknown-hand-back");
    const dir = await tmp("cairn-unknown-checkout-");
    const { symlink } = await import("node:fs/promises");
    const other = join(dir, "spread.flow.ts");
    await writeFile(other, (await readFile(spreadFlow, "utf8")).replace(`{ id: "g1" }).y`, `{ id: "g9" }).y`));
    await symlink(join(spreadFlow, "../../../../node_modules"), join(dir, "node_modules"));
    const wrong = await startWorker(other, servers.redis.url, ["--root", await tmp()], env);
    workers.push(wrong);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await wrong.waitFor(/task g1 refused: the flow in its .* has no task with that id; handed back to the queue for a worker whose flow has it/);
    const [good] = await spawnWorkers(1, env);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { total: 37 } });
    expect((await markers(markerDir)).g1).toEqual([good!.child.pid]);
    expect(r.stderr).toContain(`Worker ${workerId(wrong)} (on `);
  }, 120_000);

  it("a job one worker refused goes to an idle worker that has not refused it at its next turn, not back to the one that refused it", async () => {
    const { env } = await testEnv("queue-refused-goes-on", { CAIRN_QUEUE_STALE_GRACE_MS: "60000" });
    const file = join(import.meta.dirname, "fixtures/one.flow.ts");
    // Started first, it waits on the queue longest, and Redis gives each run's job to it first.
    const wrong = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, TASK_ID: "other" });
    workers.push(wrong);
    const good = await startWorker(file, servers.redis.url, ["--root", await tmp()], env);
    workers.push(good);
    const at = (line: string) => Date.parse(line.slice(0, 24));
    const waits: number[] = [];
    for (let n = 1; n <= 4; n++) {
      const [wrongFrom, goodFrom] = [wrong.log().length, good.log().length];
      const r = await cairnRun(file, await tmp(), ["--queue", servers.redis.url, "-p", `n=${n}`], env).done;
      expect(r.code, r.stderr).toBe(0);
      const refused = wrong.log().slice(wrongFrom).split("\n").filter((l) => l.includes("task only refused"));
      const started = good.log().slice(goodFrom).split("\n").find((l) => l.includes("task only started"));
      expect(started, good.log()).toBeDefined();
      // Refused once at most: the idle worker takes it when it is next given out (a hand-back waits 0.5 s first).
      expect(refused.length, wrong.log()).toBeLessThanOrEqual(1);
      if (refused[0]) waits.push(at(started!) - at(refused[0]));
    }
    for (const wait of waits) expect(wait, String(waits)).toBeLessThan(1500);
  }, 120_000);

  it("Ctrl-C on the coordinator reaches the task running on a worker", async () => {
    const holdFile = join(await tmp(), "never");
    const { env, markerDir } = await testEnv("queue-cancel", { HOLD_FILE: holdFile });
    const [worker] = await spawnWorkers(1, env);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.json.at(-1)).toMatchObject({ type: "flow", status: "cancelled" });
    expect(r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "cancelled")).toBeDefined();
    const { readdir } = await import("node:fs/promises");
    expect(await readdir(markerDir)).toContain("hold.aborted");
    await worker!.waitFor(/task hold cancelled/);
    expect(worker!.log()).toMatch(/task hold cancelled: Cancelled: SIGINT\.\n/);
    expect(worker!.log()).not.toContain("[object Object]");
  }, 120_000);

  // The worker's run said "Cancelled: Cancelled: the flow run was cancelled.", plan "the flow run was cancelled: Cancelled: ...", and the report the same:
  // the coordinator's reason never reached the worker.
  it("an item cancelled on a worker because another failed under fail-fast says so in its run, in plan and in the report, as in one process", async () => {
    const { env } = await testEnv("queue-fail-fast", { THROW_AFTER_MS: "3000" });
    const file = join(import.meta.dirname, "fixtures/fail-fast-map.flow.ts");
    workers.push(await startWorker(file, servers.redis.url, ["--root", await tmp(), "--concurrency", "2"], env));
    const root = await tmp();
    const r = await cairnRun(file, root, ["--queue", servers.redis.url], env).done;
    expect(r.code, r.stderr).toBe(1);
    const flowRunId = String(r.json.at(-1)!.runId);
    const why = 'stopped because task "sq[0]" failed and the failure policy is fail-fast';
    const cancelled = r.json.find((e) => e.type === "task" && e.task === "sq[1]" && e.status === "cancelled") as { taskRunId?: string; error?: { message: string } } | undefined;
    expect(cancelled?.error?.message).toBe('Stopped because task "sq[0]" failed and the failure policy is fail-fast.');
    const { MlflowTracker } = await import("@cairn/mlflow/tracker");
    const tracker = MlflowTracker.fromEnv({ MLFLOW_TRACKING_URI: servers.mlflow.uri });
    const item = await tracker.getRun(cancelled!.taskRunId!);
    expect(item).toMatchObject({ status: "KILLED", tags: { "cairn.error.name": "FailFast", "cairn.error.message": 'Stopped because task "sq[0]" failed and the failure policy is fail-fast.' } });
    const plan = await start(process.execPath, [cairnBin, "plan", file, "--json", "--root", root], { env: childEnv(env) }).done;
    expect(plan.code, plan.stderr).toBe(0);
    const planned = JSON.parse(plan.stdout) as Array<{ task: string; reason: string; cancelled?: { why?: string } }>;
    expect(planned.find((p) => p.task === "sq[1]")?.cancelled?.why, plan.stdout).toBe(why);
    const { readReportData } = await import("@cairn/report");
    const report = await readReportData(tracker, flowRunId);
    expect(report.tasks.find((t) => t.id === "sq[1]")?.why).toContain(`cancelled: ${why}`);
  }, 120_000);

  it("a cancel whose message the worker missed (its subscriber was reconnecting) still stops the task there: the worker looks up the run's cancel mark while it runs", async () => {
    const holdFile = join(await tmp(), "never");
    const { env, markerDir } = await testEnv("queue-cancel-missed", { HOLD_FILE: holdFile });
    const [worker] = await spawnWorkers(1, env);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    let flowRunId: string | undefined;
    await until(async () => {
      const record = JSON.parse((await redisCli("GET", `cairn:worker:${workerId(worker!)}`)).trim() || "{}") as { running?: Array<{ task: string; flowRunId: string }> };
      flowRunId = record.running?.find((t) => t.task === "hold")?.flowRunId;
      return flowRunId !== undefined;
    }, "the worker's heartbeat to list hold");
    // The mark the coordinator's cancel leaves in Redis, without the message that goes with it: as a subscriber that was reconnecting misses it.
    await redisCli("SET", `cairn:cancelled:${flowRunId}`, "1", "PX", "600000");
    await until(() => existsSync(join(markerDir, "hold.aborted")), "hold to see its signal abort", 30_000);
    await worker!.waitFor(/task hold cancelled/);
    run.child.kill("SIGINT");
    await run.done;
  }, 120_000);

  it("Ctrl-C on the coordinator ends the process tree of a shell task running on a worker", async () => {
    const { env, markerDir } = await testEnv("queue-tree", { DELAY_S: "20" });
    const tree = join(import.meta.dirname, "fixtures/tree.flow.ts");
    workers.push(await startWorker(tree, servers.redis.url, ["--root", await tmp()], env));
    const run = cairnRun(tree, await tmp(), ["--queue", servers.redis.url], env);
    const pidsFile = join(markerDir, "sh-tree.pids");
    await until(() => existsSync(pidsFile) && readFileSync(pidsFile, "utf8").trim().split(" ").length === 2, "the tree to start");
    const pids = readFileSync(pidsFile, "utf8").trim().split(" ").map(Number);
    expect(pids.every(alive)).toBe(true);
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    await until(() => !pids.some(alive), "the tree to end", 15_000);
    expect(existsSync(join(markerDir, "sh-tree.child"))).toBe(false);
    expect(existsSync(join(markerDir, "sh-tree.done"))).toBe(false);
  }, 120_000);

  it("a coordinator killed mid-flow: the worker finishes its task, and a re-run takes every finished task from the cache", async () => {
    const holdFile = join(await tmp(), "go");
    const { env, markerDir } = await testEnv("queue-coordinator", { HOLD_FILE: holdFile });
    const [worker] = await spawnWorkers(1, env);
    const root = await tmp();
    const run = cairnRun(spreadFlow, root, ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    run.child.kill("SIGKILL");
    await run.done;
    await writeFile(holdFile, "go");
    await worker!.waitFor(/task hold succeeded/);
    const again = await cairnRun(spreadFlow, root, ["--queue", servers.redis.url], env).done;
    expect(again.code, again.stderr).toBe(0);
    const status = Object.fromEntries(again.json.filter((e) => e.type === "task" && ["cached", "succeeded"].includes(String(e.status))).map((e) => [e.task, e.status]));
    expect(status).toEqual({ s1: "cached", s2: "cached", g1: "cached", report: "cached", hold: "cached", sum: "succeeded" });
    expect((await markers(markerDir)).hold).toHaveLength(1);
  }, 120_000);
});

describe("what cairn says when --queue cannot work", () => {
  it("--queue without an MLflow server is refused, saying what to set", async () => {
    const { env } = await testEnv("queue-no-mlflow");
    delete (env as NodeJS.ProcessEnv).MLFLOW_TRACKING_URI;
    const r = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("QueueNeedsSharedTrackerError");
    expect(r.stderr).toContain("Set MLFLOW_TRACKING_URI=http://<mlflow-host>:5000 for the run and for every worker");
  }, 60_000);

  it("a queue URL that is not Redis's, and one where nothing answers", async () => {
    const { env } = await testEnv("queue-bad-url");
    const bad = await cairnRun(spreadFlow, await tmp(), ["--queue", "http://localhost:6379"], env).done;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`Expected the queue to be a Redis URL (redis://host:6379 or rediss://...), got "http://localhost:6379"`);
    const dead = await cairnRun(spreadFlow, await tmp(), ["--queue", "redis://127.0.0.1:1"], env).done;
    expect(dead.code).toBe(3); // a service down before the flow started, not a failed flow
    expect(dead.stderr).toContain("QueueUnreachableError: The queue at redis://127.0.0.1:1 did not answer while trying to open the queue");
  }, 60_000);

  it("cairn worker needs --queue or CAIRN_QUEUE; cairn workers lists the live ones; --healthcheck says ok", async () => {
    const { env } = await testEnv("queue-list");
    const none = await start(process.execPath, [cairnBin, "worker", spreadFlow], { env: childEnv(env) }).done;
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("Expected the queue's Redis URL (the Redis that `cairn run` sends tasks to) in CAIRN_QUEUE, or as --queue URL, got neither.");
    const [w] = await spawnWorkers(1, env, ["--pool", "gpu", "--pool", "default"]);
    const listed = await start(process.execPath, [cairnBin, "workers", "--queue", servers.redis.url, "--json"], { env: childEnv(env) }).done;
    expect(listed.code, listed.stderr).toBe(0);
    const mine = (JSON.parse(listed.stdout) as Array<{ pid: number; pools: string[]; flow: string }>).find((x) => x.pid === w!.child.pid);
    expect(mine).toMatchObject({ flow: "queue-list", pools: ["gpu", "default"] });
    const health = await start(process.execPath, [cairnBin, "worker", spreadFlow, "--queue", servers.redis.url, "--healthcheck"], { env: childEnv(env) }).done;
    expect(health.code, health.stderr).toBe(0);
    expect(health.stdout).toContain(`ok: flow "queue-list" loads, the queue answers`);
    const sick = await start(process.execPath, [cairnBin, "worker", spreadFlow, "--queue", "redis://127.0.0.1:1", "--healthcheck"], { env: childEnv(env) }).done;
    expect(sick.code).toBe(3);
    // Started where no Redis answers: a clear error and an exit, not a process that never takes a task.
    const orphan = await start(process.execPath, [cairnBin, "worker", spreadFlow, "--queue", "redis://127.0.0.1:1"], { env: childEnv(env) }).done;
    expect(orphan.code).toBe(3);
    expect(orphan.stderr).toContain("QueueUnreachableError: The queue at redis://127.0.0.1:1 did not answer while trying to start the worker");
    expect(orphan.stderr).not.toMatch(/MaxRetriesPerRequestError|\n\s+at /);
  }, 60_000);

  it("a worker whose clock is ahead: cairn workers and --healthcheck say so, with no negative heartbeat age", async () => {
    const { env } = await testEnv("queue-clock-ahead");
    const ahead = `${pathToFileURL(join(repo, "packages/cache/test/fixtures/skew-clock.mjs")).href}?ms=${120_000}`;
    const [w] = await spawnWorkers(1, { ...env, NODE_OPTIONS: `--import ${ahead}` });
    const listed = await start(process.execPath, [cairnBin, "workers", "--queue", servers.redis.url], { env: childEnv(env) }).done;
    expect(listed.code, listed.stderr).toBe(0);
    const row = listed.stdout.split("\n").find((l) => new RegExp(`\\s${w!.child.pid}\\s`).test(l));
    expect(row, listed.stdout).toMatch(/ recent; its clock is (?:1m 59s|2m 00s) ahead of this host's$/);
    expect(listed.stdout).not.toMatch(/-\d/);
    const health = await start(process.execPath, [cairnBin, "worker", spreadFlow, "--queue", servers.redis.url, "--healthcheck"], { env: childEnv(env) }).done;
    expect(health.code, health.stderr).toBe(0);
    expect(health.stdout).toMatch(/ \(recent; its clock is (?:1m 59s|2m 00s) ahead of this host's\)\n$/);
  }, 60_000);

  it("cairn worker drains on SIGTERM: it finishes its task, then exits 0", async () => {
    const holdFile = join(await tmp(), "go");
    const { env, markerDir } = await testEnv("queue-drain", { HOLD_FILE: holdFile });
    const [worker] = await spawnWorkers(1, env);
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    // `cairn workers` shows it running hold, once its next heartbeat is written.
    await until(async () => {
      const listed = await start(process.execPath, [cairnBin, "workers", "--queue", servers.redis.url, "--json"], { env: childEnv(env) }).done;
      const me = (JSON.parse(listed.stdout) as Array<{ pid: number; running: Array<{ task: string }> }>).find((x) => x.pid === worker!.child.pid);
      return me?.running.some((r) => r.task === "hold") === true;
    }, "cairn workers to list hold as running", 30_000);
    worker!.child.kill("SIGTERM");
    await worker!.waitFor(/SIGTERM: finishing the tasks running, taking no more/);
    await writeFile(holdFile, "go");
    const exit = await worker!.done;
    expect(exit.code).toBe(0);
    expect(worker!.log()).toMatch(/task hold succeeded[\s\S]*worker stopped/);
    // It took nothing more: sum waits for another worker, which runs it.
    await spawnWorkers(1, env);
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
  }, 120_000);
});

describe("at least once, and Redis going away", () => {
  it("cairn worker on SIGTERM once Redis is gone: it finishes its task, waits 5 s for Redis, then exits 0, saying what it left there", async () => {
    const own = await startRedisServer();
    const holdFile = join(await tmp(), "go");
    const { env, markerDir } = await testEnv("queue-drain-no-redis", { HOLD_FILE: holdFile });
    const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env);
    try {
      const w = await startWorker(spreadFlow, own.url, ["--root", await tmp()], env);
      workers.push(w);
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      await own.stop();
      w.child.kill("SIGTERM");
      await w.waitFor(/SIGTERM: finishing the tasks running, taking no more/);
      // The task still runs to its end, however long: only the wait on Redis after it is bounded.
      await sleep(6000);
      expect(w.child.exitCode).toBeNull();
      const released = performance.now();
      await writeFile(holdFile, "go");
      const exit = await w.done; // it waited for ever here
      expect(exit.code, w.log()).toBe(0);
      expect(performance.now() - released).toBeLessThan(20_000);
      expect(w.log()).toMatch(/task hold succeeded[\s\S]*did not answer for 5 s once the worker's tasks had ended: it leaves without telling it[\s\S]*worker stopped/);
      expect(w.log()).toContain(`Its heartbeat record (cairn:worker:${workerId(w)}) expires by itself within 6 s`);
      expect(w.log()).toMatch(/the jobs it took of task "hold" \(flow run [0-9a-f]+\) are not marked done there/);
    } finally {
      run.child.kill("SIGKILL");
      await own.stop().catch(() => {});
    }
  }, 120_000);

  it("cairn worker on SIGTERM while a job still prepares (its Python asked for the key for 8 s): it finishes the job and exits 0, without saying Redis did not answer", async () => {
    // The worker's Python is slow to answer Cairn's question for the key (a cold disk, a big
    // site-packages): its job has not started its task yet when the SIGTERM comes.
    const asked = join(await tmp(), "asked");
    const python = join(await tmp(), "python");
    await writeFile(python, `#!/bin/sh\nif [ -n "$SLOW_ASK" ] && [ "$1" = "-c" ]; then : > "$SLOW_ASK"; sleep 8; fi\nexec ${join(repo, ".venv/bin/python")} "$@"\n`, { mode: 0o755 });
    const file = join(import.meta.dirname, "fixtures/python.flow.ts");
    const { env } = await testEnv("queue-drain-preparing", { CAIRN_PYTHON: python, CAIRN_PYTHON_ENV_KEY: "1" });
    const w = await startWorker(file, servers.redis.url, ["--root", await tmp()], { ...env, RAN_ON: "worker", SLOW_ASK: asked });
    workers.push(w);
    const run = cairnRun(file, await tmp(), ["--queue", servers.redis.url], env);
    try {
      await until(async () => existsSync(asked), "the worker to ask its Python");
      w.child.kill("SIGTERM");
      const exit = await Promise.race([w.done, sleep(40_000).then(() => undefined)]);
      expect(w.log()).not.toContain("did not answer"); // Redis did: the job was still preparing
      expect(exit?.code, w.log()).toBe(0);
      expect(w.log()).toMatch(/SIGTERM: finishing the tasks running, taking no more[\s\S]*task py-step succeeded[\s\S]*worker stopped/);
      const r = await run.done;
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { ranOn: "worker" } });
    } finally {
      run.child.kill("SIGKILL");
    }
  }, 120_000);

  it("a re-run while the killed coordinator's task still runs: the second job waits for the first and reuses its result", async () => {
    const holdFile = join(await tmp(), "go");
    const { env, markerDir } = await testEnv("queue-twice", { HOLD_FILE: holdFile });
    const spawned = await spawnWorkers(2, env);
    const root = await tmp();
    const first = cairnRun(spreadFlow, root, ["--queue", servers.redis.url], env);
    await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
    first.child.kill("SIGKILL");
    await first.done;
    const again = cairnRun(spreadFlow, root, ["--queue", servers.redis.url], env);
    // Once the dead coordinator's lease lapses, the re-run sends hold again; a worker takes it and waits.
    await until(() => spawned.some((w) => /task hold waiting/.test(w.log())), "hold sent again, and waiting for the first", 60_000);
    await writeFile(holdFile, "go");
    const r = await again.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { total: 37 } });
    expect((await markers(markerDir)).hold).toHaveLength(1);
  }, 120_000);

  it("two coordinators of one flow on two machines at once (each its own store, one queue and server): every task runs once, and both flows have a run for each task", async () => {
    const { env, markerDir } = await testEnv("queue-two-coordinators", { SLEEP_MS: "400" });
    await spawnWorkers(2, env);
    const [a, b] = await Promise.all([cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done, cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url], env).done]);
    for (const r of [a, b]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.json.at(-1)).toMatchObject({ status: "succeeded", outputs: { total: 37 } });
    }
    const nodes = ["s1", "s2", "g1", "report", "hold", "sum"];
    expect(await Promise.all(nodes.map((n) => timesRun(markerDir, n)))).toEqual([1, 1, 1, 1, 1, 1]);
    // Each flow run has a FINISHED run for every task: the one that computed it, or a cache hit of that run.
    const hits: Record<string, number> = {};
    for (const r of [a, b]) {
      const shown = await show(String(r.json.at(-1)!.runId), env, "queue-two-coordinators");
      expect(shown.tasks.map((t) => t.name).sort()).toEqual(["g1", "hold", "report", "s1", "s2", "sum"]);
      for (const t of shown.tasks) {
        expect(t.status).toBe("FINISHED");
        if (t.tags["cairn.cached_from"]) hits[t.name] = (hits[t.name] ?? 0) + 1;
      }
      const cached = r.json.filter((e) => e.type === "task" && e.status === "cached").map((e) => String(e.task));
      expect(cached.sort()).toEqual(shown.tasks.filter((t) => t.tags["cairn.cached_from"]).map((t) => t.name).sort());
    }
    // Each task computed once in all: a hit in one flow at most (a task the second flow looked up after it was stored is a hit there too).
    for (const n of Object.values(hits)) expect(n).toBe(1);
    expect(Object.keys(hits).length).toBeGreaterThan(0);

    // --rerun on a third machine: s1 runs again, though a worker stored its entry just now.
    const rerun = await cairnRun(spreadFlow, await tmp(), ["--queue", servers.redis.url, "--rerun", "s1"], env).done;
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await timesRun(markerDir, "s1")).toBe(2);
    const s1 = (await show(String(rerun.json.at(-1)!.runId), env, "queue-two-coordinators")).tasks.find((t) => t.name === "s1");
    expect(s1?.tags["cairn.ran_because"]).toBe("forced");
    expect(rerun.json.find((e) => e.type === "task" && e.task === "s1" && ["cached", "succeeded"].includes(String(e.status)))).toMatchObject({ status: "succeeded" });
  }, 120_000);

  it("Redis killed while a task runs on a worker: the coordinator retries, then fails with a clear error", async () => {
    const own = await startRedisServer();
    try {
      const holdFile = join(await tmp(), "never");
      const { env, markerDir } = await testEnv("queue-redis-down", { HOLD_FILE: holdFile, CAIRN_QUEUE_DOWN_MS: "2000" });
      const w = await startWorker(spreadFlow, own.url, ["--root", await tmp()], env);
      workers.push(w);
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env);
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      await own.stop();
      const r = await run.done;
      expect(r.code).toBe(1);
      const failed = r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "failed") as { error: { name: string; message: string } };
      expect(failed.error.name).toBe("QueueUnreachableError");
      expect(failed.error.message).toContain(`The queue at ${own.url} did not answer while trying to wait for the tasks running on workers`);
      expect(r.json.filter((e) => e.type === "task" && e.status === "succeeded").map((e) => e.task).sort()).toEqual(["g1", "report", "s1", "s2"]);
    } finally {
      await own.stop().catch(() => {});
    }
  }, 120_000);
});

describe("Redis away longer than CAIRN_QUEUE_DOWN_MS", () => {
  it("a task its worker finished while Redis was away is taken from the worker's run: one run for the task, not a second FAILED one", async () => {
    const own = await startRedisServer();
    try {
      const holdFile = join(await tmp(), "go");
      const { env, markerDir } = await testEnv("queue-down-finished", { HOLD_FILE: holdFile, CAIRN_QUEUE_DOWN_MS: "4000" });
      workers.push(await startWorker(spreadFlow, own.url, ["--root", await tmp()], env));
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env);
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      await own.stop();
      // The worker finishes hold while Redis is away, and records it in MLflow; the coordinator
      // hears nothing of it, and gives up on Redis 4 s later.
      await writeFile(holdFile, "go");
      const r = await run.done;
      expect(r.code).toBe(1); // sum cannot be sent
      const flowRunId = String(r.json.at(-1)!.runId);
      expect(r.json.filter((e) => e.type === "task" && e.task === "hold" && ["succeeded", "failed"].includes(String(e.status))).map((e) => e.status), r.stderr).toEqual(["succeeded"]);
      const holds = (await taskRuns("queue-down-finished", flowRunId)).filter((t) => t.name === "hold");
      expect(holds.map((t) => ({ status: t.status, worker: Boolean(t.tags["cairn.worker"]) }))).toEqual([{ status: "FINISHED", worker: true }]);
      const failed = r.json.find((e) => e.type === "task" && e.task === "sum" && e.status === "failed") as { error: { name: string } };
      expect(failed.error.name).toBe("QueueUnreachableError");
    } finally {
      await own.stop().catch(() => {});
    }
  }, 120_000);
});

describe("Redis that loses its data", () => {
  it("a flushed Redis: the coordinator fails the task whose job is gone with QueueJobLostError, instead of waiting for ever", async () => {
    const own = await startRedisServer();
    try {
      const holdFile = join(await tmp(), "never");
      const { env, markerDir } = await testEnv("queue-job-lost", { HOLD_FILE: holdFile });
      workers.push(await startWorker(spreadFlow, own.url, ["--root", await tmp()], env));
      const run = cairnRun(spreadFlow, await tmp(), ["--queue", own.url], env);
      await until(async () => (await markers(markerDir)).hold !== undefined, "hold to start");
      // As a restart without persistence leaves it: everything gone, Redis answering.
      const { createConnection } = await import("node:net");
      const { hostname, port } = new URL(own.url);
      await new Promise<void>((resolve, reject) => {
        const c = createConnection({ host: hostname, port: Number(port) }, () => c.write("*1\r\n$8\r\nFLUSHALL\r\n"));
        c.once("data", () => (c.end(), resolve()));
        c.once("error", reject);
      });
      const r = await run.done;
      expect(r.code).toBe(1);
      const failed = r.json.find((e) => e.type === "task" && e.task === "hold" && e.status === "failed") as { error: { name: string; message: string } };
      expect(failed.error.name).toBe("QueueJobLostError");
      expect(failed.error.message).toContain(`no longer has the job of task "hold"`);
    } finally {
      await own.stop().catch(() => {});
    }
  }, 120_000);
});

describe("run({ dispatcher }) and run({ queue }) from an app", () => {
  it("runs the flow's tasks on the workers, and the app exits by itself", async () => {
    const { env, markerDir } = await testEnv("queue-api");
    const [w] = await spawnWorkers(1, env);
    const r = await tsxScript(join(import.meta.dirname, "fixtures/app.ts"), [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp() }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toEqual({ total: 37 });
    for (const pids of Object.values(await markers(markerDir))) expect(pids).toEqual([w!.child.pid]);
  }, 120_000);

  it("run({ queue: url }) opens the queue itself and closes it with the run: the same outputs, and the app exits by itself", async () => {
    const { env, markerDir } = await testEnv("queue-option");
    const [w] = await spawnWorkers(1, env);
    const r = await tsxScript(join(import.meta.dirname, "fixtures/app-queue.ts"), [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp() }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toEqual({ total: 37 });
    for (const pids of Object.values(await markers(markerDir))) expect(pids).toEqual([w!.child.pid]);
  }, 120_000);
  it("run({ queue, env }) sends the build its env names (CAIRN_TEST_BUILD), as its flow run's tag says: a worker of that build runs the tasks", async () => {
    const { env, markerDir } = await testEnv("queue-env-build");
    const [w] = await spawnWorkers(1, { ...env, CAIRN_TEST_BUILD: "0000000-given", CAIRN_QUEUE_STALE_GRACE_MS: "1000" });
    const r = await tsxScript(join(import.meta.dirname, "fixtures/app-queue.ts"), [], { ...env, QUEUE_URL: servers.redis.url, APP_ROOT: await tmp(), RUN_BUILD: "0000000-given" }).done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.at(-1)).toEqual({ total: 37 });
    for (const pids of Object.values(await markers(markerDir))) expect(pids).toEqual([w!.child.pid]);
  }, 120_000);
});
