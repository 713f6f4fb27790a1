import { CacheBackendError, type CacheEntry, diffIngredients, type ExpiredEntry, type IngredientChange, nearestEntry } from "@cairn/cache";
import type { FlowDefinition, FlowNode } from "../definition/flow-definition.ts";
import { describeRef, forEachRef, isRef } from "../definition/ref.ts";
import { InputValidationError, MapItemsFailedError } from "../errors.ts";
import { MapRun, requiredItems } from "../scheduler/map-run.ts";
import type { TaskResult } from "../run/task-result.ts";
import { OptionError } from "../errors.ts";
import { listsEvery, unknownNameExpected } from "../internal.ts";
import { buildFlowGraph, type FlowGraph } from "../graph/flow-graph.ts";
import { resolveValue, taskInputs } from "../pipeline/inputs.ts";
import { isRetryableError } from "../pipeline/retryable.ts";
import { toErrorInfo } from "../run/events.ts";
import { holderRecordsTo, leaseHolder, recordsElsewhere } from "../pipeline/single-flight.ts";
import { cancelledRunWhy, ERROR_MESSAGE_TAG, ERROR_NAME_TAG, ERROR_TAG, SKIPPED_BECAUSE_TAG, SKIPPED_REASON_TAG, startedNoAttempt, WORKER_TAG } from "../pipeline/task-run.ts";
import type { LeaseHolder } from "../run/events.ts";
import { ABANDONED_TAG, type RunRecord, type Tracker } from "../tracking/tracker.ts";
import { forcedItems, forcedNodes, forcedOf, itemPastList } from "./rerun.ts";
import { diffOptionsOf, type ForeignEntry, foreignReason, type TaskCache, type TaskKey } from "./task-cache.ts";
import { expiredMiss, expiredWords } from "./miss-reason.ts";

/** What a task would do if the flow ran now. */
export interface PlannedTask {
  /** Node id. */
  task: string;
  /**
   * `hit`: its outputs come from the cache; `run`: it would run; `skip`: its condition is false, or
   * it is a trial past a sweep's stop. For a map or sweep node (`items` set), `hit` says that none
   * of its items runs (each hits, or the list is empty): the node has no cache entry of its own, and
   * a run reports it `succeeded`.
   */
  action: "hit" | "run" | "skip";
  /** For hits: the run whose outputs are reused. */
  cachedFrom?: string;
  /** Why it would run: no entry, cache off for the task, an upstream task runs, forced, its inputs fail its schema. */
  reason?: string;
  /** Its cache key, when its inputs are known before running. */
  key?: TaskKey;
  /** The upstream task that runs first, when that is why its key is not known yet (its inputs come from it). */
  upstream?: string;
  /**
   * Another process computes its key now (it holds the key's lease): a run waits for it, then
   * takes the entry it writes as a hit (or computes the key itself, if that process fails).
   */
  computing?: LeaseHolder;
  /** An entry for the key exists, but its source run is recorded in another tracker (see {@link ForeignEntry}). */
  foreign?: ForeignEntry;
  /**
   * An entry for the key exists, but it is past the task's `ttl` (a run deletes it; plan and
   * explain leave it): when it expired, and the run that stored it when (unless it does not parse).
   */
  expired?: { at: number; sourceRunId?: string; createdAt?: number };
  /**
   * No entry for the key, and a run of the task with this key failed (it stored none): the newest
   * such run found, when it started, and its error's first line (`Name: message`, as masked when
   * recorded). Not said to be the key's last run: one may have succeeded since, its entry pruned.
   * Looked for among the experiment's newest failed runs, in one search (see {@link TaskCache.failedRuns}).
   */
  failed?: FailedRun;
  /**
   * No entry for the key, and a run of the task with this key was cancelled (it stored none),
   * none of its failed runs being newer: that run, when it started, and what stopped it, when its
   * run says; also one stopped while it waited for a slot, and one whose process died (kill -9)
   * and a later command closed, or whose queue worker died and another process closed (FAILED
   * too: it did not fail of itself). Found by the same search as {@link failed}; one of the two at most.
   */
  cancelled?: CancelledRun;
  /** For an item of a map or sweep: the map's node id and the item's position. */
  parent?: string;
  item?: number;
  /** For a map or sweep node: its number of items, or `unknown` until an upstream task has run. */
  items?: number | "unknown";
}

/** A failed run of a key: see {@link PlannedTask.failed}. */
export interface FailedRun {
  runId: string;
  startedAt: number;
  error?: string;
  /**
   * Why it failed, in words, when another process closed it failed: `its worker died 3 times
   * running it (PoisonTaskError)` (a queue worker's run, given up as a poison task).
   */
  why?: string;
}

/** A cancelled run of a key: see {@link PlannedTask.cancelled}. */
export interface CancelledRun {
  runId: string;
  startedAt: number;
  /**
   * What stopped it, in words, from the error its run records (masked as recorded):
   * `stopped because task "sq[2]" failed and the failure policy is fail-fast`,
   * `the flow run was cancelled: SIGINT`. Absent when its run records none.
   */
  why?: string;
  /** It was stopped before it started: it waited for a slot (or, an item, its turn) when the flow stopped. */
  waiting?: true;
  /**
   * Its process ended without closing it (kill -9, a crash); a later command closed it KILLED. A
   * queue worker's run: `why` says its worker stopped, and the coordinator or another worker closed it.
   */
  interrupted?: true;
}

