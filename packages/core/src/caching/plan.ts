import { type IngredientChange, diffIngredients } from "@cairn/cache";
import type { FlowDefinition } from "../definition/flow-definition.ts";
import { OptionError } from "../errors.ts";
import { buildFlowGraph, type FlowGraph } from "../graph/flow-graph.ts";
import { taskInputs } from "../pipeline/inputs.ts";
import type { Tracker } from "../tracking/tracker.ts";
import { forcedNodes } from "./rerun.ts";
import { type ForeignEntry, foreignReason, type TaskCache, type TaskKey } from "./task-cache.ts";

/** What a task would do if the flow ran now. */
export interface PlannedTask {
  /** Node id. */
  task: string;
  /** `hit`: its outputs come from the cache; `run`: it would run. */
  action: "hit" | "run";
  /** For hits: the run whose outputs are reused. */
  cachedFrom?: string;
  /** Why it would run: no entry, cache off for the task, an upstream task runs, forced. */
  reason?: string;
  /** Its cache key, when its inputs are known before running. */
  key?: TaskKey;
  /** An entry for the key exists, but its source run is recorded in another tracker (see {@link ForeignEntry}). */
  foreign?: ForeignEntry;
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
  const graph = buildFlowGraph(definition);
  const outputs = new Map<string, unknown>();
  const plan = new Map<string, PlannedTask>();
  const forced = forcedNodes(graph, options.rerun ?? []);
  const isForced = (id: string) => forced?.[graph.indexed.index.get(id)!] === 1;
  // The hits' source runs are asked about in one request, not one per task.
  if (!options.refresh) options.cache.checkSourceRuns(await sourceRunsAhead(graph, options.params, options.cache, isForced));
  for (const id of graph.order) {
    const node = graph.nodes.get(id)!;
    const upstreamRuns = graph.dependencies.get(id)!.find((dep) => plan.get(dep)!.action === "run");
    if (node.task.cache === false) {
      plan.set(id, { task: id, action: "run", reason: "caching is off for this task" });
      continue;
    }
    if (upstreamRuns) {
      plan.set(id, { task: id, action: "run", reason: `upstream task "${upstreamRuns}" runs first (it may still hit if that task's outputs come out unchanged)` });
      continue;
    }
    const key = await options.cache.keyFor(node, await taskInputs(node, options.params, (dep) => outputs.get(dep)));
    if (options.refresh || isForced(id)) {
      plan.set(id, { task: id, action: "run", reason: options.refresh ? "--refresh" : "--rerun", key });
      continue;
    }
    const { entry, bad, foreign } = await options.cache.lookup(key.key);
    if (entry) {
      outputs.set(id, entry.outputs.values);
      plan.set(id, { task: id, action: "hit", cachedFrom: entry.sourceRunId, key });
    } else if (foreign) {
      plan.set(id, { task: id, action: "run", reason: foreignReason(foreign), key, foreign });
    } else {
      plan.set(id, { task: id, action: "run", reason: bad ? `its entry was unusable: ${bad.reason}` : "no cache entry for these inputs and code", key });
    }
  }
  return graph.order.map((id) => plan.get(id)!);
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
  flowRunId: string,
  refresh: boolean,
  forced: Uint8Array | undefined,
): Promise<void> {
  cache.prefetchCode(new Set(graph.definition.nodes.map((n) => n.task)), flowRunId);
  if (refresh || !tracker.getRuns) return;
  try {
    const { index } = graph.indexed;
    cache.checkSourceRuns(await sourceRunsAhead(graph, params, cache, (id) => forced?.[index.get(id)!] === 1));
  } catch {
    // A guess that failed costs nothing: each lookup asks for its source run itself.
  }
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

/** Why a task misses: the nearest earlier entry of the same task and what changed since. */
export interface Explanation {
  task: string;
  planned: PlannedTask;
  /** The earlier entry closest to now (fewest changed ingredients), if any. */
  nearest?: { sourceRunId: string; createdAt: number; changes: IngredientChange[] };
}

/** Explains one task's plan: for a miss, which ingredient changed since the nearest earlier entry. */
export async function explainTask(definition: FlowDefinition, task: string, options: PlanOptions): Promise<Explanation> {
  const plan = await planFlow(definition, options);
  const planned = plan.find((p) => p.task === task) ?? plan.find((p) => definition.nodes.find((n) => n.id === p.task)?.task.name === task);
  if (!planned) {
    throw new OptionError("TASK", `a task name or node id of flow "${definition.name}" (${plan.map((p) => p.task).join(", ")})`, task);
  }
  const node = definition.nodes.find((n) => n.id === planned.task)!;
  const explanation: Explanation = { task: planned.task, planned };
  if (planned.action === "hit" || !planned.key) return explanation;
  const now = planned.key.ingredients;
  let best: Explanation["nearest"];
  for (const entry of await options.cache.store.list({ taskName: node.task.name })) {
    const changes = diffIngredients(entry.ingredients, now);
    if (!best || changes.length < best.changes.length) best = { sourceRunId: entry.sourceRunId, createdAt: entry.createdAt, changes };
  }
  if (best) explanation.nearest = best;
  return explanation;
}
