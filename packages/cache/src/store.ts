import { setTimeout as sleep } from "node:timers/promises";
import type { Keyv } from "keyv";
import { CORRUPT, type CacheBackend, type StoredValue, redactUrl } from "./backends/_backend.ts";
import { type ParsedStoreUrl, parseStoreUrl } from "./store-url.ts";
import { openEmbeddedBackend } from "./backends/embedded.ts";
import { type CacheEntry, cacheEntryProblem, completeEntry, type NewCacheEntry, parseCacheEntry } from "./entry.ts";
import { CacheBackendError, CacheError, CacheOptionError, CacheReadOnlyError, CacheStoreUrlError, CacheValueError, LeaseLostError } from "./errors.ts";
import type { AcquireLeaseOptions, HeldLease, LeaseResult, WaitForOptions } from "./lease.ts";
import { ownerIsGone, parseOwner } from "./process-owner.ts";

/** Options of {@link CacheStore.fromUrl}. */
export interface CacheStoreOptions {
  /**
   * Folder of the embedded store; entries go to `<root>/cache`.
   * @default ".cairn"
   */
  root?: string;
  /**
   * Prefix of every key, so several projects can share one redis or postgres.
   * @default "cairn"
   */
  namespace?: string;
  /**
   * How long to wait for redis or postgres to answer when opening, in ms, connection
   * attempts included: an unreachable server fails the open within about this long.
   * @default 1500
   */
  connectTimeoutMs?: number;
  /** Where `url` came from, for messages: `CAIRN_CACHE_URL`, `cache.url`. */
  source?: string;
  /**
   * How long a redis or postgres operation that failed is tried again before it fails
   * with `CacheBackendError`, in ms (a server that restarts within it is not noticed).
   * Each try is itself bounded (redis: 2 s per command; postgres: 5 s per query).
   * @default 1500
   */
  retryMs?: number;
  /**
   * What the store is opened for. `"read"`: for code that only looks (`cairn plan`, `cairn
   * explain`, `cairn cache ls`): a postgres store checks only that the URL's user has USAGE on the
   * schema and SELECT on its tables, and creates no table (a missing one reads as empty); any
   * change asked of it (`set`, `delete`, `clear`, `prune`, `acquireLease`, a `lookup` or `list`
   * without `keep`) throws `CacheReadOnlyError`.
   * @default "write"
   */
  access?: "read" | "write";
}

/** An entry found past its `ttl` by a lookup (see {@link CacheStore.lookup}): a read that only looks leaves it in the store, another deletes it. */
export interface ExpiredEntry {
  /** When it expired, epoch ms. */
  at: number;
  /** The entry as stored, when it parses. */
  entry?: CacheEntry;
}

/** Options of {@link CacheStore.list}. */
export interface ListOptions {
  /** Only entries of this task. */
  taskName?: string;
  /** At most this many, newest first. */
  limit?: number;
  /** Only entries created before this time (epoch ms): those a run that began then could compare with. */
  before?: number;
  /**
   * With `taskName`: read through the store's index by task, where it keeps one (the embedded
   * store), so that no other task's entry is read, and with a `limit`, about that many. It leaves
   * out entries that a Cairn from before the index wrote after the store's first such listing, and
   * those whose marker could not be written: for a miss's reason, which explains, and a listing of
   * one task, not for what decides.
   */
  indexed?: boolean;
  /** Malformed and expired entries are skipped but left in the store (for callers that only read, as `cairn explain`). */
  keep?: boolean;
  /** Told the key of each stored value that is no entry it could read (not JSON, not an entry, outputs edited since written), which the listing leaves out. */
  onUnreadable?: (key: string) => void;
}

/**
 * What {@link CacheStore.listSummaries} keeps of an entry: what `cairn cache ls` prints, without
 * what the entry holds (its key's ingredients, its outputs' values), which can be megabytes each.
 */
export type CacheEntrySummary = Pick<CacheEntry, "key" | "taskName" | "sourceRunId" | "createdAt" | "sizeBytes">;