/** Options of {@link planFlow}. */
export interface PlanOptions {
  params: Record<string, unknown>;
  cache: TaskCache;
  /** Tasks that run whatever the cache holds (with their dependants). */
  rerun?: readonly string[];
  /** Everything runs. */
  refresh?: boolean;
}

/**
 * Which tasks would hit the cache, without running anything. A task's key is
 * known when all its upstream tasks hit (their outputs come from the entries);
 * below a task that runs, everything runs unless that task's outputs turn out
 * unchanged, which only running can tell (the plan says so).
 */
export async function planFlow(definition: FlowDefinition, options: PlanOptions): Promise<PlannedTask[]> {
  return (await planNodes(definition, options)).plan;
}

/**
 * What explain plans for one task: that node and the nodes it depends on, and of a map whose
 * item it asks about, that item alone (its key needs no other item).
 */
interface PlanFocus {
  nodes: ReadonlySet<string>;
  item?: { map: string; index: number };
}

/** The plan, with the nodes it is about: the flow's and the items of the maps whose lists are known; with `focus`, only those it names. */
async function planNodes(
  definition: FlowDefinition,
  options: PlanOptions,
  focus?: PlanFocus,
  graph: FlowGraph = buildFlowGraph(definition),
): Promise<{ plan: PlannedTask[]; nodes: Map<string, FlowNode>; nearest: (node: FlowNode, key: TaskKey) => Promise<Nearest>; known: Map<string, Nearest>; unended: ReadonlySet<string> }> {
  const outOfFocus = (id: string) => focus !== undefined && !focus.nodes.has(id);
  const nodes = new Map(graph.nodes);
  const rows: PlannedTask[] = [];
  const outputs = new Map<string, unknown>();
  const plan = new Map<string, PlannedTask>();
  /** Rows of the items of each map whose list is known. */
  const itemRows = new Map<string, PlannedTask[]>();
  const forced = forcedNodes(graph, options.rerun ?? [], false, options.params);
  const forcedItemIds = forcedItems(graph, options.rerun ?? []);
  const isForced = (id: string) => forced?.[graph.indexed.index.get(id)!] === 1;
  // The hits' source runs are asked about in one request, not one per task.
  if (!options.refresh) options.cache.checkSourceRuns(await sourceRunsAhead(graph, options.params, options.cache, (id) => isForced(id) || outOfFocus(id)));
  /** Keys planned to run, with the node that computes each: a run computes a key once, the other nodes of that key take its entry. */
  const running = new Map<string, string>();
  /** Nodes planned as hits whose outputs come from a node of the same key that runs first: their dependants wait for it. */
  const waitsFor = new Map<string, string>();
  /** Nodes whose key has no entry and no failed or cancelled run that the search found. */
  const unended = new Set<string>();
  /** Nodes below a task that runs whose own code (or params, env) no earlier entry has: what differs (see {@link knownChanges}). */
  const known = new Map<string, Nearest>();
  const planOne = async (node: FlowNode, upstreamRuns: string | undefined, forcedHere: boolean): Promise<PlannedTask> => {
    const id = node.id;
    const place = node.item ? { parent: node.item.parent, item: node.item.index } : {};
    if (node.task.cache === false) return { task: id, action: "run", reason: "caching is off for this task", ...place };
    // A forced task runs whatever its upstream tasks hand it: it cannot hit, even on unchanged outputs.
    if (upstreamRuns && (options.refresh || forcedHere)) return { task: id, action: "run", reason: forcedReason(node), upstream: upstreamRuns, ...place };
    if (upstreamRuns) {
      const changed = await knownChanges(node, options.cache, earlierEntries).catch(() => undefined);
      if (!changed) return { task: id, action: "run", reason: `upstream task "${upstreamRuns}" runs first (it may still hit if that task's outputs come out unchanged)`, upstream: upstreamRuns, ...place };
      known.set(id, changed);
      const whatever = `whatever upstream task "${upstreamRuns}" hands it`;
      const changes = changed.nearest?.changes;
      const reason = changes ? `no cache entry matches it, ${whatever}: ${firstChange(changes)}` : `no cache entry of this task yet, ${whatever}`;
      return { task: id, action: "run", reason, upstream: upstreamRuns, ...place };
    }
    const inputs = await taskInputs(node, options.params, (dep) => outputs.get(dep));
    let key: TaskKey;
    try {
      key = await options.cache.keyFor(node, inputs);
    } catch (error) {
      if (CacheBackendError.is(error)) throw error;
      return keyNotMade(node, error, place);
    }
    const computedBy = running.get(key.key);
    if (computedBy !== undefined) {
      waitsFor.set(id, computedBy);
      return { task: id, action: "hit", reason: `same key as "${computedBy}", computed once in this run`, key, ...place };
    }
    const planned = await planLookup(node, key, forcedHere, place);
    if (planned.action === "run") running.set(key.key, id);
    return planned;
  };
  /**
   * A key the task's own code cannot make (a kind's inputFiles on a file that is not there), as
   * the run meets it: it warns and runs the task uncached, unless the error says it is not
   * retried, which fails the task before it starts (a map's item: see planMap).
   */
  const keyNotMade = (node: FlowNode, error: unknown, place: Pick<PlannedTask, "parent" | "item">): PlannedTask => {
    const { name, message } = toErrorInfo(error);
    if (isRetryableError(error)) return { task: node.id, action: "run", reason: `its key cannot be made before running: ${options.cache.masked(message)}`, ...place };
    const fails = options.cache.masked(`${name}: ${message}`);
    if (node.item) itemFails.set(node.id, fails);
    else failing.add(node.id);
    return { task: node.id, action: "run", reason: `fails before it starts: its key cannot be made (${fails}), an error that is not retried`, ...place };
  };
  const planLookup = async (node: FlowNode, key: TaskKey, forcedHere: boolean, place: Pick<PlannedTask, "parent" | "item">): Promise<PlannedTask> => {
    const id = node.id;
    if (options.refresh || forcedHere) return { task: id, action: "run", reason: forcedReason(node), key, ...place };
    // Only read: an entry this command judges unusable may be one another mode of run uses.
    const { entry, bad, foreign, expired } = await options.cache.lookup(key.key, { readOnly: true });
    if (entry) {
      outputs.set(id, entry.outputs.values);
      return { task: id, action: "hit", cachedFrom: entry.sourceRunId, key, ...place };
    }
    // As a run would: it meets the lease after its lookup missed, and waits.
    const held = await options.cache.leaseHolder(key.key);
    if (held) {
      const computing = leaseHolder(held.holder, held.expiresAt);
      // As a run would: a holder whose entry it could not use is not waited for.
      const there = holderRecordsTo(held.holder);
      const elsewhere = there && !(await options.cache.mayUseEntryOf(there)) ? recordsElsewhere(there, await options.cache.recordsTo()) : undefined;
      const reason = elsewhere !== undefined ? computingElsewhereReason(computing, elsewhere) : computingReason(computing);
      return { task: id, action: "run", reason, key, computing, ...(foreign ? { foreign } : {}), ...place };
    }
    if (foreign) return { task: id, action: "run", reason: foreignReason(foreign), key, foreign, ...place };
    if (expired) {
      const made = expired.entry ? { sourceRunId: expired.entry.sourceRunId, createdAt: expired.entry.createdAt } : {};
      return { task: id, action: "run", reason: expiredReason(expired), key, expired: { at: expired.at, ...made }, ...place };
    }
    if (bad) return { task: id, action: "run", reason: bad.kept ? `its entry was not used: ${bad.reason}` : `its entry was unusable: ${bad.reason}`, key, ...place };
    if (options.cache.missingExperiment !== undefined) {
      return { task: id, action: "run", reason: `no cache entry for these inputs and code (experiment "${options.cache.missingExperiment}" does not exist yet)`, key, ...place };
    }
    // A key that ran and failed, or was cancelled, is no new one: said so, rather than compared as if it never ran.
    // Not that its last run failed: a later run may have succeeded and its entry been pruned since.
    const ended = await endedRunOf(key.key);
    if (!ended) unended.add(id);
    if (ended?.failed) return { task: id, action: "run", reason: `no cache entry for these inputs and code: ${failedRunReason(ended.failed)}`, key, failed: ended.failed, ...place };
    if (ended?.cancelled) return { task: id, action: "run", reason: `no cache entry for these inputs and code: ${cancelledRunReason(ended.cancelled)}`, key, cancelled: ended.cancelled, ...place };
    // The first change since the nearest earlier entry, as explain gives it: the entries are listed once per task.
    const near = await nearestOf(node, key, earlierEntries, itemInputOf(node));
    const since = near.newItem ?? (near.nearest?.changes.length ? firstChange(near.nearest.changes) : undefined);
    return { task: id, action: "run", reason: `no cache entry for these inputs and code${since ? `: ${since}` : ""}`, key, ...place };
  };
  /** The newest run of the key that failed or was cancelled (its status says which), if the search found one. */
  const endedRunOf = async (key: string): Promise<{ failed?: FailedRun; cancelled?: CancelledRun } | undefined> => {
    const run = (await options.cache.failedRuns()).byKey.get(key);
    if (!run) return undefined;
    // A dead queue worker's run closed FAILED did not fail of itself: interrupted, as a KILLED one,
    // unless its closer gave the task up and wrote why (a poison task's error): then it failed.
    const closedFailed = run.status === "FAILED" && run.tags[ABANDONED_TAG] !== undefined && run.tags[ERROR_NAME_TAG] !== undefined;
    if (run.status === "KILLED" || (run.tags[ABANDONED_TAG] !== undefined && !closedFailed)) return { cancelled: cancelledRun(run) };
    const error = run.tags[ERROR_TAG]?.split("\n", 1)[0];
    const why = closedFailed ? closedFailedWhy(run.tags) : undefined;
    return { failed: { runId: run.runId, startedAt: run.startTime, ...(error ? { error: short(error, 200) } : {}), ...(why ? { why } : {}) } };
  };
  const earlier = new Map<string, Promise<{ entries: CacheEntry[]; searched: string; complete: boolean }>>();
  const earlierEntries = (taskName: string) => {
    let found = earlier.get(taskName);
    if (!found) earlier.set(taskName, (found = options.cache.earlierEntries(taskName)));
    return found;
  };
  /** The input an item of a map is handed its element as. */
  const itemInputOf = (node: FlowNode) => (node.item ? graph.nodes.get(node.item.parent)?.map?.as : undefined);
  /** Nodes that fail before they start (inputs their schema refuses, a key error not retried), and those below them. */
  const failing = new Set<string>();
  /** Items of maps that fail before they start, with their error (see planMap). */
  const itemFails = new Map<string, string>();
  /** Why a forced node runs: `--refresh`, `--rerun` (named itself), or the `--rerun` of a task it depends on. */
  const forcedBy = new Map<string, Uint8Array | undefined>();
  const forcedReason = (node: FlowNode): string => {
    if (options.refresh) return "--refresh";
    const rerun = options.rerun ?? [];
    const named = (name: string) => name === node.id || name === node.task.name || name === node.item?.parent;
    if (rerun.some(named) || forcedItemIds?.has(node.id)) return "--rerun";
    const at = graph.indexed.index.get(node.item?.parent ?? node.id)!;
    const upstream = rerun.filter((name) => {
      if (!forcedBy.has(name)) forcedBy.set(name, forcedNodes(graph, [name], false, options.params));
      return forcedBy.get(name)?.[at] === 1;
    });
    return `--rerun ${upstream.join(", --rerun ")} (a dependant of ${upstream.length > 1 ? "them" : "it"})`;
  };
  /**
   * How many nodes not yet planned read each node's outputs. A hit's outputs stand in for the
   * node's while the nodes below it are keyed, and are let go once the last of them is planned:
   * a plan of thousands of hits no longer holds every hit's outputs to its end.
   */
  const readers = new Map<string, number>();
  for (const [id, dependants] of graph.dependants) readers.set(id, dependants.length);
  const letGo = (id: string) => {
    if (!readers.get(id)) outputs.delete(id);
    for (const dep of graph.dependencies.get(id)!) {
      const left = readers.get(dep)! - 1;
      readers.set(dep, left);
      if (left === 0) outputs.delete(dep);
    }
  };
  for (const id of graph.order) {
    if (outOfFocus(id)) continue;
    try {
      const node = graph.nodes.get(id)!;
      const deps = graph.dependencies.get(id)!;
      // A task below one that fails is not started, whether it is a map or below a skipped one too.
      const failedBy = deps.find((dep) => failing.has(dep));
      if (failedBy) {
        failing.add(id);
        plan.set(id, { task: id, action: "skip", reason: `not started: upstream task "${failedBy}" fails` });
        continue;
      }
      const skippedBy = deps.find((dep) => plan.get(dep)!.action === "skip");
      if (skippedBy) {
        plan.set(id, { task: id, action: "skip", reason: `upstream task "${skippedBy}" is skipped (its condition is false)` });
        continue;
      }
      const upstreamRuns = deps.find((dep) => plan.get(dep)!.action === "run") ?? deps.map((dep) => waitsFor.get(dep)).find((by) => by !== undefined);
      // A condition is known before running when every output it reads is (a param, a hit's
      // outputs), whatever else runs upstream: the run tests it as soon as those exist.
      if (node.condition !== undefined && readsKnownOutputs(node.condition, outputs) && conditionValue(node, options.params, (dep) => outputs.get(dep)) === false) {
        plan.set(id, { task: id, action: "skip", reason: `its condition (${isRef(node.condition) ? describeRef(node.condition) : "false"}) is false` });
        continue;
      }
      if (node.map) {
        plan.set(id, await planMap(node, upstreamRuns, isForced(id)));
        continue;
      }
      try {
        plan.set(id, await planOne(node, upstreamRuns, isForced(id)));
      } catch (error) {
        // Inputs the task's schema refuses fail the task in the run, before it starts: planned so,
        // with the rest of the flow (as a map's items are), not as a failure of the whole plan.
        if (!(error instanceof InputValidationError)) throw error;
        failing.add(id);
        plan.set(id, { task: id, action: "run", reason: `fails before it starts: its inputs do not match its input schema (${options.cache.masked(error.issues.join("; "))})` });
      }
    } finally {
      letGo(id);
    }
  }
  for (const id of graph.order) {
    if (outOfFocus(id)) continue;
    rows.push(plan.get(id)!);
    const items = itemRows.get(id);
    if (items) for (const item of items) rows.push(item); // not spread: a map may have more items than the stack takes arguments
  }
  return { plan: rows, nodes, nearest: (node, key) => nearestOf(node, key, earlierEntries, itemInputOf(node)), known, unended };

  /**
   * A map or sweep: its list, when it is known before running (a literal, a param, or the
   * outputs of upstream hits), gives one row per item, planned as any task; otherwise the map's
   * row says its items are unknown until the task that makes the list has run.
   */
  async function planMap(node: FlowNode, upstreamRuns: string | undefined, forcedHere: boolean): Promise<PlannedTask> {
    const id = node.id;
    const spec = node.map!;
    // A literal list (a sweep's points) is known even when an upstream task runs first; its items then run too.
    const items = Array.isArray(spec.over) ? spec.over : upstreamRuns ? undefined : resolveValue(spec.over, options.params, (dep) => outputs.get(dep));
    if (!Array.isArray(items)) {
      const over = isRef(spec.over) ? describeRef(spec.over) : "its list";
      return { task: id, action: "run", items: "unknown", reason: `a ${spec.kind} over ${over}: its items are known once ${upstreamRuns ? `"${upstreamRuns}"` : "the flow"} runs` };
    }
    const base = upstreamRuns ? {} : (resolveValue(node.inputs, options.params, (dep) => outputs.get(dep)) as Record<string, unknown>);
    const run = new MapRun(node, items, base, requiredItems(spec, items.length) ?? items.length, 1, 0);
    const rowsHere: PlannedTask[] = [];
    /** One item's row; a key error is planned by planOne, inputs its schema refuses fail the item before it starts. */
    const planItem = async (item: FlowNode, k: number, forced: boolean): Promise<PlannedTask> => {
      try {
        return await planOne(item, upstreamRuns, forced);
      } catch (error) {
        if (!(error instanceof InputValidationError)) throw error;
        itemFails.set(item.id, options.cache.masked(`${error.name}: ${error.message}`));
        return { task: item.id, action: "run", reason: `fails before it starts: its inputs do not match its input schema (${options.cache.masked(error.issues.join("; "))})`, parent: id, item: k };
      }
    };
    const results = new Map<string, TaskResult>();
    // Explain of one item of a map: that item alone (a sweep's trials stop one another, so all of them).
    const only = focus?.item?.map === id && spec.kind === "map" ? focus.item.index : undefined;
    if (only !== undefined) {
      if (only < items.length) {
        const item = run.itemNode(only);
        nodes.set(item.id, item);
        itemRows.set(id, [await planItem(item, only, forcedHere || forcedItemIds?.has(item.id) === true)]);
      }
      return { task: id, action: "run", items: items.length, reason: `explained for ${id}[${only}] alone` };
    }
    for (let k = 0; k < items.length; k++) {
      const item = run.itemNode(k);
      nodes.set(item.id, item);
      const row = await planItem(item, k, forcedHere || forcedItemIds?.has(item.id) === true);
      rowsHere.push(row);
      const fails = itemFails.get(item.id);
      results.set(item.id, { task: item.id, status: row.action === "hit" ? "cached" : fails !== undefined ? "failed" : "pending", attempts: 0 });
      if (row.action === "hit" && !waitsFor.has(item.id)) run.itemEnded(k, item.id, true, true, outputs.get(item.id), undefined);
      // An item that fails before it starts counts as failed, as in the run (minSuccess may allow it).
      if (fails !== undefined) run.itemEnded(k, item.id, false, false, undefined, fails);
      outputs.delete(item.id); // the map run holds what it needs of it
      run.next++;
    }
    itemRows.set(id, rowsHere);
    // An item that takes the entry of a node of the same key running first is known only then.
    const waiting = rowsHere.map((r) => waitsFor.get(r.task)).find((by) => by !== undefined);
    // A hit that stopWhen throws on (or that cannot be ranked, beyond what minSuccess allows)
    // fails the sweep as in a run, at once: the trials after it do not start.
    const failure = run.error ?? (run.lost ? (run.selectorError() ?? new MapItemsFailedError(id, [...run.countedFailures()].sort((a, b) => a.index - b.index), run.requiredNow(), run.countedItems(), undefined, run.spec.kind)) : undefined);
    if (failure !== undefined) {
      const at = run.errorAt ?? run.countedFailures().reduce((last, f) => Math.max(last, f.index), 0);
      const message = options.cache.masked(toErrorInfo(failure).message);
      const beforeStart = itemFails.has(rowsHere[at]?.task ?? "");
      const which = beforeStart ? "which fails before it starts" : "which comes from the cache";
      for (const row of rowsHere.slice(at + 1)) if (row.action === "run") Object.assign(row, { action: "skip", reason: `not started: the ${spec.kind} fails at ${id}[${at}], ${which}` });
      failing.add(id);
      return { task: id, action: "run", items: items.length, reason: `fails${beforeStart ? "" : ", from what the cache holds"}: ${message}` };
    }
    // A hit that meets stopWhen cuts the sweep there, as in a run: the trials after it are not needed.
    const cut = run.stoppedEarly ? run.firstSatisfied : undefined;
    if (cut !== undefined) {
      const reason = `stopWhen is met by ${id}[${cut}], which comes from the cache: a trial after it is not needed (one started before that is known still runs)`;
      for (const row of rowsHere.slice(cut + 1)) if (row.action === "run") Object.assign(row, { action: "skip", reason });
    }
    const runs = rowsHere.filter((r) => r.action === "run" && !itemFails.has(r.task)).length;
    const counted = cut === undefined ? `its ${items.length} items` : `the trials up to ${id}[${cut}] (the first to meet stopWhen)`;
    // An item past a list known only now forces nothing, in the run as here (which the run warns).
    const past = forcedOf(forcedItemIds, id).filter((f) => f.index >= items.length);
    const note = past.map((f) => `; ${itemPastList(f.item, id, items.length)}`).join("");
    if (runs > 0 || forcedHere) return { task: id, action: "run", items: items.length, reason: `${runs} of ${counted} run${note}` };
    if (waiting !== undefined) {
      waitsFor.set(id, waiting);
      return { task: id, action: "hit", items: items.length, reason: `none of its ${items.length} items runs: each is in the cache or has the key of "${waiting}", which runs first${note}` };
    }
    try {
      outputs.set(id, spec.kind === "sweep" ? run.sweepOutputs(results) : run.mapOutputs());
    } catch (error) {
      return { task: id, action: "run", items: items.length, reason: (error as Error).message };
    }
    const why = !items.length ? "its list is empty" : cut === undefined ? `all ${items.length} of its items are in the cache` : `${counted} are in the cache`;
    return { task: id, action: "hit", items: items.length, reason: `${why}${note}` };
  }
}


