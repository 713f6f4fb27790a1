/**
 * The record stage of a task: its run in the tracker (a child run of the flow run), its
 * inputs as params, its outputs manifest and artifacts, its error, its end; the run of a
 * cache hit, recorded FINISHED and tagged with the run it came from; and the run of a task
 * that never started (failed before its run existed, skipped, cancelled), recorded already
 * over, so that every node of the flow has a run whatever happened to it.
 */
import { createHash } from "node:crypto";
import { basename, dirname, resolve as resolvePath } from "node:path";
import { inspect } from "node:util";
import { CairnError, type CacheEntry } from "@cairn/cache";
import { CACHED_FROM_NAME_TAG, CACHED_FROM_TAG, FAILED_KEY_TAG, KEY_TAG, MANIFEST_PATH, type StoredManifest } from "../caching/task-cache.ts";
import { isArtifact } from "../definition/artifact.ts";
import type { FlowNode } from "../definition/flow-definition.ts";
import { type ErrorInfo, isError, toErrorInfo } from "../run/events.ts";
import { errorFields, redactCredentials } from "../run/redact.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import { keepStart } from "../run/clip-message.ts";
import { RunRecorder } from "../tracking/run-recorder.ts";
import { hasLocalArtifacts, writeRunFiles } from "../tracking/run-files.ts";
import type { RunRecord, Tracker } from "../tracking/tracker.ts";
import type { HitQueue } from "./hit-queue.ts";

/** Where the task runs of one flow run are recorded. */
export interface RecordScope {
  readonly tracker: Tracker;
  readonly experimentId: string;
  readonly flowRunId: string;
  readonly flowName: string;
  /** Folder for task artifacts when the tracker keeps none locally. */
  readonly workDir: string;
  readonly secrets: SecretRegistry;
  /** Tags every task run carries, in its create request: MLflow's source tags (`mlflow.source.name`, `mlflow.user`, ...). */
  readonly runTags?: Readonly<Record<string, string>>;
  /** The long input values already written whole by a task run of this flow run (see logInputs). */
  readonly longInputs?: LongInputs;
}

/**
 * Where each long input value (too long for a param) of a flow run was first written whole: the
 * task run and input name whose `cairn/inputs.json` holds it. The same value handed to many tasks
 * (an upstream output wired into a thousand map items, a map's `with:` value) is the same object,
 * or the same string: written once, its other params point there.
 */
export interface LongInputs {
  readonly objects: WeakMap<object, { runId: string; input: string }>;
  /** By the string's SHA-256: a map over many long strings does not hold them all until the flow ends. */
  readonly strings: Map<string, { runId: string; input: string }>;
}

/** An empty {@link LongInputs}, for one flow run. */
export function longInputs(): LongInputs {
  return { objects: new WeakMap(), strings: new Map() };
}

/** createRun options for the null tracker, which ignores them: no tags object per task. */
const NO_RUN = { experimentId: "0", name: "" };

/** The tag a failed task's run carries: `Name: message`, masked, cut at {@link ERROR_TAG_LIMIT} characters (see fitTag). */
export const ERROR_TAG = "cairn.error";
/** Characters kept of {@link ERROR_TAG}, of a retried attempt's error tag and of a flow run's cancel reason: half a tag, to read at a glance. */
export const ERROR_TAG_LIMIT = 4000;
/** A failed task's error name and message, each masked and cut to what a tag keeps; the whole text is {@link ERROR_FILE}. */
export const ERROR_NAME_TAG = "cairn.error.name";
export const ERROR_MESSAGE_TAG = "cairn.error.message";

/**
 * What stopped a task run that was cancelled while it ran, in words, from the error tags it
 * carries (what its result carried: FailFast, FlowFailed, or CancelledError with the reason
 * given, `SIGINT` under the CLI): `stopped because task "sq[2]" failed and the failure policy is
 * fail-fast`, `the flow run was cancelled: SIGINT`. One wording for plan, explain and the report.
 * Undefined when its run records none (a run of an older Cairn).
 */
export function cancelledRunWhy(tags: Readonly<Record<string, string>>): string | undefined {
  const name = tags[ERROR_NAME_TAG];
  const message = tags[ERROR_MESSAGE_TAG]?.split("\n", 1)[0]?.replace(/\.$/, "");
  if (name === undefined || !message) return undefined;
  if (name !== "CancelledError") return `${message.charAt(0).toLowerCase()}${message.slice(1)}`;
  // "Cancelled: SIGINT." says it of the flow run, which is what the user cancelled. A queue
  // worker of an earlier Cairn recorded "Cancelled: Cancelled: the flow run was cancelled.": said once.
  const reason = message.replace(/^(?:cancelled(?::\s*|$))+/i, "");
  if (!reason || /^the flow run was cancelled/i.test(reason)) return `the flow run was cancelled${reason.slice("the flow run was cancelled".length)}`;
  return `the flow run was cancelled: ${reason}`;
}
/** Of a failed function task's run: `file:line:column` in the user's code where its error was raised (ErrorInfo.at). */
export const ERROR_SOURCE_TAG = "cairn.error.source";
/** Of a failed or cancelled flow's run: the ids of its tasks that failed, comma-separated (its error tags say why the flow ended). */
export const ERROR_TASKS_TAG = "cairn.error.tasks";
/**
 * Of a failed task run whose process failed (a script, shell, notebook, MLflow project or model
 * step: a ProcessFailedError): the code it exited with, or the signal that ended it (`SIGKILL`),
 * so that a search can tell an out-of-memory kill from an `exit(1)` without reading the message.
 */
