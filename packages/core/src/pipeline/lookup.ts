/**
 * The cache stage of a task, run before it takes a slot (a hit never waits for one): its key
 * from its inputs, then a usable entry or the right to compute it (single-flight.ts). A hit is
 * recorded as a FINISHED run tagged with its source (task-run.ts) and ends the task `cached`;
 * cache trouble is a warning and a miss, except a dead store when the cache is strict.
 */
import type { CacheEntry } from "@cairn/cache";
import { isStoreDown, type TaskKey } from "../caching/task-cache.ts";
import { isRetryableError } from "./retryable.ts";
import { toErrorInfo } from "../run/events.ts";
import { type Flight, type FlightScope, findEntry } from "./single-flight.ts";
import { type HitRecords, type RecordScope, recordHit } from "./task-run.ts";

/** What the lookups of one flow run share. */
export interface LookupScope extends FlightScope {
  readonly record: RecordScope;
  /** Runs of hits being recorded (the flow waits for them at its end) and recorded (see recordHit). */
  readonly hits: HitRecords;
}

/** One task as its lookup sees it. */
export interface LookupTask extends Flight {
  readonly result: { runId?: string };
  key?: TaskKey;
  /** A miss: why, as its run records it (the value of `MISS_REASON_TAG`), made while the task waits and runs. */
  missReason?: Promise<string>;
  /** When the task was queued (ms since the epoch), which its lookup starts at: a hit's run starts then. */
  readonly queuedAt?: number | undefined;
}

/**
 * `hit`: the task is done, from `entry`. `miss`: it must run (it holds the key's flight and
 * lease when it got them). `failed`: bad inputs, or a strict cache whose store is down.
 * `stopped`: the flow stopped meanwhile, which settled the task.
 */
export type Lookup =
  | { readonly kind: "hit"; readonly entry: CacheEntry }
  | { readonly kind: "miss" }
  | { readonly kind: "failed"; readonly error: unknown }
  | { readonly kind: "stopped" };

const MISS: Lookup = { kind: "miss" };
const STOPPED: Lookup = { kind: "stopped" };

/** Looks `task` up with its `inputs` (resolved, validated); never rejects. */
export async function lookupTask(scope: LookupScope, task: LookupTask, inputs: Record<string, unknown> | Promise<Record<string, unknown>>): Promise<Lookup> {
  const { cache, flowSignal } = scope;
  const id = task.node.id;
  let key: TaskKey;
  try {
    key = task.key = await cache.keyFor(task.node, await inputs, { flowRunId: scope.flowRunId, signal: flowSignal });
  } catch (error) {
    if (flowSignal.aborted) return STOPPED;
    // Bad inputs fail the task as they would when it runs.
    if (!isRetryableError(error)) return { kind: "failed", error };
    scope.warn(id, `cache key not computed (${toErrorInfo(error).message}); running it`);
    return MISS;
  }
  try {
    const entry = await findEntry(scope, task, key.key);
    if (flowSignal.aborted) return stopped(task, entry);
    if (entry) {
      // A script's file read when the flow was loaded, edited since (an app that runs the flow
      // again): the entry is the old code's, which the key describes; the file now holds other code.
      const stale = await cache.codeEdited(task.node, key).catch(() => []);
      if (stale.length) {
        scope.warn(
          id,
          `${stale.map((name) => `\`${name}\``).join(", ")} changed since the flow was loaded (after its cache key read ${stale.length === 1 ? "it" : "them"}); its cache key still uses the old content, so the cached result taken is the old code's. Reload the flow to pick up the change.`,
        );
      }
      await recordHit(scope.record, task.node, entry, task.result, scope.hits, scope.warn, cache.sourceRunName(entry.sourceRunId), task.queuedAt);
      task.settleFlight?.(entry);
      await task.releaseLease?.();
      return { kind: "hit", entry };
    }
  } catch (error) {
    if (flowSignal.aborted) return stopped(task, undefined);
    if (cache.strict && isStoreDown(error)) {
      task.settleFlight?.(undefined);
      return { kind: "failed", error };
    }
    // The lookup, or the lease that claims the key (a full redis refuses it): either way the task runs.
    scope.warn(id, `could not look up or claim its cache entry (${toErrorInfo(error).message}); running it`);
  }
  if (flowSignal.aborted) return stopped(task, undefined);
  // Recorded now, from what this lookup met: the report, written later, finds the store changed
  // (the entry it could not use evicted, then replaced by this run's own).
  if (!task.forceRun && scope.record.tracker.capabilities.records) task.missReason = cache.missReason(key, task.node.task, task.unused);
  return MISS;
}

/**
 * The flow stopped while the task looked up its entry, after it may have claimed the key: the
 * flow's stop gave up only the leases claimed before it, so this one is let go here (kept, it
 * would be renewed for ever, and every later run of the key, here or elsewhere, would wait).
 */
async function stopped(task: LookupTask, entry: CacheEntry | undefined): Promise<Lookup> {
  task.settleFlight?.(entry);
  task.settleFlight = undefined;
  await task.releaseLease?.();
  task.releaseLease = undefined;
  return STOPPED;
}
