import { setMaxListeners } from "node:events";
import PQueue from "p-queue";
import type { CacheEntry } from "@cairn/cache";
import type { FlowNode } from "../definition/flow-definition.ts";
import { isStoreDown, storeDownWarning, type TaskCache, type TaskKey } from "../caching/task-cache.ts";
import { sourceRunsAhead } from "../caching/plan.ts";
import { type RefValue, resolveRefs } from "../definition/ref.ts";
import type { FlowGraph } from "../graph/flow-graph.ts";
import { toGraphJson, toMermaid } from "../graph/render.ts";
import { AbandonedAttempts } from "../pipeline/abandoned.ts";
import { rejectOnAbort } from "../pipeline/attempts.ts";
import type { TaskInterceptor } from "../pipeline/intercept.ts";
import { type PipelineScope, releaseTask, runTask } from "../pipeline/run-task.ts";
import { validateInputs } from "../pipeline/inputs.ts";
import { isRetryableError } from "../pipeline/retryable.ts";
import type { SharedContext } from "../pipeline/running-task-context.ts";
import { type Flight, type FlightScope, findEntry } from "../pipeline/single-flight.ts";
import { StopReason, stopInfo } from "../pipeline/stop.ts";
import { recordHit } from "../pipeline/task-run.ts";
import { type ErrorInfo, type FlowStatus, type RunEvent, type TaskEvent, type TaskStatus, toErrorInfo } from "../run/events.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import { writeRunFiles } from "../tracking/run-files.ts";
import type { Tracker } from "../tracking/tracker.ts";
import { RunScope } from "../run/run-scope.ts";

/** What a flow run does when a task fails for good. */
export type FailurePolicy = "fail-fast" | "continue";

/** Final state of one task. */
export interface TaskResult {
  /** Node id. */
  task: string;
  status: TaskStatus;
  /** The task's run id, when it got one. */
  runId?: string;
  /** Attempts made (0 when it never ran). */
  attempts: number;
  /** Wall time from start of the first attempt to the end, in ms. */
  durationMs?: number;
  /** Outputs, for succeeded and cached tasks. */
  outputs?: unknown;
  error?: ErrorInfo;
  /** For cached tasks: the run whose outputs were reused. */
  cachedFrom?: string;
}

/** Settings of one execution, already validated. */
export interface ExecutionSettings {
  graph: FlowGraph;
  params: Record<string, unknown>;
  concurrency: number;
  pools: Readonly<Record<string, number>>;
  failurePolicy: FailurePolicy;
  tracker: Tracker;
  experimentId: string;
  flowRunId: string;
  secrets: SecretRegistry;
  /** Folder for task artifacts when the tracker keeps none locally. */
  workDir: string;
  /** The cache, when on. */
  cache?: {
    tasks: TaskCache;
    /** Look nothing up (results are still stored). */
    refresh: boolean;
    /** Node ids or task names that run whatever the cache holds, with their dependants. */
    rerun: readonly string[];
    /** The run opened the store and closes it at the end. */
    ownStore?: boolean;
  };
  emit: (event: RunEvent) => void;
  /** Hooks around every attempt (RunOptions.interceptors). */
  interceptors?: readonly TaskInterceptor[];
}

/**
 * The scheduler: walks a validated graph, queues each task the moment its last input is
 * ready, bounded by a global p-queue and named pools, highest critical-path priority first;
 * applies the failure policy and stops. What happens to one task is the task pipeline in
 * ../pipeline/ (inputs → cache lookup and single flight → task run → attempts with timeout
 * and retries → output checks → record), which needs no scheduler.
 */
