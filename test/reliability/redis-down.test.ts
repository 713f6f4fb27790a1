/**
 * A shared cache store that dies or is not there never hangs a run (class 5 of the hardening
 * issue). With a real redis-server, stopped while a flow runs, and a closed port for one that is
 * unreachable at the start: by default the run goes on without the shared cache with one
 * warning; under the strict option it fails with a CacheBackendError, and the CLI prints it
 * without a stack trace. Time bounds are loose (well under the old hangs), never tight.
 */
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { CacheBackendError, CacheStore } from "@cairn/cache";
import { flow, task } from "@cairn/dsl";
import { freePort } from "../../packages/cache/test/_free-port.ts";
import { startPostgresServer, terminateClients } from "../../packages/cache/test/postgres-server.ts";
import { type RedisServer, makeRedisFull, startRedisServer } from "../../packages/cache/test/redis-server.ts";
import {
  type Exit,
  type Started,
  cairnBin,
  cairnRun,
  childEnv,
  filesIn,
  finalStatus,
  killGroup,
  runCollect,
  start,
  statuses,
  tmp,
  tsxScript,
} from "../cache/helpers.ts";

const SLOW_FLOW = new URL("./fixtures/slow-redis.flow.ts", import.meta.url).pathname;
const REFUSED_FLOW_RUN = new URL("./fixtures/refused-flow-run.ts", import.meta.url).pathname;

const servers: RedisServer[] = [];
const children: Started[] = [];
afterAll(async () => {
  for (const c of children) killGroup(c.child);
  await Promise.all(servers.map((s) => s.stop()));
});

/** A redis-server of this test alone, so that stopping it touches no other test. */
async function ownRedis(args: string[] = []): Promise<RedisServer> {
  const server = await startRedisServer({ args });
  servers.push(server);
  return server;
}

/** A URL where nothing listens. */
async function closedPort(): Promise<string> {
  return `redis://127.0.0.1:${await freePort()}`;
}

/** `cairn run` of the slow fixture that calls `onRunning` once the task `slow` runs. */
function runSlowFlow(root: string, env: NodeJS.ProcessEnv, onRunning: () => void, args: string[] = []): Started {
  let seen = false;
  const started = cairnRun(SLOW_FLOW, root, args, env, (out) => {
    if (seen || !/"status":"running","runId":"[^"]+","task":"slow"/.test(out)) return;
    seen = true;
    onRunning();
  });
  children.push(started);
  return started;
}

/** `cairn cache ls` against the store at `url`. */
function cacheLs(url: string, root: string): Started {
  const started = start(process.execPath, [cairnBin, "cache", "ls", "--root", root], { env: childEnv({ CAIRN_CACHE_URL: url }) });
  children.push(started);
  return started;
}

/** Log lines of the run (`--json` prints them on stderr as `[task] message`). */
const warnings = (exit: Exit) => exit.stderr.split("\n").filter((line) => /^\[[^\]]+\] /.test(line));
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