/**
 * Before a run starts: its tasks' code dependencies start being read, and, with a tracker that
 * reads many runs in one request (MLflow), the source runs of the hits the run can expect are
 * asked about at once, so a chain of hits does not wait for one request per hit. Local work only
 * until the request is sent; never fails the flow.
 */
export async function checkAhead(
  graph: FlowGraph,
  params: Record<string, unknown>,
  cache: TaskCache,
  tracker: Tracker,
  refresh: boolean,
  forced: Uint8Array | undefined,
): Promise<void> {
  cache.prefetchCode(new Set(graph.definition.nodes.map((n) => n.task)));
  if (refresh || !tracker.getRuns) return;
  try {
    const { index } = graph.indexed;
    cache.checkSourceRuns(await sourceRunsAhead(graph, params, cache, (id) => forced?.[index.get(id)!] === 1));
  } catch {
    // A guess that failed costs nothing: each lookup asks for its source run itself.
  }
}

/** What a miss is compared with: the nearest earlier entry of its task, or, for an item of a map no entry has the item of, that it is new. */
interface Nearest {
  nearest?: NearestEntry;
  /** `a new item of sq (x = 4): no entry for it yet`. */
  newItem?: string;
  /** Where earlier entries were looked for. */
  searched: string;
}

/**
 * The nearest earlier entry of the node's task. For an item of a map, only entries with the same
 * item (its `as` input) count: another item's entry is no history of this one.
 */