export class FlowExecution {
  readonly results = new Map<string, TaskResult>();
  /** Per-node state by position in the definition, linked directly to dependants: the hot path does no map lookups. */
  private readonly states: NodeState[];
  /** Position of each node id. */
  private readonly index: ReadonlyMap<string, number>;
  private readonly global: PQueue;
  private readonly pools = new Map<string, PQueue>();
  private readonly controller = new AbortController();
  /**
   * Cross-process leases held now, with their node. When the flow stops, those of nodes that never
   * started are given up at once; a started node gives its own up once its processes are gone.
   */
  private readonly leases = new Map<{ release(): Promise<void> }, Flight>();
  /** Attempts that did not stop at their signal. */
  private readonly abandonedAttempts = new AbandonedAttempts((task, message) => this.warn(task, message));
  /** Cache hits whose runs are still being recorded (see recordHit). */
  private readonly recording = new Set<Promise<void>>();
  /** What the stages of every task of this run share. */
  private readonly pipeline: PipelineScope;
  private readonly flightScope?: FlightScope;
  private remaining: number;
  private finished!: (status: FlowStatus) => void;
  readonly done: Promise<FlowStatus>;

  constructor(private readonly s: ExecutionSettings) {
    this.global = new PQueue({ concurrency: s.concurrency });
    for (const [name, limit] of Object.entries(s.pools)) this.pools.set(name, new PQueue({ concurrency: limit }));
    this.remaining = s.graph.order.length;
    // Every task waiting on another process listens to this one signal; there may be thousands.
    setMaxListeners(0, this.controller.signal);
    this.done = new Promise((resolve) => (this.finished = resolve));
    const shared: SharedContext = {
      params: s.params,
      flowRunId: s.flowRunId,
      // The cache computes keys with the same scope, so a kind's memo serves both key and run.
      scope: s.cache?.tasks.scope ?? new RunScope(),
      tracking: Object.freeze({ kind: s.tracker.kind, uri: s.tracker.uri, experimentId: s.experimentId, capabilities: s.tracker.capabilities }),
      tracker: s.tracker,
      workDir: s.workDir,
      secrets: s.secrets,
      paramsCheck: { flowName: s.graph.definition.name, values: s.params },
      emit: s.emit,
    };
    this.pipeline = {
      shared,
      flowSignal: this.controller.signal,
      flowAborted: rejectOnAbort(this.controller.signal),
      abandoned: this.abandonedAttempts,
      ...(s.interceptors ? { interceptors: s.interceptors } : {}),
      record: { tracker: s.tracker, experimentId: s.experimentId, flowRunId: s.flowRunId, flowName: s.graph.definition.name, workDir: s.workDir, secrets: s.secrets },
      ...(s.cache ? { cache: s.cache.tasks } : {}),
      warn: (task, message) => this.warn(task, message),
    };
    if (s.cache) {
      this.flightScope = {
        cache: s.cache.tasks,
        flowRunId: s.flowRunId,
        flowSignal: this.controller.signal,
        leases: this.leases,
        waiting: (task) => this.emitTask(task, "waiting"),
        warn: (task, message) => this.warn(task, message),
      };
    }
    const list = s.graph.definition.nodes;
    const { index, dependencies, dependants, priority, order } = s.graph.indexed;
    this.index = index;
    const states: NodeState[] = (this.states = new Array(list.length));
    for (let i = 0; i < list.length; i++) {
      const node = list[i]!;
      const result: TaskResult = { task: node.id, status: "pending", attempts: 0 };
      states[i] = {
        node,
        result,
        waiting: dependencies[i]!.length,
        priority: priority[i]!,
        dependants: [],
        output: undefined,
      };
    }
    // Results in topological order, as before: `wait()` lists tasks in this order.
    for (const i of order) this.results.set(list[i]!.id, states[i]!.result);
    for (let i = 0; i < list.length; i++) {
      const next = dependants[i]!;
      const linked = states[i]!.dependants;
      for (let k = 0; k < next.length; k++) linked.push(states[next[k]!]!);
    }
    // One warning for the run, from whichever task met the dead store first.
    s.cache?.tasks.onStoreDown((error) => this.warn(undefined, storeDownWarning(error, false)));
    if (s.cache && (s.cache.refresh || s.cache.rerun.length)) {
      const rerun = new Set(s.cache.rerun);
      const force = (state: NodeState) => {
        if (state.forceRun) return;
        state.forceRun = true;
        for (const next of state.dependants) force(next);
      };
      for (const state of states) {
        if (s.cache.refresh || rerun.has(state.node.id) || rerun.has(state.node.task.name)) force(state);
      }
    }
  }

