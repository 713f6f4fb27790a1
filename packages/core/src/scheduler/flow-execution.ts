import { setMaxListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { dirname, resolve as resolvePath } from "node:path";
import PQueue from "p-queue";
import pRetry from "p-retry";
import { isArtifact } from "../definition/artifact.ts";
import type { FlowNode } from "../definition/flow-definition.ts";
import { type RefValue, resolveRefs } from "../definition/ref.ts";
import { validateWithSchema } from "../definition/schema.ts";
import { assertSerializable, isSerializableValue, storedForm } from "../definition/serializable.ts";
import {
  CairnError,
  CancelledError,
  InputValidationError,
  NonErrorThrownError,
  NotSerializableError,
  OutputValidationError,
  TaskTimeoutError,
} from "../errors.ts";
import type { FlowGraph } from "../graph/flow-graph.ts";
import { toGraphJson, toMermaid } from "../graph/render.ts";
import { type ErrorInfo, type FlowStatus, type RunEvent, type TaskEvent, type TaskStatus, toErrorInfo } from "../run/events.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import { RunningTaskContext, type SharedContext } from "./running-task-context.ts";
import type { CacheEntry } from "@cairn/cache";
import {
  CACHE_KEY_TAG,
  CACHED_FROM_TAG,
  isStoreDown,
  type StoredManifest,
  storeDownWarning,
  type TaskCache,
  type TaskKey,
} from "../caching/task-cache.ts";
import { sourceRunsAhead } from "../caching/plan.ts";
import { RunRecorder } from "../tracking/run-recorder.ts";
import { hasLocalArtifacts, writeRunFiles } from "../tracking/run-files.ts";
import type { Tracker } from "../tracking/tracker.ts";

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
}

/** Why the flow's controller was aborted. */
class StopReason {
  constructor(
    readonly kind: "cancel" | "fail-fast",
    readonly detail: unknown,
  ) {}
}

/** Wraps any attempt failure so p-retry retries every error alike (it skips TypeErrors of its own accord). */
class AttemptFailure extends Error {
  constructor(readonly error: unknown) {
    super("attempt failed");
  }
}

/**
 * Walks a validated graph: queues each task the moment its last input is ready,
 * bounded by a global p-queue and named pools, highest critical-path priority
 * first; tracks each task as a child run of the flow run.
 */
export class FlowExecution {
  readonly results = new Map<string, TaskResult>();
  /** Per-node state by position in the definition, linked directly to dependants: the hot path does no map lookups. */
  private readonly states: NodeState[];
  /** Position of each node id. */
  private readonly index: ReadonlyMap<string, number>;
  /** What every task context shares. */
  private readonly shared: SharedContext;
  private readonly global: PQueue;
  private readonly pools = new Map<string, PQueue>();
  private readonly controller = new AbortController();
  /**
   * Cross-process leases held now, with their node. When the flow stops, those of nodes that never
   * started are given up at once; a started node gives its own up once its processes are gone.
   */
  private readonly leases = new Map<{ release(): Promise<void> }, NodeState>();
  /** Abandoned attempts still running (see abandon). */
  private readonly stray = new Set<StrayAttempt>();
  /** Cache hits whose runs are still being ended (see completeCached). */
  private readonly recording = new Set<Promise<void>>();
  /** Rejects with the stop reason once the flow is stopped; raced against every running task. */
  private readonly flowAborted = rejectOnAbort(this.controller.signal);
  private remaining: number;
  private finished!: (status: FlowStatus) => void;
  readonly done: Promise<FlowStatus>;
  private readonly flowName: string;