/** Options of {@link CacheStore.prune}; both may be given. */
export interface PruneOptions {
  /**
   * Remove entries created more than this many ms ago: by this process's clock, against each
   * entry's `createdAt` stamped by its writer's (a shared store's writers' clocks may differ).
   */
  olderThanMs?: number;
  /** Then remove the oldest entries until the total `sizeBytes` is at most this. */
  maxSizeBytes?: number;
}

/**
 * What {@link CacheStore.prune} did. Sizes are entries' `sizeBytes` (their artifacts plus their
 * values), what `maxSizeBytes` limits; prune deletes entries' records only, so of `removedBytes`
 * it frees `removedRecordBytes`: the artifacts belong to the entries' source runs and stay.
 */
export interface PruneResult {
  removed: number;
  removedBytes: number;
  /** The removed entries' records as stored (JSON): what prune freed. */
  removedRecordBytes: number;
  /** The removed entries' artifacts, which stay with their source runs. */
  removedArtifactBytes: number;
  kept: number;
  keptBytes: number;
}

/** Keys the store accepts: what `computeCacheKey` makes (64 hex), or any short safe name. */
const KEY_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
const NAMESPACE_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The cache of task results, on keyv: an embedded store under `.cairn/cache`
 * (safe for several processes at once) or redis / postgres by URL. A bad or
 * unreadable entry is a miss and is evicted, never a crash.
 *
 * @example
 * const cache = await CacheStore.fromUrl(process.env.CAIRN_CACHE_URL);
 * const hit = await cache.get(key);
 */
export class CacheStore {
  private constructor(
    private readonly backend: CacheBackend,
    private readonly retryMs = 0,
    /** The prefix of its keys (see {@link CacheStoreOptions.namespace}). */
    readonly namespace = "cairn",
    /** Where its URL came from (see {@link CacheStoreOptions.source}), for messages. */
    private readonly source?: string,
    /** Opened with `access: "read"`: every change is refused (see {@link CacheStoreOptions.access}). */
    readonly readOnly = false,
  ) {}

  /**
   * Opens a store: no URL → the embedded store at `<root>/cache`; `redis://`,
   * `rediss://` → @keyv/redis; `postgres://`, `postgresql://` → @keyv/postgres.
   * Checks that a server store answers before returning.
   */
  static async fromUrl(url?: string, options: CacheStoreOptions = {}): Promise<CacheStore> {
    const { source } = options;
    if (source === undefined) return CacheStore.open(url, options);
    // The message names where the URL came from: the caller knows, the URL does not.
    return CacheStore.open(url, options).catch((error: unknown) => {
      throw CacheStoreUrlError.is(error) && !error.details?.source ? new CacheStoreUrlError(error.url, { ...error.details, cause: error.details?.cause, source }) : error;
    });
  }

  /**
   * Throws what {@link fromUrl} would throw for `url` without connecting anywhere: a
   * `CacheStoreUrlError` for a URL no store takes (a scheme that names none, quotes from a .env
   * file, a password that is not percent-encoded, a bad port), `CacheOptionError` for a URL that
   * is not a string. A caller that records something before the store is open (a flow run)
   * refuses such a URL first, so that a usage error leaves nothing behind.
   *
   * @example CacheStore.checkUrl(process.env.CAIRN_CACHE_URL, { source: "CAIRN_CACHE_URL" });
   */
  static checkUrl(url: string | undefined, options: Pick<CacheStoreOptions, "source"> = {}): void {
    if (url === undefined || url === "") return;
    try {
      checkedUrl(url);
    } catch (error) {
      throw CacheStoreUrlError.is(error) && options.source !== undefined ? new CacheStoreUrlError(error.url, { ...error.details, source: options.source }) : error;
    }
  }

