/**
 * What a flow run keeps of each task (its TaskResult, as `wait()` and `run.tasks()` give it),
 * and the event that says a task ended. The scheduler decides when a task ends and how; this
 * module writes it down the one way, for results, events and the CLI alike.
 */
import type { ErrorInfo, TaskEvent, TaskStatus } from "./events.ts";
import type { SecretRegistry } from "./secrets.ts";

/** Final state of one task. */
export interface TaskResult {
  /** Node id. */
  task: string;
  status: TaskStatus;
  /** The task's run id, when it got one. */
  runId?: string;
  /** Attempts made (0 when it never ran). */
  attempts: number;
  /**
   * The task's own work, in ms: wall time from its first attempt's start to its last attempt's
   * end (retries and their waits included), not its record's creation or closing; none when no
   * attempt started. A cache hit's: its lookup; a map's or sweep's: from its list to its last item.
   */
  durationMs?: number;
  /** Outputs, for succeeded and cached tasks. */
  outputs?: unknown;
  error?: ErrorInfo;
  /** For cached tasks: the run whose outputs were reused. */
  cachedFrom?: string;
  /**
   * For a succeeded task whose run could not be closed or whose cache entry could not be stored
   * (a warning says why): false. It has no cache entry, so the next run computes it again.
   */
  recorded?: false;
  /** For an item of a map or sweep: the map's node id. */
  parent?: string;
  /** For an item: its 0-based position in the map's list. */
  item?: number;
  /** For a sweep's trial: its point, as `lr=0.1,depth=3`. */
  itemKey?: string;
  /** For a map or sweep node: which, so readers (the CLI's leaderboard) know its outputs' shape. */
  expands?: "map" | "sweep";
  /**
   * For a map or sweep node that stopped before starting all its items (the flow failed or was
   * cancelled, too many items failed, a sweep's stopWhen held): how many never started. They
   * have no result, event or run of their own; the map's run counts them (`cairn.not_started`).
   */
  notStarted?: number;
  /** For a sweep node: its selector, so readers rank its trials as it did (best first). */
  select?: { readonly metric: string; readonly order: "max" | "min" };
}

/** The fields that place an item's event (parent, item, itemKey) on `event`; nothing for other tasks. */
export function placeItem(event: TaskEvent, result: TaskResult): TaskEvent {
  if (result.parent === undefined) return event;
  event.parent = result.parent;
  event.item = result.item!;
  if (result.itemKey !== undefined) event.itemKey = result.itemKey;
  return event;
}

/** Milliseconds since `started` (a `performance.now()`), to the microsecond. */
export function elapsedMs(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

/**
 * Ends `result` with `status` (its duration since `started`, when given: a task that ran has its
 * own already, its attempts' (run-task.ts); its error with
 * known secrets masked, as its run's tag is) and returns the task's event.
 */
export function endTask(
  result: TaskResult,
  status: Exclude<TaskStatus, "pending">,
  started: number | undefined,
  error: ErrorInfo | undefined,
  secrets: SecretRegistry,
  flowRunId: string,
): TaskEvent {
  result.status = status;
  if (started !== undefined) result.durationMs = elapsedMs(started);
  if (error) result.error = error = secrets.maskError(error);
  const time = Date.now();
  const task = result.task;
  if (result.runId && result.durationMs !== undefined && !error && !result.cachedFrom && result.recorded === undefined) {
    // The common case (a task that ran and succeeded) as one literal: same fields, same order,
    // without the extra backing store that adding fields one by one gives each event.
    const event: TaskEvent = { type: "task", status, runId: flowRunId, task, time, taskRunId: result.runId, durationMs: result.durationMs };
    return result.parent === undefined ? event : placeItem(event, result);
  }
  const event: TaskEvent = { type: "task", status, runId: flowRunId, task, time };
  if (result.runId) event.taskRunId = result.runId;
  if (result.durationMs !== undefined) event.durationMs = result.durationMs;
  if (error) event.error = error;
  if (result.cachedFrom) event.cachedFrom = result.cachedFrom;
  if (result.recorded === false) event.recorded = false;
  return placeItem(event, result);
}