async function nearestOf(node: FlowNode, key: TaskKey, earlierEntries: (taskName: string) => Promise<{ entries: CacheEntry[]; searched: string }>, itemInput: string | undefined): Promise<Nearest> {
  const name = node.task.name;
  const { entries, searched } = await earlierEntries(name);
  let candidates = entries;
  if (itemInput !== undefined) {
    const mine = key.ingredients.inputs[itemInput];
    candidates = entriesOfItem(entries, itemInput, mine?.sha256);
    if (!candidates.length) {
      const shown = mine && "value" in mine ? ` (${itemInput} = ${short(JSON.stringify(mine.value))})` : "";
      return { newItem: `a new item of ${node.item?.parent ?? name}${shown}: no entry for it yet`, searched };
    }
  }
  return toNearest(nearestEntry(candidates, key.ingredients, diffOptionsOf(node.task)), searched);
}

/** Each task's entries by their item's digest, per item input: made once per listing, not once per item (a plan of 5,000 new items read 13,000 entries 5,000 times). */
const itemIndexes = new WeakMap<readonly CacheEntry[], Map<string, Map<string | undefined, CacheEntry[]>>>();

/** The entries of `entries` whose input `itemInput` has the digest `sha256` (undefined: those without it). */
function entriesOfItem(entries: readonly CacheEntry[], itemInput: string, sha256: string | undefined): CacheEntry[] {
  let byInput = itemIndexes.get(entries);
  if (!byInput) itemIndexes.set(entries, (byInput = new Map()));
  let index = byInput.get(itemInput);
  if (!index) {
    index = new Map();
    for (const e of entries) {
      const digest = e.ingredients.inputs?.[itemInput]?.sha256;
      const list = index.get(digest);
      if (list) list.push(e);
      else index.set(digest, [e]);
    }
    byInput.set(itemInput, index);
  }
  return index.get(sha256) ?? [];
}

