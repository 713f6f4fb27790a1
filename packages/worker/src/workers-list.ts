/**
 * The live workers of a queue (`cairn workers`), from the heartbeats they keep in its Redis, and
 * the reachability check behind `cairn worker --healthcheck`.
 */
import type { Redis } from "ioredis";
import { checkQueueUrl, connect, queueFailure, WORKER_KEYS } from "./queue-names.ts";

/** A live worker's record in Redis, as `cairn workers` lists it. */
export interface WorkerRecord {
  id: string;
  host: string;
  pid: number;
  flow: string;
  file: string;
  pools: string[];
  concurrency: number;
  /** The Cairn it runs, "0.1.0+57ab83a", as `cairn --version` prints it; absent for a worker older than this field. */
  cairn?: string;
  running: Array<{ task: string; flowRunId: string; since: number }>;
  startedAt: number;
  /** Epoch ms of its last heartbeat. */
  beatAt: number;
}

/** Every worker whose heartbeat is fresh, oldest first. */
export async function listWorkers(url: string): Promise<WorkerRecord[]> {
  const redis = connect(checkQueueUrl(url));
  try {
    return await readWorkers(redis);
  } catch (cause) {
    throw queueFailure(url, "list its workers", redis, cause);
  } finally {
    redis.disconnect();
  }
}

/** The records of the live workers, read through an open connection. */
export async function readWorkers(redis: Redis): Promise<WorkerRecord[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", WORKER_KEYS, "COUNT", 200);
    cursor = next;
    keys.push(...found);
  } while (cursor !== "0");
  const values = keys.length ? await redis.mget(keys) : [];
  return values.flatMap((v) => (v ? [JSON.parse(v) as WorkerRecord] : [])).sort((a, b) => a.startedAt - b.startedAt);
}

/** Resolves when Redis answers at `url`; rejects with QueueUnreachableError, or QueueAuthError when it refuses the URL's credentials. */
export async function checkQueue(url: string): Promise<void> {
  const redis = connect(checkQueueUrl(url));
  try {
    await redis.ping();
  } catch (cause) {
    throw queueFailure(url, "check it", redis, cause);
  } finally {
    redis.disconnect();
  }
}
