/**
 * Which nodes run whatever the cache holds: `--refresh` forces every node, `--rerun NAME` the
 * nodes whose id or task name is NAME and everything downstream of them; `--rerun fit[3]` that
 * item of map `fit` and what is downstream of the map. The one place this is
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
    // An item of a map or sweep (`fit[3]`): the item runs (see forcedItems), and what is
    // downstream of its map, not the map's other items.
    const item = matched ? undefined : itemOf(graph, name);
    if (item) {
      matched = true;
      // A list given in the flow (a sweep's points) is known now: an item past it is refused here.
      const { map, index } = item;
      const node = list[map]!;
      const over = node.map!.over;
      if (Array.isArray(over) && index >= over.length) {
        throw new OptionError("rerun", `an item of "${node.id}", which has ${over.length} (${over.length ? `${node.id}[0] to ${node.id}[${over.length - 1}]` : "none"})`, name);
      }
      for (const next of dependants[map]!) mark(next);
    }
    if (!matched) {
      const map = list.find((n) => n.map)?.id;
      throw new OptionError("rerun", `a task name or node id of flow "${graph.definition.name}" (${list.map((n) => n.id).join(", ")})${map ? `, or an item of a map or sweep (like "${map}[0]")` : ""}`, name);
    }
  }
  return refresh ? forced.fill(1) : forced;
}

/** The items of maps and sweeps that `rerun` names (`fit[3]`): each runs whatever the cache holds. */
export function forcedItems(graph: FlowGraph, rerun: readonly string[]): ReadonlySet<string> | undefined {
  const items = rerun.filter((name) => !graph.indexed.index.has(name) && itemOf(graph, name));
  return items.length ? new Set(items) : undefined;
}

/** The map or sweep node (its position) and the item's index that `name` names (`fit[3]`), if it names one. */
function itemOf(graph: FlowGraph, name: string): { map: number; index: number } | undefined {
  const match = /^(.+)\[(0|[1-9]\d*)\]$/.exec(name);
  if (!match) return undefined;
  const map = graph.indexed.index.get(match[1]!);
  return map !== undefined && graph.definition.nodes[map]!.map ? { map, index: Number(match[2]) } : undefined;
}
