/**
 * The event stream of a flow run. `cairn run --json` prints these objects, one
 * per line: the field names and status values are a stable, documented format.
 */

import { types } from "node:util";

/** Status of one task in a flow run. */
export type TaskStatus =
  | "pending"
  | "queued"
  | "waiting"
  | "running"
  | "retrying"
  | "succeeded"
  | "cached"
  | "failed"
  | "skipped"
  | "cancelled";

/** Status of a flow run. */
export type FlowStatus = "running" | "succeeded" | "failed" | "cancelled";

/** Error as carried by events and results: plain data. */
export interface ErrorInfo {
  name: string;
  message: string;
  /**
   * For an error a function task raised: `file:line:column` of the first stack frame in the user's
   * own code. Not enumerable, as an Error's `stack`: the CLI prints it and the task's run records it
   * (tag `cairn.error.source`), while the info's JSON form stays `{ name, message }`.
   */
  readonly at?: string;
}

/** `info` with its place in the user's code set (see ErrorInfo.at); `info` itself when there is none. */
export function withErrorSource<T extends ErrorInfo>(info: T, at: string | undefined): T {
  if (at !== undefined) Object.defineProperty(info, "at", { value: at, enumerable: false, configurable: true });
  return info;
}

/** The holder of a lease another process's task waits on (see single-flight.ts). */
export interface LeaseHolder {
  /** Its process, `host:pid`; or the lease's whole owner string when it names no process. */
  process: string;
  /** Its flow run, when the owner names one. */
  runId?: string;
  /** Milliseconds since the epoch (on the store's clock) when the lease lapses unless renewed. */
  expiresAt: number;
}

/** A task changed status. */
export interface TaskEvent {
  type: "task";
  status: Exclude<TaskStatus, "pending">;
  /** The flow run's id. */
  runId: string;
  /** Node id of the task. */
  task: string;
  /**
   * The task's own run id, once it has one. A cache hit recorded in a server (`Tracker.capabilities.remote`)
   * gets its run in the background, after its `cached` event: the flow's result has the id.
   */
  taskRunId?: string;
  /** 1-based attempt number, for running / retrying / failed. */
  attempt?: number;
  /** For finished tasks. */
  durationMs?: number;
  /** For failed, retrying, skipped and cancelled tasks: why. */
  error?: ErrorInfo;
  /** For cached tasks: the run whose outputs were reused. */
  cachedFrom?: string;
  /** For a succeeded task whose run could not be closed or whose cache entry could not be stored: false (TaskResult.recorded). */
  recorded?: false;
  /** For a task waiting on another process's lease of its key: who holds it, and when it lapses unrenewed. */
  heldBy?: LeaseHolder;
  /** For an item of a map or sweep (`task` is then `train[3]`): the map's node id. */
  parent?: string;
  /** For an item: its 0-based position in the map's list. */
  item?: number;
  /** For a sweep's trial: its point, as `lr=0.1,depth=3`. */
  itemKey?: string;
  /**
   * On a map's or sweep's `running` event (its list is known then): how many items it has, each
   * then a task of its own (`name[k]`), so that a progress view can count them in its total.
   */
  items?: number;
  /** Milliseconds since the epoch. */
  time: number;
}

/** The flow started or finished. */
export interface FlowEvent {
  type: "flow";
  status: FlowStatus;
  runId: string;
  flow: string;
  /** For finished flows: from the flow run's start to the end time it is recorded with (FlowResult.durationMs). */
  durationMs?: number;
  /**
   * For a succeeded flow: its outputs, as `run.outputs()` gives them (every artifact a local
   * file, downloaded when it was recorded on another machine).
   */
  outputs?: unknown;
  /** With `outputs`: those whose artifacts could not be made local files here, by output name: why (FlowResult.notDownloaded). */
  notDownloaded?: Record<string, string>;
  error?: ErrorInfo;
  /** Where the flow run is seen in the tracker's UI (an MLflow server's run page); absent for the embedded store. */
  url?: string;
  time: number;
}

