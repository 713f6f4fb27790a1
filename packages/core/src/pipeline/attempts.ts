/**
 * The attempt stage of a task: runs the task's function (or its kind's executor) with a
 * `ctx`, bounded by the task's timeout and the flow's signal, retried with backoff (p-retry)
 * while the error allows, and checks each attempt's output. An attempt is over at its signal
 * whether or not the task listens to it (see AbandonedAttempts).
 */
import { readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { setImmediate } from "node:timers/promises";
import pRetry from "p-retry";
import { attemptFolder, RECORD_FOLDER } from "../definition/artifact-path.ts";
import type { FlowNode } from "../definition/flow-definition.ts";
import { CancelledError, NonErrorThrownError, TaskTimeoutError } from "../errors.ts";
import { makeFolder } from "../make-folder.ts";
import { AttemptCrash, inAttempt, isWatched } from "../run/crash-guard.ts";
import { isError, noteErrorSource, placeNode, type TaskStatus, toErrorInfo } from "../run/events.ts";
import type { RunRecorder } from "../tracking/run-recorder.ts";
import type { AbandonedAttempts } from "./abandoned.ts";
import { intercept, type TaskInterceptor } from "./intercept.ts";
import { checkOutputs } from "./outputs.ts";
import { isRetryableError } from "./retryable.ts";
import { type FolderListings, RunningTaskContext, type SharedContext, taskArtifactDir, type WorkHolder } from "./running-task-context.ts";
import { isStopReason } from "./stop.ts";
import { ATTEMPT_STARTS_TAG, attemptErrorTag, errorTag, UNHANDLED_REJECTION_TAG } from "./task-run.ts";

/** What the attempts of every task of one flow run share. */
export interface AttemptScope {
  readonly shared: SharedContext;
  /** Aborts when the flow stops; the reason is a StopReason. */
  readonly flowSignal: AbortSignal;
  /** Rejects with the flow's stop reason; raced against every running attempt. */
  readonly flowAborted: Promise<never>;
  readonly abandoned: AbandonedAttempts;
  /** The embedder's hooks around every attempt (RunOptions.interceptors); none: the task is called directly. */
  readonly interceptors?: readonly TaskInterceptor[];
}

/** The slots a running task holds (the scheduler's: the flow's and its pool's). */
export interface TaskSlots {
  /** Gives them back (while it waits out a retry's backoff); nothing when it holds none. */
  release(): void;
  /** Resolves once it holds them again, taken at its priority; at once when it holds them. */
  retake(): Promise<void>;
}

/** One task's run, as its attempts see it. */
export interface TaskAttempts {
  readonly node: FlowNode;
  readonly inputs: Record<string, unknown>;
  readonly runId: string;
  readonly recorder: RunRecorder;
  /** Updated as attempts start: their number and `running`. */
  readonly result: { attempts: number; status: TaskStatus };
  /** Where attempts leave work that outlives them (process trees being ended). */
  readonly holder: WorkHolder;
  /** Of a task with retries: when each attempt started (epoch ms, comma-separated), for its run's tag. */
  attemptStarts?: string;
  /** The listings of the succeeding attempt's folder artifacts, taken by its name check: the cache stamps the folders on them. */
  folderListings?: FolderListings;
  /** The errors of its attempts that failed and were retried, in order: its run's error file lists them. */
  retriedErrors?: unknown[];
  /** The attempts whose code left a rejection unhandled under a warn mode of `--unhandled-rejections`: such an attempt's result is not cached. */
  rejectionsLeft?: Set<number>;
  /** Whether its result is kept past the run (a cache entry, a FINISHED run): then an attempt that returns at once waits one turn for what its code left behind. */
  readonly keepsResult?: boolean;
  /** Its slots, given back for each retry's backoff; absent: it keeps them (a worker's task, whose slots are the coordinator's). */
  readonly slots?: TaskSlots | undefined;
}

/** Runs the task's attempts; resolves with the checked output of the one that succeeded, or rejects with the last error. */
export function runAttempts(scope: AttemptScope, task: TaskAttempts): Promise<unknown> {
  return task.node.task.retry.retries === 0 ? once(scope, task, 1) : withRetries(scope, task);
}

/** Attempt number `attempt`, announced as running; none when the flow has stopped. */
function once(scope: AttemptScope, task: TaskAttempts, attempt: number): Promise<unknown> {
  // The flow may have stopped (cancel, fail-fast) while this attempt waited for its slot, its run,
  // or the attempt before's process group: then the task's code must not start, as no side effect
  // of it may happen after the stop, nor may its record say it did (a `running` event, an attempt counted).
  // Not an async function: a promise fewer for every attempt of every task.
  if (scope.flowSignal.aborted) return Promise.reject(scope.flowSignal.reason);
  task.result.attempts = attempt;
  task.result.status = "running";
  const { shared } = scope;
  const time = Date.now();
  // A retried task's run says when each attempt began (a tag rides with its one log-batch): the report draws them.
  if (task.node.task.retry.retries > 0) task.attemptStarts = task.attemptStarts ? `${task.attemptStarts},${time}` : String(time);
  if (attempt > 1) task.recorder.tag(ATTEMPT_STARTS_TAG, task.attemptStarts!);
  // One literal with every field (placeNode adds an item's fields, and leaves any other event as it is).
  shared.emit(placeNode({ type: "task", status: "running", runId: shared.flowRunId, task: task.node.id, time, taskRunId: task.runId, attempt }, task.node));
  return runAttempt(scope, task, attempt);
}

/** Wraps any attempt failure so p-retry retries every error alike (it skips TypeErrors of its own accord). */
class AttemptFailure extends Error {
  constructor(readonly error: unknown) {
    super("attempt failed");
  }
}

/** The attempts of a task with retries, through p-retry. */
async function withRetries(scope: AttemptScope, task: TaskAttempts): Promise<unknown> {
  const { node } = task;
  const { retry } = node.task;
  const { flowSignal, shared } = scope;
  try {
    return await pRetry(
      async (attempt) => {
        try {
          // The attempt before may have been given up on (a timeout) while its process group is
          // still ending (SIGTERM, then SIGKILL after killGraceMs): the next one starts when that
          // group is gone, so that the two never run beside each other, in the task's slot and
          // pool, writing the same artifacts and logs.
          if (attempt > 1) {
            if (task.holder.held) await Promise.allSettled(task.holder.held);
            // Its slots, given back for the backoff (onFailedAttempt), taken again in its turn; the
            // flow's stop ends the wait (the queue it waits in is dropped then).
            if (task.slots) await Promise.race([task.slots.retake(), scope.flowAborted]);
            // Stopped during those waits (up to killGraceMs): no next attempt, so its files stay where it left them.
            if (flowSignal.aborted) throw flowSignal.reason;
            await setAsideAttemptFiles(scope, task, attempt - 1);
          }
          return await once(scope, task, attempt);
        } catch (error) {
          throw new AttemptFailure(error);
        }
      },
      {
        retries: retry.retries,
        minTimeout: retry.minDelayMs,
        maxTimeout: retry.maxDelayMs,
        factor: 2,
        signal: flowSignal,
        shouldRetry: ({ error }) => isRetryable((error as AttemptFailure).error, flowSignal),
        onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
          const cause = (error as AttemptFailure).error;
          if (retriesLeft > 0 && isRetryable(cause, flowSignal)) {
            noteRetriedError(scope, task, attemptNumber, cause);
            shared.emit(placeNode({ type: "task", status: "retrying", runId: shared.flowRunId, task: node.id, time: Date.now(), attempt: attemptNumber, error: toErrorInfo(cause) }, node));
            // The backoff needs no slot: other tasks take them meanwhile, as Airflow's and Dagster's
            // do. The attempt's processes end in them first, so a pool's limit holds for what runs.
            if (task.slots) {
              if (task.holder.held) await Promise.allSettled(task.holder.held);
              task.slots.release();
            }
          }
        },
      },
    );
  } catch (error) {
    throw error instanceof AttemptFailure ? error.error : error;
  }
}

