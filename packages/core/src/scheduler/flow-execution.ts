/**
 * The scheduler: walks a validated graph, queues each task the moment its last input is
 * ready, bounded by the flow's slots and named pools' (flow-slots.ts), highest critical-path priority first;
 * applies the failure policy and stops. What happens to one task is the task pipeline in
 * ../pipeline/ (inputs → cache lookup and single flight → task run → attempts with timeout
 * and retries → output checks → record), which needs no scheduler. A map or sweep node expands
 * into item nodes once its list is known (map-run.ts); each item goes through the same pipeline
 * as any node, and the map ends when its items have. A node with a condition runs only when it
 * holds; when it is false, the node and its dependants are skipped.
 */
import type { FlowNode, TaskDefinition } from "../definition/flow-definition.ts";
import { forcedOf, itemPastList } from "../caching/rerun.ts";
import type { TaskCache } from "../caching/task-cache.ts";
import type { FlowGraph } from "../graph/flow-graph.ts";
import { describeRef, type RefValue, isPlainObject, isRef } from "../definition/ref.ts";
import { isSerializableValue, assertSerializable } from "../definition/serializable.ts";
import { ConditionError, MapItemsFailedError, MapOverError, MinSuccessError } from "../errors.ts";
import { absentOutputWarning, type AbsentOutputNotice, inputsOnce, mayLackOutput, resolveValue } from "../pipeline/inputs.ts";
import type { TaskInterceptor } from "../pipeline/intercept.ts";
import type { LookupTask } from "../pipeline/lookup.ts";
import type { TaskSlots } from "../pipeline/attempts.ts";
import type { PipelineTask } from "../pipeline/run-task.ts";
import { notStartedInfo, StopReason, stopInfo } from "../pipeline/stop.ts";
import { TaskPipeline } from "../pipeline/task-pipeline.ts";
import type { UnstartedOutcome } from "../pipeline/task-run.ts";
import { FlowSlots, type Pool, type SlotTicket } from "./flow-slots.ts";
import { MapRun, requiredItems } from "./map-run.ts";
import { type ErrorInfo, type FlowStatus, type RunEvent, type TaskStatus, noteErrorSource, placeNode, toErrorInfo } from "../run/events.ts";
import type { SecretRegistry } from "../run/secrets.ts";
import { elapsedMs, endTask, type TaskResult } from "../run/task-result.ts";
import type { Tracker } from "../tracking/tracker.ts";

export type { TaskResult } from "../run/task-result.ts";

/** What a flow run does when a task fails for good. */
export type FailurePolicy = "fail-fast" | "continue";

/** The error name of a task skipped because a condition was false: such a skip does not fail the flow. */
export const CONDITION_FALSE = "ConditionFalse";

/** Items of a map in flight at once when it sets no `concurrency`: the flow's limit, within these bounds. */
const MAP_WINDOW = { min: 64, max: 1024 } as const;

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
  /** The run's environment (see PipelineSettings.env). */
  env: NodeJS.ProcessEnv;
  /** Folder for task artifacts when the tracker keeps none locally. */
  workDir: string;
  /** The cache, when on. */
  cache?: {
    tasks: TaskCache;
    /** Look nothing up (results are still stored). */
    refresh: boolean;
    /** The nodes that skip the lookup, by position (see caching/rerun.ts); none when absent. */
    forced?: Uint8Array;
    /** Items of maps and sweeps that skip the lookup, by id (`fit[3]`). */
    forcedItems?: ReadonlySet<string>;
    /** The run opened the store and closes it at the end. */
    ownStore?: boolean;
  };
  emit: (event: RunEvent) => void;
  /** Hooks around every attempt (RunOptions.interceptors). */
  interceptors?: readonly TaskInterceptor[];
  /** Tags every task run carries (MLflow's source tags), set in its create request. */
  runTags?: Readonly<Record<string, string>>;
}

export class FlowExecution {
  readonly results = new Map<string, TaskResult>();
  /** Per-node state by position in the definition; a node's dependants are positions in it (the graph's own lists): the hot path does no map lookups. */
  private readonly states: NodeState[];
  /** Position of each node id. */
  private readonly index: ReadonlyMap<string, number>;
  /** The flow's slots and its pools', one queue (flow-slots.ts). */
  private readonly slots: FlowSlots;
  private readonly controller = new AbortController();
  private readonly cancelListeners = new Set<(reason: unknown) => void>();
  /** What happens to each task (../pipeline/task-pipeline.ts). */
  readonly pipeline: TaskPipeline;
  private remaining: number;
  /** Maps and sweeps expanding now. */
  private readonly maps = new Set<MapRun>();
  private finished!: (status: FlowStatus) => void;
  /** start() was called: a cancel before it records no run for the tasks, none of which started. */
  private walking = false;
  readonly done: Promise<FlowStatus>;