  /**
   * A stand-in for a shared store that did not answer when opened (`error`, from
   * {@link fromUrl}): every operation fails with that same error, and closing it does nothing. A
   * run that goes on without its store keeps one object to ask, and says why it is not used.
   */
  static unreachable(error: CacheBackendError, namespace = "cairn"): CacheStore {
    const fail = () => Promise.reject(error);
    // Every keyv method the store calls (get, set, delete, ...) fails alike.
    const keyv = new Proxy({}, { get: () => fail }) as unknown as Keyv;
    const leases = { tryAcquire: fail, renew: fail, release: fail, peek: fail };
    const entries = async function* (): AsyncIterable<[string, unknown]> {
      throw error;
    };
    return new CacheStore({ kind: error.backend, location: error.location, keyv, leases, entries, close: async () => {} }, 0, namespace);
  }

  private static async open(url: string | undefined, options: CacheStoreOptions): Promise<CacheStore> {
    const namespace = options.namespace ?? "cairn";
    if (typeof namespace !== "string" || !NAMESPACE_PATTERN.test(namespace)) {
      throw new CacheOptionError("namespace", "1 to 64 letters, digits, `_` or `-`", namespace);
    }
    const root = options.root ?? ".cairn";
    if (typeof root !== "string" || root === "") throw new CacheOptionError("root", "a folder path", root);
    const connectTimeoutMs = options.connectTimeoutMs ?? 1500;
    checkPositiveInteger("connectTimeoutMs", connectTimeoutMs);
    const retryMs = options.retryMs ?? 1500;
    checkNonNegative("retryMs", retryMs);
    const access = options.access ?? "write";
    if (access !== "read" && access !== "write") throw new CacheOptionError("access", '"read" or "write"', access);
    const readOnly = access === "read";
    if (url === undefined || url === "") return new CacheStore(openEmbeddedBackend(root, namespace), 0, namespace, undefined, readOnly);
    const store = checkedUrl(url);
    if (store.scheme === "redis" || store.scheme === "rediss") {
      const { openRedisBackend } = await import("./backends/redis.ts");
      return new CacheStore(await openRedisBackend(url, namespace, connectTimeoutMs), retryMs, namespace, options.source, readOnly);
    }
    const { openPostgresBackend } = await import("./backends/postgres.ts");
    return new CacheStore(await openPostgresBackend(url, namespace, connectTimeoutMs, access), retryMs, namespace, options.source, readOnly);
  }

  /** Which kind of store this is. */
  get kind(): "embedded" | "redis" | "postgres" {
    return this.backend.kind;
  }

  /**
   * Whether {@link list} with `taskName` and `indexed` reads that task's entries alone
   * (the embedded store's index by task); else it reads every entry, as a listing of all does.
   */
  get indexesTasks(): boolean {
    return this.backend.storedEntriesOf !== undefined;
  }

  /** Where the store is (a folder, or a URL without its secrets: see `redactUrl`), for messages. */
  get location(): string {
    return this.backend.location;
  }

  /** The entry of `key`, or `undefined` on a miss. A malformed entry is evicted and is a miss. */
  async get(key: string): Promise<CacheEntry | undefined> {
    return (await this.lookup(key)).entry;
  }

  /**
   * Like {@link get}, but says why a stored value was evicted instead of returned
   * (it did not parse, or is not a cache entry of this key), so callers can warn, and
   * reports an entry past its ttl (`expired`: which run made it, when it expired), which
   * is deleted, as keyv does (the embedded store; redis and postgres judge expiry
   * themselves, and an expired entry there is absent), so that a miss can say why.
   * `keep`: nothing is deleted, for callers that only read (`cairn plan`, `cairn explain`).
   */
  async lookup(key: string, options: { keep?: boolean } = {}): Promise<{ entry?: CacheEntry; evicted?: string; expired?: ExpiredEntry }> {
    checkKey(key);
    if (options.keep !== true) this.checkWritable("look up an entry, evicting it when expired or malformed (pass `keep: true` to leave it)");
    let value: unknown;
    if (options.keep === true || this.backend.readStored) {
      const stored = await this.readStored(key);
      if (stored?.expires !== undefined && stored.expires <= Date.now()) {
        // keyv's get deletes it without a word: read as it is, then deleted here.
        if (options.keep !== true) await this.delete(key);
        const entry = parseCacheEntry(stored.value, key);
        return { expired: { at: stored.expires, ...(entry ? { entry } : {}) } };
      }
      value = stored?.value;
    } else {
      value = await this.call("read an entry", () => this.backend.keyv.get(key));
    }
    if (value === undefined || value === null) return {};
    const problem = cacheEntryProblem(value, key);
    if (problem === undefined) return { entry: value as CacheEntry };
    if (options.keep !== true) await this.delete(key);
    return { evicted: value === CORRUPT ? "its stored value is not valid JSON" : problem };
  }

