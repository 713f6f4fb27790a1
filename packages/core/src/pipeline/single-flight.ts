/**
 * The cache lookup stage of a task: a usable entry for its key, or the right to compute it.
 * One computation per key: in this process through the cache's in-flight map, across
 * processes through a lease in the store, renewed while the task computes. A task that finds
 * the key being computed waits for that entry (`waiting`), then looks again.
 */
import { type CacheEntry, LeaseLostError, parseOwner } from "@cairn/cache";
import type { FlowNode } from "../definition/flow-definition.ts";
import type { LeaseHolder } from "../run/events.ts";
import { isUntrackedRecord } from "../tracking/null-tracker.ts";
import { type BadEntry, describeTracker, runAgainst, type TaskCache, type UnusedEntry } from "../caching/task-cache.ts";

/** A computing task's lease on its key lasts this long unless renewed (every third of it); CAIRN_LEASE_TTL_MS sets another. */
const LEASE_TTL_MS = 10_000;

/** What the lookup keeps on the task it looks up for. */
export interface Flight {
  readonly node: FlowNode;
  /** --rerun / --refresh: skip the lookup. */
  forceRun?: boolean;
  /** Settles the in-process single flight of the key with the entry written (or undefined). */
  settleFlight?: (entry: CacheEntry | undefined) => void;
  /** Gives up the cross-process lease on the key. */
  releaseLease?: () => Promise<void>;
  /** The task began to run: its lease is given up by its run, once its processes are gone. */
  started?: boolean;
  /** What its last lookup met that it could not use: why it misses (see miss-reason.ts). */
  unused?: UnusedEntry;
  /**
   * Called as it begins to wait for another computation of its key: its scheduler gives back the
   * slot, or the place in the queue for one, that it keeps during its lookup, since that other
   * computation may need the slot (in this run) or take long (in another process).
   */
  keyWait?: (() => void) | undefined;
}

/** What the lookups of one flow run share. */
export interface FlightScope {
  readonly cache: TaskCache;
  readonly flowRunId: string;
  /** Aborts when the flow stops: a wait on another process ends. */
  readonly flowSignal: AbortSignal;
  /** Cross-process leases held now, with their task. */
  readonly leases: Map<{ release(): Promise<void> }, Flight>;
  /** The task waits for another computation of its key. */
  readonly waiting: (task: string, node?: Flight["node"], heldBy?: LeaseHolder) => void;
  readonly warn: (task: string, message: string) => void;
}

