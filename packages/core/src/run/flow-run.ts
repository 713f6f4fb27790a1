import { availableParallelism, hostname } from "node:os";
import { execFile } from "node:child_process";
import { dirname, resolve as resolvePath } from "node:path";
import type { FlowDefinition, TaskDefinition } from "../definition/flow-definition.ts";
import { validateWithSchema, knownKeys } from "../definition/schema.ts";
import { assertSerializable, isSerializableValue } from "../definition/serializable.ts";
import { ArtifactMismatchError, CairnError, CancelledError, cancelReason, MetricError, OptionError, ParamError, TrackingError } from "../errors.ts";
import { buildFlowGraph, type FlowGraph } from "../graph/flow-graph.ts";
import { type ExecutionSettings, type FailurePolicy, FlowExecution } from "../scheduler/flow-execution.ts";
import type { TaskResult } from "./task-result.ts";
import { type CacheBackendError, CacheStore } from "@cairn/cache";
import { describeTracker, foreignWarning, isStoreDown, localArtifacts, storeDownWarning, TaskCache } from "../caching/task-cache.ts";
import { checkAhead } from "../caching/plan.ts";
import { forcedItems, forcedNodes } from "../caching/rerun.ts";
import { toGraphJson, toMermaid } from "../graph/render.ts";
import { writeRunFiles } from "../tracking/run-files.ts";
import { isArtifact } from "../definition/artifact.ts";
import { forEachRef, isPlainObject } from "../definition/ref.ts";
import { NullTracker } from "../tracking/null-tracker.ts";
import { EXPERIMENT_NAME_MAX_LENGTH, experimentNameTooLong } from "../tracking/experiment-name.ts";
import { resolveTracker } from "../tracking/resolve-tracker.ts";
import { closeAbandonedRuns, describeAbandonedRuns } from "../tracking/abandoned-runs.ts";
import type { ExperimentRecord, MetricPoint, RunRecord, Tracker } from "../tracking/tracker.ts";
import { type ErrorInfo, type FlowEvent, type FlowStatus, type RunEvent, toErrorInfo } from "./events.ts";
import { SecretRegistry } from "./secrets.ts";
import { booleanFromEnv, checkKnownKeys, closestName } from "../internal.ts";
import { StopReason } from "../pipeline/stop.ts";
import { watchCrashes } from "./crash-guard.ts";
import { DURATION_TAG, ERROR_TAG_LIMIT, KIND_TAG, fitTag, flowErrorTags, flowTaskCounts } from "../pipeline/task-run.ts";
import { cairnBuild, VERSION_TAG } from "../cairn-build.ts";
import { rejectOnAbort } from "../pipeline/attempts.ts";
import type { TaskInterceptor } from "../pipeline/intercept.ts";
import { openQueue, type TaskDispatcher } from "../pipeline/dispatch.ts";
import { unsaidMisspeltVariables } from "./env-names.ts";
import { largeOutputsFromEnv } from "../pipeline/large-output.ts";
import { processEnvReaderWarnings } from "./env-readers.ts";
import { onAbort } from "./abort-listeners.ts";
import { ASK_GIT, gitHeadOf } from "./git-head.ts";
import { clipMessage } from "./clip-message.ts";
import { userName } from "./user-name.ts";
import { rootProblem, rootRefusal, type RootUse } from "../state-root.ts";

/** Options of `flow.run()`; every one is checked where it enters. */
export interface RunOptions {
  /** Flow params; validated (and defaulted) by the flow's params schema. */
  params?: Record<string, unknown> | undefined;
  /** Tasks running at once across the flow. @default 4 (or the number of CPUs if larger) */
  concurrency?: number | undefined;
  /** Limits of named pools, e.g. `{ gpu: 1 }`. A task in an unlisted pool gets a limit of 1. */
  pools?: Record<string, number> | undefined;
  /** `fail-fast` stops the flow at the first failure; `continue` lets independent branches finish. @default "fail-fast" */
  failurePolicy?: FailurePolicy | undefined;
  /** Aborting it cancels the run. */
  signal?: AbortSignal | undefined;
  /** Where runs are recorded: a Tracker, `false` for nowhere, or undefined to follow MLFLOW_TRACKING_URI (the embedded store in `.cairn/` when unset). */
  tracker?: Tracker | false | undefined;
  /** Experiment name. @default MLFLOW_EXPERIMENT_NAME, else the flow's name */
  experiment?: string | undefined;
  /** Secrets by name, in addition to the environment (e.g. read from `--secrets FILE`). */
  secrets?: Record<string, string> | undefined;
  /** Folder of Cairn's local state (embedded store, work files). @default ".cairn" in the working directory */
  root?: string | undefined;
  /** Environment to read MLflow and Cairn variables from. @default process.env */
  env?: NodeJS.ProcessEnv | undefined;
  /**
   * The cache: `false` turns it off (nothing looked up, nothing stored). By default it is on,
   * in the embedded store under `root`, or at CAIRN_CACHE_URL (redis://, postgres://).
   */
  cache?: boolean | CacheRunOptions | undefined;
  /**
   * Hooks around every attempt of every task, the first outermost: each gets the attempt
   * (node id, task name, kind, attempt, inputs, ctx) and `next`, and returns the output.
   * @example
   * interceptors: [async (call, next) => { const t = performance.now(); try { return await next(); } finally { log(call.nodeId, performance.now() - t); } }]
   */
  interceptors?: readonly TaskInterceptor[] | undefined;
  /**
   * The flow's file, recorded as MLflow's `mlflow.source.name` on the flow run and every task
   * run (the CLI passes the file it ran); its git checkout gives `mlflow.source.git.commit`.
   * @default process.argv[1], the script Node started
   */
  source?: string | undefined;
  /**
   * Runs each task that misses the cache somewhere else (worker processes), through this
   * dispatcher; the scheduler, the cache lookups and the flow run stay in this process.
   * `@cairn/worker`'s `queueDispatcher(url)` sends them to a Redis queue (`cairn run --queue`).
   */
  dispatcher?: TaskDispatcher | undefined;
  /**
   * Runs each task that misses the cache on `cairn worker` processes that take it from this
   * queue (`redis://host:6379`, as `cairn run --queue`): the run opens the queue's dispatcher
   * and closes it when it is over. Needs the queue package registered for the URL's scheme
   * ("cairn-dag" registers @cairn/worker's); not with `dispatcher`.
   */
  queue?: string | undefined;
  /**
   * Called once every task's run is recorded, before the flow run ends, with the status it is
   * about to end with: what it writes to the flow run (the CLI's `cairn/report.html`) is there
   * when the run is seen ended. Not called when tracking is off. It may be async (the run waits
   * for its promise) or not; a hook that throws or rejects is a warning (a `log` event), not a
   * failure of the flow.
   */
  beforeEnd?: ((run: EndingFlowRun) => unknown) | undefined;
  /** @internal See ROOT_CHECKED. */
  [ROOT_CHECKED]?: string;
}

/**
 * @internal A run option: the absolute root `checkRunRoot` found fit for the run's options before
 * the run was asked for, which the run then does not probe again (one probe file, not two).
 * `cairn run` checks `--root` before it loads the flow, so that a bad one is said before a broken
 * flow file is, and before any code of the flow runs. `Symbol.for`, as HOLD_WORK.
 */
export const ROOT_CHECKED: unique symbol = Symbol.for("cairn.rootChecked") as never;

/** What {@link RunOptions.beforeEnd} is told. */
export interface EndingFlowRun {
  readonly runId: string;
  readonly experimentId: string;
  readonly tracker: Tracker;
  /** Aborts when the run is cancelled while the hook runs (the run then ends without waiting for it). */
  readonly signal: AbortSignal;
  /**
   * `text` with every secret known to the run now replaced by `***`, in the forms `ctx.mask`
   * knows: for what the hook writes to the run. A secret first read from the environment during
   * the run is known now, but was not when the run's params were recorded, so what the hook
   * reads back from the tracker may hold it.
   */
  readonly mask: (text: string) => string;
  /** The status the flow run ends with, and when (epoch ms): its end time as recorded. */
  readonly status: "FINISHED" | "FAILED" | "KILLED";
  readonly endTime: number;
  /** Its duration in ms, on the monotonic clock (the flow event's durationMs): right when the wall clock stepped meanwhile, as `endTime - startTime` then is not. */
  readonly durationMs: number;
  /** The run's cache store, still open, when the cache was on. */
  readonly cacheStore?: CacheStore;
  /** The source runs of this run's hits as the run read them (to check them), by id, when the cache was on. */
  readonly sourceRuns?: ReadonlyMap<string, RunRecord>;
  /**
   * The runs of this run's cache hits as it recorded them, with a server and the cache on: each
   * whole (created FINISHED with every tag, and written by nothing else), so a reader of the
   * run's task runs need not ask the tracker for them (`RunFilter.withoutTag`: `cairn.status`
   * `cached`). Absent when one hit's run is not known whole (its record failed, a long tag).
   */
  readonly hits?: readonly RunRecord[];
  /**
   * Every task run of this flow run is one of `hits`: each task was a cache hit, none ran, failed
   * or was skipped, and the flow has no map or sweep (whose group runs are not hits). Nothing
   * but this run knew the flow run's id while its tasks were recorded, so a reader needs no search.
   */
  readonly onlyHits?: boolean;
  /** The text of the run's `cairn/graph.json` as it was logged at the run's start; absent when it could not be logged. */
  readonly graph?: string;
  /**
   * With a server: the flow run as read once the run had recorded what it writes to it before
   * its end (its params, its outputs and their numbers as metrics), while the hits' runs were
   * still being written; its status still RUNNING. The run writes nothing more to it but its end,
   * so a report made before anything else is written need not read it again
   * (`logReport(run, { flowRunAsRead: true })`, as `cairn run` does); what this hook writes to
   * the flow run itself is not in it. Absent when it could not be read.
   */
  readonly flowRun?: RunRecord;
}

/** Cache settings of one run. */
export interface CacheRunOptions {
  /** Store URL: redis://..., postgres://...; the embedded store when absent. @default CAIRN_CACHE_URL */
  url?: string | undefined;
  /** An open store to use instead of `url`. */
  store?: CacheStore | undefined;
  /** Look nothing up: every task runs, and results are stored again. */
  refresh?: boolean | undefined;
  /** These tasks (node ids or task names) and their dependants run whatever the cache holds. */
  rerun?: string[] | undefined;
  /**
   * When a shared store (redis, postgres) does not answer (after retrying for about a second and
   * a half): `false` goes on without it, with one warning (no leases; lookups and results go to
   * the tracker's index alone, with MLflow, else lookups miss and nothing is stored); `true` fails with `CacheBackendError` instead: the run, when the store is unreachable
   * at the start, else the task that met the failure.
   * @default CAIRN_CACHE_STRICT=1, else false
   */
  strict?: boolean | undefined;
}