  constructor(private readonly s: ExecutionSettings) {
    this.slots = new FlowSlots(s.concurrency, s.pools);
    this.remaining = s.graph.indexed.order.length; // not `graph.order`, which makes the id-keyed list of every node
    this.done = new Promise((resolve) => (this.finished = resolve));
    const { tracker, experimentId, flowRunId, secrets, env, workDir, params, emit, interceptors, runTags } = s;
    const flowName = s.graph.definition.name;
    const signal = this.controller.signal;
    this.pipeline = new TaskPipeline({ flowName, params, tracker, experimentId, flowRunId, secrets, env, workDir, emit, signal, closeBeside: true, ...(interceptors ? { interceptors } : {}), ...(runTags ? { runTags } : {}), ...(s.cache ? { cache: s.cache.tasks } : {}) });
    const list = s.graph.definition.nodes;
    const { index, dependencies, dependants, priority, order } = s.graph.indexed;
    this.index = index;
    const forced = s.cache?.forced;
    const states: NodeState[] = (this.states = new Array(list.length));
    for (let i = 0; i < list.length; i++) {
      const node = list[i]!;
      states[i] = new NodeState(node, dependencies[i]!.length, priority[i]!, forced?.[i] === 1, dependants[i]!);
    }
    // Results in topological order, as before: `wait()` lists tasks in this order.
    for (const i of order) this.results.set(list[i]!.id, states[i]!.result);
  }

