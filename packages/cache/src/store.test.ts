import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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
    dispose: () => rm(root, { recursive: true, force: true }),
  };
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
  // Shares the adapter's module-wide pool with `store`, so it is never disconnected itself.
  const raw = new KeyvPostgres({ uri: server.url });
  return {
    store,
    corrupt: (key) => raw.set(`cairn:${key}`, "not json {"),
    // Never closed alone: closing any of them ends the pool they all share (store.close() does).
    open: (namespace) => CacheStore.fromUrl(server.url, { namespace }),
    dispose: async () => {
      await store.close();
      await server.stop();
    },
  };
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
    const password = 'Se"cr@t%zz';
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

  it("fails clearly and quickly when redis does not answer", async () => {
    const started = Date.now();
    const error = await CacheStore.fromUrl("redis://:pw@127.0.0.1:1", { connectTimeoutMs: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheBackendError);
    expect((error as Error).message).toMatch(/The redis cache at redis:\/\/:\*\*\*@127\.0\.0\.1:1 failed to connect/);
    expect((error as Error).message).toMatch(/scripts\/start-redis\.sh/);
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
});
