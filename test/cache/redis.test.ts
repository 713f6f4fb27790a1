/**
 * The cache on a real redis-server (one per file): selected by `cache: { url }`
 * or by CAIRN_CACHE_URL, entries live in redis and not in the embedded store.
 */
import { execFileSync } from "node:child_process";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheStore, formatOwner } from "@cairn/cache";
import { openFlowCache, planFlow } from "@cairn/core";
import { flow, task } from "@cairn/dsl";
import { type RedisServer, startRedisServer } from "../../packages/cache/test/redis-server.ts";
import { cairnBin, cairnRun, cairnRunBounded, childEnv, entryFiles, finalStatus, fixture, killGroup, runCollect, sleep, start, statuses, taskEvents, tmp } from "./helpers.ts";
import { countMarks } from "./fixtures/markers.ts";

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.stop();
});

/** A separate namespace per test would need a store option; one flow name per test keeps keys apart instead. */
const makeFlow = (name: string, calls: { n: number }) => {
  const square = task(`square-${name}`).input<{ x: number }>().run(({ x }) => (calls.n++, { y: x * x }));
  const add = task(`add-${name}`).input<{ y: number }>().run(({ y }) => (calls.n++, { z: y + 1 }));
  return flow(name).build(() => ({ z: add({ y: square({ x: 6 }).y }).z }));
};