export const EXIT_CODE_TAG = "cairn.exit_code";
export const SIGNAL_TAG = "cairn.signal";
/** Artifact (under `cairn/`) of a failed task's run: its error's whole text, its stack and causes, masked. */
export const ERROR_FILE = "error.txt";
/**
 * What a run of Cairn's is: `flow` on a flow's run, set in its create request (how `cairn runs`
 * tells Cairn's flow runs from the runs other code makes in the same MLflow experiment), `map`
 * or `sweep` on the run of a fan-out node, the parent of its items' runs.
 */
export const KIND_TAG = "cairn.kind";
/** What happened to the task, on every task run: `succeeded`, `failed`, `skipped`, `cancelled` (`cached` on a hit's run). */
export const STATUS_TAG = "cairn.status";
/**
 * Why a skipped task did not run ({@link SkipReason}), and the node that caused it: the one that
 * failed, or whose condition was false (the task itself for its own condition); the flow run's id for
 * `flow-failed`. For `condition-false`, the condition's text too.
 */
export const SKIPPED_REASON_TAG = "cairn.skipped.reason";
export const SKIPPED_BECAUSE_TAG = "cairn.skipped.because";
export const SKIPPED_CONDITION_TAG = "cairn.skipped.condition";
/** Of a task run that ended (succeeded, failed, cancelled while running): the attempts its task started; `0` for one that failed before its first. */
export const ATTEMPTS_TAG = "cairn.attempts";

/**
 * Whether a task run's record says its task started no attempt: skipped, cancelled before it
 * started, failed before its first attempt (its inputs). Such a task has no duration: its
 * record's span is only the record's own making.
 */
export function startedNoAttempt(tags: Readonly<Record<string, string>>): boolean {
  const status = tags[STATUS_TAG];
  if (status === "skipped") return true;
  if (status !== "failed" && status !== "cancelled") return false;
  // A cancelled run that never started is recorded without the tag; a run that started always has it.
  return tags[ATTEMPTS_TAG] === "0" || (status === "cancelled" && tags[ATTEMPTS_TAG] === undefined);
}

/**
 * Why a task was skipped: `upstream-failed`, a task it depends on failed (failure policy
 * `continue`); `fail-fast`, a task failed and the policy stopped the flow before this one started;
 * `condition-false`, its condition (or one of a task it depends on) was false; `flow-failed`, the
 * flow failed outside its tasks (its own record could not be made) before this one started.
 */
export type SkipReason = "upstream-failed" | "fail-fast" | "condition-false" | "flow-failed" | "sweep-stopped";

/**
 * Characters MLflow keeps of a tag value (@cairn/mlflow's MLFLOW_LIMITS.tagValueLength, which core
 * cannot import: a test holds the two equal); the error tags are cut to it here, so every tracker
 * records the same value.
 */
export const TAG_VALUE_LIMIT = 8000;
/** Where a failed task's run holds its error whole, for the note of a cut error tag. */
export const ERROR_FILE_PLACE = `artifact cairn/${ERROR_FILE}`;
/** How far back from a cut a tag's value is cut at whitespace instead, so that it does not end mid-word. */
const CUT_AT_SPACE_WITHIN = 40;

/**
 * `value` as a tag keeps it: whole when it holds at most `limit` characters (UTF-16 units, never
 * fewer than the code points MLflow counts), else its beginning and a note of the whole text's
 * length and, given `where`, where it is whole: `... [2500 characters; the whole text is in
 * artifact cairn/error.txt]`. The cut falls between two code points (keepStart: half an emoji
 * shows as U+FFFD), at the last whitespace within {@link CUT_AT_SPACE_WITHIN} characters of it
 * when there is one, not mid-word. One cut for every tag that may be long: a task's error tags, a
 * retried attempt's, a flow run's error and cancel reason.
 */
export function fitTag(value: string, where?: string, limit = TAG_VALUE_LIMIT): string {
  if (value.length <= limit) return value;
  const note = `... [${codePoints(value)} characters${where ? `; the whole text is in ${where}` : ""}]`;
  let head = keepStart(value, limit - note.length);
  const space = head.slice(-CUT_AT_SPACE_WITHIN).search(/\s\S*$/);
  if (space >= 0) head = head.slice(0, head.length - Math.min(head.length, CUT_AT_SPACE_WITHIN) + space);
  return head.trimEnd() + note;
}

/** Code points in `text`: what MLflow (Python's `len`) counts, an emoji one, not two. */
function codePoints(text: string): number {
  let n = text.length;
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff) {
      const before = text.charCodeAt(i - 1);
      if (before >= 0xd800 && before <= 0xdbff) n--;
    }
  }
  return n;
}

/**
 * What happened to a task that never got a run of its own. `key`: the cache key its lookup had
 * computed when the flow stopped it before it started (cancelled, or skipped by fail-fast or the
 * flow's failure), recorded as a cancelled running task's is ({@link FAILED_KEY_TAG}); `stop`:
 * what stopped a cancelled one.
 */
export type UnstartedOutcome =
  | { readonly status: "failed"; readonly error: unknown }
  | { readonly status: "skipped"; readonly reason: SkipReason; readonly because: string; readonly condition?: string; readonly key?: string }
  | { readonly status: "cancelled"; readonly stop?: ErrorInfo; readonly key?: string };

/**
 * Why a skipped task did not run, in one line, from its run's tags: `cairn show` and the report
 * word it alike. `taskId` is the task's own node id (a false condition of its own, or of a task
 * above it). A `flow-failed` skip's callers add where the flow's error is.
 */