  /**
   * Before `start()`: with a tracker that reads many runs in one request (MLflow), the source runs
   * of the hits this run can expect are asked about at once, so a chain of hits does not wait for
   * one request per hit. Local work only until the request is sent; never fails the flow.
   * With any cache, the tasks' code dependencies start being read here too.
   */
  async checkAhead(): Promise<void> {
    const cache = this.s.cache;
    if (cache) cache.tasks.prefetchCode(new Set([...this.s.graph.nodes.values()].map((n) => n.task)), this.s.flowRunId);
    if (!cache || cache.refresh || !this.s.tracker.getRuns) return;
    try {
      const force = (id: string) => this.states[this.index.get(id)!]!.forceRun === true;
      cache.tasks.checkSourceRuns(await sourceRunsAhead(this.s.graph, this.s.params, cache.tasks, force));
    } catch {
      // A guess that failed costs nothing: each lookup asks for its source run itself.
    }
  }

  /** Starts the walk; `done` resolves with the flow's status. */
  start(): void {
    if (this.remaining === 0) return this.finished("succeeded");
    // Topological order, as the ready set was made before.
    const roots: NodeState[] = [];
    for (const i of this.s.graph.indexed.order) {
      const state = this.states[i]!;
      if (state.waiting !== 0) break; // the roots come first in Kahn's order
      roots.push(state);
    }
    this.readyAll(roots);
  }

  /** Queues nodes that became ready together, highest priority first: a free slot goes to the first one added. */
  private readyAll(states: NodeState[]): void {
    if (states.length > 1) states.sort((a, b) => b.priority - a.priority);
    for (const state of states) this.ready(state);
  }