/** A usable entry, waiting for whoever computes the key now; or undefined after claiming it to compute. */
export async function findEntry(scope: FlightScope, state: Flight, key: string): Promise<CacheEntry | undefined> {
  const { cache } = scope;
  const id = state.node.id;
  for (let round = 0; round < 3; round++) {
    if (!state.forceRun) {
      const entry = met(scope, state, key, await cache.lookup(key));
      if (entry) return entry;
    }
    const running = cache.inflight.get(key);
    if (running) {
      state.keyWait?.();
      scope.waiting(id, state.node);
      const entry = await running;
      if (entry) return entry;
      continue; // the other one failed: look again, then compute
    }
    let settle!: (entry: CacheEntry | undefined) => void;
    cache.inflight.set(key, new Promise((r) => (settle = r)));
    state.settleFlight = (entry) => {
      cache.inflight.delete(key);
      settle(entry);
    };
    const ttlMs = cache.leaseTtlMs ?? LEASE_TTL_MS;
    // When the lease was last asked for and granted: the store counts its ttl from about then.
    let renewedAt = performance.now();
    const here = await cache.recordsTo();
    const lease = await cache.acquireLease(key, { ttlMs, owner: `${cache.owner} ${scope.flowRunId} ${recordsToPart(here)} ${id}` });
    if (lease.acquired) {
      // Someone may have written the entry and let go between our lookup and our lease. Leases
      // live in the store, and whoever held this one wrote its entry there first: the store
      // alone is asked (the tracker's index was read a moment ago, and reading it costs a request).
      const late = state.forceRun ? undefined : met(scope, state, key, await cache.lookup(key, { storeOnly: true }));
      if (late) {
        await lease.release().catch(() => {});
        state.settleFlight(late);
        state.settleFlight = undefined;
        return late;
      }
      // A renewal that fails to reach the store is tried again at the next one; a lease found
      // lost (not let go by this run: the flow's stop releases those of tasks never started) is
      // said, once: another process may be computing the key beside this task.
      let letGo = false;
      const renew = setInterval(() => {
        const sent = performance.now();
        void lease.renew().then(
          () => void (renewedAt = Math.max(renewedAt, sent)),
          (error: unknown) => {
            if (letGo || !LeaseLostError.is(error)) return;
            clearInterval(renew);
            scope.warn(id, leaseLostWarning(key, ttlMs, sent - renewedAt));
          },
        );
      }, ttlMs / 3);
      renew.unref();
      const held = {
        release: () => {
          letGo = true;
          clearInterval(renew);
          return lease.release();
        },
      };
      scope.leases.set(held, state);
      state.releaseLease = async () => {
        scope.leases.delete(held);
        await held.release().catch(() => {});
      };
      return undefined;
    }
    // Another process computes it: wait for its entry, then look again. Unless that process
    // records to another tracker: its entry could not be used here, and waiting for it would
    // only put the whole computation before this one. This task computes it now, beside it,
    // keeping the in-process flight (a task of this run with the same key waits for this one).
    const holder = leaseHolder(lease.holder, lease.expiresAt);
    const there = holderRecordsTo(lease.holder);
    if (there && !(await cache.mayUseEntryOf(there))) {
      scope.warn(id, recordsElsewhereWarning(key, holder, there, here));
      return undefined;
    }
    state.keyWait?.();
    scope.waiting(id, state.node, holder);
    state.settleFlight(undefined);
    state.settleFlight = undefined;
    // What it wrote is checked as any entry found in the store is (its source run, its artifacts,
    // its tracker: another machine's embedded store is no hit here), not taken as handed over.
    // A forced task waits for the other's entry, never taking the one it was asked to replace.
    if (await cache.waitFor(key, scope.flowSignal, { replacing: state.forceRun })) {
      const entry = met(scope, state, key, await cache.lookup(key, { storeOnly: true }), { waited: true });
      if (entry) return entry;
    }
  }
  return undefined;
}

/**
 * Who holds a lease, from its owner string: `host:pid:t<start>:s<space> <flow run> records:… <node>`
 * as {@link findEntry} writes it (the process shown as `host:pid`), else the string as it is.
 */
export function leaseHolder(holder: string, expiresAt: number): LeaseHolder {
  const [first = holder, runId] = holder.split(" ");
  const owner = parseOwner(first);
  return { process: owner ? `${owner.host}:${owner.pid}` : holder, ...(owner && runId ? { runId } : {}), expiresAt };
}

/** Where a tracker record's part of a lease owner starts (see {@link recordsToPart}). */
const RECORDS_TO = "records:";

/**
 * Where a lease's holder records, as a part of its owner string without spaces:
 * `records:<kind>:<uri>:<store id>`, each URI-encoded. It comes after the flow run, before the
 * node id, so that a reader that knows only the process and the run still finds them.
 */
function recordsToPart(tracker: { kind: string; uri: string; id?: string }): string {
  return RECORDS_TO + [tracker.kind, tracker.uri, tracker.id ?? ""].map(encodeURIComponent).join(":");
}

/** Where the holder of a lease records (see {@link recordsToPart}); undefined when its owner does not say (an older Cairn's). */
export function holderRecordsTo(owner: string): { kind: string; uri: string; id?: string } | undefined {
  const part = owner.split(" ")[2];
  if (!part?.startsWith(RECORDS_TO)) return undefined;
  const fields = part.slice(RECORDS_TO.length).split(":");
  if (fields.length !== 3) return undefined;
  try {
    const [kind = "", uri = "", id = ""] = fields.map(decodeURIComponent);
    return kind ? { kind, uri, ...(id ? { id } : {}) } : undefined;
  } catch {
    return undefined; // not ours: a malformed escape
  }
}

/** Where a lease's holder records, against where this run does: `which records to …, not to … where this run records`. */
export function recordsElsewhere(there: { kind: string; uri: string; id?: string }, here: { kind: string; uri: string; id?: string }): string {
  const where = isUntrackedRecord(there) ? "which records nothing (tracking off)" : `which records to ${describeTracker(there)}`;
  return `${where}, not to ${describeTracker(here)} where this run records`;
}

