import { type IngredientChange, diffIngredients } from "@cairn/cache";
import type { FlowDefinition, FlowNode } from "../definition/flow-definition.ts";
import { type RefValue, resolveRefs } from "../definition/ref.ts";
import { type SchemaResult, validateWithSchema } from "../definition/schema.ts";
import { InputValidationError, OptionError } from "../errors.ts";
import { buildFlowGraph, type FlowGraph } from "../graph/flow-graph.ts";
import type { TaskCache, TaskKey } from "./task-cache.ts";

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
  const forced = new Set<string>();
  for (const name of options.rerun ?? []) {
    const matches = graph.order.filter((id) => id === name || graph.nodes.get(id)!.task.name === name);
    if (!matches.length) throw new OptionError("rerun", `a task name or node id of flow "${definition.name}" (${graph.order.join(", ")})`, name);
    const mark = (id: string) => {
      if (forced.has(id)) return;
      forced.add(id);
      for (const next of graph.dependants.get(id)!) mark(next);
    };
    matches.forEach(mark);
  }
  // The hits' source runs are asked about in one request, not one per task.
  if (!options.refresh) options.cache.checkSourceRuns(await sourceRunsAhead(graph, options.params, options.cache, (id) => forced.has(id)));
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
    const r = await keyInputs(node, options.params, outputs);
    if (!r.ok) throw new InputValidationError(id, r.issues);
    const key = await options.cache.keyFor(node, r.value as Record<string, unknown>);
    if (options.refresh || forced.has(id)) {
      plan.set(id, { task: id, action: "run", reason: options.refresh ? "--refresh" : "--rerun", key });
      continue;
    }
    const { entry, bad } = await options.cache.lookup(key.key);
    if (entry) {
      outputs.set(id, entry.outputs.values);
      plan.set(id, { task: id, action: "hit", cachedFrom: entry.sourceRunId, key });
    } else {
      plan.set(id, { task: id, action: "run", reason: bad ? `its entry was unusable: ${bad.reason}` : "no cache entry for these inputs and code", key });
    }
  }
  return graph.order.map((id) => plan.get(id)!);
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
    if (node.task.cache === false || node.task.resolveCode || skip(id)) continue;
    if (graph.dependencies.get(id)!.some((dep) => !outputs.has(dep))) continue;
    walked++;
    try {
      const r = await keyInputs(node, params, outputs);
      if (!r.ok) continue;
      const entry = await cache.peek((await cache.keyFor(node, r.value as Record<string, unknown>)).key);
      if (!entry) continue;
      outputs.set(id, entry.outputs.values);
      runIds.push(entry.sourceRunId);
    } catch {
      continue;
    }
  }
  return runIds;
}

/**
 * A node's inputs as its key sees them, from the params and the upstream outputs known so far
 * (a cache entry's stand for its node's), validated with the task's input schema.
 */
async function keyInputs(node: FlowNode, params: Record<string, unknown>, outputs: Map<string, unknown>): Promise<SchemaResult> {
  const raw = resolveRefs(node.inputs, (ref: RefValue) => {
    let v = ref.source === "param" ? params[ref.target] : outputs.get(ref.target);
    for (const k of ref.path) v = v == null ? undefined : (v as Record<string, unknown>)[k];
    return v;
  });
  return node.task.inputSchema ? validateWithSchema(node.task.inputSchema, raw) : { ok: true, value: raw };
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