export function skippedWhy(tags: Readonly<Record<string, string>>, taskId: string): string {
  const because = tags[SKIPPED_BECAUSE_TAG] ?? "?";
  const condition = tags[SKIPPED_CONDITION_TAG];
  switch (tags[SKIPPED_REASON_TAG]) {
    case "flow-failed":
      return "skipped: the flow failed before it started";
    case "fail-fast":
      return `skipped: task "${because}" failed (fail-fast)`;
    case "sweep-stopped":
      return `skipped: trial "${because}" met the sweep's stopWhen before it started`;
    case "condition-false":
      // Recorded before the condition had a tag of its own: `because` is then the condition's
      // text (its own) or the task whose condition it was; either way nothing failed.
      if (condition === undefined) return `skipped: a condition was false (${because})`;
      return because === taskId
        ? `skipped: its condition (${condition}) is false`
        : `skipped: the condition of upstream task "${because}" (${condition}) is false`;
    default:
      return `skipped: upstream task "${because}" failed`;
  }
}

/** The tags every task run starts with. */
function taskTags(scope: RecordScope, node: FlowNode): Record<string, string> {
  return {
    ...scope.runTags,
    "cairn.flow": scope.flowName,
    "cairn.task": node.task.name,
    "cairn.node_id": node.id,
    "cairn.task_kind": node.task.kind,
    ...(node.task.version ? { "cairn.task_version": node.task.version } : {}),
    ...(node.task.pool ? { [POOL_TAG]: node.task.pool } : {}),
    ...(node.item ? itemTags(node.item) : {}),
  };
}

/** An item's tags: its map node and its place in the list (and a sweep trial's point). */
function itemTags(item: NonNullable<FlowNode["item"]>): Record<string, string> {
  return { "cairn.parent_node": item.parent, "cairn.item": String(item.index), ...(item.key !== undefined ? { "cairn.item_key": item.key } : {}) };
}

/**
 * The run of a map or sweep node, the parent of its items' runs (MLflow's nested runs: flow →
 * sweep → trials), created RUNNING when its list is known, tagged with the list's length
 * ({@link GROUP_ITEMS_TAG}). Undefined when the tracker records nothing.
 */
export async function createGroupRun(scope: RecordScope, node: FlowNode, items: number): Promise<string | undefined> {
  if (!scope.tracker.capabilities.records) return undefined;
  const tags: Record<string, string> = { ...taskTags(scope, node), [KIND_TAG]: node.map!.kind, [GROUP_ITEMS_TAG]: String(items) };
  // What a report's leaderboard ranks trials by.
  if (node.map!.select) tags["cairn.sweep.select"] = `${node.map!.select.order}:${node.map!.select.metric}`;
  return scope.tracker.createRun({ experimentId: scope.experimentId, name: node.id, parentRunId: scope.flowRunId, tags });
}

/**
 * Of a map's or sweep's run, from its start: how many items its list holds. Its `cairn.items`
 * metric says the same once it ends; a report of a flow still running reads the tag.
 */
export const GROUP_ITEMS_TAG = "cairn.items";

/** What a group run ends with: its status, counts, and for a sweep the best trial's params, metrics and name. */
export interface GroupSummary {
  readonly status: "succeeded" | "failed" | "cancelled" | "skipped";
  readonly items: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Of the succeeded (or, a sweep trial with nothing to rank, failed) items: those whose outputs came from the cache. */
  readonly cached: number;
  /** Items that ended without their outcome because the flow stopped (MapRun.cancelled, MapRun.skipped). */
  readonly cancelled: number;
  readonly skipped: number;
  /** Items that never started and have no run of their own (MapRun.notStarted). */
  readonly notStarted: number;
  /** From its list to its last item's end, the figure of its TaskResult (DURATION_TAG, for `cairn show` and the report). */
  readonly durationMs?: number;
  readonly best?: {
    readonly trial: string;
    /** The best trial's result, whose `runId` a cache hit gets once its run is recorded (in the background); a hit's `cachedFrom`. */
    readonly result?: { readonly runId?: string; readonly cachedFrom?: string };
    readonly params: Record<string, unknown>;
    readonly metrics: Record<string, number>;
  };
  /** A sweep stopped by stopWhen: the trial that cut it (the first, in the space's order, to meet it); the trials after it do not count. */
  readonly stoppedAt?: string;
  /**
   * Of a sweep stopped by stopWhen: the results of the trials past the cut that ran or hit (started
   * before the stop was known), each run tagged {@link SWEEP_COUNTED_TAG} `false` once it has an id.
   */
  readonly uncounted?: ReadonlyArray<{ readonly runId?: string }>;
  readonly error?: unknown;
}