  /** Starts the walk; `done` resolves with the flow's status. */
  start(): void {
    this.walking = true;
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

  /** Cancels the run: running tasks see their signal abort, the rest end `cancelled`. */
  cancel(reason?: unknown): void {
    for (const listener of this.cancelListeners) listener(reason);
    this.stop(new StopReason("cancel", reason));
  }

  /**
   * Stops the run because the flow failed outside its tasks (`error`): as a cancel stops it, but
   * the tasks it ends carry that error (`FlowFailed`), not a cancel, and the flow ends `failed`.
   */
  fail(error: unknown): void {
    this.stop(new StopReason("flow-failed", error));
  }

  /**
   * Calls `listener` at every cancel from now on, also one that comes after the run stopped (a
   * fail-fast, every task done), so that what the run's end waits on can stop waiting; returns
   * what removes it.
   */
  onCancel(listener: (reason: unknown) => void): () => void {
    this.cancelListeners.add(listener);
    return () => this.cancelListeners.delete(listener);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Outputs of a finished task. */
  readonly outputOf = (id: string): unknown => {
    const i = this.index.get(id);
    return i === undefined ? undefined : this.states[i]!.output;
  };

  /** The task of a node. */
  private readonly taskOf = (id: string): TaskDefinition | undefined => {
    const i = this.index.get(id);
    return i === undefined ? undefined : this.states[i]!.node.task;
  };

  /** The outputs (`task\0output`) a task did not return that a ref took: each is warned of once a run. */
  private readonly absentSaid = new Set<string>();

  /**
   * A ref took an output a task's returned object lacks: passed on as `undefined`, as a function
   * task's optional output may be, but likely a typo, so a warning says it (once per task and
   * output), unless the task's output schema makes the output optional.
   */
  private readonly absentOutput: AbsentOutputNotice = (absent) => {
    const said = `${absent.upstream}\0${absent.output}`;
    if (this.absentSaid.has(said)) return;
    this.absentSaid.add(said);
    // A map's or sweep's node outputs the group's fields, whatever its items' task returns or declares optional.
    const i = this.index.get(absent.upstream);
    const group = i === undefined ? undefined : this.states[i]!.node.map?.kind;
    if (!group && mayLackOutput(absent.task, absent.output)) return;
    const message = absentOutputWarning(group ? { ...absent, group } : absent);
    this.s.emit({ type: "log", level: "warn", runId: this.s.flowRunId, task: absent.nodeId ?? absent.upstream, message, time: Date.now() });
  };

  /**
   * The flow's outputs, resolved: one that is an output a process task never wrote throws
   * MissingOutputError naming that flow output, as a task taking it would fail.
   */
  resolveOutputs(outputs: Readonly<Record<string, unknown>>): Record<string, unknown> {
    return Object.fromEntries(Object.entries(outputs).map(([name, value]) => [name, resolveValue(value, this.s.params, this.outputOf, this.taskOf, undefined, name, this.absentOutput)]));
  }

  /** Resolves refs as `resolve`, for node `nodeId`: an output a process task never wrote throws MissingOutputError. */
  private resolveFor(value: unknown, nodeId: string): unknown {
    return resolveValue(value, this.s.params, this.outputOf, this.taskOf, nodeId, undefined, this.absentOutput);
  }

  /** Queues nodes that became ready together, highest priority first: a free slot goes to the first one added. */
  private readyAll(states: NodeState[]): void {
    if (states.length > 1) states.sort((a, b) => b.priority - a.priority);
    for (const state of states) this.ready(state);
  }

  private ready(state: NodeState): void {
    const { node } = state;
    if (node.condition !== undefined && !this.holds(state, node.condition)) return;
    state.result.status = "queued";
    const time = (state.queuedAt = Date.now());
    this.s.emit(placeNode({ type: "task", status: "queued", runId: this.s.flowRunId, task: node.id, time }, node));
    if (node.map) return this.expand(state);
    state.pool = this.slots.pool(node.task.pool);
    if (!this.pipeline.caches(state)) return this.enqueue(state);
    // The cache is asked before the task holds a slot, so a hit never waits for one; the task waits
    // for its slot meanwhile, in the place its priority gives it, so that a miss runs there: a
    // task that becomes ready as the one before it ends is queued before that one's slot goes
    // free, while its lookup would take longer (it hashes its inputs). Should the lookup wait for
    // another computation of the key, the task gives its place up (keyWait) and queues again after.
    state.looking = true;
    // (Unnamed arrows: tsx wraps every named closure in a defineProperty call.)
    state.keyWait = () => this.giveBack(state);
    state.ticket = this.slots.take(state.priority, state.pool, () => {
      state.ticket = undefined;
      state.holding = true;
      if (!state.looking) void this.runNode(state); // a miss; during the lookup, lookup() decides
    });
    void this.lookup(state);
  }

  /** Queues the task for its slots; it runs once it holds them. */
  private enqueue(state: NodeState): void {
    state.ticket = this.slots.take(state.priority, state.pool, () => {
      state.ticket = undefined;
      state.holding = true;
      void this.runNode(state);
    });
  }

  /** The cache stage (../pipeline/lookup.ts): a hit completes the task `cached`, a miss runs it once it holds its slot. */
  private async lookup(state: NodeState): Promise<void> {
    const started = performance.now();
    const found = await this.pipeline.lookup(state, inputsOnce(state, this.s.params, this.outputOf, this.taskOf, this.absentOutput));
    state.looking = false;
    state.keyWait = undefined;
    if (found.kind === "miss") {
      // Ended meanwhile (a sweep item past its stopWhen's cut): it never runs.
      if (state.ended) return this.giveBack(state);
      if (state.holding) void this.runNode(state);
      else if (state.ticket === undefined && !this.controller.signal.aborted) this.enqueue(state); // it gave its place up (keyWait)
      return; // else it runs when its turn comes
    }
    if (found.kind === "failed") {
      this.complete(state, "failed", started, toErrorInfo(found.error));
      this.pipeline.unstarted(state, { status: "failed", error: found.error });
      this.afterFailure(state);
    } else if (found.kind === "hit") {
      state.output = state.result.outputs = found.entry.outputs.values;
      state.result.cachedFrom = found.entry.sourceRunId;
      this.complete(state, "cached", started);
      state.key = undefined; // see runNode
    } // else stop() settled it
    // Its slot, given back after its dependants were queued (complete): they come first for it.
    this.giveBack(state);
  }

  /** Gives back the slots the task holds, or its place in the queue for them. */
  private giveBack(state: NodeState): void {
    if (state.holding) {
      state.holding = false;
      this.slots.free(state.pool);
    } else if (state.ticket) {
      this.slots.drop(state.ticket);
      state.ticket = undefined;
    }
  }

  /**
   * What a task with retries calls to give its slots back while it waits out a backoff, and to
   * take them again, at its priority, before its next attempt (../pipeline/attempts.ts). Taking
   * them waits for ever once the flow stopped (the queue was dropped): the attempts race it
   * against the flow's stop.
   */
  private retrySlots(state: NodeState): TaskSlots {
    return {
      release: () => this.giveBack(state),
      retake: () =>
        state.holding
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              this.slots.take(state.priority, state.pool, () => {
                state.holding = true;
                resolve();
              });
            }),
    };
  }

