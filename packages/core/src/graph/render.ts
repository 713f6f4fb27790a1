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

/** The flow as JSON: nodes with their task kind and dependencies. */
export function toGraphJson(graph: FlowGraph): { flow: string; nodes: Array<{ id: string; task: string; kind: string; dependsOn: string[] }> } {
  return {
    flow: graph.definition.name,
    nodes: graph.order.map((id) => {
      const node = graph.nodes.get(id)!;
      return { id, task: node.task.name, kind: node.task.kind, dependsOn: [...graph.dependencies.get(id)!] };
    }),
  };
}

function escapeLabel(s: string): string {
  return s.replace(/"/g, "#quot;");
}