/** A line a task logged with ctx.logger. */
export interface LogEvent {
  type: "log";
  level: "debug" | "info" | "warn" | "error";
  runId: string;
  task?: string;
  message: string;
  /** The line is also in a log file of the task run (a process task's stdout or stderr line): see LogLineOptions. */
  inLogFile?: true;
  /**
   * After the tasks, while the runs of cache hits are still being recorded in a server (the flow
   * waits for them at its end): how many hits the flow recorded, and how many are left. Said when
   * the wait starts and every 5 s, with the message `recording 600 cached tasks' runs in MLflow (412 left)`.
   */
  recording?: { runs: number; left: number };
  time: number;
}

/** Anything a flow run emits. */
export type RunEvent = TaskEvent | FlowEvent | LogEvent;

/** `event` with an item node's place (parent, item, itemKey); as it is for other nodes. */
export function placeNode(event: TaskEvent, node: { readonly item?: { readonly parent: string; readonly index: number; readonly key?: string } }): TaskEvent {
  const item = node.item;
  if (item === undefined) return event;
  event.parent = item.parent;
  event.item = item.index;
  if (item.key !== undefined) event.itemKey = item.key;
  return event;
}

/**
 * Whether `value` is an Error: made by this realm's `Error` or by another's (a `vm` context, a
 * worker's structured clone), where `instanceof Error` says no though it has its name, message
 * and stack. Never throws: a task may throw a Proxy whose `getPrototypeOf` trap throws, which
 * `instanceof` runs; such a value is no Error.
 */
export function isError(value: unknown): value is Error {
  try {
    return value instanceof Error || types.isNativeError(value);
  } catch {
    return false;
  }
}

/**
 * Turns anything thrown into ErrorInfo; never throws itself, as it runs where a failure is being
 * reported and a throw there would leave the task, and the run, without an end: an Error whose
 * `name` or `message` getter throws, or a value `String()` cannot convert (`Object.create(null)`),
 * is described instead.
 */
export function toErrorInfo(error: unknown): ErrorInfo {
  try {
    if (isError(error)) {
      const { name, message } = error;
      return withErrorSource(
        { name: typeof name === "string" ? name : String(name), message: typeof message === "string" ? message : String(message) },
        (error as { [ERROR_SOURCE]?: string })[ERROR_SOURCE],
      );
    }
    return { name: "Error", message: String(error) };
  } catch (thrown) {
    return { name: "Error", message: `${describeUnreadable(error)} that could not be read (reading it threw ${describeThrown(thrown)})` };
  }
}

/** What `value` is, from what can be read without running its code (no getter, no `toString`). */
function describeUnreadable(value: unknown): string {
  if (typeof value !== "object" || value === null) return `a ${typeof value}`;
  try {
    return isError(value) ? "an Error" : "an object";
  } catch {
    return "an object"; // a revoked Proxy
  }
}

/** `thrown` in a few words for {@link toErrorInfo}'s fallback; itself guarded, as it may be as broken as the error it explains. */
function describeThrown(thrown: unknown): string {
  try {
    if (isError(thrown) && typeof thrown.message === "string") return `${String(thrown.name)}: ${thrown.message}`;
    return typeof thrown === "string" ? thrown : `a ${typeof thrown}`;
  } catch {
    return "an error that could not be read either";
  }
}

/** Where the engine notes an error's place in the user's code (TaskDefinition.errorSource), for toErrorInfo. */
const ERROR_SOURCE: unique symbol = Symbol.for("cairn.errorSource") as never;

/**
 * Notes `at` (`file:line:column`) on `error` for {@link toErrorInfo}, unless one is noted already (the
 * innermost task that saw it knows best); a property no enumeration or serialisation shows.
 */
export function noteErrorSource(error: Error, at: string | undefined): void {
  if (at === undefined || Object.prototype.hasOwnProperty.call(error, ERROR_SOURCE)) return;
  try {
    Object.defineProperty(error, ERROR_SOURCE, { value: at, enumerable: false, configurable: true });
  } catch {
    // A frozen error keeps no note; it is reported without its place.
  }
}