  /** A task that holds its slots: the task pipeline (../pipeline/run-task.ts), then what its outcome means for the flow; never rejects. */
  private async runNode(state: NodeState): Promise<void> {
    try {
      if (this.controller.signal.aborted || state.ended) return; // stop() or its sweep's stopWhen already settled it
      state.started = true;
      if (state.node.task.retry.retries > 0) state.slots = this.retrySlots(state);
      const started = performance.now();
      const outcome = await this.pipeline.run(state, inputsOnce(state, this.s.params, this.outputOf, this.taskOf, this.absentOutput));
      // A task that ran has its duration from the pipeline (its attempts'); one another process
      // computed meanwhile (a hit) has its wait for that, as a hit found by the lookup has its lookup.
      const ran = ranSince(state.result, started);
      if (outcome.ok) {
        state.output = state.result.outputs = outcome.outputs;
        if (outcome.cachedFrom === undefined) this.succeeded(state, ran, outcome.recorded);
        else {
          state.result.cachedFrom = outcome.cachedFrom;
          this.complete(state, "cached", started);
        }
      } else if (outcome.cancelled) {
        this.complete(state, "cancelled", ran, stopInfo(outcome.stop));
        // Cancelled before its run was created (while its inputs' artifacts were fetched).
        this.pipeline.unstarted(state, withKey({ status: "cancelled", stop: stopInfo(outcome.stop) }, state));
      } else {
        this.complete(state, "failed", ran, toErrorInfo(outcome.error));
        // Failed before its run was created (its inputs): recorded now, beside the failure policy, not before it.
        this.pipeline.unstarted(state, { status: "failed", error: outcome.error });
        this.afterFailure(state);
      }
      const releasing = this.pipeline.release(state);
      if (releasing) await releasing;
    } finally {
      // Nothing reads its cache key from here on (a closing beside the flow has its own copy): its
      // ingredients, every input's digest, were kept for every task to the run's end (BENCHMARKS.md).
      state.key = undefined;
      // Held unless it gave them back for a backoff and the flow stopped before it took them again.
      this.giveBack(state);
      state.slots = undefined;
    }
  }

  /**
   * A task that ran and succeeded: its dependants start now, with its outputs; its `succeeded`
   * waits for its run to be closed and its result stored when that goes on beside the flow
   * (run-task.ts closeBeside), so a `succeeded` the user saw survives a kill -9 (the next run
   * finds its entry). One whose result could not be stored says so (TaskResult.recorded).
   */
  private succeeded(state: NodeState, started: number | undefined, recorded: false | Promise<boolean> | undefined): void {
    if (recorded === false) state.result.recorded = false;
    if (!(recorded instanceof Promise)) return this.complete(state, "succeeded", started);
    const closed = recorded.then((stored) => {
      if (!stored) state.result.recorded = false;
    });
    this.complete(state, "succeeded", started, undefined, closed);
  }

  private afterFailure(state: NodeState): void {
    if (state.map) return; // an item: its map applies the policy (itemEnded)
    if (this.s.failurePolicy === "fail-fast") this.stop(new StopReason("fail-fast", state.node.id));
    else this.skipDependants(state, state.node.id);
  }

  private skipDependants(state: NodeState, failed: string, condition?: string): void {
    // Depth first, in the order recursion would take, but on a stack of its own: a chain of
    // thousands of tasks below one failure or false condition would overflow the call stack.
    const stack = state.dependants.slice().reverse();
    while (stack.length) {
      const next = this.states[stack.pop()!]!;
      if (next.result.status !== "pending") continue;
      if (condition === undefined) {
        this.complete(next, "skipped", undefined, { name: "UpstreamFailed", message: `Skipped because upstream task "${failed}" did not succeed.` });
        this.pipeline.unstarted(next, { status: "skipped", reason: "upstream-failed", because: failed });
      } else {
        this.complete(next, "skipped", undefined, { name: CONDITION_FALSE, message: `Skipped because the condition of upstream task "${failed}" (${condition}) is false.` });
        this.pipeline.unstarted(next, { status: "skipped", reason: "condition-false", because: failed, condition });
      }
      for (let i = next.dependants.length - 1; i >= 0; i--) stack.push(next.dependants[i]!);
    }
  }