/** Ends a group run: its counts as metrics, a sweep's best trial's params and metrics, tagged with its name. */
export async function finishGroupRun(scope: RecordScope, runId: string, summary: GroupSummary): Promise<void> {
  const { tracker } = scope;
  const recorder = new RunRecorder(tracker, runId, scope.secrets);
  recorder.tag(STATUS_TAG, summary.status);
  // succeeded + failed + cancelled + skipped + not_started = items; cached counts hits among the ended.
  for (const key of ["items", "succeeded", "failed", "cached", "cancelled", "skipped"] as const) recorder.metric(`cairn.${key}`, summary[key], 0);
  recorder.metric("cairn.not_started", summary.notStarted, 0);
  if (summary.durationMs !== undefined) recorder.tag(DURATION_TAG, String(summary.durationMs));
  if (summary.best) {
    for (const [key, value] of Object.entries(summary.best.params)) if (value !== undefined) recorder.param(key, typeof value === "string" ? value : JSON.stringify(value));
    for (const [key, value] of Object.entries(summary.best.metrics)) recorder.metric(key, value, 0);
    recorder.tag("cairn.sweep.best", summary.best.trial);
    if (summary.best.result?.runId) recorder.tag("cairn.sweep.best_run", summary.best.result.runId);
    // A hit's run holds neither params nor metrics: the run that computed the best trial does.
    if (summary.best.result?.cachedFrom) recorder.tag("cairn.sweep.best_source_run", summary.best.result.cachedFrom);
  }
  if (summary.stoppedAt !== undefined) recorder.tag("cairn.sweep.stopped_at", summary.stoppedAt);
  // Side by side with the sweep's own record: a request per trial past the cut, a handful at most (those in flight at the stop).
  const uncounted = (summary.uncounted ?? []).flatMap((r) => (r.runId ? [tracker.logBatch(r.runId, { tags: { [SWEEP_COUNTED_TAG]: "false" } })] : []));
  if (summary.error !== undefined) {
    const tags = errorTags(summary.error, scope.secrets);
    for (const key in tags) recorder.tag(key, tags[key]!);
  }
  await recorder.flush();
  await tracker.endRun(runId, summary.status === "succeeded" ? "FINISHED" : summary.status === "failed" ? "FAILED" : "KILLED");
  await Promise.all(uncounted);
}

/**
 * What a flow run's tasks ended as, as the metrics its run ends with: `cairn.tasks`, its task runs
 * (each node of its result: a map's or sweep's run and each of its items alike), and of them
 * `cairn.succeeded` (the hits too, as a map's run counts them), `cairn.failed`, `cairn.cancelled`
 * and `cairn.skipped`, which add up to it; `cairn.cached`, the hits. A fresh run and one whose
 * tasks all came from the cache otherwise look alike in MLflow.
 */
export function flowTaskCounts(results: Iterable<{ readonly status: string }>): Record<string, number> {
  const counts = { tasks: 0, succeeded: 0, failed: 0, cached: 0, cancelled: 0, skipped: 0 };
  for (const { status } of results) {
    counts.tasks++;
    if (status === "cached") counts.cached++;
    if (status === "cached" || status === "succeeded") counts.succeeded++;
    else if (status === "failed" || status === "cancelled" || status === "skipped") counts[status]++;
  }
  return Object.fromEntries(Object.entries(counts).map(([key, n]) => [`cairn.${key}`, n]));
}

/** Of a task run a queue worker made: the worker's id, as `cairn workers` lists it (set by @cairn/worker). */
export const WORKER_TAG = "cairn.worker";
/** Of a task run: the task's named pool. */
export const POOL_TAG = "cairn.pool";
/** Of a task run that ran: when (epoch ms) its inputs were ready and it was queued; its run starts when it got a slot. */
export const QUEUED_AT_TAG = "cairn.queued_at";
/** Of a task run that ran: why it was not taken from the cache ({@link RanBecause}). */
export const RAN_BECAUSE_TAG = "cairn.ran_because";
/** Of a task run retried: when (epoch ms) each attempt started, comma-separated. */
export const ATTEMPT_STARTS_TAG = "cairn.attempt_starts";
/** On a task run whose code left a promise rejection unhandled under a warn mode of `--unhandled-rejections`: which attempt, and the rejection (its result is not cached). */
export const UNHANDLED_REJECTION_TAG = "cairn.unhandled_rejection";
/** On a task run whose code files were edited after its key was made (while it ran): their names; its result is not cached. */
export const CODE_EDITED_TAG = "cairn.code_edited";
/**
 * Of a task run retried: `cairn.attempt_error.<n>` says what attempt `n`, one that was retried,
 * failed with (`Name: message`, masked, cut as {@link ERROR_TAG}), whatever the task's end.
 */
export const ATTEMPT_ERROR_TAG_PREFIX = "cairn.attempt_error.";

/** The tag that says what retried attempt `attempt` failed with. */
export function attemptErrorTag(attempt: number): string {
  return `${ATTEMPT_ERROR_TAG_PREFIX}${attempt}`;
}

/** What the retried attempts of a task run failed with, from its tags, by attempt number: `cairn show` and the report. */
export function attemptErrors(tags: Readonly<Record<string, string>>): Array<{ attempt: number; error: string }> {
  const errors: Array<{ attempt: number; error: string }> = [];
  for (const key in tags) {
    if (!key.startsWith(ATTEMPT_ERROR_TAG_PREFIX)) continue;
    const attempt = Number(key.slice(ATTEMPT_ERROR_TAG_PREFIX.length));
    if (Number.isInteger(attempt) && attempt > 0) errors.push({ attempt, error: tags[key]! });
  }
  return errors.sort((a, b) => a.attempt - b.attempt);
}
/**
 * Of a task run that started an attempt: the task's duration in ms, as the run's result and
 * events give it: its own work, from its first attempt's start to its last attempt's end. The
 * run's start and end times span its record too (created, outputs uploaded, cache entry stored).
 */
export const DURATION_TAG = "cairn.duration_ms";

/**
 * Of a sweep trial's run that ran: its selected output as it returned it (`String(value)`, every
 * digit). A report ranks the trials by it; a run without it was recorded before it was written,
 * when the output's metric was logged at step 0 and a per-epoch metric of the same name hid it.
 */
export const SWEEP_VALUE_TAG = "cairn.sweep.value";

/**
 * Of a sweep trial's run (ran or hit) that started before the sweep's stopWhen was met and ended
 * after, past the trial that met it: `false`. The sweep does not count it (its best, minSuccess),
 * though its run ended as any other.
 */
export const SWEEP_COUNTED_TAG = "cairn.sweep.counted";