  /**
   * The entry of `key` if the store holds a good one, changing nothing (a malformed value
   * stays for {@link lookup} to evict and report): for looking ahead at what a run will find.
   */
  async peek(key: string): Promise<CacheEntry | undefined> {
    checkKey(key);
    const stored = await this.readStored(key);
    if (stored === undefined || stored.value === undefined || stored.value === null) return undefined;
    if (stored.expires !== undefined && stored.expires <= Date.now()) return undefined;
    return parseCacheEntry(stored.value, key);
  }

  /**
   * The stored value of `key` with its expiry, deleting nothing: keyv's `get` deletes a value it
   * finds expired (the embedded store's), which a reader that only looks must not do.
   */
  private async readStored(key: string): Promise<{ value: unknown; expires?: number } | undefined> {
    const backend = this.backend;
    if (backend.readStored) return this.call("read an entry", () => backend.readStored!(key));
    const value = await this.call("read an entry", () => backend.keyv.get(key));
    return value === undefined ? undefined : { value };
  }

  /**
   * Stores an entry, replacing any of the same key. `createdAt` defaults to now,
   * `sizeBytes` to the artifacts' sizes plus the JSON size of the values.
   *
   * @example
   * await cache.set({ key, taskName: "train", ingredients, sourceRunId, tracker, outputs }, { ttlMs: 7 * 86_400_000 });
   */
  async set(entry: NewCacheEntry, options: { ttlMs?: number } = {}): Promise<CacheEntry> {
    if (typeof entry !== "object" || entry === null) throw new CacheOptionError("entry", "a cache entry object", entry);
    checkKey(entry.key);
    if (typeof entry.taskName !== "string" || entry.taskName === "") throw new CacheOptionError("entry.taskName", "a non-empty string", entry.taskName);
    if (typeof entry.sourceRunId !== "string") throw new CacheOptionError("entry.sourceRunId", "a string", entry.sourceRunId);
    if (typeof entry.ingredients !== "object" || entry.ingredients === null) {
      throw new CacheOptionError("entry.ingredients", "the ingredients from computeCacheKey()", entry.ingredients);
    }
    if (typeof entry.tracker?.kind !== "string" || typeof entry.tracker?.uri !== "string") {
      throw new CacheOptionError("entry.tracker", "{ kind: string; uri: string }", entry.tracker);
    }
    if (!Array.isArray(entry.outputs?.artifacts)) {
      throw new CacheOptionError("entry.outputs", "{ values, artifacts: ArtifactRecord[] }", entry.outputs);
    }
    if (options.ttlMs !== undefined) checkPositiveInteger("ttlMs", options.ttlMs);
    this.checkWritable("write an entry");
    let valuesJson: string | undefined;
    try {
      valuesJson = JSON.stringify(entry.outputs.values);
    } catch (error) {
      throw new CacheValueError("outputs.values", `JSON.stringify failed (${(error as Error).message})`, { cause: error });
    }
    const stored = completeEntry(entry, valuesJson);
    const backend = this.backend;
    await this.call("write an entry", async () => {
      // Indexed first: a marker without its entry is skipped, an entry without one is found by reading it.
      await backend.noteEntry?.(stored);
      return backend.keyv.set(entry.key, stored, options.ttlMs);
    });
    return stored;
  }