  /**
   * Whether a node's condition holds. When it is false, the node and its dependants are skipped
   * (reason "condition false"); when it is not a boolean, the node fails with a ConditionError.
   */
  private holds(state: NodeState, condition: RefValue): boolean {
    const id = state.node.id;
    const test = state.node.conditionTest;
    const text = (isRef(condition) ? describeRef(condition) : JSON.stringify(condition)) + (test ? " tested by when()" : "");
    let value: unknown;
    try {
      value = this.resolveFor(condition, id);
    } catch (error) {
      this.conditionFailed(state, error);
      return false;
    }
    if (test) {
      try {
        value = test(value);
      } catch (thrown) {
        // The user's test threw, not the task: said as its condition's, at the when() call.
        const error = new ConditionError(id, isRef(condition) ? describeRef(condition) : JSON.stringify(condition), undefined, { cause: thrown, mask: (text) => this.s.secrets.mask(text) });
        noteErrorSource(error, state.node.conditionAt?.());
        this.conditionFailed(state, error);
        return false;
      }
    }
    if (value === true) return true;
    if (value === false) {
      this.complete(state, "skipped", undefined, { name: CONDITION_FALSE, message: `Skipped because its condition (${text}) is false.` });
      this.pipeline.unstarted(state, { status: "skipped", reason: "condition-false", because: id, condition: text });
      this.skipDependants(state, id, text);
      return false;
    }
    this.conditionFailed(state, new ConditionError(id, text, value));
    return false;
  }

  /** The node's condition could not be told (`error`): it fails without starting. */
  private conditionFailed(state: NodeState, error: unknown): void {
    this.complete(state, "failed", undefined, toErrorInfo(error));
    this.pipeline.unstarted(state, { status: "failed", error });
    this.afterFailure(state);
  }

  /**
   * A map or sweep whose list is known: checked (an array, of serialisable items, long enough for
   * `minSuccess`), its own run created (its items' runs nest under it), then its items started a
   * window at a time (map-run.ts). A bad list fails the map node before any item exists.
   */
  private expand(state: NodeState): void {
    const { node } = state;
    const spec = node.map!;
    state.started = true;
    const started = performance.now();
    let run: MapRun;
    try {
      const items = this.resolveFor(spec.over, node.id);
      if (!Array.isArray(items)) throw new MapOverError(node.id, isRef(spec.over) ? describeRef(spec.over) : "a literal", items);
      for (let k = 0; k < items.length; k++) {
        if (!isSerializableValue(items[k])) assertSerializable(items[k], `Map "${node.id}" item ${k}`);
      }
      const required = requiredItems(spec, items.length);
      if (required === undefined) throw new MinSuccessError(node.id, spec.minSuccess!, items.length);
      const base = this.resolveFor(node.inputs, node.id) as Record<string, unknown>;
      const window = spec.concurrency ?? Math.min(Math.max(this.s.concurrency, MAP_WINDOW.min), MAP_WINDOW.max);
      run = new MapRun(node, items, base, required, window, started, this.s.failurePolicy === "fail-fast");
    } catch (error) {
      this.complete(state, "failed", started, toErrorInfo(error));
      this.pipeline.unstarted(state, { status: "failed", error });
      this.afterFailure(state);
      return;
    }
    state.result.expands = spec.kind;
    if (spec.select) state.result.select = spec.select;
    state.result.status = "running";
    this.maps.add(run);
    this.s.emit({ type: "task", status: "running", runId: this.s.flowRunId, task: node.id, items: run.items.length, time: Date.now() });
    this.forceItems(state, run.items.length);
    this.pipeline.groupRun(node, run.items.length).then(
      (runId) => {
        run.runId = runId;
        if (runId) state.result.runId = runId;
        this.pump(run, state);
      },
      (error: unknown) => {
        run.error = error;
        run.halted = true;
        this.pump(run, state);
      },
    );
  }

  /**
   * `--rerun fit[3]` of this map, whose list is known now: an item in it forces what is downstream
   * of the map (a list known before the run did so already, caching/rerun.ts); an item past it
   * forces nothing, which is said.
   */
  private forceItems(state: NodeState, length: number): void {
    const mapId = state.node.id;
    for (const { item, index } of forcedOf(this.s.cache?.forcedItems, mapId)) {
      if (index < length) this.forceDownstream(state);
      else this.s.emit({ type: "log", level: "warn", runId: this.s.flowRunId, task: mapId, message: itemPastList(item, mapId, length), time: Date.now() });
    }
  }

  /** Everything downstream of `state` skips the lookup, as `--rerun` of a node forces its dependants. */
  private forceDownstream(state: NodeState): void {
    const stack = state.dependants.slice();
    while (stack.length) {
      const next = this.states[stack.pop()!]!;
      // A forced node's dependants are forced with it: in caching/rerun.ts as here.
      if (next.forceRun) continue;
      next.forceRun = true;
      stack.push(...next.dependants);
    }
  }

