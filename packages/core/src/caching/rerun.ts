/**
 * Which nodes run whatever the cache holds: `--refresh` forces every node, `--rerun NAME` the
 * nodes whose id or task name is NAME and everything downstream of them. The one place this is
 * worked out, for a run, its look-ahead and `cairn plan`.
 */
import { OptionError } from "../errors.ts";
import type { FlowGraph } from "../graph/flow-graph.ts";

/**
 * The forced nodes by position in the definition (1: forced), or undefined when none is.
 * Throws OptionError for a name that is neither a node id nor a task name of the flow.
 */
export function forcedNodes(graph: FlowGraph, rerun: readonly string[], refresh = false): Uint8Array | undefined {
  const list = graph.definition.nodes;
  if (!refresh && !rerun.length) return undefined;
  const forced = new Uint8Array(list.length);
  const { dependants } = graph.indexed;
  const mark = (start: number) => {
    const stack = [start];
    while (stack.length) {
      const i = stack.pop()!;
      if (forced[i]) continue;
      forced[i] = 1;
      for (const next of dependants[i]!) stack.push(next);
    }
  };
  for (const name of rerun) {
    let matched = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i]!.id !== name && list[i]!.task.name !== name) continue;
      matched = true;
      mark(i);
    }
    if (!matched) throw new OptionError("rerun", `a task name or node id of flow "${graph.definition.name}" (${list.map((n) => n.id).join(", ")})`, name);
  }
  return refresh ? forced.fill(1) : forced;
}