/** The nearest earlier entry as plan and explain give it (none: no entry), and where they looked. */
function toNearest(best: { entry: CacheEntry; changes: IngredientChange[] } | undefined, searched: string): Nearest {
  if (!best) return { searched };
  const { sourceRunId, createdAt, cairn } = best.entry;
  return { nearest: { sourceRunId, createdAt, changes: best.changes, ...(cairn !== undefined ? { cairn } : {}) }, searched };
}

/** The first of `changes` (at least one), and how many more: "script `train.py` changed (+2 more)". */
function firstChange(changes: IngredientChange[]): string {
  return `${changes[0]!.message}${changes.length > 1 ? ` (+${changes.length - 1} more)` : ""}`;
}

/**
 * For a node whose inputs are known only once an upstream task has run: what already differs,
 * whatever those inputs turn out to be (its code and code files, the params it reads, its env,
 * its version), from every earlier entry of its task, with the nearest of them (none: the task
 * has no entry). Undefined when an entry agrees on all of these (the node may still hit), or when
 * not every entry a run could hit was read. Inputs known now (literals, params) are left out:
 * the task's input schema may change them before they are keyed.
 */
async function knownChanges(node: FlowNode, cache: TaskCache, earlierEntries: (taskName: string) => Promise<{ entries: CacheEntry[]; searched: string; complete: boolean }>): Promise<Nearest | undefined> {
  const { entries, searched, complete } = await earlierEntries(node.task.name);
  if (!complete) return undefined;
  const now = (await cache.keyFor(node, {})).ingredients;
  // In the task's own words, as explain and the run's miss reason say it (a model alias that moved).
  const options = diffOptionsOf(node.task);
  let best: { entry: CacheEntry; changes: IngredientChange[] } | undefined;
  for (const entry of entries) {
    const changes = diffIngredients(entry.ingredients, now, options).filter((c) => !c.path.startsWith("inputs."));
    if (!changes.length) return undefined;
    if (!best || changes.length < best.changes.length) best = { entry, changes };
  }
  return toNearest(best, searched);
}