/**
 * Why a task that ran was not taken from the cache: `miss`, it was looked up and no usable
 * entry was there (the nearest earlier entry tells what changed); `forced`, `--rerun` or
 * `--refresh` (or a task upstream was rerun); `cache-off`, the task turns caching off;
 * `no-cache`, the run does (`--no-cache`, `cache: false`).
 */
export type RanBecause = "miss" | "forced" | "cache-off" | "no-cache";

/** What a task's run records of how it came to run, in its create request (no request of its own). */
export interface RunFacts {
  readonly queuedAt?: number;
  readonly ranBecause?: RanBecause;
  /** The cache key it computes ({@link KEY_TAG}). */
  readonly key?: string;
}

/** Creates the task's run (RUNNING), before its first attempt. */
export function createTaskRun(scope: RecordScope, node: FlowNode, facts?: RunFacts): string | Promise<string> {
  const { tracker } = scope;
  const records = tracker.capabilities.records;
  // A tracker that records nothing hands out ids with no round trip through a promise.
  if (!records && tracker.newRunId) return tracker.newRunId();
  if (!records) return tracker.createRun(NO_RUN);
  const tags = taskTags(scope, node);
  if (facts?.queuedAt !== undefined) tags[QUEUED_AT_TAG] = String(facts.queuedAt);
  if (facts?.ranBecause !== undefined) tags[RAN_BECAUSE_TAG] = facts.ranBecause;
  if (facts?.key !== undefined) tags[KEY_TAG] = facts.key;
  return tracker.createRun({ experimentId: scope.experimentId, name: node.id, parentRunId: node.item?.parentRunId ?? scope.flowRunId, tags });
}

/**
 * Records the run of a task that never started its own, with its status tag and why (the
 * error's tags, or what it was skipped for): a skipped or cancelled task's in one step where
 * the tracker can (`recordRun`); a failure's as a run created, its whole text written to
 * {@link ERROR_FILE}, then ended. MLflow has no status for a task that did not run: skipped
 * and cancelled runs are KILLED, told apart by {@link STATUS_TAG} (FINISHED would count them as
 * successes, FAILED would repeat one failure once per dependant).
 * Resolves to the run's id; undefined when the tracker records nothing.
 */
export async function recordUnstarted(scope: RecordScope, node: FlowNode, outcome: UnstartedOutcome): Promise<string | undefined> {
  const { tracker, secrets } = scope;
  if (!tracker.capabilities.records) return undefined;
  const tags = taskTags(scope, node);
  tags[STATUS_TAG] = outcome.status;
  let text: string | undefined;
  if (outcome.status === "failed") {
    Object.assign(tags, errorTags(outcome.error, secrets, ERROR_FILE_PLACE));
    tags[ATTEMPTS_TAG] = "0"; // failed before its first: `cairn show` and the report give it no duration
    text = errorText(outcome.error, secrets);
  } else if (outcome.status === "skipped") {
    tags[SKIPPED_REASON_TAG] = outcome.reason;
    tags[SKIPPED_BECAUSE_TAG] = outcome.because;
    if (outcome.condition !== undefined) tags[SKIPPED_CONDITION_TAG] = outcome.condition;
  } else if (outcome.stop) Object.assign(tags, flowErrorTags(outcome.stop, [], secrets));
  // Stopped while it waited, its key known: a later plan says the key was cancelled, not that it never ran.
  if (outcome.status !== "failed" && outcome.key !== undefined) tags[FAILED_KEY_TAG] = outcome.key;
  const run = { experimentId: scope.experimentId, name: node.id, parentRunId: node.item?.parentRunId ?? scope.flowRunId, tags };
  if (text === undefined && tracker.recordRun) return tracker.recordRun({ ...run, status: "KILLED" });
  // A failure has a file to write: while the run is open, its tracker still knows where its artifacts go.
  const runId = await tracker.createRun(run);
  // The run ends even when its error file could not be written (its tags carry the error).
  const written = text !== undefined ? writeRunFiles(tracker, runId, "cairn", { [ERROR_FILE]: text }).then(() => undefined, (e: unknown) => e) : undefined;
  const unwritten = await written;
  await tracker.endRun(runId, text !== undefined ? "FAILED" : "KILLED");
  if (unwritten !== undefined) throw unwritten;
  return runId;
}

/** Longest input value logged as a param; longer ones go whole to `cairn/inputs.json`. */
const PARAM_VALUE_LIMIT = 500;

/**
 * Inputs become params: scalars as they are, artifacts as `runs:/<run>/<path>` URIs,
 * small structured values as JSON. No value is ever cut: when one is too long, its
 * param points at the artifact `cairn/inputs.json` of `runId`, which holds all inputs whole;
 * with `written` (the flow run's {@link LongInputs}), a long value an earlier task run of the
 * flow run wrote whole is not written again: its param names that run and input, and this run's
 * file, if it needs one for another value, holds `{ "$sameAs": "runs:/<run>/cairn/inputs.json", "input": name }`
 * in its place. Returns that file's content when it is needed.
 */