  /** Removes the entry of `key`; `false` when there was none. */
  async delete(key: string): Promise<boolean> {
    checkKey(key);
    this.checkWritable("delete an entry");
    return this.call("delete an entry", () => this.backend.keyv.delete(key));
  }

  /**
   * Every live entry, newest first. Reads each entry, so it costs one read per entry; malformed
   * (unless `keep`) and expired entries are evicted. A task's entries read through the index
   * (`taskName` and `indexed`) cost a read of that task's entries alone in the embedded store, and
   * with a `limit`, of about that many.
   */
  async list(options: ListOptions = {}): Promise<CacheEntry[]> {
    return this.listAs(options, (entry) => entry);
  }

  /**
   * {@link list}, keeping of each entry its {@link CacheEntrySummary} alone (for `cairn cache ls`):
   * what it holds in memory grows with the number of entries, not with their outputs' size.
   */
  async listSummaries(options: ListOptions = {}): Promise<CacheEntrySummary[]> {
    return this.listAs(options, summaryOf);
  }

  /** {@link list}, keeping `pick(entry)` of each entry read, as soon as it is read. */
  private async listAs<T extends { createdAt: number }>(options: ListOptions, pick: (entry: CacheEntry) => T): Promise<T[]> {
    if (options.limit !== undefined) checkPositiveInteger("limit", options.limit);
    if (options.before !== undefined && !Number.isFinite(options.before)) throw new CacheOptionError("before", "a time in epoch ms", options.before);
    if (options.keep !== true) this.checkWritable("list entries, evicting the malformed ones (pass `keep: true` to leave them)");
    const { taskName, before } = options;
    const storedOf = this.backend.storedEntriesOf?.bind(this.backend);
    if (options.indexed === true && taskName !== undefined && storedOf) return this.listIndexed(storedOf(taskName, before), taskName, options, pick);
    const entries: T[] = [];
    await this.call("list entries", async () => {
      const bad: string[] = [];
      // Only reading (`keep`): expired entries are skipped, not deleted as keyv's iterator does.
      const stored = options.keep === true ? this.backend.storedEntries?.bind(this.backend) : undefined;
      const now = Date.now();
      const live = stored
        ? (async function* () {
            for await (const [key, s] of stored()) if (s.expires === undefined || s.expires > now) yield [key, s.value] as [string, unknown];
          })()
        : this.backend.entries();
      for await (const [key, value] of live) {
        const entry = parseCacheEntry(value, key);
        if (entry === undefined) {
          bad.push(key);
          options.onUnreadable?.(key);
        } else if ((taskName === undefined || entry.taskName === taskName) && (before === undefined || entry.createdAt < before)) entries.push(pick(entry));
      }
      if (options.keep !== true) for (const key of bad) await this.backend.keyv.delete(key);
    });
    entries.sort((a, b) => b.createdAt - a.createdAt);
    return options.limit === undefined ? entries : entries.slice(0, options.limit);
  }

