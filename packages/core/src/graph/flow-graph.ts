import { Graph, alg } from "@dagrejs/graphlib";
import type { FlowDefinition, FlowNode } from "../definition/flow-definition.ts";
import { forEachRef } from "../definition/ref.ts";
import { requiredKeys } from "../definition/schema.ts";
import { assertSerializable } from "../definition/serializable.ts";
import {
  CycleError,
  DuplicateNodeError,
  FlowValidationError,
  MissingInputError,
  NotSerializableError,
  UnknownNodeError,
} from "../errors.ts";

/** A validated flow: nodes by id, edges, a topological order and scheduling priorities. */
export interface FlowGraph {
  readonly definition: FlowDefinition;
  readonly nodes: ReadonlyMap<string, FlowNode>;
  /** Node ids in a topological order. */
  readonly order: readonly string[];
  /** Upstream node ids of each node. */
  readonly dependencies: ReadonlyMap<string, readonly string[]>;
  /** Downstream node ids of each node. */
  readonly dependants: ReadonlyMap<string, readonly string[]>;
  /** Length, in nodes, of the longest path from each node to a sink; the critical-path priority. */
  readonly priority: ReadonlyMap<string, number>;
}

/**
 * Validates a flow definition and builds its graph. Everything a user can get
 * wrong in the wiring is caught here, before anything runs.
 */
export function buildFlowGraph(definition: FlowDefinition): FlowGraph {
  const flowName = definition.name;
  const nodes = new Map<string, FlowNode>();
  for (const node of definition.nodes) {
    if (nodes.has(node.id)) throw new DuplicateNodeError(flowName, node.id);
    nodes.set(node.id, node);
  }

  const graph: Graph = new Graph({ directed: true });
  for (const id of nodes.keys()) graph.setNode(id);

  for (const node of nodes.values()) {
    for (const [input, value] of Object.entries(node.inputs)) {
      forEachRef(value, (ref) => {
        if (ref.source !== "node") return;
        if (ref.buildId !== definition.buildId || !nodes.has(ref.target)) {
          throw new UnknownNodeError(flowName, node.id, input, ref.target);
        }
        graph.setEdge(ref.target, node.id);
      });
      try {
        assertSerializable(value, `Task "${node.id}" input "${input}"`, { allowRefs: true });
      } catch (error) {
        if (error instanceof NotSerializableError) {
          throw new FlowValidationError(`${error.message} (in flow "${flowName}")`, flowName, { cause: error });
        }
        throw error;
      }
    }
    for (const dep of node.after) {
      if (!nodes.has(dep)) throw new UnknownNodeError(flowName, node.id, "after", dep);
      graph.setEdge(dep, node.id);
    }
    const schema = node.task.inputSchema;
    const required = schema ? requiredKeys(schema) : undefined;
    for (const key of required ?? []) {
      if (node.inputs[key] === undefined) throw new MissingInputError(flowName, node.id, key);
    }
  }
  for (const [name, value] of Object.entries(definition.outputs)) {
    forEachRef(value, (ref) => {
      if (ref.source === "node" && (ref.buildId !== definition.buildId || !nodes.has(ref.target))) {
        throw new UnknownNodeError(flowName, "(flow outputs)", name, ref.target);
      }
    });
  }

  if (!alg.isAcyclic(graph)) throw new CycleError(flowName, findCycle(graph));

  const order = alg.topsort(graph) as string[];
  const dependencies = new Map<string, string[]>();
  const dependants = new Map<string, string[]>();
  for (const id of order) {
    dependencies.set(id, (graph.predecessors(id) as string[] | undefined) ?? []);
    dependants.set(id, (graph.successors(id) as string[] | undefined) ?? []);
  }
  const priority = new Map<string, number>();
  for (let i = order.length - 1; i >= 0; i--) {
    const id = order[i]!;
    let best = 0;
    for (const next of dependants.get(id)!) best = Math.max(best, priority.get(next)!);
    priority.set(id, best + 1);
  }
  return { definition, nodes, order, dependencies, dependants, priority };
}

/** One concrete cycle, as node ids in edge order, found inside a strongly connected component. */
function findCycle(graph: Graph): string[] {
  const components = alg.tarjan(graph).filter((c: string[]) => c.length > 1 || graph.hasEdge(c[0]!, c[0]!));
  const component = new Set<string>(components[0] ?? []);
  const start = [...component].sort()[0]!;
  // Walk successors inside the component until a node repeats; the repeat closes the cycle.
  const path: string[] = [];
  const index = new Map<string, number>();
  let current = start;
  while (!index.has(current)) {
    index.set(current, path.length);
    path.push(current);
    const next = ((graph.successors(current) as string[]) ?? []).filter((s) => component.has(s)).sort()[0]!;
    current = next;
  }
  return path.slice(index.get(current));
}
