import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixture, runTs } from "../test/_child.ts";
import { startPostgresServer } from "../test/postgres-server.ts";
import { makeRedisFull, startRedisServer } from "../test/redis-server.ts";
import { describeCacheStore, makeEntry } from "../test/store-suite.ts";
import { fileNameOfKey } from "./backends/_files.ts";
import { CacheBackendError, CacheStore, CacheStoreUrlError } from "./index.ts";

describeCacheStore("embedded", async () => {
  const root = await mkdtemp(join(tmpdir(), "cairn-cache-"));
  return {
    store: await CacheStore.fromUrl(undefined, { root }),
    corrupt: (key) => writeFile(join(root, "cache", "entries", fileNameOfKey(`cairn:${key}`, ".json")), '{"value": {"key": tr'),
    open: (namespace) => CacheStore.fromUrl(undefined, { root, namespace }),
    leasesIgnoreNamespace: "the embedded store's leases are one folder's (<root>/cache/leases), whatever the namespace",
    holderIsTheAcquirer: "the embedded store's lease files record the process that took them (file-leases.test.ts covers a dead one)",
    dispose: () => rm(root, { recursive: true, force: true }),
  };
});

describe("the embedded store's lookup of an entry past its ttl", () => {
  it("says it expired (which run made it, when): a lookup deletes it, a read that only looks (keep) leaves it", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-cache-"));
    const store = await CacheStore.fromUrl(undefined, { root });
    try {
      const entry = makeEntry();
      await store.set(entry, { ttlMs: 50 });
      await sleep(100);
      const kept = await store.lookup(entry.key, { keep: true });
      expect(kept).toEqual({ expired: { at: expect.any(Number), entry: expect.objectContaining({ key: entry.key, sourceRunId: entry.sourceRunId }) } });
      // Before, keyv's get deleted it and the lookup said nothing: a plain miss.
      const looked = await store.lookup(entry.key);
      expect(looked.expired?.entry?.sourceRunId).toBe(entry.sourceRunId);
      expect(looked.expired!.at).toBe(kept.expired!.at);
      expect(await store.lookup(entry.key, { keep: true })).toEqual({});
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});

describeCacheStore("redis", async () => {
  const server = await startRedisServer();
  const { default: KeyvRedis } = await import("@keyv/redis");
  const raw = new KeyvRedis(server.url, { namespace: "cairn" });
  const opened: CacheStore[] = [];
  return {
    store: await CacheStore.fromUrl(server.url),
    corrupt: (key) => raw.set(key, "not json {"),
    open: async (namespace) => {
      const store = await CacheStore.fromUrl(server.url, { namespace });
      opened.push(store);
      return store;
    },
    dispose: async () => {
      for (const store of opened) await store.close();
      await raw.disconnect();
      await server.stop();
    },
  };
});

describeCacheStore("postgres", async () => {
  const server = await startPostgresServer();
  if ("skip" in server) return server;
  const store = await CacheStore.fromUrl(server.url);
  const { default: KeyvPostgres } = await import("@keyv/postgres");
  // The adapter's own pool; each CacheStore has another, closed with it alone.
  const raw = new KeyvPostgres({ uri: server.url });
  const opened: CacheStore[] = [];
  return {
    store,
    corrupt: (key) => raw.set(`cairn:${key}`, "not json {"),
    open: async (namespace) => {
      const opening = await CacheStore.fromUrl(server.url, { namespace });
      opened.push(opening);
      return opening;
    },
    dispose: async () => {
      for (const each of [store, ...opened]) await each.close();
      await raw.disconnect();
      await server.stop();
    },
  };
});

describe("CacheStore.checkUrl", () => {
  it("throws what fromUrl throws for a URL no store takes, without connecting; passes one it would connect with", async () => {
    for (const url of ["mysql://user:hunter2@db/cache", '"redis://127.0.0.1:6379"', "redis://127.0.0.1:notaport"]) {
      const thrown = (() => {
        try {
          CacheStore.checkUrl(url, { source: "CAIRN_CACHE_URL" });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      const opened = await CacheStore.fromUrl(url, { source: "CAIRN_CACHE_URL" }).catch((e: unknown) => e);
      expect(thrown).toBeInstanceOf(CacheStoreUrlError);
      expect((thrown as Error).message).toBe((opened as Error).message);
      expect((thrown as Error).message).toMatch(/from CAIRN_CACHE_URL/);
      expect((thrown as Error).message).not.toContain("hunter2");
    }
    // Nothing listens on port 1: checking does not connect, so it does not fail.
    expect(() => CacheStore.checkUrl("redis://127.0.0.1:1")).not.toThrow();
    expect(() => CacheStore.checkUrl(undefined)).not.toThrow();
    expect(() => CacheStore.checkUrl("")).not.toThrow();
  });
});

describe("CacheStore.fromUrl", () => {
  it("opens the embedded store without a URL, under <root>/cache", async () => {
    const root = await mkdtemp(join(tmpdir(), "cairn-cache-"));
    const store = await CacheStore.fromUrl("", { root });
    expect(store.kind).toBe("embedded");
    expect(store.location).toBe(join(root, "cache"));
    await rm(root, { recursive: true, force: true });
  });

  it("refuses an unknown scheme, saying what it expected and how to fix it", async () => {
    const error = await CacheStore.fromUrl("mysql://user:hunter2@db/cache").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    expect((error as Error).message).toMatch(/Expected the cache URL to start with redis:\/\/.*postgres:\/\//);
    expect((error as Error).message).toMatch(/unsupported scheme mysql:/);
    expect((error as Error).message).not.toContain("hunter2");
    await expect(CacheStore.fromUrl("not a url")).rejects.toThrow(/not a URL/);
  });

  it("refuses a password with a raw `%` without printing it; percent-encoded, it opens a real redis", async () => {
    // (With an `@` as well, it is refused for that first: see the test below.)
    const password = 'Se"cr:t%zz';
    const server = await startRedisServer({ args: ["--requirepass", password] });
    try {
      const raw = `redis://:${password}@127.0.0.1:${server.port}`;
      const error = await CacheStore.fromUrl(raw).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CacheStoreUrlError);
      expect((error as Error).message).toBe(
        `Expected the cache URL's password to be percent-encoded, got "redis://:***@127.0.0.1:${server.port}" ` +
          "(its password does not decode: a `%` must start an escape of UTF-8 bytes, such as %25). " +
          "Percent-encode the password (encodeURIComponent does): %25 for %, %40 for @, %3A for :, %2F for /.",
      );
      expect(String((error as Error).stack)).not.toMatch(/Se"cr|t%zz/);
      const store = await CacheStore.fromUrl(`redis://:${encodeURIComponent(password)}@127.0.0.1:${server.port}`);
      try {
        expect(await store.list()).toEqual([]);
      } finally {
        await store.close();
      }
    } finally {
      await server.stop();
    }
  });

  it("refuses a URL whose password holds an unencoded `@` then `#`, `/` or `?`, never showing it", async () => {
    // These parse, with part of the password as the host: they connected to host `ss` (or `r`)
    // and printed `ss#word` in the error.
    for (const [url, shown] of [
      ["redis://user:p@ss#word@127.0.0.1:1", "redis://user:***@127.0.0.1:1"],
      [`postgres://cairn:p"q@r#s't@127.0.0.1:1/cairn`, "postgres://cairn:***@127.0.0.1:1/cairn"],
      ["redis://:p@ss/wo#rd@127.0.0.1:1", "redis://:***@127.0.0.1:1"],
      // A token holding a `/` parses as host `Tok3n` and a path: the message hides up to the last `@` all the same.
      ["redis://Tok3n/wo#rd@127.0.0.1:1", "redis://***@127.0.0.1:1"],
    ] as const) {
      const error = await CacheStore.fromUrl(url, { connectTimeoutMs: 500 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CacheStoreUrlError);
      expect((error as Error).message).toBe(
        `Expected the cache URL's user name and password to be percent-encoded, got ${JSON.stringify(shown)} ` +
          "(it holds more than one `@`, or a `#`, `/` or `?` before its last `@`, so part of the password would be read as the host). " +
          "Percent-encode the user name and password (encodeURIComponent does): %40 for @, %23 for #, %2F for /, %3F for ?, %3A for :, %25 for %.",
      );
      expect(`${(error as Error).message}\n${(error as Error).stack}`).not.toMatch(/ss#word|r#s't|wo#rd|Tok3n/);
    }
  });

  it("a redis or postgres URL that does not parse says so and to percent-encode, not that the scheme is wrong", async () => {
    const error = await CacheStore.fromUrl("redis://:pw@[::1:6379").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    expect((error as Error).message).toBe(
      'Expected a redis:// URL that parses, got "redis://:***@[::1:6379" (it does not parse as a URL). ' +
        "Percent-encode the user name and password (encodeURIComponent does): %40 for @, %23 for #, %2F for /, %3F for ?, %3A for :, %25 for %.",
    );
    // `#` alone in the password: it does not parse either, and is refused the same way.
    const hash = await CacheStore.fromUrl("redis://:abc#def@127.0.0.1:1").catch((e: unknown) => e);
    expect((hash as Error).message).toMatch(/^Expected the cache URL's user name and password to be percent-encoded, got "redis:\/\/:\*\*\*@127\.0\.0\.1:1".*%23 for #/);
    expect((hash as Error).message).not.toMatch(/start with redis|abc|def/);
  });

  it("keeps no secret in the cause of a URL that does not parse: Node's TypeError carried the whole URL as its `input`", async () => {
    // An app that logs the error (console.error, a logger printing causes) printed that `input`.
    for (const url of ["postgres://me@[::1:5432/cairn?password=Zq7Pw", "redis://:Zq7Pw@[::1:6379"]) {
      const error = await CacheStore.fromUrl(url, { source: "CAIRN_CACHE_URL" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CacheStoreUrlError);
      expect((error as Error).cause).toBeInstanceOf(TypeError);
      expect(inspect(error), url).not.toContain("Zq7Pw");
    }
  });

  it("refuses a redis URL whose path is not a database number with a CacheStoreUrlError, not node-redis's TypeError", async () => {
    const error = await CacheStore.fromUrl("redis://127.0.0.1:1/abc", { connectTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    expect((error as Error).message).toBe(
      'Expected the path of a redis URL to be a database number (redis://host:6379/1) or nothing, got "redis://127.0.0.1:1/abc" ' +
        '(its path is "/abc"). Give a database number, or leave the path out for database 0.',
    );
    // What the check lets through is still read by node-redis, whose synchronous throw is a URL error too.
    const { openRedisBackend } = await import("./backends/redis.ts");
    const direct = await openRedisBackend("redis://:pw@127.0.0.1:1/abc", "cairn", 500).catch((e: unknown) => e);
    expect(direct).toBeInstanceOf(CacheStoreUrlError);
    expect((direct as Error).message).toMatch(/^Expected a redis cache URL node-redis can read .*, got "redis:\/\/:\*\*\*@127\.0\.0\.1:1\/abc" \(Invalid pathname\)/);
  });

  it("refuses a postgres URL whose port is 0 by its port, as a redis one, instead of trying to connect there", async () => {
    const error = await CacheStore.fromUrl("postgres://127.0.0.1:0/cairn", { connectTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheStoreUrlError);
    expect((error as Error).message).toBe(
      'Expected the port of a postgres:// URL to be a number from 1 to 65535, got "postgres://127.0.0.1:0/cairn" (its port is "0"). ' +
        "Give the port in digits, or leave `:PORT` out for 5432.",
    );
  });

  it("fails clearly and quickly when redis does not answer", async () => {
    const started = Date.now();
    const error = await CacheStore.fromUrl("redis://:pw@127.0.0.1:1", { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheBackendError);
    expect((error as Error).message).toMatch(/The redis cache at redis:\/\/:\*\*\*@127\.0\.0\.1:1 failed to connect/);
    // How to start redis in general words, not a script of Cairn's own repository that a user's project lacks.
    expect((error as Error).message).toMatch(/`redis-cli -u redis:\/\/:\*\*\*@127\.0\.0\.1:1 ping` answers PONG\); to run one on this machine, start `redis-server`/);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe("CacheStore on a redis that refuses", () => {
  it("a refusal redis answers (WRONGTYPE, OOM) fails that operation at once with its answer, not as a dead store", async () => {
    const server = await startRedisServer({ args: ["--maxmemory-policy", "noeviction"] });
    const { createClient } = await import("@keyv/redis");
    const raw = createClient({ url: server.url });
    await raw.connect();
    const store = await CacheStore.fromUrl(server.url);
    try {
      // Another program's list where the cache keeps an entry.
      await raw.lPush("cairn::listed", "x");
      let started = performance.now();
      const wrongType = await store.get("listed").catch((e: unknown) => e);
      expect(wrongType).toBeInstanceOf(CacheBackendError);
      expect(wrongType).toMatchObject({ backend: "redis", operation: "read an entry", reply: expect.stringMatching(/^WRONGTYPE /) });
      expect((wrongType as Error).message).toMatch(/^The redis cache at redis:\/\/127\.0\.0\.1:\d+ refused to read an entry: it answered "WRONGTYPE .*"\. Another program .* database of its own/);
      expect((wrongType as Error).message).not.toMatch(/Check that redis is running/);
      expect(performance.now() - started).toBeLessThan(1000); // answered: not tried again for 1.5 s

      // Full, and evicting nothing: every write is refused, reads still work.
      await makeRedisFull(server.url);
      started = performance.now();
      const full = await store.set(makeEntry()).catch((e: unknown) => e);
      expect(full).toBeInstanceOf(CacheBackendError);
      expect(full).toMatchObject({ operation: "write an entry", reply: expect.stringMatching(/^OOM command not allowed when used memory > 'maxmemory'/) });
      expect((full as Error).message).toMatch(/refused to write an entry: it answered "OOM command not allowed .*"\. Redis is full: raise its maxmemory/);
      expect(performance.now() - started).toBeLessThan(1000);
      expect(await store.get("k1")).toBeUndefined();
    } finally {
      await store.close();
      await raw.destroy();
      await server.stop();
    }
  });

  it("a read-only replica's refusal (READONLY) fails a write at once, says to point the URL at the primary, and reads still work", async () => {
    const primary = await startRedisServer();
    const replica = await startRedisServer({ args: ["--replicaof", "127.0.0.1", String(primary.port)] });
    const store = await CacheStore.fromUrl(replica.url);
    try {
      const started = performance.now();
      const refused = await store.set(makeEntry()).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(CacheBackendError);
      expect(refused).toMatchObject({ backend: "redis", operation: "write an entry", reply: expect.stringMatching(/^READONLY /) });
      expect((refused as Error).message).toMatch(/refused to write an entry: it answered "READONLY .*"\. The URL names a read-only replica: point it at the primary\./);
      expect((refused as Error).message).not.toMatch(/Check that redis is running/);
      expect(performance.now() - started).toBeLessThan(1000); // answered: not tried again for 1.5 s
      expect(await store.get("k1")).toBeUndefined();
    } finally {
      await store.close();
      await replica.stop();
      await primary.stop();
    }
  });
});

/** One operation (skewed-store.ts) by another process whose clock runs `ms` off, as another machine's may. */
async function onSkewedMachine(ms: number, url: string, ...args: string[]): Promise<Record<string, unknown>> {
  const preload = `${pathToFileURL(fixture("skew-clock.mjs")).href}?ms=${ms}`;
  return JSON.parse(await runTs(fixture("skewed-store.ts"), [url, ...args], ["--import", preload])) as Record<string, unknown>;
}

const HOUR = 3_600_000;

for (const kind of ["redis", "postgres"] as const) {
  describe(`entries' ttl in a ${kind} store shared by machines whose clocks differ`, () => {
    // keyv stamped each entry with the writer's clock and deleted it on a read whose clock said
    // it had passed: expiry is the store's own (redis: PX; postgres: the database's clock).
    let server: { url: string; stop(): Promise<void> } | undefined;
    let skip: string | undefined;
    beforeAll(async () => {
      const started = kind === "redis" ? await startRedisServer() : await startPostgresServer();
      if ("skip" in started) skip = started.skip;
      else server = started;
    }, 120_000);
    afterAll(() => server?.stop());
    const url = (context: { skip: (note?: string) => void }): string => {
      if (!server) context.skip(skip);
      return server!.url;
    };
    const fresh = (what: string) => `skew-${what}-${Math.random().toString(36).slice(2, 10)}`;

    it("an entry written by a machine whose clock is 2 h behind lives out its 1 h ttl for the others", async (context) => {
      const at = url(context);
      const key = fresh("behind");
      const { now } = await onSkewedMachine(-2 * HOUR, at, "set", key, String(HOUR));
      expect(now as number).toBeLessThan(Date.now() - HOUR); // the writer's clock was behind
      const store = await CacheStore.fromUrl(at);
      try {
        expect(await store.get(key)).toMatchObject({ key });
        expect((await store.list()).map((entry) => entry.key)).toContain(key);
      } finally {
        await store.close();
      }
    });

    it("a machine whose clock is 2 h ahead neither misses nor deletes a live entry by reading or listing it", async (context) => {
      const at = url(context);
      const key = fresh("ahead");
      const store = await CacheStore.fromUrl(at);
      try {
        await store.set(makeEntry("train", { key }), { ttlMs: HOUR });
        expect((await onSkewedMachine(2 * HOUR, at, "list")).keys).toContain(key);
        expect(await onSkewedMachine(2 * HOUR, at, "get", key)).toEqual({ found: true });
        expect(await store.get(key)).toMatchObject({ key }); // still in the shared store
      } finally {
        await store.close();
      }
    });

    it("an entry still expires, by the store's clock, for every machine; prune removes it from the store", async (context) => {
      const at = url(context);
      const key = fresh("expired");
      const store = await CacheStore.fromUrl(at);
      try {
        await store.set(makeEntry("train", { key }), { ttlMs: 1 });
        await sleep(50); // past its 1 ms by any clock
        expect(await store.get(key)).toBeUndefined();
        expect((await store.list()).map((entry) => entry.key)).not.toContain(key);
        expect(await onSkewedMachine(-2 * HOUR, at, "get", key)).toEqual({ found: false });
        await store.prune();
        // Gone from the store itself, not only skipped (redis drops it on its own).
        expect(await store.delete(key)).toBe(false);
      } finally {
        await store.close();
      }
    });
  });
}
