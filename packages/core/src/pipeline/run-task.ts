/**
 * One task through the pipeline, from its inputs to its recorded outcome, with no scheduler:
 * its cache artifacts fetched → its run created (RUNNING, inputs as params) → its attempts
 * (timeout, retries) → its outputs manifest and artifacts → its run ended → its cache entry
 * stored and the single flight settled. A failure ends the run FAILED with its error's tags and
 * file (or KILLED when the flow was stopped) and settles the flight empty; a task that ends
 * before its run exists (bad inputs) has none here: the flow's pipeline records one for it
 * (TaskPipeline.unstarted). The caller (the scheduler;
 * a worker process) decides what the outcome means for the flow, then calls releaseTask.
 */
import { MISS_REASON_TAG } from "../caching/miss-reason.ts";
import { CACHE_KEY_TAG, FAILED_KEY_TAG, isStoreDown, type StoredManifest, type TaskCache, type TaskKey } from "../caching/task-cache.ts";
import type { CacheEntry } from "@cairn/cache";
import { CancelledError, TaskTimeoutError } from "../errors.ts";
import { elapsedMs } from "../run/task-result.ts";
import { RunRecorder } from "../tracking/run-recorder.ts";
import type { Tracker } from "../tracking/tracker.ts";
import { writeRunFiles } from "../tracking/run-files.ts";
import { type AttemptScope, runAttempts, type TaskAttempts, type TaskSlots } from "./attempts.ts";
import type { WorkHolder } from "./running-task-context.ts";
import { type LargeOutputs, largeOutputWarning } from "./large-output.ts";
import { isStopReason, stopInfo } from "./stop.ts";
import { CODE_EDITED_TAG, createTaskRun, DURATION_TAG, finishTaskRun, logInputs, type RecordScope, type RunFacts, SWEEP_VALUE_TAG } from "./task-run.ts";

/** A succeeded task's run that could not be closed beside the flow: why, and whether it was left RUNNING (not even marked FAILED). */
export class RunNotClosed {
  constructor(
    readonly cause: unknown,
    readonly leftRunning: boolean,
  ) {}
}

/** What every task of one flow run shares on its way through the pipeline. */
export interface PipelineScope extends AttemptScope {
  readonly record: RecordScope;
  /** The run's cache, when on. */
  readonly cache?: TaskCache;
  readonly warn: (task: string, message: string) => void;
  /** The limit a task's output is warned of past (`CAIRN_LARGE_OUTPUT_MB`); absent: none. */
  readonly largeOutputs?: LargeOutputs;
  /**
   * Takes a succeeded task's closing (its run's end, its cache entry) to do beside what follows
   * it (its dependants start, its slot is free), or refuses (undefined) when enough closings are
   * under way; refused or absent, the task closes before it hands on its outputs. With a server.
   * Taken, it returns the closing: whether the run was closed and the result stored (see
   * TaskOutcome.recorded).
   */
  readonly closeBeside?: (task: PipelineTask, close: () => Promise<boolean>) => Promise<boolean> | undefined;
}

/** One task as the pipeline keeps it. */
export interface PipelineTask extends WorkHolder {
  readonly node: TaskAttempts["node"];
  /** `durationMs`: its attempts' wall time, set once they are over (TaskResult.durationMs). */
  readonly result: TaskAttempts["result"] & { runId?: string; durationMs?: number };
  /** Its cache key, when the cache is on for it. */
  key?: TaskKey;
  /** When (epoch ms) it was queued, recorded on its run. */
  queuedAt?: number;
  /** --rerun / --refresh: it skipped the lookup. */
  forceRun?: boolean;
  /** Why it missed the cache (see miss-reason.ts): recorded on its run in the log-batch that closes it. */
  missReason?: Promise<string> | string;
  /** Settles the in-process single flight of `key` (see single-flight.ts). */
  settleFlight?: (entry: CacheEntry | undefined) => void;
  /** Gives up the cross-process lease on `key`. */
  releaseLease?: () => Promise<void>;
  /** The slots it runs in, when a scheduler gave it some (TaskAttempts.slots). */
  slots?: TaskSlots | undefined;
}

export type TaskOutcome =
  /** `cachedFrom`: the task did not run; another process computed its key meanwhile, and this is that run's entry (a dispatched task). */
  | {
      readonly ok: true;
      readonly outputs: unknown;
      readonly cachedFrom?: string;
      /**
       * Whether its run was closed and its result stored, so that the next run finds it: false
       * when not (a warning says why; it runs again next time), a promise while its closing goes
       * on beside the flow (closeBeside), absent when it was. Its `succeeded` waits for it.
       */
      readonly recorded?: false | Promise<boolean>;
    }
  /** `stop`: the flow's stop reason when the task ended because the flow stopped (it is then cancelled). */
  | { readonly ok: false; readonly error: unknown; readonly cancelled: boolean; readonly stop?: unknown };

