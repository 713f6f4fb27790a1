/**
 * A task returning large outputs through a Redis queue: one real `cairn worker`, `cairn run
 * --queue` as a real process, a real redis-server and MLflow server. For each size (MB of JSON),
 * prints one JSON line: the wall time of `cairn run`, and the peak RSS (VmHWM, from /proc) of the
 * coordinator, the worker and redis-server (its `used_memory_peak` too), each started afresh.
 *   tsx bench/queue-big-outputs.ts [sizes=10,100]
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRedisServer } from "../packages/cache/test/redis-server.ts";
import { startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const sizes = (process.argv[2] ?? "10,100").split(",").map(Number);
const cairn = join(import.meta.dirname, "..", "packages/cli/bin/cairn.mjs");
const flowFile = join(import.meta.dirname, "queue-big-outputs-flow.ts");

/** A process's peak resident memory so far, in MB; 0 once it is gone. */
function peakMb(pid: number): number {
  try {
    return Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}

for (const mb of sizes) {
  const [redis, mlflow] = await Promise.all([startRedisServer(), startMlflowServer()]);
  try {
    const redisPid = Number(execFileSync("pgrep", ["-f", `redis-server.*:${redis.port}`]).toString().split("\n")[0]);
    const name = `big-outputs-${mb}`;
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", CAIRN_NO_AUTORUN: "1", FLOW_NAME: name, MLFLOW_TRACKING_URI: mlflow.uri, MLFLOW_EXPERIMENT_NAME: name };
    delete env.CAIRN_CACHE_URL;
    const worker = spawn(process.execPath, [cairn, "worker", flowFile, "--queue", redis.url, "--root", await mkdtemp(join(tmpdir(), "cairn-bench-bigw-"))], { env, stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    worker.stderr!.on("data", (d: Buffer) => (log += d));
    while (!/ready/.test(log)) await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    const coordinator = spawn(process.execPath, [cairn, "run", flowFile, "--queue", redis.url, "--root", await mkdtemp(join(tmpdir(), "cairn-bench-bigc-")), "-p", `mb=${mb}`], { env, stdio: "ignore" });
    // Read while it runs: its /proc entry goes with it.
    let coordinatorMb = 0;
    const watch = setInterval(() => (coordinatorMb = Math.max(coordinatorMb, peakMb(coordinator.pid!))), 20);
    const code = await new Promise<number | null>((r) => coordinator.on("close", r));
    clearInterval(watch);
    const wallMs = Math.round(performance.now() - t0);
    const usedPeak = Number(/used_memory_peak:(\d+)/.exec(execFileSync("redis-cli", ["-u", redis.url, "info", "memory"]).toString())?.[1]);
    console.log(JSON.stringify({ mb, code, wallMs, coordinatorMb, workerMb: peakMb(worker.pid!), redisMb: peakMb(redisPid), redisUsedPeakMb: Math.round(usedPeak / 1e6) }));
    worker.kill("SIGTERM");
    await new Promise((r) => worker.on("close", r));
  } finally {
    await Promise.all([redis.stop(), mlflow.stop()]);
  }
}