export function logInputs(recorder: RunRecorder, inputs: Record<string, unknown>, secrets: SecretRegistry, runId?: string, written?: LongInputs): string | undefined {
  let needsFile = false;
  let file: Record<string, unknown> | undefined;
  for (const key in inputs) {
    const value = inputs[key];
    let text: string;
    if (value === undefined) continue;
    if (typeof value === "string") text = value;
    else if (typeof value === "number" || typeof value === "boolean") text = String(value);
    else if (isArtifact(value)) text = value.runId ? `runs:/${value.runId}/${value.artifactPath}` : value.path;
    else text = JSON.stringify(value);
    if (text.length > PARAM_VALUE_LIMIT) {
      const seen = written && runId !== undefined ? firstWritten(written, value, { runId, input: key }) : undefined;
      if (seen) {
        text = `(too long for a param: see input \`${seen.input}\` in artifact cairn/inputs.json of run ${seen.runId})`;
        (file ??= { ...inputs })[key] = { $sameAs: `runs:/${seen.runId}/cairn/inputs.json`, input: seen.input };
      } else {
        needsFile = true;
        text = "(too long for a param: see artifact cairn/inputs.json)";
      }
    }
    // Masked by the recorder: inputs wired from literals, or from a param that carries a secret read from
    // the environment before it was known, may hold one. Masked, not refused: the task did not put it there.
    recorder.inputParam(key, text);
  }
  return needsFile ? secrets.mask(JSON.stringify(file ?? inputs, null, 2)) : undefined;
}