/**
 * The step to log a trial's selected output `key` at: one past the highest the trial logged
 * under that key, 0 when it logged none. A function task logs through its recorder only; a
 * task of another kind runs code (a script's `mlflow.log_metric`) that may log to its run
 * directly, so the run's history of that key is asked for too (one request; unread, the
 * recorder's steps stand). At the highest step itself when the next is past 2^53 - 1, which
 * no tracker takes; undefined (not logged, the tag still says it) when that one is too.
 */
async function outputStep(tracker: Tracker, recorder: RunRecorder, kind: string, key: string): Promise<number | undefined> {
  let highest = recorder.highestStep(key);
  if (kind !== "function") {
    const points = await tracker.getMetricHistory(recorder.runId, key).catch(() => []);
    for (const p of points) if (highest === undefined || p.step > highest) highest = p.step;
  }
  if (highest === undefined) return 0;
  // A step after 2^53 - 1 is refused (MetricError) after the task succeeded: log at the highest one then, or not at all.
  return Number.isSafeInteger(highest + 1) ? highest + 1 : Number.isSafeInteger(highest) ? highest : undefined;
}

/** File names as a warning lists them: `a`, `b`. */
function quoted(names: readonly string[]): string {
  return names.map((name) => `\`${name}\``).join(", ");
}