/**
 * Keeps what a retried attempt failed with, so that the task's record says it however the task
 * ends: a tag of its run (in the log-batch its closing sends anyway) and, should the task fail,
 * a section of its error file.
 */
function noteRetriedError(scope: AttemptScope, task: TaskAttempts, attempt: number, error: unknown): void {
  (task.retriedErrors ??= []).push(error);
  task.recorder.tag(attemptErrorTag(attempt), errorTag(scope.shared.secrets.maskError(toErrorInfo(error))));
}

/** The process logs, which every attempt appends to (`=== attempt N ===`): they stay in place. */
const LOGS_FOLDER = "logs";

/**
 * Moves what attempt `attempt` left in the task's artifacts folder to `cairn/attempts/<attempt>/`,
 * so the next attempt starts from an empty folder: a tool that refuses an existing folder
 * (`mlflow.sklearn.save_model`, `os.makedirs`) does not fail every retry over the failed
 * attempt's files, and those never pass for the retry's outputs. They are kept, not deleted:
 * what the failed attempt saved is there to look at, or to resume from. `cairn/` (Cairn's
 * record; a task cannot write there) and `logs/` stay. A failure to move them is a warning: the
 * next attempt then sees them, as it would without this step.
 */
async function setAsideAttemptFiles(scope: AttemptScope, task: TaskAttempts, attempt: number): Promise<void> {
  const { shared } = scope;
  const dir = taskArtifactDir(shared, task.node.id, task.runId);
  const aside = join(dir, ...attemptFolder(attempt).split("/"));
  try {
    const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return []; // the attempt wrote nothing
      throw error;
    });
    // In any case: on a case-insensitive file system `Cairn/` is `cairn/`.
    const left = names.filter((name) => name.toLowerCase() !== RECORD_FOLDER && name !== LOGS_FOLDER);
    if (!left.length) return;
    await makeFolder(aside);
    for (const name of left) await rename(join(dir, name), join(aside, name));
  } catch (error) {
    const message =
      `could not move the files attempt ${attempt} left in its artifacts folder (${dir}) to ${aside} ` +
      `(${(error as Error).message}): attempt ${attempt + 1} starts with them there. Check that folder's permissions and free space.`;
    shared.emit({ type: "log", level: "warn", runId: shared.flowRunId, task: task.node.id, message, time: Date.now() });
  }
}