  /** Starts the map's next items while its window has room; ends the map once nothing is left in flight. */
  private pump(run: MapRun, parent: NodeState): void {
    if (this.controller.signal.aborted) run.halted = true;
    while (run.canStart) {
      const index = run.next++;
      const node = run.itemNode(index);
      const item = new NodeState(node, 0, parent.priority, parent.forceRun || this.s.cache?.forcedItems?.has(node.id) === true, NO_DEPENDANTS);
      item.map = run;
      item.parent = parent;
      const result = item.result;
      result.parent = parent.node.id;
      result.item = index;
      if (item.node.item!.key !== undefined) result.itemKey = item.node.item!.key;
      this.results.set(item.node.id, result);
      run.inFlight++;
      run.active.add(item);
      this.ready(item);
    }
    if (run.over) this.endMap(run, parent);
  }

  /** An item ended: its map takes its outputs or its failure, then starts the next items or ends. */
  private itemEnded(item: NodeState, status: Exclude<TaskStatus, "pending">): void {
    const run = item.map!;
    run.active.delete(item);
    const ok = status === "succeeded" || status === "cached";
    const error = status === "failed" ? (item.result.error?.message ?? "failed") : undefined;
    const lost = run.itemEnded(item.node.item!.index, item.node.id, ok, status === "cached", item.output, error, status === "skipped" ? "skipped" : "cancelled");
    if (lost && this.s.failurePolicy === "fail-fast") this.stop(new StopReason("fail-fast", item.node.id));
    if (run.stoppedEarly && !this.controller.signal.aborted) this.skipPastCut(run);
    this.pump(run, item.parent!);
  }

  /**
   * A sweep stopped by its stopWhen starts no trial past its cut (README: it "stops starting
   * trials"): one made but still waiting for its slots, or its lookup, is skipped, saying which
   * trial met stopWhen, and gives its place back. A trial before the cut still runs: it counts.
   */
  private skipPastCut(run: MapRun): void {
    const cut = run.firstSatisfied;
    const because = `${run.node.id}[${cut}]`;
    for (const item of [...run.active] as NodeState[]) {
      if (item.started || item.ended || item.node.item!.index <= cut) continue;
      this.giveBack(item);
      run.skippedPastCut++;
      this.complete(item, "skipped", undefined, { name: "SweepStopped", message: `Skipped because trial "${because}" met the sweep's stopWhen before it started.` });
      this.pipeline.unstarted(item, { status: "skipped", reason: "sweep-stopped", because });
    }
  }

  /** The map is over: its outputs (a sweep's best trial), its run ended with its summary, its status. */
  private endMap(run: MapRun, state: NodeState): void {
    if (state.ended) return;
    this.maps.delete(run);
    const node = state.node;
    const spec = run.spec;
    let status: "succeeded" | "failed" | "cancelled";
    let error: unknown = run.error;
    let summary: Parameters<TaskPipeline["endGroup"]>[2]["best"];
    if (error === undefined && run.lost) {
      // Its failures by item index, not in the order they ended: the same message every time.
      error = run.selectorError() ?? new MapItemsFailedError(node.id, [...run.countedFailures()].sort((a, b) => a.index - b.index), run.requiredNow(), run.countedItems(), run.stoppedEarly ? `${node.id}[${run.firstSatisfied}]` : undefined, spec.kind);
    }
    if (error !== undefined) status = "failed";
    else if (run.next < run.items.length && !run.stoppedEarly) status = "cancelled";
    else if (run.succeeded + run.failures.length + run.skippedPastCut < run.next) status = "cancelled"; // items cancelled by a stop
    else status = "succeeded";
    if (status === "succeeded") {
      try {
        if (spec.kind === "sweep") {
          const best = run.sweepOutputs(this.results);
          state.output = best;
          const metrics: Record<string, number> = {};
          if (isPlainObject(best.outputs)) {
            for (const [k, v] of Object.entries(best.outputs)) if (typeof v === "number" && Number.isFinite(v)) metrics[k] = v;
          }
          const bestResult = this.results.get(best.trial);
          summary = { trial: best.trial, params: best.params, metrics, ...(bestResult ? { result: bestResult } : {}) };
        } else {
          state.output = run.mapOutputs();
        }
        state.result.outputs = state.output;
      } catch (e) {
        status = "failed";
        error = e;
      }
    }
    // From its list to its last item's end: its result's, and its run's (DURATION_TAG), which `cairn show` and the report give.
    const durationMs = (state.result.durationMs = elapsedMs(run.started));
    // Trials past a stopWhen's cut that started before the stop was known: they ended, ran or hit, but do not count.
    const uncounted: TaskResult[] = [];
    if (run.stoppedEarly) {
      for (let k = run.firstSatisfied + 1; k < run.next; k++) {
        const trial = this.results.get(`${node.id}[${k}]`);
        if (trial && (trial.status === "succeeded" || trial.status === "failed" || trial.status === "cached")) uncounted.push(trial);
      }
    }
    if (run.runId) {
      this.pipeline.endGroup(node, run.runId, {
        status,
        items: run.items.length,
        succeeded: run.succeeded,
        failed: run.failures.length,
        cached: run.cached,
        cancelled: run.cancelled,
        skipped: run.skipped,
        notStarted: run.notStarted,
        durationMs,
        ...(summary ? { best: summary } : {}),
        ...(run.stoppedEarly && status === "succeeded" ? { stoppedAt: `${node.id}[${run.firstSatisfied}]` } : {}),
        ...(uncounted.length ? { uncounted } : {}),
        ...(error !== undefined ? { error } : {}),
      });
    }
    if (run.notStarted > 0) state.result.notStarted = run.notStarted;
    if (status === "failed") {
      this.complete(state, "failed", undefined, toErrorInfo(error));
      this.afterFailure(state);
    } else this.complete(state, status, undefined, status === "cancelled" ? stopInfo(this.controller.signal.reason) : undefined);
  }