  /** Cancels the run: running tasks see their signal abort, the rest end `cancelled`. */
  cancel(reason?: unknown): void {
    this.stop(new StopReason("cancel", reason));
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Outputs of a finished task. */
  outputOf(id: string): unknown {
    const i = this.index.get(id);
    return i === undefined ? undefined : this.states[i]!.output;
  }

  /** Resolves refs to params and upstream outputs. */
  resolve(value: unknown): unknown {
    return resolveRefs(value, this.refValue);
  }

  private readonly refValue = (ref: RefValue): unknown => {
    let v = ref.source === "param" ? this.s.params[ref.target] : this.states[this.index.get(ref.target)!]!.output;
    for (const key of ref.path) v = v == null ? undefined : (v as Record<string, unknown>)[key];
    return v;
  };

  private ready(state: NodeState): void {
    state.result.status = "queued";
    this.emitTask(state.node.id, "queued");
    // The cache is asked before the task takes a slot: a hit never waits for one.
    if (this.s.cache && state.node.task.cache !== false) void this.throughCache(state, this.s.cache.tasks);
    else this.enqueue(state);
  }

  private enqueue(state: NodeState): void {
    const { node, priority } = state;
    const pool = node.task.pool ? this.pools.get(node.task.pool) : undefined;
    // Queue promises are not awaited: completion is tracked per node, and runNode never rejects.
    // (Unnamed arrows: tsx wraps every named closure in a defineProperty call.)
    if (pool) void pool.add(() => this.global.add(() => this.runNode(state), { priority }), { priority });
    else void this.global.add(() => this.runNode(state), { priority });
  }

  /** A task with a slot: the task pipeline (../pipeline/run-task.ts), then what its outcome means for the flow; never rejects. */
  private async runNode(state: NodeState): Promise<void> {
    if (this.controller.signal.aborted) return; // stop() already settled it
    state.started = true;
    const started = performance.now();
    let inputs: Record<string, unknown> | Promise<Record<string, unknown>>;
    try {
      inputs = state.inputs ?? this.prepareInputs(state);
    } catch (error) {
      inputs = Promise.reject(error); // failed as the pipeline fails a task whose inputs are bad
    }
    const outcome = await runTask(this.pipeline, state, inputs);
    if (outcome.ok) {
      state.output = outcome.outputs;
      state.result.outputs = outcome.outputs;
      this.complete(state, "succeeded", started);
    } else if (outcome.cancelled) {
      this.complete(state, "cancelled", started, stopInfo(outcome.stop));
    } else {
      this.complete(state, "failed", started, toErrorInfo(outcome.error));
      this.afterFailure(state);
    }
    await releaseTask(state);
  }

  /** Resolves refs and validates the inputs with the task's schema; kept on the state. Synchronous when there is no schema. */
  private prepareInputs(state: NodeState): Record<string, unknown> | Promise<Record<string, unknown>> {
    const raw = this.resolve(state.node.inputs) as Record<string, unknown>;
    if (!state.node.task.inputSchema) return (state.inputs = raw);
    return validateInputs(state.node, raw).then((inputs) => (state.inputs = inputs));
  }

  /**
   * The cache path of a ready task: key, lookup, single flight. A hit completes the
   * task `cached`; anything else queues it to run. Cache trouble is a warning and a miss.
   */
  private async throughCache(state: NodeState, cache: TaskCache): Promise<void> {
    const id = state.node.id;
    const started = performance.now();
    try {
      state.key = await cache.keyFor(state.node, await this.prepareInputs(state), { flowRunId: this.s.flowRunId, signal: this.controller.signal });
    } catch (error) {
      if (!isRetryableError(error)) {
        // Bad inputs fail the task as they would when it runs.
        this.complete(state, "failed", started, toErrorInfo(error));
        return this.afterFailure(state);
      }
      this.warn(id, `cache key not computed (${(error as Error).message}); running it`);
      return this.enqueue(state);
    }
    try {
      const entry = await findEntry(this.flightScope!, state, state.key.key);
      if (this.controller.signal.aborted) return;
      if (entry) return await this.completeCached(state, entry, started);
    } catch (error) {
      if (this.controller.signal.aborted) return;
      if (cache.strict && isStoreDown(error)) {
        state.settleFlight?.(undefined);
        this.complete(state, "failed", started, toErrorInfo(error));
        return this.afterFailure(state);
      }
      this.warn(id, `cache lookup failed (${(error as Error).message}); running it`);
    }
    if (!this.controller.signal.aborted) this.enqueue(state);
  }

  /** Completes a task from a cache entry, recorded as a FINISHED run tagged with its source. */
  private async completeCached(state: NodeState, entry: CacheEntry, started: number): Promise<void> {
    const { node, result } = state;
    await recordHit(this.pipeline.record, node, entry, result, this.recording, (task, message) => this.warn(task, message));
    state.settleFlight?.(entry);
    await state.releaseLease?.();
    state.output = entry.outputs.values;
    result.outputs = entry.outputs.values;
    result.cachedFrom = entry.sourceRunId;
    this.complete(state, "cached", started);
  }

  /** Waits for the runs of cache hits to be recorded as FINISHED (see recordHit). */
  async drain(): Promise<void> {
    while (this.recording.size) await Promise.all(this.recording);
  }

  /** Before the flow's last event: reports the abandoned attempts still running (see AbandonedAttempts). */
  reportAbandoned(): Promise<void> {
    return this.abandonedAttempts.report();
  }

  /** Attempts abandoned at their timeout or cancellation that have not ended yet. */
  abandoned(): Array<{ task: string; attempt: number }> {
    return this.abandonedAttempts.list();
  }

  private warn(task: string | undefined, message: string): void {
    this.s.emit({ type: "log", level: "warn", runId: this.s.flowRunId, ...(task !== undefined ? { task } : {}), message, time: Date.now() });
  }

  private afterFailure(state: NodeState): void {
    if (this.s.failurePolicy === "fail-fast") {
      this.stop(new StopReason("fail-fast", state.node.id));
    } else {
      this.skipDependants(state, state.node.id);
    }
  }

  private skipDependants(state: NodeState, failed: string): void {
    for (const next of state.dependants) {
      if (next.result.status !== "pending") continue;
      this.complete(next, "skipped", undefined, {
        name: "UpstreamFailed",
        message: `Skipped because upstream task "${failed}" did not succeed.`,
      });
      this.skipDependants(next, failed);
    }
  }

  private stop(reason: StopReason): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(reason);
    for (const [lease, state] of this.leases) if (!state.started) void lease.release().catch(() => {});
    this.global.clear();
    for (const pool of this.pools.values()) pool.clear();
    for (const i of this.s.graph.indexed.order) {
      const state = this.states[i]!;
      const status = state.result.status;
      if (status === "pending" || status === "queued") {
        this.complete(state, reason.kind === "cancel" ? "cancelled" : "skipped", undefined, stopInfo(reason));
      }
    }
    if (this.remaining === 0) this.finished(this.flowStatus());
  }

