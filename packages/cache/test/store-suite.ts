/**
 * The compliance suite every cache store runs (embedded, redis, postgres),
 * like keyv's test-suite: one set of promises, checked against real stores.
 *
 * @example
 * describeCacheStore("redis", async () => ({ store: await CacheStore.fromUrl(url), corrupt, open: (namespace) => CacheStore.fromUrl(url, { namespace }) }));
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CacheOptionError,
  CacheStore,
  LeaseLostError,
  type NewCacheEntry,
  computeCacheKey,
  currentOwner,
  formatOwner,
  processStartTime,
} from "../src/index.ts";

export interface StoreUnderTest {
  store: CacheStore;
  /** Overwrites the raw stored value of `key` with bytes that are not an entry. */
  corrupt(key: string): Promise<void>;
  /** Frees what the factory made (servers stay up; the test file stops them). */
  dispose?(): Promise<void>;
  /**
   * Opens another store on the same folder or server under `namespace`, as a second project
   * sharing it would. The factory closes it in `dispose`.
   */
  open(namespace: string): Promise<CacheStore>;
  /** Why this store's leases are shared by every namespace, when they are. */
  leasesIgnoreNamespace?: string;
  /** Why this store's leases judge their holder by the process that took them, not by the owner string. */
  holderIsTheAcquirer?: string;
}