/** Where `value` was first written whole in this flow run, else undefined once it is noted as written by `here`. */
function firstWritten(written: LongInputs, value: unknown, here: { runId: string; input: string }): { runId: string; input: string } | undefined {
  if (typeof value === "string") {
    const digest = createHash("sha256").update(value).digest("base64");
    const seen = written.strings.get(digest);
    if (!seen) written.strings.set(digest, here);
    return seen;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const seen = written.objects.get(value);
  if (!seen) written.objects.set(value, here);
  return seen;
}

/** `Name: message`, cut at {@link ERROR_TAG_LIMIT} characters (fitTag; `where`: where the whole text is). */
export function errorTag(error: ErrorInfo, where?: string): string {
  return fitTag(`${error.name}: ${error.message}`, where, ERROR_TAG_LIMIT);
}

/**
 * The tags of a failed task's run: its error's name and message (and source, when known), masked,
 * then cut to what a tag keeps (fitTag); `where`: where the run holds the whole text, when it does
 * ({@link ERROR_FILE_PLACE}).
 */
export function errorTags(error: unknown, secrets: SecretRegistry, where?: string): Record<string, string> {
  const info = secrets.maskError(toErrorInfo(error));
  const tags = { [ERROR_TAG]: errorTag(info, where), [ERROR_NAME_TAG]: fitTag(info.name, where), [ERROR_MESSAGE_TAG]: fitTag(info.message, where) };
  return info.at === undefined ? tags : { ...tags, [ERROR_SOURCE_TAG]: fitTag(info.at, where) };
}

/**
 * The tags of a failed or cancelled flow's run: why it ended (its error's name and message, as a
 * task's, masked and cut to what a tag keeps) and which tasks failed. The flow run has no error
 * file: a cut value says how long it was, and each failed task's run holds its whole error.
 */
export function flowErrorTags(error: ErrorInfo, failedTasks: readonly string[], secrets: SecretRegistry): Record<string, string> {
  const info = secrets.maskError(error);
  const tags: Record<string, string> = { [ERROR_TAG]: errorTag(info), [ERROR_NAME_TAG]: fitTag(info.name), [ERROR_MESSAGE_TAG]: fitTag(info.message) };
  if (failedTasks.length) tags[ERROR_TASKS_TAG] = fitTag(failedTasks.join(","));
  return tags;
}

/**
 * The whole text of an error, for {@link ERROR_FILE}: `Name: message`, its stack frames and its
 * own fields (an HTTP error's `statusCode`, `code`, `response`), then the inner errors of an
 * AggregateError (what Promise.any throws) each the same way, indented, then each cause the same
 * way; the fields redacted by key name (redactCredentials), the whole masked.
 */
export function errorText(error: unknown, secrets: SecretRegistry): string {
  return secrets.mask(`${errorChainLines(error, new Set(), 0).join("\n")}\n`);
}

/** How many of an AggregateError's inner errors are written, and how deep inner errors of inner errors go. */
const INNER_ERRORS_LIMIT = 10;
const INNER_ERRORS_DEPTH = 3;
/** Longest line an error's field is written on. */
const FIELD_LINE_LIMIT = 2_000;

/** `error` and each of its causes; `seen` cuts a cycle through causes or inner errors. */
function errorChainLines(error: unknown, seen: Set<unknown>, depth: number): string[] {
  const lines: string[] = [];
  for (let current = error; current !== undefined && current !== null && !seen.has(current); ) {
    seen.add(current);
    if (lines.length) lines.push("", "Caused by:");
    lines.push(...oneErrorLines(current, seen, depth));
    if (!isError(current)) break;
    const error = current;
    current = readSafely(() => error.cause);
  }
  return lines;
}

/** One error without its causes: `Name: message`, its stack frames, its fields, its inner errors. */
function oneErrorLines(value: unknown, seen: Set<unknown>, depth: number): string[] {
  const info = toErrorInfo(value);
  if (!isError(value)) {
    // A thrown object, or a cause or an inner error that is one: what it holds, redacted, not "[object Object]".
    const shown = typeof value === "object" && value !== null ? fieldText(value) : info.message;
    return [`${info.name}: ${shown}`];
  }
  const lines = [`${info.name}: ${info.message}`];
  // The frames only: the stack's first lines repeat the message, under the name the error had when it was made.
  const stack = readSafely(() => value.stack);
  for (const line of typeof stack === "string" ? stack.split("\n") : []) if (/^\s+at /.test(line)) lines.push(line);
  // Cairn's own errors say all they hold in their message.
  if (!CairnError.is(value)) for (const [key, field] of errorFields(value)) lines.push(`  ${key}: ${fieldText(field)}`);
  lines.push(...innerErrorLines(value, seen, depth));
  return lines;
}

/** An AggregateError's inner errors (any Error's `errors` array), the first {@link INNER_ERRORS_LIMIT}, each indented under its number. */
function innerErrorLines(error: Error, seen: Set<unknown>, depth: number): string[] {
  const inner = readSafely(() => (error as { errors?: unknown }).errors);
  if (!Array.isArray(inner) || inner.length === 0) return [];
  if (depth >= INNER_ERRORS_DEPTH) return [`  (${inner.length} inner errors, nested too deep to write)`];
  const lines: string[] = [];
  inner.slice(0, INNER_ERRORS_LIMIT).forEach((item: unknown, i) => {
    lines.push("", `  Inner error ${i + 1} of ${inner.length}:`);
    if (seen.has(item)) lines.push("  (an error written above)");
    else for (const line of errorChainLines(item, seen, depth + 1)) lines.push(line ? `  ${line}` : line);
  });
  if (inner.length > INNER_ERRORS_LIMIT) lines.push("", `  ... and ${inner.length - INNER_ERRORS_LIMIT} more inner errors`);
  return lines;
}

/** A field's value on one line, as `util.inspect` shows it, redacted, cut at {@link FIELD_LINE_LIMIT}. */
function fieldText(value: unknown): string {
  let text: string;
  try {
    text = inspect(redactCredentials(value), { depth: 4, maxArrayLength: 20, maxStringLength: FIELD_LINE_LIMIT, breakLength: Infinity, compact: true });
  } catch {
    return "[unreadable]";
  }
  text = text.replace(/\s*\n\s*/g, " ");
  return text.length > FIELD_LINE_LIMIT ? `${text.slice(0, FIELD_LINE_LIMIT)}... [${text.length} characters]` : text;
}

/**
 * {@link ERROR_FILE}'s text of a failed task run: its error's {@link errorText}, then, when
 * attempts before its last failed and were retried (`earlier`, in order), each of theirs, the
 * newest first, under `Attempt 2 of 3 failed:`. The file starts as it does without retries.
 */
export function errorFileText(error: unknown, earlier: readonly unknown[], attempts: number, secrets: SecretRegistry): string {
  const text = errorText(error, secrets);
  if (!earlier.length) return text;
  const sections = earlier.map((e, i) => `Attempt ${i + 1} of ${attempts} failed:\n${errorText(e, secrets)}`).reverse();
  const before = earlier.length === 1 ? "Before it, 1 attempt failed and was retried:" : `Before it, ${earlier.length} attempts failed and were retried:`;
  return `${text}\n${before}\n\n${sections.join("\n")}`;
}

/** What `read` gives, or undefined when it throws: a task's error may have getters that do, and it is still recorded. */
function readSafely(read: () => unknown): unknown {
  try {
    return read();
  } catch {
    return undefined;
  }
}

/**
 * Ends the task's run: what it logged, its status tag (FINISHED `succeeded`, FAILED `failed`,
 * KILLED `cancelled`), its outputs manifest and artifacts (when it succeeded) or its error's
 * tags and {@link ERROR_FILE} (when it failed; a cancelled one's tags say what stopped it), its status.
 */
export async function finishTaskRun(
  scope: RecordScope,
  runId: string,
  recorder: RunRecorder,
  attempts: number,
  status: "FINISHED" | "FAILED" | "KILLED",
  manifest?: StoredManifest,
  error?: unknown,
  /** The errors of the attempts before the last that failed and were retried, in order: in a failed run's {@link ERROR_FILE}. */
  earlier: readonly unknown[] = [],
): Promise<void> {
  const { tracker } = scope;
  if (!tracker.capabilities.records) return;
  recorder.tag(ATTEMPTS_TAG, String(attempts));
  recorder.tag(STATUS_TAG, status === "FINISHED" ? "succeeded" : status === "FAILED" ? "failed" : "cancelled");
  const writes: Promise<void>[] = [];
  if (status === "FAILED" && error !== undefined) {
    const tags = { ...errorTags(error, scope.secrets, ERROR_FILE_PLACE), ...processEndTags(error) };
    for (const key in tags) recorder.tag(key, tags[key]!);
    writes.push(writeRunFiles(tracker, runId, "cairn", { [ERROR_FILE]: errorFileText(error, earlier, attempts, scope.secrets) }));
  } else if (status === "KILLED" && error !== undefined) {
    // What stopped it, as a cancelled flow run's tags say it: no error file, an upload more for a stop's stack.
    const tags = flowErrorTags(toErrorInfo(error), [], scope.secrets);
    for (const key in tags) recorder.tag(key, tags[key]!);
  }
  if (manifest !== undefined) {
    writes.push(
      (async () => {
        if (!hasLocalArtifacts(tracker)) await uploadArtifacts(tracker, runId, manifest.values, resolvePath(scope.workDir, "artifacts", runId));
        await writeRunFiles(tracker, runId, dirname(MANIFEST_PATH), { [basename(MANIFEST_PATH)]: JSON.stringify(manifest, null, 2) });
      })(),
    );
  }
  // What was logged (one log-batch) and the files are separate requests that need not wait for
  // each other; the run ends once all are in. When one failed, a succeeded task's run is not
  // FINISHED (its caller ends it FAILED), but a failed or cancelled one still ends as it is:
  // never left RUNNING for a later command to call KILLED.
  const settled = await Promise.allSettled([recorder.flush(), ...writes]);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed && status === "FINISHED") throw failed.reason;
  await tracker.endRun(runId, status);
  if (failed) throw failed.reason;
}

/**
 * The code of @cairn/process's ProcessFailedError, which core cannot import (the process package
 * depends on core): its stable code and brand are the same in every copy of Cairn.
 */
