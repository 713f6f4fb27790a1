/**
 * Which nodes run whatever the cache holds: `--refresh` forces every node, `--rerun NAME` the
 * nodes whose id or task name is NAME and everything downstream of them; `--rerun fit[3]` that
 * item of map `fit` and what is downstream of the map, once the item is known to exist: here when
 * the map's list is known before the run (a literal or a param), else when the map starts
 * (scheduler/flow-execution.ts), so that an item past the list forces nothing. The one place this
 * is worked out, for a run, its look-ahead and `cairn plan`.
 */
import { describeRef, isRef } from "../definition/ref.ts";
import { OptionError } from "../errors.ts";
import { listsEvery, unknownNameExpected } from "../internal.ts";
import type { FlowGraph } from "../graph/flow-graph.ts";
import { resolveValue } from "../pipeline/inputs.ts";

/**
 * The forced nodes by position in the definition (1: forced), or undefined when none is.
 * Throws OptionError for a name that is neither a node id nor a task name of the flow, or for an
 * item past a list known before the run (a literal, or a param in `params`).
 */
export function forcedNodes(graph: FlowGraph, rerun: readonly string[], refresh = false, params?: Readonly<Record<string, unknown>>): Uint8Array | undefined {
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
      // A list given in the flow (a sweep's points) or by a param is known now: an item past it
      // is refused here; one in it forces what is downstream of the map. A list an upstream task
      // makes is known when the map starts, which forces that then (or says it forces nothing).
      const { map, index } = item;
      const node = list[map]!;
      const over = knownList(node.map!.over, params);
      if (over && index >= over.length) {
        const given = isRef(node.map!.over) ? `, from ${describeRef(node.map!.over)}` : "";
        throw new OptionError("rerun", `an item of "${node.id}", which has ${over.length} (${itemRange(node.id, over.length)}${given})`, name);
      }
      if (over) for (const next of dependants[map]!) mark(next);
    }
    if (!matched) {
      const maps = list.filter((n) => n.map).map((n) => n.id);
      const ids = list.map((n) => n.id);
      const names = unknownNameExpected(`a task name or node id of flow "${graph.definition.name}"`, name, ids, { aliases: list.map((n) => n.task.name), counted: "nodes", maps });
      const map = maps[0];
      throw new OptionError("rerun", `${names}${map ? `, or an item of a map or sweep (like "${map}[0]")` : ""}`, name, undefined, undefined, !listsEvery(ids));
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

/** The items of map `id` among `forced` (forcedItems), with their positions. */
export function forcedOf(forced: ReadonlySet<string> | undefined, id: string): Array<{ item: string; index: number }> {
  const out: Array<{ item: string; index: number }> = [];
  for (const item of forced ?? []) {
    if (item.startsWith(`${id}[`) && item.endsWith("]")) out.push({ item, index: Number(item.slice(id.length + 1, -1)) });
  }
  return out;
}

/** `fit[0] to fit[4]`, or `none`: the items a list of `length` gives map `id`. */
export function itemRange(id: string, length: number): string {
  return length ? `${id}[0] to ${id}[${length - 1}]` : "none";
}

/** What `--rerun fit[7]` of an item past a list known only when the map starts says (the scheduler warns it, `cairn plan` shows it). */
export function itemPastList(item: string, id: string, length: number): string {
  return `--rerun ${item} forces nothing: "${id}" has ${length} item${length === 1 ? "" : "s"} in this run (${itemRange(id, length)})`;
}

/** A map's list when it is known before the run: a literal array, or a param's value; undefined otherwise. */
function knownList(over: unknown, params: Readonly<Record<string, unknown>> | undefined): readonly unknown[] | undefined {
  if (Array.isArray(over)) return over;
  if (!params || !isRef(over) || over.source !== "param") return undefined;
  const value = resolveValue(over, params as Record<string, unknown>, () => undefined);
  return Array.isArray(value) ? value : undefined; // not an array: the map fails when it starts (MapOverError)
}