/** A fresh entry of `taskName` with a unique key. */
export function makeEntry(taskName = "train", overrides: Partial<NewCacheEntry> = {}): NewCacheEntry {
  const { key, ingredients } = computeCacheKey({
    taskName,
    code: "function train() {}",
    inputs: { rows: 500, nonce: randomBytes(8).toString("hex") },
    env: { API_TOKEN: "s3cr3t-value" },
  });
  return {
    key,
    taskName,
    ingredients,
    sourceRunId: `run-${randomBytes(4).toString("hex")}`,
    tracker: { kind: "local", uri: "file:///tmp/.cairn/runs" },
    outputs: {
      values: { accuracy: 0.93, labels: ["a", "b"] },
      artifacts: [{ path: "model", digest: "ab".repeat(32), size: 1234, artifactPath: "outputs/model" }],
    },
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function describeCacheStore(name: string, setup: () => Promise<StoreUnderTest | { skip: string }>): void {
  describe(`CacheStore compliance: ${name}`, () => {
    let subject: StoreUnderTest | undefined;
    let skip: string | undefined;
    beforeAll(async () => {
      const made = await setup();
      if ("skip" in made) skip = made.skip;
      else subject = made;
    });
    afterAll(async () => {
      await subject?.dispose?.();
      await subject?.store.close();
    });
    const store = (context: { skip: (note?: string) => void }): CacheStore => {
      if (!subject) context.skip(skip);
      return subject!.store;
    };

    it("round-trips an entry and fills createdAt and sizeBytes", async (context) => {
      const cache = store(context);
      const entry = makeEntry();
      const before = Date.now();
      const stored = await cache.set(entry);
      expect(stored.createdAt).toBeGreaterThanOrEqual(before);
      expect(stored.sizeBytes).toBe(1234 + JSON.stringify(entry.outputs.values).length);
      expect(await cache.get(entry.key)).toEqual(stored);
      expect(await cache.get(makeEntry().key)).toBeUndefined();
    });

    it("replaces an entry of the same key and deletes it", async (context) => {
      const cache = store(context);
      const entry = makeEntry();
      await cache.set(entry);
      await cache.set({ ...entry, sourceRunId: "run-2" });
      expect((await cache.get(entry.key))?.sourceRunId).toBe("run-2");
      expect(await cache.delete(entry.key)).toBe(true);
      expect(await cache.get(entry.key)).toBeUndefined();
      expect(await cache.delete(entry.key)).toBe(false);
    });

    it("honours ttlMs", async (context) => {
      const cache = store(context);
      const entry = makeEntry();
      await cache.set(entry, { ttlMs: 300 });
      expect(await cache.get(entry.key)).toBeDefined();
      await sleep(450);
      expect(await cache.get(entry.key)).toBeUndefined();
      expect((await cache.list()).map((e) => e.key)).not.toContain(entry.key);
    });

    it("treats a corrupt value as a miss and evicts it", async (context) => {
      const cache = store(context);
      const entry = makeEntry();
      await cache.set(entry);
      await subject!.corrupt(entry.key);
      expect(await cache.get(entry.key)).toBeUndefined();
      expect(await cache.delete(entry.key)).toBe(false); // already evicted
      const other = makeEntry();
      await cache.set(other);
      await subject!.corrupt(other.key);
      expect((await cache.list()).map((e) => e.key)).not.toContain(other.key);
      expect(await cache.delete(other.key)).toBe(false);
    });

    it("lookup() says why it evicted a corrupt value, and is a plain miss afterwards", async (context) => {
      const cache = store(context);
      const entry = makeEntry();
      await cache.set(entry);
      expect((await cache.lookup(entry.key)).entry?.sourceRunId).toBe(entry.sourceRunId);
      await subject!.corrupt(entry.key);
      expect(await cache.lookup(entry.key)).toEqual({ evicted: "its stored value is not valid JSON" });
      expect(await cache.lookup(entry.key)).toEqual({});
    });

    it("lookup() and list() with keep: a corrupt value is reported (lookup) or skipped (list) but stays for a reader that may change things", async (context) => {
      const cache = store(context);
      const entry = makeEntry();
      await cache.set(entry);
      await subject!.corrupt(entry.key);
      expect(await cache.lookup(entry.key, { keep: true })).toEqual({ evicted: "its stored value is not valid JSON" });
      expect(await cache.lookup(entry.key, { keep: true })).toEqual({ evicted: "its stored value is not valid JSON" });
      expect((await cache.list({ keep: true })).map((e) => e.key)).not.toContain(entry.key);
      expect(await cache.lookup(entry.key)).toEqual({ evicted: "its stored value is not valid JSON" });
      expect(await cache.lookup(entry.key)).toEqual({});
    });

    it("never stores env values, only their hashes", async (context) => {
      const cache = store(context);
      const entry = makeEntry();
      await cache.set(entry);
      const read = await cache.get(entry.key);
      expect(JSON.stringify(read)).not.toContain("s3cr3t-value");
      expect(read?.ingredients.env.API_TOKEN).toMatch(/^[0-9a-f]{64}$/);
    });

    it("lists newest first, by task, with a limit; clears by task name", async (context) => {
      const cache = store(context);
      await cache.clear();
      const now = Date.now();
      const a1 = await cache.set(makeEntry("task-a", { createdAt: now - 3000 }));
      const a2 = await cache.set(makeEntry("task-a", { createdAt: now - 1000 }));
      const b1 = await cache.set(makeEntry("task-b", { createdAt: now - 2000 }));
      expect((await cache.list()).map((e) => e.key)).toEqual([a2.key, b1.key, a1.key]);
      expect((await cache.list({ taskName: "task-a" })).map((e) => e.key)).toEqual([a2.key, a1.key]);
      expect((await cache.list({ limit: 1 })).map((e) => e.key)).toEqual([a2.key]);
      expect(await cache.clear({ taskName: "task-a" })).toBe(2);
      expect((await cache.list()).map((e) => e.key)).toEqual([b1.key]);
      expect(await cache.clear()).toBe(1);
      expect(await cache.list()).toEqual([]);
    });

    it("clear() removes its own namespace's entries only, also beside a name that differs by a `_`", async (context) => {
      const cache = store(context);
      // `_` is a wildcard of SQL's LIKE: `team_a:%` also matches `team-a:...`.
      const teamA = await subject!.open("team_a");
      const other = await subject!.open("team-a");
      await teamA.set(makeEntry());
      const theirs = await other.set(makeEntry());
      const mine = await cache.set(makeEntry());
      expect(await teamA.clear()).toBe(1);
      expect(await teamA.list()).toEqual([]);
      expect(await other.list()).toEqual([theirs]);
      expect(await cache.get(mine.key)).toEqual(mine);
      expect(await other.clear()).toBe(1);
      expect(await cache.delete(mine.key)).toBe(true);
    });

    it("prunes by age and then by size, oldest first", async (context) => {
      const cache = store(context);
      await cache.clear();
      const now = Date.now();
      const old = await cache.set(makeEntry("t", { createdAt: now - 10 * 86_400_000, sizeBytes: 100 }));
      const e1 = await cache.set(makeEntry("t", { createdAt: now - 3000, sizeBytes: 100 }));
      const e2 = await cache.set(makeEntry("t", { createdAt: now - 2000, sizeBytes: 100 }));
      const e3 = await cache.set(makeEntry("t", { createdAt: now - 1000, sizeBytes: 100 }));
      const pruned = await cache.prune({ olderThanMs: 86_400_000 });
      expect(pruned).toEqual({ removed: 1, removedBytes: 100, removedRecordBytes: expect.any(Number), removedArtifactBytes: 1234, kept: 3, keptBytes: 300 });
      // What prune frees is the entry's record (its JSON), not its artifacts: those are its run's.
      expect(pruned.removedRecordBytes).toBe(Buffer.byteLength(JSON.stringify(old)));
      expect(await cache.get(old.key)).toBeUndefined();
      expect(await cache.prune({ maxSizeBytes: 150 })).toMatchObject({ removed: 2, removedBytes: 200, removedArtifactBytes: 2468, kept: 1, keptBytes: 100 });
      expect(await cache.get(e1.key)).toBeUndefined();
      expect(await cache.get(e2.key)).toBeUndefined();
      expect(await cache.get(e3.key)).toBeDefined();
      await cache.clear();
    });

    it("rejects bad keys and options where they enter", async (context) => {
      const cache = store(context);
      await expect(cache.get("has space")).rejects.toBeInstanceOf(CacheOptionError);
      await expect(cache.set(makeEntry(), { ttlMs: 0 })).rejects.toThrow(/Expected `ttlMs` to be an integer >= 1, got `0` \(number\)/);
      await expect(cache.acquireLease(makeEntry().key, { ttlMs: 1000, owner: "" })).rejects.toBeInstanceOf(CacheOptionError);
      await expect(cache.set({ ...makeEntry(), outputs: { values: { n: 1n }, artifacts: [] } })).rejects.toThrow(/outputs\.values/);
    });

    describe("leases", () => {
      it("refuses a second acquirer and names the holder; release lets the next one in", async (context) => {
        const cache = store(context);
        const { key } = makeEntry();
        const first = await cache.acquireLease(key, { ttlMs: 10_000, owner: "worker-1" });
        expect(first.acquired).toBe(true);
        const second = await cache.acquireLease(key, { ttlMs: 10_000, owner: "worker-2" });
        expect(second).toMatchObject({ acquired: false, holder: "worker-1" });
        if (second.acquired) throw new Error("unreachable");
        expect(second.expiresAt).toBeGreaterThan(Date.now() + 5_000);
        if (!first.acquired) throw new Error("unreachable");
        await first.release();
        await first.release(); // idempotent
        const third = await cache.acquireLease(key, { ttlMs: 10_000, owner: "worker-2" });
        expect(third.acquired).toBe(true);
        if (third.acquired) await third.release();
      });

      it("lets another take over an expired lease; the old holder can neither renew nor release it", async (context) => {
        const cache = store(context);
        const { key } = makeEntry();
        const crashed = await cache.acquireLease(key, { ttlMs: 200, owner: "crashed" });
        if (!crashed.acquired) throw new Error("expected the first lease");
        await sleep(350);
        const next = await cache.acquireLease(key, { ttlMs: 10_000, owner: "next" });
        expect(next.acquired).toBe(true);
        await expect(crashed.renew()).rejects.toBeInstanceOf(LeaseLostError);
        await crashed.release(); // must not remove "next"'s lease
        expect(await cache.acquireLease(key, { ttlMs: 10_000, owner: "third" })).toMatchObject({ acquired: false, holder: "next" });
        if (next.acquired) await next.release();
      });

      it("renew keeps a lease alive past its first ttl", async (context) => {
        const cache = store(context);
        const { key } = makeEntry();
        // Renewed every 500 ms for 2 s, past its 1.5 s ttl: a second of room for a loaded machine.
        const lease = await cache.acquireLease(key, { ttlMs: 1500, owner: "long-task" });
        if (!lease.acquired) throw new Error("expected the lease");
        for (let i = 0; i < 4; i++) {
          await sleep(500);
          await lease.renew();
        }
        expect(lease.expiresAt).toBeGreaterThan(Date.now() + 700);
        expect(await cache.acquireLease(key, { ttlMs: 400, owner: "other" })).toMatchObject({ acquired: false, holder: "long-task" });
        await lease.release();
      });

      it("a lease holds its key in its own namespace only", async (context) => {
        const cache = store(context);
        if (subject!.leasesIgnoreNamespace) context.skip(subject!.leasesIgnoreNamespace);
        const other = await subject!.open("other-project");
        const { key } = makeEntry();
        const mine = await cache.acquireLease(key, { ttlMs: 10_000, owner: "project-a" });
        const theirs = await other.acquireLease(key, { ttlMs: 10_000, owner: "project-b" });
        if (!mine.acquired || !theirs.acquired) throw new Error(`expected both leases, got ${JSON.stringify({ mine, theirs })}`);
        // Within a namespace a lease still excludes, and renew and release find their own row.
        expect(await other.acquireLease(key, { ttlMs: 10_000, owner: "project-b2" })).toMatchObject({ acquired: false, holder: "project-b" });
        await theirs.renew();
        await theirs.release();
        expect(await other.waitFor(key, { pollMs: 20 })).toBeUndefined();
        const next = await other.acquireLease(key, { ttlMs: 10_000, owner: "project-b2" });
        expect(next.acquired).toBe(true);
        expect(await cache.acquireLease(key, { ttlMs: 10_000, owner: "project-a2" })).toMatchObject({ acquired: false, holder: "project-a" });
        if (next.acquired) await next.release();
        await mine.release();
      });

      it("waitFor resolves with the entry the holder writes", async (context) => {
        const cache = store(context);
        const entry = makeEntry();
        const lease = await cache.acquireLease(entry.key, { ttlMs: 10_000, owner: "computer" });
        if (!lease.acquired) throw new Error("expected the lease");
        const waiting = cache.waitFor(entry.key, { pollMs: 20 });
        await sleep(150);
        const stored = await cache.set(entry);
        await lease.release();
        expect(await waiting).toEqual(stored);
      });

      it("waitFor resolves with undefined when the lease is released or expires without an entry", async (context) => {
        const cache = store(context);
        const { key } = makeEntry();
        const failing = await cache.acquireLease(key, { ttlMs: 10_000, owner: "fails" });
        if (!failing.acquired) throw new Error("expected the lease");
        const waiting = cache.waitFor(key, { pollMs: 20 });
        await sleep(100);
        await failing.release();
        expect(await waiting).toBeUndefined();

        const crashed = await cache.acquireLease(key, { ttlMs: 250, owner: "crashes" });
        expect(crashed.acquired).toBe(true);
        const started = Date.now();
        expect(await cache.waitFor(key, { pollMs: 20 })).toBeUndefined();
        expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      });

      it("a lease whose owner is a process of this machine that no longer exists is taken over at once, by a waiter and by an acquirer", async (context) => {
        const cache = store(context);
        if (subject!.holderIsTheAcquirer) context.skip(subject!.holderIsTheAcquirer);
        const { key } = makeEntry();
        const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
        await once(child, "spawn");
        const start = processStartTime(child.pid!);
        const space = currentOwner().space;
        const dead = `${formatOwner({ host: hostname(), pid: child.pid!, ...(start !== undefined ? { start } : {}), ...(space !== undefined ? { space } : {}) })} run-1 flaky`;
        // A long ttl, as CAIRN_LEASE_TTL_MS=600000 gives: only the holder's death may end the wait.
        const held = await cache.acquireLease(key, { ttlMs: 600_000, owner: dead });
        if (!held.acquired) throw new Error("expected the lease");
        expect(await cache.acquireLease(key, { ttlMs: 10_000, owner: "other" })).toMatchObject({ acquired: false, holder: dead });
        const waiting = cache.waitFor(key, { pollMs: 20 });
        await sleep(100);
        child.kill("SIGKILL");
        await once(child, "exit");
        const started = Date.now();
        expect(await waiting).toBeUndefined();
        expect(Date.now() - started).toBeLessThan(2000);

        const again = await cache.acquireLease(key, { ttlMs: 600_000, owner: dead });
        if (!again.acquired) throw new Error("expected the lease on the free key");
        const next = await cache.acquireLease(key, { ttlMs: 10_000, owner: "next" });
        expect(next.acquired).toBe(true);
        // The dead holder's release removes nothing of the new holder's; a live owner is not taken over.
        await again.release();
        expect(await cache.acquireLease(key, { ttlMs: 10_000, owner: "third" })).toMatchObject({ acquired: false, holder: "next" });
        if (next.acquired) await next.release();
        const alive = `${formatOwner()} run-2 flaky`;
        const mine = await cache.acquireLease(key, { ttlMs: 10_000, owner: alive });
        expect(await cache.acquireLease(key, { ttlMs: 10_000, owner: "fourth" })).toMatchObject({ acquired: false, holder: alive });
        if (mine.acquired) await mine.release();
      });

      it("waitFor stops when its signal aborts", async (context) => {
        const cache = store(context);
        const { key } = makeEntry();
        const lease = await cache.acquireLease(key, { ttlMs: 10_000, owner: "slow" });
        const controller = new AbortController();
        const waiting = cache.waitFor(key, { pollMs: 20, signal: controller.signal });
        setTimeout(() => controller.abort(new Error("run cancelled")), 100);
        await expect(waiting).rejects.toThrow("run cancelled");
        if (lease.acquired) await lease.release();
      });
    });
  });
}