  private stop(reason: StopReason): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(reason);
    this.pipeline.stopped();
    this.slots.clear();
    // A task stopped before it started was not cancelled by anyone unless the stop is a cancel:
    // it is skipped, because of the task that failed, or of the flow run (whose error says why).
    const outcome: UnstartedOutcome =
      reason.kind === "cancel"
        ? ({ status: "cancelled", stop: stopInfo(reason) } as const)
        : reason.kind === "fail-fast"
          ? ({ status: "skipped", reason: "fail-fast", because: String(reason.detail) } as const)
          : ({ status: "skipped", reason: "flow-failed", because: this.s.flowRunId } as const);
    // A run stopped before it started its tasks records none of them: its flow run alone, KILLED
    // when cancelled (most often a hurry to be gone, and the server may not be answering), FAILED
    // when its own record could not be made (the store that would take theirs).
    const record = this.walking;
    for (const i of this.s.graph.indexed.order) {
      const state = this.states[i]!;
      const status = state.result.status;
      // A task that took its slot ends through its run (runNode), cancelled, whatever its status says yet.
      if ((status === "pending" || status === "queued") && !state.started) {
        this.complete(state, outcome.status, undefined, notStartedInfo(reason));
        if (record) this.pipeline.unstarted(state, withKey(outcome, state));
      }
    }
    // Items made but not started end now; their maps end once their running items have.
    for (const run of [...this.maps]) {
      run.halted = true;
      for (const item of [...run.active] as NodeState[]) {
        if (item.started || item.ended) continue;
        this.complete(item, outcome.status, undefined, notStartedInfo(reason));
        this.pipeline.unstarted(item, withKey(outcome, item));
      }
    }
    if (this.remaining === 0) this.finished(this.flowStatus());
  }

  /**
   * The task ended: its result and event (../run/task-result.ts), then the dependants it readies.
   * With `closing`, the event waits for it (see `succeeded`), and so does its map's, when it is an item.
   */
  private complete(state: NodeState, status: Exclude<TaskStatus, "pending">, started: number | undefined, error?: ErrorInfo, closing?: Promise<void>): void {
    // One terminal event per task: a lookup that comes back after stop() settled its task changes nothing.
    if (state.ended) return;
    state.ended = true;
    state.inputs = undefined; // needed until the task ends, not after: 10,000-node flows keep them all otherwise
    const event = endTask(state.result, status, started, error, this.s.secrets, this.s.flowRunId);
    // A map's items closing beside the flow: its own event follows theirs.
    const waitFor = closing ?? (state.closings?.length ? Promise.all(state.closings).then(() => {}) : undefined);
    if (waitFor === undefined) this.s.emit(event);
    else this.emitAfter(state, status, waitFor);
    if (state.map) return this.itemEnded(state, status);
    if (status === "succeeded" || status === "cached") {
      const ready: NodeState[] = [];
      for (const k of state.dependants) {
        const next = this.states[k]!;
        if (--next.waiting === 0 && next.result.status === "pending" && !this.controller.signal.aborted) ready.push(next);
      }
      this.readyAll(ready);
    }
    if (--this.remaining === 0) this.finished(this.flowStatus());
  }

  /** The task's terminal event once `closing` is over, with what it found (TaskResult.recorded); the flow's end waits for it. */
  private emitAfter(state: NodeState, status: Exclude<TaskStatus, "pending">, closing: Promise<void>): void {
    const emitted = closing.then(() => this.s.emit(endTask(state.result, status, undefined, state.result.error, this.s.secrets, this.s.flowRunId)));
    if (state.parent) (state.parent.closings ??= []).push(emitted);
    this.pipeline.track(emitted);
  }

  private flowStatus(): FlowStatus {
    const reason = this.controller.signal.reason;
    if (reason instanceof StopReason && reason.kind === "cancel") return "cancelled";
    for (const r of this.results.values()) {
      if (r.status === "succeeded" || r.status === "cached" || r.parent !== undefined) continue; // an item counts through its map
      if (r.status === "skipped" && r.error?.name === CONDITION_FALSE) continue;
      return "failed";
    }
    return "succeeded";
  }
}