async function runAttempt(scope: AttemptScope, task: TaskAttempts, attempt: number): Promise<unknown> {
  // Again after `running` was told: a listener of it may have stopped the flow, and the code must not start then either.
  if (scope.flowSignal.aborted) throw scope.flowSignal.reason;
  const { node, inputs } = task;
  const timeoutMs = node.task.timeoutMs;
  // Without a timeout the flow's own signal is the attempt's signal: no controller or listener per task.
  let signal = scope.flowSignal;
  let aborted = scope.flowAborted;
  let cleanup: (() => void) | undefined;
  let overran: ((endedAt: number) => TaskTimeoutError | undefined) | undefined;
  if (timeoutMs) {
    // Not AbortSignal.timeout: its reason would be a bare TimeoutError, while ctx.signal.reason is
    // what a task (and the process executor) throws, so it names the task and attempt; and its
    // timer could not be cleared when the attempt ends. Not AbortSignal.any either: on Node 20
    // its composite signals (weak references, a finalization registry) cost several times this
    // controller and its one listener, on every timed attempt (BENCHMARKS.md, timed no-op tasks).
    const flowSignal = scope.flowSignal;
    const ac = new AbortController();
    const onFlowAbort = () => ac.abort(flowSignal.reason);
    flowSignal.addEventListener("abort", onFlowAbort, { once: true });
    const started = performance.now();
    let timedOut: TaskTimeoutError | undefined;
    const timer = setTimeout(() => ac.abort((timedOut = new TaskTimeoutError(node.id, timeoutMs, attempt))), timeoutMs);
    // Synchronous code that holds the event loop past the timeout (a busy loop) keeps the timer
    // from firing, and the attempt settles first: its clock is read when it settled, so that what
    // it returns or throws past its timeout is a timeout all the same, retried and never cached.
    // The timer may fire after it settled, in the turn the attempt then waits for what its code
    // left behind: that abort is this overrun's, and does not make the late result count.
    overran = (endedAt) => {
      const ranMs = endedAt - started;
      if (ranMs < timeoutMs) return undefined;
      if (ac.signal.aborted && ac.signal.reason !== timedOut) return undefined; // the flow stopped first: its reason stands
      const error = new TaskTimeoutError(node.id, timeoutMs, attempt, Math.round(ranMs));
      if (!ac.signal.aborted) ac.abort(error); // as at any timeout: work the attempt left behind sees its signal abort
      return error;
    };
    signal = ac.signal;
    aborted = rejectOnAbort(signal);
    cleanup = () => {
      clearTimeout(timer);
      flowSignal.removeEventListener("abort", onFlowAbort);
    };
  }
  const ctx = new RunningTaskContext(scope.shared, node, task.runId, attempt, signal, task.recorder, task.holder);
  // Within a run that watches for crashes (crash-guard.ts), what escapes the task's code fails this attempt.
  const crash = isWatched(scope.flowSignal) ? new AttemptCrash(node.id, scope.flowSignal, (reason, say) => leftUnhandled(scope, task, attempt, reason, say)) : undefined;
  // When the attempt's code settled, read before any turn of the loop taken after it (overran).
  let endedAt: number | undefined;
  try {
    let output: unknown;
    try {
      const interceptors = scope.interceptors;
      const call = () =>
        interceptors?.length
          ? intercept(interceptors, { nodeId: node.id, taskName: node.task.name, kind: node.task.kind, attempt, inputs, ctx }, () => node.task.run(inputs, ctx))
          : node.task.run(inputs, ctx);
      const returned = crash ? inAttempt(crash, call) : call();
      // A synchronous result needs no race: nothing can cancel it any more. Any thenable is awaited
      // (a query builder, a Promise of another realm), as an interceptor's `next()` awaits it.
      if (isThenable(returned)) {
        const pending = Promise.resolve(returned);
        try {
          try {
            output = await Promise.race(crash ? [pending, aborted, crash.failed] : [pending, aborted]);
          } finally {
            endedAt = performance.now();
          }
          // A promise the task rejected and never awaited is reported once the microtasks drain:
          // one turn of the loop lets it fail this attempt rather than the flow after it.
          if (crash) await setImmediate();
          if (crash?.error) throw crash.error;
        } catch (error) {
          // The attempt is over at its signal, whether or not the task listens to it.
          if (signal.aborted && error === signal.reason) scope.abandoned.abandon(node.id, attempt, pending, ctx);
          throw error;
        }
      } else {
        output = returned;
        endedAt = performance.now();
        // As above: a promise it rejected (`items.forEach(async ...)`) is reported only once the
        // microtasks drain, which was after its run's record was sent; one turn lets it reach this
        // attempt while it is open (it fails, or under a warn mode its result is not cached).
        // Only where the result is kept: with no cache entry and no run to record, a rejection it
        // left reaches the flow as before, and a task of a run that keeps nothing pays no turn.
        if (crash && task.keepsResult) await setImmediate();
        if (crash?.error) throw crash.error; // also process.exit() called and its throw caught by the task
      }
      const late = overran?.(endedAt!);
      if (late) throw late;
    } catch (error) {
      // So is a throw past the timeout: what the attempt throws after its timeout is dropped.
      const late = signal.aborted && error === signal.reason ? undefined : overran?.(endedAt ?? performance.now());
      if (late) throw late;
      // Read from the stack only now, when an attempt failed: a stack's text costs its making.
      // isError, not instanceof: an Error made in another realm (a `vm` context) keeps its message and stack.
      if (isError(error) && node.task.errorSource && !(signal.aborted && error === signal.reason)) noteErrorSource(error, node.task.errorSource(error));
      if (isError(error) || isStopReason(error)) throw error;
      // Its preview is masked before it is cut: a secret cut in two would not be recognised after.
      throw new NonErrorThrownError(node.id, error, (text) => scope.shared.secrets.mask(text));
    }
    const checked = checkOutputs(node, output, scope.shared.secrets);
    const value = checked instanceof Promise ? await checked : checked;
    const listed = ctx.checkFolderNames(value);
    if (listed) task.folderListings = await listed;
    return value;
  } finally {
    cleanup?.();
  }
}