describe("a redis cache", () => {
  it("cache: { url } stores in redis, and a second run is all cached", async () => {
    const root = await tmp();
    const calls = { n: 0 };
    const f = makeFlow("redis-url", calls);
    const first = await runCollect(f, { root, cache: { url: redis.url } });
    expect(statuses(first.result)).toEqual({ "square-redis-url": "succeeded", "add-redis-url": "succeeded" });
    expect(await entryFiles(root)).toEqual([]); // nothing in the embedded store

    const store = await CacheStore.fromUrl(redis.url);
    try {
      const entries = await store.list({ taskName: "square-redis-url" });
      expect(entries).toHaveLength(1);
      expect(entries[0]!.sourceRunId).toBe(first.result.tasks["square-redis-url"]!.runId);
    } finally {
      await store.close();
    }

    const second = await runCollect(f, { root, cache: { url: redis.url } });
    expect(statuses(second.result)).toEqual({ "square-redis-url": "cached", "add-redis-url": "cached" });
    expect(calls.n).toBe(2);
    expect(second.result.outputs).toEqual({ z: 37 });
    expect(second.result.tasks["add-redis-url"]!.cachedFrom).toBe(first.result.tasks["add-redis-url"]!.runId);
    const hit = await second.run.tracker.getRun(second.result.tasks["add-redis-url"]!.runId!);
    expect(hit).toMatchObject({ status: "FINISHED" });
    expect(hit!.tags["cairn.cached_from"]).toBe(first.result.tasks["add-redis-url"]!.runId);
  });

  it("CAIRN_CACHE_URL selects it too; without it the same root's embedded store has nothing", async () => {
    const root = await tmp();
    const calls = { n: 0 };
    const f = makeFlow("redis-env", calls);
    const env = { CAIRN_CACHE_URL: redis.url };
    await runCollect(f, { root, env });
    expect(await entryFiles(root)).toEqual([]);
    const viaEnv = await runCollect(f, { root, env });
    expect(statuses(viaEnv.result)).toEqual({ "square-redis-env": "cached", "add-redis-env": "cached" });
    expect(calls.n).toBe(2);
    // Proof that the hits came from redis: the embedded store of the same root misses.
    const embedded = await runCollect(f, { root, env: {} });
    expect(statuses(embedded.result)).toEqual({ "square-redis-env": "succeeded", "add-redis-env": "succeeded" });
    expect(calls.n).toBe(4);
    // cache: { url } wins over CAIRN_CACHE_URL.
    const other = await runCollect(f, { root, env: { CAIRN_CACHE_URL: "redis://127.0.0.1:1" }, cache: { url: redis.url } });
    expect(statuses(other.result)).toEqual({ "square-redis-env": "cached", "add-redis-env": "cached" });
  });

  it("CAIRN_CACHE_URL reaches the CLI: a second process gets hits from redis", async () => {
    const root = await tmp();
    const markers = await tmp();
    const env = { CAIRN_CACHE_URL: redis.url, MARKER_DIR: markers };
    const file = fixture("force.flow.ts");
    // Bounded: the CLI does not exit by itself with a redis cache (see the next test).
    const first = await cairnRunBounded(file, root, [], env, 1500);
    expect(first.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(await entryFiles(root)).toEqual([]);
    const second = await cairnRunBounded(file, root, [], env, 1500);
    expect(second.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(["a", "b", "c"].map((t) => finalStatus(second.json, t))).toEqual(["cached", "cached", "cached"]);
    expect(await countMarks(markers)).toEqual({ a: 1, b: 1, c: 1 });
  });

  it("the CLI exits by itself after a run on a redis cache", async () => {
    const exit = await cairnRunBounded(fixture("force.flow.ts"), await tmp(), ["--no-tracking"], { CAIRN_CACHE_URL: redis.url }, 3000);
    expect(exit.json.at(-1)).toMatchObject({ type: "flow", status: "succeeded" });
    expect(exit.exitedByItself).toBe(true);
    expect(exit.code).toBe(0);
    // Also when it computes its tasks (the entries above make that run all hits): the last task's
    // lease was given up after the store closed, which opened a connection that kept it alive.
    const computed = await cairnRunBounded(fixture("force.flow.ts"), await tmp(), ["--no-tracking", "--refresh"], { CAIRN_CACHE_URL: redis.url }, 3000);
    expect(["a", "b", "c"].map((t) => finalStatus(computed.json, t))).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(computed.exitedByItself).toBe(true);
    expect(computed.code).toBe(0);
  });

  it("machines with their own local stores sharing one redis: each misses the other's entries, says why once, and neither crashes", async () => {
    const calls = { n: 0 };
    const f = makeFlow("redis-two-roots", calls);
    const rootA = await tmp();
    const rootB = await tmp();
    const a = await runCollect(f, { root: rootA, cache: { url: redis.url } });
    expect(a.result.status).toBe("succeeded");
    expect(calls.n).toBe(2);
    // B cannot see A's runs (another .cairn), so A's entries are misses for B, said once, with what shares hits.
    const b = await runCollect(f, { root: rootB, cache: { url: redis.url } });
    expect(statuses(b.result)).toEqual({ "square-redis-two-roots": "succeeded", "add-redis-two-roots": "succeeded" });
    expect(b.warnings).toEqual([
      `Cache entries exist for these tasks' keys (task "square-redis-two-roots" first), but their source runs are recorded in the embedded store at ${rootA}, ` +
        "another folder's or machine's, met through the shared cache store: they cannot be checked from here, so those tasks run, and their entries replace those. " +
        "To share hits between machines, point them all at one MLflow server (MLFLOW_TRACKING_URI).",
    ]);
    expect(calls.n).toBe(4);
    // B's entries replaced A's (same keys, last writer wins): A's own next run cannot check B's and runs, saying so.
    const againA = await runCollect(f, { root: rootA, cache: { url: redis.url } });
    expect(againA.result.status).toBe("succeeded");
    expect(againA.warnings).toHaveLength(1);
    expect(againA.warnings[0]).toContain(`recorded in the embedded store at ${rootB}, another folder's or machine's`);
  });

  it("machines whose stores sit at the same path (CI runners) tell each other's entries apart by the store's id: foreign, said once, not evicted as gone", async () => {
    const calls = { n: 0 };
    const f = makeFlow("redis-same-path", calls);
    const top = await tmp();
    const root = join(top, ".cairn");
    const a = await runCollect(f, { root, cache: { url: redis.url } });
    expect(a.result.status).toBe("succeeded");
    const idA = (await readFile(join(root, "store-id"), "utf8")).trim();
    expect(idA).toMatch(/^[0-9a-f]{16}$/);
    const store = await CacheStore.fromUrl(redis.url);
    try {
      const [entryA] = await store.list({ taskName: "square-redis-same-path" });
      expect(entryA!.tracker).toEqual({ kind: "local", uri: root, id: idA, copy: expect.stringMatching(/^[0-9a-f]+\.[0-9a-f]+$/) });

      // "Machine B": the same path, its own empty .cairn.
      await rename(root, join(top, ".cairn-machine-a"));
      const b = await runCollect(f, { root, cache: { url: redis.url } });
      expect(statuses(b.result)).toEqual({ "square-redis-same-path": "succeeded", "add-redis-same-path": "succeeded" });
      const idB = (await readFile(join(root, "store-id"), "utf8")).trim();
      expect(idB).not.toBe(idA);
      expect(b.warnings).toEqual([
        `Cache entries exist for these tasks' keys (task "square-redis-same-path" first), but their source runs are recorded in the embedded store at ${root} ` +
          `(store id ${idA}; the store at this path here is ${idB}), another folder's or machine's, met through the shared cache store: they cannot be checked from here, ` +
          "so those tasks run, and their entries replace those. To share hits between machines, point them all at one MLflow server (MLFLOW_TRACKING_URI).",
      ]);
      expect(b.warnings.join("\n")).not.toContain("no longer exists");
      const [entryB] = await store.list({ taskName: "square-redis-same-path" });
      expect(entryB!.tracker).toEqual({ kind: "local", uri: root, id: idB, copy: expect.stringMatching(/^[0-9a-f]+\.[0-9a-f]+$/) });
      // B's own next run hits its own entries.
      const again = await runCollect(f, { root, cache: { url: redis.url } });
      expect(statuses(again.result)).toEqual({ "square-redis-same-path": "cached", "add-redis-same-path": "cached" });
      expect(again.warnings).toEqual([]);

      // An entry written before stores had ids (no id in its tracker) is still a hit for its own store.
      await store.set({ ...entryB!, tracker: { kind: "local", uri: root } });
      const old = await runCollect(f, { root, cache: { url: redis.url } });
      expect(old.result.tasks["square-redis-same-path"]!.status).toBe("cached");
      expect(old.warnings).toEqual([]);
      expect(calls.n).toBe(4);
    } finally {
      await store.close();
    }
  });

  it("a .cairn restored from a CI cache (its store-id too) meets another restored copy's entries: foreign, said once as such, not a run that 'no longer exists'", async () => {
    const calls = { n: 0 };
    const f = makeFlow("redis-restored", calls);
    const top = await tmp();
    const root = join(top, ".cairn");
    // The cached .cairn: a store with its id, archived as actions/cache does (content and mtimes, not inodes).
    await runCollect(makeFlow("redis-restored-seed", { n: 0 }), { root, cache: { url: redis.url } });
    const id = (await readFile(join(root, "store-id"), "utf8")).trim();
    const archive = join(top, "cairn.tar");
    execFileSync("tar", ["-cf", archive, "-C", top, ".cairn"]);
    const restore = async () => {
      await rm(root, { recursive: true, force: true });
      execFileSync("tar", ["-xf", archive, "-C", top]);
    };
    // Job A restores it and runs: its entries go to the shared redis, its runs stay in its copy.
    await restore();
    const a = await runCollect(f, { root, cache: { url: redis.url } });
    expect(statuses(a.result)).toEqual({ "square-redis-restored": "succeeded", "add-redis-restored": "succeeded" });
    // Job B, at the same path, restores the same archive: the same store id, not A's runs.
    await restore();
    expect((await readFile(join(root, "store-id"), "utf8")).trim()).toBe(id);
    const b = await runCollect(f, { root, cache: { url: redis.url } });
    expect(statuses(b.result)).toEqual({ "square-redis-restored": "succeeded", "add-redis-restored": "succeeded" });
    // Before: a warning per task, "its source run ... no longer exists in .../.cairn; it was evicted".
    expect(b.warnings).toEqual([
      `Cache entries exist for these tasks' keys (task "square-redis-restored" first), but their source runs were recorded by another copy of the embedded store at ${root} ` +
        `(store id ${id}, as here: a .cairn restored from a CI cache or copied from another, or another machine's at the same path, met through the shared cache store), whose runs are not here: ` +
        "they cannot be checked from here, so those tasks run, and their entries replace those. To share hits between machines, point them all at one MLflow server (MLFLOW_TRACKING_URI).",
    ]);
    const run = await b.run.tracker.getRun(b.result.tasks["square-redis-restored"]!.runId!);
    expect(JSON.parse(run!.tags["cairn.miss_reason"]!)).toEqual({ kind: "foreign", tracker: { kind: "local", uri: root }, copy: true });
    // B's own next run hits its own entries.
    const again = await runCollect(f, { root, cache: { url: redis.url } });
    expect(statuses(again.result)).toEqual({ "square-redis-restored": "cached", "add-redis-restored": "cached" });
    expect(again.warnings).toEqual([]);
    expect(calls.n).toBe(4);
  });

  it("a ttl is honoured by redis", async () => {
    const root = await tmp();
    let calls = 0;
    const t = task("redis-ttl").cache({ ttl: 300 }).run(() => (calls++, { ok: true }));
    const f = flow("redis-ttl").build(() => ({ ok: t().ok }));
    await runCollect(f, { root, cache: { url: redis.url } });
    await new Promise((r) => setTimeout(r, 500));
    const after = await runCollect(f, { root, cache: { url: redis.url } });
    expect(statuses(after.result)).toEqual({ "redis-ttl": "succeeded" });
    expect(calls).toBe(2);
  });
});

describe("another run of the project on a key a run of this machine holds, on redis", () => {
  it("waits saying who holds it and when it lapses; once that process is killed, takes the key over at once, not at the lease's end", async () => {
    const markers = await tmp();
    const release = join(await tmp(), "release");
    // A lease of ten minutes: only the holder's death may end the second's wait within the test.
    const env = { CAIRN_CACHE_URL: redis.url, CAIRN_LEASE_TTL_MS: "600000", MARKER_DIR: markers, RELEASE_FILE: release };
    const file = fixture("held.flow.ts");
    // One root for both: a run of another root does not wait for this one (its entry, recorded in
    // another embedded store, is of no use there: see lease-tracker.test.ts).
    const root = await tmp();
    const first = start(process.execPath, [cairnBin, "run", file, "--json", "--root", root], { env: childEnv(env) });
    try {
      for (const until = Date.now() + 30_000; !(await countMarks(markers)).held; await sleep(25)) {
        if (Date.now() > until) throw new Error("the first run's task never started");
      }
      let waited = false;
      const second = cairnRun(file, root, [], env, (out) => {
        if (waited || !out.includes('"status":"waiting"')) return;
        waited = true;
        killGroup(first.child);
        void writeFile(release, ""); // the second's own "held" then ends at once
      });
      const exit = await Promise.race([second.done, sleep(60_000).then(() => undefined)]);
      if (!exit) killGroup(second.child);
      expect(exit, "the second run still waited 60 s after the holder was killed").toBeDefined();
      const waiting = taskEvents(exit!.json, "held").find((e) => e.status === "waiting") as { heldBy?: unknown } | undefined;
      expect(waiting?.heldBy).toMatchObject({ process: `${hostname()}:${first.child.pid}`, runId: expect.any(String), expiresAt: expect.any(Number) });
      expect(finalStatus(exit!.json, "held")).toBe("succeeded");
      expect((await countMarks(markers)).held).toBe(2);
    } finally {
      killGroup(first.child);
      await writeFile(release, "");
    }
  }, 90_000);
});

describe("a plan while another machine computes a task, on redis", () => {
  it("says the task is being computed elsewhere, by whom, and that a run would wait for it", async () => {
    const calls = { n: 0 };
    const f = makeFlow("plan-held", calls);
    const env = { CAIRN_CACHE_URL: redis.url };
    const planOf = async () => {
      const { tasks, params } = await openFlowCache(f.definition, { root: await tmp(), params: {}, env });
      return planFlow(f.definition, { params, cache: tasks }).finally(() => tasks.store.close());
    };
    const before = await planOf();
    const square = before.find((p) => p.task === "square-plan-held")!;
    expect(square.reason).toMatch(/^no cache entry/);
    // Another process computes it: it holds the key's lease, as a run's task does.
    const store = await CacheStore.fromUrl(redis.url);
    const owner = `${formatOwner()} 4f2a9c plan-held-square`;
    const lease = await store.acquireLease(square.key!.key, { ttlMs: 30_000, owner });
    try {
      expect(lease.acquired).toBe(true);
      const during = (await planOf()).find((p) => p.task === "square-plan-held")!;
      expect(during.action).toBe("run");
      expect(during.computing).toMatchObject({ process: `${hostname()}:${process.pid}`, runId: "4f2a9c" });
      expect(during.reason).toMatch(new RegExp(`^being computed elsewhere now, by ${hostname()}:${process.pid} \\(run 4f2a9c\\): a run would wait for it and take its entry .*; its lease lapses in (29|30) s unless renewed$`));
    } finally {
      if (lease.acquired) await lease.release();
      await store.close();
    }
    expect((await planOf()).find((p) => p.task === "square-plan-held")!.reason).toMatch(/^no cache entry/);
    expect(calls.n).toBe(0);
  });

  // Two roots on one redis: the holder's entry names its own embedded store, which no run of this root can use.
  it("says a run would not wait for it when the holder records to another root's embedded store", async () => {
    const calls = { n: 0 };
    const f = makeFlow("plan-held-other-root", calls);
    const env = { CAIRN_CACHE_URL: redis.url };
    const planOf = async () => {
      const { tasks, params } = await openFlowCache(f.definition, { root: await tmp(), params: {}, env });
      return planFlow(f.definition, { params, cache: tasks }).finally(() => tasks.store.close());
    };
    const square = (await planOf()).find((p) => p.task === "square-plan-held-other-root")!;
    const store = await CacheStore.fromUrl(redis.url);
    const other = "/elsewhere/with space/.cairn";
    const lease = await store.acquireLease(square.key!.key, { ttlMs: 30_000, owner: `${formatOwner()} 4f2a9c records:local:${encodeURIComponent(other)}:0123abcd square` });
    try {
      expect(lease.acquired).toBe(true);
      const during = (await planOf()).find((p) => p.task === "square-plan-held-other-root")!;
      expect(during.action).toBe("run");
      expect(during.computing).toMatchObject({ process: `${hostname()}:${process.pid}`, runId: "4f2a9c" });
      expect(during.reason).toMatch(
        new RegExp(
          `^being computed elsewhere now, by ${hostname()}:${process.pid} \\(run 4f2a9c\\), which records to the embedded store at ${other}, not to the embedded store at .* where this run records: ` +
            `its entry could not be used here, so a run would not wait for it and computes it at once$`,
        ),
      );
    } finally {
      if (lease.acquired) await lease.release();
      await store.close();
    }
    expect(calls.n).toBe(0);
  });
});

describe("a redis password with a raw `%`", () => {
  it("the CLI refuses the URL on one line (CacheStoreUrlError, exit 2), never printing the password; percent-encoded, it works", async () => {
    // (With an `@` as well, it is refused for that first: see the next test.)
    const password = 'Se"cr:t%zz';
    const own = await startRedisServer({ args: ["--requirepass", password] });
    try {
      const root = await tmp();
      const ls = (url: string) => start(process.execPath, [cairnBin, "cache", "ls", "--root", root], { env: childEnv({ CAIRN_CACHE_URL: url }) }).done;
      const refused = await ls(`redis://:${password}@127.0.0.1:${own.port}`);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/^cairn: CacheStoreUrlError: Expected the cache URL's password to be percent-encoded, got "redis:\/\/:\*\*\*@127\.0\.0\.1:\d+".*%25 for %/);
      expect(refused.stderr.trim().split("\n")).toHaveLength(1); // no stack
      expect(refused.stdout + refused.stderr).not.toMatch(/Se"cr|t%zz|URIError/);
      const encoded = await ls(`redis://:${encodeURIComponent(password)}@127.0.0.1:${own.port}`);
      expect(encoded.code, encoded.stderr).toBe(0);
    } finally {
      await own.stop();
    }
  });

  it("the CLI refuses on one line a password with `@` then `#` (it parsed with part of it as the host) and a path that is no database number", async () => {
    const root = await tmp();
    const ls = (url: string) => start(process.execPath, [cairnBin, "cache", "ls", "--root", root], { env: childEnv({ CAIRN_CACHE_URL: url }) }).done;
    const split = await ls("redis://user:p@ss#word@127.0.0.1:1");
    expect(split.code).toBe(2);
    expect(split.stderr).toMatch(/^cairn: CacheStoreUrlError: Expected the cache URL's user name and password to be percent-encoded, got "redis:\/\/user:\*\*\*@127\.0\.0\.1:1".*%23 for #/);
    expect(split.stderr.trim().split("\n")).toHaveLength(1);
    expect(split.stdout + split.stderr).not.toMatch(/ss#word|ENOTFOUND/);
    // node-redis threw `TypeError: Invalid pathname` with a stack (exit 1).
    const path = await ls("redis://127.0.0.1:1/abc");
    expect(path.code).toBe(2);
    expect(path.stderr).toMatch(/^cairn: CacheStoreUrlError: Expected the path of a redis URL to be a database number/);
    expect(path.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("names CAIRN_CACHE_URL, says a port that is not one is the port (not the password), and refuses a database the server lacks (exit 2)", async () => {
    const root = await tmp();
    const ls = (url: string) => start(process.execPath, [cairnBin, "cache", "ls", "--root", root], { env: childEnv({ CAIRN_CACHE_URL: url }) }).done;
    const port = await ls("redis://127.0.0.1:notaport");
    expect(port.stderr).toContain(
      'cairn: CacheStoreUrlError: Expected the port of a redis:// URL to be a number from 1 to 65535, got "redis://127.0.0.1:notaport" from CAIRN_CACHE_URL (its port is "notaport"). Give the port in digits, or leave `:PORT` out for 6379.',
    );
    expect(port.stderr).not.toMatch(/Percent-encode/);
    expect(port.code).toBe(2);
    expect((await ls("redis://127.0.0.1:99999")).stderr).toContain('(its port is "99999")');
    expect((await ls(" ")).stderr).toContain('got " " from CAIRN_CACHE_URL');
    // Reported as an outage ("failed to connect ... Check that redis is running"), and the run went on without the cache.
    const db = await ls(`${redis.url}/99`);
    expect(db.stderr).toContain(`Expected the path of a redis URL to be a database number the server has, got "${redis.url}/99" from CAIRN_CACHE_URL (the server answered "ERR DB index is out of range")`);
    expect(db.code).toBe(2);
    const run = await runCollect(makeFlow("redis-db", { n: 0 }), { root, cache: { url: `${redis.url}/99` } }).catch((e: unknown) => e);
    expect((run as Error).message).toContain('from run({ cache: { url } }) (the server answered "ERR DB index is out of range")');
  });
});

describe("an entry edited or damaged in redis", () => {
  // Its own database: `cache ls` lists the whole store, which the other tests fill.
  const url = () => `${redis.url}/3`;
  const cli = (...args: string[]) => execFileSync("redis-cli", ["-p", String(redis.port), "-n", "3", ...args], { encoding: "utf8" }).trim();
  /** The redis key of the one stored entry of `taskName`, and its text. */
  const stored = (taskName: string): { name: string; text: string } => {
    for (const name of cli("--scan", "--pattern", "cairn::*").split("\n").filter(Boolean)) {
      const text = cli("GET", name);
      if (text.includes(`"taskName":"${taskName}"`)) return { name, text };
    }
    throw new Error(`no entry of ${taskName} in redis`);
  };

  it("whose output values were changed by hand is no hit: evicted with a warning naming the key and the store, and the task runs", async () => {
    const root = await tmp();
    let calls = 0;
    const sum = task("sum-edited").run(() => (calls++, { total: 3 }));
    const f = flow("redis-edited").build(() => ({ total: sum().total }));
    await runCollect(f, { root, cache: { url: url() } });
    const { name, text } = stored("sum-edited");
    expect(text).toContain('"total":3');
    cli("SET", name, text.replace('"total":3', '"total":999'));
    const second = await runCollect(f, { root, cache: { url: url() } });
    expect(statuses(second.result)).toEqual({ "sum-edited": "succeeded" });
    expect(second.result.outputs).toEqual({ total: 3 });
    expect(calls).toBe(2);
    const key = name.slice("cairn::".length);
    expect(second.warnings).toEqual([
      `cache entry ${key.slice(0, 12)} was unusable: its outputs are not the ones it was stored with (they do not match the digest written with them: edited or damaged in the store) ` +
        `(in the cache store at ${url()}); it was evicted and the task runs`,
    ]);
    expect(stored("sum-edited").text).toContain('"total":3');
    expect((await runCollect(f, { root, cache: { url: url() } })).result.tasks["sum-edited"]!.status).toBe("cached");
  });

  it("that is not JSON is evicted with a warning naming the store, and `cache ls` says how many values it could not read, leaving them", async () => {
    const root = await tmp();
    const one = task("one-garbled").run(() => ({ v: 1 }));
    const two = task("two-garbled").run(() => ({ v: 2 }));
    const f = flow("redis-garbled").build(() => ({ a: one().v, b: two().v }));
    await runCollect(f, { root, cache: { url: url() } });
    const garbled = stored("one-garbled");
    cli("SET", garbled.name, "not json {");
    const again = await runCollect(f, { root, cache: { url: url() } });
    expect(statuses(again.result)).toEqual({ "one-garbled": "succeeded", "two-garbled": "cached" });
    expect(again.warnings).toEqual([expect.stringContaining(`its stored value is not valid JSON (in the cache store at ${url()}); it was evicted`)]);
    const other = stored("two-garbled");
    cli("SET", other.name, '{"value":5}');
    const ls = await start(process.execPath, [cairnBin, "cache", "ls", "--root", root], { env: childEnv({ CAIRN_CACHE_URL: url() }) }).done;
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain("one-garbled");
    expect(ls.stdout).toContain(
      `1 stored value in the cache at ${url()} could not be read as a cache entry (not JSON, not a Cairn cache entry, or outputs edited since it was written), left out: ${other.name.slice("cairn::".length, "cairn::".length + 16)}. ` +
        "`cairn cache ls` only reads, so it stays in the store until a run that meets it or `cairn cache prune` evicts it.",
    );
    // Only read: ls leaves it for a run or prune to evict.
    expect(cli("EXISTS", other.name)).toBe("1");
  });
});