/**
 * What a task's log says when it computes its key at once beside another process that holds the
 * key's lease, because that process records elsewhere (see {@link holderRecordsTo}).
 */
function recordsElsewhereWarning(key: string, holder: LeaseHolder, there: { kind: string; uri: string; id?: string }, here: { kind: string; uri: string; id?: string }): string {
  const by = `${holder.process}${holder.runId ? ` (run ${holder.runId})` : ""}`;
  const share = isUntrackedRecord(there)
    ? `To share one computation, run both with tracking on.`
    : there.kind === "local" && here.kind === "local"
      ? `To share one computation between them, point both at one MLflow server (MLFLOW_TRACKING_URI).`
      : `To share one computation, run both ${runAgainst(there)}.`;
  return (
    `cache key ${key.slice(0, 12)} is being computed now by ${by}, ${recordsElsewhere(there, here)}: ` +
    `its entry could not be used here, so the task runs now instead of waiting for it. ${share}`
  );
}

/**
 * What a lookup of `key` found: its entry (and the warning about its artifacts edited here, when any); else what it met and could not use (a bad entry, which
 * the task's log warns of, another tracker's, or one past its ttl) is kept as why the task misses.
 * Kept at every look: a bad or expired entry is evicted by the look that meets it, so the next
 * round finds nothing, and would say a plain miss. `waited`: the entry is the one another process
 * wrote while this task waited on that process's lease (the reason of an unusable one says so);
 * the other looks meet an entry that was there before any wait (a round's first look), or one no
 * wait of this task was for (after taking the lease).
 */
function met(scope: FlightScope, state: Flight, key: string, found: UnusedEntry & { entry?: CacheEntry; edited?: string }, options: { waited?: boolean } = {}): CacheEntry | undefined {
  if (found.bad && !found.bad.said) scope.warn(state.node.id, badEntryWarning(key, found.bad));
  if (found.edited) scope.warn(state.node.id, found.edited);
  if (found.entry) return found.entry;
  if (found.bad || found.foreign || found.expired) state.unused = { ...found, ...(options.waited ? { waited: true as const } : {}) };
  return undefined;
}

/**
 * What a task's log says when its lease was found taken over or gone while it computed. Only
 * that is known; a cause is named by what this process saw: the time since its last renewal
 * when that was longer than the ttl (it lapsed), else the store's side (it lost or evicted the
 * key: a restart without persistence, FLUSHALL, an eviction policy), where a longer ttl is no help.
 */
function leaseLostWarning(key: string, ttlMs: number, unrenewedMs: number): string {
  const why =
    unrenewedMs > ttlMs
      ? `it had gone unrenewed for ${(unrenewedMs / 1000).toFixed(1)} s, longer than its ${ttlMs / 1000} s ttl ` +
        `(synchronous work blocking the event loop, a paused process, a store that did not answer), and lapsed`
      : `it was renewed within its ${ttlMs / 1000} s ttl, so it did not lapse here: the store lost or evicted it ` +
        `(a restart without persistence, FLUSHALL, an eviction policy such as allkeys-lru) or it was released or taken by another process`;
  const fix =
    unrenewedMs > ttlMs
      ? `Move long synchronous work off the main thread (a worker thread, a process task), or raise CAIRN_LEASE_TTL_MS.`
      : `Give the cache a store that keeps its keys (redis with persistence and maxmemory-policy noeviction).`;
  return (
    `its single-flight lease on cache key ${key.slice(0, 12)} was lost while it computed: at renewal the lease was gone or held by another token; ${why}. ` +
    `So another process may have taken it and be computing the same key now; the task goes on, and the last to finish writes the entry. ${fix}`
  );
}

/** What a task's log says of an entry it could not use. */
function badEntryWarning(key: string, bad: BadEntry): string {
  return bad.kept
    ? `cache entry ${key.slice(0, 12)} was not used: ${bad.reason}; the task runs, and its result replaces the entry`
    : `cache entry ${key.slice(0, 12)} was unusable: ${bad.reason}; it was evicted and the task runs`;
}