/**
 * The attempt's code left a rejection unhandled and Node was told only to warn of it: the task
 * goes on, but its result is not cached (run-task.ts), its run says why (UNHANDLED_REJECTION_TAG),
 * and, unless under `--unhandled-rejections=none`, a warning names the task, which Node's does not.
 */
function leftUnhandled(scope: AttemptScope, task: TaskAttempts, attempt: number, reason: unknown, say: boolean): void {
  (task.rejectionsLeft ??= new Set()).add(attempt);
  const { name, message } = toErrorInfo(reason);
  const what = `${name}: ${message}`.slice(0, 1000);
  task.recorder.tag(UNHANDLED_REJECTION_TAG, `attempt ${attempt}: ${what}`);
  if (!say) return;
  const text =
    `its code left a promise rejection unhandled (attempt ${attempt}): ${what}. ` +
    `--unhandled-rejections lets the task go on, as Node does, but its result is not cached: the next run computes it again. ` +
    `Await the promises the task starts (\`await Promise.all(items.map(async ...))\`, not \`items.forEach(async ...)\`), or handle them with .catch().`;
  const { shared } = scope;
  shared.emit({ type: "log", level: "warn", runId: shared.flowRunId, task: task.node.id, message: text, time: Date.now() });
}

/** A promise that rejects with the signal's reason when it aborts (and is never an unhandled rejection). */
export function rejectOnAbort(signal: AbortSignal): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  p.catch(() => {}); // observed through Promise.race; never an unhandled rejection
  return p;
}

function isRetryable(error: unknown, flowSignal: AbortSignal): boolean {
  if (flowSignal.aborted) return false;
  if (isStopReason(error) || CancelledError.is(error)) return false;
  return isRetryableError(error);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as { then?: unknown }).then === "function";
}