/** A value shown in a sentence: cut at `max` characters. */
function short(text: string, max = 40): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** Why an entry past its ttl is not used: which run stored it, when it expired, its ttl. */
function expiredReason(expired: ExpiredEntry): string {
  return `its entry ${expiredWords(expiredMiss(expired, Date.now()))}`;
}

/** True when every node output `value` refers to is known (params always are). */
function readsKnownOutputs(value: unknown, outputs: Map<string, unknown>): boolean {
  let known = true;
  forEachRef(value, (ref) => {
    if (ref.source === "node" && !outputs.has(ref.target)) known = false;
  });
  return known;
}

/** A node's condition as the run would test it, or undefined when it cannot be told before running. */
function conditionValue(node: FlowNode, params: Record<string, unknown>, outputOf: (id: string) => unknown): unknown {
  try {
    const value = resolveValue(node.condition, params, outputOf);
    return node.conditionTest ? node.conditionTest(value) : value;
  } catch {
    return undefined;
  }
}

/**
 * What explaining `task` needs planned: its node (of an item, its map's) and every node it
 * depends on, not the whole flow (a map of 2,000 items beside it read 2,000 entries). Undefined
 * when no node has that id or task name: the whole plan then lists what there is.
 */
function focusOf(graph: FlowGraph, task: string): PlanFocus | undefined {
  const item = /^(.+)\[(\d+)\]$/.exec(task);
  const map = item && graph.nodes.get(item[1]!)?.map ? item[1]! : undefined;
  const target = graph.nodes.has(task) ? task : (map ?? graph.order.find((id) => graph.nodes.get(id)!.task.name === task));
  if (target === undefined) return undefined;
  const nodes = new Set<string>();
  const stack = [target];
  while (stack.length) {
    const id = stack.pop()!;
    if (nodes.has(id)) continue;
    nodes.add(id);
    stack.push(...graph.dependencies.get(id)!);
  }
  return { nodes, ...(map !== undefined && target === map ? { item: { map, index: Number(item![2]) } } : {}) };
}