describe("redis dies while a flow runs", () => {
  it("the flow finishes without the shared cache, with one warning, and exits by itself", async () => {
    const redis = await ownRedis();
    const root = await tmp();
    const exit = await runSlowFlow(root, { CAIRN_CACHE_URL: redis.url, SLOW_MS: "2000" }, () => void redis.stop()).done;
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(exit.code).toBe(0);
    expect(["a", "slow", "after"].map((t) => finalStatus(exit.json, t))).toEqual(["succeeded", "succeeded", "succeeded"]);
    const warned = warnings(exit);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/The redis cache at redis:\/\/127\.0\.0\.1:\d+.* failed to .*without the shared cache/);
    expect(exit.stderr).not.toMatch(STACK_LINE);
    expect(exit.ms).toBeLessThan(30_000); // it hung for minutes before
  });

  it("a process waiting on another's lease stops waiting when redis dies, and computes the task itself", async () => {
    const redis = await ownRedis();
    const root = await tmp();
    const markers = await tmp();
    // The holder computes `slow` for a long time; the waiter would wait for all of it.
    let holderRunning!: () => void;
    const holderStarted = new Promise<void>((r) => (holderRunning = r));
    const holder = runSlowFlow(root, { CAIRN_CACHE_URL: redis.url, SLOW_MS: "60000", MARKER_DIR: markers }, () => holderRunning());
    await holderStarted;
    let waiting = false;
    const waiter = cairnRun(SLOW_FLOW, root, [], { CAIRN_CACHE_URL: redis.url, SLOW_MS: "200", MARKER_DIR: markers }, (out) => {
      if (waiting || !/"status":"waiting","runId":"[^"]+","task":"slow"/.test(out)) return;
      waiting = true;
      void redis.stop();
    });
    children.push(waiter);
    const exit = await waiter.done;
    killGroup(holder.child);
    expect(waiting).toBe(true);
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(finalStatus(exit.json, "slow")).toBe("succeeded"); // computed here, not waited for
    expect(warnings(exit), exit.stderr).toHaveLength(1);
    expect(await filesIn(markers)).toEqual([`slow-${waiter.child.pid}`]); // the holder never finished it
    expect(exit.ms).toBeLessThan(30_000); // the holder's task takes 60 s
  });

  it("strict: the task that meets the dead store fails with CacheBackendError, and the flow fails", async () => {
    const redis = await ownRedis();
    const root = await tmp();
    const exit = await runSlowFlow(root, { CAIRN_CACHE_URL: redis.url, SLOW_MS: "1000" }, () => void redis.stop(), ["--cache-strict"]).done;
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "failed" });
    expect(exit.code).toBe(1);
    const failed = exit.json.find((e) => e.type === "task" && e.status === "failed") as { task: string; error: { name: string; message: string } };
    expect(failed.error.name).toBe("CacheBackendError");
    expect(failed.error.message).toMatch(/The redis cache at redis:\/\/127\.0\.0\.1:\d+.* failed to .*Check that redis is running/);
    expect(warnings(exit).filter((w) => /without the shared cache/.test(w))).toEqual([]);
    expect(exit.stderr).not.toMatch(STACK_LINE);
    expect(exit.ms).toBeLessThan(30_000);
  });
});

describe("redis unreachable when the run starts", () => {
  it("the CLI warns once, quickly, runs every task, and exits 0", async () => {
    const exit = await runSlowFlow(await tmp(), { CAIRN_CACHE_URL: await closedPort(), SLOW_MS: "10" }, () => {}).done;
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(exit.code).toBe(0);
    const warned = warnings(exit);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/failed to connect: connect ECONNREFUSED .*The run goes on without the shared cache/);
    expect(exit.stderr).not.toMatch(STACK_LINE);
    expect(exit.ms).toBeLessThan(15_000); // 7 s and a stack trace before, under load
  });

  it("strict (--cache-strict or CAIRN_CACHE_STRICT=1): exit code 3 (a service down before the flow started), the error on one line, no stack trace, the flow run closed FAILED", async () => {
    for (const [args, env] of [[["--cache-strict"], {}], [[], { CAIRN_CACHE_STRICT: "1" }]] as const) {
      const url = await closedPort();
      const root = await tmp();
      const exit = await runSlowFlow(root, { CAIRN_CACHE_URL: url, SLOW_MS: "10", ...env }, () => {}, [...args]).done;
      expect(exit.code).toBe(3);
      expect(exit.stderr).toMatch(new RegExp(`^cairn: CacheBackendError: The redis cache at ${url.replace(/\./g, "\\.")}/? failed to connect: .*Check that redis is running`));
      expect(exit.stderr).not.toMatch(STACK_LINE);
      expect(finalStatus(exit.json, "a")).toBeUndefined(); // nothing ran
      expect(exit.ms).toBeLessThan(15_000);
      // Closed by the run itself, not left RUNNING for the next command to close as KILLED.
      const listed = await start(process.execPath, [cairnBin, "runs", "--json", "--root", root], { env: childEnv({}) }).done;
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stderr).not.toMatch(/Closed/);
      expect((JSON.parse(listed.stdout) as Array<{ status: string }>).map((r) => r.status)).toEqual(["FAILED"]);
    }
  });

  it.each([["plan"], ["explain", "slow"]])("cairn %s is always strict: it fails with CacheBackendError on one line (exit 3), not a plan without the store", async (...command) => {
    const url = await closedPort();
    const started = start(process.execPath, [cairnBin, ...command.slice(0, 1), SLOW_FLOW, ...command.slice(1), "--root", await tmp()], { env: childEnv({ CAIRN_CACHE_URL: url }) });
    children.push(started);
    const exit = await started.done;
    expect(exit.code, exit.stderr).toBe(3); // a service Cairn needs could not be used
    expect(exit.stderr).toMatch(new RegExp(`^cairn: CacheBackendError: The redis cache at ${url.replace(/\./g, "\\.")}/? failed to connect: .*Check that redis is running`));
    expect(exit.stderr).not.toMatch(STACK_LINE);
    expect(exit.stdout).toBe("");
    expect(exit.ms).toBeLessThan(15_000);
  });

  it("in code: run() goes on with one warning, and cache: { strict: true } rejects with CacheBackendError", async () => {
    let calls = 0;
    const t = task("unreachable-at-start").run(() => (calls++, { ok: true }));
    const f = flow("unreachable-at-start").build(() => ({ ok: t().ok }));
    const url = await closedPort();
    const root = await tmp();
    const started = performance.now();
    const run = await runCollect(f, { root, cache: { url } });
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(statuses(run.result)).toEqual({ "unreachable-at-start": "succeeded" });
    expect(run.warnings).toHaveLength(1);
    expect(calls).toBe(1);
    const error = await f.run({ root, env: {}, cache: { url, strict: true } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheBackendError);
    expect(error).toMatchObject({ backend: "redis", operation: "connect" });
  });
});

