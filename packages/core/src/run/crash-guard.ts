/**
 * What an error that escapes every handler does while a flow runs in this process. Node's
 * default ends the process at once (an uncaught exception, an unhandled rejection), leaving
 * the runs RUNNING with no word of why, and a task's `process.exit()` does the same. While at
 * least one flow run is open, this module listens for both events and stands in for
 * `process.exit`: an error raised in the async context of a task's attempt (AsyncLocalStorage,
 * which follows it into the promises, timers and callbacks that code starts) fails that task
 * and stops its flow as failed; one raised elsewhere stops every open flow as failed, unless
 * the app listens for it itself (then it is the app's, as it was); once those runs are recorded
 * (waited for up to {@link CLOSING_WAIT_MS}) the process ends as Node would have: the error's stack
 * on stderr, exit code 1 (an app's supervisor relies on it). A rejection, from a task or not,
 * fails nothing when Node was told only to warn (`--unhandled-rejections=warn|none|warn-with-error-code`):
 * it does what Node does in that mode; a task's own is also said naming the task (not under
 * `none`) and keeps that attempt's result out of the cache. When the last run ends, the
 * listeners and `process.exit` are as they were. The state is the process's, not a run's: the
 * events and `process.exit` are one per process.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { inspect } from "node:util";
import { ProcessCrashError, TaskExitError } from "../errors.ts";

/**
 * One attempt of a task, as the code it runs sees it (its async context): where an error
 * escaping that code goes. `failed` rejects with the error, raced against the attempt.
 */
export class AttemptCrash {
  /** The error that failed the attempt, once one did. */
  error: Error | undefined;
  private rejectFailed: ((error: Error) => void) | undefined;
  private failedOnce: Promise<never> | undefined;

  /** Whether the attempt's code left a rejection unhandled that Node was told only to warn of (see {@link leftUnhandled}). */
  private leftOne = false;

  constructor(
    readonly nodeId: string,
    /** The flow's signal: which open run the attempt belongs to. */
    readonly flow: AbortSignal,
    /**
     * Told of the first rejection the attempt's code leaves unhandled under
     * `--unhandled-rejections=warn|none|warn-with-error-code`, and whether to say it (not under `none`).
     */
    private readonly onLeftUnhandled?: (reason: unknown, say: boolean) => void,
  ) {}

  /**
   * A rejection of the attempt's code that nothing handled, while Node was told only to warn: the
   * task goes on, as Node lets it, but what it returns was made beside work that failed (an upload
   * in `items.forEach(async ...)`), so it is not to be cached as if it were whole. Told once per attempt.
   */
  leftUnhandled(reason: unknown, say: boolean): void {
    if (this.leftOne) return;
    this.leftOne = true;
    this.onLeftUnhandled?.(reason, say);
  }

  /**
   * Rejects with {@link error}; observed through the attempt's race, never an unhandled rejection.
   * Made when first asked for: an attempt whose code returns at once never races, and a promise
   * fewer a task counts while promise hooks are on (the async context this guard needs).
   */
  get failed(): Promise<never> {
    if (!this.failedOnce) {
      const error = this.error;
      this.failedOnce = error ? Promise.reject(error) : new Promise<never>((_, reject) => (this.rejectFailed = reject));
      this.failedOnce.catch(() => {});
    }
    return this.failedOnce;
  }

  /** Fails the attempt with `error`, if nothing failed it yet. */
  fail(error: Error): void {
    if (this.error) return;
    this.error = error;
    this.rejectFailed?.(error);
  }
}

const attempts = new AsyncLocalStorage<AttemptCrash>();
/** The open flow runs, by their signal: what stops each one as failed, and whether an error no task raised then ends the process. */
const open = new Map<AbortSignal, { stop: (error: Error) => void; endsProcess: boolean }>();
/** Told each time a watch ends: what waits for the runs a crash stopped. */
const watchEnded = new Set<() => void>();
/**
 * How long the process waits, after an error no task raised, for the runs it stopped to be
 * recorded before it ends: their tasks are cancelled and an MLflow server's requests are hurried
 * (one short try each), so a run closes in seconds; one that does not is left RUNNING, for the
 * next command's closer, as when the process is killed.
 */
export const CLOSING_WAIT_MS = 30_000;
/** Set by the `cairn` command, which ends the process itself (its summary first): see {@link leaveCrashExitToCommand}. */
let exitLeftToCommand = false;
/** Set once an error no task raised is ending the process: a second one does not end it again. */
let ending = false;
/** `process.exit` as the first run found it (Node's, or a test runner's): kept once for the process. */
let exitFirst: typeof process.exit | undefined;
/** `process.exit` as this watch found it: what a call outside a task is passed to. */
let exitBefore: typeof process.exit | undefined;
/** Marks Cairn's `process.exit`, so that it is never saved as the one to pass calls to. */
const CAIRN_EXIT = Symbol("cairn.exitInTask");
/** Whether a call is being passed on to {@link exitBefore} now (a wrapper that calls back in is then passed to {@link exitFirst}). */
let passingExit = false;