  /**
   * {@link list} of one task's entries from a store's index by task: newest first as indexed, so
   * that `limit` stops the reads. Expired entries are skipped; malformed ones are told and, unless
   * `keep`, evicted, as the whole listing does.
   */
  private async listIndexed<T extends { createdAt: number }>(
    stored: AsyncIterable<[string, StoredValue]>,
    taskName: string,
    options: ListOptions,
    pick: (entry: CacheEntry) => T,
  ): Promise<T[]> {
    const entries: T[] = [];
    const now = Date.now();
    await this.call("list entries", async () => {
      const bad: string[] = [];
      for await (const [key, s] of stored) {
        if (s.expires !== undefined && s.expires <= now) continue;
        const entry = parseCacheEntry(s.value, key);
        if (entry === undefined) {
          bad.push(key);
          options.onUnreadable?.(key);
          continue;
        }
        if (entry.taskName !== taskName || (options.before !== undefined && entry.createdAt >= options.before)) continue;
        entries.push(pick(entry));
        if (options.limit !== undefined && entries.length >= options.limit) break;
      }
      if (options.keep !== true) for (const key of bad) await this.backend.keyv.delete(key);
    });
    return entries.sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Removes every entry, or only those of `taskName`; returns how many were removed. */
  async clear(options: { taskName?: string } = {}): Promise<number> {
    this.checkWritable("clear");
    const entries = await this.list(options);
    let removed = 0;
    for (const entry of entries) if (await this.delete(entry.key)) removed++;
    // Then all of the namespace: rows the listing skips (postgres's expired entries, which stay
    // in the table until prune) go too. Each backend's clear() stays within its namespace.
    if (options.taskName === undefined) await this.call("clear", () => this.backend.keyv.clear());
    return removed;
  }

  /**
   * Removes entries older than `olderThanMs`, then the oldest ones until the
   * total size is at most `maxSizeBytes`; also sweeps expired leases and
   * leftovers of crashed writers.
   */
  async prune(options: PruneOptions = {}): Promise<PruneResult> {
    if (options.olderThanMs !== undefined) checkNonNegative("olderThanMs", options.olderThanMs);
    if (options.maxSizeBytes !== undefined) checkNonNegative("maxSizeBytes", options.maxSizeBytes);
    this.checkWritable("prune");
    const now = Date.now();
    const oldestFirst = (await this.list()).reverse();
    const result: PruneResult = { removed: 0, removedBytes: 0, removedRecordBytes: 0, removedArtifactBytes: 0, kept: 0, keptBytes: 0 };
    const keep: CacheEntry[] = [];
    const remove = async (entry: CacheEntry) => {
      if (await this.delete(entry.key)) {
        result.removed++;
        result.removedBytes += entry.sizeBytes;
        result.removedRecordBytes += Buffer.byteLength(JSON.stringify(entry));
        for (const artifact of entry.outputs.artifacts) result.removedArtifactBytes += artifact.size;
      }
    };
    for (const entry of oldestFirst) {
      if (options.olderThanMs !== undefined && now - entry.createdAt > options.olderThanMs) await remove(entry);
      else keep.push(entry);
    }
    let total = keep.reduce((sum, entry) => sum + entry.sizeBytes, 0);
    while (options.maxSizeBytes !== undefined && total > options.maxSizeBytes && keep.length > 0) {
      const entry = keep.shift()!;
      total -= entry.sizeBytes;
      await remove(entry);
    }
    result.kept = keep.length;
    result.keptBytes = total;
    if (this.backend.sweep) await this.call("sweep", () => this.backend.sweep!());
    return result;
  }

  /**
   * Tries to become the one process that computes `key`. A refusal names the
   * holder; its lease lapses after its `ttlMs` unless renewed, so a crashed
   * holder is taken over. Renew well within `ttlMs` while computing.
   *
   * @example
   * const lease = await cache.acquireLease(key, { ttlMs: 60_000, owner: `${host}:${pid}` });
   * if (!lease.acquired) return cache.waitFor(key);
   * try { ...compute, cache.set(...) } finally { await lease.release(); }
   */
  async acquireLease(key: string, options: AcquireLeaseOptions): Promise<LeaseResult> {
    checkKey(key);
    checkPositiveInteger("ttlMs", options?.ttlMs);
    if (typeof options.owner !== "string" || options.owner === "") {
      throw new CacheOptionError("owner", "a non-empty string naming the holder", options.owner);
    }
    this.checkWritable("acquire a lease");
    const { ttlMs, owner } = options;
    const leases = this.backend.leases;
    let result = await this.call("acquire a lease", () => leases.tryAcquire(key, owner, ttlMs));
    // A few turns: each ends a lease of a dead holder, and another live acquirer may win the next try.
    for (let turn = 0; !result.ok && turn < 3 && (await this.endLeaseOfGoneHolder(key, result.holder)); turn++) {
      result = await this.call("acquire a lease", () => leases.tryAcquire(key, owner, ttlMs));
    }
    if (!result.ok) return { acquired: false, holder: result.holder, expiresAt: result.expiresAt };
    let released = false;
    const lease: HeldLease = {
      acquired: true,
      key,
      owner,
      expiresAt: result.expiresAt,
      release: async () => {
        if (released) return;
        released = true;
        await this.call("release a lease", () => leases.release(key, result.token));
      },
      renew: async () => {
        if (released) throw new LeaseLostError(key, owner);
        const expiresAt = await this.call("renew a lease", () => leases.renew(key, result.token, ttlMs));
        if (expiresAt === undefined) throw new LeaseLostError(key, owner);
        lease.expiresAt = expiresAt;
      },
    };
    return lease;
  }

  /**
   * Waits while another holder computes `key`. Resolves with its entry once
   * written, or with `undefined` once the lease is released or expired without
   * an entry (the holder failed or crashed): then compute it yourself.
   * It only looks: an entry past its ttl (or malformed) is left for the caller's
   * next {@link lookup} to report and delete, however short its ttl.
   */
  async waitFor(key: string, options: WaitForOptions = {}): Promise<CacheEntry | undefined> {
    checkKey(key);
    const pollMs = options.pollMs ?? 200;
    checkPositiveInteger("pollMs", pollMs);
    const { signal, replacing } = options;
    const fresh = (entry: CacheEntry | undefined) =>
      entry && !(replacing && entry.sourceRunId === replacing.sourceRunId && entry.createdAt === replacing.createdAt) ? entry : undefined;
    for (;;) {
      signal?.throwIfAborted();
      // peek, not get: get deletes an entry it finds past its ttl without a word, so an entry
      // that expired between two polls would be gone, and the miss after the wait a plain one.
      const entry = fresh(await this.peek(key));
      if (entry) return entry;
      const holder = await this.call("read a lease", () => this.backend.leases.peek(key));
      // The holder writes its entry before it releases, so look once more; so does a holder
      // that died (its entry, if any, was written before).
      // Read only, a dead holder's lease is left for a writer to end, and counts as ended (as in leaseHolder).
      if (!holder || (this.readOnly ? this.holderIsGone(holder.holder) : await this.endLeaseOfGoneHolder(key, holder.holder))) return fresh(await this.peek(key));
      try {
        await sleep(pollMs, undefined, { signal });
      } catch (error) {
        signal?.throwIfAborted(); // the signal's own reason, not timers' AbortError
        throw error;
      }
    }
  }

  /**
   * Who holds the lease on `key` now, and when it lapses unrenewed; `undefined` when no one
   * does, or its holder is a process of this machine that no longer exists (the next acquirer
   * takes it over at once). Only reads: for a plan of what a run would do.
   */
  async leaseHolder(key: string): Promise<{ holder: string; expiresAt: number } | undefined> {
    checkKey(key);
    const held = await this.call("read a lease", () => this.backend.leases.peek(key));
    if (!held || this.holderIsGone(held.holder)) return undefined;
    return held;
  }

  /**
   * Ends the lease on `key` when its holder is a process of this machine that no longer exists
   * (killed, crashed; see `ownerIsGone`, which tells a reused pid by its start time): it will
   * never renew nor release it, and waiting out its ttl would only delay whoever computes the
   * key. Only while that same holder still holds it. True when it ended it. The embedded store's
   * leases judge their holder themselves, on every acquire and peek.
   */
  private async endLeaseOfGoneHolder(key: string, holder: string): Promise<boolean> {
    const leases = this.backend.leases;
    if (!leases.endIfHeldBy || !this.holderIsGone(holder)) return false;
    return this.call("end a dead holder's lease", () => leases.endIfHeldBy!(key, holder));
  }

  /** Whether `holder` is a process of this machine that no longer exists, in a store whose leases do not judge that themselves. */
  private holderIsGone(holder: string): boolean {
    return this.backend.leases.endIfHeldBy !== undefined && ownerIsGone(parseOwner(holder.split(" ", 1)[0]));
  }

  /** Throws `CacheReadOnlyError` when the store was opened for reading only: `operation` would change it. */
  private checkWritable(operation: string): void {
    if (this.readOnly) throw new CacheReadOnlyError(operation, this.backend.location);
  }

  /** Closes connections (a no-op for the embedded store). */
  async close(): Promise<void> {
    await this.backend.close();
  }

  /**
   * The one boundary to the backend: every failure becomes a `CacheBackendError` naming the
   * operation. A server store's failures are tried again, with short pauses, for `retryMs`;
   * each try is bounded by the backend's own timeouts, so no operation waits on a dead
   * server for long. (A lease taken whose answer was lost is retried as a new try: at worst
   * the lease is then found held, by us, until it lapses: no hang, and no double holder.)
   * A refusal the server answered with (redis out of memory, a read-only replica) fails at
   * once with the answer in `reply`: the server is up, and asking again gets the same answer.
   * A right the URL's user lacks (postgres's `permission denied`) fails at once too, as the
   * `CacheStoreUrlError` a wrong password is: the fix is a GRANT, not a wait.
   */
  private async call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const deadline = this.backend.kind === "embedded" ? 0 : Date.now() + this.retryMs;
    for (let pause = RETRY_FIRST_PAUSE_MS; ; pause = Math.min(pause * 2, RETRY_MAX_PAUSE_MS)) {
      try {
        return await run();
      } catch (error) {
        if (CacheError.is(error)) throw error;
        const denied = await this.backend.denied?.(error, operation);
        if (denied) throw new CacheStoreUrlError(this.backend.location, { cause: error, ...denied, ...(this.source === undefined ? {} : { source: this.source }) });
        const reply = this.backend.refusal?.(error);
        if (reply !== undefined) throw new CacheBackendError(this.backend.kind, this.backend.location, operation, { cause: error, reply });
        if (Date.now() + pause >= deadline) {
          throw new CacheBackendError(this.backend.kind, this.backend.location, operation, { cause: this.backend.explain?.(error) ?? error });
        }
      }
      await sleep(pause);
    }
  }
}