/** Nodes the look-ahead walks at most; its cost is paid before the flow starts. */
const LOOK_AHEAD_NODES = 1000;

/**
 * The source runs that the lookups of a run of this flow will verify, found before it starts by
 * walking the graph as if every stored entry were good: a node's key is known when every upstream
 * node has an entry, whose outputs stand in for that node's. Only the store is read (`peek`:
 * nothing evicted, nothing verified), so the answer is a guess that the flow's own lookups check;
 * its use is to ask the tracker about all these runs in one request ({@link TaskCache.checkSourceRuns}).
 * Nodes whose code resolves remotely (`resolveCode`), forced ones (`skip`) and the ones below them
 * are left out, as is anything that fails here (the flow meets it again and says so).
 */
export async function sourceRunsAhead(
  graph: FlowGraph,
  params: Record<string, unknown>,
  cache: TaskCache,
  skip: (id: string) => boolean = () => false,
): Promise<string[]> {
  const outputs = new Map<string, unknown>();
  const runIds: string[] = [];
  let walked = 0;
  for (const id of graph.order) {
    if (walked >= LOOK_AHEAD_NODES) break;
    const node = graph.nodes.get(id)!;
    if (node.map || node.task.cache === false || node.task.resolveCode || skip(id)) continue;
    if (graph.dependencies.get(id)!.some((dep) => !outputs.has(dep))) continue;
    walked++;
    try {
      const entry = await cache.peek((await cache.keyFor(node, await taskInputs(node, params, (dep) => outputs.get(dep)))).key);
      if (!entry) continue;
      outputs.set(id, entry.outputs.values);
      runIds.push(entry.sourceRunId);
    } catch {
      continue;
    }
  }
  return runIds;
}

/** The earlier entry of a task closest to a miss, and what changed since it. */
export interface NearestEntry {
  sourceRunId: string;
  createdAt: number;
  changes: IngredientChange[];
  /** The Cairn that wrote it ("0.1.0+57ab83a"); absent on entries made before entries said. Another than this one may have made its key otherwise. */
  cairn?: string;
}

/** Why a task misses: the nearest earlier entry of the same task and what changed since. */
export interface Explanation {
  task: string;
  planned: PlannedTask;
  /** The earlier entry closest to now (fewest changed ingredients), if any. */
  nearest?: NearestEntry;
  /** For an item of a map that no earlier entry has the item of: `a new item of sq (x = 4): no entry for it yet`. */
  newItem?: string;
  /** Where earlier entries were looked for: the cache store, and the experiment's index when the tracker has one. */
  searched?: string;
  /**
   * No failed or cancelled run of the key was found, but the search stopped at its bound: it
   * looked among the experiment's newest `runs` runs (`endedOnly`: its newest failed and cancelled
   * runs), so an older one may have failed or been cancelled. Absent when it saw them all.
   */
  notFoundAmong?: { runs: number; endedOnly: boolean };
}

/** Explains one task's plan: for a miss, which ingredient changed since the nearest earlier entry. */
export async function explainTask(definition: FlowDefinition, task: string, options: PlanOptions): Promise<Explanation> {
  const graph = buildFlowGraph(definition);
  const focus = focusOf(graph, task);
  // Before planning: a name no node has, nor an item of a map (`sq[3]`) may get, would plan the
  // whole flow only to be refused.
  if (focus === undefined) throw unknownTask(graph, task);
  const { plan, nodes, nearest, known, unended } = await planNodes(definition, options, focus, graph);
  const unknownItem = /^(.+)\[\d+\]$/.exec(task);
  if (unknownItem && !plan.some((p) => p.task === task)) {
    const map = plan.find((p) => p.task === unknownItem[1] && p.items !== undefined);
    if (map) {
      throw new OptionError(
        "TASK",
        map.items === "unknown"
          ? `an item of a map whose list is known before running; "${map.task}" is ${map.reason} (run the flow, then explain its items)`
          : `an item of "${map.task}", which has ${map.items} (${map.task}[0] to ${map.task}[${Number(map.items) - 1}])`,
        task,
      );
    }
  }
  const planned = plan.find((p) => p.task === task) ?? plan.find((p) => definition.nodes.find((n) => n.id === p.task)?.task.name === task);
  if (!planned) throw unknownTask(graph, task);
  const node = nodes.get(planned.task)!;
  // Said only where plan looked for the key's failed or cancelled run and found none: the search is already done.
  const bound = unended.has(planned.task) ? (await options.cache.failedRuns()).bound : undefined;
  const explanation: Explanation = { task: planned.task, planned, ...(bound ? { notFoundAmong: bound } : {}) };
  // An entry of these very ingredients exists, past its ttl: nothing changed since, nothing to compare.
  // Below a task that runs: what already differs, whatever its inputs, when plan found that.
  if (planned.action === "hit" || !planned.key || planned.expired) return { ...explanation, ...known.get(planned.task) };
  return { ...explanation, ...(await nearest(node, planned.key)) };
}

