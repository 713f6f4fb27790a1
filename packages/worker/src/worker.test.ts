import { describe, expect, it } from "vitest";
import { CacheStore, CacheStoreUrlError } from "@cairn/cache";
import { flow, task } from "@cairn/dsl";
import { queueDispatcher } from "./dispatcher.ts";
import { QueueUrlError, WorkerOptionError } from "./errors.ts";
import { checkQueueUrl, jobId, queueName } from "./queue-names.ts";
import { startWorker } from "./worker.ts";
import { checkQueue, listWorkers } from "./workers-list.ts";

const f = flow("options").build(() => ({ y: task("t").run(() => ({ y: 1 }))().y }));

describe("options, checked where they enter", () => {
  it("startWorker refuses a bad concurrency, pool or death limit before it connects", async () => {
    const base = { flow: f.definition, file: "flow.ts", queue: "redis://127.0.0.1:1" };
    await expect(startWorker({ ...base, concurrency: 0 })).rejects.toThrow(new WorkerOptionError("concurrency", "an integer >= 1", 0).message);
    await expect(startWorker({ ...base, pools: [""] })).rejects.toThrow('Expected `pools` to be pool names (ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, as .pool() takes them), got [""].');
    // cairn run's form: a worker of a pool literally named "gpu=2", which no task names.
    await expect(startWorker({ ...base, pools: ["gpu=2"] })).rejects.toThrow(
      'Expected `pools` to be pool names (ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`, as .pool() takes them); a worker takes a pool\'s name only (--pool gpu): its limit is cairn run\'s --pool NAME=N, got ["gpu=2"].',
    );
    await expect(startWorker({ ...base, pools: [" "] })).rejects.toThrow(WorkerOptionError);
    await expect(startWorker({ ...base, maxDeaths: 0 })).rejects.toThrow("Expected `maxDeaths` to be an integer >= 1, got 0.");
    // Read only as each job ran, it failed every job the worker took: refused at start, as cairn run does (exit 2).
    await expect(startWorker({ ...base, env: { CAIRN_LARGE_OUTPUT_MB: "10MB" } })).rejects.toThrow(/Expected `CAIRN_LARGE_OUTPUT_MB` to be an integer of MB.*got "10MB"/);
    await expect(startWorker({ ...base, queue: "localhost:6379" })).rejects.toThrow(QueueUrlError);
    // A mistyped scheme with a password in it: the message keeps the host, never the password.
    const error = (await startWorker({ ...base, queue: `http://cairn:"pa'ss"@queue-host:6379` }).then(() => undefined, (e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(QueueUrlError);
    expect(error.message).toContain("queue-host:6379");
    expect(error.message).not.toContain("pa'ss");
    // A password with `@` then `#` parses with part of it as the host (ENOTFOUND printed it): refused first.
    const split = (await startWorker({ ...base, queue: "redis://user:p@ss#word@127.0.0.1:1" }).then(() => undefined, (e: unknown) => e)) as Error;
    expect(split).toBeInstanceOf(QueueUrlError);
    expect(split.message).toBe(
      'Expected the URL\'s user name and password to be percent-encoded (the queue URL), got "redis://user:***@127.0.0.1:1" ' +
        "(it holds more than one `@`, or a `#`, `/` or `?` before its last `@`, so part of the password would be read as the host). " +
        "Percent-encode the user name and password (encodeURIComponent does): %40 for @, %23 for #, %2F for /, %3F for ?, %3A for :, %25 for %.",
    );
    expect(() => queueDispatcher("redis://:p@ss#word@127.0.0.1:1")).toThrow(QueueUrlError);
    // A token holding a `/` parses as a host and a path: the refusal hides up to the last `@`.
    const token = (await startWorker({ ...base, queue: "redis://Tok3n/Abc@127.0.0.1:1" }).then(() => undefined, (e: unknown) => e)) as Error;
    expect(token).toBeInstanceOf(QueueUrlError);
    expect(token.message).toContain('got "redis://***@127.0.0.1:1"');
    expect(() => queueDispatcher("postgres://x")).toThrow(`Expected the queue to be a Redis URL (redis://host:6379 or rediss://...), got "postgres://x".`);
  });

  // ioredis read `:notaport` as 6379 (another Redis, used without a word) and `/abc` as `SELECT NaN` (a crash).
  it.each([
    ["redis://127.0.0.1:6379/abc", 'Expected the path of a redis URL to be a database number (redis://host:6379/1) or nothing (the queue URL), got "redis://127.0.0.1:6379/abc" (its path is "/abc"). Give a database number'],
    ["redis://127.0.0.1:notaport", 'Expected the port of a redis:// URL to be a number from 1 to 65535 (the queue URL), got "redis://127.0.0.1:notaport" (its port is "notaport"). Give the port in digits, or leave `:PORT` out for 6379.'],
    ["redis://127.0.0.1:99999", '(its port is "99999")'],
    ["rediss://127.0.0.1:0", 'Expected the port of a rediss:// URL to be a number from 1 to 65535 (the queue URL), got "rediss://127.0.0.1:0" (its port is "0")'],
  ])("the queue URL %s is refused with a QueueUrlError before anything connects", async (queue, reason) => {
    expect(() => queueDispatcher(queue)).toThrow(QueueUrlError);
    expect(() => queueDispatcher(queue)).toThrow(reason);
    await expect(startWorker({ flow: f.definition, file: "flow.ts", queue })).rejects.toThrow(reason);
    await expect(listWorkers(queue)).rejects.toThrow(QueueUrlError);
    await expect(checkQueue(queue)).rejects.toThrow(QueueUrlError);
  });

  // One parser for both (parseStoreUrl): ioredis threw a bare "URI malformed" for a raw `%` the cache store refused.
  it.each([
    ["redis://:pa%zz@127.0.0.1:1", "password to be percent-encoded"],
    ["redis://us%er:pw@127.0.0.1:1", "user name to be percent-encoded"],
    ["redis://user:p@ss#word@127.0.0.1:1", "user name and password to be percent-encoded"],
    ["redis://:pw@[::1:6379", "a redis:// URL that parses"],
    ["redis://127.0.0.1:0", "the port of a redis:// URL"],
    ["rediss://127.0.0.1:6379/abc", "the path of a redis URL"],
  ])("the redis URL %s is refused alike by the queue and the cache store, naming which", async (url, expected) => {
    const queue = (() => {
      try {
        checkQueueUrl(url);
      } catch (error) {
        return error;
      }
    })() as Error;
    expect(queue).toBeInstanceOf(QueueUrlError);
    expect(queue.message).toContain(expected);
    expect(queue.message).toContain("(the queue URL)");
    expect(() => queueDispatcher(url)).toThrow(QueueUrlError);
    const cache = (await CacheStore.fromUrl(url, { connectTimeoutMs: 500 }).catch((e: unknown) => e)) as Error;
    expect(cache).toBeInstanceOf(CacheStoreUrlError);
    expect(cache.message).toContain(expected);
    for (const message of [queue.message, cache.message]) expect(message).not.toMatch(/pa%zz|ss#word/);
  });

  it("a CAIRN_QUEUE_* variable that is no integer >= 1 is refused naming it, not taken as the default", async () => {
    const base = { flow: f.definition, file: "flow.ts", queue: "redis://127.0.0.1:1" };
    await expect(startWorker({ ...base, env: { CAIRN_QUEUE_LOCK_MS: "30s" } })).rejects.toThrow(/^Expected `CAIRN_QUEUE_LOCK_MS` to be a whole number of milliseconds from 1 to 2147483647 .*, got "30s"\.$/);
    await expect(startWorker({ ...base, env: { CAIRN_QUEUE_MAX_DEATHS: "0" } })).rejects.toThrow(WorkerOptionError);
    await expect(startWorker({ ...base, env: { CAIRN_QUEUE_STALE_GRACE_MS: "15s" } })).rejects.toThrow(/^Expected `CAIRN_QUEUE_STALE_GRACE_MS` to be a whole number of milliseconds from 1 .*, got "15s"\.$/);
    await expect(startWorker({ ...base, staleGraceMs: 0 })).rejects.toThrow("Expected `staleGraceMs` to be an integer from 1 to 2147483647, got 0.");
    const saved = process.env.CAIRN_QUEUE_DOWN_MS;
    process.env.CAIRN_QUEUE_DOWN_MS = "-5";
    try {
      expect(() => queueDispatcher("redis://127.0.0.1:1")).toThrow(/`CAIRN_QUEUE_DOWN_MS` to be a whole number of milliseconds from 1 to 2147483647/);
    } finally {
      if (saved === undefined) delete process.env.CAIRN_QUEUE_DOWN_MS;
      else process.env.CAIRN_QUEUE_DOWN_MS = saved;
    }
  });

  // Past 2147483647 Node's timers fire after 1 ms: BullMQ's stalled check ran in a loop, ~480 Redis commands a second.
  it.each(["3000000000", "2147483648", "0x10", "1e3", "1.5"])("CAIRN_QUEUE_LOCK_MS=%s is refused", async (raw) => {
    const base = { flow: f.definition, file: "flow.ts", queue: "redis://127.0.0.1:1" };
    await expect(startWorker({ ...base, env: { CAIRN_QUEUE_LOCK_MS: raw } })).rejects.toThrow(
      `Expected \`CAIRN_QUEUE_LOCK_MS\` to be a whole number of milliseconds from 1 to 2147483647 (about 24.8 days, the longest a Node timer waits), in digits; unset for 30000, got "${raw}".`,
    );
    await expect(startWorker({ ...base, env: { CAIRN_QUEUE_STALE_GRACE_MS: raw } })).rejects.toThrow(WorkerOptionError);
    await expect(startWorker({ ...base, lockMs: 3e9 })).rejects.toThrow("Expected `lockMs` to be an integer from 1 to 2147483647, got 3000000000.");
  });

  it("CAIRN_QUEUE_MAX_DEATHS is a count: digits only, no timer bound", async () => {
    const base = { flow: f.definition, file: "flow.ts", queue: "redis://127.0.0.1:1" };
    await expect(startWorker({ ...base, env: { CAIRN_QUEUE_MAX_DEATHS: "0x10" } })).rejects.toThrow('Expected `CAIRN_QUEUE_MAX_DEATHS` to be an integer >= 1, in digits; unset for 3, got "0x10".');
  });

  it("queue names and job ids hold no `:` (BullMQ's separator), and a task of a run is one job", () => {
    expect(queueName("my flow:v2", undefined)).toBe("cairn.my_flow_v2.default");
    expect(queueName("f", "gpu")).toBe("cairn.f.gpu");
    expect(jobId("run1", "a:b")).toBe(jobId("run1", "a:b"));
    expect(jobId("run1", "a:b")).not.toContain(":");
    expect(jobId("run1", "a")).not.toBe(jobId("run1", "b"));
  });
});