/** Pauses between tries of a failed server operation (see `call`). */
const RETRY_FIRST_PAUSE_MS = 100;
const RETRY_MAX_PAUSE_MS = 400;

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== "string" || !KEY_PATTERN.test(key)) {
    throw new CacheOptionError("key", "1 to 128 letters, digits, `_`, `.` or `-` (computeCacheKey() makes them)", key);
  }
}

function checkPositiveInteger(option: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new CacheOptionError(option, "an integer >= 1", value);
  }
}

function checkNonNegative(option: string, value: unknown): asserts value is number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new CacheOptionError(option, "a number >= 0", value);
  }
}

/** An entry's {@link CacheEntrySummary}: a new object, so that the rest of the entry read is freed. */
function summaryOf(entry: CacheEntry): CacheEntrySummary {
  return { key: entry.key, taskName: entry.taskName, sourceRunId: entry.sourceRunId, createdAt: entry.createdAt, sizeBytes: entry.sizeBytes };
}

/** `url` parsed as a store's (not the embedded one's), or the error that refuses it. */
function checkedUrl(url: unknown): Extract<ParsedStoreUrl, { problem?: undefined }> {
  if (typeof url !== "string") throw new CacheOptionError("url", "a string such as redis://127.0.0.1:6379", url);
  // The queue reads its redis URL by the same rules (parseStoreUrl), so the two agree on a URL.
  const store = parseStoreUrl(url, "cache URL");
  if (store.problem) throw new CacheStoreUrlError(redactUrl(url), { ...(store.cause === undefined ? {} : { cause: store.cause }), ...store.problem });
  return store;
}