  constructor(private readonly s: ExecutionSettings) {
    this.flowName = s.graph.definition.name;
    this.global = new PQueue({ concurrency: s.concurrency });
    for (const [name, limit] of Object.entries(s.pools)) this.pools.set(name, new PQueue({ concurrency: limit }));
    this.remaining = s.graph.order.length;
    // Every task waiting on another process listens to this one signal; there may be thousands.
    setMaxListeners(0, this.controller.signal);
    this.done = new Promise((resolve) => (this.finished = resolve));
    this.shared = {
      params: s.params,
      flowRunId: s.flowRunId,
      tracking: Object.freeze({ kind: s.tracker.kind, uri: s.tracker.uri, experimentId: s.experimentId, capabilities: s.tracker.capabilities }),
      tracker: s.tracker,
      workDir: s.workDir,
      secrets: s.secrets,
      paramsCheck: { flowName: s.graph.definition.name, values: s.params },
      emit: s.emit,
    };
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

  private async runNode(state: NodeState): Promise<void> {
    if (this.controller.signal.aborted) return; // stop() already settled it
    state.started = true;
    const { node, result } = state;
    const id = node.id;
    const started = performance.now();
    const tracker = this.s.tracker;
    const tracking = tracker.capabilities.records;
    let recorder: RunRecorder | undefined;
    try {
      let inputs = state.inputs ?? this.prepareInputs(state);
      if (inputs instanceof Promise) inputs = await inputs;
      if (this.s.cache) inputs = await this.s.cache.tasks.materialize(inputs, id);
      // A tracker that records nothing hands out ids with no round trip through a promise.
      const runId = !tracking && tracker.newRunId ? tracker.newRunId() : await tracker.createRun(!tracking ? NO_RUN : {
        experimentId: this.s.experimentId,
        name: id,
        parentRunId: this.s.flowRunId,
        tags: {
          "cairn.flow": this.flowName,
          "cairn.task": node.task.name,
          "cairn.node_id": id,
          "cairn.task_kind": node.task.kind,
          ...(node.task.version ? { "cairn.task_version": node.task.version } : {}),
        },
      });
      result.runId = runId;
      // Every param and tag of the task's run (its inputs, its error, what it logs) leaves masked.
      recorder = new RunRecorder(tracker, runId, this.s.secrets);
      if (tracking) {
        // Without a tracker the params would be dropped: do not make them.
        const inputsFile = logInputs(recorder, inputs, this.s.secrets);
        if (inputsFile) await writeRunFiles(tracker, runId, "cairn", { "inputs.json": inputsFile });
      }
      let outputs =
        node.task.retry.retries === 0 ? await this.once(state, inputs, runId, recorder, 1) : await this.attempts(state, inputs, runId, recorder);
      let manifest: StoredManifest | undefined;
      const cache = this.s.cache?.tasks;
      if (cache && state.key) {
        const ttlMs = node.task.cache !== false ? node.task.cache.ttlMs : undefined;
        manifest = {
          ...(await cache.manifest(outputs)),
          cacheKey: state.key.key,
          taskName: node.task.name,
          ingredients: state.key.ingredients,
          ...(ttlMs !== undefined ? { expiresAt: Date.now() + ttlMs } : {}),
        };
        outputs = manifest.values;
        recorder.tag(CACHE_KEY_TAG, state.key.key);
      }
      if (tracking) await this.finishTracking(node, runId, recorder, "FINISHED", manifest ?? { values: outputs, artifacts: [] });
      if (cache && state.key) {
        const entry = await cache.record(state.key, node, runId, manifest!).catch((e: unknown) => {
          if (cache.strict && isStoreDown(e)) throw e;
          this.warn(id, `could not store the cache entry: ${(e as Error).message}`);
          return undefined;
        });
        state.settleFlight?.(entry);
      }
      state.output = outputs;
      result.outputs = outputs;
      this.complete(state, "succeeded", started);
    } catch (error) {
      // A task running when the flow was stopped ends cancelled, whatever it threw on its way out.
      const stop = this.controller.signal.aborted ? this.controller.signal.reason : undefined;
      const cancelled = stop instanceof StopReason || error instanceof CancelledError;
      if (result.runId && recorder) {
        if (!cancelled && tracking) recorder.tag(ERROR_TAG, errorTag(toErrorInfo(error)));
        await this.finishTracking(node, result.runId, recorder, cancelled ? "KILLED" : "FAILED").catch(() => {});
      }
      state.settleFlight?.(undefined); // failures are never cached; a waiter computes it itself
      if (cancelled) {
        this.complete(state, "cancelled", started, stopInfo(stop));
      } else {
        this.complete(state, "failed", started, toErrorInfo(error));
        this.afterFailure(state);
      }
    } finally {
      // An attempt the scheduler gave up on (cancel, timeout) may still be ending its process tree:
      // the slot and the lease stay taken until the tree is gone, so no other run computes the same
      // key beside it.
      if (state.held) await Promise.allSettled(state.held);
      state.held = undefined;
      if (state.releaseLease) await state.releaseLease();
    }
  }

  /** Resolves refs and validates the inputs with the task's schema; kept on the state. Synchronous when there is no schema. */
  private prepareInputs(state: NodeState): Record<string, unknown> | Promise<Record<string, unknown>> {
    const raw = this.resolve(state.node.inputs) as Record<string, unknown>;
    if (!state.node.task.inputSchema) return (state.inputs = raw);
    return this.validateInputs(state.node, raw).then((inputs) => (state.inputs = inputs));
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
      if (error instanceof CairnError && !error.retryable) {
        // Bad inputs fail the task as they would when it runs.
        this.complete(state, "failed", started, toErrorInfo(error));
        return this.afterFailure(state);
      }
      this.warn(id, `cache key not computed (${(error as Error).message}); running it`);
      return this.enqueue(state);
    }
    try {
      const entry = await this.findEntry(state, cache, state.key.key);
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

  /** A usable entry, waiting for whoever computes the key now; or undefined after claiming it to compute. */
  private async findEntry(state: NodeState, cache: TaskCache, key: string): Promise<CacheEntry | undefined> {
    const id = state.node.id;
    for (let round = 0; round < 3; round++) {
      if (!state.forceRun) {
        const found = await cache.lookup(key);
        if (found.bad) this.warn(id, `cache entry ${key.slice(0, 12)} was unusable: ${found.bad.reason}; it was evicted and the task runs`);
        if (found.entry) return found.entry;
      }
      const running = cache.inflight.get(key);
      if (running) {
        this.emitTask(id, "waiting");
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
      const lease = await cache.acquireLease(key, { ttlMs: LEASE_TTL_MS, owner: `${cache.owner} ${this.s.flowRunId} ${id}` });
      if (lease.acquired) {
        // Someone may have written the entry and let go between our lookup and our lease.
        const late = state.forceRun ? undefined : (await cache.lookup(key)).entry;
        if (late) {
          await lease.release().catch(() => {});
          state.settleFlight(late);
          state.settleFlight = undefined;
          return late;
        }
        this.leases.set(lease, state);
        const renew = setInterval(() => void lease.renew().catch(() => {}), LEASE_TTL_MS / 3);
        renew.unref();
        state.releaseLease = async () => {
          clearInterval(renew);
          this.leases.delete(lease);
          await lease.release().catch(() => {});
        };
        return undefined;
      }
      // Another process computes it: wait for its entry, then look again.
      this.emitTask(id, "waiting");
      state.settleFlight(undefined);
      state.settleFlight = undefined;
      const entry = await cache.waitFor(key, this.controller.signal);
      if (entry) return entry;
    }
    return undefined;
  }

  /** Completes a task from a cache entry, recorded as a FINISHED run tagged with its source. */
  private async completeCached(state: NodeState, entry: CacheEntry, started: number): Promise<void> {
    const { node, result } = state;
    const tracker = this.s.tracker;
    if (tracker.capabilities.records) {
      const run = {
        experimentId: this.s.experimentId,
        name: node.id,
        parentRunId: this.s.flowRunId,
        tags: {
          "cairn.flow": this.flowName,
          "cairn.task": node.task.name,
          "cairn.node_id": node.id,
          "cairn.task_kind": node.task.kind,
          [CACHED_FROM_TAG]: entry.sourceRunId,
          "cairn.cache_hit_key": entry.key,
        },
      };
      if (tracker.recordRun && tracker.capabilities.remote) {
        // A server: the hit is complete now, and its run (two requests) is recorded in the
        // background, so dependants do not wait for it. The flow waits for all at its end.
        const recording = tracker.recordRun({ ...run, status: "FINISHED" }).then(
          (runId) => void (result.runId = runId),
          (e: unknown) => this.warn(node.id, `could not record the cache hit's run: ${(e as Error).message}`),
        );
        this.recording.add(recording);
        void recording.finally(() => this.recording.delete(recording));
      } else if (tracker.recordRun) {
        // One step, already FINISHED: the embedded store appends the hits recorded at once in one write.
        result.runId = await tracker.recordRun({ ...run, status: "FINISHED" });
      } else {
        const runId = await tracker.createRun(run);
        result.runId = runId;
        // The hit is complete once its run exists; ending it (a request) goes on in the
        // background, so dependants do not wait for it. The flow waits for all at its end.
        const ending = tracker.endRun(runId, "FINISHED").catch((e: unknown) => this.warn(node.id, `could not record the cache hit's run ${runId} as FINISHED: ${(e as Error).message}`));
        this.recording.add(ending);
        void ending.finally(() => this.recording.delete(ending));
      }
    }
    state.settleFlight?.(entry);
    await state.releaseLease?.();
    state.output = entry.outputs.values;
    result.outputs = entry.outputs.values;
    result.cachedFrom = entry.sourceRunId;
    this.complete(state, "cached", started);
  }

  /** Waits for the runs of cache hits to be recorded as FINISHED (see completeCached). */
  async drain(): Promise<void> {
    while (this.recording.size) await Promise.all(this.recording);
  }

  private warn(task: string | undefined, message: string): void {
    this.s.emit({ type: "log", level: "warn", runId: this.s.flowRunId, ...(task !== undefined ? { task } : {}), message, time: Date.now() });
  }

  private async validateInputs(node: FlowNode, raw: Record<string, unknown>): Promise<Record<string, unknown>> {
    const schema = node.task.inputSchema;
    if (!schema) return raw;
    const r = await validateWithSchema(schema, raw);
    if (!r.ok) throw new InputValidationError(node.id, r.issues);
    return r.value as Record<string, unknown>;
  }

  /** Attempt number `attempt`, announced as running. */
  private once(state: NodeState, inputs: Record<string, unknown>, runId: string, recorder: RunRecorder, attempt: number): Promise<unknown> {
    state.result.attempts = attempt;
    state.result.status = "running";
    // One literal with every field: adding fields later gives each event a second backing store.
    this.s.emit({ type: "task", status: "running", runId: this.s.flowRunId, task: state.node.id, time: Date.now(), taskRunId: runId, attempt });
    return this.attempt(state, inputs, runId, recorder, attempt);
  }

  /** The attempts of a task with retries, through p-retry. */
  private async attempts(state: NodeState, inputs: Record<string, unknown>, runId: string, recorder: RunRecorder) {
    const { node } = state;
    const { retry } = node.task;
    const once = (attempt: number) => this.once(state, inputs, runId, recorder, attempt);
    try {
      return await pRetry(
        async (attempt) => {
          try {
            return await once(attempt);
          } catch (error) {
            throw new AttemptFailure(error);
          }
        },
        {
          retries: retry.retries,
          minTimeout: retry.minDelayMs,
          maxTimeout: retry.maxDelayMs,
          factor: 2,
          signal: this.controller.signal,
          shouldRetry: ({ error }) => isRetryable((error as AttemptFailure).error, this.controller.signal),
          onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
            const cause = (error as AttemptFailure).error;
            if (retriesLeft > 0 && isRetryable(cause, this.controller.signal)) {
              this.emitTask(node.id, "retrying", { attempt: attemptNumber, error: toErrorInfo(cause) });
            }
          },
        },
      );
    } catch (error) {
      throw error instanceof AttemptFailure ? error.error : error;
    }
  }

  private async attempt(
    state: NodeState,
    inputs: Record<string, unknown>,
    runId: string,
    recorder: RunRecorder,
    attempt: number,
  ): Promise<unknown> {
    const node = state.node;
    const timeoutMs = node.task.timeoutMs;
    // Without a timeout the flow's own signal is the attempt's signal: no controller or listener per task.
    let signal = this.controller.signal;
    let aborted = this.flowAborted;
    let cleanup: (() => void) | undefined;
    if (timeoutMs) {
      // Not AbortSignal.timeout: its reason would be a bare TimeoutError, while ctx.signal.reason is
      // what a task (and the process executor) throws, so it names the task and attempt; and its
      // timer could not be cleared when the attempt ends. Not AbortSignal.any either: on Node 20
      // its composite signals (weak references, a finalization registry) cost several times this
      // controller and its one listener, on every timed attempt (BENCHMARKS.md, timed no-op tasks).
      const flowSignal = this.controller.signal;
      const ac = new AbortController();
      const onFlowAbort = () => ac.abort(flowSignal.reason);
      flowSignal.addEventListener("abort", onFlowAbort, { once: true });
      const timer = setTimeout(() => ac.abort(new TaskTimeoutError(node.id, timeoutMs, attempt)), timeoutMs);
      signal = ac.signal;
      aborted = rejectOnAbort(signal);
      cleanup = () => {
        clearTimeout(timer);
        flowSignal.removeEventListener("abort", onFlowAbort);
      };
    }
    const ctx = new RunningTaskContext(this.shared, node, runId, attempt, signal, recorder, state);
    try {
      let output: unknown;
      try {
        const returned = node.task.run(inputs, ctx);
        // A synchronous result needs no race: nothing can cancel it any more.
        if (returned instanceof Promise) {
          try {
            output = await Promise.race([returned, aborted]);
          } catch (error) {
            // The attempt is over at its signal, whether or not the task listens to it.
            if (signal.aborted && error === signal.reason) this.abandon(node.id, attempt, returned, ctx);
            throw error;
          }
        } else {
          output = returned;
        }
      } catch (error) {
        if (error instanceof Error || error instanceof StopReason) throw error;
        throw new NonErrorThrownError(node.id, error);
      }
      const checked = this.checkOutputs(node, output);
      return checked instanceof Promise ? await checked : checked;
    } finally {
      cleanup?.();
    }
  }

  /**
   * An attempt whose signal aborted (timeout, or the flow stopped) is over for the scheduler at
   * once: retries start, the flow moves on. Its work may go on if the task ignores the signal:
   * its context is closed (what it logs or writes from then on goes nowhere), whatever it
   * returns or throws later is dropped, and if it is still running a moment later it is
   * reported as abandoned, once. Process tasks are ended by their executor (SIGTERM, then SIGKILL).
   */
  private abandon(task: string, attempt: number, work: Promise<unknown>, ctx: RunningTaskContext): void {
    ctx.close();
    const why = ctx.signal.reason instanceof TaskTimeoutError ? "its timeout" : "the flow stopped";
    const report = () => {
      stray.report = undefined;
      this.warn(
        task,
        `Attempt ${attempt} of task "${task}" did not stop at ${why}: abandoned. The flow does not wait ` +
          `for it, and what it returns, throws, logs as metrics or writes as artifacts from now on is dropped. ` +
          `Pass ctx.signal to what the task awaits so that it stops.`,
      );
    };
    const gone = () => void this.stray.delete(stray);
    const stray: StrayAttempt = { task, attempt, settled: work.then(gone, gone), noticeAt: Date.now() + ABANDONED_NOTICE_MS, report };
    this.stray.add(stray);
    // A task that honours its signal settles within a moment: only the others are reported.
    void sleep(ABANDONED_NOTICE_MS, undefined, { ref: false }).then(() => {
      if (this.stray.has(stray)) stray.report?.();
    });
  }

  /**
   * Before the flow's last event: reports the abandoned attempts not reported yet that are still
   * running once their moment to stop has passed (at most {@link ABANDONED_NOTICE_MS} from now).
   */
  async reportAbandoned(): Promise<void> {
    const unreported = [...this.stray].filter((s) => s.report);
    if (!unreported.length) return;
    const last = Math.max(...unreported.map((s) => s.noticeAt)) - Date.now();
    if (last > 0) await Promise.race([Promise.all(unreported.map((s) => s.settled)), sleep(last)]);
    for (const stray of unreported) if (this.stray.has(stray)) stray.report?.();
  }

  /** Attempts abandoned at their timeout or cancellation (see {@link abandon}) that have not ended yet. */
  abandoned(): Array<{ task: string; attempt: number }> {
    return [...this.stray].map(({ task, attempt }) => ({ task, attempt }));
  }

  /** The output as stored; synchronous unless the task has an output schema. */
  private checkOutputs(node: FlowNode, output: unknown): unknown {
    const value = output === undefined ? {} : output;
    // The message's `where` is made only for a value that fails.
    if (!isSerializableValue(value)) {
      try {
        assertSerializable(value, `Task "${node.id}" output`);
      } catch (error) {
        if (error instanceof NotSerializableError) {
          throw new NotSerializableError(error.where, error.path || "(the whole output)", error.got);
        }
        throw error;
      }
    }
    this.s.secrets.assertClean(value, node.id, "its outputs");
    const schema = node.task.outputSchema;
    // Normalised once, here: the next task sees the stored JSON form, fresh or from the cache.
    if (!schema) return storedForm(value);
    return validateWithSchema(schema, value).then((r) => {
      if (!r.ok) throw new OutputValidationError(node.id, r.issues);
      // A schema may transform what it validates (a Date from a string): that value must be JSON data too.
      if (!isSerializableValue(r.value)) assertSerializable(r.value, `Task "${node.id}" output, as its output schema returned it,`);
      return storedForm(r.value);
    });
  }

  private async finishTracking(
    node: FlowNode,
    runId: string,
    recorder: RunRecorder,
    status: "FINISHED" | "FAILED" | "KILLED",
    manifest?: StoredManifest,
  ): Promise<void> {
    const tracker = this.s.tracker;
    if (!tracker.capabilities.records) return;
    recorder.tag("cairn.attempts", String(this.results.get(node.id)!.attempts));
    await recorder.flush();
    if (manifest !== undefined) {
      if (!hasLocalArtifacts(tracker)) await uploadArtifacts(tracker, runId, manifest.values, resolvePath(this.s.workDir, "artifacts", runId));
      await writeRunFiles(tracker, runId, "cairn", { "outputs.json": JSON.stringify(manifest, null, 2) });
    }
    await tracker.endRun(runId, status);
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

  private emitTask(id: string, status: Exclude<TaskStatus, "pending">, extra?: Partial<TaskEvent>): void {
    const event: TaskEvent = { type: "task", status, runId: this.s.flowRunId, task: id, time: Date.now() };
    this.s.emit(extra ? Object.assign(event, extra) : event);
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

/** Longest input value logged as a param; longer ones go whole to `cairn/inputs.json`. */
const PARAM_VALUE_LIMIT = 500;

/**
 * Inputs become params: scalars as they are, artifacts as `runs:/<run>/<path>` URIs,
 * small structured values as JSON. No value is ever cut: when one is too long, its
 * param points at the artifact `cairn/inputs.json`, which holds all inputs whole.
 * Returns that file's content when it is needed.
 */
function logInputs(recorder: RunRecorder, inputs: Record<string, unknown>, secrets: SecretRegistry): string | undefined {
  let needsFile = false;
  for (const key in inputs) {
    const value = inputs[key];
    let text: string;
    if (value === undefined) continue;
    if (typeof value === "string") text = value;
    else if (typeof value === "number" || typeof value === "boolean") text = String(value);
    else if (isArtifact(value)) text = value.runId ? `runs:/${value.runId}/${value.artifactPath}` : value.path;
    else text = JSON.stringify(value);
    if (text.length > PARAM_VALUE_LIMIT) {
      needsFile = true;
      text = "(too long for a param: see artifact cairn/inputs.json)";
    }
    // Masked by the recorder: inputs wired from literals, or from a param that carries a secret read from
    // the environment before it was known, may hold one. Masked, not refused: the task did not put it there.
    recorder.param(key, text);
  }
  return needsFile ? secrets.mask(JSON.stringify(inputs, null, 2)) : undefined;
}

/** The tag a failed task's run carries: its error's name and message, masked. */
const ERROR_TAG = "cairn.error";

/** `Name: message`, cut to fit a tag (MLflow keeps 8000 characters). */
function errorTag(error: ErrorInfo): string {
  const text = `${error.name}: ${error.message}`;
  return text.length > 4000 ? `${text.slice(0, 3999)}…` : text;
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

/** An attempt still running this long after its signal aborted is reported as abandoned. */
const ABANDONED_NOTICE_MS = 1000;

/** A computing task's lease on its key lasts this long unless renewed (every third of it). */
const LEASE_TTL_MS = 10_000;

/** createRun options for the null tracker, which ignores them: no tags object per task. */
const NO_RUN = { experimentId: "0", name: "" };

/** An abandoned attempt still running; `report` warns about it, once. */
interface StrayAttempt {
  readonly task: string;
  readonly attempt: number;
  /** Resolves when its work ends, however. */
  settled: Promise<void>;
  /** Epoch ms after which it counts as ignoring its signal. */
  readonly noticeAt: number;
  report: (() => void) | undefined;
}

/** What the scheduler keeps per node. */
interface NodeState {
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
  /** --rerun / --refresh: skip the lookup. */
  forceRun?: boolean;
  /** Settles the in-process single flight of `key` with the entry written (or undefined). */
  settleFlight?: (entry: CacheEntry | undefined) => void;
  /** Gives up the cross-process lease on `key`. */
  releaseLease?: () => Promise<void>;
  /** runNode began: its lease is given up by runNode itself, once its processes are gone. */
  started?: boolean;
  /** Work of its attempts that outlives them (process trees being ended); see WorkHolder. */
  held?: Promise<unknown>[];
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  p.catch(() => {}); // observed through Promise.race; never an unhandled rejection
  return p;
}

function isRetryable(error: unknown, flowSignal: AbortSignal): boolean {
  if (flowSignal.aborted) return false;
  if (error instanceof StopReason || error instanceof CancelledError) return false;
  return !(error instanceof CairnError && !error.retryable);
}

function stopInfo(reason: unknown): ErrorInfo {
  if (reason instanceof StopReason) {
    if (reason.kind === "fail-fast") {
      return { name: "FailFast", message: `Stopped because task "${String(reason.detail)}" failed and the failure policy is fail-fast.` };
    }
    return toErrorInfo(new CancelledError(reason.detail));
  }
  return toErrorInfo(reason instanceof CairnError ? reason : new CancelledError(reason));
}