/** Whether the flow run of `flow` (its signal) is watched: its attempts then run {@link inAttempt}. */
export function isWatched(flow: AbortSignal): boolean {
  return open.has(flow);
}

/** Runs `fn` (a task's code) so that what escapes it, now or later, is known as `crash`'s. */
export function inAttempt<T>(crash: AttemptCrash, fn: () => T): T {
  return attempts.run(crash, fn);
}

/**
 * Watches for crashes while the flow run of `flow` (its signal) is open: `stop` is given the
 * error that stops it. `endsProcess`: an error no task raised (and no listener of the app's
 * takes) then ends the process once the runs are recorded, as Node would have; a worker's job
 * leaves that to the worker (its `crashed` promise). Returns what ends the watch; the last one
 * ended puts everything back.
 */
export function watchCrashes(flow: AbortSignal, stop: (error: Error) => void, { endsProcess }: { endsProcess: boolean }): () => void {
  if (open.size === 0) install();
  open.set(flow, { stop, endsProcess });
  return () => {
    if (!open.delete(flow)) return;
    for (const told of [...watchEnded]) told();
    if (open.size === 0) uninstall();
  };
}

/**
 * @internal For the `cairn` command only: after an error no task raised, it prints the runs'
 * summary and exits 1 itself, so the guard stops the runs and leaves the process to it.
 */
export function leaveCrashExitToCommand(): void {
  exitLeftToCommand = true;
}

function install(): void {
  process.on("uncaughtException", onUncaughtException);
  process.on("unhandledRejection", onUnhandledRejection);
  const current = process.exit;
  if (!isCairnExit(current)) exitFirst ??= current;
  exitBefore = isCairnExit(current) ? exitFirst : current;
  process.exit = exitInTask;
  rejections = unhandledRejectionsMode();
}

function isCairnExit(exit: typeof process.exit): boolean {
  return (exit as { [CAIRN_EXIT]?: true })[CAIRN_EXIT] === true;
}

function uninstall(): void {
  process.off("uncaughtException", onUncaughtException);
  process.off("unhandledRejection", onUnhandledRejection);
  // Replaced again since (a test runner's, an app's wrapper): left as it is; ours passes every call on while no run is open.
  if (isCairnExit(process.exit) && exitBefore) process.exit = exitBefore;
  attempts.disable();
}

/** The attempt of an open run whose code is running now, if any. */
function currentAttempt(): AttemptCrash | undefined {
  const crash = attempts.getStore();
  return crash && open.has(crash.flow) ? crash : undefined;
}

/**
 * `process.exit` while a run is open: called from a task's code, it throws a TaskExitError
 * there and fails the task with it (as test runners refuse it), since the runs could not be
 * recorded as the process ends; called from anywhere else, it exits as before.
 */
const exitInTask = function exit(code?: string | number | null): never {
  const crash = currentAttempt();
  if (!crash) return passExit(code);
  const error = new TaskExitError(crash.nodeId, code);
  crash.fail(error);
  throw error;
} as typeof process.exit;
Object.defineProperty(exitInTask, CAIRN_EXIT, { value: true });

/**
 * Passes an exit outside any task on. A wrapper of `process.exit` that an earlier run left in place
 * (it was set during that run, so it calls into this one) was saved as {@link exitBefore} by the
 * next run: its call back into this one goes to the first `process.exit` seen, not round again
 * (that was a RangeError, and the process did not exit).
 */
function passExit(code?: string | number | null): never {
  if (passingExit) return exitFirst!.call(process, code);
  passingExit = true;
  try {
    return exitBefore!.call(process, code);
  } finally {
    passingExit = false;
  }
}

function onUncaughtException(error: unknown, origin: NodeJS.UncaughtExceptionOrigin): void {
  // With --unhandled-rejections=strict a rejection arrives here, named by its origin.
  crashed(origin === "unhandledRejection" ? "unhandled-rejection" : "uncaught-exception", error, () => process.listenerCount("uncaughtException") > 1);
}

/** What Node does with an unhandled rejection (`--unhandled-rejections`), as the watch began. */
let rejections: RejectionsMode = "throw";
type RejectionsMode = "throw" | "strict" | "warn" | "none" | "warn-with-error-code";
const REJECTIONS_MODES: readonly string[] = ["throw", "strict", "warn", "none", "warn-with-error-code"];

/** `--unhandled-rejections` as given in NODE_OPTIONS or on the command line (which wins), else Node's default. */
function unhandledRejectionsMode(): RejectionsMode {
  const args = [...(process.env.NODE_OPTIONS ?? "").split(/\s+/), ...process.execArgv];
  let mode: RejectionsMode = "throw";
  args.forEach((arg, i) => {
    const value = arg === "--unhandled-rejections" ? args[i + 1] : arg.startsWith("--unhandled-rejections=") ? arg.slice(23) : undefined;
    if (value !== undefined && REJECTIONS_MODES.includes(value)) mode = value as RejectionsMode;
  });
  return mode;
}