// A stopped (SIGSTOP) redis is the hard case: the kernel still accepts connections and takes
// what is written, so nothing fails; only a bound on each command's answer ends the wait.
// Each test has its own limit, well under the hang it guards against (for ever, before).
describe("redis stopped (SIGSTOP): it accepts connections but answers nothing", () => {
  it("stopped while a flow runs: the flow finishes without the shared cache, with one warning", { timeout: 45_000 }, async () => {
    const redis = await ownRedis();
    const root = await tmp();
    const exit = await runSlowFlow(root, { CAIRN_CACHE_URL: redis.url, SLOW_MS: "2000" }, () => redis.signal("SIGSTOP")).done;
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(exit.code).toBe(0);
    expect(["a", "slow", "after"].map((t) => finalStatus(exit.json, t))).toEqual(["succeeded", "succeeded", "succeeded"]);
    const warned = warnings(exit);
    expect(warned, exit.stderr).toHaveLength(1);
    expect(warned[0]).toMatch(/The redis cache at redis:\/\/127\.0\.0\.1:\d+.* failed to .*: redis did not answer \w+ within 2000 ms.*without the shared cache/);
    expect(exit.stderr).not.toMatch(STACK_LINE);
    expect(exit.ms).toBeLessThan(30_000);
  });

  it("stopped while a task runs, then SIGTERM: the run ends by itself", { timeout: 45_000 }, async () => {
    const redis = await ownRedis();
    const root = await tmp();
    const run = runSlowFlow(root, { CAIRN_CACHE_URL: redis.url, SLOW_MS: "60000" }, () => {
      redis.signal("SIGSTOP");
      setTimeout(() => run.child.kill("SIGTERM"), 300);
    });
    const exit = await run.done;
    expect(exit.signal).toBeNull(); // it exited, it was not killed
    expect(exit.code).not.toBe(0);
    expect(exit.ms).toBeLessThan(30_000); // the task alone takes 60 s
  });

  it("stopped before the run: the run warns once and runs every task; `cairn cache ls` fails with CacheBackendError", { timeout: 45_000 }, async () => {
    const redis = await ownRedis();
    redis.signal("SIGSTOP");
    const exit = await runSlowFlow(await tmp(), { CAIRN_CACHE_URL: redis.url, SLOW_MS: "10" }, () => {}).done;
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(exit.code).toBe(0);
    const warned = warnings(exit);
    expect(warned, exit.stderr).toHaveLength(1);
    expect(warned[0]).toMatch(/failed to connect: redis did not answer \w+ within 2000 ms.*The run goes on without the shared cache/);
    expect(exit.ms).toBeLessThan(15_000);

    const ls = await cacheLs(redis.url, await tmp()).done;
    expect(ls.code).toBe(3);
    expect(ls.stderr).toMatch(/^cairn: CacheBackendError: The redis cache at redis:\/\/127\.0\.0\.1:\d+\/? failed to connect: redis did not answer \w+ within 2000 ms.*Check that redis is running/);
    expect(ls.stderr).not.toMatch(STACK_LINE);
    expect(ls.ms).toBeLessThan(15_000);
  });

  it("the store: every operation fails with CacheBackendError within a bound, and works again once redis does", { timeout: 45_000 }, async () => {
    const redis = await ownRedis();
    const store = await CacheStore.fromUrl(redis.url);
    try {
      expect(await store.get("k1")).toBeUndefined();
      redis.signal("SIGSTOP");
      const operations = [
        () => store.get("k1"),
        () => store.list(),
        () => store.delete("k1"),
        () => store.acquireLease("k1", { ttlMs: 10_000, owner: "test" }),
        () => store.waitFor("k1"),
      ];
      for (const operation of operations) {
        const started = performance.now();
        const error = await operation().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(CacheBackendError);
        expect((error as Error).message).toMatch(/did not answer \w+ within 2000 ms/);
        expect(performance.now() - started).toBeLessThan(6_000);
      }
      redis.signal("SIGCONT");
      expect(await store.get("k1")).toBeUndefined(); // connected afresh
      expect(await store.list()).toEqual([]);
    } finally {
      redis.signal("SIGCONT");
      await store.close();
    }
  });
});