/**
 * A task stopped before it started, with the key its lookup had computed by then (a task waiting
 * for a slot has it; one whose lookup was still hashing its inputs does not, and is not held up
 * for it): recorded on its run, so that a later plan says the key was cancelled, not new.
 */
function withKey(outcome: UnstartedOutcome, task: { readonly key?: { readonly key: string } }): UnstartedOutcome {
  if (outcome.status === "failed" || task.key === undefined) return outcome;
  return { ...outcome, key: task.key.key };
}

/**
 * When a task that ran without a duration of its own began, for its duration to be the span this
 * process saw (as before durations were the attempts'): a worker of a version before that sends
 * none back. Undefined when it has one, or started no attempt (it then has none).
 */
function ranSince(result: TaskResult, started: number): number | undefined {
  return result.durationMs === undefined && result.attempts > 0 ? started : undefined;
}

/** The dependants of an item of a map or sweep: none (its map's node has them). */
const NO_DEPENDANTS: readonly number[] = Object.freeze([]);

/**
 * What the scheduler keeps per node; the pipeline's stages keep their part of it (LookupTask,
 * PipelineTask). Every field is set from the start, so all nodes share one shape.
 */
class NodeState implements LookupTask, PipelineTask {
  readonly result: TaskResult;
  output: unknown = undefined;
  /** Resolved and validated inputs, once known. */
  inputs: Record<string, unknown> | undefined = undefined;
  key: LookupTask["key"] = undefined;
  settleFlight: LookupTask["settleFlight"] = undefined;
  releaseLease: LookupTask["releaseLease"] = undefined;
  started: boolean | undefined = undefined;
  unused: LookupTask["unused"] = undefined;
  missReason: LookupTask["missReason"] = undefined;
  held: PipelineTask["held"] = undefined;
  slots: PipelineTask["slots"] = undefined;
  /** Its pool's slots, when it names a pool. */
  pool: Pool | undefined = undefined;
  /** It holds a slot of the flow and one of its pool (`pool`). */
  holding = false;
  /** Its cache lookup is under way. */
  looking = false;
  /** Its place in the queue for its slots while it waits there during its lookup (dropped at a hit). */
  ticket: SlotTicket | undefined = undefined;
  keyWait: (() => void) | undefined = undefined;
  queuedAt: number | undefined = undefined;
  /** Its terminal event was emitted. */
  ended = false;
  /** For an item: its map's run and the map's node. */
  map: MapRun | undefined = undefined;
  parent: NodeState | undefined = undefined;
  /** For a map: its items' events still waiting for their closings (complete); the map's own waits for them. */
  closings: Array<Promise<void>> | undefined = undefined;

  constructor(
    readonly node: FlowNode,
    /** Upstream nodes not finished yet. */
    public waiting: number,
    /** Critical-path priority. */
    readonly priority: number,
    /** --rerun / --refresh: the lookup is skipped. */
    public forceRun: boolean,
    /**
     * Its dependants, by position in FlowExecution.states: the graph's own list (IndexedGraph.dependants),
     * not an array of NodeStates of its own, one more per node for the whole run (BENCHMARKS.md, "Why the code is shaped so").
     */
    readonly dependants: readonly number[],
  ) {
    this.result = { task: node.id, status: "pending", attempts: 0 };
  }
}
