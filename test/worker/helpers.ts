/**
 * Helpers of the queue tests: real `cairn worker` processes on a real redis-server, a real
 * MLflow server, and `cairn run --queue` as a real process.
 */
import type { ChildProcess } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll } from "vitest";
import { type RedisServer, startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { type MlflowServer, startMlflowServer } from "../../packages/mlflow/test/mlflow-server.ts";
import { cairnBin, childEnv, type Exit, killGroup, repo, start } from "../cache/helpers.ts";

export const spreadFlow = join(repo, "test/worker/fixtures/spread.flow.ts");

export interface StartedWorker {
  child: ChildProcess;
  done: Promise<Exit>;
  /** Its stderr so far (its log). */
  log(): string;
  /** Resolves once its log matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
}

/** `cairn worker FILE --queue URL ...args`, resolved once it says it is ready. */
export async function startWorker(file: string, url: string, args: string[], env: NodeJS.ProcessEnv): Promise<StartedWorker> {
  const started = start(process.execPath, [cairnBin, "worker", file, "--queue", url, ...args], { env: childEnv(env) });
  let log = "";
  const waiters = new Set<() => void>();
  started.child.stderr!.on("data", (d: Buffer) => {
    log += d;
    for (const w of waiters) w();
  });
  const waitFor = (pattern: RegExp, timeoutMs = 60_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!pattern.test(log)) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`worker log never matched ${pattern}:\n${log}`));
      }, timeoutMs);
      waiters.add(check);
      void started.done.then(() => {
        if (!pattern.test(log)) {
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`worker exited before its log matched ${pattern}:\n${log}`));
        }
      });
      check();
    });
  const worker: StartedWorker = { ...started, log: () => log, waitFor, kill: (signal = "SIGKILL") => killGroup(started.child, signal) };
  await waitFor(/ready/);
  return worker;
}

/** The markers in `dir`: node → pids that ran it. */
export async function markers(dir: string): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const name of await readdir(dir)) {
    const [node, pid] = name.split(".");
    if (!node || pid === undefined || !/^\d+$/.test(pid)) continue;
    (out[node] ??= []).push(Number(pid));
  }
  return out;
}

/** How many times `node` ran, over all processes: each run appends one byte to its `<node>.<pid>` marker. */
export async function timesRun(dir: string, node: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(dir)) if (name.startsWith(`${node}.`) && /^\d+$/.test(name.slice(node.length + 1))) n += (await stat(join(dir, name))).size;
  return n;
}

/**
 * A real redis-server and mlflow server, started before the file's tests and stopped after them;
 * `workers` holds the workers a test starts, killed after each test.
 */
export function useQueueServers(): { readonly redis: RedisServer; readonly mlflow: MlflowServer; readonly workers: StartedWorker[] } {
  let redis: RedisServer | undefined;
  let mlflow: MlflowServer | undefined;
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
  return {
    get redis() {
      return redis!;
    },
    get mlflow() {
      return mlflow!;
    },
    workers,
  };
}