/** What `wait()` resolves to. */
export interface FlowResult<Outputs = Record<string, unknown>> {
  /** The flow run's id; `""` for a run cancelled while it started, before its flow run was created (nothing recorded). */
  runId: string;
  status: Exclude<FlowStatus, "running">;
  /** Flow outputs; only when the flow succeeded. */
  outputs?: Outputs;
  /**
   * The flow outputs whose artifacts could not be made local files here (a download that failed,
   * or whose digest was not the recorded one), by output name: why. Each is handed over as
   * recorded, its artifacts' `path` naming no file of this machine; absent when there are none.
   */
  notDownloaded?: Record<string, string>;
  /** Per task, by node id. */
  tasks: Record<string, TaskResult>;
  /**
   * From the flow run's start to the end time its record is given (once its tasks and outputs are
   * done, before `beforeEnd`'s report): what `cairn runs`, `cairn show` and the report show too.
   */
  durationMs: number;
  /** Why the flow did not succeed. */
  error?: ErrorInfo;
}

/** The flow did not succeed; raised by `run.outputs()`. */
export class FlowFailedError extends CairnError {
  static override readonly code: string = "CAIRN_FLOW_FAILED";
  override name = "FlowFailedError";
  constructor(readonly result: FlowResult<unknown>) {
    const failed = Object.values(result.tasks).filter((t) => t.status === "failed");
    super(
      `Flow run ${result.runId} ${result.status}` +
        (failed.length ? `: ${failed.map((t) => `task "${t.task}" failed: ${t.error?.message}`).join("; ")}` : "."),
    );
  }
}

/**
 * Called with every event; what it throws, or a promise it returns rejects with, is a warning (a
 * `log` event), once. Typed `void`, not `void | Promise`, so that any function may be one (`(e) => events.push(e)`).
 */
type Listener = (event: RunEvent) => void;

/** A running (or finished) flow: status, events, cancel, results. */
export class FlowRun<Outputs = Record<string, unknown>> {
  private readonly listeners = new Set<Listener>();
  /** Listeners that threw or rejected, said once each. */
  private readonly failedListeners = new WeakSet<Listener>();
  private readonly history: RunEvent[] = [];
  /** The `events()` iterators open now. */
  private readers = 0;
  private status_: FlowStatus = "running";
  private readonly result: Promise<FlowResult<Outputs>>;
  private readonly started = performance.now();

  /** @internal Use `flow.run()`. */
  constructor(
    /** The flow run's id (the parent run in the tracker); `""` for a run cancelled before its flow run was created. */
    readonly runId: string,
    /** The flow's name. */
    readonly flowName: string,
    /** The tracker this run records to. */
    readonly tracker: Tracker,
    /** Undefined for a run cancelled while it started, before its flow run was created: it has no tasks. */
    private readonly execution: FlowExecution | undefined,
    body: (emit: Listener) => Promise<FlowResult<Outputs>>,
    /** Applied to every event before anyone sees it: the run's secrets masked. */
    private readonly mask: (event: RunEvent) => RunEvent = (event) => event,
    /** Told of every `cancel()`, before the tasks are: the run's requests are hurried from then on. */
    private readonly cancelling: () => void = () => {},
  ) {
    this.result = body((event) => this.emit(event)).then(
      (r) => {
        this.status_ = r.status;
        return r;
      },
      (thrown: unknown) => this.endBroken(thrown),
    );
  }

  /**
   * The body rejected: a bug of Cairn's, or an option value no check caught. The run still ends,
   * failed, as a failed task would end it (its tasks stopped, its flow run closed FAILED, a last
   * `flow` event, so that `events()` ends), rather than stay "running" for good with the rejection
   * unhandled in the app's process.
   */
  private async endBroken(thrown: unknown): Promise<FlowResult<Outputs>> {
    const cause = toErrorInfo(thrown);
    try {
      this.execution?.cancel(thrown);
      await this.execution?.done;
      await this.execution?.pipeline.drain();
    } catch {
      // The tasks' runs are closed as far as they can be; the flow run is closed below whatever happened to them.
    }
    const closed = await this.tracker.endRun(this.runId, "FAILED").then(
      () => this.tracker.flush().then(() => true),
      () => false,
    ).catch(() => false);
    const error: ErrorInfo = {
      name: cause.name,
      message:
        `Flow run ${this.runId} of "${this.flowName}" stopped on an error outside its tasks: ${cause.message}. ` +
        (closed ? "The flow run is recorded FAILED. " : `The flow run could not be closed either: ${this.tracker.uri} may show it RUNNING. `) +
        `Unless this comes from a value passed to run() (an option, a hook), it is a bug of Cairn's: please report it with this message.`,
    };
    const durationMs = Math.round(performance.now() - this.started);
    const last = this.mask({ type: "flow", status: "failed", runId: this.runId, flow: this.flowName, durationMs, time: Date.now(), error }) as FlowEvent;
    // Said once: a body that failed after its last event has told the run's end already.
    if (this.status_ === "running") this.deliver(last);
    this.status_ = "failed";
    return { runId: this.runId, status: "failed", tasks: this.tasks(), durationMs, error: last.error ?? error };
  }

  /** Current status of the flow. */
  status(): FlowStatus {
    return this.status_;
  }

  /** Current state of every task, by node id. */
  tasks(): Record<string, TaskResult> {
    return Object.fromEntries([...(this.execution?.results ?? [])].map(([id, r]) => [id, { ...r }]));
  }

  /**
   * Attempts abandoned at their timeout or at cancel, because the task did not stop when
   * `ctx.signal` aborted, whose work is still going on (the flow did not wait for them, and
   * ignores their results). A process that wants to exit once the run is over need not wait
   * for them either: the CLI does not. `killGraceMs` is set for a process task's attempt given
   * up at its timeout whose process group is still being ended (SIGKILL that long after
   * SIGTERM); when the flow stops, it waits for such groups instead, so none is left here.
   */
  abandoned(): Array<{ task: string; attempt: number; killGraceMs?: number }> {
    return this.execution?.pipeline.abandoned() ?? [];
  }

  /** Resolves when the flow has finished and every run is closed; never rejects for task failures. */
  wait(): Promise<FlowResult<Outputs>> {
    return this.result;
  }

  /** The flow's outputs; rejects with FlowFailedError when the flow did not succeed. */
  async outputs(): Promise<Outputs> {
    const r = await this.result;
    if (r.status !== "succeeded") throw new FlowFailedError(r);
    return r.outputs as Outputs;
  }

  /** Cancels the run; running tasks see `ctx.signal` abort. Resolves like `wait()`. */
  cancel(reason?: unknown): Promise<FlowResult<Outputs>> {
    this.cancelling();
    this.execution?.cancel(reason);
    return this.result;
  }