function onUnhandledRejection(reason: unknown): void {
  const appRejections = process.listenerCount("unhandledRejection") > 1;
  const appExceptions = process.listenerCount("uncaughtException") > 1;
  // warn, none, warn-with-error-code: Node would not end the process for a rejection, nor stop the
  // code that left it, so nothing fails, a task's own rejection no more than a stray one: the
  // process was told to go on. Node warns itself in `warn` mode (listener or not); in
  // warn-with-error-code it warns and sets the exit code only when no listener took the
  // rejection: ours does, so that part is done here; `none` is silent. A task's own still keeps
  // its result out of the cache, and is said naming the task (Node's warning names none).
  if (rejections === "warn" || rejections === "none" || rejections === "warn-with-error-code") {
    if (rejections === "warn-with-error-code" && !appRejections) warnUnhandled(reason);
    currentAttempt()?.leftUnhandled(reason, rejections !== "none");
    return;
  }
  crashed("unhandled-rejection", reason, () => appRejections || appExceptions);
  // Without a rejection listener of its own, Node raises a rejection as an uncaught exception:
  // an app that listens only for those still gets it there, as it would without Cairn.
  if (rejections === "throw" && !appRejections && appExceptions) passToApp(reason);
}

/** As Node's warn-with-error-code does for a rejection nothing handled: a warning, and exit code 1. */
function warnUnhandled(reason: unknown): void {
  process.emitWarning(`Unhandled promise rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`, "UnhandledPromiseRejectionWarning");
  process.exitCode = 1;
}

/**
 * Calls the app's uncaughtException listeners with the rejection, origin "unhandledRejection", as
 * Node would. Called here, not thrown from this listener: a throw stopped Node's loop over the
 * tick's pending rejections, so an app saw the first of two and never the second.
 */
function passToApp(reason: unknown): void {
  for (const listener of process.rawListeners("uncaughtException") as NodeJS.UncaughtExceptionListener[]) {
    if (listener !== onUncaughtException) listener.call(process, reason as Error, "unhandledRejection");
  }
}

/**
 * An error escaped: the attempt whose code it came from fails with it and its flow stops;
 * without one, every open flow stops, unless `appTakesIt()` (the app has its own listener).
 */
function crashed(how: ProcessCrashError["how"], error: unknown, appTakesIt: () => boolean): void {
  const attempt = currentAttempt();
  if (attempt) {
    // A process.exit() refused outside the attempt's own promise (in a timer) arrives as itself.
    const crash = TaskExitError.is(error) ? (error as TaskExitError) : new ProcessCrashError(how, attempt.nodeId, error);
    attempt.fail(crash);
    open.get(attempt.flow)?.stop(crash);
    return;
  }
  if (appTakesIt()) return;
  const crash = new ProcessCrashError(how, undefined, error);
  const stopped = [...open];
  for (const [, watch] of stopped) watch.stop(crash);
  if (ending || exitLeftToCommand || !stopped.some(([, watch]) => watch.endsProcess)) return;
  ending = true;
  void endProcess(how, error, stopped.map(([flow]) => flow));
}

/**
 * What Node would have done with the error, once the runs it stopped are recorded: Node ends the
 * process at once (stack on stderr, exit code 1), which left the runs RUNNING; swallowing it left
 * an app going on with exit code 0, its supervisor none the wiser. Said at once, so that it is
 * on stderr even if the runs' closing outlasts the wait; the exit code is set at once too, for a
 * process that ends by itself meanwhile.
 */
async function endProcess(how: ProcessCrashError["how"], error: unknown, runs: AbortSignal[]): Promise<void> {
  process.stderr.write(`${fatalText(how, error)}\n`);
  process.exitCode = 1;
  await new Promise<void>((resolve) => {
    const check = () => {
      if (runs.some((flow) => open.has(flow))) return;
      watchEnded.delete(check);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      watchEnded.delete(check);
      resolve();
    }, CLOSING_WAIT_MS).unref();
    watchEnded.add(check);
    check();
  });
  // After the stopped runs' own ends (their results reach the app first, as in the same tick).
  setImmediate(() => process.exit(1));
}

/** The error as Node prints a fatal one: an Error with its stack (util.inspect, as Node does), else Node's words for the value. */
function fatalText(how: ProcessCrashError["how"], error: unknown): string {
  if (error instanceof Error) return inspect(error);
  if (how === "uncaught-exception") return `Uncaught ${inspect(error)}`;
  return (
    "[UnhandledPromiseRejection: This error originated either by throwing inside of an async function without a catch block, " +
    `or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "${inspect(error)}".] { code: 'ERR_UNHANDLED_REJECTION' }`
  );
}