  private complete(state: NodeState, status: TaskStatus, started: number | undefined, error?: ErrorInfo): void {
    const { result } = state;
    const id = state.node.id;
    state.inputs = undefined; // needed until the task ends, not after: 10,000-node flows keep them all otherwise
    result.status = status;
    if (started !== undefined) result.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    // The task's error as results, events and the CLI show it: known secrets masked (its run's tag is masked alike).
    if (error) result.error = error = this.s.secrets.maskError(error);
    const time = Date.now();
    const runId = this.s.flowRunId;
    const taskStatus = status as Exclude<TaskStatus, "pending">;
    if (result.runId && result.durationMs !== undefined && !error && !result.cachedFrom) {
      // The common case (a task that ran and succeeded) as one literal: same fields, same order,
      // without the extra backing store that adding fields one by one gives each event.
      this.s.emit({ type: "task", status: taskStatus, runId, task: id, time, taskRunId: result.runId, durationMs: result.durationMs });
    } else {
      this.emitFinished(state, taskStatus, time, error);
    }
    if (status === "succeeded" || status === "cached") {
      const ready: NodeState[] = [];
      for (const next of state.dependants) {
        if (--next.waiting === 0 && next.result.status === "pending" && !this.controller.signal.aborted) ready.push(next);
      }
      this.readyAll(ready);
    }
    if (--this.remaining === 0) this.finished(this.flowStatus());
  }

  /** The event of a finished task, any case: the fields that apply, in their usual order. */
  private emitFinished(state: NodeState, status: Exclude<TaskStatus, "pending">, time: number, error: ErrorInfo | undefined): void {
    const { result } = state;
    const event: TaskEvent = { type: "task", status, runId: this.s.flowRunId, task: state.node.id, time };
    if (result.runId) event.taskRunId = result.runId;
    if (result.durationMs !== undefined) event.durationMs = result.durationMs;
    if (error) event.error = error;
    if (result.cachedFrom) event.cachedFrom = result.cachedFrom;
    this.s.emit(event);
  }

  private flowStatus(): FlowStatus {
    const reason = this.controller.signal.reason;
    if (reason instanceof StopReason && reason.kind === "cancel") return "cancelled";
    for (const r of this.results.values()) if (r.status !== "succeeded" && r.status !== "cached") return "failed";
    return "succeeded";
  }

  private emitTask(id: string, status: Exclude<TaskStatus, "pending">): void {
    this.s.emit({ type: "task", status, runId: this.s.flowRunId, task: id, time: Date.now() });
  }

  /** Writes the flow's graph (mermaid and JSON) as artifacts of the flow run. */
  async logGraph(): Promise<void> {
    if (!this.s.tracker.capabilities.records) return;
    await writeRunFiles(this.s.tracker, this.s.flowRunId, "cairn", {
      "graph.mmd": toMermaid(this.s.graph),
      "graph.json": JSON.stringify(toGraphJson(this.s.graph), null, 2),
    });
  }
}

/** What the scheduler keeps per node; the pipeline's stages keep their part of it (Flight, WorkHolder). */
interface NodeState extends Flight {
  readonly node: FlowNode;
  readonly result: TaskResult;
  /** Upstream nodes not finished yet. */
  waiting: number;
  /** Critical-path priority. */
  readonly priority: number;
  readonly dependants: NodeState[];
  output: unknown;
  /** Resolved and validated inputs, once known. */
  inputs?: Record<string, unknown>;
  /** Cache key, when the cache is on for this node. */
  key?: TaskKey;
  /** Work of its attempts that outlives them (process trees being ended); see WorkHolder. */
  held?: Promise<unknown>[];
}