  /** Calls `listener` on every event from now on; returns the unsubscribe function. */
  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Every event of the run, from the first, until the flow finishes; `log` events from the
   * first `next()` on (log lines are not kept for later readers: a task's whole output would stay
   * in memory for the run's life). Use `on()` before the first event to get every log line.
   */
  async *events(): AsyncGenerator<RunEvent> {
    let index = 0;
    let wake: (() => void) | undefined;
    const off = this.on(() => wake?.());
    this.readers++;
    try {
      for (;;) {
        while (index < this.history.length) yield this.history[index++]!;
        if (this.status_ !== "running" && index >= this.history.length) return;
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      this.readers--;
      off();
    }
  }

  /** The one door of every event (task, flow, log, warning): known secrets are masked here. */
  private emit(event: RunEvent): void {
    this.deliver(this.mask(event));
  }

  private deliver(event: RunEvent): void {
    if (event.type !== "log" || this.readers > 0) this.history.push(event);
    if (event.type === "flow" && event.status !== "running") this.status_ = event.status;
    for (const listener of this.listeners) {
      try {
        const returned: unknown = listener(event);
        // An async listener's rejection is caught as a throw is: unhandled, it would be one per
        // event, and end the app's process mid-run where no handler is installed.
        if (typeof (returned as PromiseLike<unknown> | undefined)?.then === "function") {
          Promise.resolve(returned).catch((error: unknown) => this.listenerFailed(listener, error));
        }
      } catch (error) {
        this.listenerFailed(listener, error);
      }
    }
  }

  /**
   * A listener threw or rejected: a listener's bug must not break the run, but it is said, once
   * per listener (it would fail on every event), after the event being delivered has reached
   * every listener.
   */
  private listenerFailed(listener: Listener, error: unknown): void {
    if (this.failedListeners.has(listener)) return;
    this.failedListeners.add(listener);
    const { name, message } = toErrorInfo(error);
    queueMicrotask(() => {
      const said = `A listener given to run.on() threw ${name}: ${message}. The run goes on: what a listener throws or rejects with is ignored ` +
        `(said once per listener). Catch inside the listener to handle its errors.`;
      // After the final flow event no event may follow (run.events() has ended, a consumer has
      // closed what it wrote to): said as a process warning instead.
      const event: RunEvent = { type: "log", level: "warn", runId: this.runId, message: said, time: Date.now() };
      if (this.status_ === "running") this.emit(event);
      else process.emitWarning((this.mask(event) as typeof event).message, "CairnListenerWarning");
    });
  }
}

/** An AbortSignal, also one of another copy of the class (a polyfill's): what the run uses of one is there. */
function isAbortSignal(value: unknown): value is AbortSignal {
  if (value instanceof AbortSignal) return true;
  const signal = value as Partial<AbortSignal> | null;
  return (
    typeof signal === "object" &&
    signal !== null &&
    typeof signal.aborted === "boolean" &&
    typeof signal.addEventListener === "function" &&
    typeof signal.removeEventListener === "function"
  );
}

/**
 * The warning for limits given to pools no task of the flow is in (a mistyped `--pool gpuu=3`
 * would otherwise leave `gpu` at its default of 1 in silence), or undefined.
 */
function unusedPoolNames(definition: FlowDefinition, given: readonly string[]): string | undefined {
  const used = [...new Set(definition.nodes.flatMap((node) => (node.task.pool ? [node.task.pool] : [])))];
  const unused = given.filter((name) => !used.includes(name));
  if (!unused.length) return undefined;
  const named = unused.map((name) => {
    const meant = closestName(name, used);
    return `"${name}"${meant ? ` (did you mean "${meant}"?)` : ""}`;
  });
  return `No task of flow "${definition.name}" is in pool ${named.join(", ")}: ${unused.length === 1 ? "its limit is" : "their limits are"} not used. ` +
    (used.length ? `Its tasks' pools: ${used.map((p) => `"${p}"`).join(", ")} (a pool given no limit has 1).` : "Its tasks name no pool (`.pool(name)`).");
}

/** The options of run(), to name a mistyped one. */
/**
 * How far a run's wall span may stray from its monotonic duration before the wall clock counts as
 * stepped during it: well above the drift of a clock NTP slews (≤ 0.5 ms a second), far below a step.
 */
const CLOCK_STEP_MS = 1000;

const RUN_OPTIONS = ["params", "concurrency", "pools", "failurePolicy", "signal", "tracker", "experiment", "secrets", "root", "env", "cache", "interceptors", "source", "dispatcher", "queue", "beforeEnd"] as const;
const CACHE_OPTIONS = ["url", "store", "refresh", "rerun", "strict"] as const;

/**
 * The options whose wrong value the run would meet only later, as a TypeError from deep inside
 * (or not at all: a misspelt option is otherwise silently ignored), checked where they enter.
 */
function checkRunOptions(options: unknown): asserts options is RunOptions {
  if (typeof options !== "object" || options === null || Array.isArray(options)) throw new OptionError("run() options", "an object ({ params, concurrency, ... })", options);
  checkKnownKeys(options, RUN_OPTIONS, "run()");
  const o = options as RunOptions;
  if (o.params !== undefined && !isObject(o.params)) throw new OptionError("params", "an object of param values by name", o.params);
  if (o.root !== undefined && (typeof o.root !== "string" || !o.root.trim())) throw new OptionError("root", "the path of Cairn's state folder (a string that is not blank)", o.root);
  if (o.experiment !== undefined && (typeof o.experiment !== "string" || !o.experiment.trim())) throw new OptionError("experiment", "an experiment name (a string that is not blank)", o.experiment);
  const tooLong = typeof o.experiment === "string" ? experimentNameTooLong(o.experiment) : undefined;
  if (tooLong) throw new OptionError("experiment", `an experiment name of at most ${EXPERIMENT_NAME_MAX_LENGTH} characters`, o.experiment, `Expected \`experiment\` to be an experiment name of at most ${EXPERIMENT_NAME_MAX_LENGTH} characters, got one ${tooLong}. Use a shorter name.`);
  if (o.env !== undefined && !isObject(o.env)) throw new OptionError("env", "an object of environment variables (like process.env)", o.env);
  if (o.secrets !== undefined) {
    if (!isObject(o.secrets)) throw new OptionError("secrets", "an object of secret values by name", o.secrets);
    for (const [name, value] of Object.entries(o.secrets)) if (typeof value !== "string") throw new OptionError(`secrets.${name}`, "a string", typeof value);
  }
  if (o.tracker !== undefined && o.tracker !== false && (!isObject(o.tracker) || typeof (o.tracker as Tracker).createRun !== "function")) {
    throw new OptionError("tracker", "false (tracking off) or a Tracker (MlflowTracker.fromEnv(), new LocalStore(...))", o.tracker);
  }
  // `cache` is checked by checkCacheOption, where run(), plan and explain all read it.
}

/** An object that is not an array: what an option of key-value pairs must be (a class instance too, e.g. a Tracker). */
function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates the options and the flow, opens the flow run in the tracker, and starts it. */
export async function startFlowRun<Outputs>(definition: FlowDefinition, options: RunOptions = {}): Promise<FlowRun<Outputs>> {
  checkRunOptions(options);
  if (options.queue === undefined) return startRun<Outputs>(definition, options);
  if (options.dispatcher !== undefined) throw new OptionError("queue", "unset when `dispatcher` is given (one or the other)", options.queue);
  const dispatcher = await openQueue(options.queue);
  try {
    const run = await startRun<Outputs>(definition, { ...options, dispatcher });
    // The queue's connections end with the run, so that an app's process can exit.
    void run.wait().finally(() => dispatcher.close().catch(() => {}));
    return run;
  } catch (error) {
    await dispatcher.close().catch(() => {});
    throw error;
  }
}

async function startRun<Outputs>(definition: FlowDefinition, options: RunOptions): Promise<FlowRun<Outputs>> {
  const env = options.env ?? process.env;
  const concurrency = options.concurrency ?? Math.max(4, availableParallelism());
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new OptionError("concurrency", "an integer >= 1", concurrency);
  const failurePolicy = options.failurePolicy ?? "fail-fast";
  if (failurePolicy !== "fail-fast" && failurePolicy !== "continue") {
    throw new OptionError("failurePolicy", `"fail-fast" or "continue"`, failurePolicy);
  }
  // No prototype: a pool may be named `constructor` or `__proto__` (the pool-name rule allows them), which `in` found on Object.prototype.
  const pools: Record<string, number> = Object.create(null) as Record<string, number>;
  if (options.pools !== undefined && !isPlainObject(options.pools)) {
    throw new OptionError("pools", "an object of limits by pool name, such as { gpu: 2 }", options.pools);
  }
  for (const [name, limit] of Object.entries(options.pools ?? {})) {
    if (!Number.isInteger(limit) || limit < 1) throw new OptionError(`pools.${name}`, "an integer >= 1", limit);
    pools[name] = limit;
  }
  const unusedPools = unusedPoolNames(definition, Object.keys(pools));
  // Checked here: the run reads it only once it has started, where a wrong value would be no one's error to catch.
  if (options.signal != null && !isAbortSignal(options.signal)) {
    throw new OptionError("signal", "an AbortSignal (an AbortController's `signal`, or AbortSignal.timeout(ms))", options.signal);
  }
  if (options.beforeEnd !== undefined && typeof options.beforeEnd !== "function") {
    throw new OptionError("beforeEnd", "a function (run) => Promise<void>", options.beforeEnd);
  }
  const interceptors = options.interceptors ?? [];
  if (!Array.isArray(interceptors) || interceptors.some((i) => typeof i !== "function")) {
    throw new OptionError("interceptors", "an array of functions (call, next) => Promise<output>", options.interceptors);
  }
  // Checked here, before anything is recorded: the pipeline reads it once the run is open.
  largeOutputsFromEnv(env);
  const graph = buildFlowGraph(definition);
  for (const node of definition.nodes) if (node.task.pool && !Object.hasOwn(pools, node.task.pool)) pools[node.task.pool] = 1;
  let emitToRun: Listener = () => {};
  // Made first: every error from here on is masked, and params are checked before anything is recorded.
  const secrets = new SecretRegistry(options.secrets, env, (message, task) =>
    emitToRun({ type: "log", level: "warn", runId: flowRunId, task, message, time: Date.now() }),
  );
  let flowRunId = "";
  const paramWarnings: string[] = [];
  const params = await validateParams(definition, options.params ?? {}, (message) => paramWarnings.push(message)).catch((e: unknown) => {
    throw secrets.maskThrown(e);
  });
  secrets.assertParamsClean(definition.name, params);

  if (options.source !== undefined && (typeof options.source !== "string" || !options.source)) {
    throw new OptionError("source", "the path of the flow's file", options.source);
  }
  // `git rev-parse` runs while the tracker opens; the null tracker drops tags: no git for it.
  const source = options.tracker === false ? undefined : sourceTags(options.source ?? process.argv[1], env);
  if (options.dispatcher !== undefined && (typeof options.dispatcher !== "object" || typeof options.dispatcher?.run !== "function")) {
    throw new OptionError("dispatcher", "a TaskDispatcher ({ open, run })", options.dispatcher);
  }
  // The cache's options, and the tasks `rerun` names, are checked before anything is recorded.
  const cacheOptions = checkCacheOption(options.cache);
  // A URL no store takes is refused here, not once the flow run is created beside the opening store:
  // a usage error records nothing (a store that does not answer is known only by connecting).
  if (cacheOptions && !cacheOptions.store) CacheStore.checkUrl(...storeUrlOf(cacheOptions, env));
  const forced = cacheOptions ? forcedNodes(graph, cacheOptions.rerun ?? [], cacheOptions.refresh === true, params) : undefined;
  const forcedItemIds = cacheOptions ? forcedItems(graph, cacheOptions.rerun ?? []) : undefined;
  // A cancel from here on (the run's signal, run.cancel(); not the stop on a failure) hurries the
  // tracker's requests (Tracker.hurry): one short try each, so that a server that does not answer
  // cannot hold the cancelled run for minutes.
  let opened: Tracker | undefined;
  let hurried: (() => void) | undefined;
  const hurry = () => void (opened && (hurried ??= opened.hurry?.() ?? (() => {})));
  let offHurry: (() => void) | undefined;
  try {
    if (options.signal) offHurry = onAbort(options.signal, hurry);
  } catch {
    // A signal that cannot be listened to fails the run where the run listens to it, once started.
  }
  /** Stops the tracker's warnings (a request retried for long) reaching this run's events. */
  let offWarnings: (() => void) | undefined;
  const settled = () => {
    offHurry?.();
    hurried?.();
    offWarnings?.();
  };
  let tracking: Awaited<ReturnType<typeof openTracking>>;
  try {
    tracking = await openTracking(definition, options, env, {
      opened: (t) => {
        opened = t;
        if (options.signal?.aborted) hurry();
      },
    });
  } catch (error) {
    settled();
    throw error;
  }
  const { root, tracker, experimentId } = tracking;
  // Cancelled before the flow run was asked for: nothing is recorded, nothing is left to close.
  if (options.signal?.aborted) {
    settled();
    return cancelledWhileStarting<Outputs>(definition.name, tracker, options.signal.reason, secrets);
  }
  // The tracker's credentials reach task processes (Tracker.childEnv): what those print of them is masked.
  secrets.maskCredentials(tracker.childEnv?.() ?? {});
  // And the dispatcher's (a queue URL's password), which a task on a worker may come across (its worker's command line, once).
  secrets.maskCredentials(options.dispatcher?.credentials?.() ?? {});
  // A dispatcher that cannot serve this run (no shared tracker) refuses it before anything is recorded.
  if (options.dispatcher) await options.dispatcher.open({ flowName: definition.name, tracker, env });
  // Runs a killed process left RUNNING are closed while this one opens (said once, as the first event).
  // What the closer could not close (a record it cannot read) is said with the run's first events.
  const closerWarnings: string[] = [];
  const abandoned = closeAbandonedRuns(tracker, [experimentId], { warn: (message) => closerWarnings.push(message) });
  // Every run of the flow, the flow's and each task's, carries MLflow's source tags (in its create request).
  const runTags = tracker.capabilities.records ? await source : undefined;
  // The flow run's start as recorded, given rather than left to the tracker. Its duration (the
  // summary's `Flow succeeded in`, the flow event's durationMs, the run's DURATION_TAG that
  // `cairn runs`, `cairn show` and the report read) is measured on the monotonic clock over the
  // same span: a wall clock stepped meanwhile (NTP, a laptop waking) moves only the start and end times.
  const startTime = Date.now();
  const started = performance.now();
  /**
   * The run's duration to `endTime`: its wall span (what MLflow's start and end times give, and
   * every reader of an older run), unless the wall clock stepped during the run by more than
   * {@link CLOCK_STEP_MS} (NTP, a laptop waking), when it is the monotonic clock's.
   */
  const spanOf = (endTime: number): number => {
    const wall = endTime - startTime;
    const monotonic = Math.round(performance.now() - started);
    return Math.abs(monotonic - wall) > CLOCK_STEP_MS ? monotonic : Math.max(0, wall);
  };
  /** DURATION_TAG for a run whose duration its wall times do not give: one request only then (issue 16: a flow's own bookkeeping requests). */
  const durationTag = (endTime: number, durationMs: number): Record<string, string> => (durationMs === endTime - startTime ? {} : { [DURATION_TAG]: String(durationMs) });
  const creating = tracker.createRun({
    experimentId,
    name: definition.name,
    startTime,
    // The Cairn that ran it, in the same request: which build wrote a run's records and entries.
    tags: runTags ? { ...runTags, "cairn.host": hostname(), "cairn.flow": definition.name, [KIND_TAG]: "flow", [VERSION_TAG]: cairnBuild(env).id } : {},
  });
  // The cache opens while the flow run is being created, and the look-ahead (the hits' keys, then
  // one request about their source runs) starts as soon as it is open: none of it needs the run.
  const cacheOpening = openRunCache(cacheOptions, root, env, tracker, experimentId, params, secrets).then(
    ({ cache, storeDown }) => ({ cache, storeDown, failed: undefined }),
    (error: unknown) => ({ cache: undefined, storeDown: undefined, failed: { error } }),
  );
  // Never rejects (checkAhead catches what fails); only hashes, reads the store and asks the tracker.
  const lookAhead = cacheOpening.then(({ cache }) => cache && checkAhead(graph, params, cache.tasks, tracker, cache.refresh, forced)).catch(() => {});
  try {
    flowRunId = await creating;
  } catch (error) {
    const { cache } = await cacheOpening;
    await lookAhead;
    await closeOwnStore(cache);
    settled();
    throw error;
  }
  const url = tracker.runUrl?.(experimentId, flowRunId);

  const { cache, storeDown, failed } = await cacheOpening;
  if (failed) {
    // Not left RUNNING by a store that is not there, and saying why, as a failed flow's run does
    // (`cairn show`'s `error:`): the error is in no other record. Only here a second request; the
    // good case keeps creating the run and opening the store at once (issue 16).
    if (tracker.capabilities.records) await tracker.logBatch(flowRunId, { tags: flowErrorTags(toErrorInfo(failed.error), [], secrets) }).catch(() => {});
    await tracker.endRun(flowRunId, "FAILED").catch(() => {});
    settled();
    throw failed.error;
  }
  // The tracker's artifacts that lookups read (its index) failing their retries: said once, lookups then go by tag search.
  cache?.tasks.onIndexDown((message) => emitToRun({ type: "log", level: "warn", runId: flowRunId, message, time: Date.now() }));
  // Entries made against another tracker are misses here: said once for the run, at the first one met.
  cache?.tasks.onForeignEntry((foreign) =>
    emitToRun({
      type: "log",
      level: "warn",
      runId: flowRunId,
      message: foreignWarning(foreign),
      time: Date.now(),
    }),
  );
  const settings: ExecutionSettings = {
    graph,
    params,
    concurrency,
    pools,
    failurePolicy,
    tracker,
    experimentId,
    flowRunId,
    secrets,
    env,
    workDir: root,
    emit: (e) => emitToRun(e),
    ...(cache ? { cache: { ...cache, ...(forced ? { forced } : {}), ...(forcedItemIds ? { forcedItems: forcedItemIds } : {}) } } : {}),
    ...(interceptors.length ? { interceptors } : {}),
    ...(runTags ? { runTags } : {}),
  };
  const execution = new FlowExecution(settings);
  // A cancel leaves the runs of hits not yet sent (see HitQueue): a signal ends the run in seconds.
  execution.onCancel(() => void execution.pipeline.dropUnsentHits());
  if (options.dispatcher) execution.pipeline.dispatchTo(options.dispatcher);
  // What beforeEnd is told of the hits' runs, with a server (asking it again costs a search; the embedded store's costs nothing).
  if (options.beforeEnd && tracker.capabilities.remote) execution.pipeline.keepHitRuns();
  // The graph as the run logs it (cairn/graph.json), and hands it to beforeEnd; kept to the run's
  // end only for beforeEnd (a text of hundreds of bytes a node: BENCHMARKS.md).
  let graphJson = tracker.capabilities.records ? JSON.stringify(toGraphJson(graph, true), null, 2) : "";

  // An error that escapes a task's code (or any code) while the run is open stops it as failed,
  // where Node would end the process with the run left RUNNING (crash-guard.ts).
  let crashed: Error | undefined;
  let offCrash: (() => void) | undefined;
  const body = async (emit: Listener): Promise<FlowResult<Outputs>> => {
    // Masked by the run's door (FlowRun's emit), as every event is. A task's events wait for the
    // flow's `running` (held below until it is out): a cancel while the warnings before it are
    // gathered ends the tasks at once, and a reader met a task cancelled before its flow ran.
    const held: RunEvent[] = [];
    emitToRun = (e) => void (e.type === "task" ? held.push(e) : emit(e));
    offCrash = watchCrashes(execution.signal, (error) => {
      crashed ??= error;
      execution.fail(error);
    }, { endsProcess: true });
    // A request retried for long is said as it happens (a full server disk was retried for minutes in silence): an info line,
    // which `--quiet` leaves out; if the retries run out, the failure that follows is said as any is.
    offWarnings = tracker.onWarning?.((message) => emitToRun({ type: "log", level: "info", runId: flowRunId, message, time: Date.now() }));
    try {
      // Let the caller attach listeners before the first event.
      await new Promise((r) => setImmediate(r));
      const closed = describeAbandonedRuns(await abandoned);
      if (closed) emitToRun({ type: "log", level: "warn", runId: flowRunId, message: closed, time: Date.now() });
      for (const message of closerWarnings) emitToRun({ type: "log", level: "warn", runId: flowRunId, message, time: Date.now() });
      for (const message of paramWarnings) emitToRun({ type: "log", level: "warn", runId: flowRunId, message, time: Date.now() });
      // A variable a typo away from one Cairn reads is ignored: said, unless this process said it already (`cairn` does when it starts).
      for (const message of unsaidMisspeltVariables(env)) emitToRun({ type: "log", level: "warn", runId: flowRunId, message, time: Date.now() });
      // With a cache, what a task reads through another name (`env` imported from node:process) counts too.
      const envReads = cache ? (task: TaskDefinition) => cache.tasks.envReadsOf(task) : undefined;
      for (const message of await processEnvReaderWarnings(definition, env, envReads)) emitToRun({ type: "log", level: "warn", runId: flowRunId, message, time: Date.now() });
      emitToRun({ type: "flow", status: "running", runId: flowRunId, flow: definition.name, ...(url ? { url } : {}), time: Date.now() });
    } finally {
      emitToRun = emit;
      for (const e of held) emit(e);
    }
    if (storeDown) emitToRun({ type: "log", level: "warn", runId: flowRunId, message: storeDownWarning(storeDown, true, tracker), time: Date.now() });
    if (unusedPools) emitToRun({ type: "log", level: "warn", runId: flowRunId, message: unusedPools, time: Date.now() });
    let status: FlowStatus;
    let error: ErrorInfo | undefined;
    const cancelOnAbort = () => execution.cancel(options.signal?.reason);
    let graphLogged = false;
    const offAbort = options.signal ? onAbort(options.signal, cancelOnAbort) : undefined;
    try {
      await lookAhead;
      // The flow run's own record: its params and graph, and in the embedded store its run file
      // (else written only at its end, or a second in).
      const opening = Promise.all([logFlowStart(tracker, flowRunId, params, secrets), logFlowGraph(tracker, flowRunId, graph, graphJson)]).then(() =>
        tracker.capabilities.remote ? undefined : tracker.flush(),
      );
      if (!options.beforeEnd) graphJson = "";
      // A failure, not a cancel: the tasks it stops say the flow failed, and why.
      opening.catch((e: unknown) => execution.fail(e));
      // A server's record is made while the tasks start: a round trip nothing but the flow's end
      // waits for. The embedded store's is a few local writes, made first: a store that cannot be
      // written (a file where a folder belongs, a full disk) fails the flow before any task starts.
      if (!tracker.capabilities.remote) await opening;
      if (options.signal?.aborted) execution.cancel(options.signal.reason);
      execution.start();
      status = await execution.done;
      await opening;
      graphLogged = true;
    } catch (e) {
      execution.cancel(e);
      await execution.done;
      status = "failed";
      error = toErrorInfo(e);
    } finally {
      offAbort?.();
    }
    let outputs: Outputs | undefined;
    let notDownloaded: Record<string, string> | undefined;
    if (status === "succeeded") {
      try {
        outputs = execution.resolveOutputs(definition.outputs) as Outputs;
      } catch (e) {
        // A flow output that a process task never wrote (MissingOutputError): the flow fails, as a task taking it would.
        status = "failed";
        error = toErrorInfo(e);
      }
    }
    if (outputs) {
      // What the user is handed must resolve: an artifact of a hit found through the server is downloaded here.
      // Through the cache when on: a download that does not match its digest evicts the hits that hold it.
      const local = cache ? (value: unknown) => cache.tasks.materialize(value) : (value: unknown) => localArtifacts(value, tracker, root);
      const warn = (message: string) => emit({ type: "log", level: "warn", runId: flowRunId, message, time: Date.now() });
      ({ outputs, notDownloaded } = await localFlowOutputs(outputs, tracker, local, warn, (text) => secrets.mask(text)));
    }
    // The flow's outputs are logged while the runs of cache hits are still being recorded; so is
    // why a cancelled flow was cancelled, before the read of its run for the report (below).
    const why = status === "cancelled" ? stopCancelReason(execution.signal.reason) : "";
    // What its tasks ended as (flowTaskCounts), in the first log-batch the run's end sends anyway:
    // its outputs', its cancel reason's, or the one before its end (issue 16: no request of their own).
    const now = Date.now();
    const counts: MetricPoint[] = tracker.capabilities.records ? Object.entries(flowTaskCounts(execution.results.values())).map(([key, value]) => ({ key, value, step: 0, timestamp: now })) : [];
    const takeCounts = () => counts.splice(0);
    const logging = outputs ? logFlowOutputs(tracker, flowRunId, outputs, secrets, takeCounts()) : why ? logCancelReason(tracker, flowRunId, why, secrets, takeCounts()) : undefined;
    let logged = logging?.then(() => undefined, (e: unknown) => e);
    // So is a read of the flow run for beforeEnd, with a server (EndingFlowRun.flowRun): off the
    // run's end, which is then, for `cairn run`'s report, its upload and the run's update.
    const recorded =
      options.beforeEnd && tracker.capabilities.remote && tracker.capabilities.records
        ? Promise.resolve(logged)
            .then((failure) => (failure ? undefined : tracker.getRun(flowRunId)))
            .catch(() => undefined)
        : undefined;
    const note = (message: string, recording: { runs: number; left: number }) =>
      emitToRun({ type: "log", level: "info", runId: flowRunId, message, recording, time: Date.now() });
    await waitForRecords(execution, options.signal, note);
    // A create sent again whose first try the server carried out after all made two runs: the one not used is ended, before the run reports.
    for (const message of (await tracker.endDuplicateRuns?.().catch(() => [])) ?? []) {
      emitToRun({ type: "log", level: "warn", runId: flowRunId, message, time: Date.now() });
    }
    if (status === "succeeded" && isCancel(execution.signal.reason)) {
      // Cancelled while the hits' runs were being recorded: the run ends as any cancelled run
      // does (KILLED, with why), not "succeeded" after the signal; it hands out no outputs.
      status = "cancelled";
      outputs = undefined;
      const late = stopCancelReason(execution.signal.reason);
      if (late) {
        const before = logged;
        logged = Promise.all([before, logCancelReason(tracker, flowRunId, late, secrets).then(() => undefined, (e: unknown) => e)]).then(([a, b]) => a ?? b);
      }
    }
    const unsent = execution.pipeline.unsentHits;
    if (unsent) {
      emitToRun({ type: "log", level: "warn", runId: flowRunId, message: `${unsent} cached ${unsent === 1 ? "task's run was" : "tasks' runs were"} not recorded: the run was cancelled first. Their cache entries are kept; those tasks have no run of their own in this flow run.`, time: Date.now() });
    }
    // A task's run closed beside its dependants (with a server) that could not be closed: its
    // work was done and used, but the record is not whole, so the flow fails, naming it.
    const unclosed = execution.pipeline.unclosed.map(({ task, error: e, leftRunning }) => ({
      task,
      cause: e instanceof Error ? e.message : String(e),
      leftRunning,
      // Cairn refused what was logged: no server is at fault, and a rerun logs the same.
      refused: MetricError.is(e),
    }));
    /** Where such a run stands: marked FAILED, or (the server not answering that either) left RUNNING for the next command to close. */
    const standing = (u: { leftRunning: boolean }) =>
      u.leftRunning
        ? "it could not be marked FAILED either, so it stays RUNNING until the next cairn command in this experiment closes it as KILLED"
        : "it is recorded FAILED";
    const failsFlow = unclosed[0] !== undefined && status === "succeeded";
    if (failsFlow) {
      status = "failed";
      outputs = undefined;
      error = toErrorInfo(
        new TrackingError(
          `The run of task "${unclosed[0]!.task}" could not be closed (${unclosed[0]!.cause}): its work was done and its dependants ran, but its run is not recorded FINISHED (${standing(unclosed[0]!)}) and it has no cache entry. ` +
            (unclosed[0]!.refused
              ? `Cairn refused what the task logged, not the tracking server: fix what it logs, and run the flow again.`
              : `Check the tracking server (and the cache store) and run the flow again: that task runs again.`),
        ),
      );
    }
    // The flow failed or stopped already: each task whose run could not be closed is still said.
    for (const u of failsFlow ? unclosed.slice(1) : unclosed) {
      emitToRun({ type: "log", level: "warn", runId: flowRunId, task: u.task, message: `its run could not be closed (${u.cause}): ${standing(u)}, with no cache entry`, time: Date.now() });
    }
    const tasks = Object.fromEntries(execution.results);
    if (!error && status !== "succeeded") error = flowError(status, tasks, execution.signal.reason, graph.indexed.index);
    // A crash no task failed with (outside any task's code, or after its task had ended) is the flow's own error.
    if (crashed && status !== "cancelled" && !failedTasks(tasks).length) {
      status = "failed";
      outputs = undefined;
      error = toErrorInfo(crashed);
    }
    // The end the run is recorded with, once its work and outputs are done: the report (beforeEnd)
    // states it, so it is taken before the report is written, and the run's duration ends here.
    let endTime: number | undefined;
    let durationMs: number | undefined;
    try {
      const failure = await logged;
      if (failure) throw failure;
      const ending = status === "succeeded" ? "FINISHED" : status === "cancelled" ? "KILLED" : "FAILED";
      endTime = Date.now();
      durationMs = spanOf(endTime);
      // A flow that did not succeed says why on its run, with the request before its end: the
      // errors of the flow itself (its record, a run that could not be closed) are nowhere else in
      // the tracker. Not written, the run still ends, with the error the flow ended with. Sent
      // before beforeEnd, so that a report the hook writes reads the task counts it may carry.
      const lateCounts = takeCounts();
      if (tracker.capabilities.records) {
        const tags = { ...durationTag(endTime, durationMs), ...(error ? flowErrorTags(error, failedTasks(tasks), secrets) : {}) };
        // No request for a run whose wall times give its duration, that has no error to say and whose counts went out already.
        if (Object.keys(tags).length || lateCounts.length) {
          await tracker
            .logBatch(flowRunId, { tags, ...(lateCounts.length ? { metrics: lateCounts } : {}) })
            .then(() => tracker.flushRun?.(flowRunId))
            .catch(() => {});
        }
      }
      if (options.beforeEnd && tracker.capabilities.records) {
        // The hook is told the end time the run is then recorded with, so what it writes agrees with the record.
        const hits = execution.pipeline.hitRuns;
        const fromCache = cache
          ? { cacheStore: cache.tasks.store, sourceRuns: await cache.tasks.readSourceRuns(), ...(hits ? { hits, ...(onlyHits(graph, execution, hits) ? { onlyHits: true } : {}) } : {}) }
          : {};
        const read = await recorded;
        // Read before the counts went out with the batch above (a failed flow's): told as recorded.
        const flowRun = read && lateCounts.length ? { ...read, metrics: { ...read.metrics, ...Object.fromEntries(lateCounts.map((m) => [m.key, m.value])) } } : read;
        const mask = (text: string) => secrets.mask(text);
        const told: Omit<EndingFlowRun, "signal"> = { runId: flowRunId, experimentId, tracker, mask, status: ending, endTime, durationMs, ...(graphLogged ? { graph: graphJson } : {}), ...(flowRun ? { flowRun } : {}), ...fromCache };
        const beforeEnd = options.beforeEnd;
        // Called inside a promise: a hook that throws at once is the same warning as one that
        // rejects, and one that returns no promise (a sync function) is simply done. A cancel
        // stops the wait (the hook sees `signal` abort): a hook that never settles cannot hold
        // the run open.
        const cancelled = new AbortController();
        const offCancel = execution.onCancel((reason) => cancelled.abort(reason));
        // The run's own `signal` too, when it aborts while the hook runs (its listener above is gone by now).
        const onSignal = () => cancelled.abort(options.signal?.reason);
        const offSignal = options.signal ? onAbort(options.signal, onSignal) : undefined;
        const off = () => (offCancel(), offSignal?.());
        await Promise.race([Promise.resolve().then(() => beforeEnd({ ...told, signal: cancelled.signal })), rejectOnAbort(cancelled.signal)])
          .catch((e: unknown) => {
            const { name, message } = cancelled.signal.aborted
              ? { name: "Error", message: "the run was cancelled before the hook had finished; the run ended without waiting for it" }
              : toErrorInfo(e);
            emitToRun({ type: "log", level: "warn", runId: flowRunId, message: `beforeEnd: ${name === "Error" ? "" : `${name}: `}${message}`, time: Date.now() });
          })
          .finally(off);
      }
      await tracker.endRun(flowRunId, ending, endTime);
      await tracker.flush();
    } catch (e) {
      status = "failed";
      outputs = undefined; // a failed flow hands out no outputs, whatever its tasks made
      error = toErrorInfo(e);
      endTime ??= Date.now();
      durationMs ??= spanOf(endTime);
      if (tracker.capabilities.records) {
        const metrics = takeCounts();
        await tracker.logBatch(flowRunId, { tags: { ...durationTag(endTime, durationMs), ...flowErrorTags(error, failedTasks(tasks), secrets) }, ...(metrics.length ? { metrics } : {}) }).catch(() => {});
      }
      await tracker.endRun(flowRunId, "FAILED", endTime).catch(() => {});
    } finally {
      await closeOwnStore(cache);
    }
    const left = leftOpen(tracker, flowRunId, execution.results);
    if (left) emitToRun({ type: "log", level: "warn", runId: flowRunId, message: left, time: Date.now() });
    await execution.pipeline.reportAbandoned();
    if (error) error = secrets.maskError(error);
    emitToRun({
      type: "flow",
      status,
      runId: flowRunId,
      flow: definition.name,
      ...(url ? { url } : {}),
      durationMs,
      time: Date.now(),
      ...(status === "succeeded" && outputs ? { outputs } : {}),
      ...(status === "succeeded" && outputs && notDownloaded ? { notDownloaded } : {}),
      ...(error ? { error } : {}),
    });
    const handedOver = outputs ? { outputs, ...(notDownloaded ? { notDownloaded } : {}) } : {};
    return { runId: flowRunId, status, ...handedOver, tasks, durationMs, ...(error ? { error } : {}) } as FlowResult<Outputs>;
  };
  // A body that rejects leaves the rest of its end to FlowRun; a store it opened is closed here, or its connection keeps the process alive.
  const guarded = (emit: Listener) =>
    body(emit)
      .catch(async (error: unknown) => {
        await closeOwnStore(cache);
        throw error;
      })
      .finally(() => {
        offCrash?.();
        settled();
      });
  return new FlowRun<Outputs>(flowRunId, definition.name, tracker, execution, guarded, (event) => secrets.maskEvent(event), hurry);
}

/**
 * The cache and params a run of `definition` would use, without running it: for
 * `cairn plan`, `cairn explain` and `cairn cache`. Nothing is recorded.
 */
export async function openFlowCache(
  definition: FlowDefinition,
  options: RunOptions = {},
): Promise<{ tasks: TaskCache; params: Record<string, unknown>; tracker: Tracker; abandoned: RunRecord[] }> {
  const env = options.env ?? process.env;
  const params = await validateParams(definition, options.params ?? {});
  // Nothing is recorded: a store that can be read is enough (a read-only `.cairn` is fine).
  const { root, tracker, experimentId, missing } = await openTracking(definition, options, env, { readOnly: true });
  const abandoned = missing === undefined ? closeAbandonedRuns(tracker, [experimentId]) : Promise.resolve([]);
  // Strict: plan and explain are about what the store holds; a store that does not answer is their error.
  const option = checkCacheOption(options.cache === false ? undefined : options.cache) ?? {};
  // The run's file secrets: an input that holds one enters its key by its slow digest, as in the run.
  const secrets = new SecretRegistry(options.secrets, env);
  // Opened for reading: a postgres role with USAGE and SELECT alone may plan (see CacheStoreOptions.access).
  const cache = await openCache({ ...option, strict: true }, root, env, tracker, experimentId, params, secrets, missing, undefined, "read");
  return { tasks: cache!.tasks, params, tracker, abandoned: await abandoned };
}

/**
 * The tracker a run records to (checked reachable) and its experiment, from the options and MLflow's
 * variables. `readOnly`: for commands that only read; a local store is then not checked writable.
 */
async function openTracking(
  definition: FlowDefinition,
  options: RunOptions,
  env: NodeJS.ProcessEnv,
  { readOnly = false, opened }: { readOnly?: boolean; opened?: (tracker: Tracker) => void } = {},
): Promise<{ root: string; tracker: Tracker; experimentId: string; missing?: string }> {
  const root = resolvePath(options.root ?? ".cairn");
  const tracker: Tracker = options.tracker === false ? new NullTracker() : (options.tracker ?? (await resolveTracker({ root, env })));
  opened?.(tracker);
  // Whatever the tracker and cache: tasks' artifacts and downloads are written under it too.
  if (readOnly) await refuseRoot(root, options.root, "read");
  else if (options[ROOT_CHECKED] !== root) await checkRunRoot(options);
  // Blank is unset, as MLflow reads them: a blank name reached the store's API ("expects a non-empty experiment name").
  const experimentName = options.experiment ?? (env.MLFLOW_EXPERIMENT_NAME?.trim() || undefined) ?? definition.name;
  const envTooLong = !options.experiment && env.MLFLOW_EXPERIMENT_NAME?.trim() ? experimentNameTooLong(experimentName) : undefined;
  if (envTooLong) {
    throw new OptionError("MLFLOW_EXPERIMENT_NAME", `an experiment name of at most ${EXPERIMENT_NAME_MAX_LENGTH} characters`, experimentName, `Expected MLFLOW_EXPERIMENT_NAME to be an experiment name of at most ${EXPERIMENT_NAME_MAX_LENGTH} characters, got one ${envTooLong}. Set a shorter name, or unset it to record to the flow's experiment.`);
  }
  const envExperimentId = env.MLFLOW_EXPERIMENT_ID?.trim() || undefined;
  let experimentId: string;
  if (envExperimentId && !options.experiment) {
    checkExperimentId(envExperimentId, tracker);
    experimentId = envExperimentId;
    const envExperimentName = env.MLFLOW_EXPERIMENT_NAME?.trim();
    let named: ExperimentRecord | undefined;
    if (!readOnly && tracker.openExperimentById) {
      // Checked as an experiment given by name is (MLflow: its artifacts proxied), before any run is created in it.
      named = await tracker.openExperimentById(experimentId);
    } else {
      await tracker.ping();
      named = await tracker.getExperiment(experimentId);
    }
    // Read for plan too: it would plan hits for a run that cannot start (MLflow's 404 at the run's create).
    checkExperimentOfId(experimentId, named, tracker);
    // Both set, they must name one experiment, as MLflow's own client requires: else the run would go to the id's without a word.
    if (envExperimentName && named && named.name !== envExperimentName) {
      throw new OptionError(
        "MLFLOW_EXPERIMENT_ID",
        `the id of experiment "${envExperimentName}" (MLFLOW_EXPERIMENT_NAME)`,
        experimentId,
        `MLFLOW_EXPERIMENT_ID is "${experimentId}", the experiment "${named.name}", but MLFLOW_EXPERIMENT_NAME is "${envExperimentName}": ` +
          `they name two experiments. Unset one of them (or pass --experiment NAME); MLflow's own client refuses the same.`,
      );
    }
  } else if (readOnly && tracker.findExperiment) {
    // Reading creates nothing: an experiment not there yet (a typo in --experiment) stays absent.
    const found = await tracker.findExperiment(experimentName);
    if (found === undefined) return { root, tracker, experimentId: "", missing: experimentName };
    experimentId = found;
  } else if (tracker.openExperiment) {
    // The lookup of the experiment is the reachability check too: one request, not two.
    experimentId = await tracker.openExperiment(experimentName);
  } else {
    // The embedded store's ping checks its folder is writable, which reading does not need.
    if (!readOnly || tracker.capabilities.remote) await tracker.ping();
    experimentId = await tracker.ensureExperiment(experimentName);
  }
  return { root, tracker, experimentId };
}

/**
 * The state folder of a run with these options (`root`, else `.cairn` in the working directory)
 * checked before anything is made in it (see `rootProblem`), as run() checks it: one under /proc
 * sent Node's recursive mkdir into a loop no signal stopped, and a file failed the first task that
 * wrote an artifact with a bare ENOTDIR. Resolves to its absolute path, for `ROOT_CHECKED`;
 * throws the OptionError run() would.
 */
export async function checkRunRoot(options: Pick<RunOptions, "root" | "tracker" | "cache">): Promise<string> {
  const root = resolvePath(options.root ?? ".cairn");
  // A run that records nothing makes no folder up front (an app's untracked, uncached run left a
  // .cairn in its working directory); one that is there is still checked.
  const recordsNothing = options.tracker === false && options.cache === false;
  await refuseRoot(root, options.root, recordsNothing ? "write" : "make");
  return root;
}

/** Throws the OptionError that refuses `root` for `use`, when `rootProblem` finds it unfit. */
async function refuseRoot(root: string, given: string | undefined, use: RootUse): Promise<void> {
  const why = await rootProblem(root, use);
  if (why === undefined) return;
  // A run that records nothing is probed as `write` (nothing made up front), yet makes the folder when a task writes there.
  const refusal = { given, root, use: use === "read" ? "read" : "make", why } as const;
  const can = refusal.use === "read" ? "read" : "make and write to";
  throw new OptionError("root", `a folder Cairn can ${can}`, given ?? root, rootRefusal(refusal), why);
}

/** The forms of experiment id each tracker gives out: MLflow's are digits, the embedded store's 16 hex digits. */
const EXPERIMENT_ID_FORMS: Readonly<Record<string, { pattern: RegExp; form: string }>> = {
  mlflow: { pattern: /^\d+$/, form: "digits, as MLflow gives them" },
  local: { pattern: /^[0-9a-f]{16}$/, form: "16 hex digits, as the embedded store gives them" },
};

/** MLFLOW_EXPERIMENT_ID checked before it is used: `abc` or `../x` reached the store's API, whose message named neither the variable nor the fix. */
function checkExperimentId(id: string, tracker: Tracker): void {
  const known = Object.hasOwn(EXPERIMENT_ID_FORMS, tracker.kind) ? EXPERIMENT_ID_FORMS[tracker.kind] : undefined;
  if (!known || known.pattern.test(id)) return;
  throw new OptionError(
    "MLFLOW_EXPERIMENT_ID",
    `an experiment id (${known.form})`,
    id,
    `Expected MLFLOW_EXPERIMENT_ID to be an experiment id (${known.form}), got ${JSON.stringify(id)}. Unset it, or set MLFLOW_EXPERIMENT_NAME (or --experiment) to name the experiment instead.`,
  );
}

/**
 * The experiment MLFLOW_EXPERIMENT_ID names, refused unless it is there and active: a run in a
 * missing or deleted one failed at its create with MLflow's bare 404 / 400, naming no variable.
 */
function checkExperimentOfId(id: string, found: ExperimentRecord | undefined, tracker: Tracker): void {
  const unset = "unset it to record to the flow's experiment (--experiment NAME or MLFLOW_EXPERIMENT_NAME name another)";
  if (found === undefined) {
    throw new OptionError(
      "MLFLOW_EXPERIMENT_ID",
      `the id of an experiment in ${describeTracker(tracker)}`,
      id,
      `Expected MLFLOW_EXPERIMENT_ID to be the id of an experiment in ${describeTracker(tracker)}, got "${id}": there is no experiment with that id. ` +
        `Set it to an existing experiment's id, or ${unset}.`,
    );
  }
  if (found.deleted) {
    throw new OptionError(
      "MLFLOW_EXPERIMENT_ID",
      "the id of an active experiment",
      id,
      `Expected MLFLOW_EXPERIMENT_ID to be the id of an active experiment, got "${id}": experiment "${found.name}" in ${describeTracker(tracker)} is deleted. ` +
        `Restore it (\`mlflow experiments restore --experiment-id ${id}\`), or ${unset}.`,
    );
  }
}

/**
 * The run's cache, as {@link openCache}; a shared store that is unreachable at the start is,
 * unless the cache is strict, no cache for this run (`storeDown` says why, for its one warning).
 */
async function openRunCache(
  option: CacheRunOptions | undefined,
  root: string,
  env: NodeJS.ProcessEnv,
  tracker: Tracker,
  experimentId: string,
  params: Record<string, unknown>,
  secrets: SecretRegistry,
): Promise<{ cache: ExecutionSettings["cache"]; storeDown?: CacheBackendError }> {
  try {
    return { cache: await openCache(option, root, env, tracker, experimentId, params, secrets) };
  } catch (error) {
    if (!isStoreDown(error) || isStrict(option, env)) throw error;
    // Still a cache: what other machines recorded in the tracker's index is found there, and
    // this run's results are recorded there (see TaskCache.record).
    const standIn = { ...option, store: CacheStore.unreachable(error) };
    const cache = await openCache(standIn, root, env, tracker, experimentId, params, secrets, undefined, error);
    return { cache: cache && { ...cache, ownStore: true }, storeDown: error };
  }
}

/** Closes a store the run opened (redis, postgres): its connection would keep the process alive. */
async function closeOwnStore(cache: ExecutionSettings["cache"]): Promise<void> {
  if (cache?.ownStore) await cache.tasks.store.close().catch(() => {});
}

/** `cache.strict`, else CAIRN_CACHE_STRICT. */
function isStrict(option: CacheRunOptions | undefined, env: NodeJS.ProcessEnv): boolean {
  return option?.strict ?? booleanFromEnv(env, "CAIRN_CACHE_STRICT");
}

/** `RunOptions.cache` checked where it enters: its settings, or undefined when the cache is off. */
function checkCacheOption(option: RunOptions["cache"]): CacheRunOptions | undefined {
  if (option === false) return undefined;
  const o: CacheRunOptions = option === true || option === undefined ? {} : option;
  if (typeof o !== "object" || o === null) throw new OptionError("cache", "a boolean or { url?, store?, refresh?, rerun?, strict? }", option);
  checkKnownKeys(o, CACHE_OPTIONS, "cache");
  if (o.refresh !== undefined && typeof o.refresh !== "boolean") throw new OptionError("cache.refresh", "a boolean", o.refresh);
  if (o.url !== undefined && typeof o.url !== "string") throw new OptionError("cache.url", "a cache store URL (redis://..., postgres://...)", o.url);
  if (o.store !== undefined && (!isObject(o.store) || typeof (o.store as CacheStore).lookup !== "function")) {
    throw new OptionError("cache.store", "a CacheStore (await CacheStore.fromUrl(url))", o.store);
  }
  if (o.rerun !== undefined && (!Array.isArray(o.rerun) || o.rerun.some((r) => typeof r !== "string"))) {
    throw new OptionError("cache.rerun", "an array of task names or node ids", o.rerun);
  }
  if (o.strict !== undefined && typeof o.strict !== "boolean") throw new OptionError("cache.strict", "a boolean", o.strict);
  return o;
}

/** The URL of the run's store (`cache.url`, else CAIRN_CACHE_URL; undefined for the embedded store) and where it came from, for messages. */
function storeUrlOf(o: CacheRunOptions, env: NodeJS.ProcessEnv): [string | undefined, { source: string }] {
  return [o.url ?? (env.CAIRN_CACHE_URL || undefined), { source: o.url !== undefined ? "run({ cache: { url } })" : "CAIRN_CACHE_URL" }];
}

/** Opens the run's cache (options checked by {@link checkCacheOption}), or undefined when it is off. */
async function openCache(
  o: CacheRunOptions | undefined,
  root: string,
  env: NodeJS.ProcessEnv,
  tracker: Tracker,
  experimentId: string,
  /** The run's params: the ones a task reads enter its key. */
  params: Record<string, unknown>,
  secrets?: SecretRegistry,
  /** The name of the experiment when it does not exist yet (plan, explain): see {@link TaskCacheOptions.missingExperiment}. */
  missingExperiment?: string,
  /** The shared store did not answer when opened (`o.store` is its stand-in): see {@link TaskCacheOptions.down}. */
  down?: CacheBackendError,
  /** What a store opened here is opened for: `read` for plan and explain (see `CacheStoreOptions.access`). */
  access: "read" | "write" = "write",
): Promise<ExecutionSettings["cache"]> {
  if (!o) return undefined;
  const [url, { source }] = storeUrlOf(o, env);
  const store = o.store ?? (await CacheStore.fromUrl(url, { root, access, source }));
  const missing = missingExperiment !== undefined ? { missingExperiment } : {};
  return {
    tasks: new TaskCache(store, tracker, experimentId, root, env, { strict: isStrict(o, env), params, ...missing, ...(down ? { down } : {}) }, secrets),
    refresh: o.refresh === true,
    ownStore: o.store === undefined,
  };
}

/**
 * Validates params with the flow's schema; names unknown params and the ones of the wrong type.
 * Without a schema, a param the flow does not read is refused, unless the flow typed its params
 * (`.params<T>()`) and `unread` is a function: then it is told of the param, and it is taken.
 * `unread: "refuse"` is for params no compiler checked against the type (the CLI's, read from
 * text): there a param nothing reads is a typo, typed flow or not.
 */
export async function validateParams(
  definition: FlowDefinition,
  given: Record<string, unknown>,
  unread: "refuse" | ((message: string) => void) = () => {},
): Promise<Record<string, unknown>> {
  const schema = definition.paramsSchema;
  if (!isObject(given)) throw new OptionError("params", "an object of param values by name", given);
  if (!schema) {
    // No schema to check them against: they must still be what a run can record and hash.
    assertSerializable(given, `Flow "${definition.name}" params`, PARAMS_FIX);
    // Nor names to check them against, but which params the flow reads is known (most often):
    // a param it does not read is a typo (`-p flg=true`) that would change nothing, without a word.
    const read = Object.keys(given).length ? await paramsReadBy(definition) : "all";
    if (read !== "all") {
      const unreadNames = Object.keys(given).filter((k) => !read.has(k));
      if (unreadNames.length && definition.paramsTyped && unread !== "refuse") {
        // Its type is what the caller compiled against: a param it names that nothing reads yet
        // must still be given (TS2741 otherwise), so it is said, not refused.
        const meant = closestName(unreadNames[0]!, read);
        unread(
          `Flow "${definition.name}" does not read param ${unreadNames.map((k) => `"${k}"`).join(", ")}${meant ? ` (did you mean "${meant}"?)` : ""}: ` +
            `neither its build function nor any of its tasks reads it, so it changes nothing in this run (it is recorded with the others). ` +
            `The params it reads: ${[...read].sort().join(", ") || "(none)"}. ` +
            `Its params are typed with .params<T>() only, so it is taken; wire it into a task, or drop it from the type and the run's params.`,
        );
      } else if (unreadNames.length) {
        const meant = closestName(unreadNames[0]!, read);
        const why = definition.paramsTyped
          ? "Its params are typed with .params<T>() only, and no compiler checked these against the type, so a param nothing reads is refused as a likely typo"
          : "Without a params schema, a flow takes the params it reads";
        throw new ParamError(
          `Flow "${definition.name}" has no param ${unreadNames.map((k) => `"${k}"`).join(", ")}${meant ? ` (did you mean "${meant}"?)` : ""}: ` +
            `neither its build function nor any of its tasks reads it. The params it reads: ${[...read].sort().join(", ") || "(none)"}. ` +
            `${why}; declare them with .params(schema) to have them checked and defaulted.`,
          definition.name,
          unreadNames[0],
        );
      }
    }
    return given;
  }
  const known = knownKeys(schema);
  if (known) {
    const unknown = Object.keys(given).filter((k) => !known.includes(k));
    if (unknown.length) {
      const meant = closestName(unknown[0]!, known);
      throw new ParamError(
        `Flow "${definition.name}" has no param ${unknown.map((k) => `"${k}"`).join(", ")}${meant ? ` (did you mean "${meant}"?)` : ""}. ` +
          `Its params are: ${known.join(", ") || "(none)"}.`,
        definition.name,
        unknown[0],
      );
    }
  }
  const r = await validateWithSchema(schema, given);
  if (!r.ok) {
    throw new ParamError(
      `Flow "${definition.name}" got invalid params:\n  - ${r.issues.join("\n  - ")}\n` +
        `Pass them as -p name=value (CLI) or run({ params }).`,
      definition.name,
      r.paths[0] || undefined,
    );
  }
  const params = r.value as Record<string, unknown>;
  if (!isSerializableValue(params)) {
    // What the caller gave, when that is what is not JSON data; else the schema made it so
    // (z.coerce.date() turns "2024-01-01" into a Date), and the fix is the schema's, not the value's.
    assertSerializable(given, `Flow "${definition.name}" params`, PARAMS_FIX);
    assertSerializable(params, `Flow "${definition.name}" params schema's output`, SCHEMA_OUTPUT_FIX);
  }
  return params;
}

/** How to fix a param that is not JSON data (not as a task's output: there is no artifact to write it to). */
const PARAMS_FIX = { fix: "Give params as JSON data (strings, numbers, booleans, null, arrays, plain objects)." };

/** How to fix a params schema that turns JSON data into something else (a Date, a Map, a class instance). */
const SCHEMA_OUTPUT_FIX = {
  fix:
    "The params schema made it from the JSON data given: a run records the params and hashes them into cache keys as the " +
    "schema returns them, so the schema's output must be JSON data too. Keep the param JSON data in the schema (a date as " +
    "a string: z.string(), not z.coerce.date()) and convert it in the task that reads it (new Date(value)).",
};

/**
 * The names of the params a flow reads: those its build function wires in (a param ref in an
 * input, a map's list, a condition or an output) and those its tasks read through their context
 * (TaskDefinition.paramsRead; a task without it reads none, as its cache key says); "all" when
 * a task's cannot be told (its context handed on whole).
 */
async function paramsReadBy(definition: FlowDefinition): Promise<ReadonlySet<string> | "all"> {
  const read = new Set<string>();
  const note = (value: unknown) => {
    // A circular or over-deep literal would overflow the walk: the flow's graph refuses it, naming it.
    if (!isSerializableValue(value, { allowRefs: true })) return;
    forEachRef(value, (ref) => {
      if (ref.source === "param") read.add(ref.target);
    });
  };
  const tasks = new Set<FlowDefinition["nodes"][number]["task"]>();
  for (const node of definition.nodes) {
    for (const input in node.inputs) note(node.inputs[input]);
    if (node.map) note(node.map.over);
    if (node.condition !== undefined) note(node.condition);
    tasks.add(node.task);
  }
  for (const name in definition.outputs) note(definition.outputs[name]);
  for (const task of tasks) {
    const names = task.paramsRead ? await task.paramsRead() : [];
    if (names === "all") return "all";
    for (const n of names) read.add(n);
  }
  return read;
}

async function logFlowStart(tracker: Tracker, runId: string, params: Record<string, unknown>, secrets: SecretRegistry): Promise<void> {
  if (!tracker.capabilities.records) return; // params are not flattened for nothing
  const flat: Record<string, string> = {};
  let needsFile = false;
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    const s = typeof v === "string" ? v : JSON.stringify(v);
    // As a task's inputs (logInputs): no value is cut or left out; a long one's param points at the file holding all.
    if (s.length <= FLOW_PARAM_VALUE_LIMIT) flat[k] = s;
    else {
      flat[k] = `(too long for a param: see artifact cairn/${FLOW_PARAMS_FILE})`;
      needsFile = true;
    }
  }
  // Only a run with a long param pays the upload; it goes beside the params.
  const file = needsFile ? writeRunFiles(tracker, runId, "cairn", { [FLOW_PARAMS_FILE]: secrets.mask(JSON.stringify(params, null, 2)) }) : undefined;
  await Promise.all([tracker.logBatch(runId, { params: flat }), file]);
}

/** Longest flow param value logged as a param, as for a task's inputs; longer ones go whole to `cairn/params.json`. */
const FLOW_PARAM_VALUE_LIMIT = 500;
/** The flow run's artifact (under `cairn/`) holding every param whole, when one is too long for a param. */
const FLOW_PARAMS_FILE = "params.json";

/**
 * The flow's outputs with every artifact a local file (see localArtifacts). An output whose
 * artifacts cannot be downloaded is left as recorded, `warn` says where it lives (its `runs:/`
 * URI), and `notDownloaded` says why (masked), by output name: the recorded path is no file here,
 * and what prints the outputs must not hand it on as one.
 */
async function localFlowOutputs<T>(
  outputs: T,
  tracker: Tracker,
  local: (value: unknown) => Promise<unknown>,
  warn: (message: string) => void,
  mask: (text: string) => string,
): Promise<{ outputs: T; notDownloaded?: Record<string, string> }> {
  if (!tracker.capabilities.records || !isPlainObject(outputs)) return { outputs };
  const notDownloaded: [string, string][] = [];
  const entries = await Promise.all(
    Object.entries(outputs).map(async ([name, value]) => {
      try {
        return [name, await local(value)] as const;
      } catch (error) {
        const why = (error as Error).message;
        notDownloaded.push([name, mask(why)]); // handed out as the outputs are, past the events' masking
        if (ArtifactMismatchError.is(error)) {
          warn(`Flow output "${name}" is handed over as recorded, not downloaded: ${why}`);
          return [name, value] as const;
        }
        warn(`Flow output "${name}" could not be downloaded (${why}); it lives at ${collectArtifactUris(value).join(", ")} in ${tracker.uri}.`);
        return [name, value] as const;
      }
    }),
  );
  // Made by fromEntries: an output named `__proto__` stays an own key, as in the outputs.
  return { outputs: Object.fromEntries(entries) as T, ...(notDownloaded.length ? { notDownloaded: Object.fromEntries(notDownloaded) } : {}) };
}

/** `runs:/<run id>/<artifact path>` of every artifact in `value`: MLflow's own way to name one. */
function collectArtifactUris(value: unknown, out: string[] = []): string[] {
  if (isArtifact(value)) out.push(value.runId ? `runs:/${value.runId}/${value.artifactPath}` : value.path);
  else if (Array.isArray(value)) for (const v of value) collectArtifactUris(v, out);
  else if (isPlainObject(value)) for (const v of Object.values(value)) collectArtifactUris(v, out);
  return out;
}

/** Writes the flow's graph (mermaid, and `json`: its toGraphJson text) as artifacts of the flow run. */
async function logFlowGraph(tracker: Tracker, flowRunId: string, graph: FlowGraph, json: string): Promise<void> {
  if (!tracker.capabilities.records) return;
  await writeRunFiles(tracker, flowRunId, "cairn", { "graph.mmd": toMermaid(graph), "graph.json": json });
}

/** Whether `hits` are all the task runs the run recorded (EndingFlowRun.onlyHits). */
function onlyHits(graph: FlowGraph, execution: FlowExecution, hits: readonly RunRecord[]): boolean {
  if (hits.length !== execution.results.size) return false;
  for (const result of execution.results.values()) if (result.status !== "cached") return false;
  return !graph.definition.nodes.some((node) => node.map);
}

/**
 * Every flow output on the flow run: all of them, in their JSON form (an artifact as its record:
 * path, run id, artifact path, digest), as the artifact `outputs.json` at the run's root, where
 * MLflow's UI shows it first (not under `cairn/`, where a task run's `outputs.json` is its cache
 * manifest, another shape); the numbers also as metrics, which MLflow's UI compares across runs.
 * A tracker that holds metrics back sends them now (`flushRun`), while the hits' runs are still
 * being recorded, not at the run's end; a failure to send them fails the flow, as before. `counts`,
 * the flow's task counts, go in the same log-batch.
 */
async function logFlowOutputs(tracker: Tracker, runId: string, outputs: unknown, secrets: SecretRegistry, counts: readonly MetricPoint[]): Promise<void> {
  if (!tracker.capabilities.records) return;
  const now = Date.now();
  const metrics = Object.entries(outputs as Record<string, unknown>)
    .filter((e): e is [string, number] => typeof e[1] === "number" && Number.isFinite(e[1]))
    .map(([key, value]) => ({ key, value, step: 0, timestamp: now }))
    .concat(counts);
  await Promise.all([
    metrics.length ? tracker.logBatch(runId, { metrics }).then(() => tracker.flushRun?.(runId)) : undefined,
    writeRunFiles(tracker, runId, "", { "outputs.json": secrets.mask(JSON.stringify(outputs, null, 2)) }),
  ]);
}

/** How often the flow says how many hits' runs are left to record, while it waits for them at its end. */
const RECORDING_NOTE_MS = 5000;

/**
 * Waits at the flow's end for the runs still being recorded (pipeline.drain), saying how many
 * hits' runs are left when the wait starts and every {@link RECORDING_NOTE_MS}: thousands of hits
 * can take minutes. A cancel (`run.cancel()`, the run's signal) during the wait leaves the hits
 * not yet sent (see HitQueue).
 */
async function waitForRecords(execution: FlowExecution, signal: AbortSignal | undefined, note: (message: string, recording: { runs: number; left: number }) => void): Promise<void> {
  const { pipeline } = execution;
  // The run's signal too: its listener of the tasks' time is gone by now.
  const cancel = () => execution.cancel(signal?.reason);
  if (signal?.aborted) cancel();
  const offSignal = signal ? onAbort(signal, cancel) : undefined;
  const say = () => {
    const { runs, left } = pipeline.hitsLeft;
    if (left && !isCancel(execution.signal.reason)) note(`recording ${runs} cached tasks' runs in MLflow (${left} left)`, { runs, left });
  };
  say();
  const timer = setInterval(say, RECORDING_NOTE_MS);
  try {
    await pipeline.drain();
  } finally {
    clearInterval(timer);
    offSignal?.();
  }
}

/** True for a run stopped by a cancel (`run.cancel()`, the run's signal), not by a failure. */
function isCancel(stop: unknown): boolean {
  return stop instanceof StopReason && stop.kind === "cancel";
}

/** The reason given to `signal.abort(reason)` or `run.cancel(reason)` (`SIGINT` under the CLI), as text; "" for none. */
function stopCancelReason(stop: unknown): string {
  return stop instanceof StopReason && stop.kind === "cancel" ? cancelReason(stop.detail) : "";
}

/**
 * The tag of a cancelled flow run that says why it was cancelled: the reason given to
 * `run.cancel(reason)` or `signal.abort(reason)` (`SIGINT`, `SIGTERM` under the CLI), masked,
 * cut at 4,000 characters (fitTag: a whole code point, mid-word never; no file holds it whole). Absent when none was given.
 */
export const CANCEL_REASON_TAG = "cairn.cancel_reason";

/** Records why the flow run was cancelled ({@link CANCEL_REASON_TAG}), masked as its errors are; `counts` (the flow's task counts) ride with it. */
async function logCancelReason(tracker: Tracker, runId: string, reason: string, secrets: SecretRegistry, counts: readonly MetricPoint[] = []): Promise<void> {
  if (!tracker.capabilities.records) return;
  const text = secrets.mask(reason);
  await tracker.logBatch(runId, { tags: { [CANCEL_REASON_TAG]: fitTag(text, undefined, ERROR_TAG_LIMIT) }, ...(counts.length ? { metrics: [...counts] } : {}) });
}

/** The reason of a run cancelled while it was opening its tracker, before its flow run was asked for. */
function startCancelled(reason: unknown): string {
  const why = cancelReason(reason);
  return `${why ? `${why}, ` : ""}while the run was starting, before its flow run was created; nothing was recorded`;
}

/**
 * The handle of a run cancelled while it started, before its flow run was created: it records
 * nothing, has no run id (`""`) and no tasks, and ends `cancelled` with a CancelledError that says
 * so, as a run cancelled a moment later does. run() rejected here, so that one signal made run()
 * reject or resolve by where in the start it came, which an app cannot tell.
 */
function cancelledWhileStarting<Outputs>(flowName: string, tracker: Tracker, reason: unknown, secrets: SecretRegistry): FlowRun<Outputs> {
  const error = secrets.maskError(toErrorInfo(new CancelledError(startCancelled(reason))));
  const body = async (emit: Listener): Promise<FlowResult<Outputs>> => {
    // As a started run does: the caller attaches its listeners before the first event.
    await new Promise((r) => setImmediate(r));
    emit({ type: "flow", status: "cancelled", runId: "", flow: flowName, durationMs: 0, time: Date.now(), error });
    return { runId: "", status: "cancelled", tasks: {}, durationMs: 0, error };
  };
  return new FlowRun<Outputs>("", flowName, tracker, undefined, body, (event) => secrets.maskEvent(event));
}

/**
 * The warning for the runs of this flow run the tracker could not end (Tracker.openRuns): they
 * stay RUNNING until the next run or command that opens the experiment on this host, once this
 * process has exited, closes them as KILLED. Undefined when every one was ended.
 */
function leftOpen(tracker: Tracker, flowRunId: string, results: ReadonlyMap<string, TaskResult>): string | undefined {
  const open = new Set(tracker.openRuns?.() ?? []);
  if (!open.size) return undefined;
  const runs = [...results.values()].filter((r) => r.runId !== undefined && open.has(r.runId)).map((r) => `task "${r.task}" (${r.runId})`);
  if (open.has(flowRunId)) runs.unshift(`the flow run (${flowRunId})`);
  if (!runs.length) return undefined;
  return `${runs.length === 1 ? "This run" : `These ${runs.length} runs`} could not be closed (${tracker.uri} did not take their end) and may stay RUNNING: ${runs.join(", ")}. ` +
    `Once this process has exited, the next run or command on this host that opens the experiment (cairn run, cairn runs) closes them as KILLED.`;
}

/** The ids of the flow's tasks that failed, sorted (a map's items count through their map). */
function failedTasks(tasks: Record<string, TaskResult>): string[] {
  return Object.values(tasks)
    .filter((t) => t.status === "failed" && t.parent === undefined)
    .map((t) => t.task)
    .sort();
}

function flowError(status: FlowStatus, tasks: Record<string, TaskResult>, stop: unknown, nodeOrder: ReadonlyMap<string, number>): ErrorInfo {
  if (status === "cancelled") {
    const reason = stopCancelReason(stop);
    return { name: "CancelledError", message: `The flow run was cancelled${reason ? `: ${reason}` : ""}.` };
  }
  // In the flow's node order, each map's items after it in item order: the same message whichever task ended first.
  const at = (t: TaskResult) => [nodeOrder.get(t.parent ?? t.task) ?? nodeOrder.size, t.parent === undefined ? -1 : (t.item ?? 0)] as const;
  const failed = Object.values(tasks)
    .filter((t) => t.status === "failed")
    .map((t) => ({ t, at: at(t) }))
    .sort((a, b) => a.at[0] - b.at[0] || a.at[1] - b.at[1])
    .map(({ t }) => t);
  // Bounded as a map's own error is: thousands of failed items would make one line of megabytes.
  // Each keeps its first and last lines: what failed, and the exception a traceback ends with.
  const shown = failed.slice(0, FAILED_TASKS_SHOWN).map((t) => `task "${t.task}" failed: ${clipMessage(t.error?.message ?? "", FAILED_MESSAGE_CHARS)}`);
  if (failed.length > FAILED_TASKS_SHOWN) shown.push(`and ${failed.length - FAILED_TASKS_SHOWN} more failed tasks`);
  return { name: "TaskFailed", message: failed.length ? shown.join("; ") : "Some tasks did not succeed." };
}

/** Failed tasks a failed flow's error names (the rest are counted), and the characters kept of each one's message. */
const FAILED_TASKS_SHOWN = 5;
const FAILED_MESSAGE_CHARS = 500;

/**
 * MLflow's source tags, as its own clients set them: who ran which file (`mlflow.source.name`,
 * absolute), from which commit of the file's checkout (absent outside one); the user read from
 * `env`, the run's environment, as MLflow's clients read theirs ({@link userName}).
 */
async function sourceTags(file: string | undefined, env: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const name = file ? resolvePath(file) : "cairn";
  const dir = file ? dirname(name) : process.cwd();
  // Asked for each run, not memoised in this module: an app that runs flows for days sees each commit.
  // Read from the repository's files where that gives git's answer (git-head.ts): no process to spawn.
  const read = gitHeadOf(dir);
  const commit =
    read !== ASK_GIT
      ? read
      : new Promise<string | undefined>((resolve) =>
          execFile("git", ["rev-parse", "HEAD"], { cwd: dir, timeout: 2000 }, (error, stdout) => resolve(!error && stdout.trim() ? stdout.trim() : undefined)),
        );
  const tags: Record<string, string> = { "mlflow.source.type": "LOCAL", "mlflow.source.name": name, "mlflow.user": userName(env) };
  const sha = await commit;
  if (sha) tags["mlflow.source.git.commit"] = sha;
  return tags;
}