describe("redis refuses a write (full, evicting nothing): it is up", () => {
  it("the write fails with a warning naming redis's answer, at once, and the run keeps using the store", async () => {
    const redis = await ownRedis(["--maxmemory-policy", "noeviction"]);
    const root = await tmp();
    const first = task("refused-first").run(() => ({ x: 1 }));
    const second = task("refused-second").input<{ x: number }>().run(({ x }) => ({ y: x + 1 }));
    const seed = flow("refused-seed").build(() => ({ y: second({ x: 1 }).y }));
    expect(statuses((await runCollect(seed, { root, cache: { url: redis.url } })).result)).toEqual({ "refused-second": "succeeded" });
    await makeRedisFull(redis.url);
    const f = flow("refused").build(() => ({ y: second({ x: first().x }).y }));
    const started = performance.now();
    const run = await runCollect(f, { root, cache: { url: redis.url } });
    expect(run.result.status).toBe("succeeded");
    // After `refused-first`'s write was refused, the store still gave `refused-second`'s entry.
    expect(statuses(run.result)).toEqual({ "refused-first": "succeeded", "refused-second": "cached" });
    expect(run.warnings.some((w) => /could not store the cache entry: .* refused to write an entry: it answered "OOM command not allowed/.test(w))).toBe(true);
    // The lease redis refused first is said as what it is, not as a failed lookup.
    expect(run.warnings.some((w) => /^could not look up or claim its cache entry \(.* refused to acquire a lease: it answered "OOM/.test(w))).toBe(true);
    for (const warning of run.warnings) expect(warning).toMatch(/refused to .*: it answered "OOM command not allowed .*Redis is full/);
    expect(run.warnings.join("\n")).not.toMatch(/without the shared cache|Check that redis is running/);
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});

describe("a flow run the tracker refuses, with redis up", () => {
  it("the run fails with the tracker's error, and the store it opened meanwhile is closed: the process exits by itself", async () => {
    const redis = await ownRedis();
    const started = tsxScript(REFUSED_FLOW_RUN, [await tmp(), redis.url]);
    children.push(started);
    // A store left open keeps its connection, and the process, alive: killed here after 20 s.
    const timer = setTimeout(() => killGroup(started.child), 20_000);
    const exit = await started.done.finally(() => clearTimeout(timer));
    expect(exit.signal).toBeNull();
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout.trim()).toBe("failed: injected: the flow run is refused");
  });
});

describe("postgres dies while a flow runs (the same path as redis)", () => {
  it("the flow finishes without the shared cache, with one warning", async (context) => {
    const server = await startPostgresServer();
    if ("skip" in server) return context.skip(server.skip);
    let stopped: Promise<void> | undefined;
    try {
      const slow = task("pg-slow").run(async () => (await new Promise((r) => setTimeout(r, 1500)), { y: 1 }));
      const after = task("pg-after").input<{ y: number }>().run(({ y }) => ({ z: y + 1 }));
      const f = flow("postgres-down").build(() => ({ z: after({ y: slow().y }).z }));
      const started = performance.now();
      const run = await f.run({ root: await tmp(), env: {}, cache: { url: server.url } });
      const warned: string[] = [];
      run.on((e) => {
        if (e.type === "task" && e.task === "pg-slow" && e.status === "running") stopped = server.stop();
        if (e.type === "log" && e.level === "warn") warned.push(e.message);
      });
      const result = await run.wait();
      expect(stopped).toBeDefined();
      expect(result.status).toBe("succeeded");
      expect(result.outputs).toEqual({ z: 2 });
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatch(/The postgres cache at .* failed to .*without the shared cache/);
      expect(performance.now() - started).toBeLessThan(30_000);
    } finally {
      await (stopped ?? server.stop());
    }
  });
});

describe("postgres ends the connections of a running flow (pg_terminate_backend, as a restart does)", () => {
  it("the flow goes on with the shared cache, connecting again, without a warning", async (context) => {
    const server = await startPostgresServer();
    if ("skip" in server) return context.skip(server.skip);
    try {
      const root = await tmp();
      let ended: Promise<number> | undefined;
      const exit = await runSlowFlow(root, { CAIRN_CACHE_URL: server.url, SLOW_MS: "1500" }, () => (ended = terminateClients(server.url))).done;
      expect(await ended).toBeGreaterThan(0);
      // It crashed before: exit 1, "terminating connection due to administrator command".
      expect(exit.code, exit.stderr).toBe(0);
      expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
      expect(warnings(exit)).toEqual([]);
      // Its results went to the shared store: the next run hits them there.
      const again = await runSlowFlow(root, { CAIRN_CACHE_URL: server.url, SLOW_MS: "1500" }, () => {}).done;
      expect(["a", "slow", "after"].map((t) => finalStatus(again.json, t))).toEqual(["cached", "cached", "cached"]);
    } finally {
      await server.stop();
    }
  });
});

describe("postgres stopped (SIGSTOP): it accepts connections but answers nothing", () => {
  it("an operation fails with CacheBackendError within its bounds (5 s a query, 1.5 s to connect) instead of waiting", async (context) => {
    const server = await startPostgresServer();
    if ("skip" in server) return context.skip(server.skip);
    const store = await CacheStore.fromUrl(server.url);
    // The cluster: its postmaster (named by its port) and the processes it forked.
    const pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p)).map(Number);
    const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const parentOf = (pid: number) => {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    };
    const tryRead = <T,>(pid: number, read: (pid: number) => T): T | undefined => {
      try {
        return read(pid);
      } catch {
        return undefined; // gone meanwhile
      }
    };
    const master = pids.find((pid) => tryRead(pid, cmdline)?.[0]?.endsWith("postgres") && tryRead(pid, cmdline)?.includes(String(server.port)))!;
    expect(master).toBeDefined();
    const cluster = [master, ...pids.filter((pid) => tryRead(pid, parentOf) === master)];
    try {
      expect(await store.get("k1")).toBeUndefined();
      for (const pid of cluster) process.kill(pid, "SIGSTOP");
      for (const operation of [() => store.get("k1"), () => store.acquireLease("k1", { ttlMs: 10_000, owner: "test" }), () => store.get("k1")]) {
        const started = performance.now();
        // Bounded here too, so that a hang fails the check and the cluster is woken and stopped below.
        const error = await Promise.race([operation().catch((e: unknown) => e), new Promise((r) => setTimeout(() => r("no answer in 15 s"), 15_000))]);
        expect(error).toBeInstanceOf(CacheBackendError);
        expect(performance.now() - started).toBeLessThan(10_000);
      }
    } finally {
      for (const pid of cluster) {
        try {
          process.kill(pid, "SIGCONT");
        } catch {
          // gone
        }
      }
      await store.close().catch(() => {});
      await server.stop();
    }
  });
});

describe("the store on a dead redis", () => {
  it("an operation fails with CacheBackendError within a few seconds instead of waiting for redis to return", async () => {
    const redis = await ownRedis();
    const store = await CacheStore.fromUrl(redis.url);
    try {
      expect(await store.get("k1")).toBeUndefined();
      await redis.stop();
      for (const operation of [() => store.get("k1"), () => store.acquireLease("k1", { ttlMs: 10_000, owner: "test" }), () => store.waitFor("k1")]) {
        const started = performance.now();
        const error = await operation().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(CacheBackendError);
        expect(performance.now() - started).toBeLessThan(10_000);
      }
    } finally {
      await store.close();
    }
  });
});