const PROCESS_FAILED_CODE = "CAIRN_PROCESS_FAILED";

/** {@link EXIT_CODE_TAG} or {@link SIGNAL_TAG} of a task that failed because its process did; none for any other error. */
function processEndTags(error: unknown): Record<string, string> {
  if (!CairnError.is(error) || error.code !== PROCESS_FAILED_CODE) return {};
  const { exitCode, signal } = error as CairnError & { exitCode?: unknown; signal?: unknown };
  if (typeof signal === "string" && signal) return { [SIGNAL_TAG]: signal };
  return Number.isInteger(exitCode) ? { [EXIT_CODE_TAG]: String(exitCode) } : {};
}

async function uploadArtifacts(tracker: Tracker, runId: string, outputs: unknown, localRoot: string): Promise<void> {
  const uploads: Promise<void>[] = [];
  const visit = (v: unknown) => {
    if (isArtifact(v)) {
      if (v.runId === runId && v.path.startsWith(localRoot)) {
        const folder = dirname(v.artifactPath);
        uploads.push(tracker.logArtifact(runId, v.path, folder === "." ? undefined : folder));
      }
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === "object") Object.values(v).forEach(visit);
  };
  visit(outputs);
  await Promise.all(uploads);
}

/** Where a flow run's hits are recorded: the records still being written, and those written. */
export interface HitRecords {
  /** Records still being written (with a server); the flow waits for them at its end. */
  readonly background: Set<Promise<void>>;
  /**
   * The hits' runs as written, each whole (created FINISHED with every tag; nothing else writes
   * to it), when they are kept: the run's report reads them from here rather than asking the
   * server again. Dropped (undefined) once one hit's run is not known whole here: its record
   * failed (the server may hold part of it), or a tag is long enough that a tracker may cut it.
   */
  written: RunRecord[] | undefined;
  /** With a server: the hits' runs wait here to be sent, a few at a time (see HitQueue). */
  readonly queue?: HitQueue;
}

/** Longer tag values are not kept in a hit's copy: a tracker may cut them (MLflow at 8,000 characters). */
const KEPT_TAG_LENGTH = 5000;

/**
 * Records a cache hit as a FINISHED run tagged `cairn.status=cached` and with its source
 * (`cairn.cached_from`: the id, `cairn.cached_from.name`: its name when known), all in the
 * create request: a search can filter hits and follow them to their source, whose params and
 * metrics are not copied (a request per hit). `result.runId` is set when the run exists; with
 * a server that happens in the background (`records.background` holds the promise: the flow
 * waits for it at its end), so dependants do not wait for it. The run starts when the task's
 * lookup began (`lookupStart`; else when the hit is found) and ends when the hit is found: the
 * duration the run's own table shows for the hit, which `cairn show` then shows too.
 */
export async function recordHit(
  scope: RecordScope,
  node: FlowNode,
  entry: Pick<CacheEntry, "sourceRunId" | "key">,
  result: { runId?: string },
  records: HitRecords,
  warn: (task: string, message: string) => void,
  sourceName?: string,
  lookupStart?: number,
): Promise<void> {
  const { tracker } = scope;
  if (!tracker.capabilities.records) return;
  const now = Date.now();
  const run = {
    experimentId: scope.experimentId,
    name: node.id,
    parentRunId: node.item?.parentRunId ?? scope.flowRunId,
    startTime: Math.min(lookupStart ?? now, now),
    tags: {
      ...taskTags(scope, node),
      [STATUS_TAG]: "cached",
      [CACHED_FROM_TAG]: entry.sourceRunId,
      ...(sourceName !== undefined ? { [CACHED_FROM_NAME_TAG]: sourceName } : {}),
      "cairn.cache_hit_key": entry.key,
    },
  };
  const written = (runId: string) => {
    result.runId = runId;
    if (!records.written) return;
    const { tags, parentRunId, ...rest } = run;
    if (Object.values(tags).some((value) => value.length > KEPT_TAG_LENGTH)) records.written = undefined;
    else records.written.push({ ...rest, runId, status: "FINISHED", endTime: now, parentRunId, params: {}, metrics: {}, tags: { ...tags, "mlflow.parentRunId": parentRunId } });
  };
  const failed = (message: string) => {
    records.written = undefined;
    warn(node.id, message);
  };
  const inBackground = (work: Promise<void>) => {
    records.background.add(work);
    void work.finally(() => records.background.delete(work));
  };
  if (tracker.recordRun && tracker.capabilities.remote) {
    // A server: the hit is complete now, and its run (two requests) is recorded in the
    // background, so dependants do not wait for it. The flow waits for all at its end.
    const recordRun = tracker.recordRun.bind(tracker);
    const send = () =>
      recordRun({ ...run, status: "FINISHED", endTime: now }).then(written, (e: unknown) =>
        failed(`could not record the cache hit's run: ${(e as Error).message}`),
      );
    inBackground(records.queue ? records.queue.add(send) : send());
  } else if (tracker.recordRun) {
    // One step, already FINISHED: the embedded store appends the hits recorded at once in one write.
    written(await tracker.recordRun({ ...run, status: "FINISHED", endTime: now }));
  } else {
    const runId = await tracker.createRun(run);
    result.runId = runId;
    // The hit is complete once its run exists; ending it (a request) goes on in the
    // background, so dependants do not wait for it. The flow waits for all at its end.
    inBackground(
      tracker.endRun(runId, "FINISHED", now).then(
        () => written(runId),
        (e: unknown) => failed(`could not record the cache hit's run ${runId} as FINISHED: ${(e as Error).message}`),
      ),
    );
  }
}
