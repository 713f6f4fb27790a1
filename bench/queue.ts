/**
 * Tasks through a Redis queue (`cairn run --queue`, `cairn worker`) against the same flow in one
 * process, both recording to one real MLflow server, on a real redis-server; workers are real
 * `cairn worker` processes. Prints one JSON line:
 * - dispatch overhead per task: a chain of no-op tasks (each waits for the one before), run in
 *   process and through the queue with one worker, alternately; the median difference per task;
 * - throughput of independent 1 s tasks with 1, 2, 4 and 8 workers (4 tasks per worker), as
 *   tasks per second and its ratio to N × one worker's.
 *   tsx bench/queue.ts [chain=30] [rounds=3]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRedisServer } from "../packages/cache/test/redis-server.ts";
import { startMlflowServer } from "../packages/mlflow/test/mlflow-server.ts";

const chain = Number(process.argv[2] ?? 30);
const rounds = Number(process.argv[3] ?? 3);
const here = import.meta.dirname;
const cairn = join(here, "..", "packages/cli/bin/cairn.mjs");
const flowFile = join(here, "queue-flow.ts");

const [redis, mlflow] = await Promise.all([startRedisServer(), startMlflowServer()]);
const baseEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", CAIRN_NO_AUTORUN: "1", MLFLOW_TRACKING_URI: mlflow.uri };
delete baseEnv.CAIRN_CACHE_URL;
const scratch = await mkdtemp(join(tmpdir(), "cairn-bench-queue-"));
const children: ChildProcess[] = [];

/** `cairn worker` processes, resolved once each says it is ready. */
async function workers(n: number, env: NodeJS.ProcessEnv): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const child = spawn(process.execPath, [cairn, "worker", flowFile, "--queue", redis.url, "--root", join(scratch, `w${i}`)], { env, stdio: ["ignore", "ignore", "pipe"], detached: true });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        let log = "";
        child.stderr!.on("data", (d: Buffer) => {
          log += d;
          if (log.includes("ready")) resolve();
        });
        child.on("exit", () => reject(new Error(`worker exited:\n${log}`)));
      });
      return child;
    }),
  );
}

function stop(ws: ChildProcess[]): Promise<void> {
  const gone = (w: ChildProcess) => w.exitCode !== null || w.signalCode !== null;
  return Promise.all(
    ws.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (gone(w)) return resolve();
          w.once("exit", () => resolve());
          try {
            process.kill(-w.pid!, "SIGKILL");
          } catch {
            resolve(); // already gone
          }
        }),
    ),
  ).then(() => undefined);
}

/** The flow's own duration (its final event's durationMs): process start is not counted. */
async function runFlow(env: NodeJS.ProcessEnv, args: string[]): Promise<number> {
  const child = spawn(process.execPath, [cairn, "run", flowFile, "--json", "--no-cache", "--root", join(scratch, "c"), "--concurrency", "32", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d));
  child.stderr.on("data", (d: Buffer) => (err += d));
  const code = await new Promise<number | null>((r) => child.on("close", r));
  const last = JSON.parse(out.trim().split("\n").at(-1)!) as { status: string; durationMs: number };
  if (code !== 0 || last.status !== "succeeded") throw new Error(`flow failed (${code}):\n${err}`);
  return last.durationMs;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

try {
  // Dispatch overhead: a chain, in process and through one worker, alternately.
  const chainEnv = { ...baseEnv, BENCH_SHAPE: "chain", BENCH_N: String(chain), BENCH_FLOW: "queue-bench-chain", MLFLOW_EXPERIMENT_NAME: "queue-bench-chain" };
  const one = await workers(1, chainEnv);
  await runFlow(chainEnv, ["--queue", redis.url]); // warm: the experiment, the bundle, the worker's first task
  await runFlow(chainEnv, []);
  const local: number[] = [];
  const queued: number[] = [];
  for (let r = 0; r < rounds; r++) {
    local.push(await runFlow(chainEnv, []));
    queued.push(await runFlow(chainEnv, ["--queue", redis.url]));
  }
  await stop(one);
  const overheadMsPerTask = Math.round(((median(queued) - median(local)) / chain) * 100) / 100;

  // Throughput: 4 tasks of 1 s per worker.
  const throughput: Record<string, { tasks: number; ms: number; tasksPerS: number; ratio?: number }> = {};
  let single = 0;
  for (const n of [1, 2, 4, 8]) {
    const tasks = 4 * n;
    const env = { ...baseEnv, BENCH_SHAPE: "wide", BENCH_N: String(tasks), BENCH_SLEEP_MS: "1000", BENCH_FLOW: `queue-bench-wide-${n}`, MLFLOW_EXPERIMENT_NAME: `queue-bench-wide-${n}` };
    const ws = await workers(n, env);
    const ms = await runFlow(env, ["--queue", redis.url]);
    await stop(ws);
    const tasksPerS = Math.round((tasks / (ms / 1000)) * 100) / 100;
    if (n === 1) single = tasksPerS;
    throughput[`workers${n}`] = { tasks, ms, tasksPerS, ratio: Math.round((tasksPerS / (n * single)) * 100) / 100 };
  }
  console.log(JSON.stringify({ chain, localChainMs: median(local), queuedChainMs: median(queued), overheadMsPerTask, throughput }));
} finally {
  await stop(children);
  await Promise.all([redis.stop(), mlflow.stop()]);
}
