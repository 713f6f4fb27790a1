/**
 * What the coordinator and its workers agree on in Redis: the queue of each flow's pool, a job's
 * id, the keys of live workers and cancelled flow runs, the channel that carries a cancel, and
 * one way to open a connection. Both sides import these, so a name is written once.
 */
import { createHash } from "node:crypto";
import { parseStoreUrl } from "@cairn/cache";
import { LONGEST_TIMER, LONGEST_TIMER_MS } from "@cairn/core";
import { Redis, type RedisOptions } from "ioredis";
import { QueueAuthError, QueueUnreachableError, QueueUrlError, WorkerOptionError } from "./errors.ts";

/** The pool of tasks that name none, and of workers started without `--pool`. */
export const DEFAULT_POOL = "default";

/** Key prefix of everything Cairn keeps in the queue's Redis besides BullMQ's own. */
const PREFIX = "cairn";

/** BullMQ's queue of a flow's pool; a queue name may not hold `:`. */
export function queueName(flowName: string, pool: string | undefined): string {
  return `cairn.${safe(flowName)}.${safe(pool ?? DEFAULT_POOL)}`;
}

/** One job per task of a flow run: a second send of the same task is the same job. */
export function jobId(flowRunId: string, nodeId: string): string {
  return `${safe(flowRunId)}.${createHash("sha256").update(nodeId).digest("hex").slice(0, 20)}`;
}

/** A live worker's heartbeat record. */
export function workerKey(id: string): string {
  return `${PREFIX}:worker:${id}`;
}
export const WORKER_KEYS = `${PREFIX}:worker:*`;

/** Set when a flow run is cancelled: a worker that takes one of its jobs later does not run it. */
export function cancelledKey(flowRunId: string): string {
  return `${PREFIX}:cancelled:${flowRunId}`;
}

/** Where cancels are published: `{ flowRunId }`. */
export const CANCEL_CHANNEL = `${PREFIX}:cancel`;

/** Where workers publish the log lines of a flow run's tasks, for its coordinator's events. */
export function logChannel(flowRunId: string): string {
  return `${PREFIX}:log:${flowRunId}`;
}

/** Held while a worker computes a cache key: a second job of the same key waits for it (at-least-once made harmless). */
export function computingKey(cacheKey: string): string {
  return `${PREFIX}:computing:${cacheKey}`;
}

/**
 * Set for {@link COMPUTED_MS} once a worker stored a cache key's entry: a later job of the key
 * (another coordinator's, whose lookup came before the entry was stored) looks it up first.
 */
export function computedKey(cacheKey: string): string {
  return `${PREFIX}:computed:${cacheKey}`;
}
export const COMPUTED_MS = 60 * 60 * 1000;

/**
 * Left by a worker that finished a job whose lock had lapsed (Redis did not answer for longer than
 * the lock), so that BullMQ no longer took its outcome: the job's next taker hands this outcome
 * back instead of running the task a second time. Kept {@link KEPT_OUTCOME_MS} at most.
 */
export function keptOutcomeKey(jobId: string): string {
  return `${PREFIX}:outcome:${jobId}`;
}
export const KEPT_OUTCOME_MS = 60 * 60 * 1000;

function safe(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}

/**
 * Checks `url` where it enters, by the cache store's rules (the one `parseStoreUrl`): ioredis read a port
 * that is not a number as 6379 (another Redis, used without a word) and a path that is not a
 * database number as `SELECT NaN` (a crash, exit 1: "unhealthy" to a supervisor), and threw a bare
 * "URI malformed" for a password holding a raw `%`.
 */
export function checkQueueUrl(url: unknown): string {
  if (typeof url !== "string" || !/^rediss?:\/\/./.test(url)) throw new QueueUrlError(url);
  // Unencoded user info may parse, with part of the password as the host: Redis's "ENOTFOUND <that part>" printed it.
  const { problem } = parseStoreUrl(url);
  if (problem) throw new QueueUrlError(url, { ...problem, ...(problem.expected === undefined ? {} : { expected: `${problem.expected} (the queue URL)` }) });
  return url;
}

/**
 * The password of a queue URL, as credentials to mask (SecretRegistry.maskCredentials): decoded,
 * and as the URL writes it when that differs (a URL printed whole holds that form). Empty when
 * the URL has none.
 */
export function queueCredentials(url: string): Record<string, string> {
  let raw: string;
  try {
    raw = new URL(url).password;
  } catch {
    return {};
  }
  if (!raw) return {};
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    // checkQueueUrl refuses such a URL; the raw form is masked all the same
  }
  return { "the queue URL's password": decoded, ...(decoded !== raw ? { "the queue URL's password, percent-encoded": raw } : {}) };
}

/**
 * A connection to the queue's Redis. `blocking`: for BullMQ's workers and event readers, whose
 * commands wait for ever (BullMQ asks for no per-request retry limit there).
 */
export function connect(url: string, options: { blocking?: boolean } = {}): Redis {
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    // Commands fail after a few reconnects instead of queueing while Redis is down.
    maxRetriesPerRequest: options.blocking ? null : 3,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  };
  const redis = new Redis(url, redisOptions);
  // Kept for messages: "connect ECONNREFUSED 127.0.0.1:6379" says more than ioredis's retry limit.
  redis.on("error", (error: Error) => lastErrors.set(redis, error));
  return redis;
}

const lastErrors = new WeakMap<Redis, Error>();

/** Why a command on `redis` failed, in the words of its connection's last error when it has one. */
export function whyUnreachable(redis: Redis, failure: unknown): unknown {
  return lastErrors.get(redis) ?? failure;
}

/**
 * The error a failed command on `redis` stands for: QueueAuthError when Redis answered with a
 * refusal of the URL's credentials or its user's rights (`WRONGPASS`, `NOAUTH`, `NOPERM`), which
 * no retry fixes; else QueueUnreachableError.
 */
export function queueFailure(url: string, operation: string, redis: Redis, failure: unknown, options: { inRun?: boolean } = {}): QueueAuthError | QueueUnreachableError {
  const cause = whyUnreachable(redis, failure);
  for (const e of [failure, cause]) {
    const message = e instanceof Error ? e.message : "";
    if (/^(WRONGPASS|NOAUTH|NOPERM)\b/.test(message)) return new QueueAuthError(url, operation, message.split("\n")[0]!);
  }
  return new QueueUnreachableError(url, operation, { cause, ...options });
}

/**
 * The integer `env[name]` holds, or `fallback` when it is unset or empty. Anything else (`30s`,
 * `0`, `-1`, `0x10`, `1e3`) is refused naming the variable: a typo once fell back to the default
 * unseen. A `_MS` variable is milliseconds, at most `LONGEST_TIMER_MS`: a longer timer fires after
 * 1 ms (BullMQ's stalled check did, in a loop).
 */
export function integerFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const millis = name.endsWith("_MS");
  const max = millis ? LONGEST_TIMER_MS : Number.MAX_SAFE_INTEGER;
  const n = Number(raw);
  // Digits only: Number() also reads `0x10` (16) and `1e3`.
  if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new WorkerOptionError(
      name,
      millis
        ? `a whole number of milliseconds from ${min} to ${LONGEST_TIMER}, in digits; unset for ${fallback}`
        : `an integer >= ${min}, in digits; unset for ${fallback}`,
      raw,
    );
  }
  return n;
}