/**
 * The refusal of a `task` that names no node of the flow: the name it most likely meant among its
 * node ids and task names, and its node ids (the closest few, of a large flow).
 */
function unknownTask(graph: FlowGraph, task: string): OptionError {
  const names = graph.definition.nodes.map((n) => n.task.name);
  const maps = graph.definition.nodes.filter((n) => n.map).map((n) => n.id);
  const expected = unknownNameExpected(`a task name or node id of flow "${graph.definition.name}"`, task, graph.order, { aliases: names, counted: "nodes", maps });
  return new OptionError("TASK", expected, task, undefined, undefined, !listsEvery(graph.order));
}

/** Why a task whose key another process computes now is planned as it is. */
function computingReason(computing: LeaseHolder): string {
  const by = `${computing.process}${computing.runId ? ` (run ${computing.runId})` : ""}`;
  const lapses = Number.isFinite(computing.expiresAt) ? `; its lease lapses in ${Math.max(0, Math.ceil((computing.expiresAt - Date.now()) / 1000))} s unless renewed` : "";
  return `being computed elsewhere now, by ${by}: a run would wait for it and take its entry (or compute it, if that fails)${lapses}`;
}

/** Plan's words for a key another process computes now whose entry a run could not use (`elsewhere`: see recordsElsewhere). */
function computingElsewhereReason(computing: LeaseHolder, elsewhere: string): string {
  const by = `${computing.process}${computing.runId ? ` (run ${computing.runId})` : ""}`;
  return `being computed elsewhere now, by ${by}, ${elsewhere}: its entry could not be used here, so a run would not wait for it and computes it at once`;
}

/** Plan's words for a key with no entry whose run was cancelled: which, when, and what stopped it. */
function cancelledRunReason(cancelled: CancelledRun): string {
  const why = cancelled.why !== undefined ? `: ${cancelled.why}` : "";
  const how = cancelled.interrupted ? "interrupted" : cancelled.waiting ? "cancelled before it started" : "cancelled";
  return `a run with this key was ${how} (run ${cancelled.runId}, ${new Date(cancelled.startedAt).toISOString()})${why}; no entry is stored for it`;
}

/**
 * A KILLED run tagged with its key, as plan and explain give it: closed by a later command after
 * its process died, or by another process after its queue worker died (`cairn.abandoned`, also
 * FAILED), stopped while it waited (no attempt: cancelled, or skipped when a task failed under
 * fail-fast), or cancelled while it ran.
 */
function cancelledRun(run: RunRecord): CancelledRun {
  const found = { runId: run.runId, startedAt: run.startTime };
  if (run.tags[ABANDONED_TAG] !== undefined) {
    const worker = run.tags[WORKER_TAG];
    return { ...found, interrupted: true, ...(worker !== undefined ? { why: `its queue worker ${worker} stopped without closing it` } : {}) };
  }
  const why = cancelledWhy(run.tags);
  return { ...found, ...(why ? { why } : {}), ...(startedNoAttempt(run.tags) ? { waiting: true } : {}) };
}

/** What stopped a cancelled run, in words (cancelledRunWhy, as the report says it), cut for a plan's line. */
function cancelledWhy(tags: Readonly<Record<string, string>>): string | undefined {
  // Skipped by a stop: its record says which task failed, not an error of its own.
  if (tags[SKIPPED_REASON_TAG] === "fail-fast") return `stopped because task "${tags[SKIPPED_BECAUSE_TAG] ?? "?"}" failed and the failure policy is fail-fast`;
  if (tags[SKIPPED_REASON_TAG] === "flow-failed") return "the flow failed";
  const why = cancelledRunWhy(tags);
  return why === undefined ? undefined : short(why, 200);
}

/** Plan's words for a key with no entry that a run failed for: what is known, not that its last run failed. */
function failedRunReason(failed: FailedRun): string {
  const why = failed.why !== undefined ? `: ${failed.why}` : "";
  return `a run with this key failed (run ${failed.runId}, ${new Date(failed.startedAt).toISOString()})${why}; no entry is stored for it`;
}

/**
 * Why another process closed a run FAILED, from the error it wrote: a poison task's (@cairn/worker's
 * PoisonTaskError, whose message says how many times its workers died), else the error's name.
 */
function closedFailedWhy(tags: Readonly<Record<string, string>>): string {
  const name = tags[ERROR_NAME_TAG]!;
  const deaths = name === "PoisonTaskError" ? /died (\d+) times/.exec(tags[ERROR_MESSAGE_TAG] ?? "")?.[1] : undefined;
  return deaths !== undefined ? `its worker died ${deaths} times running it (${name})` : `its worker stopped and the task was given up (${short(name, 100)})`;
}
