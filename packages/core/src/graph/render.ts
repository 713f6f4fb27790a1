import { describeRef, forEachRef } from "../definition/ref.ts";
import type { FlowGraph } from "./flow-graph.ts";

/** The flow as a mermaid `flowchart`, one line per node and edge. */
export function toMermaid(graph: FlowGraph): string {
  const ids = new Map(graph.order.map((id, i) => [id, `n${i}`]));
  const lines = ["flowchart LR"];
  for (const id of graph.order) {
    const node = graph.nodes.get(id)!;
    lines.push(`  ${ids.get(id)}["${escapeLabel(id)}${node.task.kind !== "function" ? ` (${node.task.kind})` : ""}"]`);
  }
  for (const id of graph.order) {
    for (const dep of graph.dependencies.get(id)!) lines.push(`  ${ids.get(dep)} --> ${ids.get(id)}`);
  }
  return lines.join("\n");
}

/** The flow in Graphviz dot. */
export function toDot(graph: FlowGraph): string {
  const lines = [`digraph ${JSON.stringify(graph.definition.name)} {`, "  rankdir=LR;"];
  for (const id of graph.order) lines.push(`  ${JSON.stringify(id)};`);
  for (const id of graph.order) {
    for (const dep of graph.dependencies.get(id)!) lines.push(`  ${JSON.stringify(dep)} -> ${JSON.stringify(id)};`);
  }
  lines.push("}");
  return lines.join("\n");
}

/** One node of {@link toGraphJson}. */
export interface GraphJsonNode {
  id: string;
  task: string;
  kind: string;
  dependsOn: string[];
  /**
   * Which input takes which upstream output (`load.rows`), one entry per ref; absent when it takes
   * none. A ref in the node's condition (`{ if: check.go }`) or a map's list (`over`) is an entry
   * too, with `use` saying which.
   */
  inputs?: Array<{ input: string; from: string; node: string; use?: "if" | "over" }>;
  /** The task's named pool, when it has one. */
  pool?: string;
}

/**
 * The flow as JSON: nodes with their task kind and dependencies; with `details` (the run's
 * `cairn/graph.json`, which reports read), also the outputs each input takes, and pools.
 */
export function toGraphJson(graph: FlowGraph, details = false): { flow: string; nodes: GraphJsonNode[] } {
  return {
    flow: graph.definition.name,
    nodes: graph.order.map((id) => {
      const node = graph.nodes.get(id)!;
      const out: GraphJsonNode = { id, task: node.task.name, kind: node.task.kind, dependsOn: [...graph.dependencies.get(id)!] };
      if (!details) return out;
      const inputs: NonNullable<GraphJsonNode["inputs"]> = [];
      forEachRef(node.inputs, (ref, path) => {
        if (ref.source === "node") inputs.push({ input: path, from: describeRef(ref), node: ref.target });
      });
      // What else it waits on, so that a report labels those edges by it rather than as `.after()`.
      for (const [use, value] of [["over", node.map?.over], ["if", node.condition]] as const) {
        forEachRef(value, (ref) => {
          if (ref.source === "node") inputs.push({ input: use, from: describeRef(ref), node: ref.target, use });
        });
      }
      if (inputs.length) out.inputs = inputs;
      if (node.task.pool) out.pool = node.task.pool;
      return out;
    }),
  };
}

function escapeLabel(s: string): string {
  return s.replace(/"/g, "#quot;");
}