/** Runs `task` with `inputs` (resolved refs, validated); never rejects. */
export async function runTask(scope: PipelineScope, task: PipelineTask, inputs: Record<string, unknown> | Promise<Record<string, unknown>>): Promise<TaskOutcome> {
  const { node, result } = task;
  const id = node.id;
  const { tracker, secrets } = scope.record;
  const tracking = tracker.capabilities.records;
  let recorder: RunRecorder | undefined;
  let attempts: TaskAttempts | undefined;
  try {
    if (inputs instanceof Promise) inputs = await inputs;
    if (scope.cache) inputs = await scope.cache.materialize(inputs, id);
    const ranBecause = !scope.cache ? "no-cache" : node.task.cache === false ? "cache-off" : task.forceRun ? "forced" : "miss";
    const facts: RunFacts = { ranBecause, ...(task.queuedAt !== undefined ? { queuedAt: task.queuedAt } : {}), ...(task.key ? { key: task.key.key } : {}) };
    let runId = createTaskRun(scope.record, node, facts);
    if (typeof runId !== "string") runId = await runId;
    result.runId = runId;
    // Every param and tag of the task's run (its inputs, its error, what it logs) leaves masked.
    recorder = new RunRecorder(tracker, runId, secrets);
    if (tracking) {
      // Without a tracker the params would be dropped: do not make them.
      const inputsFile = logInputs(recorder, inputs, secrets, runId, scope.record.longInputs);
      if (inputsFile) await writeRunFiles(tracker, runId, "cairn", { "inputs.json": inputsFile });
    }
    attempts = { node, inputs, runId, recorder, result, holder: task, keepsResult: tracking || Boolean(scope.cache && task.key), slots: task.slots };
    // Timed: its duration is its own work, not its record's creation before the attempts or its
    // closing after (outputs uploaded, cache entry stored), which with a server can take many
    // times a short task's work. Its run carries the same figure (DURATION_TAG), for `cairn
    // show` and the report, in the log-batch that closes it.
    // Its code files changed before it started, since its key read them (a script's or notebook's
    // file when the flow was loaded: an app that calls run() again after an edit, a worker): the key
    // describes the old code, the task runs the new, so its result is not stored under that key.
    // Said apart from an edit made while it runs (below), whose cause and cure differ. One stat a file.
    const stale = scope.cache && task.key ? await scope.cache.codeEdited(node, task.key).catch(() => []) : [];
    if (stale.length) {
      scope.warn(
        id,
        `${quoted(stale)} changed since the flow was loaded (after its cache key read ${stale.length === 1 ? "it" : "them"}); its cache key still uses the old content, so its result is not cached. Reload the flow to pick up the change.`,
      );
    }
    const started = performance.now();
    let outputs: unknown;
    try {
      outputs = await runAttempts(scope, attempts);
    } finally {
      const durationMs = (result.durationMs = elapsedMs(started));
      if (tracking) recorder.tag(DURATION_TAG, String(durationMs));
    }
    // Said before the output is stored: storing one of hundreds of megabytes is where the flow stalls.
    const large = scope.largeOutputs && largeOutputWarning(scope.largeOutputs, id, node.task.name, outputs);
    if (large) scope.warn(id, large);
    let manifest: StoredManifest | undefined;
    const cache = scope.cache;
    // Its code files edited after its key read them (while it ran, or before it started): the
    // result is another code's, so it is not stored under this key, where the next run of the old
    // code would take it; it still flows on in this run. Its run says so, and carries no key a lookup finds.
    const ended = cache && task.key ? await cache.codeEdited(node, task.key).catch(() => []) : [];
    const whileRan = ended.filter((name) => !stale.includes(name));
    const edited = [...new Set([...stale, ...ended])];
    if (edited.length && tracking) recorder.tag(CODE_EDITED_TAG, edited.join(", ").slice(0, 4000));
    if (whileRan.length) {
      scope.warn(id, `${quoted(whileRan)} ${whileRan.length === 1 ? "was" : "were"} edited while the task ran (after its cache key was made): its result is not cached; the next run runs it again.`);
    }
    if (cache && task.key) {
      const ttlMs = node.task.cache !== false ? node.task.cache.ttlMs : undefined;
      manifest = {
        ...(await cache.manifest(outputs, attempts.folderListings)),
        ...(edited.length
          ? {}
          : {
              cacheKey: task.key.key,
              taskName: node.task.name,
              ingredients: cache.storedIngredients(task.key, secrets),
              ...(ttlMs !== undefined ? { expiresAt: Date.now() + ttlMs } : {}),
            }),
      };
      outputs = manifest.values;
      if (!edited.length) recorder.tag(CACHE_KEY_TAG, task.key.key);
    }
    // A sweep trial's selected output, as MLflow's users sort and compare a sweep's child runs
    // (Optuna's and Ray Tune's callbacks log it so): in the log-batch its run's closing sends anyway.
    // At a step after every point the trial logged under that name (a per-epoch `val_loss` beside
    // the output `val_loss`), so that it is the metric's latest value, the one MLflow's sort, `cairn
    // show` and the report read; the tag says the same to a reader that cannot tell an older run's
    // metric (logged at step 0, under the epochs' points) from the output.
    const selected = node.item?.metric;
    if (tracking && selected !== undefined) {
      const value = (outputs as Record<string, unknown> | null)?.[selected];
      if (typeof value === "number" && Number.isFinite(value)) {
        const step = await outputStep(tracker, recorder, node.task.kind, selected);
        if (step !== undefined) recorder.metric(selected, value, step);
        recorder.tag(SWEEP_VALUE_TAG, String(value));
      }
    }
    // Consts for the closure below, which may run after this function has returned.
    const ranId = runId;
    const rec = recorder;
    const retried = attempts.retriedErrors;
    const tried = attempts;
    const missReason = task.missReason;
    // The entry stores the ingredients as the manifest does (scrubbed of secrets).
    const key = edited.length ? undefined : task.key && manifest?.ingredients ? { key: task.key.key, ingredients: manifest.ingredients } : task.key;
    /** Ends the run FINISHED and stores the entry; true once both are done (see TaskOutcome.recorded). */
    const close = async (): Promise<boolean> => {
      // A process attempt sends its logs once it has settled, outside its timeout and duration
      // (spawn.ts): the run is closed with them, as with its outputs.
      if (task.held) await Promise.allSettled(task.held);
      // In the closing, beside the dependants (the store's listing it may wait for is no input of theirs).
      if (missReason !== undefined) rec.tag(MISS_REASON_TAG, await missReason);
      if (tracking) await finishTaskRun(scope.record, ranId, rec, result.attempts, "FINISHED", manifest ?? { values: outputs, artifacts: [] });
      if (!cache || !key) {
        if (!edited.length) return true;
        task.settleFlight?.(undefined); // a waiter for the key computes it itself
        return false;
      }
      // Its code left a rejection unhandled under a warn mode of --unhandled-rejections (crash-guard.ts):
      // the result was made beside work that failed, so the next run computes it again.
      if (tried.rejectionsLeft?.has(result.attempts)) {
        task.settleFlight?.(undefined);
        return false;
      }
      const { entry, indexError } = await cache.record(key, node, ranId, manifest!).catch((e: unknown) => {
        if (cache.strict && isStoreDown(e)) throw e;
        scope.warn(id, `could not store the cache entry: ${(e as Error).message}`);
        return { entry: undefined, indexError: undefined };
      });
      // The entry is stored; only other machines, which look in the index, will not find it.
      // With the store down, the index was all there was to record it in.
      if (indexError && cache.down) scope.warn(id, `could not record the cache entry in the experiment's index, the one place it goes while the cache store is down (the next run computes this task again): ${indexError.message}`);
      else if (indexError) scope.warn(id, `stored the cache entry, but not its index entry in the experiment (other machines will run this task again): ${indexError.message}`);
      task.settleFlight?.(entry);
      return entry !== undefined && !(indexError && cache.down);
    };
    // An attempt given up on may still be ending its process tree: that task keeps its slot (releaseTask).
    const beside =
      tracking &&
      !task.held &&
      scope.closeBeside?.(task, () =>
        close().catch(async (error: unknown) => {
          // Marked FAILED when the server takes that; else it stays RUNNING (the next command's closer ends it).
          // A FAILED close whose file writes failed may still have ended the run: the tracker says which.
          const marked = await finishTaskRun(scope.record, ranId, rec, result.attempts, "FAILED", undefined, error, retried).then(
            () => true,
            () =>
              scope.record.tracker.getRun(ranId).then(
                (run) => run !== undefined && run.status !== "RUNNING",
                () => false,
              ),
          );
          task.settleFlight?.(undefined);
          throw new RunNotClosed(error, !marked);
        }),
      );
    if (beside) return { ok: true, outputs, recorded: beside };
    return (await close()) ? { ok: true, outputs } : { ok: true, outputs, recorded: false };
  } catch (error) {
    // A task running when the flow was stopped ends cancelled, whatever it threw on its way out;
    // but not the one whose own error stopped it (a crash in its code: crash-guard.ts), which failed.
    const stop = scope.flowSignal.aborted ? scope.flowSignal.reason : undefined;
    const stoppedByIt = isStopReason(stop) && stop.kind === "flow-failed" && stop.detail === error;
    const cancelled = (isStopReason(stop) && !stoppedByIt) || CancelledError.is(error);
    // Stopped while its process group is being ended (SIGTERM, then SIGKILL after killGraceMs):
    // the flow waits for the group, and for its logs to be sent, so that the run is closed with
    // its whole record, and `cairn` does not exit over a cleanup that is under way.
    // A failed attempt's logs are sent once it has settled (spawn.ts): its run is closed after them too.
    if (task.held && (cancelled || !TaskTimeoutError.is(error))) await Promise.allSettled(task.held);
    const runId = result.runId;
    const rec = recorder;
    const retried = attempts?.retriedErrors;
    const close = async (): Promise<void> => {
      if (!runId || !rec) return;
      // A cancelled run closes at once: its reason only if the store's listing has already answered.
      const reason = task.missReason === undefined ? undefined : await (cancelled ? Promise.race([task.missReason, Promise.resolve(undefined)]) : task.missReason);
      if (reason !== undefined) rec.tag(MISS_REASON_TAG, reason);
      // No entry is stored for it: the key on its run lets a later plan say it failed or was
      // cancelled (the run's status tells which), not that it never ran.
      if (task.key) rec.tag(FAILED_KEY_TAG, task.key.key);
      // A cancelled run records what stopped it (as its result carries it), not what it threw on its way out.
      const ended = cancelled ? Object.assign(new Error(), stopInfo(stop ?? error)) : error;
      await finishTaskRun(scope.record, runId, rec, result.attempts, cancelled ? "KILLED" : "FAILED", undefined, ended, retried).catch(() => {});
    };
    // Timed out while its process group is being ended (SIGTERM, then SIGKILL after killGraceMs):
    // its run is closed once the group is gone and its logs (a notebook's executed notebook) are
    // sent, as a cancelled one is, but beside the flow: the failure is told now, so that fail-fast
    // stops the other tasks at once, not a grace later. The closing is held work of its own, so
    // the task's slot and lease wait for it (releaseTask), and so does the flow's end (drain).
    if (!cancelled && task.held && TaskTimeoutError.is(error)) {
      const held = task.held;
      held.push(Promise.allSettled([...held]).then(close));
    } else await close();
    task.settleFlight?.(undefined); // failures are never cached; a waiter computes it itself
    return { ok: false, error, cancelled, stop };
  }
}

/**
 * After the outcome is dealt with: an attempt given up on (cancel, timeout) may still be ending
 * its process tree, so the task's slot and lease stay taken until the tree is gone, and no other
 * run computes the same key beside it.
 */
export async function releaseTask(task: PipelineTask): Promise<void> {
  if (task.held) await Promise.allSettled(task.held);
  task.held = undefined;
  if (task.releaseLease) await task.releaseLease();
}
