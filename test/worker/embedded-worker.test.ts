/**
 * `cli(["worker", ...])` in an app (README, Embedding): without `handleSignals` the worker takes
 * none of the app's signals, and `io.signal` is how the app stops it.
 */
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RedisServer, startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { main } from "../../packages/cli/src/main.ts";
import { listWorkers } from "../../packages/worker/src/index.ts";
import { tmp } from "../cache/helpers.ts";
import { spreadFlow } from "./helpers.ts";

let redis: RedisServer | undefined;
beforeAll(async () => {
  redis = await startRedisServer();
}, 180_000);
afterAll(() => redis?.stop());

describe("a worker started through main() without handleSignals", () => {
  it("adds no SIGINT/SIGTERM/SIGHUP listener, and stops when io.signal aborts", async () => {
    const before = { SIGINT: process.listenerCount("SIGINT"), SIGTERM: process.listenerCount("SIGTERM"), SIGHUP: process.listenerCount("SIGHUP") };
    const stderr = new PassThrough();
    let log = "";
    stderr.on("data", (d: Buffer) => (log += d));
    const stop = new AbortController();
    const url = redis!.url;
    const exited = main(["worker", spreadFlow, "--queue", url, "--root", await tmp("cairn-embedded-worker-")], {
      stdout: new PassThrough(),
      stderr,
      env: {},
      signal: stop.signal,
    });
    const end = Date.now() + 30_000;
    while (!/worker \S+ ready/.test(log)) {
      if (Date.now() > end) throw new Error(`the worker never said it was ready:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await listWorkers(url)).toHaveLength(1);
    // A Ctrl-C meant for the app reaches the app's handlers only.
    expect({ SIGINT: process.listenerCount("SIGINT"), SIGTERM: process.listenerCount("SIGTERM"), SIGHUP: process.listenerCount("SIGHUP") }).toEqual(before);
    stop.abort();
    expect(await exited).toBe(0);
    expect(log).toContain("io.signal aborted: finishing the tasks running, taking no more");
    expect(log).toContain("worker stopped");
    expect(await listWorkers(url)).toEqual([]);
  });
});
